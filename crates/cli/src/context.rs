//! What every command needs: where the data is, and how dns-01 answers are checked.

use std::path::PathBuf;

/// What every command needs.
#[derive(Clone)]
pub struct Context {
    pub data_dir: PathBuf,
    pub database: Option<String>,
    pub dns: certhub_challenge::dns::DnsCheckConfig,
    /// How the CAs are talked to.
    pub acme: certhub_acme::ClientConfig,
}

impl Context {
    pub async fn store(&self) -> anyhow::Result<certhub_store::Store> {
        use anyhow::Context as _;
        let store = certhub_store::Store::open_database(&self.data_dir, self.database.as_deref());
        match &self.database {
            None => store.await.with_context(|| {
                format!("cannot open the data directory {}", self.data_dir.display())
            }),
            Some(_) => store.await.context("cannot open the PostgreSQL database"),
        }
    }

    /// The engine over `store`, for a command that orders or probes.
    pub fn engine(&self, store: certhub_store::Store) -> certhub_engine::Engine {
        certhub_engine::Engine::new(store, self.config(Default::default()))
    }

    /// The engine's configuration, with the ports a test probes.
    pub fn config(
        &self,
        probe_ports: certhub_challenge::probe::ProbePorts,
    ) -> certhub_engine::Config {
        certhub_engine::Config {
            data_dir: self.data_dir.clone(),
            dns: self.dns.clone(),
            probe_ports,
            acme: self.acme.clone(),
        }
    }
}

/// Where the data lives by default: `$XDG_DATA_HOME/certhub`, `~/.local/share/certhub`, or
/// for root, `/var/lib/certhub`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("certhub");
    }
    // Root runs services: its data belongs under /var/lib, not in a home directory.
    let is_root = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
    };
    match std::env::var_os("HOME").filter(|_| !is_root) {
        Some(home) => PathBuf::from(home).join(".local/share/certhub"),
        None => PathBuf::from("/var/lib/certhub"),
    }
}
