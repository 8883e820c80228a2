//! Agents: labels, a certificate's targets, and what the hub and its agents say to each
//! other over the agent connection (JSON).
//!
//! A label is `KEY=VALUE`; a target is `agent:NAME` (one agent) or `label:KEY=VALUE` (every
//! agent carrying that label, now or when it joins later).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DeployTask;

/// The URI an agent's client certificate carries: `urn:certhub:agent:ID`.
pub const AGENT_URI_PREFIX: &str = "urn:certhub:agent:";

/// Checks an agent's name: 1 to 63 letters, digits, `.`, `_` or `-`, starting with a letter
/// or digit (a host name fits).
pub fn check_agent_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "agent name {name:?} is not valid: use 1 to 63 letters, digits, '.', '_' or '-', \
             starting with a letter or digit"
        ))
    }
}

/// A label, `KEY=VALUE`: the key 1 to 63 lower-case letters, digits, `.`, `_`, `-` or `/`,
/// the value up to 63 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub key: String,
    pub value: String,
}

impl Label {
    /// Parses `KEY=VALUE`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("label {s:?} is not valid: {why}");
        let (key, value) = s.split_once('=').ok_or_else(|| bad("write it as KEY=VALUE"))?;
        let key_ok = !key.is_empty()
            && key.len() <= 63
            && key.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/')
            });
        if !key_ok {
            return Err(bad(
                "the key must be 1 to 63 lower-case letters, digits, '.', '_', '-' or '/'",
            ));
        }
        let value_ok = value.len() <= 63
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !value_ok {
            return Err(bad("the value must be up to 63 letters, digits, '.', '_' or '-'"));
        }
        Ok(Self { key: key.into(), value: value.into() })
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Parses labels, each `KEY=VALUE`, into a sorted set: a key given twice is refused.
pub fn parse_labels(given: &[String]) -> Result<Vec<Label>, String> {
    let mut labels: Vec<Label> =
        given.iter().map(|s| Label::parse(s.trim())).collect::<Result<_, _>>()?;
    labels.sort();
    if let Some(w) = labels.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(format!("label key {:?} is given twice", w[0].key));
    }
    Ok(labels)
}

/// Where a certificate is deployed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// The agent of that name.
    Agent(String),
    /// Every agent with that label.
    Label(Label),
}

impl Target {
    /// Parses `agent:NAME` or `label:KEY=VALUE`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(name) = s.strip_prefix("agent:") {
            check_agent_name(name)?;
            Ok(Self::Agent(name.into()))
        } else if let Some(label) = s.strip_prefix("label:") {
            Ok(Self::Label(Label::parse(label)?))
        } else {
            Err(format!("target {s:?} is not valid: write agent:NAME or label:KEY=VALUE"))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent(name) => write!(f, "agent:{name}"),
            Self::Label(label) => write!(f, "label:{label}"),
        }
    }
}

/// Parses targets into a sorted set without repeats.
pub fn parse_targets(given: &[String]) -> Result<Vec<Target>, String> {
    let mut targets: Vec<Target> =
        given.iter().map(|s| Target::parse(s)).collect::<Result<_, _>>()?;
    targets.sort();
    targets.dedup();
    Ok(targets)
}

/// What an agent says of its machine, at joining and each time it connects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFacts {
    pub hostname: String,
    pub os: String,
    /// The agent's certhub version.
    pub version: String,
    /// The names its web servers serve, from their configuration (nginx, Apache).
    #[serde(default)]
    pub discovered: Vec<String>,
}

/// A join request: the token, the agent's name and its CSR (the key stays on the agent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token: String,
    pub name: String,
    pub csr_pem: String,
    pub facts: AgentFacts,
}

/// The hub's answer to a join: the agent's identity and where to connect with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Joined {
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    /// The agent's client certificate, PEM.
    pub cert_pem: String,
    /// The agent authority's certificate, PEM: the only one the agent trusts for the hub's
    /// agent endpoint.
    pub ca_pem: String,
    /// The hub's agent endpoint, `https://HOST:PORT`.
    pub agent_url: String,
}

/// A certificate assigned to an agent and the serial of its latest issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub cert: String,
    pub serial: String,
}

/// A message the hub pushes on an agent's stream, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Push {
    /// Every certificate assigned to the agent, sent when the stream starts (and when the
    /// agent's labels change): the agent deploys those it has not deployed yet.
    Assigned { certs: Vec<Assignment> },
    /// A certificate was issued, or newly assigned to the agent.
    Deploy(Assignment),
    /// A certificate whose key the agent makes (`--key-on agent`) needs its certificate
    /// request: the agent makes the key, keeps it, and sends a CSR for `names`.
    Csr { cert: String, names: Vec<String> },
    /// A challenge to present (or to remove) on the agent's machine, for a certificate whose
    /// key it keeps: the agent answers with a [`ChallengeAnswer`].
    Challenge(ChallengeTask),
    /// Nothing happened: the connection is alive.
    Ping,
}

