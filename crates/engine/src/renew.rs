//! Renewal: renew what is due, or the named certificates now.
//!
//! Each certificate is locked, then its due-ness is checked again, then it is requested
//! (lock, re-check, act): runs that overlap — two cron jobs, a cron job and a person, hubs
//! sharing a database — never order the same certificate twice, and a certificate renewed a
//! moment ago is not due. A due certificate's lock is let go after the first look and taken
//! again (with another look) when its turn to be ordered comes, so a run holds no more
//! certificates than it orders at once, and hubs sharing a database share the work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use certhub_core::budget::{Budget, RateLimits, Wait};
use certhub_core::cert::split_pem_chain;
use certhub_core::renewal::{self, Decision, Reason, RenewalPolicy, RenewalWindow, decide};
use certhub_store::Store;
use futures::{FutureExt as _, StreamExt as _};

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
    /// Of those, the ones the database failed under (it could not be reached, or ended the
    /// connection): their failure may not be recorded, so they are tried again soon.
    pub interrupted: usize,
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

/// What the first look at one certificate found, as the run goes on with it.
enum FirstLook {
    Done(Outcome),
    /// Named to renew now: kept locked.
    Locked(DueNow),
    /// Due: locked and looked at again when its turn to be ordered comes.
    Later(Looked),
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
    let Some(lock) = lock_or_busy(issuer, reporter, name).await? else {
        return Ok(Step::Done(Outcome::Busy));
    };
    if !args.due {
        return Ok(Step::Due(DueNow { lock, looked: None }));
    }
    look_locked(store, issuer, reporter, args, policy, name, lock).await
}

/// The certificate's lock, or `None` (said as skipped) while another process holds it.
async fn lock_or_busy(
    issuer: &Issuer,
    reporter: &dyn Progress,
    name: &str,
) -> anyhow::Result<Option<crate::issue::CertLock>> {
    let lock = issuer.try_lock(name).await?;
    if lock.is_none() {
        reporter.finish(name, "skipped: another certhub process is requesting it");
    }
    Ok(lock)
}

