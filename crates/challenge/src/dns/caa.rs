//! Finding the CAA record set relevant to a name (RFC 8659 §3): the first non-empty set
//! climbing from the name towards the root, asked of the resolver (which follows a CNAME on
//! the way). What it permits is decided by `certhub_core::caa`.

use certhub_core::caa::CaaRecord;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use super::propagation::{PropagationChecker, fqdn};
use super::wire::{exchange, query};

impl PropagationChecker {
    /// The CAA records relevant to `name` (a wildcard's base name) and where they were found;
    /// none found is an empty set at `name`. A resolver that fails (SERVFAIL, no answer) is an
    /// error: RFC 8659 has the CA refuse then too.
    pub async fn relevant_caa(&self, name: &str) -> Result<(String, Vec<CaaRecord>), String> {
        let name = name.trim_start_matches("*.").trim_end_matches('.');
        let labels: Vec<&str> = name.split('.').collect();
        for i in 0..labels.len() {
            let at = labels[i..].join(".");
            let q = query(&fqdn(&at).map_err(|e| e.to_string())?, RecordType::CAA, true);
            let answer = exchange(self.resolver(), &q, self.config().query_timeout)
                .await
                .map_err(|e| format!("the CAA lookup of {at} failed: {e}"))?;
            match answer.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => {}
                other => {
                    return Err(format!(
                        "the CAA lookup of {at} failed: the resolver {} answered {other}",
                        self.resolver()
                    ));
                }
            }
            let records: Vec<CaaRecord> = answer
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::CAA(c) => Some(CaaRecord {
                        critical: c.issuer_critical,
                        tag: c.tag.clone(),
                        value: String::from_utf8_lossy(&c.value).into_owned(),
                    }),
                    _ => None,
                })
                .collect();
            if !records.is_empty() {
                return Ok((at, records));
            }
        }
        Ok((name.to_string(), Vec::new()))
    }
}
