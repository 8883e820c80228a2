//! Joining a hub, and the identity it gives: kept in the agent's data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use certhub_core::agent::{JoinRequest, Joined};
use certhub_engine::{Error, Kind};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const STATE_FILE: &str = "agent.json";
const KEY_FILE: &str = "agent-key.pem";
const CERT_FILE: &str = "agent-cert.pem";
const CA_FILE: &str = "agent-ca.pem";

/// How the type of a certhub hub's problem documents starts.
const CERTHUB_PROBLEM: &str = "https://certhub.dev/problems/";

/// What joining needs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The hub's URL, as its users reach it (`https://hub.example:8440`).
    pub hub_url: String,
    pub token: String,
    /// The agent's name (default: the machine's host name).
    pub name: Option<String>,
    /// Certificates to trust for the hub's URL besides the system's (PEM).
    pub ca_bundle: Option<PathBuf>,
}

/// An agent's identity and where its hub is, as kept in `agent.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    pub hub_url: String,
    pub agent_url: String,
}

impl Identity {
    /// The identity kept in `data_dir`.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let file = data_dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::new(
                    Kind::NotFound,
                    format!(
                        "this machine has not joined a hub ({} has no {STATE_FILE}): run \
                         `certhub agent join HUB_URL --token TOKEN` first",
                        data_dir.display()
                    ),
                )
                .into());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", file.display()))
    }

    /// A client for the hub's agent endpoint: this agent's certificate and key, and the agent
    /// authority as the only certificate trusted.
    pub fn client(data_dir: &Path) -> anyhow::Result<reqwest::Client> {
        finish_renewal(data_dir)?;
        let read = |name: &str| {
            let file = data_dir.join(name);
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))
        };
        let mut pem = Zeroizing::new(read(KEY_FILE)?);
        pem.extend_from_slice(&read(CERT_FILE)?);
        let identity = reqwest::Identity::from_pem(&pem)
            .context("the agent's key and certificate do not make a TLS identity")?;
        let ca = reqwest::Certificate::from_pem(&read(CA_FILE)?)
            .context("the agent authority's certificate does not parse")?;
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .identity(identity)
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .http1_only()
            .user_agent(concat!("certhub-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot make the agent's HTTPS client")
    }
}

/// Joins the hub: makes this agent's key (kept in `data_dir`, mode 0600), sends its CSR with
/// the token, and keeps the identity the hub gives. Refused when the data directory already
/// holds an identity.
pub async fn join(data_dir: &Path, options: &JoinOptions) -> anyhow::Result<Identity> {
    if data_dir.join(STATE_FILE).exists() {
        bail!(Error::new(
            Kind::Conflict,
            format!(
                "this machine has joined a hub already ({} holds {STATE_FILE}); to join again, \
                 remove that directory's agent files, or use another --data-dir",
                data_dir.display()
            )
        ));
    }
    let url = url::Url::parse(&options.hub_url).map_err(|e| {
        Error::invalid("hub_url", format!("{:?} is not a URL: {e}", options.hub_url))
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        // The token and the authority the agent will trust cross the network: only on this
        // machine may they go unprotected.
        "http" if loopback => {}
        "http" => bail!(Error::invalid(
            "hub_url",
            format!(
                "{url} is plain HTTP: the join token and the hub's agent authority would cross \
                 the network unprotected; use the hub's https:// URL"
            )
        )),
        _ => bail!(Error::invalid("hub_url", format!("{url}: the hub's URL starts with https://"))),
    }
    let name = match &options.name {
        Some(n) => n.clone(),
        None => crate::facts().hostname.split('.').next().unwrap_or("agent").to_string(),
    };
    let (csr_pem, key_pem) = certhub_engine::agent_ca::agent_request()?;
    let mut client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("certhub-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(bundle) = &options.ca_bundle {
        let pem = std::fs::read(bundle)
            .with_context(|| format!("cannot read --ca-bundle {}", bundle.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::invalid("ca_bundle", format!("--ca-bundle {}: {e}", bundle.display()))
        })?;
        client = client.tls_certs_merge(certs);
    }
    let client = client.build().context("cannot make an HTTPS client")?;
    let join_url = url.join("api/v1/agents/join").context("the hub's URL")?;
    let request = JoinRequest {
        token: options.token.trim().to_string(),
        name: name.clone(),
        csr_pem,
        facts: crate::facts(),
    };
    let rsp = client.post(join_url.clone()).json(&request).send().await.map_err(|e| {
        if is_untrusted(&e) {
            Error::invalid(
                "ca_bundle",
                format!(
                    "the hub at {url} presented a TLS certificate not trusted here ({}): give \
                     the certificate of the CA that signed it with --ca-bundle PEM (for a hub \
                     with a self-signed certificate, that certificate)",
                    cause(&e)
                ),
            )
        } else {
            Error::new(
                Kind::Transient,
                format!(
                    "cannot reach the hub at {url}: {}; check HUB_URL and that the hub runs",
                    cause(&e)
                ),
            )
        }
    })?;
    let status = rsp.status();
    let body = rsp.bytes().await.context("the hub's answer broke off")?;
    if !status.is_success() {
        // A hub answers with its own problem documents.
        let problem: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let detail = problem
            .as_ref()
            .filter(|p| p["type"].as_str().is_some_and(|t| t.starts_with(CERTHUB_PROBLEM)))
            .and_then(|p| p["detail"].as_str().map(str::to_string));
        let Some(detail) = detail else {
            bail!(Error::invalid(
                "hub_url",
                format!("{url} does not look like a certhub hub (it answered {status} to a join)")
            ));
        };
        let kind = match status.as_u16() {
            403 => Kind::Forbidden,
            409 => Kind::Conflict,
            400 => Kind::Invalid,
            503 => Kind::Busy,
            _ => Kind::Internal,
        };
        bail!(Error::new(kind, format!("the hub refused to join this agent: {detail}")));
    }
    let joined: Joined = serde_json::from_slice(&body).map_err(|_| {
        Error::invalid(
            "hub_url",
            format!("{url} does not look like a certhub hub (its answer to a join is not one)"),
        )
    })?;
    keep(data_dir, &joined, &key_pem, &url)
}

fn keep(
    data_dir: &Path,
    joined: &Joined,
    key_pem: &str,
    hub_url: &url::Url,
) -> anyhow::Result<Identity> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let write = |name: &str, data: &[u8], mode: u32| {
        let file = data_dir.join(name);
        certhub_deploy::files::write_atomic(&file, data, mode, Default::default())
            .map_err(|e| anyhow!("cannot write {}: {e}", file.display()))
    };
    write(KEY_FILE, key_pem.as_bytes(), 0o600)?;
    write(CERT_FILE, joined.cert_pem.as_bytes(), 0o644)?;
    write(CA_FILE, joined.ca_pem.as_bytes(), 0o644)?;
    let identity = Identity {
        id: joined.id.clone(),
        name: joined.name.clone(),
        labels: joined.labels.clone(),
        hub_url: hub_url.to_string(),
        agent_url: joined.agent_url.clone(),
    };
    // Written last: an agent.json says the rest is there.
    let json = serde_json::to_vec_pretty(&identity)?;
    write(STATE_FILE, &json, 0o644)?;
    Ok(identity)
}

