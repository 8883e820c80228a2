//! certhub deployment: runs a managed certificate's [`DeployTask`]s after a request.
//!
//! A [`Run`] goes through the tasks in order with the facts of one request ([`Facts`]): tasks
//! whose trigger fits the outcome run, each under its timeout; once a task fails, the request
//! counts as failed for the tasks after it (so `on-failure` tasks see it, and later
//! `on-success` tasks are skipped and stay pending for the next run).
//!
//! Files are written atomically with their owner and mode ([`files`]); a failed task leaves
//! the previous files in place.
//!
//! Commands run as `/bin/sh -c RUN` in their own process group (killed whole on timeout),
//! with certhub's environment less its own `CERTHUB_*` settings, and these:
//!
//! | variable | value |
//! |---|---|
//! | `CERTHUB_CERT_NAME` | the managed certificate's name |
//! | `CERTHUB_EVENT` | `success` or `failure` |
//! | `CERTHUB_ERROR` | why the request failed (on failure) |
//! | `CERTHUB_SERIAL` | serial number, hex |
//! | `CERTHUB_NOT_BEFORE`, `CERTHUB_NOT_AFTER` | validity, RFC 3339 UTC |
//! | `CERTHUB_DOMAINS` | the identifiers, comma-separated |
//! | `CERTHUB_CERT_PATH`, `CERTHUB_CHAIN_PATH`, `CERTHUB_FULLCHAIN_PATH`, `CERTHUB_KEY_PATH` | the PEM files written by the last `files` task before it, or else by certhub into a private temporary directory that is removed after the command |
//! | `CERTHUB_PKCS12_PATH` | the file written by the last `pkcs12` task before it, if any |
//!
//! Webhooks POST JSON signed like every certhub event (`X-Certhub-Signature:
//! sha256=HEX` of the body under the shared secret, `X-Certhub-Timestamp`):
//!
//! ```json
//! { "event_type": "cert_deployment", "event_id": "…", "timestamp": 1700000000000,
//!   "cert_name": "web", "outcome": "success", "error": null,
//!   "serial": "…", "not_before": "…", "not_after": "…", "domains": ["example.com"],
//!   "fullchain_pem": "-----BEGIN CERTIFICATE-----…" }
//! ```

mod command;
pub mod files;
pub mod notify;
pub mod pkcs12;
mod ssh;
mod webhook;
pub mod webserver;

use std::collections::BTreeMap;
use std::time::Duration;

use certhub_core::deploy::PemRole;
use certhub_core::{DeployAction, DeployTask, rfc3339};
use zeroize::Zeroizing;

use crate::files::{NewFile, Ownership};

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The owner or group does not exist.
    #[error("{0}")]
    Owner(String),
    /// The task needs an issued certificate (or its key) and there is none.
    #[error("{0}")]
    NothingToDeploy(String),
    /// PKCS#12 encoding failed.
    #[error("{0}")]
    Pkcs12(String),
    /// The command exited unsuccessfully. (The command line is left out: it may hold a
    /// secret, and it is stored encrypted with the task.)
    #[error("the command {status}{}", if output.is_empty() { String::new() } else { format!(": {output}") })]
    CommandFailed {
        /// How it ended, e.g. "exited with status 1".
        status: String,
        /// The end of what it printed.
        output: String,
    },
    /// The webhook failed or answered with an error.
    #[error("{0}")]
    Webhook(String),
    /// The task did not finish in time.
    #[error("did not finish within {}s", .0.as_secs())]
    Timeout(Duration),
    /// Another machine could not be reached, refused its host key or the sign-in, or an
    /// SFTP operation failed.
    #[error("{0}")]
    Remote(String),
    /// A web server's site could not be found, or its configuration failed its test or
    /// reload (and was put back).
    #[error("{0}")]
    WebServer(String),
}

