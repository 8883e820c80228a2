//! What several hubs on one database share besides leases: the CAs' rate-limit budgets
//! (table `budget_holds`, beside the orders placed) and the failed sign-ins the sign-in
//! limiter counts (table `login_failures`).

use crate::{Backend, Error, PlacedOrder, Store, now_ms};

/// The advisory lock that serialises admissions on PostgreSQL (SQLite has one writer).
const BUDGET_LOCK: i64 = 0x6365_7274_6875_6200; // "certhub\0"

/// An admitted renewal's place in its CA's budget, held until its order is placed.
#[derive(Debug, Clone)]
pub struct BudgetHold<'a> {
    pub cert_name: &'a str,
    pub account_name: &'a str,
    /// Its names, lower case.
    pub names: &'a [String],
    pub ari_renewal: bool,
    /// When the hold ends if no order was placed by then (epoch ms).
    pub until: i64,
}

/// The orders placed since `$1`, with the certificate's names, as [`placed`] reads them.
macro_rules! orders_since {
    () => {
        concat!(
            "SELECT o.created_at, o.account_name, c.names, ",
            "CASE WHEN o.replaces IS NULL THEN 0 ELSE 1 END ",
            "FROM orders o JOIN certs c ON c.name = o.cert_name WHERE o.created_at > $1"
        )
    };
}

fn placed(rows: Vec<(i64, String, String, i64)>) -> impl Iterator<Item = PlacedOrder> {
    rows.into_iter().map(|(at, account_name, names, ari)| PlacedOrder {
        at,
        account_name,
        names: names.split(' ').filter(|n| !n.is_empty()).map(str::to_owned).collect(),
        ari_renewal: ari != 0,
    })
}

impl Store {
    /// The orders placed since `since` (epoch ms), oldest first, for the CAs' rate-limit
    /// budgets: when, by which account, for which names, and whether as an ARI renewal.
    pub async fn orders_since(&self, since: i64) -> Result<Vec<PlacedOrder>, Error> {
        let rows = sqlx::query_as(concat!(orders_since!(), " ORDER BY o.created_at"))
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        Ok(placed(rows).collect())
    }

    /// Admits an order under the CAs' rate limits, for every process sharing the database at
    /// once: `decide` sees the orders placed since `since` and the places other admitted
    /// renewals hold (as orders placed when they were admitted), and either admits, and the
    /// hold is taken in the same transaction, or says why not (its error is returned, and
    /// nothing is written). A hold ends when its certificate's order is placed, when
    /// [`Store::release_hold`] is called, or at its `until`.
    pub async fn admit_order<E>(
        &self,
        since: i64,
        hold: &BudgetHold<'_>,
        decide: impl FnOnce(&[PlacedOrder]) -> Result<(), E>,
    ) -> Result<Result<(), E>, Error> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)::text")
                .bind(BUDGET_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        // The time of the decision, once the other admissions are done.
        let now = now_ms();
        sqlx::query("DELETE FROM budget_holds WHERE until_at <= $1 OR cert_name = $2")
            .bind(now)
            .bind(hold.cert_name)
            .execute(&mut *tx)
            .await?;
        // One statement, so one snapshot: an order placed meanwhile (its hold ending in the
        // same commit) is seen once, as the order or as the hold, never neither. A hold
        // whose order is not placed yet counts however long ago it was taken: one older
        // than the window counts from the window's start.
        let rows = sqlx::query_as(concat!(
            orders_since!(),
            " UNION ALL ",
            "SELECT CASE WHEN held_at > $1 THEN held_at ELSE $1 + 1 END, ",
            "account_name, names, ari_renewal FROM budget_holds"
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        let mut counted: Vec<PlacedOrder> = placed(rows).collect();
        counted.sort_by_key(|o| o.at);
        if let Err(e) = decide(&counted) {
            return Ok(Err(e));
        }
        sqlx::query(
            "INSERT INTO budget_holds \
             (cert_name, account_name, names, ari_renewal, held_at, until_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hold.cert_name)
        .bind(hold.account_name)
        .bind(hold.names.join(" "))
        .bind(i64::from(hold.ari_renewal))
        .bind(now)
        .bind(hold.until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Ends certificate `cert_name`'s hold on the budget, if it has one (its request ended
    /// without placing an order).
    pub async fn release_hold(&self, cert_name: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM budget_holds WHERE cert_name = $1")
            .bind(cert_name)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Counts a failed sign-in under `key`, the count starting again when the last failure
    /// is older than `window_ms`; the count now, this failure included.
    pub async fn count_login_failure(&self, key: &str, window_ms: i64) -> Result<u32, Error> {
        let now = now_ms();
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO login_failures (key, failures, last_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN login_failures.last_at < $3 THEN 1 \
                        ELSE login_failures.failures + 1 END, \
             last_at = $2 \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(now - window_ms)
        .fetch_one(&self.writer)
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The failures counted under `key` within the last `window_ms`, and when the last was
    /// (epoch ms).
    pub async fn login_failures(
        &self,
        key: &str,
        window_ms: i64,
    ) -> Result<Option<(u32, i64)>, Error> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT failures, last_at FROM login_failures WHERE key = $1 AND last_at >= $2",
        )
        .bind(key)
        .bind(now_ms() - window_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(n, at)| (u32::try_from(n).unwrap_or(u32::MAX), at)))
    }

    /// A successful sign-in: forgets the failures under `forget` and takes one back from
    /// `take_one`.
    pub async fn login_succeeded(&self, forget: &str, take_one: &str) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(forget)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE login_failures SET failures = failures - 1 WHERE key = $1 AND failures > 0",
        )
        .bind(take_one)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets failed sign-ins last counted before `before` (epoch ms); how many keys.
    pub async fn delete_login_failures_before(&self, before: i64) -> Result<u64, Error> {
        let done = sqlx::query("DELETE FROM login_failures WHERE last_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}