/// An agent's certificate request for a certificate whose key it keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsrReport {
    pub cert: String,
    pub csr_pem: String,
}

/// An http-01 or tls-alpn-01 challenge that an agent answers on its own machine, for a
/// certificate whose key it keeps (`--key-on agent`): the hub's DNS answers dns-01 itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeTask {
    /// The hub's number for it, which the agent's answer names.
    pub id: i64,
    /// The certificate being validated.
    pub cert: String,
    /// Present it, or remove what presenting it set up.
    pub action: ChallengeAction,
    /// How to answer it: `http-01:listen=…`, `http-01:webroot=…` or `tls-alpn-01:listen=…`.
    pub config: crate::ChallengeConfig,
    /// The identifier validated (a wildcard's base name).
    pub identifier: crate::Identifier,
    pub token: String,
    /// What the CA expects to find (`token.thumbprint`); nothing secret.
    pub key_authorization: String,
}

impl ChallengeTask {
    /// The challenge as a solver takes it.
    pub fn pending(&self) -> crate::PendingChallenge {
        crate::PendingChallenge {
            cert: self.cert.clone(),
            kind: self.config.kind(),
            identifier: self.identifier.clone(),
            token: self.token.clone(),
            key_authorization: self.key_authorization.clone(),
        }
    }
}

/// What the hub asks of a [`ChallengeTask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeAction {
    Present,
    Remove,
}

/// An agent's answer to a [`ChallengeTask`], `POST /agent/v1/challenges/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum ChallengeAnswer {
    /// The CA may look now.
    Presented,
    /// It could not be presented (the port is taken, the webroot may not be written…).
    Failed { error: String },
    /// What presenting set up is gone.
    Removed,
}

/// An agent's request for a new client certificate, and the hub's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityRenewal {
    /// The request (from the agent), or the new certificate (from the hub), PEM.
    pub pem: String,
}

/// The key type of a certificate whose key its agent makes and keeps.
pub const KEY_ON_AGENT: &str = "agent";

/// A certificate as delivered to its agent: the chain, the key, and the tasks to run.
#[derive(Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub cert: String,
    pub serial: String,
    /// Leaf first, PEM.
    pub chain_pem: String,
    /// PKCS#8 PEM; empty when the agent keeps the key itself (`--key-on agent`).
    pub key_pem: String,
    pub not_before: i64,
    pub not_after: i64,
    pub domains: Vec<String>,
    pub tasks: Vec<DeployTask>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("cert", &self.cert)
            .field("serial", &self.serial)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// How a deployment on an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployState {
    /// Every task ran.
    Deployed,
    /// A task failed.
    Failed,
    /// The agent refused a task (`--allow-commands`, `--allow-dir`).
    Refused,
}

impl DeployState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployed => "deployed",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deployed" => Some(Self::Deployed),
            "failed" => Some(Self::Failed),
            "refused" => Some(Self::Refused),
            _ => None,
        }
    }
}

/// An agent's report of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployReport {
    pub cert: String,
    pub serial: String,
    pub state: DeployState,
    /// Why it failed or was refused.
    #[serde(default)]
    pub error: Option<String>,
    /// What each endpoint checked after deploying serves: `HOST:PORT serial X`, or why it
    /// could not be checked.
    #[serde(default)]
    pub verified: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_targets_parse_and_print_back() {
        let l = Label::parse("role=web").unwrap();
        assert_eq!(l.to_string(), "role=web");
        assert!(Label::parse("role").unwrap_err().contains("KEY=VALUE"));
        assert!(Label::parse("Role=web").unwrap_err().contains("lower-case"));
        assert!(Label::parse("role=a b").unwrap_err().contains("value"));
        assert_eq!(
            parse_labels(&["b=1".into(), "a=2".into()]).unwrap(),
            vec![Label::parse("a=2").unwrap(), Label::parse("b=1").unwrap()]
        );
        assert!(parse_labels(&["a=1".into(), "a=2".into()]).unwrap_err().contains("twice"));
        for t in ["agent:web-1", "label:role=web"] {
            assert_eq!(Target::parse(t).unwrap().to_string(), t);
        }
        assert!(Target::parse("web-1").unwrap_err().contains("agent:NAME"));
        assert!(Target::parse("agent:").is_err());
        assert_eq!(
            parse_targets(&["agent:a".into(), "agent:a".into()]).unwrap(),
            vec![Target::Agent("a".into())]
        );
    }

    #[test]
    fn pushes_are_one_tagged_object() {
        let p = Push::Deploy(Assignment { cert: "web".into(), serial: "01".into() });
        let line = serde_json::to_string(&p).unwrap();
        assert_eq!(line, r#"{"type":"deploy","cert":"web","serial":"01"}"#);
        assert_eq!(serde_json::from_str::<Push>(&line).unwrap(), p);
        assert_eq!(serde_json::to_string(&Push::Ping).unwrap(), r#"{"type":"ping"}"#);
    }
}
