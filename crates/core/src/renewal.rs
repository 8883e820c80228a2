//! When to renew: a pure function of the certificate's validity, the CA's renewal window
//! (ARI, RFC 9773), the policy and the current time.
//!
//! Without ARI, a certificate is renewed once a fraction of its lifetime has passed
//! (75% by default), or a number of days before expiry. A days rule never fires before half
//! of the lifetime has passed, so a 30-day rule does not renew a 6-day certificate over and
//! over. With ARI, a moment inside the CA's suggested window is picked at random (seeded per
//! certificate, so repeated runs agree) and the certificate is renewed once it has come; a
//! window moved into the past means renew now — that is how a CA makes a fleet renew early
//! after an incident.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How long before expiry to renew when the CA offers no renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum RenewalPolicy {
    /// Renew once this many days are left, but never before half of the lifetime.
    DaysBeforeExpiry {
        /// Days before `not_after`.
        days: u32,
    },
    /// Renew once this fraction of the lifetime has passed (0 < f < 1).
    FractionOfLifetime {
        /// The fraction, e.g. 0.75.
        fraction: f64,
    },
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        Self::FractionOfLifetime { fraction: 0.75 }
    }
}

impl std::str::FromStr for RenewalPolicy {
    type Err = String;

    /// `75%` (a fraction of the lifetime) or `30d` (days before expiry).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let pct: f64 =
                p.trim().parse().map_err(|_| format!("{s:?}: expected a percentage like 75%"))?;
            if !(pct > 0.0 && pct < 100.0) {
                return Err(format!(
                    "{s:?}: the percentage of the lifetime must be between 0 and 100"
                ));
            }
            return Ok(Self::FractionOfLifetime { fraction: pct / 100.0 });
        }
        if let Some(d) = s.strip_suffix('d') {
            let days: u32 =
                d.trim().parse().map_err(|_| format!("{s:?}: expected days like 30d"))?;
            if days == 0 {
                return Err(format!("{s:?}: renew at least one day before expiry"));
            }
            return Ok(Self::DaysBeforeExpiry { days });
        }
        Err(format!("{s:?}: expected a share of the lifetime (75%) or days before expiry (30d)"))
    }
}

/// The CA's suggested renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalWindow {
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Renew now.
    RenewNow(Reason),
    /// Nothing to do until then.
    RenewAt(SystemTime, Reason),
}

/// Why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The CA's window (ARI).
    CaWindow,
    /// The certificate has expired.
    Expired,
    /// The policy (fraction of lifetime or days before expiry).
    Policy,
}

impl Decision {
    /// Is renewal due now?
    pub fn is_due(&self) -> bool {
        matches!(self, Self::RenewNow(_))
    }
}

/// Decides when to renew a certificate valid from `not_before` to `not_after`.
/// `seed` spreads renewals inside a CA window (use something stable per certificate, such
/// as its serial).
pub fn decide(
    not_before: SystemTime,
    not_after: SystemTime,
    window: Option<RenewalWindow>,
    policy: RenewalPolicy,
    now: SystemTime,
    seed: u64,
) -> Decision {
    if now >= not_after {
        return Decision::RenewNow(Reason::Expired);
    }
    let at = match window {
        Some(w) if w.end >= w.start => {
            let span = w.end.duration_since(w.start).unwrap_or_default();
            // splitmix64: a well-spread fraction of the window from the seed.
            let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let frac = (z >> 11) as f64 / (1u64 << 53) as f64;
            let at = w.start + span.mul_f64(frac);
            // RFC 9773 §4.2: a moment chosen at random in the window, now if it has passed
            // (a window moved into the past, after a mass revocation, is overdue). A window
            // that has started is not a reason to renew at once: the fleet stays spread.
            if now >= at {
                return Decision::RenewNow(Reason::CaWindow);
            }
            return Decision::RenewAt(at, Reason::CaWindow);
        }
        _ => policy_time(not_before, not_after, policy),
    };
    if now >= at {
        Decision::RenewNow(Reason::Policy)
    } else {
        Decision::RenewAt(at, Reason::Policy)
    }
}

