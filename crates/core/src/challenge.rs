//! Challenge configurations (how each identifier is validated) and the [`Solver`] trait.
//!
//! A configuration is written on the command line as a SPEC:
//!
//! ```text
//! http-01:listen=HOST:PORT
//! http-01:webroot=DIR
//! tls-alpn-01:listen=HOST:PORT
//! dns-01:exec=PATH
//! dns-01:rfc2136=HOST:PORT,key-name=NAME,key-secret=BASE64,algorithm=hmac-sha256
//! dns-01:callback=URL,secret=SECRET
//! dns-01:rfc2136=HOST:PORT,credential=NAME     (the TSIG key from a stored credential)
//! dns-01:callback=URL,credential=NAME          (the secret from a stored credential)
//! dns-01:channel=NAME                          (URL and secret from a stored credential)
//! dns-01:provider=NAME,credential=C[,zone=Z]   (a DNS provider's API, see crate::dns_provider)
//! ```
//!
//! each optionally followed by `;domains=PATTERN,PATTERN…` (a pattern is a name, or
//! `*.example.com` for every name below example.com) and, for dns-01, by
//! `;propagation-timeout=SECONDS` and `;propagation=check|wait:SECONDS|resolver:HOST:PORT`
//! (see [`Propagation`]). A certificate may have several configurations; an
//! identifier uses the first whose patterns match it (no `domains` matches everything).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identifier::Identifier;
use crate::secret::Secret;

/// The three ACME challenge types certhub answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeKind {
    /// dns-01: a TXT record at `_acme-challenge.NAME`.
    #[serde(rename = "dns-01")]
    Dns01,
    /// http-01: a file at `http://NAME/.well-known/acme-challenge/TOKEN`.
    #[serde(rename = "http-01")]
    Http01,
    /// tls-alpn-01 (RFC 8737): a self-signed certificate served for ALPN `acme-tls/1`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl ChallengeKind {
    /// The name the ACME protocol uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Dns01 => "dns-01",
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TSIG algorithms for RFC 2136 updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TsigAlgorithm {
    /// hmac-sha256 (the default).
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// hmac-sha384.
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    /// hmac-sha512.
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// How one group of identifiers is validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum ChallengeConfig {
    /// dns-01 through the callback channel: certhub POSTs signed JSON events to `url`.
    Dns01Callback {
        /// Where the events go.
        url: String,
        /// HMAC-SHA256 key for the signature header (empty while `credential` names it).
        secret: Secret,
        /// The stored credential (kind `callback`) holding the key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
    },
    /// dns-01 through a DNS provider's API.
    Dns01Provider {
        /// The provider, as [`crate::dns_provider::PROVIDERS`] names it.
        provider: String,
        /// The stored credential, of the provider's kind.
        credential: String,
        /// The zone to change; found by its SOA when not given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
        /// The credential's fields, filled in from it at each order.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        fields: std::collections::BTreeMap<String, Secret>,
    },
    /// dns-01 through an executable following lego's exec convention.
    Dns01Exec {
        /// The hook: called as `PATH present FQDN VALUE` and `PATH cleanup FQDN VALUE`.
        path: PathBuf,
    },
    /// dns-01 through RFC 2136 dynamic update signed with TSIG.
    Dns01Rfc2136 {
        /// The primary name server accepting updates.
        server: SocketAddr,
        /// TSIG key name.
        key_name: String,
        /// TSIG key secret, base64.
        key_secret: Secret,
        /// TSIG algorithm.
        algorithm: TsigAlgorithm,
        /// The stored credential (kind `tsig`) holding the key (then name and secret are
        /// empty here, and filled in from it at each order).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
    },
    /// http-01 answered by certhub's own listener.
    Http01Listen {
        /// Address to listen on.
        listen: SocketAddr,
    },
    /// http-01 answered by files written below `webroot/.well-known/acme-challenge/`.
    Http01Webroot {
        /// The web server's document root.
        webroot: PathBuf,
    },
    /// tls-alpn-01 answered by certhub's own listener.
    TlsAlpn01Listen {
        /// Address to listen on.
        listen: SocketAddr,
    },
}

