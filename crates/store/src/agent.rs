//! The hub's agent authority, kept sealed in `meta` (row `agent_ca`): made once, by the first
//! hub that needs it, and shared by every hub on the database.

use zeroize::Zeroizing;

use crate::{AuditEntry, Change, Error, Store, now_ms};

const ROW: &str = "agent_ca";

/// The agent authority as kept: its certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentAuthority {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for AgentAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAuthority").field("key_pem", &"<redacted>").finish_non_exhaustive()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    cert_pem: String,
    key_pem: String,
}

impl Store {
    /// The agent authority, if one was kept.
    pub async fn agent_authority(&self) -> Result<Option<AgentAuthority>, Error> {
        let Some(blob) = self.meta(ROW).await? else {
            return Ok(None);
        };
        let kept: Kept = self.open_json("meta", ROW, "value", &blob)?;
        Ok(Some(AgentAuthority { cert_pem: kept.cert_pem, key_pem: Zeroizing::new(kept.key_pem) }))
    }

    /// Keeps `authority` unless one is kept already (another hub may have made its own at
    /// the same moment); the one kept, which every hub then uses.
    pub async fn keep_agent_authority(
        &self,
        authority: &AgentAuthority,
    ) -> Result<AgentAuthority, Error> {
        let kept =
            Kept { cert_pem: authority.cert_pem.clone(), key_pem: authority.key_pem.to_string() };
        let sealed = self.seal_json("meta", ROW, "value", &kept)?;
        drop(Zeroizing::new(kept.key_pem));
        sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(ROW)
            .bind(sealed)
            .execute(&self.writer)
            .await?;
        self.agent_authority()
            .await?
            .ok_or_else(|| Error::NotFound { what: "agent authority", name: ROW.into() })
    }
}

/// A join token as kept (its secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTokenRecord {
    pub id: String,
    pub token_hash: String,
    /// `KEY=VALUE` each, given to the agent that joins with it.
    pub labels: Vec<String>,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub agent_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    token_hash: String,
    labels: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    agent_id: Option<String>,
}

/// A joined agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: String,
    pub name: String,
    /// The serial of the client certificate it was given, hex.
    pub cert_serial: String,
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub version: Option<String>,
    /// The names its web servers serve, as it last reported them.
    pub discovered: Vec<String>,
    pub joined_at: i64,
    pub last_seen_at: Option<i64>,
    /// `KEY=VALUE` each, sorted.
    pub labels: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: String,
    name: String,
    cert_serial: String,
    hostname: Option<String>,
    os: Option<String>,
    version: Option<String>,
    discovered: Option<String>,
    joined_at: i64,
    last_seen_at: Option<i64>,
    labels: Option<String>,
}

/// What joins: the agent's id, name, client certificate serial and facts.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: String,
    pub name: String,
    pub cert_serial: String,
    pub hostname: String,
    pub os: String,
    pub version: String,
}

/// What an agent last reported of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentDeploymentRecord {
    pub agent_id: String,
    pub agent_name: String,
    pub cert_name: String,
    /// `deployed`, `failed` or `refused`.
    pub state: String,
    /// The serial deployed (with `deployed`) or tried.
    pub serial_hex: Option<String>,
    /// When the serial was deployed.
    pub deployed_at: Option<i64>,
    pub error: Option<String>,
    /// What the checked endpoints serve, one line each.
    pub verified: Option<String>,
    pub updated_at: i64,
}

const SELECT_AGENTS: &str = "SELECT a.id, a.name, a.cert_serial, a.hostname, a.os, a.version, \
     a.discovered, a.joined_at, a.last_seen_at, \
     (SELECT STRING_AGG(l.label, ' ' ORDER BY l.label) FROM agent_labels l \
      WHERE l.agent_id = a.id) AS labels FROM agents a";

