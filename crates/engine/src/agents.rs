//! Agents, as the hub sees them: join tokens, joining (the agent's CSR signed by the agent
//! authority), the agents' labels and removal, a certificate's targets, what a certificate
//! delivered to its agent holds, and what the agents report.

use std::time::Duration;

use certhub_core::agent::{
    AgentFacts, Delivery, DeployReport, JoinRequest, Joined, Target, check_agent_name,
    parse_labels, parse_targets,
};
use certhub_core::time::now_ms;
use certhub_store::{AgentRecord, AgentTokenRecord, AuditEntry, NewAgent};

use crate::Engine;
use crate::agent_ca::AgentCa;
use crate::error::{Error, Kind};

/// How a join token starts: what tells it apart from an API token at a glance.
const TOKEN_PREFIX: &str = "certhub-join_";

/// How long a join token lasts when its maker does not say: a day.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// The longest a join token may last: 30 days.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// A join token just made: its secret is shown this once.
#[derive(Debug, Clone)]
pub struct JoinToken {
    pub id: String,
    /// `certhub-join_ID_SECRET`, for `certhub agent join --token`.
    pub token: String,
    pub labels: Vec<String>,
    pub expires_at: i64,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// `labels` checked, as `KEY=VALUE` strings.
fn check_labels(labels: &[String]) -> Result<Vec<String>, Error> {
    let parsed = parse_labels(labels).map_err(|e| Error::invalid("labels", e))?;
    Ok(parsed.iter().map(ToString::to_string).collect())
}

impl Engine {
    /// Makes a one-time join token giving `labels` to the agent that uses it, valid for
    /// `lifetime`, with `audit`'s entry.
    pub async fn create_join_token(
        &self,
        labels: &[String],
        lifetime: Duration,
        audit: AuditEntry,
    ) -> Result<JoinToken, Error> {
        let labels = check_labels(labels)?;
        if lifetime.is_zero() || lifetime > MAX_TOKEN_LIFETIME {
            return Err(Error::invalid(
                "expires",
                "a join token lasts from a second to 30 days (--expires 24h, 7d)",
            ));
        }
        let id = random_hex(8);
        let secret = random_hex(24);
        let expires_at = now_ms() + lifetime.as_millis() as i64;
        let record = AgentTokenRecord {
            id: id.clone(),
            token_hash: certhub_store::token_hash(&secret),
            labels: labels.clone(),
            created_by: audit.actor.clone(),
            created_at: 0,
            expires_at,
            used_at: None,
            agent_id: None,
        };
        let audit = audit.with_detail(format!("join token {id}, labels [{}]", labels.join(" ")));
        self.store().insert_agent_token(&record, Some(&audit)).await?;
        Ok(JoinToken { token: format!("{TOKEN_PREFIX}{id}_{secret}"), id, labels, expires_at })
    }