/// The issued certificate being deployed.
pub struct Issued {
    /// Serial number, hex.
    pub serial_hex: String,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    /// The identifiers it is valid for.
    pub domains: Vec<String>,
    /// The chain, leaf first, DER.
    pub chain_der: Vec<Vec<u8>>,
    /// The private key (PKCS#8 DER); empty when the key stayed with the user (their CSR).
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

/// What the tasks are told about the request.
pub struct Facts {
    /// The managed certificate's name.
    pub cert_name: String,
    /// The certificate to deploy: the one just issued, or the latest one.
    pub issued: Option<Issued>,
    /// Why the request failed, if it did.
    pub error: Option<String>,
}

/// How one task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and succeeded; the text says what it did.
    Done(String),
    /// Dry run: what it would do.
    DryRun(String),
    /// It failed; the text says why.
    Failed(String),
    /// Its trigger does not fit the outcome.
    NotTriggered,
    /// An earlier task failed, so this `on-success` task waits for the next run.
    Skipped,
}

/// A run of a certificate's tasks.
pub struct Run<'a> {
    facts: &'a Facts,
    dry_run: bool,
    failed: Option<String>,
    paths: BTreeMap<&'static str, std::path::PathBuf>,
    http: reqwest::Client,
}

impl<'a> Run<'a> {
    /// A run with `facts`; a dry run does nothing but check and describe.
    pub fn new(facts: &'a Facts, dry_run: bool) -> Self {
        Self {
            facts,
            dry_run,
            failed: facts.error.clone(),
            paths: BTreeMap::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }

    /// Has the request or a task of this run failed so far?
    pub fn failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Notes a task that already delivered this certificate and is not run again: the files
    /// it wrote are where later commands of this run find them.
    pub fn already_delivered(&mut self, task: &DeployTask) {
        match &task.action {
            DeployAction::Files(f) => {
                for (role, path, _) in f.files() {
                    self.paths.insert(env_name(role), path);
                }
            }
            DeployAction::Pkcs12(p) => {
                self.paths.insert("CERTHUB_PKCS12_PATH", p.file.clone());
            }
            DeployAction::Command { .. }
            | DeployAction::Webhook { .. }
            | DeployAction::Sftp { .. }
            | DeployAction::Ssh { .. }
            | DeployAction::Nginx(_)
            | DeployAction::Apache(_) => {}
        }
    }

    /// How `task` is passed over, if its trigger does not fit what happened so far.
    fn passed_over(&self, task: &DeployTask) -> Option<Outcome> {
        if task.trigger.fires(self.failed.is_none()) {
            return None;
        }
        Some(if self.facts.error.is_none() && task.trigger.fires(true) {
            Outcome::Skipped
        } else {
            Outcome::NotTriggered
        })
    }

    /// Counts `task` as failed for `why` without running it, if its trigger fits what
    /// happened so far (its credential could not be read, say).
    pub fn refuse(&mut self, task: &DeployTask, why: String) -> Outcome {
        if let Some(passed) = self.passed_over(task) {
            return passed;
        }
        if self.failed.is_none() {
            self.failed = Some(format!("deployment task {} failed: {why}", task.name));
        }
        Outcome::Failed(why)
    }

    /// Runs `task` if its trigger fits what happened so far.
    pub async fn task(&mut self, task: &DeployTask) -> Outcome {
        if let Some(passed) = self.passed_over(task) {
            return passed;
        }
        let result = if self.dry_run {
            self.check(&task.action).map(|()| format!("would {}", task.action.describe()))
        } else {
            match tokio::time::timeout(task.timeout, self.act(&task.action, task.timeout)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout(task.timeout)),
            }
        };
        match result {
            Ok(done) if self.dry_run => Outcome::DryRun(done),
            Ok(done) => Outcome::Done(done),
            Err(e) => {
                let why = e.to_string();
                if self.failed.is_none() {
                    self.failed = Some(format!("deployment task {} failed: {why}", task.name));
                }
                Outcome::Failed(why)
            }
        }
    }