/// [`look`] with the certificate's lock taken.
async fn look_locked(
    store: &Store,
    issuer: &Issuer,
    reporter: &dyn Progress,
    args: &RenewRun,
    policy: RenewalPolicy,
    name: &str,
    lock: crate::issue::CertLock,
) -> anyhow::Result<Step> {
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
            Some(e) => {
                let assumed = looked.default_policy.then(|| args.policy.trim());
                let next = deploy_retry(store, name, looked.recheck_at, assumed).await?;
                return Err(anyhow::anyhow!("{e:#} ({next})"));
            }
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

/// After a pending deployment failed again: records when to retry it, the longer the more
/// failures in a row (the backoff table of failed requests), and says so.
async fn deploy_retry(
    store: &Store,
    name: &str,
    recheck_at: i64,
    assumed: Option<&str>,
) -> anyhow::Result<String> {
    let failures = store.deploy_tasks(name).await?.iter().map(|t| t.failures).max().unwrap_or(1);
    let delay = certhub_core::renewal::retry_delay(failures.clamp(1, 1000) as u32, None);
    let at = (crate::clock::unix_ms(SystemTime::now()) + delay.as_millis() as i64).min(recheck_at);
    // Recording the failure moved the certificate on: looked at again from this time.
    let seen = crate::records::load(store, name).await?.updated_at;
    store.set_cert_check(name, at, assumed, seen).await?;
    Ok(format!(
        "failure {failures} in a row; renew --due retries after {}, `certhub deploy run {name}` \
         at once",
        rfc3339(at / 1000)
    ))
}

/// Admissions in the order of the due list, whichever order the orders run in: turn `i`
/// comes after turn `i - 1` was taken or given up.
struct Turns(tokio::sync::watch::Sender<usize>);

/// Turn `i`: given up when dropped.
struct Turn {
    turns: Arc<Turns>,
    i: usize,
}

impl Turn {
    /// Waits until the turns before this one are over.
    async fn come(&self) {
        let mut rx = self.turns.0.subscribe();
        let _ = rx.wait_for(|t| *t >= self.i).await;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.turns.0.send_modify(|t| *t = (*t).max(self.i + 1));
    }
}

/// Orders certificate `name`, found due by a look whose lock was let go since: it is locked
/// again and looked at again (another hub may have renewed it meanwhile, or hold it now),
/// then admitted under its CA's rate limits at its `turn`, then ordered.
#[allow(clippy::too_many_arguments)]
async fn order_due(
    store: &Store,
    issuer: &Issuer,
    budgets: &Budgets,
    reporter: &dyn Progress,
    args: &RenewRun,
    policy: RenewalPolicy,
    name: &str,
    audit: &certhub_store::AuditEntry,
    turn: Turn,
) -> anyhow::Result<Outcome> {
    let Some(lock) = lock_or_busy(issuer, reporter, name).await? else {
        return Ok(Outcome::Busy);
    };
    let due = match look_locked(store, issuer, reporter, args, policy, name, lock).await? {
        Step::Done(outcome) => return Ok(outcome),
        Step::Due(due) => due,
    };
    let looked = due.looked.as_ref().context("a due certificate was looked at")?;
    turn.come().await;
    let admitted = budgets.admit(store, name, looked, args.timeout).await?;
    drop(turn);
    if let Err(wait) = admitted {
        reporter.finish(
            name,
            &format!(
                "due, waiting until {} for the CA's rate limit ({})",
                rfc3339(wait.until / 1000),
                wait.limit
            ),
        );
        let assumed = looked.default_policy.then(|| args.policy.trim());
        store.set_cert_check(name, wait.until, assumed, looked.seen).await?;
        return Ok(Outcome::Waiting);
    }
    let issued = issuer.request_locked(name, &due.lock, args.timeout, reporter, Some(audit)).await;
    // Placing its order ended the hold; a request that placed none gives its place back.
    store.release_hold(name).await?;
    let issued = issued?;
    reporter.finish(
        name,
        &format!(
            "renewed: serial {}, expires {}",
            issued.serial_hex,
            rfc3339(issued.not_after / 1000)
        ),
    );
    Ok(Outcome::Renewed)
}

/// The rate limits of the CAs the accounts order from. Admission is decided in the store,
/// in one transaction with the orders every process sharing it placed and the places the
/// renewals it admitted hold: hubs sharing a database stay within each CA's limits
/// together.
struct Budgets {
    by_directory: HashMap<String, RateLimits>,
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
                by_directory.insert(dir.clone(), limits);
            }
        }
        Ok(Budgets { by_directory, directory_of })
    }

    /// Admits the order of due certificate `name` now, its place held in the budget for
    /// `hold` (until its order is placed), or says how long it waits.
    async fn admit(
        &self,
        store: &Store,
        name: &str,
        due: &Looked,
        hold: Duration,
    ) -> anyhow::Result<Result<(), Wait>> {
        let Some(directory) = self.directory_of.get(&due.account) else {
            return Ok(Ok(()));
        };
        let Some(limits) = self.by_directory.get(directory).copied() else {
            return Ok(Ok(()));
        };
        let now = crate::clock::unix_ms(SystemTime::now());
        let since = now - limits.longest_window_secs() as i64 * 1000;
        let held = certhub_store::BudgetHold {
            cert_name: name,
            account_name: &due.account,
            names: &due.names,
            ari_renewal: due.ari_renewal,
            until: now + hold.as_millis() as i64,
        };
        let decided = store.admit_order(since, &held, |placed| {
            let mut budget = Budget::new(limits);
            let same_ca =
                placed.iter().filter(|o| self.directory_of.get(&o.account_name) == Some(directory));
            for o in same_ca {
                budget.record(o.at, &o.account_name, &o.names, o.ari_renewal);
            }
            let now = crate::clock::unix_ms(SystemTime::now());
            budget.admit(now, &due.account, &due.names, due.ari_renewal)
        });
        Ok(decided.await?)
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
    let jobs = usize::from(args.jobs);
    // First a look at each: not due (done), or due. A due certificate's lock is let go
    // until its turn to be ordered, so that hubs sharing the database share the work.
    let looked: Vec<(String, anyhow::Result<FirstLook>)> = futures::stream::iter(names.iter())
        .map(|name| {
            let (reporter, args) = (&*reporter, &args);
            async move {
                let step = look(store, issuer, reporter, args, policy, name).await;
                let step = match step {
                    Ok(Step::Due(DueNow { lock, looked: Some(looked) })) => {
                        drop(lock);
                        Ok(FirstLook::Later(looked))
                    }
                    Ok(Step::Due(due)) => Ok(FirstLook::Locked(due)),
                    Ok(Step::Done(outcome)) => Ok(FirstLook::Done(outcome)),
                    Err(e) => Err(e),
                };
                (name.clone(), step)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    let mut results: Vec<(String, anyhow::Result<Outcome>)> = Vec::new();
    let mut named = Vec::new();
    let mut due_later = Vec::new();
    for (name, step) in looked {
        match step {
            Ok(FirstLook::Done(outcome)) => results.push((name, Ok(outcome))),
            Ok(FirstLook::Locked(due)) => named.push((name, due)),
            Ok(FirstLook::Later(looked)) => due_later.push((looked.expires, name)),
            Err(e) => {
                reporter.finish(&name, &format!("failed: {e:#}"));
                results.push((name, Err(e)));
            }
        }
    }
    // Then the orders: certificates named to renew now (kept out of the CAs' budgets: a
    // person asked for them, and the CA has the last word), and due ones, the soonest to
    // expire first, each admitted under its CA's rate limits when its turn comes.
    let budgets = Arc::new(Budgets::load(store, &args.rate_limits).await?);
    let shared = Arc::new(args.clone());
    due_later.sort();
    let timeout = args.timeout;
    let named = named.into_iter().map(|(name, due)| {
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
        .boxed()
    });
    let turns = Arc::new(Turns(tokio::sync::watch::Sender::new(0)));
    let due = due_later.into_iter().enumerate().map(|(i, (_, name))| {
        let (store, issuer, reporter) = (store.clone(), issuer.clone(), reporter.clone());
        let (budgets, args) = (budgets.clone(), shared.clone());
        let audit = actor.entry("cert.renew", &name);
        let turn = Turn { turns: turns.clone(), i };
        async move {
            let (args, budgets) = (&*args, &*budgets);
            let r =
                order_due(&store, &issuer, budgets, &*reporter, args, policy, &name, &audit, turn)
                    .await;
            if let Err(e) = &r {
                reporter.finish(&name, &format!("failed: {e:#}"));
            }
            (name, r)
        }
        .boxed()
    });
    let renewed: Vec<(String, anyhow::Result<Outcome>)> =
        crate::cert::at_most(jobs, named.chain(due)).await;
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
            Err(e) => {
                summary.interrupted += usize::from(crate::error::store_unavailable(&e));
                summary.failed.push((name, Error::from(e)));
            }
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
