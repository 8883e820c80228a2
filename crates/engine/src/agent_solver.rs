//! http-01 and tls-alpn-01 answered by an agent on its own machine, for a certificate whose
//! key it keeps (`--key-on agent`): the names point at that machine, not at the hub. The
//! challenge goes through the store (see `certhub_store`'s `agent_challenge`), so whichever
//! process orders, the hub the agent is connected to pushes it, and the agent's answer comes
//! back the same way.

use std::time::Duration;

use certhub_core::{ChallengeConfig, PendingChallenge, Solver, SolverError};
use certhub_store::{ChallengeState, Store};

/// How long an agent has to present a challenge: the hub it is connected to may be another
/// process (which hears of it at once on PostgreSQL, within 2 s on SQLite), and an agent
/// whose connection was lost is back within about 10 s.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// How often the orderer looks for the agent's answer.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Challenges of one configuration answered by agent `agent_id` (named `agent`) for
/// certificate `cert`.
pub(crate) struct AgentSolver {
    pub store: Store,
    pub agent_id: String,
    pub agent: String,
    pub cert: String,
    pub config: ChallengeConfig,
}

#[async_trait::async_trait]
impl Solver for AgentSolver {
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let store_error = |e: certhub_store::Error| {
            SolverError::Agent(format!("asking agent {} to present it: {e}", self.agent))
        };
        let id = self
            .store
            .want_agent_challenge(&self.agent_id, &self.cert, &self.config, challenge)
            .await
            .map_err(store_error)?;
        let until = tokio::time::Instant::now() + ANSWER_WITHIN;
        loop {
            let kept = self.store.agent_challenge(id).await.map_err(store_error)?;
            match kept.map(|k| (k.state, k.error)) {
                Some((ChallengeState::Presented, _)) => return Ok(()),
                Some((ChallengeState::Failed, why)) => {
                    return Err(SolverError::Agent(format!(
                        "agent {} could not present it: {}",
                        self.agent,
                        why.unwrap_or_else(|| format!(
                            "it failed without a reason kept (agent_challenges row {id})"
                        ))
                    )));
                }
                Some((ChallengeState::Wanted, _)) => {}
                Some((ChallengeState::Cleanup, _)) | None => {
                    return Err(SolverError::Agent(format!(
                        "the challenge was withdrawn before agent {} answered",
                        self.agent
                    )));
                }
            }
            if tokio::time::Instant::now() >= until {
                return Err(SolverError::Agent(format!(
                    "agent {} did not answer within {} s: is `certhub agent run` running \
                     there, and connected (`certhub agent show {}`)?",
                    self.agent,
                    ANSWER_WITHIN.as_secs(),
                    self.agent
                )));
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        self.store.agent_challenge_over(&self.cert, &challenge.token).await.map_err(|e| {
            SolverError::Agent(format!("asking agent {} to remove it: {e}", self.agent))
        })
    }
}
