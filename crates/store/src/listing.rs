//! The certificate list: each managed certificate with its latest issued certificate, in one
//! query, filtered and paged by the database. Nothing sealed is read, so a list of a large
//! fleet costs what its page costs. The dashboard's overview is counted by the database too.

use crate::vocab::CertState;
use certhub_core::renewal::RenewalPolicy;

use crate::{CertRecord, Error, IssuedRecord, Store, from_json};

/// A managed certificate as lists show it.
#[derive(Debug, Clone, PartialEq)]
pub struct CertSummary {
    /// Its name.
    pub name: String,
    /// The account that orders it (`None`: imported, not renewed by ACME).
    pub account_name: Option<String>,
    /// The identifiers to request.
    pub identifiers: Vec<certhub_core::Identifier>,
    /// The key algorithm.
    pub key_type: String,
    /// The stored state; see [`CertSummary::effective_state`].
    pub state: CertState,
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
    /// Start of validity, epoch milliseconds.
    pub not_before: i64,
    /// End of validity, epoch milliseconds.
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
            state: cert.state,
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

    /// The state a user sees at `now` (epoch milliseconds): the stored one, with revocation and
    /// expiry of the latest issued certificate applied.
    pub fn effective_state(&self, now: i64) -> CertState {
        let latest = self.latest.as_ref().map(|i| (i.revoked_at.is_some(), i.not_after));
        effective_state(self.state, latest, now)
    }
}

/// The state a user sees at `now` (epoch milliseconds) of a certificate in `state` whose latest
/// issued certificate (if any) is (revoked, not_after). [`EFFECTIVE_STATE_SQL`] is the same
/// rule for queries.
pub(crate) fn effective_state(
    state: CertState,
    latest: Option<(bool, i64)>,
    now: i64,
) -> CertState {
    match latest {
        Some((true, _)) if state != CertState::Renewing => CertState::Revoked,
        Some((_, not_after)) if not_after <= now && state == CertState::Valid => CertState::Expired,
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
            with_latest!(),
            "WHERE ($2 = '' OR ",
            effective_state_sql!(),
            " = $2) AND ($3 = '' OR lower(c.name) LIKE $3 ESCAPE '\\' ",
            "OR c.names LIKE $3 ESCAPE '\\') "
        )
    };
}

/// Each certificate (`c`) joined with its latest issued certificate (`i`).
macro_rules! with_latest {
    () => {
        "FROM certs c LEFT JOIN issued i ON i.id = (SELECT MAX(id) FROM issued WHERE cert_name = c.name) "
    };
}

/// The columns a [`SummaryRow`] reads.
macro_rules! summary_columns {
    () => {
        concat!(
            "SELECT c.name, c.account_name, c.identifiers, c.key_type, c.state, c.last_error, ",
            "c.renewal_policy, c.fallback_account, c.failures, c.next_attempt_at, ",
            "i.serial_hex, i.issuer, i.not_before, i.not_after, i.revoked_at "
        )
    };
}

/// Which certificates need attention at `$1` (now, epoch milliseconds): failing, expired or
/// revoked ones, valid ones that end within `$2` milliseconds, and any whose last attempt failed.
macro_rules! needs_attention {
    () => {
        concat!(
            "(",
            effective_state_sql!(),
            " IN ('failing', 'expired', 'revoked') OR (",
            effective_state_sql!(),
            " = 'valid' AND i.not_after - $1 < $2) OR c.last_error <> '')"
        )
    };
}

/// What the dashboard shows of a fleet at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Overview {
    /// How many certificates there are.
    pub total: u64,
    /// How many are in each effective state, by state.
    pub states: Vec<(String, u64)>,
    /// Of the valid ones, how many expire in each week from now (this week first).
    pub expiring: Vec<u64>,
    /// Of the valid ones, how many renewals are planned in each week from now, by each
    /// certificate's renewal policy or the hub's (overdue ones count in this week).
    pub renewing: Vec<u64>,
    /// How many need attention (see [`Store::overview`]).
    pub attention_total: u64,
    /// Those that need attention, the worst first: failing, expired, revoked, then the
    /// others by expiry; at most the limit asked for.
    pub attention: Vec<CertSummary>,
}

/// What [`Store::overview`] counts.
#[derive(Debug, Clone, Copy)]
pub struct OverviewSpec {
    /// Now, epoch milliseconds.
    pub now: i64,
    /// How many weeks the charts cover.
    pub weeks: usize,
    /// A valid certificate needs attention when it ends within this many milliseconds.
    pub soon: i64,
    /// At most this many of those that need attention are returned.
    pub attention_limit: u64,
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
    /// The certificates `filter` selects at `now` (epoch milliseconds), ordered by name, and how
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
        let sql = concat!(summary_columns!(), filtered!(), "ORDER BY c.name LIMIT $4 OFFSET $5");
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

