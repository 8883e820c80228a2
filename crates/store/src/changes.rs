//! The changes that agents' connections follow: a certificate issued or retargeted, an
//! agent's labels changed or the agent removed, a challenge for an agent wanted or over.
//!
//! A store tells its own subscribers at once (a broadcast in the process). On PostgreSQL it
//! also tells the other processes on the database (other hubs, `certhub` commands) with
//! `NOTIFY`, and a hub that follows them ([`Store::follow_other_processes`]) hears theirs with
//! `LISTEN` and tells its subscribers as if the change were its own. A notification lost
//! while the listening connection is being made again is caught by the hub's periodic look.

use serde::{Deserialize, Serialize};

use crate::{Backend, Error, Store};

/// A change that agents' connections follow, told to every subscriber of this store (see
/// [`Store::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "of", rename_all = "kebab-case")]
pub enum Change {
    /// A certificate has a new latest certificate (issued or imported).
    Issued(String),
    /// A certificate's targets changed.
    Targets(String),
    /// An agent's labels changed (its id).
    Labels(String),
    /// An agent was removed (its id).
    AgentRemoved(String),
    /// A challenge that an agent answers was wanted, or is over (the agent's id).
    Challenge(String),
}

/// How many changes a slow subscriber may fall behind before it misses some (and is told
/// so, to catch up from the store).
const CHANGES_BUFFER: usize = 4096;

/// The PostgreSQL channel the changes go through.
const CHANNEL: &str = "certhub_changes";

/// A change as notified to the other processes: which store made it, so that its own
/// notifications are not told twice.
#[derive(Serialize, Deserialize)]
struct Notified {
    from: String,
    change: Change,
}

/// The sender of this store's changes, and what it needs to reach other processes.
#[derive(Debug, Clone)]
pub(crate) struct Changes {
    tx: tokio::sync::broadcast::Sender<Change>,
    /// This store's own mark on its notifications.
    origin: String,
    /// The PostgreSQL database's URL, to listen on.
    url: Option<String>,
}

impl Changes {
    pub(crate) fn new(url: Option<&str>) -> Self {
        Self {
            tx: tokio::sync::broadcast::channel(CHANGES_BUFFER).0,
            origin: (0..8).map(|_| format!("{:02x}", rand::random::<u8>())).collect(),
            url: url.map(str::to_string),
        }
    }
}

impl Store {
    /// Changes made through this store from now on (and, once it follows them, those other
    /// processes make). A receiver that falls behind by more than a few thousand gets
    /// `Lagged` and should re-read what it follows.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.tx.subscribe()
    }

    /// Tells the subscribers, and on PostgreSQL the other processes, of `change` (made and
    /// committed).
    pub(crate) fn changed(&self, change: Change) {
        if self.backend == Backend::Postgres {
            let notified = Notified { from: self.changes.origin.clone(), change: change.clone() };
            // Names and ids: it always serializes.
            let payload = serde_json::to_string(&notified).expect("a change serializes");
            let pool = self.writer.clone();
            tokio::spawn(async move {
                // pg_notify returns void, which the Any driver cannot describe: count it.
                let sent = sqlx::query("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) n")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(&pool)
                    .await;
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "telling other processes of a change failed");
                }
            });
        }
        let _ = self.changes.tx.send(change);
    }

    /// On PostgreSQL, hears from now on the changes other processes make to the database and
    /// tells this store's subscribers, until the returned task is aborted. On SQLite there is
    /// no such channel: `None`.
    pub async fn follow_other_processes(
        &self,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
        let Some(url) = &self.changes.url else { return Ok(None) };
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        let (tx, origin) = (self.changes.tx.clone(), self.changes.origin.clone());
        Ok(Some(tokio::spawn(async move {
            loop {
                // A lost connection is made again here; what was said meanwhile is lost.
                match listener.recv().await {
                    Ok(n) => match serde_json::from_str::<Notified>(n.payload()) {
                        Ok(notified) if notified.from != origin => {
                            let _ = tx.send(notified.change);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "a change not understood"),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for other processes' changes");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        })))
    }
}
