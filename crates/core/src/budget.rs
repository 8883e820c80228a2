//! A CA's rate limits as a budget the scheduler spends, so that renewals never hit them and
//! are spread over time instead of fired all at once.
//!
//! A limit is a count in a sliding window: new orders per account (Let's Encrypt: 300 in
//! 3 hours) and certificates per registered domain (Let's Encrypt: 50 in 7 days). The budget
//! admits an order only when every limit it counts against has room in its window, and paces
//! them: each limit refills at its average rate (300 in 3 hours is one every 36 s) with a
//! burst of a quarter of the limit. An ARI renewal (RFC 9773 `replaces`) is exempt where the
//! CA says so, as Let's Encrypt does. An order that is not admitted is told when it will be.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

/// A count in a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// At most this many…
    pub count: u32,
    /// …in any window of this many seconds.
    pub window_secs: u64,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.window_secs;
        match w {
            _ if w.is_multiple_of(86_400) => write!(f, "{}/{}d", self.count, w / 86_400),
            _ if w.is_multiple_of(3_600) => write!(f, "{}/{}h", self.count, w / 3_600),
            _ if w.is_multiple_of(60) => write!(f, "{}/{}m", self.count, w / 60),
            _ => write!(f, "{}/{}s", self.count, w),
        }
    }
}

impl std::str::FromStr for Limit {
    type Err = String;

    /// `300/3h`: a count, then a window in s, m, h or d.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected COUNT/WINDOW, e.g. 300/3h or 50/7d");
        let (count, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let unit = match window.chars().last() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = window[..window.len() - 1].parse().map_err(|_| bad())?;
        if count == 0 || n == 0 {
            return Err(format!("{s:?}: the count and the window must be more than 0"));
        }
        Ok(Limit { count, window_secs: n * unit })
    }
}

/// The rate limits of one CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateLimits {
    /// New orders per account.
    pub orders_per_account: Option<Limit>,
    /// Certificates per registered domain (a name under the public suffix, such as
    /// example.co.uk).
    pub certs_per_domain: Option<Limit>,
    /// Whether ARI renewals are exempt.
    pub ari_exempt: bool,
}

/// Let's Encrypt's production and staging directories.
const LETS_ENCRYPT_HOSTS: [&str; 2] =
    ["acme-v02.api.letsencrypt.org", "acme-staging-v02.api.letsencrypt.org"];

impl RateLimits {
    /// Let's Encrypt's published limits: 300 new orders per account in 3 hours, 50
    /// certificates per registered domain in 7 days, ARI renewals exempt.
    pub const LETS_ENCRYPT: RateLimits = RateLimits {
        orders_per_account: Some(Limit { count: 300, window_secs: 3 * 3_600 }),
        certs_per_domain: Some(Limit { count: 50, window_secs: 7 * 86_400 }),
        ari_exempt: true,
    };

    /// The limits the scheduler assumes for a CA without configured ones: Let's Encrypt's
    /// for its directories, none for others.
    pub fn default_for(directory_url: &str) -> RateLimits {
        let host = directory_url
            .split_once("://")
            .map_or(directory_url, |(_, rest)| rest)
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        if LETS_ENCRYPT_HOSTS.contains(&host) { Self::LETS_ENCRYPT } else { Self::default() }
    }

    /// Whether there is anything to keep under.
    pub fn is_none(&self) -> bool {
        self.orders_per_account.is_none() && self.certs_per_domain.is_none()
    }

    /// The longest window, in seconds: how far back orders count.
    pub fn longest_window_secs(&self) -> u64 {
        [self.orders_per_account, self.certs_per_domain]
            .into_iter()
            .flatten()
            .map(|l| l.window_secs)
            .max()
            .unwrap_or(0)
    }
}

impl fmt::Display for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        if let Some(l) = self.orders_per_account {
            parts.push(format!("orders={l}"));
        }
        if let Some(l) = self.certs_per_domain {
            parts.push(format!("domain={l}"));
        }
        if self.ari_exempt {
            parts.push("ari-exempt".into());
        }
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for RateLimits {
    type Err = String;

    /// `orders=300/3h,domain=50/7d,ari-exempt`, any part left out, or `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut limits = RateLimits::default();
        if s.trim() == "none" {
            return Ok(limits);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("orders", l)) => limits.orders_per_account = Some(l.parse()?),
                Some(("domain", l)) => limits.certs_per_domain = Some(l.parse()?),
                None if part == "ari-exempt" => limits.ari_exempt = true,
                _ => {
                    return Err(format!(
                        "{part:?}: expected orders=COUNT/WINDOW (per account), \
                         domain=COUNT/WINDOW (per registered domain), ari-exempt, or none"
                    ));
                }
            }
        }
        if limits.is_none() {
            return Err(format!("{s:?}: no limit given (say none for no limits)"));
        }
        Ok(limits)
    }
}