impl ChallengeConfig {
    /// Where and how this configuration answers, in plain language, secrets left out.
    pub fn describe(&self) -> String {
        match self {
            Self::Http01Listen { listen } => format!("certhub answers on http://{listen}"),
            Self::Http01Webroot { webroot } => {
                format!(
                    "a file is written below {}/.well-known/acme-challenge/ and removed after",
                    webroot.display()
                )
            }
            Self::TlsAlpn01Listen { listen } => {
                format!("certhub answers TLS (acme-tls/1) on {listen}")
            }
            Self::Dns01Rfc2136 { server, credential: Some(c), .. } => {
                format!(
                    "a TXT record is added by RFC 2136 update on {server} (TSIG key of credential {c}) and removed after"
                )
            }
            Self::Dns01Rfc2136 { server, key_name, .. } => {
                format!(
                    "a TXT record is added by RFC 2136 update on {server} (TSIG key {key_name}) and removed after"
                )
            }
            Self::Dns01Exec { path } => {
                format!("{} present/cleanup publishes the TXT record", path.display())
            }
            Self::Dns01Provider { provider, credential, zone, .. } => format!(
                "a TXT record is added through the {provider} API{} (credential {credential}) \
                 and removed after",
                zone.as_ref().map(|z| format!(" in zone {z}")).unwrap_or_default()
            ),
            Self::Dns01Callback { url, credential: Some(c), .. } if url.is_empty() => {
                format!(
                    "signed events to callback channel {c} ask for the TXT record and say when it can go"
                )
            }
            Self::Dns01Callback { url, .. } => format!(
                "signed events to {} ask for the TXT record and say when it can go",
                crate::secret::shown_url(url)
            ),
        }
    }

    /// The stored credential this configuration takes its secrets from, if any.
    pub fn credential(&self) -> Option<&str> {
        match self {
            Self::Dns01Rfc2136 { credential, .. } | Self::Dns01Callback { credential, .. } => {
                credential.as_deref()
            }
            Self::Dns01Provider { credential, .. } => Some(credential),
            _ => None,
        }
    }

    /// The kind of stored credential this configuration takes its secrets from, if it can
    /// take one.
    pub fn credential_kind(&self) -> Option<&'static str> {
        match self {
            Self::Dns01Rfc2136 { .. } => Some("tsig"),
            Self::Dns01Callback { .. } => Some("callback"),
            Self::Dns01Provider { provider, .. } => {
                crate::dns_provider::provider_named(provider).ok().map(|k| k.name)
            }
            _ => None,
        }
    }

    /// This configuration with the secrets of its credential, `values` of kind `kind`, filled
    /// in; or why that credential does not fit it.
    pub fn with_credential(
        &self,
        kind: &str,
        values: &std::collections::BTreeMap<String, Secret>,
    ) -> Result<ChallengeConfig, String> {
        let name = self.credential().unwrap_or_default();
        let value = |field: &str| values.get(field).cloned().unwrap_or_else(|| Secret::new(""));
        let Some(wanted) = self.credential_kind() else { return Ok(self.clone()) };
        if kind != wanted {
            return Err(format!(
                "credential {name} is a {kind} credential, and {} takes a {wanted} one",
                match self {
                    Self::Dns01Rfc2136 { .. } => "dns-01:rfc2136".to_string(),
                    Self::Dns01Provider { provider, .. } => format!("dns-01:provider={provider}"),
                    _ => "dns-01:callback".to_string(),
                }
            ));
        }
        let mut out = self.clone();
        match &mut out {
            Self::Dns01Rfc2136 { key_name, key_secret, algorithm, .. } => {
                *key_name = value("key-name").expose().to_string();
                *key_secret = value("key-secret");
                if let Some(a) = values.get("algorithm").filter(|a| !a.expose().is_empty()) {
                    *algorithm = parse_algorithm(a.expose())
                        .map_err(|e| format!("credential {name}'s algorithm: {e}"))?;
                }
            }
            Self::Dns01Callback { url, secret, .. } => {
                *secret = value("secret");
                if url.is_empty() {
                    let given = value("url");
                    if given.expose().is_empty() {
                        return Err(format!(
                            "credential {name} has no url for dns-01:channel={name}: rotate it \
                             with its url, or write dns-01:callback=URL,credential={name}"
                        ));
                    }
                    *url = given.expose().to_string();
                }
            }
            Self::Dns01Provider { fields, .. } => *fields = values.clone(),
            _ => {}
        }
        Ok(out)
    }

    /// The challenge type this configuration answers.
    pub fn kind(&self) -> ChallengeKind {
        match self {
            Self::Dns01Callback { .. }
            | Self::Dns01Exec { .. }
            | Self::Dns01Provider { .. }
            | Self::Dns01Rfc2136 { .. } => ChallengeKind::Dns01,
            Self::Http01Listen { .. } | Self::Http01Webroot { .. } => ChallengeKind::Http01,
            Self::TlsAlpn01Listen { .. } => ChallengeKind::TlsAlpn01,
        }
    }
}