    fn issued(&self) -> Result<&'a Issued, Error> {
        self.facts.issued.as_ref().ok_or_else(|| {
            Error::NothingToDeploy(format!(
                "certificate {} has not been issued yet",
                self.facts.cert_name
            ))
        })
    }

    fn key(&self) -> Result<&'a [u8], Error> {
        let issued = self.issued()?;
        if issued.key_pkcs8.is_empty() {
            return Err(Error::NothingToDeploy(
                "certhub does not hold this certificate's key (it was ordered from your CSR)"
                    .into(),
            ));
        }
        Ok(&issued.key_pkcs8)
    }

    /// What a dry run can check without side effects.
    fn check(&self, action: &DeployAction) -> Result<(), Error> {
        match action {
            DeployAction::Files(f) => {
                self.issued()?;
                if f.key.is_some() {
                    self.key()?;
                }
                Ownership::resolve(f.owner.as_deref(), f.group.as_deref()).map(drop)
            }
            DeployAction::Pkcs12(p) => {
                self.key()?;
                Ownership::resolve(p.owner.as_deref(), p.group.as_deref()).map(drop)
            }
            DeployAction::Sftp { target, files } => {
                self.issued()?;
                if files.key.is_some() {
                    self.key()?;
                }
                ssh::private_key(target).map(drop)
            }
            DeployAction::Ssh { target, .. } => ssh::private_key(target).map(drop),
            DeployAction::Nginx(site) | DeployAction::Apache(site) => {
                self.key()?;
                let dir = self.site_dir(site);
                webserver::check(server_of(action), site, &dir).map(drop)
            }
            DeployAction::Command { .. } | DeployAction::Webhook { .. } => Ok(()),
        }
    }

    /// Where a web server task writes the files.
    fn site_dir(&self, site: &certhub_core::deploy::WebServerSite) -> std::path::PathBuf {
        site.dir
            .clone()
            .unwrap_or_else(|| std::path::Path::new("/etc/ssl/certhub").join(&self.facts.cert_name))
    }

    async fn act(&mut self, action: &DeployAction, timeout: Duration) -> Result<String, Error> {
        match action {
            DeployAction::Files(f) => {
                let owner = Ownership::resolve(f.owner.as_deref(), f.group.as_deref())?;
                let pems = self.pems(f.key.is_some())?;
                let files: Vec<NewFile<'_>> = f
                    .files()
                    .into_iter()
                    .map(|(role, path, mode)| NewFile { data: pems.of(role), path, mode })
                    .collect();
                files::write_all(&files, owner)?;
                for (role, path, _) in f.files() {
                    self.paths.insert(env_name(role), path);
                }
                Ok(format!("wrote {}", f.dir.display()))
            }
            DeployAction::Pkcs12(p) => {
                let owner = Ownership::resolve(p.owner.as_deref(), p.group.as_deref())?;
                let der = pkcs12::build(
                    &self.facts.cert_name,
                    self.key()?,
                    &self.issued()?.chain_der,
                    p.password.expose(),
                    p.legacy,
                )?;
                files::write_atomic(&p.file, &der, p.mode, owner)?;
                self.paths.insert("CERTHUB_PKCS12_PATH", p.file.clone());
                Ok(format!("wrote {}", p.file.display()))
            }
            DeployAction::Command { run } => {
                let mut env = self.env();
                // Without an earlier files task, the command gets the PEM files in a private
                // directory that lives as long as the command.
                let mut _scratch = None;
                let has_key = self.facts.issued.as_ref().is_some_and(|i| !i.key_pkcs8.is_empty());
                if self.facts.issued.is_some() && !self.paths.contains_key("CERTHUB_CERT_PATH") {
                    let dir = tempfile::Builder::new().prefix("certhub-deploy").tempdir().map_err(
                        |source| Error::Io {
                            what: "cannot create a temporary directory".into(),
                            source,
                        },
                    )?;
                    let pems = self.pems(has_key)?;
                    let mut files = Vec::new();
                    for role in [PemRole::Cert, PemRole::Chain, PemRole::Fullchain, PemRole::Key] {
                        if role == PemRole::Key && !has_key {
                            continue;
                        }
                        let path = dir.path().join(format!("{}.pem", role_name(role)));
                        env.push((env_name(role).to_string(), path.display().to_string()));
                        let mode = if role == PemRole::Key { 0o600 } else { 0o644 };
                        files.push(NewFile { path, data: pems.of(role), mode });
                    }
                    files::write_all(&files, Ownership::default())?;
                    _scratch = Some(dir);
                }
                command::run(run, &env, timeout).await
            }
            DeployAction::Webhook { url, secret } => {
                webhook::post(&self.http, url, secret, self.facts, self.failed.as_deref(), timeout)
                    .await
            }
            DeployAction::Sftp { target, files } => {
                let pems = self.pems(files.key.is_some())?;
                let remote: Vec<ssh::RemoteFile<'_>> = files
                    .files()
                    .into_iter()
                    .map(|(role, path, mode)| ssh::RemoteFile {
                        path: path.display().to_string(),
                        data: pems.of(role),
                        mode,
                    })
                    .collect();
                let dir = files.dir.display().to_string();
                ssh::upload(target, &dir, &remote, timeout).await?;
                Ok(format!("copied the files to {dir} on {}", target.address()))
            }
            DeployAction::Ssh { target, command } => ssh::run(target, command, timeout).await,
            DeployAction::Nginx(site) | DeployAction::Apache(site) => {
                let pems = self.pems(true)?;
                let dir = self.site_dir(site);
                let serial = &self.issued()?.serial_hex;
                let files =
                    [pems.of(PemRole::Fullchain), pems.of(PemRole::Chain), pems.of(PemRole::Key)];
                let env = self.env();
                webserver::deploy(server_of(action), site, &dir, serial, files, &env, timeout).await
            }
        }
    }

    /// The environment of a command.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("CERTHUB_CERT_NAME".to_string(), self.facts.cert_name.clone()),
            (
                "CERTHUB_EVENT".to_string(),
                if self.failed.is_some() { "failure" } else { "success" }.to_string(),
            ),
        ];
        if let Some(e) = &self.failed {
            env.push(("CERTHUB_ERROR".into(), e.clone()));
        }
        if let Some(i) = &self.facts.issued {
            env.push(("CERTHUB_SERIAL".into(), i.serial_hex.clone()));
            env.push(("CERTHUB_NOT_BEFORE".into(), rfc3339(i.not_before)));
            env.push(("CERTHUB_NOT_AFTER".into(), rfc3339(i.not_after)));
            env.push(("CERTHUB_DOMAINS".into(), i.domains.join(",")));
        }
        for (k, v) in &self.paths {
            env.push((k.to_string(), v.display().to_string()));
        }
        env
    }

    fn pems(&self, with_key: bool) -> Result<Pems, Error> {
        let issued = self.issued()?;
        let to_pem = |der: &[u8]| certhub_core::pem_block("CERTIFICATE", der);
        let leaf = issued.chain_der.first().map(|d| to_pem(d)).unwrap_or_default();
        let chain: String = issued.chain_der.iter().skip(1).map(|d| to_pem(d)).collect();
        let key = if with_key {
            Zeroizing::new(certhub_core::pem_block("PRIVATE KEY", self.key()?))
        } else {
            Zeroizing::new(String::new())
        };
        Ok(Pems { fullchain: format!("{leaf}{chain}"), leaf, chain, key })
    }
}

