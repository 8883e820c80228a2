//! The hub's scheduler: renews what is due, like `certhub renew --due`, over the hub's one
//! engine. It looks at start (work a restart interrupted), then sleeps until the earliest
//! time a certificate recorded for its next look, or until a change through this hub or of
//! the settings wakes it; the check interval bounds the sleep (another hub or a cron job
//! sharing the database changes certificates unseen). Certificates are locked while
//! requested, so it never orders one twice, even beside a cron job or another hub; hubs
//! sharing a PostgreSQL database each take the due certificates no other hub holds, so the
//! work spreads over them, and one that another hub held is looked at again after
//! [`MIN_SLEEP`] (that hub may have died, its locks released with its connections).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::actor::Actor;
use crate::engine::{Engine, REQUEST_TIMEOUT};
use crate::progress::{LogProgress, Progress};
use crate::renew::RenewRun;

/// A sleep shorter than this is taken anyway: check times this close together are looked at
/// together, so a fleet whose times are spread over the day wakes the scheduler at most
/// this often.
const MIN_SLEEP: Duration = Duration::from_secs(10);

/// Runs the scheduler until the future is dropped. Each renewal is audited as done by the
/// hub and keeps within each CA's `rate_limits` (`--rate-limit`); `after_each` runs after
/// each look (the hub removes ended sessions and presents its renewed certificate).
pub async fn run<F, Fut>(engine: Arc<Engine>, rate_limits: Vec<String>, mut after_each: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let store = engine.store().clone();
    let settings = engine.settings().clone();
    let mut changed = settings.subscribe();
    let progress: Arc<dyn Progress> = Arc::new(LogProgress);
    loop {
        // Another hub sharing the database may have changed them.
        if let Err(e) = settings.reload(&store).await {
            tracing::warn!(error = %e, "reading the settings failed");
        }
        changed.borrow_and_update();
        let now = settings.get();
        let started = crate::clock::unix_ms(SystemTime::now());
        let run = RenewRun {
            names: Vec::new(),
            due: true,
            policy: now.policy.clone(),
            jobs: now.renewal_workers,
            timeout: REQUEST_TIMEOUT,
            rate_limits: rate_limits.clone(),
        };
        let mut again_soon = false;
        match engine.renew(&run, &Actor::hub(), progress.clone()).await {
            Ok(summary) if !summary.failed.is_empty() => {
                again_soon = summary.busy > 0 || summary.interrupted > 0;
                let names: Vec<&str> = summary.failed.iter().map(|(n, _)| n.as_str()).collect();
                tracing::warn!(failed = names.join(", "), "{}", summary.line());
            }
            Ok(summary) if summary.looked > 0 => {
                again_soon = summary.busy > 0;
                tracing::info!("{}", summary.line());
            }
            Ok(_) => tracing::debug!("nothing is due"),
            Err(e) => {
                // The database or the network failed: looked at again soon, not after a
                // whole check interval.
                again_soon = true;
                tracing::warn!(error = %e, "renewal run failed; trying again in {} s", MIN_SLEEP.as_secs());
            }
        }
        after_each().await;
        // Certificates another hub held may be left to this one (that hub died), and a run
        // or a renewal the database cut short is tried again: both soon. Otherwise the next
        // check time, or the next retry after a failure, whichever comes first.
        let sleep = match store.next_check_after(started).await {
            _ if again_soon => MIN_SLEEP,
            Ok(Some(at)) => {
                let wait = at.saturating_sub(crate::clock::unix_ms(SystemTime::now())).max(0);
                Duration::from_millis(wait as u64)
                    .clamp(MIN_SLEEP, now.check_interval().max(MIN_SLEEP))
            }
            Ok(None) => now.check_interval(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the next check time failed");
                MIN_SLEEP
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            _ = changed.changed() => {}
            () = engine.wake.notified() => {}
        }
    }
}
