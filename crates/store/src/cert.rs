//! Managed certificates (table `certs`).

use crate::vocab::CertState;
use std::fmt;

use crate::{
    AuditEntry, Error, Store, from_json, is_foreign_key_violation, is_unique_violation, now_ms,
    to_json,
};

const TABLE: &str = "certs";
const WHAT: &str = "managed certificate";

macro_rules! select_certs {
    ($tail:literal) => {
        concat!(
            "SELECT name, account_name, identifiers, key_type, reuse_key, csr_pem, profile, ",
            "preferred_chain, challenges, state, last_error, renewal_policy, fallback_account, ",
            "fallback_after, failures, next_attempt_at, created_at, updated_at FROM certs ",
            $tail
        )
    };
}

/// A managed certificate: what to request and how. `challenges` holds solver configuration
/// with DNS credentials; it is encrypted at rest and `Debug` redacts it.
#[derive(Clone, PartialEq)]
pub struct CertRecord {
    /// Unique name chosen by the user.
    pub name: String,
    /// The account that orders it; `None` for an imported certificate that ACME does not
    /// renew.
    pub account_name: Option<String>,
    /// The identifiers to request (stored as JSON text).
    pub identifiers: Vec<certhub_core::Identifier>,
    /// Key algorithm for the certificate key, e.g. "ecdsa-p256".
    pub key_type: String,
    /// Whether renewals reuse the previous certificate key.
    pub reuse_key: bool,
    /// A user-provided CSR, when the key lives elsewhere.
    pub csr_pem: Option<String>,
    /// The ACME profile to request, if any.
    pub profile: Option<String>,
    /// The preferred alternate chain (issuer name), if any.
    pub preferred_chain: Option<String>,
    /// Challenge configuration (encrypted at rest: it holds DNS credentials).
    pub challenges: Vec<certhub_core::ChallengeSpec>,
    /// Where it stands.
    pub state: CertState,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// When to renew without a CA window: `75%` or `30d`; `None` follows the global default.
    pub renewal_policy: Option<String>,
    /// The account to order with once `failures` reaches `fallback_after`.
    pub fallback_account: Option<String>,
    /// Failed requests in a row before the fallback account is used.
    pub fallback_after: i64,
    /// Failed requests in a row (set with [`Store::set_cert_retry`]).
    pub failures: i64,
    /// No automatic retry before this time, epoch milliseconds.
    pub next_attempt_at: Option<i64>,
    /// Creation time, epoch milliseconds (set by the store).
    pub created_at: i64,
    /// Last change, epoch milliseconds (set by the store).
    pub updated_at: i64,
}

impl CertRecord {
    /// The state a user sees at `now` (epoch milliseconds): the stored one, with revocation and
    /// expiry of the latest issued certificate applied.
    pub fn effective_state(&self, issued: Option<&crate::IssuedRecord>, now: i64) -> CertState {
        let latest = issued.map(|i| (i.revoked_at.is_some(), i.not_after));
        crate::listing::effective_state(self.state, latest, now)
    }
}

/// Failed requests in a row before a certificate's fallback account is used, by default.
pub const DEFAULT_FALLBACK_AFTER: i64 = 3;

/// `next_attempt_at` of a certificate whose request the CA refused for good: no automatic
/// retry until it is changed (which clears it) or requested by hand.
pub const RETRY_STOPPED: i64 = i64::MAX;