fn policy_time(not_before: SystemTime, not_after: SystemTime, policy: RenewalPolicy) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    match policy {
        RenewalPolicy::FractionOfLifetime { fraction } => {
            not_before + lifetime.mul_f64(fraction.clamp(0.0, 1.0))
        }
        RenewalPolicy::DaysBeforeExpiry { days } => {
            let by_days = not_after
                .checked_sub(Duration::from_secs(u64::from(days) * 86_400))
                .unwrap_or(not_before);
            let half = not_before + lifetime / 2;
            by_days.max(half)
        }
    }
}

/// How long to wait before retrying after the `failures`-th failure in a row (1-based).
/// A Retry-After from the CA wins when it asks for longer.
///
/// | failure | wait |
/// |---|---|
/// | 1 | 1 minute |
/// | 2 | 5 minutes |
/// | 3 | 20 minutes |
/// | 4 | 1 hour |
/// | 5 | 3 hours |
/// | 6 and later | 6 hours |
pub fn retry_delay(failures: u32, retry_after: Option<Duration>) -> Duration {
    const TABLE: [u64; 6] = [60, 300, 1200, 3600, 10_800, 21_600];
    let index = (failures.max(1) as usize - 1).min(TABLE.len() - 1);
    let table = Duration::from_secs(TABLE[index]);
    retry_after.map_or(table, |ra| ra.max(table))
}

