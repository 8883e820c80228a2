//! dns-01 through RFC 2136 dynamic update, signed with TSIG (RFC 8945).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use certhub_core::challenge::TsigAlgorithm;
use certhub_core::{PendingChallenge, Secret, Solver, SolverError};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as WireAlgorithm;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

use super::propagation::{PropagationChecker, fqdn};
use super::wire::{exchange, query, soa_owner};
use super::{record_name, txt_value};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes TXT records by dynamic update on one primary server.
pub struct Rfc2136Solver {
    server: SocketAddr,
    signer: TSigner,
    checker: PropagationChecker,
}

impl Rfc2136Solver {
    /// `key_secret` is the TSIG secret in base64, as `tsig-keygen` prints it.
    pub fn new(
        server: SocketAddr,
        key_name: String,
        key_secret: Secret,
        algorithm: TsigAlgorithm,
        checker: PropagationChecker,
    ) -> Result<Self, SolverError> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_secret.expose().trim())
            .map_err(|_| {
                SolverError::Unsupported(format!("the TSIG secret of key {key_name} is not base64"))
            })?;
        let alg = match algorithm {
            TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha384 => WireAlgorithm::HmacSha384,
            TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
        };
        let name = fqdn(&key_name)?;
        let signer = TSigner::new(key, alg, name, 300)
            .map_err(|e| SolverError::Unsupported(format!("TSIG key {key_name}: {e}")))?;
        Ok(Self { server, signer, checker })
    }

    /// The zone holding `name`, as the primary server sees it.
    async fn zone_of(&self, name: &Name) -> Result<Name, SolverError> {
        let answer = exchange(self.server, &query(name, RecordType::SOA, false), TIMEOUT)
            .await
            .map_err(SolverError::Dns)?;
        soa_owner(&answer).ok_or_else(|| {
            SolverError::Dns(format!(
                "{} is not authoritative for any zone holding {name} (answer {})",
                self.server, answer.metadata.response_code
            ))
        })
    }

    async fn update(&self, name: &Name, value: &str, add: bool) -> Result<(), SolverError> {
        let zone = self.zone_of(name).await?;
        let mut msg = Message::new(rand::random(), MessageType::Query, OpCode::Update);
        let mut zone_query = Query::query(zone.clone(), RecordType::SOA);
        zone_query.set_query_class(DNSClass::IN);
        msg.add_query(zone_query);
        let mut record = Record::from_rdata(
            name.clone(),
            if add { 60 } else { 0 },
            RData::TXT(TXT::new(vec![value.to_string()])),
        );
        // RFC 2136 §2.5: class NONE deletes exactly this record.
        record.dns_class = if add { DNSClass::IN } else { DNSClass::NONE };
        msg.add_authority(record);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        msg.finalize(&self.signer, now)
            .map_err(|e| SolverError::Dns(format!("cannot sign the update: {e}")))?;
        let answer = exchange(self.server, &msg, TIMEOUT).await.map_err(SolverError::Dns)?;
        let what = if add { "add" } else { "delete" };
        match answer.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            ResponseCode::NotAuth => Err(SolverError::Dns(format!(
                "{} refused to {what} {name} in zone {zone}: NOTAUTH (the TSIG key was rejected, or the server is not primary for the zone)",
                self.server
            ))),
            ResponseCode::Refused => Err(SolverError::Dns(format!(
                "{} refused to {what} {name} in zone {zone}: REFUSED (the key may not update this name)",
                self.server
            ))),
            other => Err(SolverError::Dns(format!(
                "{} could not {what} {name} in zone {zone}: {other}",
                self.server
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Solver for Rfc2136Solver {
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let record = record_name(challenge);
        let value = txt_value(&challenge.key_authorization);
        // Publish where a CNAME on _acme-challenge points, if it points anywhere.
        let target = self.checker.follow_cname(&record).await?;
        self.update(&target, &value, true).await?;
        self.checker.wait_visible(&record, &value).await
    }

    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let record = record_name(challenge);
        let value = txt_value(&challenge.key_authorization);
        let target = self.checker.follow_cname(&record).await?;
        self.update(&target, &value, false).await
    }
}
