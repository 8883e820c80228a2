//! Issuance: order, validate, finalize, download, store. Every step is persisted before it
//! is acted on, so a run killed at any moment is resumed by the next one:
//!
//! 1. challenges a crashed run presented are cleaned up (they were recorded first);
//! 2. an open order is picked up where it stands, or a new one is placed (its row, with the
//!    certificate key and CSR, is written before newOrder, its URL right after);
//! 3. each pending authorization: record the challenge, present it, tell the CA, wait,
//!    clean up, forget the record;
//! 4. an order resumed from before it had a key gets one before finalize;
//! 5. the chain is downloaded, checked against the key and identifiers, and stored together
//!    with the order's completion in one transaction.
//!
//! Each history event is committed with the change it reports, so an order costs five
//! commits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use certhub_acme::{
    Account, Authorization, AuthorizationStatus, Error as AcmeError, Look, NewOrder, OrderStatus,
};
use certhub_challenge::Solvers;
use certhub_core::cert::{CertInfo, key_matches_cert};
use certhub_core::csr::{ParsedCsr, build_csr};
use certhub_core::identifier::assign_challenges;
use certhub_core::key::PrivateKey;
use certhub_core::{ChallengeSpec, Identifier, KeyType, PendingChallenge};
use certhub_store::OrderStatus as Stored;
use certhub_store::{
    AuditEntry, CertRecord, EventKind, IssuedRecord, OrderKey, OrderRecord, Store,
};
use serde_json::json;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::account;
use crate::deploy::{self, Scope};
use crate::error::{Kind, fail, invalid, violations};
use crate::progress::Progress;

/// What a certificate whose request the CA refused for good says of its retries.
pub const RETRIES_STOPPED: &str = "the CA refused for good, so automatic retries stop until \
     the certificate is changed or requested by hand";

/// Requests certificates; shares CA connections and challenge responders between them.
pub struct Issuer {
    store: Store,
    solvers: Arc<Solvers>,
    /// One connection per account, with the record's `updated_at` it was made from; a slot
    /// per account, so that a CA slow to answer holds up only its own account's requests.
    accounts: Mutex<HashMap<String, AccountSlot>>,
    locks: PathBuf,
    /// How the CAs are talked to.
    acme: certhub_acme::ClientConfig,
}

/// An account's connection, or its last failure to connect, with the `updated_at` of the
/// record it was made from.
type AccountSlot = Arc<Mutex<Option<(i64, Connection)>>>;

enum Connection {
    Open(Account),
    /// The CA could not be reached (a failure that may pass), at this time, saying this.
    Failed(std::time::Instant, String),
}

/// How long a CA that could not be reached is taken as down: the requests meanwhile fail at
/// once instead of each waiting out the client's retries.
const CONNECT_FAILURE_KEPT: Duration = Duration::from_secs(30);

/// While held, no other certhub process orders this certificate: an advisory file lock for
/// processes sharing the data directory and the store's lease for hubs sharing a PostgreSQL
/// database, both released when the process ends, however it ends.
pub struct CertLock {
    _file: std::fs::File,
    _lease: certhub_store::CertLease,
}

impl Issuer {
    pub fn new(store: Store, solvers: Arc<Solvers>, config: &crate::Config) -> Self {
        Self {
            store,
            solvers,
            accounts: Mutex::new(HashMap::new()),
            locks: config.data_dir.join("locks"),
            acme: config.acme.clone(),
        }
    }

    /// Takes the certificate's lock (a file lock in the data directory, and the store's
    /// lease, which spans machines on PostgreSQL), or `None` if another process holds it.
    pub async fn try_lock(&self, name: &str) -> anyhow::Result<Option<CertLock>> {
        std::fs::create_dir_all(&self.locks)
            .with_context(|| format!("cannot create {}", self.locks.display()))?;
        let path = self.locks.join(format!("{name}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(self
                .store
                .try_lease_cert(name)
                .await?
                .map(|lease| CertLock { _file: file, _lease: lease })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
            }
        }
    }