/// A challenge configuration and the identifiers it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeSpec {
    /// How to answer.
    pub config: ChallengeConfig,
    /// Patterns of the identifiers this applies to; empty means all.
    #[serde(default)]
    pub domains: Vec<String>,
    /// How long to wait for a dns-01 record to be visible on every authoritative server.
    #[serde(default, with = "opt_secs")]
    pub propagation_timeout: Option<Duration>,
    /// How certhub knows a dns-01 record is there before it asks the CA to look.
    #[serde(default, skip_serializing_if = "Propagation::is_check")]
    pub propagation: Propagation,
}

/// How certhub knows a dns-01 record is there before it asks the CA to look
/// (`;propagation=…`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Propagation {
    /// Until every authoritative server of the zone answers with it (`check`, the default).
    #[default]
    Check,
    /// No lookups: wait this long, then ask the CA (`wait:SECONDS`), for a zone certhub
    /// cannot see from where it runs (split-horizon DNS).
    Wait { seconds: u64 },
    /// Until this resolver answers with it (`resolver:HOST:PORT`).
    Resolver { address: SocketAddr },
}

impl Propagation {
    /// Whether this is the default, `check`.
    pub fn is_check(&self) -> bool {
        *self == Propagation::Check
    }

    fn parse(v: &str) -> Result<Self, String> {
        let v = v.trim();
        if v == "check" {
            return Ok(Propagation::Check);
        }
        if let Some(secs) = v.strip_prefix("wait:") {
            let seconds = secs.trim().parse().map_err(|_| {
                format!("propagation=wait:{secs}: write a whole number of seconds, e.g. wait:60")
            })?;
            return Ok(Propagation::Wait { seconds });
        }
        if let Some(addr) = v.strip_prefix("resolver:") {
            let address = addr.trim().parse().map_err(|_| {
                format!("propagation=resolver:{addr}: write HOST:PORT, e.g. resolver:10.0.0.2:53")
            })?;
            return Ok(Propagation::Resolver { address });
        }
        Err(format!(
            "propagation={v}: write check (every authoritative server, the default), \
             wait:SECONDS (no lookups) or resolver:HOST:PORT"
        ))
    }
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Propagation::Check => f.write_str("check"),
            Propagation::Wait { seconds } => write!(f, "wait:{seconds}"),
            Propagation::Resolver { address } => write!(f, "resolver:{address}"),
        }
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

/// A SPEC that could not be parsed; the message names the part and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("challenge spec {spec:?}: {reason}")]
pub struct SpecError {
    /// The SPEC as given, with secrets replaced by `***`.
    pub spec: String,
    /// What is wrong.
    pub reason: String,
}

impl ChallengeSpec {
    /// Does this configuration apply to `id`?
    pub fn matches(&self, id: &Identifier) -> bool {
        if self.domains.is_empty() {
            return true;
        }
        let value = id.to_string();
        self.domains.iter().any(|p| pattern_matches(p, &value))
    }