/// When to fetch a certificate's renewal window again: when the CA's Retry-After says, kept
/// between a minute (a CA asking for less would be polled in a loop) and a day (RFC 9773 asks
/// clients to check at least daily); six hours when the CA says nothing.
pub fn next_renewal_info_fetch(now: SystemTime, retry_after: Option<Duration>) -> SystemTime {
    const MIN: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(86_400);
    const DEFAULT: Duration = Duration::from_secs(6 * 3600);
    now + retry_after.map_or(DEFAULT, |ra| ra.clamp(MIN, MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn renewal_info_is_fetched_again_as_the_ca_says_within_a_minute_and_a_day() {
        for (retry_after, wait) in [
            (None, 6 * 3600),
            (Some(3600), 3600),
            (Some(0), 60),
            (Some(59), 60),
            (Some(86_400), 86_400),
            (Some(30 * DAY), DAY),
        ] {
            let ra = retry_after.map(Duration::from_secs);
            assert_eq!(next_renewal_info_fetch(t(0), ra), t(wait), "{retry_after:?}");
        }
    }

    #[test]
    fn fraction_of_lifetime_for_lifetimes_from_6_to_398_days() {
        let policy = RenewalPolicy::default();
        // (lifetime, expected renewal point at 75%)
        for (lifetime, at) in [
            (6 * DAY, 6 * DAY * 3 / 4),
            (160 * 3600, 120 * 3600), // 160 hours (shortlived)
            (45 * DAY, 45 * DAY * 3 / 4),
            (90 * DAY, 90 * DAY * 3 / 4),
            (200 * DAY, 150 * DAY),
            (398 * DAY, 398 * DAY * 3 / 4),
        ] {
            let (nb, na) = (t(0), t(lifetime));
            assert_eq!(
                decide(nb, na, None, policy, t(at - 1), 0),
                Decision::RenewAt(t(at), Reason::Policy),
                "{lifetime}"
            );
            assert!(decide(nb, na, None, policy, t(at), 0).is_due(), "{lifetime}");
        }
    }

    #[test]
    fn a_days_rule_never_renews_a_short_certificate_before_half_its_life() {
        let policy = RenewalPolicy::DaysBeforeExpiry { days: 30 };
        // 6 days: a 30-day rule would be due at once; it waits for half the lifetime.
        let (nb, na) = (t(0), t(6 * DAY));
        assert_eq!(
            decide(nb, na, None, policy, t(0), 0),
            Decision::RenewAt(t(3 * DAY), Reason::Policy)
        );
        // 90 days: 30 days before expiry.
        let (nb, na) = (t(0), t(90 * DAY));
        assert_eq!(
            decide(nb, na, None, policy, t(DAY), 0),
            Decision::RenewAt(t(60 * DAY), Reason::Policy)
        );
        // 398 days.
        let (nb, na) = (t(0), t(398 * DAY));
        assert!(decide(nb, na, None, policy, t(368 * DAY), 0).is_due());
        assert!(!decide(nb, na, None, policy, t(367 * DAY), 0).is_due());
    }

    #[test]
    fn expired_is_always_due() {
        assert_eq!(
            decide(t(0), t(DAY), None, RenewalPolicy::default(), t(2 * DAY), 0),
            Decision::RenewNow(Reason::Expired)
        );
    }

    #[test]
    fn ari_window_in_the_future_past_and_present() {
        let (nb, na) = (t(0), t(90 * DAY));
        let window = RenewalWindow { start: t(60 * DAY), end: t(62 * DAY) };
        // Future: a moment inside the window, stable for a seed, different across seeds.
        let Decision::RenewAt(at, Reason::CaWindow) =
            decide(nb, na, Some(window), RenewalPolicy::default(), t(DAY), 7)
        else {
            panic!("expected a time in the window");
        };
        assert!(at >= window.start && at <= window.end);
        assert_eq!(
            decide(nb, na, Some(window), RenewalPolicy::default(), t(DAY), 7),
            Decision::RenewAt(at, Reason::CaWindow)
        );
        let spread: std::collections::BTreeSet<_> = (0..50)
            .map(|seed| {
                match decide(nb, na, Some(window), RenewalPolicy::default(), t(DAY), seed) {
                    Decision::RenewAt(at, _) => at,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert!(spread.len() > 40, "renewals are spread over the window");
        // Present: inside the window, due once its moment has come, not before.
        let moment = at;
        let just_after = moment + Duration::from_secs(1);
        assert!(decide(nb, na, Some(window), RenewalPolicy::default(), just_after, 7).is_due());
        let started = window.start + Duration::from_secs(1);
        if started < moment {
            assert_eq!(
                decide(nb, na, Some(window), RenewalPolicy::default(), started, 7),
                Decision::RenewAt(moment, Reason::CaWindow)
            );
        }
        // A window moved into the past (mass revocation): renew now, even early in the life.
        let past = RenewalWindow { start: t(DAY), end: t(DAY + 3600) };
        assert_eq!(
            decide(nb, na, Some(past), RenewalPolicy::default(), t(2 * DAY), 7),
            Decision::RenewNow(Reason::CaWindow)
        );
        // The window overrides the policy: not due at 75% if the CA says later.
        let late = RenewalWindow { start: t(80 * DAY), end: t(81 * DAY) };
        assert!(!decide(nb, na, Some(late), RenewalPolicy::default(), t(70 * DAY), 7).is_due());
    }

    #[test]
    fn clock_skew_and_odd_inputs_do_not_panic() {
        // now before not_before (clock behind the CA's): not due, wait for the policy time.
        let (nb, na) = (t(DAY), t(91 * DAY));
        assert!(!decide(nb, na, None, RenewalPolicy::default(), t(0), 0).is_due());
        // A window that ends before it starts is ignored in favour of the policy.
        let bad = RenewalWindow { start: t(50 * DAY), end: t(40 * DAY) };
        assert_eq!(
            decide(nb, na, Some(bad), RenewalPolicy::default(), t(2 * DAY), 0),
            Decision::RenewAt(t(DAY + 90 * DAY * 3 / 4), Reason::Policy)
        );
        // not_after before not_before: treat as expired once past not_after.
        assert!(decide(t(10), t(5), None, RenewalPolicy::default(), t(6), 0).is_due());
    }

    #[test]
    fn backoff_follows_the_table_and_honours_retry_after() {
        let secs = |n| retry_delay(n, None).as_secs();
        assert_eq!(
            [secs(1), secs(2), secs(3), secs(4), secs(5), secs(6), secs(60)],
            [60, 300, 1200, 3600, 10_800, 21_600, 21_600]
        );
        assert_eq!(retry_delay(1, Some(Duration::from_secs(7200))), Duration::from_secs(7200));
        assert_eq!(retry_delay(4, Some(Duration::from_secs(10))), Duration::from_secs(3600));
    }

    #[test]
    fn policies_parse_from_the_command_line() {
        assert_eq!("75%".parse(), Ok(RenewalPolicy::FractionOfLifetime { fraction: 0.75 }));
        assert_eq!("30d".parse(), Ok(RenewalPolicy::DaysBeforeExpiry { days: 30 }));
        for bad in ["0%", "100%", "0d", "soon", "-3d"] {
            assert!(bad.parse::<RenewalPolicy>().is_err(), "{bad}");
        }
    }
}
