//! One place that turns challenge configurations into solvers, sharing what must be shared:
//! one http-01 or tls-alpn-01 listener per address serves every order in flight, and one
//! propagation checker serves every dns-01 solver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use certhub_core::{ChallengeConfig, ChallengeSpec, Solver, SolverError};
use tokio::sync::Mutex;

use crate::dns::callback::CallbackSolver;
use crate::dns::exec::ExecSolver;
use crate::dns::rfc2136::Rfc2136Solver;
use crate::dns::{DnsCheckConfig, PropagationChecker};
use crate::http01::Http01Responder;
use crate::tls_alpn::TlsAlpnResponder;
use crate::webroot::WebrootSolver;

/// Builds solvers for challenge specs; listeners are bound on first use and shared.
pub struct Solvers {
    dns: DnsCheckConfig,
    http: reqwest::Client,
    http01: Mutex<HashMap<SocketAddr, Arc<Http01Responder>>>,
    tls_alpn: Mutex<HashMap<SocketAddr, Arc<TlsAlpnResponder>>>,
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
        PropagationChecker::new(config)
    }

    /// The solver for `spec`.
    pub async fn for_spec(&self, spec: &ChallengeSpec) -> Result<Arc<dyn Solver>, SolverError> {
        Ok(match &spec.config {
            ChallengeConfig::Http01Listen { listen } => {
                let mut map = self.http01.lock().await;
                match map.get(listen) {
                    Some(r) => r.clone(),
                    None => {
                        let r = Http01Responder::bind(*listen).await?;
                        map.insert(*listen, r.clone());
                        r
                    }
                }
            }
            ChallengeConfig::TlsAlpn01Listen { listen } => {
                let mut map = self.tls_alpn.lock().await;
                match map.get(listen) {
                    Some(r) => r.clone(),
                    None => {
                        let r = TlsAlpnResponder::bind(*listen).await?;
                        map.insert(*listen, r.clone());
                        r
                    }
                }
            }
            ChallengeConfig::Http01Webroot { webroot } => {
                Arc::new(WebrootSolver::new(webroot.clone()))
            }
            ChallengeConfig::Dns01Exec { path } => {
                Arc::new(ExecSolver::new(path.clone(), self.checker(spec)))
            }
            ChallengeConfig::Dns01Rfc2136 { server, key_name, key_secret, algorithm } => {
                Arc::new(Rfc2136Solver::new(
                    *server,
                    key_name.clone(),
                    key_secret.clone(),
                    *algorithm,
                    self.checker(spec),
                )?)
            }
            ChallengeConfig::Dns01Callback { url, secret } => Arc::new(CallbackSolver::new(
                url.clone(),
                secret.clone(),
                self.checker(spec),
                self.http.clone(),
            )),
        })
    }
}
