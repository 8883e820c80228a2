//! What the CA sends, fed in broken: problem documents, orders, authorizations and
//! directories as JSON with bytes changed or cut short, certificate chains likewise, and
//! Retry-After and Link headers made of their own tokens. None may panic; each refusal says
//! why. The budget is fixed ([`CASES`] per property); the figures are in
//! docs/reliability.md.

use certhub_testkit::fuzz::{config, mutated, said_why};
use http::HeaderMap;
use http::header::{HeaderValue, LINK, RETRY_AFTER};
use proptest::prelude::*;

use crate::chain::CertificateChain;
use crate::{Authorization, Directory, Order, Problem};

const CASES: u32 = 20_000;

const PROBLEM: &[u8] = br#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"Error creating new order :: Cannot issue for \"blocked.test\"","status":400,"subproblems":[{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"blocked","identifier":{"type":"dns","value":"blocked.test"}}]}"#;
const ORDER: &[u8] = br#"{"status":"pending","expires":"2026-12-08T00:00:00Z","identifiers":[{"type":"dns","value":"www.example.test"}],"authorizations":["https://ca.test/authz/1"],"finalize":"https://ca.test/finalize/1","certificate":"https://ca.test/cert/1","error":{"type":"urn:ietf:params:acme:error:malformed"}}"#;
const AUTHZ: &[u8] = br#"{"status":"pending","identifier":{"type":"dns","value":"www.example.test"},"wildcard":false,"challenges":[{"type":"http-01","url":"https://ca.test/chall/1","status":"pending","token":"abc_-123"},{"type":"dns-account-01","url":"https://ca.test/chall/2","status":"invalid","token":"x","error":{"detail":"no"}}]}"#;
const DIRECTORY: &[u8] = br#"{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order","revokeCert":"https://ca.test/revoke","keyChange":"https://ca.test/key","renewalInfo":"https://ca.test/ari","meta":{"termsOfService":"https://ca.test/tos","caaIdentities":["ca.test"],"profiles":{"classic":"90 days"},"externalAccountRequired":false}}"#;
const CHAIN: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUGy0x\n-----END CERTIFICATE-----\n\n-----BEGIN CERTIFICATE-----\nMIIBdTCCARugAwIBAgIU\n-----END CERTIFICATE-----\n";

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn problem_documents(body in mutated(PROBLEM.to_vec())) {
        said_why(serde_json::from_slice::<Problem>(&body))?;
    }

    #[test]
    fn orders(body in mutated(ORDER.to_vec())) {
        said_why(serde_json::from_slice::<Order>(&body))?;
    }

    #[test]
    fn authorizations(body in mutated(AUTHZ.to_vec())) {
        said_why(serde_json::from_slice::<Authorization>(&body))?;
    }

    #[test]
    fn directories(body in mutated(DIRECTORY.to_vec())) {
        said_why(serde_json::from_slice::<Directory>(&body))?;
    }

    #[test]
    fn certificate_chains(body in mutated(CHAIN.to_vec())) {
        said_why(CertificateChain::from_pem("https://ca.test/cert/1", &body))?;
    }

    #[test]
    fn retry_after_and_link_headers(
        value in prop::collection::vec(prop::sample::select(&[
            "120", "-1", "0", "18446744073709551616", " ", "Wed, 21 Oct 2015 07:28:00 GMT",
            "Mon, 31 Feb 2099 99:99:99 GMT", "<", ">", "https://ca.test/x", ";", "rel=", "\"alternate\"",
            "rel=alternate", ",", "\"", "up", "é",
        ][..]), 0..12).prop_map(|t| t.concat())
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(RETRY_AFTER, v.clone());
            headers.append(LINK, v);
        }
        let _ = crate::client::retry_after(&headers);
        let _ = crate::client::links(&headers, "alternate");
    }
}