struct Pems {
    leaf: String,
    chain: String,
    fullchain: String,
    key: Zeroizing<String>,
}

impl Pems {
    fn of(&self, role: PemRole) -> &[u8] {
        match role {
            PemRole::Cert => self.leaf.as_bytes(),
            PemRole::Chain => self.chain.as_bytes(),
            PemRole::Fullchain => self.fullchain.as_bytes(),
            PemRole::Key => self.key.as_bytes(),
        }
    }
}

fn server_of(action: &DeployAction) -> certhub_core::discover::WebServer {
    match action {
        DeployAction::Apache(_) => certhub_core::discover::WebServer::Apache,
        _ => certhub_core::discover::WebServer::Nginx,
    }
}

fn env_name(role: PemRole) -> &'static str {
    match role {
        PemRole::Cert => "CERTHUB_CERT_PATH",
        PemRole::Chain => "CERTHUB_CHAIN_PATH",
        PemRole::Fullchain => "CERTHUB_FULLCHAIN_PATH",
        PemRole::Key => "CERTHUB_KEY_PATH",
    }
}

fn role_name(role: PemRole) -> &'static str {
    match role {
        PemRole::Cert => "cert",
        PemRole::Chain => "chain",
        PemRole::Fullchain => "fullchain",
        PemRole::Key => "privkey",
    }
}
