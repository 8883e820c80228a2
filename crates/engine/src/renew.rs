//! Renewal: renew what is due, or the named certificates now.
//!
//! Each certificate is locked, then its due-ness is checked again, then it is requested
//! (lock, re-check, act): runs that overlap — two cron jobs, a cron job and a person — never
//! order the same certificate twice, and a certificate renewed a moment ago is not due.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use certhub_core::budget::{Budget, RateLimits, Wait};
use certhub_core::cert::split_pem_chain;
use certhub_core::renewal::{self, Decision, Reason, RenewalPolicy, RenewalWindow, decide};
use certhub_store::Store;
use futures::StreamExt as _;

use crate::actor::Actor;
use crate::clock::rfc3339;
use crate::error::{Error, Kind, fail, invalid};
use crate::issue::Issuer;
use crate::progress::Progress;

/// What to renew, and how.
#[derive(Debug, Clone)]
pub struct RenewRun {
    /// Renew these now, due or not (with `due` false).
    pub names: Vec<String>,
    /// Renew what is due (and nothing else).
    pub due: bool,
    /// The renewal policy of certificates without their own (`75%`, `30d`).
    pub policy: String,
    /// Certificates renewed at once.
    pub jobs: u16,
    /// How long one certificate's request may take.
    pub timeout: Duration,
    /// The CAs' rate limits, as `DIRECTORY=LIMITS` (see `--rate-limit`).
    pub rate_limits: Vec<String>,
}

/// What a renewal run did.
#[derive(Debug, Default)]
pub struct RenewSummary {
    /// How many certificates it looked at.
    pub looked: usize,
    pub renewed: usize,
    pub not_due: usize,
    /// Not due, with pending deployment tasks done.
    pub redeployed: usize,
    /// Due, waiting for a CA's rate limit.
    pub waiting: usize,
    /// Being requested by another certhub process.
    pub busy: usize,
    /// The certificates that failed, and why.
    pub failed: Vec<(String, Error)>,
}

impl RenewSummary {
    /// The run in one line: "2 renewed, 5 not due, 0 busy elsewhere, 0 failed".
    pub fn line(&self) -> String {
        let waiting = match self.waiting {
            0 => String::new(),
            n => format!(", {n} waiting for the CA's rate limits"),
        };
        let redeployed = match self.redeployed {
            0 => String::new(),
            n => format!(" ({n} with pending deployments done)"),
        };
        format!(
            "{} renewed, {} not due{redeployed}{waiting}, {} busy elsewhere, {} failed",
            self.renewed,
            self.not_due,
            self.busy,
            self.failed.len()
        )
    }
}

enum Outcome {
    Busy,
    /// Not due; `true` when its pending deployment tasks were retried and succeeded.
    NotDue(bool),
    /// Due, but the CA's rate limits have no room yet.
    Waiting,
    Renewed,
}

/// A look at one certificate: done with it, or it is due.
enum Step {
    Done(Outcome),
    Due(DueNow),
}

/// A certificate to order now, locked, with what the look found; a certificate named to
/// renew now is not looked at, and is kept out of the CAs' budgets (a person asked for it,
/// and the CA has the last word).
struct DueNow {
    lock: crate::issue::CertLock,
    looked: Option<Looked>,
}

/// Looks at one certificate: another process has it, it is not due (its pending deployment
/// tasks are retried, and when to look again is recorded), or it is due.
async fn look(
    store: &Store,
    issuer: &Issuer,
    reporter: &dyn Progress,
    args: &RenewRun,
    policy: RenewalPolicy,
    name: &str,
) -> anyhow::Result<Step> {
    let Some(lock) = issuer.try_lock(name).await? else {
        reporter.finish(name, "skipped: another certhub process is requesting it");
        return Ok(Step::Done(Outcome::Busy));
    };
    if !args.due {
        return Ok(Step::Due(DueNow { lock, looked: None }));
    }
    let looked = due(store, issuer, reporter, name, policy).await?;
    let not_due = match &looked.due {
        Due::Now => return Ok(Step::Due(DueNow { lock, looked: Some(looked) })),
        Due::At(at, reason) => {
            format!(
                "not due until {} ({})",
                rfc3339(crate::clock::unix_ms(*at) / 1000),
                why(*reason)
            )
        }
        Due::Watched(status) => status.clone(),
        Due::Stopped(why) => {
            let assumed = looked.default_policy.then(|| args.policy.trim());
            store.set_cert_check(name, looked.recheck_at, assumed, looked.seen).await?;
            return Err(fail(Kind::CaRefused, why.clone()));
        }
    };
    // A deployment that failed last time is retried, due or not.
    let outcome = match crate::deploy::retry_pending(store, name, reporter).await? {
        None => {
            reporter.finish(name, &not_due);
            Outcome::NotDue(false)
        }
        Some(report) => match report.failure() {
            Some(e) => return Err(e),
            None => {
                reporter.finish(name, &format!("{not_due}; pending deployment done"));
                Outcome::NotDue(true)
            }
        },
    };
    // Until then, runs pass it by (unless it changes meanwhile).
    let assumed = looked.default_policy.then(|| args.policy.trim());
    store.set_cert_check(name, looked.recheck_at, assumed, looked.seen).await?;
    Ok(Step::Done(outcome))
}

