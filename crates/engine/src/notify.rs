//! The hub's notifier: hands what happens to certificates (their history, whoever wrote it:
//! the hub, `certhub renew --due` from cron, another hub) to the notification channels, and
//! looks for certificates about to expire.
//!
//! The events table is the queue: a cursor in the store says how far the channels have been
//! served, so a restart resumes where it stopped. A renewal failure is told once per run of
//! failures, after [`FAILURES_BEFORE_NOTICE`] in a row (the retries before it are the retry
//! policy's business); an expiry once per issued certificate, when it enters the warning
//! window with nothing renewing it (see [`expiry_scan`]).

use std::time::{Duration, Instant};

use certhub_deploy::notify::{Notice, send};
use certhub_store::{EventKind, EventRecord, Store};

/// Failed requests in a row before a renewal failure is told.
pub const FAILURES_BEFORE_NOTICE: i64 = 3;
/// The lease the serving hub holds: spaces are not allowed in certificate names.
const LEASE: &str = "hub notifier";
/// How often the channels are served.
const POLL: Duration = Duration::from_secs(5);
/// Attempts per delivery, with a pause growing between them.
const ATTEMPTS: u32 = 3;

/// Serves the channels forever, checking every certificate's expiry every check interval.
pub async fn run(store: Store, settings: crate::settings::SharedSettings) {
    let http = match reqwest::Client::builder().build() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "notifications are off: no HTTP client");
            return;
        }
    };
    // The cursor is set before the first scan, whose events are news.
    if let Err(e) = store.notify_cursor().await {
        tracing::warn!(error = %e, "reading the notification cursor failed");
    }
    let mut scanned: Option<Instant> = None;
    // Hubs sharing a PostgreSQL database take turns: one holds the notifier's lease (a name
    // no certificate can have) and serves the channels; the others wait for it.
    let mut lease = None;
    loop {
        if lease.is_none() {
            lease = store.try_lease_cert(LEASE).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "taking the notifier's lease failed");
                None
            });
        }
        if lease.is_none() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let now = settings.get();
        if scanned.is_none_or(|t| t.elapsed() >= now.check_interval()) {
            match expiry_scan(&store, now.expiry_warning_days).await {
                Ok(()) => scanned = Some(Instant::now()),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "the expiry scan failed"),
            }
        }
        if let Err(e) = dispatch(&store, &http).await {
            tracing::warn!(error = %format!("{e:#}"), "sending notifications failed");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends every event after the cursor to the channels that want it, moving the cursor on.
pub async fn dispatch(store: &Store, http: &reqwest::Client) -> anyhow::Result<()> {
    let mut cursor = store.notify_cursor().await?;
    loop {
        let events = store.events_after(cursor, 100).await?;
        if events.is_empty() {
            return Ok(());
        }
        let channels = store.channels().await?;
        for (id, event) in events {
            match event {
                Ok(event) => {
                    if let Some(notice) = notice_for(store, &event).await? {
                        for channel in channels.iter().filter(|c| c.wants(&notice.event)) {
                            deliver(http, channel, &notice).await;
                        }
                    }
                }
                // Passed by: one unreadable event must not silence every channel.
                Err(e) => tracing::warn!(event = id, error = %e, "an event was not notified"),
            }
            cursor = id;
            store.set_notify_cursor(cursor).await?;
        }
    }
}

async fn deliver(http: &reqwest::Client, channel: &certhub_store::ChannelRecord, notice: &Notice) {
    let mut pause = Duration::from_secs(2);
    for attempt in 1..=ATTEMPTS {
        match send(http, &channel.kind, &channel.config, notice).await {
            Ok(said) => {
                tracing::info!(channel = %channel.name, event = %notice.event, cert = %notice.cert_name, "{said}");
                return;
            }
            Err(why) if attempt == ATTEMPTS => {
                tracing::warn!(channel = %channel.name, event = %notice.event, cert = %notice.cert_name, "notification not delivered: {why}");
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause *= 5;
            }
        }
    }
}

/// What an event tells the channels, if anything.
async fn notice_for(store: &Store, e: &EventRecord) -> anyhow::Result<Option<Notice>> {
    let name = &e.cert_name;
    let notice = |event: &str, summary: String| Notice {
        event: event.into(),
        cert_name: name.clone(),
        summary,
        detail: e.detail.clone(),
    };
    Ok(match e.kind {
        EventKind::Issued => {
            let renewed = store.issued_for(name).await?.len() > 1;
            Some(if renewed {
                notice("renewed", format!("{name} was renewed"))
            } else {
                notice("issued", format!("{name} was issued"))
            })
        }
        EventKind::Failed => {
            let Some(cert) = store.cert(name).await? else { return Ok(None) };
            let stopped = cert.next_attempt_at == Some(certhub_store::RETRY_STOPPED);
            if cert.failures < FAILURES_BEFORE_NOTICE && !stopped {
                return Ok(None);
            }
            // One notice per run of failures (the run is named by the last success), and one
            // when retries stop, even after the first.
            let since = store.latest_issued(name).await?.map_or(0, |i| i.id);
            let key = if stopped { "renewal-stopped" } else { "renewal-failed" };
            if !store.first_notice(name, key, &format!("after {since}")).await? {
                return Ok(None);
            }
            let summary = if stopped {
                format!("{name} failed: {}", crate::issue::RETRIES_STOPPED)
            } else {
                format!(
                    "{name} failed {} times in a row; certhub keeps retrying on its schedule",
                    cert.failures
                )
            };
            Some(notice("renewal-failed", summary))
        }
        EventKind::Revoked => Some(notice("revoked", format!("{name} was revoked"))),
        EventKind::DeployFailed => {
            Some(notice("deploy-failed", format!("deploying {name} failed")))
        }
        EventKind::Expiring => Some(notice("expiring", format!("{name} expires soon"))),
        EventKind::Ordered
        | EventKind::Resumed
        | EventKind::Validated
        | EventKind::Fallback
        | EventKind::Deployed
        | EventKind::Imported => None,
    })
}

/// Records an `expiring` event for each certificate whose latest issued certificate expires
/// within `days`, once per issued certificate: an imported one (nothing renews it), or one
/// that ACME renews but whose last attempt failed (a renewal on schedule is no news).
pub async fn expiry_scan(store: &Store, days: u32) -> anyhow::Result<()> {
    const DAY_MS: i64 = 86_400_000;
    let now = crate::clock::unix_ms(std::time::SystemTime::now());
    let horizon = now + i64::from(days) * DAY_MS;
    for (name, serial, not_after) in store.expiring_unattended(horizon).await? {
        if !store.first_notice(&name, "expiring", &serial).await? {
            continue;
        }
        let left = (not_after - now).div_euclid(DAY_MS);
        let when = if not_after <= now {
            "has expired".to_string()
        } else {
            format!("expires in {left} days")
        };
        let detail =
            format!("serial {serial} {when}, at {}", crate::clock::rfc3339(not_after / 1000));
        store.record_event(&name, EventKind::Expiring, Some(&detail)).await?;
    }
    Ok(())
}
