//! The engine: what the CLI, the hub and its agents call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certhub_challenge::Solvers;
use certhub_challenge::dns::DnsCheckConfig;
use certhub_challenge::probe::ProbePorts;
use certhub_store::{AuditEntry, IssuedRecord, Store};

use crate::account::{self, NewAccount};
use crate::actor::Actor;
use crate::agent_ca::AgentCa;
use crate::cert::{self, Added, CertChanges, NewCertificate, Probe};
use crate::deploy;
use crate::error::Error;
use crate::import::{self, Bundle, Import, Imported};
use crate::issue::Issuer;
use crate::preview::{self, Preview};
use crate::progress::Progress;
use crate::renew::{self, RenewRun, RenewSummary};
use crate::settings::{Settings, SharedSettings};

/// What an engine needs besides its store.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The data directory: the certificates' lock files live under it.
    pub data_dir: PathBuf,
    /// How dns-01 answers are checked (resolver, authoritative port).
    pub dns: DnsCheckConfig,
    /// Where a test expects the CA to connect (80 and 443 but for a test CA).
    pub probe_ports: ProbePorts,
    /// How the CAs are talked to: request timeout, tries again (each account's CA bundle
    /// is its own).
    pub acme: certhub_acme::ClientConfig,
}

/// The engine: one store, one set of challenge responders (one listener per address, held
/// while an order uses it), one connection per CA account, and the settings, for the life
/// of a command or a hub.
pub struct Engine {
    store: Store,
    solvers: Arc<Solvers>,
    issuer: Arc<Issuer>,
    config: Config,
    settings: SharedSettings,
    /// Wakes the scheduler: something changed that may make a certificate due sooner.
    pub(crate) wake: Arc<tokio::sync::Notify>,
}

/// How long one certificate's request may take when the caller does not say.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);

impl Engine {
    /// An engine over `store`, with the settings' defaults.
    pub fn new(store: Store, config: Config) -> Self {
        Self::with_settings(store, config, SharedSettings::new(Settings::default()))
    }