    /// Parses a SPEC as documented on this module.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let err = |reason: String| SpecError { spec: redact(spec), reason };
        let mut parts = spec.split(';');
        let head = parts.next().unwrap_or_default().trim();
        let (method, rest) = head
            .split_once(':')
            .ok_or_else(|| err("expected METHOD:OPTIONS, e.g. http-01:listen=0.0.0.0:80".into()))?;
        let options = parse_options(rest).map_err(&err)?;
        let need = |key: &str| -> Result<&str, SpecError> {
            options
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| err(format!("{method} needs {key}=…")))
        };
        let addr = |key: &str| -> Result<SocketAddr, SpecError> {
            let v = need(key)?;
            v.parse().map_err(|_| err(format!("{key}={v} is not an address of the form HOST:PORT")))
        };
        // `credential=NAME`, which then replaces the `secrets` options.
        let credential = |secrets: &[&str]| -> Result<Option<String>, SpecError> {
            let Some((_, c)) = options.iter().find(|(k, _)| k == "credential") else {
                return Ok(None);
            };
            if let Some((k, _)) =
                options.iter().find(|(k, _)| secrets.contains(&k.as_str()) && k != "algorithm")
            {
                return Err(err(format!(
                    "give credential={c} or {k}=…, not both: the credential holds it"
                )));
            }
            crate::credential::check_name(c).map_err(&err)?;
            Ok(Some(c.clone()))
        };
        let first = options.first().map(|(k, _)| k.as_str()).unwrap_or_default();
        let config = match (method, first) {
            ("http-01", "listen") => ChallengeConfig::Http01Listen { listen: addr("listen")? },
            ("http-01", "webroot") => {
                ChallengeConfig::Http01Webroot { webroot: PathBuf::from(need("webroot")?) }
            }
            ("tls-alpn-01", "listen") => {
                ChallengeConfig::TlsAlpn01Listen { listen: addr("listen")? }
            }
            ("dns-01", "exec") => ChallengeConfig::Dns01Exec { path: PathBuf::from(need("exec")?) },
            ("dns-01", "rfc2136") => {
                let algorithm = match options.iter().find(|(k, _)| k == "algorithm") {
                    None => TsigAlgorithm::HmacSha256,
                    Some((_, a)) => parse_algorithm(a).map_err(&err)?,
                };
                match credential(&["key-name", "key-secret", "algorithm"])? {
                    Some(c) => ChallengeConfig::Dns01Rfc2136 {
                        server: addr("rfc2136")?,
                        key_name: String::new(),
                        key_secret: Secret::new(""),
                        algorithm,
                        credential: Some(c),
                    },
                    None => ChallengeConfig::Dns01Rfc2136 {
                        server: addr("rfc2136")?,
                        key_name: need("key-name")?.to_string(),
                        key_secret: Secret::new(need("key-secret")?),
                        algorithm,
                        credential: None,
                    },
                }
            }
            ("dns-01", "provider") => {
                let provider = need("provider")?;
                let kind = crate::dns_provider::provider_named(provider).map_err(&err)?;
                if let Some((k, _)) = options
                    .iter()
                    .find(|(k, _)| !["provider", "credential", "zone"].contains(&k.as_str()))
                {
                    return Err(err(format!(
                        "{k}=… is not an option of dns-01:provider; its options are credential=NAME \
                         and zone=ZONE, and the provider's fields ({}) go in the credential",
                        kind.fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                    )));
                }
                let Some((_, credential)) = options.iter().find(|(k, _)| k == "credential") else {
                    return Err(err(format!(
                        "dns-01:provider={provider} needs credential=NAME: keep its secrets with \
                         `certhub credential add NAME --kind {provider}`"
                    )));
                };
                crate::credential::check_name(credential).map_err(&err)?;
                let zone = match options.iter().find(|(k, _)| k == "zone") {
                    None => None,
                    Some((_, z)) => {
                        let z = z.trim().trim_end_matches('.').to_ascii_lowercase();
                        if z.is_empty() || z.contains(|c: char| c.is_whitespace() || c == '/') {
                            return Err(err(format!(
                                "zone={z} is not a DNS zone, e.g. example.com"
                            )));
                        }
                        Some(z)
                    }
                };
                ChallengeConfig::Dns01Provider {
                    provider: kind.name.to_string(),
                    credential: credential.clone(),
                    zone,
                    fields: Default::default(),
                }
            }
            ("dns-01", "channel") => {
                let name = need("channel")?;
                crate::credential::check_name(name).map_err(&err)?;
                ChallengeConfig::Dns01Callback {
                    url: String::new(),
                    secret: Secret::new(""),
                    credential: Some(name.to_string()),
                }
            }
            ("dns-01", "callback") => {
                let url = need("callback")?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(err(format!(
                        "callback={} is not an http:// or https:// URL",
                        crate::secret::shown_url(url)
                    )));
                }
                match credential(&["secret"])? {
                    Some(c) => ChallengeConfig::Dns01Callback {
                        url: url.to_string(),
                        secret: Secret::new(""),
                        credential: Some(c),
                    },
                    None => ChallengeConfig::Dns01Callback {
                        url: url.to_string(),
                        secret: Secret::new(need("secret")?),
                        credential: None,
                    },
                }
            }
            ("http-01" | "tls-alpn-01" | "dns-01", _) => {
                return Err(err(format!(
                    "unknown {method} mode {first:?}; expected {}",
                    match method {
                        "http-01" => "listen=HOST:PORT or webroot=DIR",
                        "tls-alpn-01" => "listen=HOST:PORT",
                        _ => {
                            "provider=NAME,credential=C, exec=PATH, rfc2136=HOST:PORT,…, \
                             callback=URL,… or channel=NAME"
                        }
                    }
                )));
            }
            _ => {
                return Err(err(format!(
                    "unknown challenge type {method:?}; expected http-01, tls-alpn-01 or dns-01"
                )));
            }
        };
        let mut out = ChallengeSpec {
            config,
            domains: Vec::new(),
            propagation_timeout: None,
            propagation: Propagation::Check,
        };
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v) =
                part.split_once('=').ok_or_else(|| err(format!("{part:?} is not KEY=VALUE")))?;
            match k.trim() {
                "domains" => {
                    out.domains = v
                        .split(',')
                        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                        .filter(|d| !d.is_empty())
                        .collect();
                }
                "propagation-timeout" => {
                    let secs: u64 = v.trim().parse().map_err(|_| {
                        err(format!("propagation-timeout={v} is not a whole number of seconds"))
                    })?;
                    out.propagation_timeout = Some(Duration::from_secs(secs));
                }
                "propagation" => {
                    if out.config.kind() != ChallengeKind::Dns01 {
                        return Err(err(format!(
                            "propagation applies to dns-01 only, not {}",
                            out.config.kind()
                        )));
                    }
                    out.propagation = Propagation::parse(v).map_err(&err)?;
                }
                other => return Err(err(format!("unknown option {other:?}"))),
            }
        }
        Ok(out)
    }
}

