//! After a deployment: what the web servers on this machine serve. The endpoints come from
//! the tasks (`;verify=HOST:PORT`), or else from the TLS server blocks of the web servers
//! the agent reads (`--discover`) that serve one of the certificate's names (or any name).
//! Each is asked with the certificate's first name as SNI; the answer names the serial it
//! serves.

use std::path::PathBuf;
use std::time::Duration;

use certhub_core::discover::{Discovery, WebServer};
use certhub_core::identifier::RequestRules;

/// How long a web server may take to present the new certificate after its reload.
const SETTLE: Duration = Duration::from_secs(10);

/// A web server whose configuration the agent reads: the server, and its main file (else
/// the usual places).
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub server: WebServer,
    pub config: Option<PathBuf>,
}

/// What the web servers' configurations say now; the problems, each in a sentence.
pub(crate) fn discover(configs: &[WebConfig]) -> (Vec<Discovery>, Vec<String>) {
    let rules = RequestRules { public_ca: false };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for c in configs {
        match certhub_engine::discover::read_config(c.server, c.config.as_deref(), &rules) {
            Ok(d) => found.push(d),
            Err(e) => problems.push(e.to_string()),
        }
    }
    (found, problems)
}

/// The names the web servers serve, for the hub.
pub(crate) fn names(found: &[Discovery]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in found {
        for id in d.identifiers() {
            let id = id.to_string();
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// The endpoints to check for a certificate for `domains` whose tasks name `given`.
pub(crate) fn endpoints(given: &[String], found: &[Discovery], domains: &[String]) -> Vec<String> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let mut out = Vec::new();
    for site in found.iter().flat_map(|d| &d.sites).filter(|s| s.tls) {
        let serves = site.names.is_empty()
            || site.names.iter().any(|n| domains.iter().any(|d| *d == n.identifier.to_string()));
        if !serves {
            continue;
        }
        for listen in &site.listen {
            if let Some(endpoint) = endpoint_of(listen)
                && !out.contains(&endpoint)
            {
                out.push(endpoint);
            }
        }
    }
    out
}

/// `HOST:PORT` to connect to for a `listen` directive's arguments (`443 ssl`,
/// `127.0.0.1:8443 ssl`, `[::]:443 ssl`, `*:443`): its address, or this machine's loopback.
fn endpoint_of(listen: &str) -> Option<String> {
    let first = listen.split_whitespace().next()?;
    let (host, port) = match first.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => (h, p),
        _ => ("", first),
    };
    let port: u16 = port.parse().ok()?;
    let host = match host.trim_matches(|c| c == '[' || c == ']') {
        "" | "*" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "[::1]".to_string(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_string(),
    };
    Some(format!("{host}:{port}"))
}

/// Checks each endpoint, giving it time to present `serial`; a line for each.
pub(crate) async fn check(endpoints: &[String], sni: &str, serial: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for e in endpoints {
        let started = tokio::time::Instant::now();
        let line = loop {
            let served = served_serial(e, sni).await;
            match served {
                Ok(s) if s == serial => break format!("{e} serves serial {s}"),
                _ if started.elapsed() < SETTLE => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Ok(s) => break format!("{e} still serves serial {s}"),
                Err(why) => break format!("{e} could not be checked: {why}"),
            }
        };
        lines.push(line);
    }
    lines
}

/// The serial of the certificate `endpoint` presents for `sni`, each step (finding its
/// address, connecting, the handshake) under 5 s.
async fn served_serial(endpoint: &str, sni: &str) -> Result<String, String> {
    let limit = Duration::from_secs(5);
    let addr = tokio::time::timeout(limit, tokio::net::lookup_host(endpoint))
        .await
        .map_err(|_| format!("{endpoint}: no address within 5 s"))?
        .map_err(|e| format!("{endpoint}: {e}"))?
        .next()
        .ok_or_else(|| format!("{endpoint} has no address"))?;
    let served = certhub_challenge::probe::handshake_within(addr, sni, None, limit).await?;
    let info = certhub_core::CertInfo::from_der(&served.leaf).map_err(|e| e.to_string())?;
    Ok(info.serial_hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_directives_become_endpoints() {
        assert_eq!(endpoint_of("443 ssl").as_deref(), Some("127.0.0.1:443"));
        assert_eq!(endpoint_of("10.0.0.5:8443 ssl http2").as_deref(), Some("10.0.0.5:8443"));
        assert_eq!(endpoint_of("[::]:443 ssl").as_deref(), Some("[::1]:443"));
        assert_eq!(endpoint_of("*:443").as_deref(), Some("127.0.0.1:443"));
        assert_eq!(endpoint_of("unix:/run/x.sock"), None);
    }
}