impl Default for CertRecord {
    /// An empty record with the store's defaults (`fallback_after` 3, state "pending").
    fn default() -> Self {
        Self {
            name: String::new(),
            account_name: None,
            identifiers: Vec::new(),
            key_type: String::new(),
            reuse_key: false,
            csr_pem: None,
            profile: None,
            preferred_chain: None,
            challenges: Vec::new(),
            state: CertState::Pending,
            last_error: None,
            renewal_policy: None,
            fallback_account: None,
            fallback_after: DEFAULT_FALLBACK_AFTER,
            failures: 0,
            next_attempt_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }
}

impl fmt::Debug for CertRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertRecord")
            .field("name", &self.name)
            .field("account_name", &self.account_name)
            .field("identifiers", &self.identifiers)
            .field("key_type", &self.key_type)
            .field("reuse_key", &self.reuse_key)
            .field("csr_pem", &self.csr_pem.as_ref().map(|_| ".."))
            .field("profile", &self.profile)
            .field("preferred_chain", &self.preferred_chain)
            .field("challenges", &"<redacted>")
            .field("state", &self.state)
            .field("last_error", &self.last_error)
            .field("renewal_policy", &self.renewal_policy)
            .field("fallback_account", &self.fallback_account)
            .field("fallback_after", &self.fallback_after)
            .field("failures", &self.failures)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct CertRow {
    name: String,
    account_name: Option<String>,
    identifiers: String,
    key_type: String,
    reuse_key: i64,
    csr_pem: Option<String>,
    profile: Option<String>,
    preferred_chain: Option<String>,
    challenges: Vec<u8>,
    state: String,
    last_error: Option<String>,
    renewal_policy: Option<String>,
    fallback_account: Option<String>,
    fallback_after: i64,
    failures: i64,
    next_attempt_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl Store {
    fn cert_from_row(&self, row: CertRow) -> Result<CertRecord, Error> {
        let identifiers = from_json(TABLE, &row.name, "identifiers", &row.identifiers)?;
        let challenges = self.open_json(TABLE, &row.name, "challenges", &row.challenges)?;
        let state = crate::vocab::parse(TABLE, &row.name, "state", &row.state)?;
        Ok(CertRecord {
            name: row.name,
            account_name: row.account_name,
            identifiers,
            key_type: row.key_type,
            reuse_key: row.reuse_key != 0,
            csr_pem: row.csr_pem,
            profile: row.profile,
            preferred_chain: row.preferred_chain,
            challenges,
            state,
            last_error: row.last_error,
            renewal_policy: row.renewal_policy,
            fallback_account: row.fallback_account,
            fallback_after: row.fallback_after,
            failures: row.failures,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Inserts a managed certificate; `created_at` and `updated_at` are set to now. Fails with
    /// [`Error::AlreadyExists`] when the name is taken, and with [`Error::NotFound`] naming the
    /// account when `account_name` does not exist. `audit`'s entry is stored with it.
    pub async fn insert_cert(
        &self,
        cert: &CertRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        self.insert_cert_with_tasks(cert, &[], &[], audit).await
    }

    /// Inserts a managed certificate with its deployment tasks, all or
    /// none, with `audit`'s entry (see [`Store::insert_cert`]).
    pub async fn insert_cert_with_tasks(
        &self,
        cert: &CertRecord,
        tasks: &[certhub_core::DeployTask],
        targets: &[certhub_core::agent::Target],
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        self.insert_cert_in(&mut tx, cert).await?;
        self.add_deploy_tasks_in(&mut tx, &cert.name, tasks).await?;
        crate::agent::insert_targets_in(&mut tx, &cert.name, targets).await?;
        self.commit_change(tx, audit).await?;
        if !targets.is_empty() {
            self.changed(crate::Change::Targets(cert.name.clone()));
        }
        Ok(())
    }

    /// Inserts a managed certificate within `tx`.
    pub(crate) async fn insert_cert_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        cert: &CertRecord,
    ) -> Result<(), Error> {
        let identifiers = to_json(TABLE, &cert.name, "identifiers", &cert.identifiers)?;
        let challenges = self.seal_json(TABLE, &cert.name, "challenges", &cert.challenges)?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO certs (name, account_name, identifiers, key_type, reuse_key, csr_pem, \
             profile, preferred_chain, challenges, state, last_error, renewal_policy, \
             fallback_account, fallback_after, failures, next_attempt_at, names, created_at, \
             updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $18)",
        )
        .bind(&cert.name)
        .bind(&cert.account_name)
        .bind(identifiers)
        .bind(&cert.key_type)
        .bind(i64::from(cert.reuse_key))
        .bind(&cert.csr_pem)
        .bind(&cert.profile)
        .bind(&cert.preferred_chain)
        .bind(challenges)
        .bind(cert.state.as_str())
        .bind(&cert.last_error)
        .bind(&cert.renewal_policy)
        .bind(&cert.fallback_account)
        .bind(cert.fallback_after)
        .bind(cert.failures)
        .bind(cert.next_attempt_at)
        .bind(names(&cert.identifiers))
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(|err| write_error(err, cert))?;
        crate::credential::cert_credentials_in(tx, cert).await
    }

    /// The managed certificate named `name`, if it exists.
    pub async fn cert(&self, name: &str) -> Result<Option<CertRecord>, Error> {
        let row: Option<CertRow> = sqlx::query_as(select_certs!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| self.cert_from_row(row)).transpose()
    }

    /// All managed certificates, ordered by name.
    pub async fn certs(&self) -> Result<Vec<CertRecord>, Error> {
        let rows: Vec<CertRow> =
            sqlx::query_as(select_certs!("ORDER BY name")).fetch_all(&self.pool).await?;
        rows.into_iter().map(|row| self.cert_from_row(row)).collect()
    }

    /// Replaces every mutable field of the certificate named `cert.name` (all but the name and
    /// `created_at`; `updated_at` is set to now). Fails with [`Error::NotFound`] naming the
    /// certificate or the account. `audit`'s entry is stored with the change.
    pub async fn update_cert(
        &self,
        cert: &CertRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        self.update_cert_in(&mut tx, cert).await?;
        self.commit_change(tx, audit).await
    }

    /// Replaces a managed certificate's fields within `tx` (see [`Store::update_cert`]).
    pub(crate) async fn update_cert_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        cert: &CertRecord,
    ) -> Result<(), Error> {
        let identifiers = to_json(TABLE, &cert.name, "identifiers", &cert.identifiers)?;
        let challenges = self.seal_json(TABLE, &cert.name, "challenges", &cert.challenges)?;
        let result = sqlx::query(
            "UPDATE certs SET account_name = $1, identifiers = $2, key_type = $3, reuse_key = $4, \
             csr_pem = $5, profile = $6, preferred_chain = $7, challenges = $8, state = $9, \
             last_error = $10, renewal_policy = $11, fallback_account = $12, \
             fallback_after = $13, failures = $14, next_attempt_at = $15, \
             updated_at = CASE WHEN updated_at < $16 THEN $16 ELSE updated_at + 1 END, \
             names = $17, check_at = 0 WHERE name = $18",
        )
        .bind(&cert.account_name)
        .bind(identifiers)
        .bind(&cert.key_type)
        .bind(i64::from(cert.reuse_key))
        .bind(&cert.csr_pem)
        .bind(&cert.profile)
        .bind(&cert.preferred_chain)
        .bind(challenges)
        .bind(cert.state.as_str())
        .bind(&cert.last_error)
        .bind(&cert.renewal_policy)
        .bind(&cert.fallback_account)
        .bind(cert.fallback_after)
        .bind(cert.failures)
        .bind(cert.next_attempt_at)
        .bind(now_ms())
        .bind(names(&cert.identifiers))
        .bind(&cert.name)
        .execute(&mut **tx)
        .await
        .map_err(|err| write_error(err, cert))?;
        found(result.rows_affected(), &cert.name)?;
        crate::credential::cert_credentials_in(tx, cert).await
    }

    /// Sets the certificate's state and last error.
    pub async fn set_cert_state(
        &self,
        name: &str,
        state: CertState,
        last_error: Option<&str>,
    ) -> Result<(), Error> {
        let result = sqlx::query(
            "UPDATE certs SET state = $1, last_error = $2, updated_at = $3 WHERE name = $4",
        )
        .bind(state.as_str())
        .bind(last_error)
        .bind(now_ms())
        .bind(name)
        .execute(&self.writer)
        .await?;
        found(result.rows_affected(), name)
    }

    /// Records the outcome of a request for the retry policy: `failures` in a row, and no
    /// automatic retry before `next_attempt_at` (epoch ms; `None` after a success).
    pub async fn set_cert_retry(
        &self,
        name: &str,
        failures: i64,
        next_attempt_at: Option<i64>,
    ) -> Result<(), Error> {
        // Looked at by the next run, which says how it stands and records when to look again.
        let result = sqlx::query(
            "UPDATE certs SET failures = $1, next_attempt_at = $2, check_at = 0, \
             updated_at = CASE WHEN updated_at < $3 THEN $3 ELSE updated_at + 1 END \
             WHERE name = $4",
        )
        .bind(failures)
        .bind(next_attempt_at)
        .bind(now_ms())
        .bind(name)
        .execute(&self.writer)
        .await?;
        found(result.rows_affected(), name)
    }

    /// The certificates the renewal scheduler should look at `now` (epoch ms), by name: those
    /// whose check time has come, and those whose time assumed another hub-wide renewal
    /// `policy` than this one. Two index lookups, however large the fleet.
    pub async fn certs_to_check(&self, now: i64, policy: &str) -> Result<Vec<String>, Error> {
        // Sorted here: with ORDER BY, SQLite walks the whole name index instead of the three
        // index ranges (400 ms instead of a few at 100,000 certificates).
        let mut names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM certs WHERE check_at <= $1 \
             UNION SELECT name FROM certs WHERE check_policy < $2 \
             UNION SELECT name FROM certs WHERE check_policy > $2",
        )
        .bind(now)
        .bind(policy)
        .fetch_all(&self.pool)
        .await?;
        names.sort_unstable();
        Ok(names)
    }

    /// The earliest check time or retry time after a failure (epoch ms) after `after`, if any
    /// certificate has one: when the renewal scheduler next has work, unless something
    /// changes first.
    pub async fn next_check_after(&self, after: i64) -> Result<Option<i64>, Error> {
        let times: Vec<Option<i64>> = sqlx::query_scalar(
            "SELECT MIN(check_at) FROM certs WHERE check_at > $1 \
             UNION ALL SELECT MIN(next_attempt_at) FROM certs \
             WHERE next_attempt_at > $1 AND next_attempt_at < $2",
        )
        .bind(after)
        .bind(RETRY_STOPPED)
        .fetch_all(&self.pool)
        .await?;
        Ok(times.into_iter().flatten().min())
    }

    /// Records when the certificate next needs a look (`at`, epoch ms) and the hub-wide
    /// `policy` that time assumed (`None` when it has its own), unless it changed after
    /// `seen` (its `updated_at` when it was looked at, which every change moves forward): a
    /// change resets the time, and the change wins. Returns whether it was recorded.
    pub async fn set_cert_check(
        &self,
        name: &str,
        at: i64,
        policy: Option<&str>,
        seen: i64,
    ) -> Result<bool, Error> {
        let result = sqlx::query(
            "UPDATE certs SET check_at = $1, check_policy = $2 WHERE name = $3 AND updated_at = $4",
        )
        .bind(at)
        .bind(policy)
        .bind(name)
        .bind(seen)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Deletes a managed certificate with its orders and issued certificates, in one
    /// transaction. Fails with [`Error::InUse`] while challenges presented for one of its
    /// orders still await cleanup. `audit`'s entry is stored with the deletion.
    pub async fn delete_cert(&self, name: &str, audit: Option<&AuditEntry>) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let presented: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM presented p JOIN orders o ON o.id = p.order_id \
             WHERE o.cert_name = $1",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if presented > 0 {
            return Err(Error::InUse {
                what: WHAT,
                name: name.to_owned(),
                by: "presented challenges awaiting cleanup",
            });
        }
        for sql in [
            "DELETE FROM deploy_tasks WHERE cert_name = $1",
            "DELETE FROM cert_targets WHERE cert_name = $1",
            "DELETE FROM cert_credentials WHERE cert_name = $1",
            "DELETE FROM agent_deployments WHERE cert_name = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx).await?;
        }
        sqlx::query(
            "DELETE FROM renewal_info WHERE issued_id IN \
             (SELECT id FROM issued WHERE cert_name = $1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM issued WHERE cert_name = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM events WHERE cert_name = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM orders WHERE cert_name = $1").bind(name).execute(&mut *tx).await?;
        let result =
            sqlx::query("DELETE FROM certs WHERE name = $1").bind(name).execute(&mut *tx).await?;
        found(result.rows_affected(), name)?;
        self.commit_change(tx, audit).await
    }
}