    /// Joins the agent `request` describes, the agent authority `ca` (the hub's, see
    /// [`Engine::agent_ca`]) signing its certificate; what the agent needs to connect to
    /// `agent_url`. The join, with `source` (the agent's address), goes to the audit log.
    /// An unknown, used or expired token, or a name taken, changes nothing.
    pub async fn join_agent(
        &self,
        request: &JoinRequest,
        ca: &AgentCa,
        agent_url: &str,
        source: &str,
    ) -> Result<Joined, Error> {
        let refused = |why: &str| {
            Error::new(
                Kind::Forbidden,
                format!(
                    "the join token {why}; ask the hub's admin for a new one \
                     (`certhub agent token create` on the hub, or Agents > Add)"
                ),
            )
            .with_field("token")
        };
        let (id, secret) = request
            .token
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or_else(|| refused("is not one: it starts with certhub-join_"))?;
        let token = self.store().agent_token(id).await?;
        let token = match token {
            Some(t)
                if certhub_store::same_secret(
                    &t.token_hash,
                    &certhub_store::token_hash(secret),
                ) =>
            {
                t
            }
            _ => return Err(refused("is not known to this hub")),
        };
        if let Some(used) = token.used_at {
            return Err(refused(&format!("was used already, at {}", crate::rfc3339(used / 1000))));
        }
        if token.expires_at <= now_ms() {
            return Err(refused(&format!(
                "expired at {}",
                crate::rfc3339(token.expires_at / 1000)
            )));
        }
        check_agent_name(&request.name).map_err(|e| Error::invalid("name", e))?;
        let agent_id = random_hex(16);
        let (cert_pem, serial) = ca.sign_agent(&request.csr_pem, &agent_id)?;
        let AgentFacts { hostname, os, version, .. } = &request.facts;
        let agent = NewAgent {
            id: agent_id.clone(),
            name: request.name.clone(),
            cert_serial: serial,
            hostname: hostname.clone(),
            os: os.clone(),
            version: version.clone(),
        };
        let audit = AuditEntry::new(
            &format!("agent {}", request.name),
            "agent.join",
            &request.name,
            source,
        )
        .with_detail(format!("join token {id}, host {hostname}, id {agent_id}"));
        let joined =
            self.store().join_agent(id, &agent, Some(&audit)).await.map_err(|e| match e {
                certhub_store::Error::AlreadyExists { .. } => Error::new(
                    Kind::Conflict,
                    format!(
                        "an agent named {:?} has joined already: choose another --name, or remove \
                     that agent first (`certhub agent remove {}`)",
                        request.name, request.name
                    ),
                )
                .with_field("name"),
                certhub_store::Error::InUse { .. } => refused("was used already, just now"),
                other => Error::from(other),
            })?;
        Ok(Joined {
            id: joined.id,
            name: joined.name,
            labels: joined.labels,
            cert_pem,
            ca_pem: ca.cert_pem().to_string(),
            agent_url: agent_url.to_string(),
        })
    }

    /// Every agent, by name.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, Error> {
        Ok(self.store().agents().await?)
    }

    /// The agent named `name`.
    pub async fn agent(&self, name: &str) -> Result<AgentRecord, Error> {
        self.store().agent(name).await?.ok_or_else(|| no_agent(name))
    }

    /// Replaces the labels of agent `name`, with `audit`'s entry.
    pub async fn set_agent_labels(
        &self,
        name: &str,
        labels: &[String],
        audit: AuditEntry,
    ) -> Result<AgentRecord, Error> {
        let labels = check_labels(labels)?;
        let audit = audit.with_detail(format!("labels [{}]", labels.join(" ")));
        self.store().set_agent_labels(name, &labels, Some(&audit)).await.map_err(|e| match e {
            certhub_store::Error::NotFound { .. } => no_agent(name),
            other => Error::from(other),
        })
    }

    /// Removes agent `name`, with `audit`'s entry: its identity is refused from then on.
    pub async fn remove_agent(&self, name: &str, audit: AuditEntry) -> Result<AgentRecord, Error> {
        self.store().remove_agent(name, Some(&audit)).await.map_err(|e| match e {
            certhub_store::Error::NotFound { .. } => no_agent(name),
            other => Error::from(other),
        })
    }

    /// Certificate `cert` as delivered to agent `agent_id`: its latest certificate, its key,
    /// and its tasks. Refused unless the certificate is assigned to the agent. Each delivery
    /// of a key goes to the audit log.
    pub async fn delivery(
        &self,
        agent_id: &str,
        agent_name: &str,
        cert: &str,
        source: &str,
    ) -> Result<Delivery, Error> {
        let store = self.store();
        if !store.agent_deploys(agent_id, cert).await? {
            return Err(Error::new(
                Kind::Forbidden,
                format!("certificate {cert:?} is not assigned to agent {agent_name}"),
            ));
        }
        let issued = store.latest_issued(cert).await?.ok_or_else(|| {
            Error::new(Kind::NotFound, format!("certificate {cert} has not been issued yet"))
        })?;
        let tasks = store.deploy_tasks(cert).await?;
        let key_pem = if issued.key_pkcs8.is_empty() {
            String::new()
        } else {
            let detail = format!("serial {} to agent {agent_name}", issued.serial_hex);
            let actor = format!("agent {agent_name}");
            store.audit(&actor, "agent.key_delivered", cert, source, Some(&detail)).await?;
            certhub_core::pem_block("PRIVATE KEY", &issued.key_pkcs8)
        };
        Ok(Delivery {
            cert: cert.to_string(),
            serial: issued.serial_hex.clone(),
            chain_pem: issued.chain_pem.clone(),
            key_pem,
            not_before: issued.not_before / 1000,
            not_after: issued.not_after / 1000,
            domains: issued.sans.iter().map(ToString::to_string).collect(),
            tasks: tasks.into_iter().map(|t| t.task).collect(),
        })
    }

