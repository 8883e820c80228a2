//! The certificate list: each managed certificate with its latest issued certificate, in one
//! query, filtered and paged by the database. Nothing sealed is read, so a list of a large
//! fleet costs what its page costs.

use crate::{CertRecord, Error, IssuedRecord, Store, from_json};

/// A managed certificate as lists show it.
#[derive(Debug, Clone, PartialEq)]
pub struct CertSummary {
    /// Its name.
    pub name: String,
    /// The account that orders it (`None`: imported, not renewed by ACME).
    pub account_name: Option<String>,
    /// The identifiers to request (JSON, as in [`CertRecord`]).
    pub identifiers: serde_json::Value,
    /// The key algorithm.
    pub key_type: String,
    /// The stored state; see [`CertSummary::effective_state`].
    pub state: String,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// Its own renewal policy, if any.
    pub renewal_policy: Option<String>,
    /// Its fallback account, if any.
    pub fallback_account: Option<String>,
    /// Failed requests in a row.
    pub failures: i64,
    /// No automatic retry before this time, epoch milliseconds.
    pub next_attempt_at: Option<i64>,
    /// Its latest issued certificate, if any.
    pub latest: Option<LatestIssued>,
}

/// What a list shows of a certificate's latest issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestIssued {
    /// Serial number, lowercase hex.
    pub serial_hex: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    /// When it was revoked, epoch milliseconds.
    pub revoked_at: Option<i64>,
}

impl CertSummary {
    /// The summary of `cert` with `issued` as its latest issued certificate.
    pub fn of(cert: &CertRecord, issued: Option<&IssuedRecord>) -> Self {
        Self {
            name: cert.name.clone(),
            account_name: cert.account_name.clone(),
            identifiers: cert.identifiers.clone(),
            key_type: cert.key_type.clone(),
            state: cert.state.clone(),
            last_error: cert.last_error.clone(),
            renewal_policy: cert.renewal_policy.clone(),
            fallback_account: cert.fallback_account.clone(),
            failures: cert.failures,
            next_attempt_at: cert.next_attempt_at,
            latest: issued.map(|i| LatestIssued {
                serial_hex: i.serial_hex.clone(),
                issuer: i.issuer.clone(),
                not_before: i.not_before,
                not_after: i.not_after,
                revoked_at: i.revoked_at,
            }),
        }
    }

    /// The state a user sees at `now` (unix seconds): the stored one, with revocation and
    /// expiry of the latest issued certificate applied.
    pub fn effective_state(&self, now: i64) -> String {
        let latest = self.latest.as_ref().map(|i| (i.revoked_at.is_some(), i.not_after));
        effective_state(&self.state, latest, now).to_owned()
    }
}

/// The state a user sees at `now` (unix seconds) of a certificate in `state` whose latest
/// issued certificate (if any) is (revoked, not_after). [`EFFECTIVE_STATE_SQL`] is the same
/// rule for queries.
pub(crate) fn effective_state(state: &str, latest: Option<(bool, i64)>, now: i64) -> &str {
    match latest {
        Some((true, _)) if state != "renewing" => "revoked",
        Some((_, not_after)) if not_after <= now && state == "valid" => "expired",
        _ => state,
    }
}

/// [`effective_state`] in SQL, over `c` (certs) and `i` (the latest issued), at `$1`.
macro_rules! effective_state_sql {
    () => {
        "CASE WHEN i.revoked_at IS NOT NULL AND c.state <> 'renewing' THEN 'revoked' \
         WHEN i.not_after <= $1 AND c.state = 'valid' THEN 'expired' ELSE c.state END"
    };
}

/// Each certificate (`c`) joined with its latest issued certificate (`i`), selected by a
/// filter: `$1` is now, `$2` the state, `$3` the LIKE pattern; an empty one selects all.
macro_rules! filtered {
    () => {
        concat!(
            "FROM certs c LEFT JOIN issued i ",
            "ON i.id = (SELECT MAX(id) FROM issued WHERE cert_name = c.name) ",
            "WHERE ($2 = '' OR ",
            effective_state_sql!(),
            " = $2) AND ($3 = '' OR lower(c.name) LIKE $3 ESCAPE '\\' ",
            "OR c.names LIKE $3 ESCAPE '\\') "
        )
    };
}