/// Has the renewal scheduler look at the certificate at its next run (a change that can make
/// it due sooner); counts as a change of the certificate. Returns the rows changed: 0 when
/// there is no such certificate.
pub(crate) async fn recheck(conn: &mut sqlx::AnyConnection, name: &str) -> Result<u64, Error> {
    let result = sqlx::query(
        "UPDATE certs SET check_at = 0, \
         updated_at = CASE WHEN updated_at < $1 THEN $1 ELSE updated_at + 1 END WHERE name = $2",
    )
    .bind(now_ms())
    .bind(name)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// The identifiers' values, lower case, separated by spaces (the `names` column that searches
/// look in).
fn names(identifiers: &[certhub_core::Identifier]) -> String {
    let values: Vec<String> = identifiers.iter().map(|i| i.to_string().to_lowercase()).collect();
    values.join(" ")
}

/// Maps constraint violations of an insert or update of `cert`.
fn write_error(err: sqlx::Error, cert: &CertRecord) -> Error {
    if is_unique_violation(&err) {
        Error::AlreadyExists { what: WHAT, name: cert.name.clone() }
    } else if is_foreign_key_violation(&err) {
        // The foreign keys of `certs` are its accounts.
        let names: Vec<&str> = [&cert.account_name, &cert.fallback_account]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        Error::NotFound { what: "account", name: names.join(" or ") }
    } else {
        err.into()
    }
}

fn found(rows: u64, name: &str) -> Result<(), Error> {
    if rows == 0 { Err(Error::NotFound { what: WHAT, name: name.to_owned() }) } else { Ok(()) }
}