    /// Keeps agent `agent_id`'s answer to the challenge `id` it was asked to present or
    /// remove; the orderer waiting for it reads it from the store.
    pub async fn answer_challenge(
        &self,
        agent_id: &str,
        id: i64,
        answer: &certhub_core::agent::ChallengeAnswer,
    ) -> Result<(), Error> {
        Ok(self.store().answer_agent_challenge(agent_id, id, answer).await?)
    }

    /// What agent `agent_id` has still to do with challenges: present or remove them.
    pub async fn challenge_tasks(
        &self,
        agent_id: &str,
    ) -> Result<Vec<certhub_core::agent::Push>, Error> {
        let open = self.store().open_agent_challenges(Some(agent_id)).await?;
        Ok(open.into_iter().map(|c| certhub_core::agent::Push::Challenge(c.task)).collect())
    }

    /// Records agent `agent_id`'s report of a deployment, with an event in the
    /// certificate's history.
    pub async fn record_report(
        &self,
        agent_id: &str,
        agent_name: &str,
        report: &DeployReport,
    ) -> Result<(), Error> {
        let store = self.store();
        if !store.agent_deploys(agent_id, &report.cert).await? {
            return Err(Error::new(
                Kind::Forbidden,
                format!("certificate {:?} is not assigned to agent {agent_name}", report.cert),
            ));
        }
        store.record_agent_deployment(agent_id, report).await?;
        use certhub_core::agent::DeployState;
        let outcome = if report.state == DeployState::Deployed { "done" } else { "failed" };
        crate::metrics::metrics().deployed(outcome, "agent");
        let (kind, detail) = match report.state {
            DeployState::Deployed => (
                certhub_store::EventKind::Deployed,
                format!("agent {agent_name}: serial {}", report.serial),
            ),
            DeployState::Failed | DeployState::Refused => (
                certhub_store::EventKind::DeployFailed,
                format!(
                    "agent {agent_name}: serial {}: {}",
                    report.serial,
                    report.error.as_deref().unwrap_or(report.state.as_str())
                ),
            ),
        };
        store.record_event(&report.cert, kind, Some(&detail)).await?;
        // A web server that still serves another certificate after a deployment is a
        // failed deployment as far as anyone relying on it is concerned: said, and notified.
        for line in report.verified.iter().filter(|l| l.contains(" still serves serial ")) {
            let detail = format!("agent {agent_name}: {line} (deployed {})", report.serial);
            let kind = certhub_store::EventKind::DeployFailed;
            store.record_event(&report.cert, kind, Some(&detail)).await?;
        }
        Ok(())
    }
}

impl Engine {
    /// The certificate requests agent `agent_id` owes: a push for each certificate whose key
    /// it makes and whose CSR the hub does not have.
    pub async fn csr_wanted(
        &self,
        agent_id: &str,
    ) -> Result<Vec<certhub_core::agent::Push>, Error> {
        let mut pushes = Vec::new();
        for name in self.store().agent_csr_wanted(agent_id).await? {
            let cert = crate::records::load(self.store(), &name).await?;
            let names = cert.identifiers.iter().map(ToString::to_string).collect();
            pushes.push(certhub_core::agent::Push::Csr { cert: name, names });
        }
        Ok(pushes)
    }