/// The innermost cause of a request error, in words.
pub(crate) fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

fn is_untrusted(e: &reqwest::Error) -> bool {
    let text = cause(e).to_lowercase();
    text.contains("invalid peer certificate") || text.contains("unknownissuer")
}

/// When this agent's client certificate expires (unix seconds).
pub(crate) fn expires(data_dir: &Path) -> anyhow::Result<i64> {
    let file = data_dir.join(CERT_FILE);
    let pem = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let der = certhub_core::split_pem_chain(&pem)?
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no certificate", file.display()))?;
    Ok(certhub_core::CertInfo::from_der(&der)?.not_after)
}

/// Renews this agent's client certificate with `client` (its current identity): a new key
/// made here, the hub's certificate for it, both kept. Written beside the current files and
/// then renamed, key first; a renewal cut short is finished (or dropped) at the next start.
pub(crate) async fn renew(
    data_dir: &Path,
    client: &reqwest::Client,
    agent_url: &str,
) -> anyhow::Result<()> {
    let (csr_pem, key_pem) = certhub_engine::agent_ca::agent_request()?;
    let url = format!("{}/agent/v1/identity", agent_url.trim_end_matches('/'));
    let body = certhub_core::agent::IdentityRenewal { pem: csr_pem };
    let rsp = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| anyhow!("renewing the agent's certificate: {}", cause(&e)))?;
    let status = rsp.status();
    if !status.is_success() {
        bail!("renewing the agent's certificate: the hub answered {status}");
    }
    let renewed: certhub_core::agent::IdentityRenewal = rsp.json().await?;
    let write = |name: &str, data: &[u8], mode: u32| {
        let file = data_dir.join(name);
        certhub_deploy::files::write_atomic(&file, data, mode, Default::default())
            .map_err(|e| anyhow!("cannot write {}: {e}", file.display()))
    };
    write(&format!("{KEY_FILE}.new"), key_pem.as_bytes(), 0o600)?;
    write(&format!("{CERT_FILE}.new"), renewed.pem.as_bytes(), 0o644)?;
    finish_renewal(data_dir)
}

/// Finishes a renewal that was cut short: the new key and certificate renamed into place
/// when both were written (or the certificate alone, once the key was renamed); a new key
/// without its certificate is dropped.
fn finish_renewal(data_dir: &Path) -> anyhow::Result<()> {
    let key_new = data_dir.join(format!("{KEY_FILE}.new"));
    let cert_new = data_dir.join(format!("{CERT_FILE}.new"));
    let rename = |from: &Path, to: &str| {
        std::fs::rename(from, data_dir.join(to))
            .with_context(|| format!("cannot rename {} into place", from.display()))
    };
    match (key_new.exists(), cert_new.exists()) {
        (true, true) => {
            rename(&key_new, KEY_FILE)?;
            rename(&cert_new, CERT_FILE)?;
        }
        (false, true) => rename(&cert_new, CERT_FILE)?,
        (true, false) => std::fs::remove_file(&key_new)?,
        (false, false) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_cut_short_is_finished_or_dropped_never_half_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let put = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
        let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap();
        put(KEY_FILE, "old key");
        put(CERT_FILE, "old cert");
        // Both new files written: both go in.
        put(&format!("{KEY_FILE}.new"), "new key");
        put(&format!("{CERT_FILE}.new"), "new cert");
        finish_renewal(d).unwrap();
        assert_eq!((read(KEY_FILE), read(CERT_FILE)), ("new key".into(), "new cert".into()));
        // Cut short after the key's rename: the certificate follows it.
        put(KEY_FILE, "newer key");
        put(&format!("{CERT_FILE}.new"), "newer cert");
        finish_renewal(d).unwrap();
        assert_eq!(read(CERT_FILE), "newer cert");
        // Cut short before the certificate was written: the new key is dropped.
        put(&format!("{KEY_FILE}.new"), "orphan key");
        finish_renewal(d).unwrap();
        assert_eq!(read(KEY_FILE), "newer key");
        assert!(!d.join(format!("{KEY_FILE}.new")).exists());
    }
}
