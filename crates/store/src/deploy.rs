//! Deployment tasks of managed certificates and how each last ran (table `deploy_tasks`).

use std::fmt;

use crate::{AuditEntry, Error, Store, is_foreign_key_violation, is_unique_violation, now_ms};

const TABLE: &str = "deploy_tasks";
const WHAT: &str = "deployment task";

/// One deployment task of a certificate. `task` may hold secrets; it is encrypted at rest
/// and `Debug` redacts it.
#[derive(Clone, PartialEq)]
pub struct DeployTaskRecord {
    /// The managed certificate.
    pub cert_name: String,
    /// Unique among the certificate's tasks.
    pub name: String,
    /// Tasks run in ascending position.
    pub position: i64,
    /// The task.
    pub task: certhub_core::DeployTask,
    /// The issued certificate this task last delivered.
    pub deployed_issued_id: Option<i64>,
    /// How it last ended: `done`, `failed`, `skipped`.
    pub last_outcome: Option<String>,
    /// What it last did, or why it failed.
    pub last_detail: Option<String>,
    /// When it last ran, epoch milliseconds.
    pub last_run_at: Option<i64>,
    /// How many times in a row it failed (0 once it delivers).
    pub failures: i64,
}

impl fmt::Debug for DeployTaskRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeployTaskRecord")
            .field("cert_name", &self.cert_name)
            .field("name", &self.name)
            .field("position", &self.position)
            .field("task", &"<redacted>")
            .field("deployed_issued_id", &self.deployed_issued_id)
            .field("last_outcome", &self.last_outcome)
            .field("last_detail", &self.last_detail)
            .field("last_run_at", &self.last_run_at)
            .field("failures", &self.failures)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    cert_name: String,
    name: String,
    position: i64,
    task: Vec<u8>,
    deployed_issued_id: Option<i64>,
    last_outcome: Option<String>,
    last_detail: Option<String>,
    last_run_at: Option<i64>,
    failures: i64,
}

fn row_key(cert_name: &str, name: &str) -> String {
    format!("{cert_name}/{name}")
}

impl Store {
    /// The certificate's deployment tasks in the order they run.
    pub async fn deploy_tasks(&self, cert_name: &str) -> Result<Vec<DeployTaskRecord>, Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT cert_name, name, position, task, deployed_issued_id, last_outcome, \
             last_detail, last_run_at, failures FROM deploy_tasks WHERE cert_name = $1 ORDER BY position",
        )
        .bind(cert_name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let key = row_key(&r.cert_name, &r.name);
                Ok(DeployTaskRecord {
                    task: self.open_json(TABLE, &key, "task", &r.task)?,
                    cert_name: r.cert_name,
                    name: r.name,
                    position: r.position,
                    deployed_issued_id: r.deployed_issued_id,
                    last_outcome: r.last_outcome,
                    last_detail: r.last_detail,
                    last_run_at: r.last_run_at,
                    failures: r.failures,
                })
            })
            .collect()
    }

    /// Appends tasks to the certificate's tasks, all or none, with
    /// `audit`'s entry. Fails with [`Error::AlreadyExists`] when the certificate has a task of
    /// one of those names, and [`Error::NotFound`] without the certificate.
    pub async fn add_deploy_tasks(
        &self,
        cert_name: &str,
        tasks: &[certhub_core::DeployTask],
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        self.add_deploy_tasks_in(&mut tx, cert_name, tasks).await?;
        // A new task has a certificate to deploy: the scheduler's next run does it.
        crate::cert::recheck(&mut tx, cert_name).await?;
        self.commit_change(tx, audit).await
    }

    /// Appends tasks within `tx`.
    pub(crate) async fn add_deploy_tasks_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        cert_name: &str,
        tasks: &[certhub_core::DeployTask],
    ) -> Result<(), Error> {
        let mut sealed = Vec::with_capacity(tasks.len());
        for task in tasks {
            let name = &task.name;
            sealed.push((name, self.seal_json(TABLE, &row_key(cert_name, name), "task", task)?));
        }
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(position) FROM deploy_tasks WHERE cert_name = $1")
                .bind(cert_name)
                .fetch_one(&mut **tx)
                .await?;
        let first = last.map_or(0, |p| p + 1);
        for (position, ((name, sealed), task)) in (first..).zip(sealed.into_iter().zip(tasks)) {
            sqlx::query(
                "INSERT INTO deploy_tasks (cert_name, name, position, task, credential) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(cert_name)
            .bind(name)
            .bind(position)
            .bind(sealed)
            .bind(task.action.credential())
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::AlreadyExists { what: WHAT, name: row_key(cert_name, name) }
                } else if is_foreign_key_violation(&e) {
                    Error::NotFound { what: "managed certificate", name: cert_name.to_owned() }
                } else {
                    e.into()
                }
            })?;
        }
        Ok(())
    }

    /// Removes a task, with `audit`'s entry. Fails with [`Error::NotFound`] when there is no
    /// such task.
    pub async fn remove_deploy_task(
        &self,
        cert_name: &str,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let result = sqlx::query("DELETE FROM deploy_tasks WHERE cert_name = $1 AND name = $2")
            .bind(cert_name)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Err(Error::NotFound { what: WHAT, name: row_key(cert_name, name) });
        }
        self.commit_change(tx, audit).await
    }

    /// Records how a task ran; `delivered` (when `Some`) becomes its deployed issued
    /// certificate. Without it, the task is pending: the scheduler's next run retries it.
    /// `failed` adds one to its failures in a row, `done` ends them.
    pub async fn record_deploy_outcome(
        &self,
        cert_name: &str,
        name: &str,
        delivered: Option<i64>,
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE deploy_tasks SET deployed_issued_id = COALESCE($1, deployed_issued_id), \
             last_outcome = $2, last_detail = $3, last_run_at = $4, \
             failures = CASE $2 WHEN 'failed' THEN failures + 1 WHEN 'done' THEN 0 \
             ELSE failures END \
             WHERE cert_name = $5 AND name = $6",
        )
        .bind(delivered)
        .bind(outcome)
        .bind(detail)
        .bind(now_ms())
        .bind(cert_name)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() == 0 {
            return Err(Error::NotFound { what: WHAT, name: row_key(cert_name, name) });
        }
        if delivered.is_none() {
            crate::cert::recheck(&mut tx, cert_name).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