    /// A new client certificate (PEM) for agent `agent_id` from the agent authority `ca`, for
    /// the key of `csr_pem` (the agent renews its identity before it expires). Audited.
    pub async fn renew_agent_identity(
        &self,
        ca: &AgentCa,
        agent_id: &str,
        agent_name: &str,
        csr_pem: &str,
        source: &str,
    ) -> Result<String, Error> {
        let (cert_pem, serial) = ca.sign_agent(csr_pem, agent_id)?;
        let audit =
            AuditEntry::new(&format!("agent {agent_name}"), "agent.identity", agent_name, source)
                .with_detail(format!("new client certificate, serial {serial}"));
        self.store().set_agent_cert(agent_id, &serial, Some(&audit)).await?;
        Ok(cert_pem)
    }

    /// Keeps the certificate request agent `agent_id` made for certificate `csr.cert`,
    /// whose key it keeps: checked to be assigned to it, made for that, and to ask for
    /// exactly its identifiers. Audited. Like a certificate just added, it waits for the
    /// scheduler's next regular look, so as not to race the request its owner makes.
    pub async fn agent_csr(
        &self,
        agent_id: &str,
        agent_name: &str,
        csr: &certhub_core::agent::CsrReport,
        source: &str,
    ) -> Result<(), Error> {
        let store = self.store();
        let mut cert = crate::records::load(store, &csr.cert).await?;
        if cert.key_type != certhub_core::agent::KEY_ON_AGENT
            || !store.agent_deploys(agent_id, &csr.cert).await?
        {
            return Err(Error::new(
                Kind::Forbidden,
                format!("agent {agent_name} does not keep the key of certificate {:?}", csr.cert),
            ));
        }
        let parsed = certhub_core::ParsedCsr::parse(csr.csr_pem.as_bytes()).map_err(|e| {
            Error::invalid("csr_pem", format!("the agent's certificate request: {e}"))
        })?;
        let mut asked = parsed.identifiers.clone();
        let mut wanted = cert.identifiers.clone();
        asked.sort_by_key(ToString::to_string);
        wanted.sort_by_key(ToString::to_string);
        if asked != wanted {
            return Err(Error::invalid(
                "csr_pem",
                "the agent's certificate request does not ask for the certificate's identifiers",
            ));
        }
        cert.csr_pem = Some(certhub_core::pem_block("CERTIFICATE REQUEST", &parsed.der));
        let audit = AuditEntry::new(&format!("agent {agent_name}"), "agent.csr", &csr.cert, source)
            .with_detail("the key stays on the agent");
        store.update_cert(&cert, Some(&audit)).await?;
        Ok(())
    }
}

/// Replaces where certificate `cert` is deployed, with `audit`'s entry. Each `agent:NAME`
/// must name an agent that has joined; a label may match none yet. No targets: the hub
/// deploys it again.
pub async fn set_targets(
    store: &certhub_store::Store,
    cert: &str,
    targets: &[String],
    audit: AuditEntry,
) -> Result<Vec<Target>, Error> {
    crate::records::load(store, cert).await?;
    let targets = check_targets(store, targets).await?;
    let words: Vec<String> = targets.iter().map(ToString::to_string).collect();
    let audit = audit.with_detail(format!("targets [{}]", words.join(" ")));
    store.set_cert_targets(cert, &targets, Some(&audit)).await?;
    Ok(targets)
}

/// Targets as given, checked: each `agent:NAME` names an agent that has joined.
pub async fn check_targets(
    store: &certhub_store::Store,
    given: &[String],
) -> Result<Vec<Target>, Error> {
    let targets = parse_targets(given).map_err(|e| Error::invalid("targets", e))?;
    for t in &targets {
        if let Target::Agent(name) = t
            && store.agent(name).await?.is_none()
        {
            return Err(Error::invalid(
                "targets",
                format!(
                    "target agent:{name} names no agent: `certhub agent list` shows those that \
                     joined"
                ),
            ));
        }
    }
    Ok(targets)
}

fn no_agent(name: &str) -> Error {
    Error::new(
        Kind::NotFound,
        format!("there is no agent named {name:?} (`certhub agent list` shows them)"),
    )
}
