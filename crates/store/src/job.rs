//! Jobs (table `jobs`): the status of long operations started through the hub, and the hub's
//! settings changed at run time (a JSON document in `meta`).

use crate::vocab::{JobStatus, parse};
use crate::{AuditEntry, Error, Store, now_ms};

/// The `meta` row holding the hub's settings.
const SETTINGS: &str = "hub_settings";

/// A long operation and what it has done so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Random id.
    pub id: String,
    /// What it does, e.g. `request`.
    pub kind: String,
    /// On what, e.g. a certificate's name.
    pub target: String,
    /// Where it stands.
    pub status: JobStatus,
    /// The steps so far, oldest first.
    pub steps: Vec<String>,
    /// The outcome, once it ends.
    pub result: Option<String>,
    /// Why it failed, as the hub's problem document (JSON), when it failed.
    pub error: Option<String>,
    /// When it started, epoch milliseconds.
    pub created_at: i64,
    /// When it last changed, epoch milliseconds.
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    target: String,
    status: String,
    steps: String,
    result: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<Row> for JobRecord {
    type Error = Error;

    fn try_from(r: Row) -> Result<Self, Error> {
        Ok(JobRecord {
            status: parse("jobs", &r.id, "status", &r.status)?,
            id: r.id,
            kind: r.kind,
            target: r.target,
            steps: r.steps.lines().map(str::to_string).collect(),
            result: r.result,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A step as one line.
fn line(step: &str) -> String {
    format!("{}\n", step.replace(['\r', '\n'], " "))
}

impl Store {
    /// Records a new running job with no steps yet, with `audit`'s entry.
    pub async fn insert_job(
        &self,
        id: &str,
        kind: &str,
        target: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<JobRecord, Error> {
        let now = now_ms();
        let mut tx = self.begin_change(audit).await?;
        sqlx::query(
            "INSERT INTO jobs (id, kind, target, status, steps, created_at, updated_at) \
             VALUES ($1, $2, $3, 'running', '', $4, $4)",
        )
        .bind(id)
        .bind(kind)
        .bind(target)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.commit_change(tx, audit).await?;
        Ok(JobRecord {
            id: id.into(),
            kind: kind.into(),
            target: target.into(),
            status: JobStatus::Running,
            steps: Vec::new(),
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// Appends a step to job `id`.
    pub async fn add_job_step(&self, id: &str, step: &str) -> Result<(), Error> {
        sqlx::query("UPDATE jobs SET steps = steps || $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(line(step))
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Records that job `id` still runs (a step-less stretch of a long request).
    pub async fn touch_job(&self, id: &str) -> Result<(), Error> {
        sqlx::query("UPDATE jobs SET updated_at = $2 WHERE id = $1 AND status = 'running'")
            .bind(id)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Ends every job still recorded as running with `status` and `result`; how many. For a
    /// hub starting on a database no other process serves (SQLite): whatever runs there was
    /// cut short by the last stop.
    pub async fn end_running_jobs(&self, status: JobStatus, result: &str) -> Result<u64, Error> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, result = $2, updated_at = $3 WHERE status = 'running'",
        )
        .bind(status.as_str())
        .bind(result)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    /// Ends job `id` with `status` and `result` (and why it failed: `error`, a problem
    /// document as JSON), unless it ended before.
    pub async fn finish_job(
        &self,
        id: &str,
        status: JobStatus,
        result: &str,
        error: Option<&str>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE jobs SET status = $2, result = $3, error = $4, updated_at = $5 \
             WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(result)
        .bind(error)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes over the running jobs not heard of since `silent_since` (epoch ms): their hub
    /// died. Each is marked as heard of now, with `step` added, in one statement, so when
    /// several hubs look at once each job goes to one of them. The jobs taken.
    pub async fn take_over_jobs(
        &self,
        silent_since: i64,
        step: &str,
    ) -> Result<Vec<JobRecord>, Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "UPDATE jobs SET updated_at = $2, steps = steps || $3 \
             WHERE status = 'running' AND updated_at < $1 \
             RETURNING id, kind, target, status, steps, result, error, created_at, updated_at",
        )
        .bind(silent_since)
        .bind(now_ms())
        .bind(line(step))
        .fetch_all(&self.writer)
        .await?;
        rows.into_iter().map(JobRecord::try_from).collect()
    }

    /// Job `id`, if known.
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, Error> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, kind, target, status, steps, result, error, created_at, updated_at \
             FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(JobRecord::try_from).transpose()
    }

    /// Removes the jobs that ended before `before` (epoch milliseconds); how many.
    pub async fn delete_jobs_before(&self, before: i64) -> Result<u64, Error> {
        let done = sqlx::query("DELETE FROM jobs WHERE status <> 'running' AND updated_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    /// The hub's settings as last saved (a JSON object), or `None` when never changed.
    pub async fn hub_settings(&self) -> Result<Option<serde_json::Value>, Error> {
        match self.meta(SETTINGS).await? {
            None => Ok(None),
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|source| {
                Error::Json { table: "meta", row: SETTINGS.into(), column: "value", source }
            })?)),
        }
    }

    /// Saves the hub's settings, with `audit`'s entry.
    pub async fn set_hub_settings(
        &self,
        settings: &serde_json::Value,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(SETTINGS)
        .bind(settings.to_string().into_bytes())
        .execute(&mut *tx)
        .await?;
        self.commit_change(tx, audit).await
    }
}