/// The rate-limit budgets of the CAs the accounts order from, with the orders placed in
/// their windows (by any process sharing the store) already counted.
struct Budgets {
    by_directory: HashMap<String, Budget>,
    directory_of: HashMap<String, String>,
}

impl Budgets {
    /// `overrides` are `DIRECTORY=LIMITS` (see `--rate-limit`); other CAs get
    /// [`RateLimits::default_for`].
    async fn load(store: &Store, overrides: &[String]) -> anyhow::Result<Budgets> {
        let mut configured = HashMap::new();
        for o in overrides {
            let (url, limits) = parse_rate_limit(o).map_err(|e| invalid("rate_limit", e))?;
            configured.insert(url, limits);
        }
        let directory_of: HashMap<String, String> =
            store.accounts().await?.into_iter().map(|a| (a.name, a.directory_url)).collect();
        let mut by_directory = HashMap::new();
        for dir in directory_of.values() {
            let limits =
                configured.get(dir).copied().unwrap_or_else(|| RateLimits::default_for(dir));
            if !limits.is_none() {
                by_directory.entry(dir.clone()).or_insert_with(|| Budget::new(limits));
            }
        }
        let longest = by_directory.values().map(|b| b.limits().longest_window_secs()).max();
        if let Some(longest) = longest {
            let since = crate::clock::unix_ms(SystemTime::now()) - longest as i64 * 1000;
            for o in store.orders_since(since).await? {
                let budget =
                    directory_of.get(&o.account_name).and_then(|d| by_directory.get_mut(d));
                if let Some(budget) = budget {
                    budget.record(o.at, &o.account_name, &o.names, o.ari_renewal);
                }
            }
        }
        Ok(Budgets { by_directory, directory_of })
    }

    /// Admits the order of a due certificate now (and counts it), or says how long it waits.
    fn admit(&mut self, due: &Looked) -> Result<(), Wait> {
        let budget = self.directory_of.get(&due.account).and_then(|d| self.by_directory.get_mut(d));
        match budget {
            Some(b) => b.admit(
                crate::clock::unix_ms(SystemTime::now()),
                &due.account,
                &due.names,
                due.ari_renewal,
            ),
            None => Ok(()),
        }
    }
}

/// `DIRECTORY=LIMITS`, as `--rate-limit` takes it.
pub fn parse_rate_limit(s: &str) -> Result<(String, RateLimits), String> {
    let expected = || {
        format!("{s:?}: expected DIRECTORY_URL=LIMITS, e.g. https://ca.example/dir=orders=300/3h")
    };
    let (url, limits) = s.split_once('=').ok_or_else(expected)?;
    if !url.contains("://") {
        return Err(expected());
    }
    let limits = limits.parse().map_err(|e| format!("--rate-limit {url}: {e}"))?;
    Ok((url.trim().to_string(), limits))
}