/// Which certificates a list shows.
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    /// Only those in this effective state.
    pub state: Option<String>,
    /// Only those whose name or one of whose identifiers contains this (any case).
    pub search: Option<String>,
    /// Skip this many (by name).
    pub offset: u64,
    /// At most this many; `None`: all.
    pub limit: Option<u64>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    name: String,
    account_name: Option<String>,
    identifiers: String,
    key_type: String,
    state: String,
    last_error: Option<String>,
    renewal_policy: Option<String>,
    fallback_account: Option<String>,
    failures: i64,
    next_attempt_at: Option<i64>,
    serial_hex: Option<String>,
    issuer: Option<String>,
    not_before: Option<i64>,
    not_after: Option<i64>,
    revoked_at: Option<i64>,
}

impl Store {
    /// The certificates `filter` selects at `now` (unix seconds), ordered by name, and how
    /// many it selects in all (before the offset and limit).
    pub async fn cert_summaries(
        &self,
        filter: &CertFilter,
        now: i64,
    ) -> Result<(u64, Vec<CertSummary>), Error> {
        let state = filter.state.clone().unwrap_or_default();
        let pattern = match filter.search.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => format!("%{}%", like_escape(&s.to_lowercase())),
            _ => String::new(),
        };
        let total: i64 = if state.is_empty() && pattern.is_empty() {
            // Kept by triggers (migration cert_count): counting the fleet costs more than a page.
            sqlx::query_scalar("SELECT n FROM cert_count").fetch_one(&self.pool).await?
        } else {
            sqlx::query_scalar(concat!("SELECT COUNT(*) ", filtered!()))
                .bind(now)
                .bind(&state)
                .bind(&pattern)
                .fetch_one(&self.pool)
                .await?
        };
        let sql = concat!(
            "SELECT c.name, c.account_name, c.identifiers, c.key_type, c.state, c.last_error, ",
            "c.renewal_policy, c.fallback_account, c.failures, c.next_attempt_at, ",
            "i.serial_hex, i.issuer, i.not_before, i.not_after, i.revoked_at ",
            filtered!(),
            "ORDER BY c.name LIMIT $4 OFFSET $5"
        );
        // No limit: NULL to PostgreSQL, a negative one to SQLite.
        let limit = match (filter.limit, self.backend) {
            (Some(l), _) => Some(l.min(i64::MAX as u64) as i64),
            (None, crate::Backend::Sqlite) => Some(-1),
            (None, crate::Backend::Postgres) => None,
        };
        let rows: Vec<SummaryRow> = sqlx::query_as(sql)
            .bind(now)
            .bind(&state)
            .bind(&pattern)
            .bind(limit)
            .bind(filter.offset.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await?;
        let items = rows.into_iter().map(summary_from_row).collect::<Result<_, _>>()?;
        Ok((total as u64, items))
    }

    /// The certificates whose latest issued certificate ends by `horizon` (unix seconds), is
    /// not revoked, and is not being renewed on schedule: imported ones (no account renews
    /// them) and ones whose last attempt failed. Name, serial and end of each, by name; one
    /// query that returns only those, however large the fleet.
    pub async fn expiring_unattended(
        &self,
        horizon: i64,
    ) -> Result<Vec<(String, String, i64)>, Error> {
        Ok(sqlx::query_as(
            "SELECT c.name, i.serial_hex, i.not_after FROM certs c JOIN issued i \
             ON i.id = (SELECT MAX(id) FROM issued WHERE cert_name = c.name) \
             WHERE i.revoked_at IS NULL AND i.not_after <= $1 \
             AND (c.account_name IS NULL OR c.failures > 0) ORDER BY c.name",
        )
        .bind(horizon)
        .fetch_all(&self.pool)
        .await?)
    }
}

fn summary_from_row(row: SummaryRow) -> Result<CertSummary, Error> {
    let identifiers = from_json("certs", &row.name, "identifiers", &row.identifiers)?;
    let latest = match (row.serial_hex, row.issuer, row.not_before, row.not_after) {
        (Some(serial_hex), Some(issuer), Some(not_before), Some(not_after)) => Some(LatestIssued {
            serial_hex,
            issuer,
            not_before,
            not_after,
            revoked_at: row.revoked_at,
        }),
        _ => None,
    };
    Ok(CertSummary {
        name: row.name,
        account_name: row.account_name,
        identifiers,
        key_type: row.key_type,
        state: row.state,
        last_error: row.last_error,
        renewal_policy: row.renewal_policy,
        fallback_account: row.fallback_account,
        failures: row.failures,
        next_attempt_at: row.next_attempt_at,
        latest,
    })
}

/// `s` with LIKE's wildcards and the escape character escaped (by `\`).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