    /// An engine over `store` with the hub's `settings`.
    pub fn with_settings(store: Store, config: Config, settings: SharedSettings) -> Self {
        // From here on, the CAs' requests are timed.
        crate::metrics::metrics();
        let solvers = Arc::new(Solvers::new(config.dns.clone()));
        let issuer = Arc::new(Issuer::new(store.clone(), solvers.clone(), &config));
        Self { store, solvers, issuer, config, settings, wake: Arc::default() }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The challenge responders of this process.
    pub fn solvers(&self) -> &Arc<Solvers> {
        &self.solvers
    }

    /// The settings in force.
    pub fn settings(&self) -> &SharedSettings {
        &self.settings
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// Says something changed that may make a certificate due sooner: the scheduler looks
    /// at once.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// Registers a CA account with `audit`'s entry; its URL at the CA.
    pub async fn add_account(&self, a: &NewAccount, audit: AuditEntry) -> Result<String, Error> {
        Ok(account::register(&self.store, a, audit, &self.config.acme).await?)
    }

    /// Adds a managed certificate with `audit`'s entry. Nothing is ordered yet: the person
    /// who added it previews, tests and requests it (the scheduler takes it up at its next
    /// regular look, not at once, so as not to race that request; so too after an import
    /// or a revocation).
    pub async fn add_certificate(
        &self,
        c: &NewCertificate,
        audit: AuditEntry,
    ) -> Result<Added, Error> {
        Ok(cert::create(&self.store, c, &audit).await?)
    }

    /// The hub's agent authority: the one kept in the store, or a new one for `hub` (named
    /// in its certificate), kept for every hub on the database (of two made at once, the
    /// first kept wins).
    pub async fn agent_ca(&self, hub: &str) -> Result<AgentCa, Error> {
        if let Some(kept) = self.store.agent_authority().await? {
            return AgentCa::load(&kept.cert_pem, &kept.key_pem);
        }
        let (made, key_pem) = AgentCa::generate(hub)?;
        let authority =
            certhub_store::AgentAuthority { cert_pem: made.cert_pem().to_string(), key_pem };
        let kept = self.store.keep_agent_authority(&authority).await?;
        AgentCa::load(&kept.cert_pem, &kept.key_pem)
    }

    /// The plan of requesting certificate `name` now, with nothing sent or written: the
    /// details and a `summary` (lines in plain language). `policy` is the renewal policy of
    /// certificates without their own (the hub's setting when `None`).
    pub async fn preview(&self, name: &str, policy: Option<&str>) -> Result<Preview, Error> {
        let policy = policy.map_or_else(|| self.settings.get().policy, str::to_string);
        let mut plan = preview::plan(&self.store, name, &policy).await?;
        plan.caa = self
            .caa_report(name)
            .await?
            .into_iter()
            .map(|p| preview::PlanCaa {
                identifier: p.identifier,
                permitted: p.works,
                says: p.detail,
            })
            .collect();
        plan.summary = preview::summary(&plan);
        Ok(plan)
    }

    /// Probes each identifier of certificate `name` as the CA would validate it, without
    /// ordering; `ports` where the CA connects (the configured ones when `None`).
    pub async fn test(&self, name: &str, ports: Option<ProbePorts>) -> Result<Vec<Probe>, Error> {
        let ports = ports.unwrap_or(self.config.probe_ports);
        let mut report =
            cert::probe_all(&self.solvers, self.config.dns.clone(), &self.store, name, ports)
                .await?;
        report.extend(self.caa_report(name).await?);
        Ok(report)
    }

    /// What CAA says of each identifier of certificate `name` for its account's CA and for
    /// its fallback account's.
    async fn caa_report(&self, name: &str) -> Result<Vec<Probe>, Error> {
        let c = crate::records::load(&self.store, name).await?;
        let Some(primary) = c.account_name.clone() else { return Ok(Vec::new()) };
        let assignment = certhub_core::identifier::assign_challenges(&c.identifiers, &c.challenges)
            .map_err(|v| crate::error::violations(name, &v))?;
        let kinds = crate::caa::kinds(&assignment, &c.challenges);
        let checker = self.solvers.dns_checker();
        let mut out = Vec::new();
        let accounts = std::iter::once(("account", primary))
            .chain(c.fallback_account.clone().map(|f| ("fallback account", f)));
        for (role, account_name) in accounts {
            let account = match self.issuer.account(&account_name).await {
                Ok(a) => a,
                Err(e) => {
                    for (id, kind) in &kinds {
                        out.push(Probe {
                            identifier: id.to_string(),
                            challenge: *kind,
                            works: false,
                            detail: format!(
                                "CAA for {role} {account_name} not checked: {}",
                                Error::of(&e).message
                            ),
                        });
                    }
                    continue;
                }
            };
            for (id, verdict) in crate::caa::check(&checker, &account, &kinds).await {
                let kind = kinds.iter().find(|(i, _)| *i == id).map(|(_, k)| *k);
                let (works, said) = match verdict {
                    Ok(v) => (!v.forbids(), v.describe()),
                    Err(e) => (true, format!("CAA not checked: {e}")),
                };
                out.push(Probe {
                    identifier: id.to_string(),
                    challenge: kind.unwrap_or(certhub_core::ChallengeKind::Dns01),
                    works,
                    detail: format!("{role} {account_name}: {said}"),
                });
            }
        }
        Ok(out)
    }

    /// Revokes the latest issued certificate of `name` (RFC 5280 `reason` by name, kebab
    /// form or code), signed by the account or by the certificate's own key; its serial.
    pub async fn revoke(
        &self,
        name: &str,
        reason: Option<&str>,
        with_cert_key: bool,
        audit: AuditEntry,
    ) -> Result<String, Error> {
        Ok(cert::revoke_latest(&self.store, name, reason, with_cert_key, audit, &self.config.acme)
            .await?)
    }

    /// Changes how certificate `name` is ordered and renewed; what changed, in words.
    pub async fn edit(
        &self,
        name: &str,
        changes: &CertChanges,
        audit: AuditEntry,
    ) -> Result<Vec<String>, Error> {
        let said = cert::apply_set(&self.store, name, changes, audit).await?;
        // A certificate never issued is its owner's to request first (as when it was added).
        if self.store.latest_issued(name).await.map_err(anyhow::Error::from)?.is_some() {
            self.changed();
        }
        Ok(said)
    }

    /// Adds deployment tasks (SPECs as for `certhub deploy add`) to certificate `name`.
    pub async fn add_deployments(
        &self,
        name: &str,
        specs: &[String],
        audit: AuditEntry,
    ) -> Result<Vec<certhub_core::DeployTask>, Error> {
        Ok(deploy::add_specs(&self.store, name, specs, audit).await?)
    }

    /// Imports a certificate obtained elsewhere and runs its deployment tasks. A failed
    /// deployment is an error that still carries what was imported.
    pub async fn import(
        &self,
        i: &Import,
        bundle: Bundle,
        audit: AuditEntry,
    ) -> Result<Imported, (Error, Option<Imported>)> {
        let r = import::import(&self.store, i, bundle, audit).await;
        r.map_err(|(e, imported)| (Error::from(e), imported))
    }

    /// Requests certificate `name` now, within `timeout`.
    pub async fn request(
        &self,
        name: &str,
        timeout: Duration,
        progress: &dyn Progress,
    ) -> Result<IssuedRecord, Error> {
        Ok(self.issuer.request(name, timeout, progress).await?)
    }

    /// Renews what `run` says; each renewal is audited as done by `actor`.
    pub async fn renew(
        &self,
        run: &RenewRun,
        actor: &Actor,
        progress: Arc<dyn Progress>,
    ) -> Result<RenewSummary, Error> {
        Ok(renew::renew(&self.store, &self.issuer, run, actor, progress).await?)
    }
}