/// Renews as `run` says, through `issuer` (whose store it reads); each renewal is written
/// to the audit log as done by `actor`, and `progress` hears of each certificate.
pub async fn renew(
    store: &Store,
    issuer: &Arc<Issuer>,
    args: &RenewRun,
    actor: &Actor,
    progress: Arc<dyn Progress>,
) -> anyhow::Result<RenewSummary> {
    let policy: RenewalPolicy =
        args.policy.parse().map_err(|e| invalid("policy", format!("--policy {e}")))?;
    let names: Vec<String> = if args.due {
        // Only those whose time to be looked at has come: each look records the next.
        store.certs_to_check(crate::clock::unix_ms(SystemTime::now()), args.policy.trim()).await?
    } else {
        for n in &args.names {
            crate::records::load(store, n).await?;
        }
        args.names.clone()
    };
    let mut summary = RenewSummary { looked: names.len(), ..RenewSummary::default() };
    if names.is_empty() {
        return Ok(summary);
    }
    let reporter = progress;
    reporter.begin(&names);
    let timeout = args.timeout;
    let jobs = usize::from(args.jobs);
    // First a look at each: not due (done), or due (kept locked for now).
    let looked: Vec<(String, anyhow::Result<Step>)> = futures::stream::iter(names.iter())
        .map(|name| {
            let (reporter, args) = (&*reporter, &args);
            async move { (name.clone(), look(store, issuer, reporter, args, policy, name).await) }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    let mut results: Vec<(String, anyhow::Result<Outcome>)> = Vec::new();
    let mut due_now = Vec::new();
    for (name, step) in looked {
        match step {
            Ok(Step::Done(outcome)) => results.push((name, Ok(outcome))),
            Ok(Step::Due(due)) => due_now.push((name, due)),
            Err(e) => {
                reporter.finish(&name, &format!("failed: {e:#}"));
                results.push((name, Err(e)));
            }
        }
    }
    // Then the CAs' rate limits, spent on the soonest to expire first; the rest wait.
    let mut budgets = Budgets::load(store, &args.rate_limits).await?;
    due_now.sort_by_key(|(name, d)| (d.looked.as_ref().map_or(0, |l| l.expires), name.clone()));
    let mut admitted = Vec::new();
    for (name, due) in due_now {
        let Some(looked) = &due.looked else {
            admitted.push((name, due));
            continue;
        };
        match budgets.admit(looked) {
            Ok(()) => admitted.push((name, due)),
            Err(wait) => {
                let until = wait.until;
                reporter.finish(
                    &name,
                    &format!(
                        "due, waiting until {} for the CA's rate limit ({})",
                        rfc3339(until / 1000),
                        wait.limit
                    ),
                );
                let assumed = looked.default_policy.then(|| args.policy.trim());
                let r = store.set_cert_check(&name, until, assumed, looked.seen).await;
                results.push((name, r.map(|_| Outcome::Waiting).map_err(Into::into)));
            }
        }
    }
    // Then the orders.
    let work = admitted.into_iter().map(|(name, due)| {
        let (issuer, reporter) = (issuer.clone(), reporter.clone());
        let audit = actor.entry("cert.renew", &name);
        async move {
            let r = async {
                let issued = issuer
                    .request_locked(&name, &due.lock, timeout, &*reporter, Some(&audit))
                    .await?;
                reporter.finish(
                    &name,
                    &format!(
                        "renewed: serial {}, expires {}",
                        issued.serial_hex,
                        rfc3339(issued.not_after / 1000)
                    ),
                );
                anyhow::Ok(Outcome::Renewed)
            }
            .await;
            if let Err(e) = &r {
                reporter.finish(&name, &format!("failed: {e:#}"));
            }
            (name, r)
        }
    });
    let renewed: Vec<(String, anyhow::Result<Outcome>)> = crate::cert::at_most(jobs, work).await;
    results.extend(renewed);
    for (name, r) in results {
        match r {
            Ok(Outcome::Renewed) => summary.renewed += 1,
            Ok(Outcome::NotDue(redeployed)) => {
                summary.not_due += 1;
                summary.redeployed += usize::from(redeployed);
            }
            Ok(Outcome::Waiting) => summary.waiting += 1,
            Ok(Outcome::Busy) => summary.busy += 1,
            Err(e) => summary.failed.push((name, Error::from(e))),
        }
    }
    Ok(summary)
}

fn why(reason: Reason) -> &'static str {
    match reason {
        Reason::CaWindow => "the CA's renewal window",
        Reason::Expired => "expired",
        Reason::Policy => "renewal policy",
    }
}

/// The CA's renewal window for the issued certificate `issued_id`, with when to ask again
/// (epoch ms): the stored one until the CA's Retry-After has passed, then fetched again from
/// `account`'s CA (and stored). Without an account, or when the fetch fails, the stored
/// window, or none (the policy decides).
async fn ca_window(
    store: &Store,
    reporter: &dyn Progress,
    account: Option<&certhub_acme::Account>,
    name: &str,
    issued_id: i64,
    leaf: &[u8],
) -> anyhow::Result<Option<(RenewalWindow, i64)>> {
    let ms = |t: SystemTime| crate::clock::unix_ms(t);
    let time = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let now = SystemTime::now();
    let cached = store.renewal_info(issued_id).await?;
    let directory = account.map(|a| a.client().directory_url().to_string());
    // A window from another CA (before a fallback) says nothing about this one's.
    let cached = cached.filter(|c| directory.as_ref().is_none_or(|d| *d == c.directory_url));
    let info = match (cached, account) {
        (Some(c), _) if c.next_fetch_at > ms(now) => c,
        (cached, None) => match cached {
            Some(c) => c,
            None => return Ok(None),
        },
        (cached, Some(account)) => match account.client().renewal_info(leaf).await {
            Ok(info) => {
                let fresh = certhub_store::RenewalInfoRecord {
                    issued_id,
                    window_start: ms(info.window_start),
                    window_end: ms(info.window_end),
                    directory_url: account.client().directory_url().to_string(),
                    explanation_url: info.explanation_url.clone(),
                    fetched_at: ms(now),
                    next_fetch_at: ms(renewal::next_renewal_info_fetch(now, info.retry_after)),
                };
                store.set_renewal_info(&fresh).await?;
                fresh
            }
            Err(e) => {
                tracing::warn!(cert = name, error = %e, "renewal information unavailable");
                match cached {
                    Some(c) => c,
                    None => return Ok(None),
                }
            }
        },
    };
    if let Some(url) = &info.explanation_url {
        reporter.warn(&format!("{name}: the CA explains its renewal window at {url}"));
    }
    let window = RenewalWindow { start: time(info.window_start), end: time(info.window_end) };
    Ok(Some((window, info.next_fetch_at)))
}

/// A stable seed per certificate (FNV-1a of its serial), which spreads renewals over the
/// CA's window.
pub fn window_seed(serial_hex: &str) -> u64 {
    serial_hex
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// What a look at a certificate found.
struct Looked {
    due: Due,
    /// When to look again if it is not due now, epoch ms: when it falls due, or sooner when
    /// the CA's window may have moved by then.
    recheck_at: i64,
    /// The certificate's `updated_at` when looked at.
    seen: i64,
    /// Whether the hub-wide policy decided (it has none of its own).
    default_policy: bool,
    /// When its certificate expires, epoch milliseconds (0: none yet).
    expires: i64,
    /// The account the next order goes to.
    account: String,
    /// Its names, lower case.
    names: Vec<String>,
    /// Due by the CA's window: the order is an ARI renewal.
    ari_renewal: bool,
}

/// Not looked at again until something changes (an import, an edit).
const NEVER: i64 = i64::MAX;

const DAY_MS: i64 = 86_400_000;

/// The CA's window is asked for again at most this often (ms) when its Retry-After has
/// passed but it cannot be reached.
const ARI_RETRY_MS: i64 = 10 * 60_000;

/// When a certificate is due.
enum Due {
    Now,
    At(SystemTime, Reason),
    /// Not ordered now whatever the dates say (imported without an ACME account, or
    /// waiting after a failure); the text says how it stands.
    Watched(String),
    /// The CA refused its request for good: not ordered until it is changed or requested
    /// by hand; the text says why.
    Stopped(String),
}

/// How many days before expiry an imported certificate is reported as expiring.
const IMPORTED_WARNING_DAYS: i64 = 30;

/// Is the certificate due, and if not, when to look again? Never issued and revoked
/// certificates are due.
async fn due(
    store: &Store,
    issuer: &Issuer,
    reporter: &dyn Progress,
    name: &str,
    policy: RenewalPolicy,
) -> anyhow::Result<Looked> {
    let cert =
        store.cert(name).await?.with_context(|| format!("certificate {name} disappeared"))?;
    let issued = store.latest_issued(name).await?;
    let now_ms = crate::clock::unix_ms(SystemTime::now());
    let account = crate::records::ordering_account(&cert).map(|(a, _)| a.to_string());
    let ids: Vec<certhub_core::Identifier> = cert.identifiers.clone();
    let names: Vec<String> = ids
        .iter()
        .filter_map(|i| match i {
            certhub_core::Identifier::Dns(n) => Some(n.to_lowercase()),
            certhub_core::Identifier::Ip(_) => None,
        })
        .collect();
    let expires = issued.as_ref().map_or(0, |i| i.not_after);
    let looked = |due, recheck_at| Looked {
        due,
        recheck_at,
        seen: cert.updated_at,
        default_policy: cert.renewal_policy.is_none(),
        expires,
        account: account.as_ref().map(String::clone).unwrap_or_default(),
        names: names.clone(),
        ari_renewal: false,
    };
    // After a failure, the backoff table (or the CA's Retry-After) says when to try again.
    if cert.next_attempt_at == Some(certhub_store::RETRY_STOPPED) {
        // Said as a failure once a day, so that a cron job's exit code and the hub's log
        // keep saying it until someone changes the certificate.
        let why = cert.last_error.as_deref().unwrap_or("the CA refused");
        let status = format!("{why} ({})", crate::issue::RETRIES_STOPPED);
        return Ok(looked(Due::Stopped(status), now_ms + DAY_MS));
    }
    if let Some(next) = cert.next_attempt_at
        && next > now_ms
    {
        let status = format!(
            "failed {} time(s) in a row; next attempt after {}",
            cert.failures,
            rfc3339(next / 1000)
        );
        return Ok(looked(Due::Watched(status), next));
    }
    // The certificate's own policy wins over --policy.
    let policy = match &cert.renewal_policy {
        Some(p) => {
            p.parse().map_err(|e| anyhow::anyhow!("certificate {name}: renewal policy {e}"))?
        }
        None => policy,
    };
    if cert.account_name.is_none() {
        let Some(issued) = issued else {
            return Ok(looked(Due::Watched("imported, with no certificate".into()), NEVER));
        };
        let days = (issued.not_after - now_ms).div_euclid(DAY_MS);
        let status =
            format!("imported, expires {} (not renewed by ACME)", rfc3339(issued.not_after / 1000));
        // Warned about once a day from IMPORTED_WARNING_DAYS before expiry.
        let warn_from = issued.not_after - IMPORTED_WARNING_DAYS * DAY_MS;
        if days < IMPORTED_WARNING_DAYS {
            let when =
                if days < 0 { "has expired".into() } else { format!("expires in {days} days") };
            reporter.warn(&format!(
                "warning: {name} {when}; import its successor with `certhub cert import {name}`"
            ));
        }
        return Ok(looked(Due::Watched(status), warn_from.max(now_ms + DAY_MS)));
    }
    let Some(issued) = issued else {
        return Ok(looked(Due::Now, 0));
    };
    if issued.revoked_at.is_some() {
        return Ok(looked(Due::Now, 0));
    }
    let at = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let chain = split_pem_chain(&issued.chain_pem)?;
    let leaf = chain.first().context("the stored chain is empty")?;
    // Asked of the CA the next request goes to (the fallback's, after enough failures);
    // a CA that cannot be reached leaves the stored window, or the policy, to decide, and
    // the request itself then counts the failure.
    let (account_name, _) = crate::records::ordering_account(&cert)?;
    let window = match issuer.account(account_name).await {
        Ok(account) if account.client().directory().renewal_info.is_none() => None,
        Ok(account) => ca_window(store, reporter, Some(&account), name, issued.id, leaf).await?,
        Err(e) => {
            tracing::warn!(cert = name, error = %format!("{e:#}"), "the CA is unreachable");
            ca_window(store, reporter, None, name, issued.id, leaf).await?
        }
    };
    let seed = window_seed(&issued.serial_hex);
    let decision = decide(
        at(issued.not_before),
        at(issued.not_after),
        window.map(|(w, _)| w),
        policy,
        SystemTime::now(),
        seed,
    );
    Ok(match decision {
        Decision::RenewNow(reason) => {
            Looked { ari_renewal: reason == Reason::CaWindow, ..looked(Due::Now, 0) }
        }
        Decision::RenewAt(when, reason) => {
            // The CA may move its window (a mass revocation): ask again when it said to,
            // though not more often than every few minutes when it cannot be reached.
            let ask_again = window.map_or(NEVER, |(_, next)| next.max(now_ms + ARI_RETRY_MS));
            looked(Due::At(when, reason), crate::clock::unix_ms(when).min(ask_again))
        }
    })
}