impl Store {
    /// Keeps a join token whose secret hashes to `token.token_hash`, with `audit`'s entry.
    pub async fn insert_agent_token(
        &self,
        token: &AgentTokenRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        sqlx::query(
            "INSERT INTO agent_tokens (id, token_hash, labels, created_by, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(&token.token_hash)
        .bind(token.labels.join(" "))
        .bind(&token.created_by)
        .bind(now_ms())
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await?;
        self.commit_change(tx, audit).await
    }

    /// The join token `id`, if there is one.
    pub async fn agent_token(&self, id: &str) -> Result<Option<AgentTokenRecord>, Error> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT id, token_hash, labels, created_by, created_at, expires_at, used_at, \
             agent_id FROM agent_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| AgentTokenRecord {
            id: r.id,
            token_hash: r.token_hash,
            labels: words(Some(r.labels)),
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            agent_id: r.agent_id,
        }))
    }

    /// Joins an agent with join token `token_id`, all or nothing: the token is spent (unless
    /// another join spent it first, or it expired: [`Error::InUse`]), the agent is kept with
    /// the token's labels (its name taken: [`Error::AlreadyExists`]), with `audit`'s entry.
    pub async fn join_agent(
        &self,
        token_id: &str,
        agent: &NewAgent,
        audit: Option<&AuditEntry>,
    ) -> Result<AgentRecord, Error> {
        let now = now_ms();
        let mut tx = self.begin_change(audit).await?;
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM agents WHERE name = $1")
            .bind(&agent.name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(Error::AlreadyExists { what: "agent", name: agent.name.clone() });
        }
        let labels: Option<String> = sqlx::query_scalar(
            "UPDATE agent_tokens SET used_at = $1, agent_id = $2 \
             WHERE id = $3 AND used_at IS NULL AND expires_at > $1 RETURNING labels",
        )
        .bind(now)
        .bind(&agent.id)
        .bind(token_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(labels) = labels else {
            return Err(Error::InUse {
                what: "join token",
                name: token_id.into(),
                by: "an agent that joined with it",
            });
        };
        sqlx::query(
            "INSERT INTO agents (id, name, cert_serial, hostname, os, version, joined_at, \
             last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&agent.id)
        .bind(&agent.name)
        .bind(&agent.cert_serial)
        .bind(&agent.hostname)
        .bind(&agent.os)
        .bind(&agent.version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let labels = words(Some(labels));
        insert_labels_in(&mut tx, &agent.id, &labels).await?;
        self.commit_change(tx, audit).await?;
        self.agent_named(&agent.name).await
    }

    /// Every agent, by name.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, Error> {
        let sql = format!("{SELECT_AGENTS} ORDER BY a.name");
        let rows: Vec<AgentRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(agent_record).collect())
    }

    /// The agent named `name`, if any.
    pub async fn agent(&self, name: &str) -> Result<Option<AgentRecord>, Error> {
        let sql = format!("{SELECT_AGENTS} WHERE a.name = $1");
        let row: Option<AgentRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map(agent_record))
    }

    /// The agent named `name`, or [`Error::NotFound`].
    async fn agent_named(&self, name: &str) -> Result<AgentRecord, Error> {
        self.agent(name).await?.ok_or_else(|| Error::NotFound { what: "agent", name: name.into() })
    }

    /// The agent with id `id`, if it was not removed.
    pub async fn agent_by_id(&self, id: &str) -> Result<Option<AgentRecord>, Error> {
        let sql = format!("{SELECT_AGENTS} WHERE a.id = $1");
        let row: Option<AgentRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(agent_record))
    }

    /// Records that agent `id` connected now, with the facts it reports of its machine.
    pub async fn agent_seen(
        &self,
        id: &str,
        facts: &certhub_core::agent::AgentFacts,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE agents SET hostname = $1, os = $2, version = $3, discovered = $4, \
             last_seen_at = $5 WHERE id = $6",
        )
        .bind(&facts.hostname)
        .bind(&facts.os)
        .bind(&facts.version)
        .bind(facts.discovered.join(" "))
        .bind(now_ms())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records agent `id`'s new client certificate (its serial), with `audit`'s entry.
    pub async fn set_agent_cert(
        &self,
        id: &str,
        serial: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let done = sqlx::query("UPDATE agents SET cert_serial = $1 WHERE id = $2")
            .bind(serial)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound { what: "agent", name: id.into() });
        }
        self.commit_change(tx, audit).await
    }

    /// Records that agent `id` was last connected now.
    pub async fn agent_last_seen(&self, id: &str) -> Result<(), Error> {
        sqlx::query("UPDATE agents SET last_seen_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Replaces the labels of agent `name`, with `audit`'s entry; the agent.
    pub async fn set_agent_labels(
        &self,
        name: &str,
        labels: &[String],
        audit: Option<&AuditEntry>,
    ) -> Result<AgentRecord, Error> {
        let agent = self.agent_named(name).await?;
        let mut tx = self.begin_change(audit).await?;
        sqlx::query("DELETE FROM agent_labels WHERE agent_id = $1")
            .bind(&agent.id)
            .execute(&mut *tx)
            .await?;
        insert_labels_in(&mut tx, &agent.id, labels).await?;
        self.commit_change(tx, audit).await?;
        self.changed(Change::Labels(agent.id.clone()));
        self.agent_named(name).await
    }

    /// Removes agent `name` with what it reported, with `audit`'s entry: its identity is
    /// refused from then on. The removed agent.
    pub async fn remove_agent(
        &self,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<AgentRecord, Error> {
        let agent = self.agent_named(name).await?;
        let mut tx = self.begin_change(audit).await?;
        for sql in [
            "DELETE FROM agent_deployments WHERE agent_id = $1",
            "DELETE FROM agent_challenges WHERE agent_id = $1",
            "DELETE FROM agent_labels WHERE agent_id = $1",
            "DELETE FROM agents WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&agent.id).execute(&mut *tx).await?;
        }
        self.commit_change(tx, audit).await?;
        self.changed(Change::AgentRemoved(agent.id.clone()));
        Ok(agent)
    }

    /// What changes when anything an agent deploys may have changed: the newest issued
    /// certificate, the targets and the labels (a cheap look, for following the changes
    /// other processes make to the store).
    pub async fn agent_marker(&self) -> Result<(i64, i64, i64, i64), Error> {
        Ok(sqlx::query_as(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM issued),              (SELECT COUNT(*) FROM cert_targets), (SELECT COUNT(*) FROM agent_labels),              (SELECT COUNT(*) FROM agents)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The certificates whose key agent `id` makes (`--key-on agent`) and whose certificate
    /// request it has not sent yet.
    pub async fn agent_csr_wanted(&self, id: &str) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT c.name FROM certs c JOIN cert_targets t ON t.cert_name = c.name \
             JOIN agents a ON t.target = 'agent:' || a.name \
             WHERE a.id = $1 AND c.key_type = $2 AND c.csr_pem IS NULL ORDER BY c.name",
        )
        .bind(id)
        .bind(certhub_core::agent::KEY_ON_AGENT)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The ids of every agent.
    pub async fn agent_ids(&self) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar("SELECT id FROM agents").fetch_all(&self.pool).await?)
    }

    /// The targets of certificate `cert`, as written (`agent:NAME`, `label:KEY=VALUE`).
    pub async fn cert_targets(&self, cert: &str) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT target FROM cert_targets WHERE cert_name = $1 ORDER BY target",
        )
        .bind(cert)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces the targets of certificate `cert`, with `audit`'s entry.
    pub async fn set_cert_targets(
        &self,
        cert: &str,
        targets: &[certhub_core::agent::Target],
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM certs WHERE name = $1")
            .bind(cert)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound { what: "managed certificate", name: cert.into() });
        }
        sqlx::query("DELETE FROM cert_targets WHERE cert_name = $1")
            .bind(cert)
            .execute(&mut *tx)
            .await?;
        insert_targets_in(&mut tx, cert, targets).await?;
        self.commit_change(tx, audit).await?;
        self.changed(Change::Targets(cert.into()));
        Ok(())
    }

    /// Whether certificate `cert` is deployed by agents (it has a target).
    pub async fn cert_is_targeted(&self, cert: &str) -> Result<bool, Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cert_targets WHERE cert_name = $1")
            .bind(cert)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// The certificates agent `id` deploys, by name, with the serial of each one's latest
    /// certificate (certificates not issued yet are left out).
    pub async fn agent_assignments(&self, id: &str) -> Result<Vec<(String, String)>, Error> {
        Ok(sqlx::query_as(
            "SELECT c.cert_name, (SELECT i.serial_hex FROM issued i \
              WHERE i.cert_name = c.cert_name ORDER BY i.id DESC LIMIT 1) AS serial \
             FROM (SELECT t.cert_name FROM cert_targets t JOIN agents a \
                   ON t.target = 'agent:' || a.name WHERE a.id = $1 \
                   UNION SELECT t.cert_name FROM cert_targets t JOIN agent_labels l \
                   ON t.target = 'label:' || l.label WHERE l.agent_id = $1) c \
             WHERE EXISTS (SELECT 1 FROM issued i WHERE i.cert_name = c.cert_name) \
             ORDER BY c.cert_name",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether agent `id` deploys certificate `cert`.
    pub async fn agent_deploys(&self, id: &str, cert: &str) -> Result<bool, Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM cert_targets t WHERE t.cert_name = $2 AND \
             (t.target IN (SELECT 'agent:' || a.name FROM agents a WHERE a.id = $1) \
              OR t.target IN (SELECT 'label:' || l.label FROM agent_labels l \
                              WHERE l.agent_id = $1))",
        )
        .bind(id)
        .bind(cert)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// The ids of the agents that deploy certificate `cert`.
    pub async fn cert_agents(&self, cert: &str) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT a.id FROM agents a JOIN cert_targets t ON t.target = 'agent:' || a.name \
             WHERE t.cert_name = $1 \
             UNION SELECT l.agent_id FROM agent_labels l JOIN cert_targets t \
             ON t.target = 'label:' || l.label WHERE t.cert_name = $1",
        )
        .bind(cert)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records agent `id`'s report on certificate `cert`. A serial deployed keeps its time
    /// of deployment when reported again.
    pub async fn record_agent_deployment(
        &self,
        id: &str,
        report: &certhub_core::agent::DeployReport,
    ) -> Result<(), Error> {
        use certhub_core::agent::DeployState;
        let now = now_ms();
        let deployed = report.state == DeployState::Deployed;
        let verified = (!report.verified.is_empty()).then(|| report.verified.join("\n"));
        sqlx::query(
            "INSERT INTO agent_deployments (agent_id, cert_name, state, serial_hex, \
             deployed_at, error, verified, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (agent_id, cert_name) DO UPDATE SET state = excluded.state, \
             deployed_at = CASE WHEN excluded.deployed_at IS NULL THEN NULL \
               WHEN agent_deployments.serial_hex = excluded.serial_hex \
               AND agent_deployments.deployed_at IS NOT NULL \
               THEN agent_deployments.deployed_at ELSE excluded.deployed_at END, \
             serial_hex = excluded.serial_hex, error = excluded.error, \
             verified = excluded.verified, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(&report.cert)
        .bind(report.state.as_str())
        .bind(&report.serial)
        .bind(deployed.then_some(now))
        .bind(&report.error)
        .bind(verified)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// What the agents reported, of certificate `cert` (when given), of agent `agent` (when
    /// given), by agent name and certificate name.
    pub async fn agent_deployments(
        &self,
        cert: Option<&str>,
        agent: Option<&str>,
    ) -> Result<Vec<AgentDeploymentRecord>, Error> {
        Ok(sqlx::query_as(
            "SELECT d.agent_id, a.name AS agent_name, d.cert_name, d.state, d.serial_hex, \
             d.deployed_at, d.error, d.verified, d.updated_at FROM agent_deployments d \
             JOIN agents a ON a.id = d.agent_id \
             WHERE ($1 IS NULL OR d.cert_name = $1) AND ($2 IS NULL OR d.agent_id = $2) \
             ORDER BY a.name, d.cert_name",
        )
        .bind(cert)
        .bind(agent)
        .fetch_all(&self.pool)
        .await?)
    }
}

fn words(s: Option<String>) -> Vec<String> {
    s.unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

fn agent_record(r: AgentRow) -> AgentRecord {
    AgentRecord {
        id: r.id,
        name: r.name,
        cert_serial: r.cert_serial,
        hostname: r.hostname,
        os: r.os,
        version: r.version,
        discovered: words(r.discovered),
        joined_at: r.joined_at,
        last_seen_at: r.last_seen_at,
        labels: words(r.labels),
    }
}

async fn insert_labels_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    agent_id: &str,
    labels: &[String],
) -> Result<(), Error> {
    for label in labels {
        sqlx::query("INSERT INTO agent_labels (agent_id, label) VALUES ($1, $2)")
            .bind(agent_id)
            .bind(label)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_targets_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    cert: &str,
    targets: &[certhub_core::agent::Target],
) -> Result<(), Error> {
    for target in targets {
        sqlx::query("INSERT INTO cert_targets (cert_name, target) VALUES ($1, $2)")
            .bind(cert)
            .bind(target.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