/// The registered domain of `name` (the label under its public suffix), lower case; `None`
/// for a name that is itself a public suffix or an IP address.
pub fn registered_domain(name: &str) -> Option<String> {
    let name = name.trim_start_matches("*.").trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    psl::domain_str(&name).map(str::to_owned)
}

/// Why an order waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// Not before this time, epoch ms.
    pub until: i64,
    /// The limit, in words: "300 new orders per account in 3h".
    pub limit: String,
}

/// One limit's state for one account or domain: the times of the orders in its window, and
/// a pacing bucket.
#[derive(Debug, Default, Clone)]
struct Meter {
    times: VecDeque<i64>,
    /// Tokens (fractional) and when they were counted, epoch ms.
    tokens: f64,
    at: i64,
    started: bool,
}

impl Meter {
    fn burst(limit: Limit) -> f64 {
        f64::from((limit.count / 4).max(1))
    }

    fn rate_per_ms(limit: Limit) -> f64 {
        f64::from(limit.count) / (limit.window_secs as f64 * 1000.0)
    }

    fn refill(&mut self, limit: Limit, now: i64) {
        if !self.started {
            (self.tokens, self.at, self.started) = (Self::burst(limit), now, true);
        }
        if now > self.at {
            let gained = (now - self.at) as f64 * Self::rate_per_ms(limit);
            self.tokens = (self.tokens + gained).min(Self::burst(limit));
            self.at = now;
        }
        let window = limit.window_secs as i64 * 1000;
        while self.times.front().is_some_and(|t| *t <= now - window) {
            self.times.pop_front();
        }
    }

    /// When an order could be admitted, `now` if it can now.
    fn ready_at(&mut self, limit: Limit, now: i64) -> i64 {
        self.refill(limit, now);
        let mut at = now;
        if self.times.len() >= limit.count as usize {
            // The oldest order in the window leaves it.
            let k = self.times.len() + 1 - limit.count as usize;
            at = at.max(self.times[k - 1] + limit.window_secs as i64 * 1000);
        }
        if self.tokens < 1.0 {
            at = at.max(now + ((1.0 - self.tokens) / Self::rate_per_ms(limit)).ceil() as i64);
        }
        at
    }

    fn take(&mut self, limit: Limit, at: i64) {
        self.refill(limit, at);
        self.tokens -= 1.0;
        let pos = self.times.partition_point(|t| *t <= at);
        self.times.insert(pos, at);
    }
}

/// The budget of one CA: its limits and the orders placed with it.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: RateLimits,
    accounts: HashMap<String, Meter>,
    domains: HashMap<String, Meter>,
}

impl Budget {
    /// An unspent budget.
    pub fn new(limits: RateLimits) -> Budget {
        Budget { limits, accounts: HashMap::new(), domains: HashMap::new() }
    }

    /// The limits it keeps under.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Counts an order placed at `at` (epoch ms) by `account` for `names`, admitted or not
    /// (history, or an order placed elsewhere).
    pub fn record(&mut self, at: i64, account: &str, names: &[String], ari_renewal: bool) {
        if ari_renewal && self.limits.ari_exempt {
            return;
        }
        if let Some(l) = self.limits.orders_per_account {
            self.accounts.entry(account.to_owned()).or_default().take(l, at);
        }
        if let Some(l) = self.limits.certs_per_domain {
            for d in registered_domains(names) {
                self.domains.entry(d).or_default().take(l, at);
            }
        }
    }

    /// Admits an order at `now` (epoch ms) by `account` for `names` and counts it, or says
    /// how long it waits.
    pub fn admit(
        &mut self,
        now: i64,
        account: &str,
        names: &[String],
        ari_renewal: bool,
    ) -> Result<(), Wait> {
        if ari_renewal && self.limits.ari_exempt {
            return Ok(());
        }
        let mut wait: Option<Wait> = None;
        let mut later = |until: i64, limit: String| {
            if until > now && wait.as_ref().is_none_or(|w| until > w.until) {
                wait = Some(Wait { until, limit });
            }
        };
        if let Some(l) = self.limits.orders_per_account {
            let at = self.accounts.entry(account.to_owned()).or_default().ready_at(l, now);
            later(at, format!("{} new orders per account in {}", l.count, window(l)));
        }
        if let Some(l) = self.limits.certs_per_domain {
            for d in registered_domains(names) {
                let at = self.domains.entry(d.clone()).or_default().ready_at(l, now);
                later(at, format!("{} certificates for {d} in {}", l.count, window(l)));
            }
        }
        match wait {
            Some(w) => Err(w),
            None => {
                self.record(now, account, names, ari_renewal);
                Ok(())
            }
        }
    }
}

fn window(l: Limit) -> String {
    let s = Limit { count: 1, ..l }.to_string();
    s.trim_start_matches("1/").to_owned()
}