/// A TSIG algorithm's name.
fn parse_algorithm(a: &str) -> Result<TsigAlgorithm, String> {
    match a.trim().to_ascii_lowercase().trim_end_matches('.') {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => {
            Err(format!("algorithm={other} is not one of hmac-sha256, hmac-sha384, hmac-sha512"))
        }
    }
}

/// `OPTIONS` is `first=value,key=value,…`; the first value may itself contain no comma.
pub(crate) fn parse_options(rest: &str) -> Result<Vec<(String, String)>, String> {
    rest.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("{p:?} is not KEY=VALUE"))
        })
        .collect()
}

pub(crate) fn redact(spec: &str) -> String {
    let mut out = String::with_capacity(spec.len());
    for (i, piece) in spec.split(',').enumerate() {
        if i > 0 {
            out.push(',');
        }
        // The first option follows the kind (`webhook:secret=…`).
        match piece.split_once('=') {
            Some((k, _))
                if matches!(k.rsplit(':').next(), Some("secret" | "key-secret" | "password")) =>
            {
                out.push_str(k);
                out.push_str("=***");
            }
            // A callback URL may hold credentials of its own.
            Some((k, v)) if k.rsplit(':').next() == Some("callback") => {
                out.push_str(k);
                out.push('=');
                out.push_str(&crate::secret::shown_url(v));
            }
            _ => out.push_str(piece),
        }
    }
    out
}

/// `*.example.com` matches every name below example.com (and the wildcard itself);
/// anything else matches itself, case-insensitively.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let value = value.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(base) => value.ends_with(&format!(".{base}")),
        None => value == pattern,
    }
}

/// One challenge to answer: what the CA asked for and the key authorization that answers it.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingChallenge {
    /// The managed certificate being validated.
    pub cert: String,
    /// The challenge type.
    pub kind: ChallengeKind,
    /// The identifier being validated; for a wildcard the base name (without `*.`).
    pub identifier: Identifier,
    /// The challenge token.
    pub token: String,
    /// `token || '.' || base64url(JWK thumbprint)` (RFC 8555 §8.1).
    pub key_authorization: String,
}

