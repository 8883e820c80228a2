//! dns-01 through DNS providers' APIs, against real servers of them: Amazon Route 53's API
//! as moto serves it, and PowerDNS Authoritative's HTTP API.

use std::collections::BTreeMap;
use std::time::Duration;

use certhub_challenge::Solvers;
use certhub_challenge::dns::{DnsCheckConfig, PropagationChecker, txt_value};
use certhub_core::{
    ChallengeKind, ChallengeSpec, Identifier, PendingChallenge, Secret, Solver, SolverError,
};
use certhub_testkit::moto::Moto;
use certhub_testkit::powerdns::PowerDns;

fn challenge(name: &str, token: &str) -> PendingChallenge {
    PendingChallenge {
        cert: "test".to_string(),
        kind: ChallengeKind::Dns01,
        identifier: Identifier::Dns(name.to_string()),
        token: token.to_string(),
        key_authorization: format!("{token}.thumbprint"),
    }
}

/// The solver for `spec`, its credential `fields` filled in as at an order.
async fn solver_for(
    config: DnsCheckConfig,
    spec: &str,
    fields: &[(&str, &str)],
) -> Result<std::sync::Arc<dyn Solver>, SolverError> {
    let mut spec = ChallengeSpec::parse(spec).unwrap();
    let kind = spec.config.credential_kind().unwrap();
    let values: BTreeMap<String, Secret> =
        fields.iter().map(|(k, v)| (k.to_string(), Secret::new(*v))).collect();
    spec.config = spec.config.with_credential(kind, &values).unwrap();
    Solvers::new(config).for_spec(&spec).await
}

#[tokio::test]
async fn route53_values_at_one_name_are_added_together_and_removed_apart() {
    let moto = Moto::start().await;
    let zone_id = moto.create_hosted_zone("r53.test").await;
    // moto serves the API, not the zone's DNS: no lookups, the zone named. (moto's answer
    // to ListHostedZonesByName lacks the IsTruncated that Route 53 documents, so the hosted
    // zone is named too.)
    let spec = "dns-01:provider=route53,credential=aws,zone=r53.test;propagation=wait:0";
    let fields = [
        ("access-key-id", "AKIDCERTHUBTEST"),
        ("secret-access-key", "certhub-test-secret"),
        ("endpoint", moto.url.as_str()),
        ("hosted-zone-id", zone_id.as_str()),
    ];
    let solver = solver_for(DnsCheckConfig::default(), spec, &fields).await.unwrap();
    let (apex, wild) = (challenge("www.r53.test", "one"), challenge("www.r53.test", "two"));
    let (a, b) = tokio::join!(solver.present(&apex), solver.present(&wild));
    a.unwrap();
    b.unwrap();
    let name = "_acme-challenge.www.r53.test";
    let mut values = moto.txt_values(&zone_id, name).await;
    values.sort();
    let mut want = vec![txt_value(&apex.key_authorization), txt_value(&wild.key_authorization)];
    want.sort();
    assert_eq!(values, want);
    solver.cleanup(&apex).await.unwrap();
    assert_eq!(moto.txt_values(&zone_id, name).await, vec![txt_value(&wild.key_authorization)]);
    solver.cleanup(&wild).await.unwrap();
    assert!(moto.txt_values(&zone_id, name).await.is_empty());

    // A name outside the zone given is refused before the API is asked.
    let outside = challenge("www.other.test", "three");
    let said = solver.present(&outside).await.unwrap_err().to_string();
    assert!(said.contains("not in zone r53.test"), "{said}");
}

#[tokio::test]
async fn powerdns_publishes_finds_the_zone_by_its_soa_and_names_a_refused_key() {
    let pdns = PowerDns::start(&["pdns.test"]).await;
    let config = DnsCheckConfig {
        resolver: Some(pdns.addr),
        authoritative_port: pdns.addr.port(),
        timeout: Duration::from_secs(20),
        ..DnsCheckConfig::default()
    };
    let spec = "dns-01:provider=powerdns,credential=pdns";
    let fields = [("url", pdns.api_url.as_str()), ("api-key", pdns.api_key.as_str())];
    let solver = solver_for(config.clone(), spec, &fields).await.unwrap();
    let c = challenge("www.pdns.test", "one");
    // present returns once every authoritative server (pdns, by its NS) answers with it.
    solver.present(&c).await.unwrap();
    let checker = PropagationChecker::new(config.clone());
    let name = "_acme-challenge.www.pdns.test.".parse().unwrap();
    assert_eq!(
        checker.txt_at(pdns.addr, &name).await.unwrap(),
        vec![txt_value(&c.key_authorization)]
    );
    solver.cleanup(&c).await.unwrap();
    assert!(checker.txt_at(pdns.addr, &name).await.unwrap().is_empty());

    // A wrong key: PowerDNS's refusal, and which credential to replace.
    let wrong = [("url", pdns.api_url.as_str()), ("api-key", "not-the-key")];
    let refused = solver_for(config, spec, &wrong).await.unwrap();
    let said = refused.present(&c).await.unwrap_err().to_string();
    assert!(said.contains("the powerdns API answered 401 Unauthorized"), "{said}");
    assert!(said.contains("certhub credential rotate pdns"), "{said}");
}