/// The registered domains of `names`, each once.
fn registered_domains(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().filter_map(|n| registered_domain(n)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn names(d: &[&str]) -> Vec<String> {
        d.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn limits_read_and_print_the_same() {
        let le: RateLimits = "orders=300/3h,domain=50/7d,ari-exempt".parse().unwrap();
        assert_eq!(le, RateLimits::LETS_ENCRYPT);
        assert_eq!(le.to_string(), "orders=300/3h,domain=50/7d,ari-exempt");
        assert_eq!("none".parse::<RateLimits>().unwrap(), RateLimits::default());
        assert_eq!(RateLimits::default().to_string(), "none");
        let orders: RateLimits = "orders=20/90m".parse().unwrap();
        assert_eq!(orders.orders_per_account, Some(Limit { count: 20, window_secs: 5_400 }));
        assert!(!orders.ari_exempt);
        for bad in ["orders=0/3h", "orders=300", "orders=3/3y", "speed=1/1h", "", "ari-exempt"] {
            assert!(bad.parse::<RateLimits>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lets_encrypt_directories_get_its_limits() {
        for url in [
            "https://acme-v02.api.letsencrypt.org/directory",
            "https://acme-staging-v02.api.letsencrypt.org/directory",
        ] {
            assert_eq!(RateLimits::default_for(url), RateLimits::LETS_ENCRYPT, "{url}");
        }
        assert!(RateLimits::default_for("https://localhost:14000/dir").is_none());
        assert!(
            RateLimits::default_for("https://evil.example/acme-v02.api.letsencrypt.org").is_none()
        );
    }

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        assert_eq!(registered_domain("www.example.co.uk").as_deref(), Some("example.co.uk"));
        assert_eq!(registered_domain("*.API.Example.com.").as_deref(), Some("example.com"));
        assert_eq!(registered_domain("a.b.example.test").as_deref(), Some("example.test"));
        assert_eq!(registered_domain("co.uk"), None);
        assert_eq!(registered_domain("192.0.2.1"), None);
    }

    #[test]
    fn orders_are_paced_and_never_exceed_the_window() {
        let limits = RateLimits { orders_per_account: "300/3h".parse().ok(), ..Default::default() };
        let mut b = Budget::new(limits);
        let d = names(&["example.com"]);
        // A burst of a quarter of the limit, then one every 36 s.
        for _ in 0..75 {
            b.admit(0, "a", &d, false).expect("within the burst");
        }
        let wait = b.admit(0, "a", &d, false).expect_err("the burst is spent");
        assert_eq!(wait.until, 36_000);
        assert_eq!(wait.limit, "300 new orders per account in 3h");
        // Another account has its own.
        b.admit(0, "b", &d, false).expect("another account");
        // Taking every chance for 6 hours: never more than 300 in any 3 hours.
        let mut placed = vec![0i64; 75];
        let mut now = 0;
        while now < 6 * H {
            match b.admit(now, "a", &d, false) {
                Ok(()) => placed.push(now),
                Err(w) => now = w.until,
            }
        }
        for (i, t) in placed.iter().enumerate() {
            let in_window = placed[i..].iter().take_while(|u| **u < t + 3 * H).count();
            assert!(in_window <= 300, "{in_window} orders from {t}");
        }
        assert!(placed.len() >= 590, "the whole limit is used: {}", placed.len());
    }

    #[test]
    fn registered_domains_count_once_per_order_and_ari_renewals_are_exempt() {
        let mut b = Budget::new(RateLimits::LETS_ENCRYPT);
        let d = names(&["www.example.com", "example.com", "api.example.org"]);
        for _ in 0..12 {
            b.admit(0, "a", &d, false).expect("within the burst");
        }
        let wait = b.admit(0, "a", &names(&["example.org"]), false).expect_err("spent");
        assert_eq!(wait.limit, "50 certificates for example.org in 7d");
        b.admit(0, "a", &names(&["example.net"]), false).expect("another domain");
        b.admit(0, "a", &d, true).expect("an ARI renewal is exempt");
        // History counts as admitted orders do.
        let mut fresh = Budget::new(RateLimits::LETS_ENCRYPT);
        for i in 0..50 {
            fresh.record(i, "a", &names(&["example.com"]), false);
        }
        let wait = fresh.admit(100, "a", &names(&["example.com"]), false).expect_err("full");
        assert_eq!(wait.until, 7 * 24 * H, "when the first leaves the window");
        let no_exemption = RateLimits { ari_exempt: false, ..RateLimits::LETS_ENCRYPT };
        let mut strict = Budget::new(no_exemption);
        for i in 0..50 {
            strict.record(i, "a", &names(&["example.com"]), true);
        }
        assert!(strict.admit(100, "a", &names(&["example.com"]), true).is_err());
    }
}