impl fmt::Debug for PendingChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingChallenge")
            .field("cert", &self.cert)
            .field("kind", &self.kind)
            .field("identifier", &self.identifier)
            .field("token", &self.token)
            .field("key_authorization", &"<redacted>")
            .finish()
    }
}

/// Why a solver could not present or clean up a challenge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SolverError {
    /// The solver's own setup failed (bind a port, write a file, run a hook).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The DNS server refused or failed an update or a query.
    #[error("{0}")]
    Dns(String),
    /// A hook or callback answered with a failure.
    #[error("{0}")]
    Hook(String),
    /// A record did not become visible on every authoritative server in time.
    #[error("{0}")]
    NotPropagated(String),
    /// The configuration cannot serve this challenge.
    #[error("{0}")]
    Unsupported(String),
    /// The agent answering on its machine could not present it, or did not answer.
    #[error("{0}")]
    Agent(String),
}

/// Answers challenges of one configuration.
///
/// `present` makes the challenge answerable and returns only when the CA can validate it
/// (for dns-01: when the TXT value is visible on every authoritative server of the zone).
/// `cleanup` removes what `present` set up; it is called for every presented challenge,
/// whatever the outcome, and must tolerate being called for something already removed
/// (a resumed order cleans up what a crashed run presented).
#[async_trait::async_trait]
pub trait Solver: Send + Sync {
    /// Makes `challenge` answerable.
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError>;
    /// Removes what `present` set up.
    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_is_checked_by_default_and_may_wait_or_go_through_a_resolver() {
        let spec = |s: &str| ChallengeSpec::parse(s);
        let dns = "dns-01:exec=/usr/local/bin/hook";
        assert_eq!(spec(dns).unwrap().propagation, Propagation::Check);
        let wait = spec(&format!("{dns};propagation=wait:90")).unwrap();
        assert_eq!(wait.propagation, Propagation::Wait { seconds: 90 });
        let via = spec(&format!("{dns};propagation=resolver:10.0.0.2:53")).unwrap();
        let address = "10.0.0.2:53".parse().unwrap();
        assert_eq!(via.propagation, Propagation::Resolver { address });
        assert_eq!(via.propagation.to_string(), "resolver:10.0.0.2:53");
        // Kept as JSON and read back; the default is not written, and older rows read.
        let json = serde_json::to_value(&via).unwrap();
        assert_eq!(serde_json::from_value::<ChallengeSpec>(json).unwrap(), via);
        let plain = serde_json::to_value(spec(dns).unwrap()).unwrap();
        assert!(plain.get("propagation").is_none(), "{plain}");
        for (bad, says) in [
            (format!("{dns};propagation=soon"), "wait:SECONDS"),
            (format!("{dns};propagation=wait:a minute"), "whole number of seconds"),
            (format!("{dns};propagation=resolver:dns.local"), "HOST:PORT"),
            ("http-01:listen=0.0.0.0:80;propagation=wait:5".to_string(), "dns-01 only"),
        ] {
            let said = spec(&bad).unwrap_err().to_string();
            assert!(said.contains(says), "{bad}: {said}");
        }
    }

    #[test]
    fn a_callback_urls_credentials_are_never_shown() {
        let url = "https://ops:pa55word@hooks.example:8443/s3cr3t-path?token=t0ken";
        let spec = ChallengeSpec::parse(&format!("dns-01:callback={url},secret=k3y")).unwrap();
        let shown = spec.config.describe();
        let mistyped = url.replace("https://", "htps://");
        let said = ChallengeSpec::parse(&format!("dns-01:callback={mistyped},secret=k3y"));
        let said = said.unwrap_err().to_string();
        assert!(!said.contains("pa55word") && !said.contains("s3cr3t-path"), "{said}");
        assert!(shown.contains("https://hooks.example:8443"), "{shown}");
        // A bad SPEC's error repeats the SPEC, without them too.
        let bad = ChallengeSpec::parse(&format!(
            "dns-01:callback={url},secret=k3y;propagation-timeout=soon"
        ));
        let said = bad.unwrap_err().to_string();
        for text in [&shown, &said] {
            for secret in ["pa55word", "ops:", "s3cr3t-path", "t0ken", "k3y"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }
}
