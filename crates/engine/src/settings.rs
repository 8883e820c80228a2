//! The hub's settings. `certhub serve`'s flags give their starting values; a change made
//! through the API or the Settings page is saved in the store and wins over the flag, also
//! at the next start. The renewal service reads them again before each check, so hubs
//! sharing a database follow each other's changes, and is woken at once by a local change.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Kind};

/// The settings the hub runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// The renewal policy of certificates without their own (75%, 30d).
    #[serde(rename = "renewal_policy")]
    pub policy: String,
    /// How often the renewal service looks for due work, in seconds.
    #[serde(rename = "check_interval_seconds")]
    pub check_interval_secs: u64,
    /// Days before expiry that a certificate nothing renews is told about.
    pub expiry_warning_days: u32,
    /// How many certificates the renewal service renews at once.
    pub renewal_workers: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: "75%".into(),
            check_interval_secs: 300,
            expiry_warning_days: 30,
            renewal_workers: 4,
        }
    }
}

impl Settings {
    /// How often the renewal service looks for due work.
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs(self.check_interval_secs)
    }

    /// Applies `changes` after checking each; what changed, in words. An invalid value
    /// fails naming its field and leaves `self` as it was.
    pub fn apply(&mut self, changes: &SettingsChanges) -> Result<Vec<String>, Error> {
        let mut next = self.clone();
        let mut said = Vec::new();
        if let Some(p) = &changes.renewal_policy {
            let p = p.trim();
            crate::cert::parse_policy(p)
                .map_err(|e| Error::invalid("renewal_policy", format!("renewal_policy {e}")))?;
            next.policy = p.to_string();
            said.push(format!("renewal policy {p}"));
        }
        if let Some(secs) = changes.check_interval_seconds {
            next.check_interval_secs = within("check_interval_seconds", secs, 1..=86_400)?;
            said.push(format!("check interval {secs} s"));
        }
        if let Some(days) = changes.expiry_warning_days {
            next.expiry_warning_days = within("expiry_warning_days", days, 1..=3650)?;
            said.push(format!("expiry warning {days} days"));
        }
        if let Some(n) = changes.renewal_workers {
            next.renewal_workers = within("renewal_workers", n, 1..=256)?;
            said.push(format!("{n} renewal workers"));
        }
        if changes.is_empty() {
            return Err(Error::new(
                Kind::Invalid,
                "nothing to change: give renewal_policy, check_interval_seconds, \
                 expiry_warning_days or renewal_workers",
            ));
        }
        *self = next;
        Ok(said)
    }
}

/// `value` when `range` holds it, else a problem naming `field` and the range.
fn within<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, Error> {
    if range.contains(&value) {
        return Ok(value);
    }
    let (low, high) = range.into_inner();
    Err(Error::invalid(field, format!("{field} must be from {low} to {high}, not {value}")))
}

/// Changes to the settings (`PATCH /api/v1/settings`); what is left out stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChanges {
    /// The renewal policy of certificates without their own (75%, 30d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_policy: Option<String>,
    /// How often to look for due work, 1 to 86400 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_interval_seconds: Option<u64>,
    /// Days before expiry to warn about certificates nothing renews, 1 to 3650.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warning_days: Option<u32>,
    /// Certificates renewed at once, 1 to 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_workers: Option<u16>,
}

impl SettingsChanges {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.renewal_policy.is_none()
            && self.check_interval_seconds.is_none()
            && self.expiry_warning_days.is_none()
            && self.renewal_workers.is_none()
    }

    /// `self` with `later` laid over it.
    fn merged(mut self, later: SettingsChanges) -> Self {
        self.renewal_policy = later.renewal_policy.or(self.renewal_policy);
        self.check_interval_seconds = later.check_interval_seconds.or(self.check_interval_seconds);
        self.expiry_warning_days = later.expiry_warning_days.or(self.expiry_warning_days);
        self.renewal_workers = later.renewal_workers.or(self.renewal_workers);
        self
    }
}

/// The settings in force, shared by the API, the pages and the hub's background services.
#[derive(Clone)]
pub struct SharedSettings(Arc<Inner>);

struct Inner {
    /// What the flags say.
    defaults: Settings,
    current: tokio::sync::watch::Sender<Settings>,
}

impl SharedSettings {
    /// Settings from the flags alone.
    pub fn new(defaults: Settings) -> Self {
        let (current, _) = tokio::sync::watch::channel(defaults.clone());
        Self(Arc::new(Inner { defaults, current }))
    }

    /// Settings from the flags, with the changes saved in `store` laid over them.
    pub async fn load(
        store: &certhub_store::Store,
        defaults: Settings,
    ) -> Result<Self, certhub_store::Error> {
        let shared = Self::new(defaults);
        shared.reload(store).await?;
        Ok(shared)
    }

    /// The settings now.
    pub fn get(&self) -> Settings {
        self.0.current.borrow().clone()
    }

    /// Resolves with each change made through this hub.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Settings> {
        self.0.current.subscribe()
    }

    /// Reads the saved changes again (another hub sharing the database may have made some).
    pub async fn reload(&self, store: &certhub_store::Store) -> Result<(), certhub_store::Error> {
        self.put(&saved(store).await?);
        Ok(())
    }

    /// Puts the flags with `saved` laid over them in force.
    fn put(&self, saved: &SettingsChanges) {
        let mut settings = self.0.defaults.clone();
        if !saved.is_empty()
            && let Err(p) = settings.apply(saved)
        {
            tracing::warn!(error = %p, "the saved settings are invalid; using the flags");
            settings = self.0.defaults.clone();
        }
        self.0.current.send_if_modified(|s| {
            let changed = *s != settings;
            *s = settings;
            changed
        });
    }

    /// Checks and saves `changes` with `audit`'s entry (what changed as its detail), and puts
    /// them in force; what changed, in words.
    pub async fn change(
        &self,
        store: &certhub_store::Store,
        changes: SettingsChanges,
        audit: certhub_store::AuditEntry,
    ) -> Result<Vec<String>, Error> {
        let mut settings = self.get();
        let said = settings.apply(&changes)?;
        let saved = saved(store).await.map_err(anyhow::Error::from)?.merged(changes);
        let json = serde_json::to_value(&saved).map_err(anyhow::Error::from)?;
        store
            .set_hub_settings(&json, Some(&audit.with_detail(said.join(", "))))
            .await
            .map_err(anyhow::Error::from)?;
        self.put(&saved);
        Ok(said)
    }
}

/// The changes saved in `store` (none when the saved document is unreadable).
async fn saved(store: &certhub_store::Store) -> Result<SettingsChanges, certhub_store::Error> {
    Ok(match store.hub_settings().await? {
        None => SettingsChanges::default(),
        Some(v) => serde_json::from_value(v).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the saved settings are unreadable; using the flags");
            SettingsChanges::default()
        }),
    })
}