    /// The certificates whose latest issued certificate ends by `horizon` (epoch ms), is
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

/// Certificates alike for the dashboard: effective state, whether they need attention (1 or
/// 0), the week they expire and the week their renewal is planned (valid ones only), and how
/// many.
#[derive(sqlx::FromRow)]
struct OverviewGroup {
    s: String,
    a: i64,
    ew: Option<i64>,
    rw: Option<i64>,
    n: i64,
}

impl Store {
    /// The dashboard's figures at `spec.now`, counted by the database in two queries
    /// (one grouped count, one short list), so that they cost little memory however large
    /// the fleet. Renewals are planned by each certificate's own policy, or by
    /// `default_policy` (the hub's) when it has none; ARI windows are not consulted.
    pub async fn overview(
        &self,
        spec: OverviewSpec,
        default_policy: RenewalPolicy,
    ) -> Result<Overview, Error> {
        let own: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT renewal_policy FROM certs WHERE renewal_policy IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        // The planned time by policy, one branch per policy in use; a policy that does not
        // parse plans nothing (NULL), as the scheduler would not renew by it either.
        let mut planned =
            format!("CASE WHEN c.renewal_policy IS NULL THEN {}", planned_sql(default_policy));
        let mut policies = Vec::new();
        for text in own {
            if let Ok(policy) = text.parse::<RenewalPolicy>() {
                policies.push(text);
                let n = policies.len() + 2;
                planned.push_str(&format!(
                    " WHEN c.renewal_policy = ${n} THEN {}",
                    planned_sql(policy)
                ));
            }
        }
        planned.push_str(" END");
        let week = 7 * 86_400_000;
        let sql = format!(
            "SELECT s, a, ew, rw, COUNT(*) AS n FROM (SELECT s, a, \
             CASE WHEN s = 'valid' THEN (na - $1) / {week} END AS ew, \
             CASE WHEN s = 'valid' AND r IS NOT NULL \
             THEN (CASE WHEN r > $1 THEN r - $1 ELSE 0 END) / {week} END AS rw \
             FROM (SELECT {state} AS s, CASE WHEN {attention} THEN 1 ELSE 0 END AS a, \
             i.not_after AS na, {planned} AS r {from}) t) u GROUP BY s, a, ew, rw",
            state = effective_state_sql!(),
            attention = needs_attention!(),
            from = with_latest!(),
        );
        // Dynamic only in the numbers of parsed policies; the policies' texts are bound.
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(spec.now).bind(spec.soon);
        for policy in &policies {
            query = query.bind(policy);
        }
        let groups: Vec<OverviewGroup> = query.fetch_all(&self.pool).await?;
        let mut overview = Overview {
            expiring: vec![0; spec.weeks],
            renewing: vec![0; spec.weeks],
            ..Overview::default()
        };
        for OverviewGroup { s: state, a: attention, ew: expiry_week, rw: renewal_week, n } in groups
        {
            let n = n as u64;
            overview.total += n;
            if attention != 0 {
                overview.attention_total += n;
            }
            match overview.states.iter_mut().find(|(s, _)| *s == state) {
                Some((_, count)) => *count += n,
                None => overview.states.push((state, n)),
            }
            let slot = |week: Option<i64>| week.and_then(|w| usize::try_from(w).ok());
            if let Some(w) = slot(expiry_week).filter(|w| *w < spec.weeks) {
                overview.expiring[w] += n;
            }
            if let Some(w) = slot(renewal_week).filter(|w| *w < spec.weeks) {
                overview.renewing[w] += n;
            }
        }
        overview.states.sort();
        let sql = concat!(
            summary_columns!(),
            with_latest!(),
            "WHERE ",
            needs_attention!(),
            " ORDER BY CASE ",
            effective_state_sql!(),
            " WHEN 'failing' THEN 0 WHEN 'expired' THEN 1 WHEN 'revoked' THEN 2 ELSE 3 END, ",
            "CASE WHEN i.not_after IS NULL THEN 1 ELSE 0 END, i.not_after, c.name LIMIT $3"
        );
        let rows: Vec<SummaryRow> = sqlx::query_as(sql)
            .bind(spec.now)
            .bind(spec.soon)
            .bind(spec.attention_limit.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await?;
        overview.attention = rows.into_iter().map(summary_from_row).collect::<Result<_, _>>()?;
        Ok(overview)
    }
}

/// When `policy` plans the renewal of the latest issued certificate `i`, epoch ms, in
/// SQL: the time [`certhub_core::renewal::decide`] gives without an ARI window.
fn planned_sql(policy: RenewalPolicy) -> String {
    let half = "i.not_before + (i.not_after - i.not_before) / 2";
    match policy {
        RenewalPolicy::FractionOfLifetime { fraction } => format!(
            "i.not_before + CAST((i.not_after - i.not_before) * {} AS BIGINT)",
            fraction.clamp(0.0, 1.0)
        ),
        RenewalPolicy::DaysBeforeExpiry { days } => {
            let by_days = format!("i.not_after - {}", i64::from(days) * 86_400_000);
            format!("CASE WHEN {by_days} > {half} THEN {by_days} ELSE {half} END")
        }
    }
}

fn summary_from_row(row: SummaryRow) -> Result<CertSummary, Error> {
    let identifiers = from_json("certs", &row.name, "identifiers", &row.identifiers)?;
    let state = crate::vocab::parse("certs", &row.name, "state", &row.state)?;
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
        state,
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

/// What the hub's `/metrics` reads from the store when scraped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Certificates by state (`valid`, `renewing`, …).
    pub states: Vec<(String, i64)>,
    /// Each issued certificate's name and when its newest certificate expires (epoch ms).
    pub expiry: Vec<(String, i64)>,
    /// Certificates whose time to be looked at by the renewal scheduler has come.
    pub queue_depth: i64,
    /// The earliest of those times (epoch ms), when there are any.
    pub queue_oldest: Option<i64>,
}

impl Store {
    /// The store's side of the hub's metrics at `now` (epoch ms).
    pub async fn metrics_snapshot(&self, now: i64) -> Result<MetricsSnapshot, Error> {
        let states: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM certs GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        let expiry: Vec<(String, i64)> = sqlx::query_as(
            "SELECT cert_name, MAX(not_after) FROM issued GROUP BY cert_name ORDER BY cert_name",
        )
        .fetch_all(&self.pool)
        .await?;
        let (queue_depth, queue_oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(check_at) FROM certs WHERE check_at <= $1")
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
        Ok(MetricsSnapshot { states, expiry, queue_depth, queue_oldest })
    }
}
