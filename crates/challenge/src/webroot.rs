//! http-01 answered by files in a web server's document root:
//! `DIR/.well-known/acme-challenge/TOKEN`, written atomically and removed afterwards.

use std::path::{Path, PathBuf};

use certhub_core::{PendingChallenge, Solver, SolverError};

/// Writes challenge files below a webroot.
#[derive(Debug, Clone)]
pub struct WebrootSolver {
    root: PathBuf,
}

impl WebrootSolver {
    /// `root` is the document root the web server serves for the names.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(".well-known").join("acme-challenge")
    }

    fn path(&self, token: &str) -> Result<PathBuf, SolverError> {
        // Tokens are base64url (RFC 8555 §8.3): anything else could escape the directory.
        let ok = !token.is_empty()
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(SolverError::Unsupported(format!(
                "refusing to write the http-01 token {token:?}: it is not base64url"
            )));
        }
        Ok(self.dir().join(token))
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> SolverError {
    move |source| SolverError::Io { what, source }
}

#[async_trait::async_trait]
impl Solver for WebrootSolver {
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let path = self.path(&challenge.token)?;
        let dir = self.dir();
        let body = challenge.key_authorization.clone();
        tokio::task::spawn_blocking(move || write_atomic(&dir, &path, body.as_bytes()))
            .await
            .map_err(|e| SolverError::Io {
                what: "writing the http-01 token".into(),
                source: std::io::Error::other(e),
            })?
    }

    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let path = self.path(&challenge.token)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("cannot remove {}", path.display()))(e)),
        }
        // Remove the directories we may have made, if nothing else lives there.
        let dir = self.dir();
        for d in [dir.as_path(), dir.parent().unwrap_or(&dir)] {
            if tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
        }
        Ok(())
    }
}

fn write_atomic(dir: &Path, path: &Path, data: &[u8]) -> Result<(), SolverError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(io(format!("cannot write {}", tmp.display())))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("cannot write {}", path.display())))
}