    /// The directory URL of the CA of `account` (the one an order went to), or else of the
    /// account `cert` orders with, as metrics label it; `unknown` (and said in the log) when
    /// it cannot be read.
    async fn ca_of(&self, cert: &CertRecord, account: Option<&str>) -> String {
        let account = match account {
            Some(a) => Ok(a),
            None => crate::records::ordering_account(cert).map(|(a, _)| a),
        };
        let account = match account {
            Ok(a) => self.store.account(a).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match account {
            Ok(Some(a)) => a.directory_url,
            Ok(None) => "unknown".into(),
            Err(e) => {
                tracing::warn!(cert = cert.name, error = %format!("{e:#}"), "reading the CA of an order for its metrics failed");
                "unknown".into()
            }
        }
    }

    /// The account `name`, connected (one connection per account, shared), and connected
    /// anew when its record changed since (a key rollover, a new registration, a
    /// deactivation, by this process or another), so a hub never signs with a stale key. A
    /// CA that could not be reached is not asked again for [`CONNECT_FAILURE_KEPT`].
    pub async fn account(&self, name: &str) -> anyhow::Result<Account> {
        let rec = account::load(&self.store, name).await?;
        let slot = self.accounts.lock().await.entry(name.to_string()).or_default().clone();
        // Held across the connect so concurrent requests share one connection per account.
        let mut slot = slot.lock().await;
        match &*slot {
            Some((seen, Connection::Open(acct))) if *seen == rec.updated_at => {
                return Ok(acct.clone());
            }
            Some((seen, Connection::Failed(at, why)))
                if *seen == rec.updated_at && at.elapsed() < CONNECT_FAILURE_KEPT =>
            {
                return Err(fail(
                    Kind::Transient,
                    format!(
                        "{why} ({} s ago; it is asked again {} s after that)",
                        at.elapsed().as_secs(),
                        CONNECT_FAILURE_KEPT.as_secs()
                    ),
                ));
            }
            _ => {}
        }
        match account::open(&rec, &self.acme).await {
            Ok(acct) => {
                *slot = Some((rec.updated_at, Connection::Open(acct.clone())));
                Ok(acct)
            }
            Err(e) => {
                let passing = e
                    .chain()
                    .any(|c| c.downcast_ref::<AcmeError>().is_some_and(AcmeError::is_retryable));
                *slot = passing.then(|| {
                    let why = format!("the CA of account {name} could not be reached: {e:#}");
                    (rec.updated_at, Connection::Failed(std::time::Instant::now(), why))
                });
                Err(e)
            }
        }
    }

    /// Requests the certificate `name` to completion or failure, within `timeout`.
    pub async fn request(
        &self,
        name: &str,
        timeout: Duration,
        progress: &dyn Progress,
    ) -> anyhow::Result<IssuedRecord> {
        let Some(lock) = self.try_lock(name).await? else {
            return Err(fail(
                Kind::Busy,
                format!("certificate {name} is being requested by another certhub process"),
            ));
        };
        self.request_locked(name, &lock, timeout, progress, None).await
    }

    /// Requests the certificate `name`, whose lock the caller holds. The issued certificate
    /// is stored with `audit`'s entry (its serial as the detail), when given.
    pub async fn request_locked(
        &self,
        name: &str,
        _lock: &CertLock,
        timeout: Duration,
        progress: &dyn Progress,
        audit: Option<&AuditEntry>,
    ) -> anyhow::Result<IssuedRecord> {
        let cert = crate::records::load(&self.store, name).await?;
        // Not a failed request: there is nothing to request with.
        crate::records::acme_account(&cert)?;
        let deadline = Instant::now() + timeout;
        use certhub_store::CertState::{Pending, Renewing};
        let state =
            if self.store.latest_issued(name).await?.is_some() { Renewing } else { Pending };
        if cert.state != state || cert.last_error.is_some() {
            self.store.set_cert_state(name, state, None).await?;
        }
        let ordered_with = std::sync::OnceLock::new();
        let run = self.run(&cert, &ordered_with, deadline, progress, audit);
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::Error::new(AcmeError::Timeout {
                what: format!("certificate {name}"),
                after: timeout,
            })),
        };
        let failure = result.as_ref().err().map(crate::error::Error::of);
        let ca = self.ca_of(&cert, ordered_with.get().map(String::as_str)).await;
        crate::metrics::metrics().order_ended(&ca, failure.as_ref());
        match &result {
            Ok(issued) => {
                // Completing the order cleared the failures in a row.
                let report = deploy::deploy(
                    &self.store,
                    name,
                    Some(issued),
                    None,
                    Scope::All,
                    false,
                    Some(progress),
                )
                .await?;
                if let Some(e) = report.failure() {
                    return Err(e.context(format!(
                        "certificate {name} was issued (serial {}), but deploying it failed; \
                         `certhub renew --due` retries the deployment",
                        issued.serial_hex
                    )));
                }
            }
            Err(e) => {
                let reason = format!("{e:#}");
                self.store
                    .set_cert_state(name, certhub_store::CertState::Failing, Some(&reason))
                    .await?;
                if crate::error::store_unavailable(e) {
                    // certhub's own failure, not the request's: not counted on the backoff
                    // table, and due again at once (when the database is back to record
                    // even this, the order can go on).
                    let detail = format!(
                        "{reason} (the database could not be reached; not counted as a failed \
                         request, renew --due retries at once)"
                    );
                    self.store.set_cert_retry(name, cert.failures, None).await?;
                    self.store.record_event(name, EventKind::Failed, Some(&detail)).await?;
                    return result;
                }
                // The retry policy: a backoff table, or longer when the CA asks for it. A
                // refusal for good is not retried (the same request would be refused again)
                // unless a fallback account, at another CA perhaps, has yet to try.
                let error = crate::error::Error::of(e);
                let (_, on_fallback) = crate::records::ordering_account(&cert)?;
                let mut failures = cert.failures + 1;
                let permanent = error.is_permanent_refusal();
                let to_fallback = permanent && !on_fallback && cert.fallback_account.is_some();
                if to_fallback {
                    failures = failures.max(cert.fallback_after);
                }
                let (next_ms, detail) = if permanent && !to_fallback {
                    (certhub_store::RETRY_STOPPED, format!("{reason} ({RETRIES_STOPPED})"))
                } else {
                    // A hand-over to the fallback account waits as a first failure would:
                    // the count is raised only so that the fallback orders next.
                    let in_a_row = if to_fallback { 1 } else { failures };
                    let next = std::time::SystemTime::now()
                        + certhub_core::renewal::retry_delay(in_a_row as u32, error.retry_after);
                    let next_ms = crate::clock::unix_ms(next);
                    let then = match &cert.fallback_account {
                        Some(f) if to_fallback => format!("; fallback account {f} orders next"),
                        _ => String::new(),
                    };
                    let detail = format!(
                        "{reason} (failure {failures} in a row; renew --due retries after {}{then})",
                        crate::clock::rfc3339(next_ms / 1000)
                    );
                    (next_ms, detail)
                };
                self.store.set_cert_retry(name, failures, Some(next_ms)).await?;
                self.store.record_event(name, EventKind::Failed, Some(&detail)).await?;
                // Tasks that report failures run; their own failure must not hide this one.
                let latest = self.store.latest_issued(name).await?;
                let ran = deploy::deploy(
                    &self.store,
                    name,
                    latest.as_ref(),
                    Some(reason),
                    Scope::All,
                    false,
                    Some(progress),
                )
                .await;
                if let Err(d) = ran {
                    tracing::warn!(cert = name, error = %d, "running the on-failure tasks failed");
                }
            }
        }
        result
    }

    /// Orders `cert`; `ordered_with` is given the account it orders with (the fallback, the
    /// primary when CAA refuses the fallback's CA), for the metrics.
    async fn run(
        &self,
        cert: &CertRecord,
        ordered_with: &std::sync::OnceLock<String>,
        deadline: Instant,
        progress: &dyn Progress,
        audit: Option<&AuditEntry>,
    ) -> anyhow::Result<IssuedRecord> {
        let name = cert.name.as_str();
        let ids: Vec<Identifier> = cert.identifiers.clone();
        let specs: Vec<ChallengeSpec> = cert.challenges.clone();
        let assignment = assign_challenges(&ids, &specs).map_err(|v| violations(name, &v))?;
        let (mut account_name, fallback) = crate::records::ordering_account(cert)?;
        if fallback {
            // A fallback is used only where CAA lets its CA issue.
            let candidate = self.account(account_name).await?;
            let refused = self.caa_refusal(&candidate, &specs, &assignment).await;
            let why = match refused {
                Some(why) => {
                    let primary = crate::records::acme_account(cert)?;
                    let said = format!(
                        "fallback account {account_name} not used: {why}; ordering with \
                         account {primary}"
                    );
                    account_name = primary;
                    said
                }
                None => format!(
                    "ordering with fallback account {account_name} after {} failed requests",
                    cert.failures
                ),
            };
            progress.step(name, &why);
            self.store.record_event(name, EventKind::Fallback, Some(&why)).await?;
        }

        let _ = ordered_with.set(account_name.to_string());
        let agent = self.challenge_agent(cert).await?;
        self.clean_leftovers(name, agent.as_ref()).await?;
        let account = self.account(account_name).await?;

        // The order: resume the open one, or place a new one.
        let (rec, url, mut order) = match self.resume_order(name, account_name, &account).await? {
            Some(v) => {
                progress.step(name, &format!("resuming order {}", v.1));
                self.store.record_event(name, EventKind::Resumed, Some(&v.1)).await?;
                v
            }
            None => {
                progress.step(name, "placing a new order");
                let replaces = match self.store.latest_issued(name).await? {
                    Some(prev) if account.client().directory().renewal_info.is_some() => {
                        self.replaceable(&prev, account.client().directory_url()).await?
                    }
                    _ => None,
                };
                if let Some(why) = self.caa_refusal(&account, &specs, &assignment).await {
                    return Err(fail(
                        Kind::CaRefused,
                        format!(
                            "{why} for account {account_name}; nothing was ordered. Change the \
                             CAA records, or order {name} from a CA they permit"
                        ),
                    ));
                }
                // The key and CSR are stored with the order, long before the CA sees the CSR.
                let (key, key_type, csr) = self.key_and_csr(cert, &ids).await?;
                let key = OrderKey { key_type: &key_type, key_pkcs8: &key, csr_der: &csr };
                let rec = self
                    .store
                    .create_order(name, account_name, replaces.as_deref(), Some(key))
                    .await?;
                let wire: Vec<certhub_acme::Identifier> = ids.iter().map(to_wire).collect();
                let req = NewOrder {
                    identifiers: &wire,
                    profile: cert.profile.as_deref(),
                    replaces: replaces.as_deref(),
                };
                let placed = account.new_order(&req).await;
                let (url, order) = match placed {
                    Ok(v) => v,
                    Err(e) => {
                        self.store
                            .set_order_status(rec.id, Stored::Abandoned, Some(&e.to_string()))
                            .await?;
                        return Err(anyhow::Error::new(e)
                            .context(format!("the CA refused the order for {name}")));
                    }
                };
                // With the `ordered` event.
                self.store.set_order_url(rec.id, &url).await?;
                tracing::info!(cert = name, order = %url, "order placed");
                if order.status == OrderStatus::Ready {
                    let reused = "every name was already validated for this account at the CA";
                    self.store.record_event(name, EventKind::Validated, Some(reused)).await?;
                }
                (rec, url, order)
            }
        };

        let outcome = self
            .complete(
                cert,
                &ids,
                &specs,
                &assignment,
                &account,
                &rec,
                &url,
                &mut order,
                agent.as_ref(),
                deadline,
                progress,
                audit,
            )
            .await;
        if let Err(e) = &outcome {
            // An order the CA gave up on can't be resumed; a transient failure can.
            let dead = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<AcmeError>(),
                    Some(AcmeError::OrderInvalid { .. } | AcmeError::ChallengeFailed { .. })
                )
            });
            if dead {
                self.store
                    .set_order_status(rec.id, Stored::Invalid, Some(&format!("{e:#}")))
                    .await?;
            }
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    async fn complete(
        &self,
        cert: &CertRecord,
        ids: &[Identifier],
        specs: &[ChallengeSpec],
        assignment: &[(Identifier, usize)],
        account: &Account,
        rec: &OrderRecord,
        url: &str,
        order: &mut certhub_acme::Order,
        agent: Option<&ChallengeAgent>,
        deadline: Instant,
        progress: &dyn Progress,
        audit: Option<&AuditEntry>,
    ) -> anyhow::Result<IssuedRecord> {
        let name = cert.name.as_str();
        if order.status == OrderStatus::Pending {
            let authorizations = order.authorizations.clone();
            let results = futures::future::join_all(authorizations.iter().map(|authz_url| {
                self.authorize(
                    name, account, rec.id, authz_url, specs, assignment, agent, deadline, progress,
                )
            }))
            .await;
            results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
            *order = account
                .wait_order(url, remaining(deadline), Look::Now, |s| s != OrderStatus::Pending)
                .await?;
        }

        // The key and CSR are stored before the CA sees the CSR: with a new order, or here
        // for an order resumed from before it had them.
        let (key_pkcs8, key_type, csr_der) = match (&rec.key_pkcs8, &rec.csr_der) {
            (Some(k), Some(csr)) => {
                (k.clone(), rec.key_type.clone().unwrap_or_default(), csr.clone())
            }
            (None, Some(csr)) => {
                (Zeroizing::new(Vec::new()), rec.key_type.clone().unwrap_or_default(), csr.clone())
            }
            _ => {
                let (key, key_type, csr) = self.key_and_csr(cert, ids).await?;
                self.store.set_order_key(rec.id, &key_type, &key, Some(&csr)).await?;
                (key, key_type, csr)
            }
        };
        if order.status == OrderStatus::Ready {
            progress.step(name, "finalizing");
            *order = account.finalize(url, &order.finalize, &csr_der).await?;
        }
        if order.status != OrderStatus::Valid {
            *order = account
                .wait_order(url, remaining(deadline), Look::Soon, |s| s == OrderStatus::Valid)
                .await?;
        }
        let cert_url = order
            .certificate
            .clone()
            .ok_or_else(|| anyhow!("the CA marked order {url} valid without a certificate URL"))?;
        progress.step(name, "downloading the certificate");
        let chain =
            account.download_certificate(&cert_url, cert.preferred_chain.as_deref()).await?;
        if let Some(pref) = &cert.preferred_chain
            && !chain.issuer_names.iter().any(|n| n == pref)
        {
            progress.step(
                name,
                &format!("no chain issued by {pref:?} is offered; kept the default chain"),
            );
        }
        let info =
            CertInfo::from_der(chain.leaf()).context("the issued certificate does not parse")?;
        if !key_pkcs8.is_empty() {
            let key = PrivateKey::from_pkcs8_der(key_pkcs8.to_vec())?;
            if !key_matches_cert(&key, chain.leaf()) {
                return Err(anyhow!(
                    "the CA issued a certificate for another key than the one in the CSR"
                ));
            }
        }
        let missing: Vec<String> =
            ids.iter().filter(|id| !info.sans.contains(id)).map(ToString::to_string).collect();
        if !missing.is_empty() {
            return Err(anyhow!("the issued certificate lacks {}", missing.join(", ")));
        }
        let issued = IssuedRecord {
            id: 0,
            cert_name: name.to_string(),
            order_id: Some(rec.id),
            serial_hex: info.serial_hex.clone(),
            issuer: info.issuer_cn.clone().unwrap_or_else(|| info.issuer_dn.clone()),
            sans: info.sans.clone(),
            // X.509 gives seconds; the store keeps milliseconds.
            not_before: info.not_before * 1000,
            not_after: info.not_after * 1000,
            chain_pem: chain.pem.clone(),
            key_type,
            key_pkcs8,
            revoked_at: None,
            revocation_reason: None,
            created_at: 0,
        };
        // With the `issued` event, the failures in a row cleared, and the audit entry.
        let audit = audit.map(|a| a.clone().with_detail(issued.serial_hex.clone()));
        let id = self.store.complete_order(rec.id, &issued, audit.as_ref()).await?;
        Ok(IssuedRecord { id, ..issued })
    }

    /// The ARI identifier of `prev` when the CA at `directory_url` knows it (it issued it
    /// through one of our orders, or answered its renewal information), so a new order may
    /// name it in `replaces`; a CA refuses an order that replaces a certificate it does not
    /// know, such as one imported from another CA or issued by the CA a fallback left.
    async fn replaceable(
        &self,
        prev: &IssuedRecord,
        directory_url: &str,
    ) -> anyhow::Result<Option<String>> {
        let mut known = false;
        if let Some(order_id) = prev.order_id
            && let Some(order) = self.store.order(order_id).await?
            && let Some(acct) = self.store.account(&order.account_name).await?
        {
            known = acct.directory_url == directory_url;
        }
        if !known && let Some(info) = self.store.renewal_info(prev.id).await? {
            known = info.directory_url == directory_url;
        }
        if !known {
            return Ok(None);
        }
        Ok(certhub_core::cert::split_pem_chain(&prev.chain_pem)
            .ok()
            .and_then(|c| c.into_iter().next())
            .and_then(|leaf| certhub_acme::certificate_id(&leaf).ok()))
    }

    /// The certificate key and CSR for a new order: the user's CSR, the previous key
    /// (with key reuse), or a new key.
    async fn key_and_csr(
        &self,
        cert: &CertRecord,
        ids: &[Identifier],
    ) -> anyhow::Result<(Zeroizing<Vec<u8>>, String, Vec<u8>)> {
        if let Some(pem) = &cert.csr_pem {
            let csr = ParsedCsr::parse(pem.as_bytes()).context("the stored CSR does not parse")?;
            return Ok((Zeroizing::new(Vec::new()), "csr".into(), csr.der));
        }
        if cert.key_type == certhub_core::agent::KEY_ON_AGENT {
            return Err(crate::error::fail(
                crate::error::Kind::Busy,
                format!(
                    "certificate {}'s key is made on its agent, which has not sent its \
                     certificate request yet: start `certhub agent run` there",
                    cert.name
                ),
            ));
        }
        let key_type: KeyType = cert.key_type.parse().map_err(|e| anyhow!("{e}"))?;
        let previous =
            if cert.reuse_key { self.store.latest_issued(&cert.name).await? } else { None };
        let key = match previous.filter(|p| p.key_type == cert.key_type && !p.key_pkcs8.is_empty())
        {
            Some(p) => PrivateKey::from_pkcs8_der(p.key_pkcs8.to_vec())?,
            None => PrivateKey::generate(key_type)?,
        };
        let csr = build_csr(&key, ids)?;
        Ok((Zeroizing::new(key.pkcs8_der().to_vec()), key_type.to_string(), csr))
    }

    async fn resume_order(
        &self,
        name: &str,
        account_name: &str,
        account: &Account,
    ) -> anyhow::Result<Option<(OrderRecord, String, certhub_acme::Order)>> {
        let Some(rec) = self.store.open_order(name).await? else {
            return Ok(None);
        };
        let Some(url) = rec.order_url.clone() else {
            // Killed before the CA answered newOrder: that order, if any, is unknown to us.
            self.store
                .set_order_status(
                    rec.id,
                    Stored::Abandoned,
                    Some("interrupted before the CA answered"),
                )
                .await?;
            return Ok(None);
        };
        if rec.account_name != account_name {
            self.store
                .set_order_status(
                    rec.id,
                    Stored::Abandoned,
                    Some("the certificate moved to another account"),
                )
                .await?;
            return Ok(None);
        }
        match account.order(&url).await {
            Ok((order, _)) if order.status != OrderStatus::Invalid => Ok(Some((rec, url, order))),
            Ok((order, _)) => {
                let why = order.error.map(|p| p.to_string()).unwrap_or_else(|| "invalid".into());
                self.store.set_order_status(rec.id, Stored::Invalid, Some(&why)).await?;
                Ok(None)
            }
            Err(e) if !e.is_retryable() => {
                self.store
                    .set_order_status(rec.id, Stored::Abandoned, Some(&e.to_string()))
                    .await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Why CAA forbids `account`'s CA to issue for one of the identifiers of `assignment` (the
    /// identifier and the record), if it does. Records that cannot be read are left to the CA.
    async fn caa_refusal(
        &self,
        account: &Account,
        specs: &[ChallengeSpec],
        assignment: &[(Identifier, usize)],
    ) -> Option<String> {
        let kinds = crate::caa::kinds(assignment, specs);
        let checker = self.solvers.dns_checker();
        for (id, verdict) in crate::caa::check(&checker, account, &kinds).await {
            match verdict {
                Ok(v) if v.forbids() => return Some(format!("{id}: {}", v.describe())),
                Ok(_) => {}
                Err(e) => tracing::warn!(identifier = %id, "CAA not checked: {e}"),
            }
        }
        None
    }

    /// The agent that answers certificate `cert`'s http-01 and tls-alpn-01 challenges on its
    /// machine: the one target of a certificate whose key is kept there.
    async fn challenge_agent(&self, cert: &CertRecord) -> anyhow::Result<Option<ChallengeAgent>> {
        if cert.key_type != certhub_core::agent::KEY_ON_AGENT {
            return Ok(None);
        }
        let targets = self.store.cert_targets(&cert.name).await?;
        let Some(name) = targets.iter().find_map(|t| t.strip_prefix("agent:")) else {
            return Err(invalid(
                "targets",
                format!(
                    "certificate {}'s key is kept on an agent, but it targets none: \
                     `certhub cert set {} --target agent:NAME`",
                    cert.name, cert.name
                ),
            ));
        };
        let Some(agent) = self.store.agent(name).await? else {
            return Err(invalid(
                "targets",
                format!(
                    "certificate {}'s key is kept on agent {name}, which was removed: join it \
                     again (`certhub agent join`), or give the certificate a key of its own",
                    cert.name
                ),
            ));
        };
        Ok(Some(ChallengeAgent { id: agent.id, name: agent.name }))
    }

    /// The solver for `spec` of certificate `cert`: http-01 and tls-alpn-01 go to `agent`
    /// when the certificate has one.
    async fn solver(
        &self,
        cert: &str,
        agent: Option<&ChallengeAgent>,
        spec: &ChallengeSpec,
    ) -> anyhow::Result<Arc<dyn certhub_core::Solver>> {
        match agent {
            Some(a) if spec.config.kind() != certhub_core::ChallengeKind::Dns01 => {
                Ok(Arc::new(crate::agent_solver::AgentSolver {
                    store: self.store.clone(),
                    agent_id: a.id.clone(),
                    agent: a.name.clone(),
                    cert: cert.to_string(),
                    config: spec.config.clone(),
                }))
            }
            _ => {
                let spec = crate::credentials::resolve(&self.store, spec).await?;
                Ok(self.solvers.for_spec(&spec).await?)
            }
        }
    }

    /// Cleans up challenges that an interrupted run presented.
    async fn clean_leftovers(
        &self,
        name: &str,
        agent: Option<&ChallengeAgent>,
    ) -> anyhow::Result<()> {
        for order in self.store.orders_for(name).await? {
            for p in self.store.presented_for(order.id).await? {
                let unreadable = |what| {
                    format!(
                        "the {what} of presented challenge {} (order {}) is unreadable",
                        p.id, order.id
                    )
                };
                let spec: ChallengeSpec =
                    serde_json::from_value(p.spec.clone()).with_context(|| unreadable("spec"))?;
                let challenge = pending_from_json(name, &p.challenge)
                    .with_context(|| unreadable("challenge"))?;
                let solver = self.solver(name, agent, &spec).await?;
                if let Err(e) = solver.cleanup(&challenge).await {
                    tracing::warn!(cert = name, error = %e, "cleaning up an interrupted challenge failed");
                }
                self.store.remove_presented(p.id, None).await?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn authorize(
        &self,
        name: &str,
        account: &Account,
        order_id: i64,
        url: &str,
        specs: &[ChallengeSpec],
        assignment: &[(Identifier, usize)],
        agent: Option<&ChallengeAgent>,
        deadline: Instant,
        progress: &dyn Progress,
    ) -> anyhow::Result<()> {
        let (authz, _) = account.authorization(url).await?;
        match authz.status {
            // The CA reused an earlier validation of the name for this account (CAs keep
            // them valid for a while): nothing to answer, and the history says why.
            AuthorizationStatus::Valid => {
                let reused = format!(
                    "{} was already validated for this account at the CA",
                    requested_identifier(&authz)?
                );
                self.store.record_event(name, EventKind::Validated, Some(&reused)).await?;
                return Ok(());
            }
            AuthorizationStatus::Pending => {}
            other => {
                return Err(anyhow!(
                    "the authorization for {} is {other:?}",
                    authz.identifier.value
                )
                .context(format!("cannot validate {name}")));
            }
        }
        let requested = requested_identifier(&authz)?;
        let index = assignment
            .iter()
            .find(|(id, _)| *id == requested)
            .map(|(_, i)| *i)
            .or_else(|| specs.iter().position(|s| s.matches(&requested)))
            .ok_or_else(|| {
                invalid("challenges", format!("no challenge configuration matches {requested}"))
            })?;
        let spec = &specs[index];
        let kind = spec.config.kind();
        let challenge =
            authz.challenges.iter().find(|c| c.kind.as_str() == kind.as_str()).ok_or_else(
                || {
                    let offered: Vec<String> =
                        authz.challenges.iter().map(|c| c.kind.to_string()).collect();
                    fail(
                        Kind::CaRefused,
                        format!(
                            "the CA does not offer {kind} for {requested}; it offers {}",
                            offered.join(", ")
                        ),
                    )
                },
            )?;
        let token = challenge.token.clone().ok_or_else(|| {
            anyhow!("the CA sent a {kind} challenge for {requested} without a token")
        })?;
        let pending = PendingChallenge {
            cert: name.to_string(),
            kind,
            identifier: base_identifier(&authz)?,
            token: token.clone(),
            key_authorization: account.key_authorization(&token),
        };
        let solver = self.solver(name, agent, spec).await?;
        let by_agent = match agent {
            Some(a) if kind != certhub_core::ChallengeKind::Dns01 => {
                format!(" on agent {}", a.name)
            }
            _ => String::new(),
        };
        let spec_json = serde_json::to_value(spec)?;
        let presented =
            self.store.record_presented(order_id, &spec_json, &pending_to_json(&pending)).await?;
        progress.step(name, &format!("validating {requested} with {kind}{by_agent}"));
        let result = async {
            solver
                .present(&pending)
                .await
                .with_context(|| format!("cannot present the {kind} challenge for {requested}"))?;
            if challenge.status == certhub_acme::ChallengeStatus::Pending {
                account.respond_challenge(&challenge.url).await?;
            }
            account.wait_authorization(url, remaining(deadline)).await?;
            anyhow::Ok(())
        }
        .await;
        match solver.cleanup(&pending).await {
            // After a failure, cleaning up often fails for the same cause, already reported.
            Err(e) if result.is_err() => {
                tracing::debug!(cert = name, identifier = %requested, error = %e, "challenge cleanup failed");
            }
            Err(e) => {
                tracing::warn!(cert = name, identifier = %requested, error = %e, "challenge cleanup failed");
            }
            Ok(()) => {}
        }
        // Forgotten together with the `validated` event, when it was.
        let validated = format!("{requested} with {kind}{by_agent}");
        self.store
            .remove_presented(presented, result.is_ok().then_some(validated.as_str()))
            .await?;
        result
    }
}

/// The agent that answers a certificate's http-01 and tls-alpn-01 challenges.
struct ChallengeAgent {
    id: String,
    name: String,
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn to_wire(id: &Identifier) -> certhub_acme::Identifier {
    match id {
        Identifier::Dns(n) => certhub_acme::Identifier::dns(n.clone()),
        Identifier::Ip(ip) => certhub_acme::Identifier::ip(*ip),
    }
}

/// The identifier as requested (wildcards with their `*.`).
fn requested_identifier(authz: &Authorization) -> anyhow::Result<Identifier> {
    let base = base_identifier(authz)?;
    Ok(match base {
        Identifier::Dns(n) if authz.wildcard => Identifier::Dns(format!("*.{n}")),
        other => other,
    })
}

fn base_identifier(authz: &Authorization) -> anyhow::Result<Identifier> {
    let v = &authz.identifier.value;
    Ok(match authz.identifier.kind {
        certhub_acme::IdentifierType::Ip => Identifier::Ip(
            v.parse().with_context(|| format!("the CA sent an invalid IP identifier {v:?}"))?,
        ),
        certhub_acme::IdentifierType::Dns => {
            Identifier::Dns(v.trim_end_matches('.').to_ascii_lowercase())
        }
    })
}

fn pending_to_json(p: &PendingChallenge) -> serde_json::Value {
    json!({
        "kind": p.kind,
        "identifier": p.identifier,
        "token": p.token,
        "key_authorization": p.key_authorization,
    })
}

/// A recorded challenge of certificate `cert`.
fn pending_from_json(cert: &str, v: &serde_json::Value) -> anyhow::Result<PendingChallenge> {
    Ok(PendingChallenge {
        cert: cert.to_string(),
        kind: serde_json::from_value(v["kind"].clone())?,
        identifier: serde_json::from_value(v["identifier"].clone())?,
        token: text(v, "token")?,
        key_authorization: text(v, "key_authorization")?,
    })
}

/// The text member `key` of a recorded challenge; a missing one is an error naming it.
fn text(v: &serde_json::Value, key: &str) -> anyhow::Result<String> {
    v[key].as_str().map(str::to_string).ok_or_else(|| anyhow!("it has no {key}"))
}
