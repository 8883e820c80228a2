//! The hub's agent authority, kept sealed in `meta` (row `agent_ca`): made once, by the first
//! hub that needs it, and shared by every hub on the database.

use zeroize::Zeroizing;

use crate::{Error, Store};

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
