//! One place that turns challenge configurations into solvers, sharing what must be shared:
//! one http-01 or tls-alpn-01 listener per address serves every order in flight, and one
//! propagation checker serves every dns-01 solver.
//!
//! A process keeps one `Solvers` for everything it orders or tests (the hub's API, its
//! renewal service and its Test button alike), and a listener lives only while some order
//! holds it: once the last one is done the address is free again, for the next order of
//! this process or for another process (`certhub renew --due` from cron beside an idle hub).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use certhub_core::{ChallengeConfig, ChallengeSpec, Solver, SolverError};
use tokio::sync::Mutex;

use crate::dns::callback::CallbackSolver;
use crate::dns::exec::ExecSolver;
use crate::dns::provider::ProviderSolver;
use crate::dns::rfc2136::Rfc2136Solver;
use crate::dns::{DnsCheckConfig, PropagationChecker};
use crate::http01::Http01Responder;
use crate::tls_alpn::TlsAlpnResponder;
use crate::webroot::WebrootSolver;

/// Builds solvers for challenge specs; listeners are bound on first use, shared while in
/// use, and released when no solver handed out holds them any more.
pub struct Solvers {
    dns: DnsCheckConfig,
    http: reqwest::Client,
    http01: Mutex<HashMap<SocketAddr, Weak<Http01Responder>>>,
    tls_alpn: Mutex<HashMap<SocketAddr, Weak<TlsAlpnResponder>>>,
}

/// The responder listening on `addr` in `map`, or a new one from `bind`.
async fn shared<R>(
    map: &Mutex<HashMap<SocketAddr, Weak<R>>>,
    addr: SocketAddr,
    bind: impl AsyncFn(SocketAddr) -> Result<Arc<R>, SolverError>,
) -> Result<Arc<R>, SolverError> {
    let mut map = map.lock().await;
    if let Some(r) = map.get(&addr).and_then(Weak::upgrade) {
        return Ok(r);
    }
    map.retain(|_, r| r.strong_count() > 0);
    // A responder just released stops listening on its task's next turn: give it a moment.
    let mut tries = 0;
    let r = loop {
        match bind(addr).await {
            Err(SolverError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse && tries < 20 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => break other?,
        }
    };
    map.insert(addr, Arc::downgrade(&r));
    Ok(r)
}

impl Solvers {
    /// `dns` configures the dns-01 propagation check.
    pub fn new(dns: DnsCheckConfig) -> Self {
        Self {
            dns,
            http: reqwest::Client::new(),
            http01: Mutex::new(HashMap::new()),
            tls_alpn: Mutex::new(HashMap::new()),
        }
    }

    /// The propagation checker for `spec`: its own timeout if it has one, 10 minutes for
    /// the callback channel (a person or a slow system may be on the other end), else the
    /// configured default.
    fn checker(&self, spec: &ChallengeSpec) -> PropagationChecker {
        let mut config = self.dns.clone();
        config.timeout = match (&spec.config, spec.propagation_timeout) {
            (_, Some(t)) => t,
            (ChallengeConfig::Dns01Callback { .. }, None) => crate::dns::callback::DEFAULT_WAIT,
            _ => config.timeout,
        };
        config.propagation = spec.propagation;
        PropagationChecker::new(config)
    }

    /// The propagation checker of this process's DNS configuration (the resolver, the
    /// authoritative port), for other lookups (CAA).
    pub fn dns_checker(&self) -> PropagationChecker {
        PropagationChecker::new(self.dns.clone())
    }

    /// The solver for `spec`.
    pub async fn for_spec(&self, spec: &ChallengeSpec) -> Result<Arc<dyn Solver>, SolverError> {
        Ok(match &spec.config {
            ChallengeConfig::Http01Listen { listen } => {
                shared(&self.http01, *listen, Http01Responder::bind).await?
            }
            ChallengeConfig::TlsAlpn01Listen { listen } => {
                shared(&self.tls_alpn, *listen, TlsAlpnResponder::bind).await?
            }
            ChallengeConfig::Http01Webroot { webroot } => {
                Arc::new(WebrootSolver::new(webroot.clone()))
            }
            ChallengeConfig::Dns01Exec { path } => {
                Arc::new(ExecSolver::new(path.clone(), self.checker(spec)))
            }
            ChallengeConfig::Dns01Rfc2136 { server, key_name, key_secret, algorithm, .. } => {
                Arc::new(Rfc2136Solver::new(
                    *server,
                    key_name.clone(),
                    key_secret.clone(),
                    *algorithm,
                    self.checker(spec),
                )?)
            }
            ChallengeConfig::Dns01Provider { provider, credential, zone, fields } => {
                Arc::new(ProviderSolver::new(
                    provider,
                    credential,
                    fields,
                    zone.clone(),
                    self.checker(spec),
                )?)
            }
            ChallengeConfig::Dns01Callback { url, secret, .. } => Arc::new(CallbackSolver::new(
                url.clone(),
                secret.clone(),
                self.checker(spec),
                self.http.clone(),
            )),
        })
    }
}
