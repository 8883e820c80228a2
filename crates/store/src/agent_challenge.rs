//! Challenges an agent answers on its own machine (http-01, tls-alpn-01 for a certificate
//! whose key it keeps): the process that orders writes one `wanted` and waits; the hub the
//! agent is connected to pushes it; the agent's answer moves it to `presented` or `failed`.
//! After validation the orderer sets `cleanup`, and the agent's word that it removed what it
//! set up deletes the row.

use certhub_core::agent::{ChallengeAction, ChallengeAnswer, ChallengeTask};
use certhub_core::{ChallengeConfig, Identifier, PendingChallenge};

use crate::Change;
use crate::vocab::ChallengeState;
use crate::{Error, Store, now_ms};

/// A challenge an agent answers, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentChallengeRecord {
    pub id: i64,
    pub agent_id: String,
    pub state: ChallengeState,
    /// Why the agent could not present it.
    pub error: Option<String>,
    /// What the agent is asked to do, as it is pushed.
    pub task: ChallengeTask,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    agent_id: String,
    cert_name: String,
    token: String,
    config: String,
    challenge: String,
    state: String,
    error: Option<String>,
}

/// The parts of a challenge kept beside its token.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    identifier: Identifier,
    key_authorization: String,
}

impl Row {
    fn record(self) -> Result<AgentChallengeRecord, Error> {
        let row = self.id.to_string();
        let unreadable = |column: &str, e: serde_json::Error| {
            Error::Unreadable(format!("the stored {column} of agent_challenges row {row}: {e}"))
        };
        let state: ChallengeState =
            crate::vocab::parse("agent_challenges", &row, "state", &self.state)?;
        let config: ChallengeConfig =
            serde_json::from_str(&self.config).map_err(|e| unreadable("config", e))?;
        let kept: Kept =
            serde_json::from_str(&self.challenge).map_err(|e| unreadable("challenge", e))?;
        let action = match state {
            ChallengeState::Cleanup => ChallengeAction::Remove,
            _ => ChallengeAction::Present,
        };
        Ok(AgentChallengeRecord {
            id: self.id,
            agent_id: self.agent_id,
            state,
            error: self.error,
            task: ChallengeTask {
                id: self.id,
                cert: self.cert_name,
                action,
                config,
                identifier: kept.identifier,
                token: self.token,
                key_authorization: kept.key_authorization,
            },
        })
    }
}

const SELECT: &str = "SELECT id, agent_id, cert_name, token, config, challenge, state, error \
                      FROM agent_challenges";

impl Store {
    /// Asks agent `agent_id` to present `challenge` for certificate `cert` as `config` says;
    /// the row's id.
    pub async fn want_agent_challenge(
        &self,
        agent_id: &str,
        cert: &str,
        config: &ChallengeConfig,
        challenge: &PendingChallenge,
    ) -> Result<i64, Error> {
        let kept = Kept {
            identifier: challenge.identifier.clone(),
            key_authorization: challenge.key_authorization.clone(),
        };
        // Strings, numbers and addresses: they always serialize.
        let config = serde_json::to_string(config).expect("a challenge configuration serializes");
        let kept = serde_json::to_string(&kept).expect("a challenge serializes");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO agent_challenges (agent_id, cert_name, token, config, challenge, \
             state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(agent_id)
        .bind(cert)
        .bind(&challenge.token)
        .bind(config)
        .bind(kept)
        .bind(ChallengeState::Wanted.as_str())
        .bind(now_ms())
        .fetch_one(&self.writer)
        .await?;
        self.changed(Change::Challenge(agent_id.into()));
        Ok(id)
    }

    /// Challenge `id`, if it is still kept.
    pub async fn agent_challenge(&self, id: i64) -> Result<Option<AgentChallengeRecord>, Error> {
        let row: Option<Row> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(Row::record).transpose()
    }

    /// What agents have still to do: the challenges wanted or to clean up, of agent
    /// `agent_id` or of every agent.
    pub async fn open_agent_challenges(
        &self,
        agent_id: Option<&str>,
    ) -> Result<Vec<AgentChallengeRecord>, Error> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE state IN ($1, $2) AND ($3 = '' OR agent_id = $3) ORDER BY id"
        )))
        .bind(ChallengeState::Wanted.as_str())
        .bind(ChallengeState::Cleanup.as_str())
        .bind(agent_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Row::record).collect()
    }

    /// Validation of the challenge with `token` for certificate `cert` is over: its agent
    /// removes it.
    pub async fn agent_challenge_over(&self, cert: &str, token: &str) -> Result<(), Error> {
        let agents: Vec<String> = sqlx::query_scalar(
            "UPDATE agent_challenges SET state = $3 WHERE cert_name = $1 AND token = $2 \
             RETURNING agent_id",
        )
        .bind(cert)
        .bind(token)
        .bind(ChallengeState::Cleanup.as_str())
        .fetch_all(&self.writer)
        .await?;
        for agent in agents {
            self.changed(Change::Challenge(agent));
        }
        Ok(())
    }

    /// Keeps agent `agent_id`'s answer to challenge `id`. An answer to a challenge that is
    /// not that agent's is not found; one that comes after the orderer moved on changes
    /// nothing.
    pub async fn answer_agent_challenge(
        &self,
        agent_id: &str,
        id: i64,
        answer: &ChallengeAnswer,
    ) -> Result<(), Error> {
        let not_found = || Error::NotFound { what: "challenge", name: id.to_string() };
        let Some(kept) = self.agent_challenge(id).await? else {
            // Removed twice (a repeated answer), or pruned: nothing is left to do.
            return match answer {
                ChallengeAnswer::Removed => Ok(()),
                _ => Err(not_found()),
            };
        };
        if kept.agent_id != agent_id {
            return Err(not_found());
        }
        let (sql, state, error) = match answer {
            ChallengeAnswer::Removed => {
                ("DELETE FROM agent_challenges WHERE id = $1 AND state = $2", None, None)
            }
            ChallengeAnswer::Presented => (
                "UPDATE agent_challenges SET state = $3 WHERE id = $1 AND state = $2",
                Some(ChallengeState::Presented),
                None,
            ),
            ChallengeAnswer::Failed { error } => (
                "UPDATE agent_challenges SET state = $3, error = $4 WHERE id = $1 AND state = $2",
                Some(ChallengeState::Failed),
                Some(error.as_str()),
            ),
        };
        let from = match answer {
            ChallengeAnswer::Removed => ChallengeState::Cleanup,
            _ => ChallengeState::Wanted,
        };
        let mut query = sqlx::query(sql).bind(id).bind(from.as_str());
        if let Some(state) = state {
            query = query.bind(state.as_str());
        }
        if let Some(error) = error {
            query = query.bind(error);
        }
        query.execute(&self.writer).await?;
        Ok(())
    }

    /// Forgets challenges made before `before` (epoch milliseconds): an agent that never
    /// came back to remove one, or an orderer that died waiting.
    pub async fn prune_agent_challenges(&self, before: i64) -> Result<u64, Error> {
        let done = sqlx::query("DELETE FROM agent_challenges WHERE created_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}
