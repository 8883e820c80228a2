//! Protocol features Pebble 2.4.0 lacks, against the scripted fake CA: profiles, ARI
//! (`renewalInfo`, `replaces`), Retry-After and rate limits, non-JSON server errors.

use std::time::{Duration, SystemTime};

use certhub_acme::{
    Client, ClientConfig, Error, Identifier, KeyAlgorithm, NewAccount, NewOrder, SigningKey,
    certificate_id,
};
use certhub_testkit::fake_ca::{FakeCa, Scripted};

async fn account(ca: &FakeCa) -> certhub_acme::Account {
    // The fake's scripted errors are answered as they come, not tried again.
    let config = ClientConfig { retries: 0, ..ClientConfig::default() };
    let client = Client::new(&ca.url, config).await.unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcP256).unwrap();
    let req = NewAccount { terms_of_service_agreed: true, ..Default::default() };
    client.new_account(key, &req).await.unwrap().0
}

fn ids() -> Vec<Identifier> {
    vec![Identifier::dns("a.example.com")]
}

#[tokio::test]
async fn sends_an_advertised_profile_and_refuses_an_unknown_one() {
    let ca = FakeCa::start().await;
    let acct = account(&ca).await;
    let ids = ids();
    let (_, order) = acct
        .new_order(&NewOrder { identifiers: &ids, profile: Some("shortlived"), replaces: None })
        .await
        .unwrap();
    assert_eq!(order.profile.as_deref(), Some("shortlived"));
    assert_eq!(ca.requests_to("/new-order")[0]["profile"], "shortlived");

    let err = acct
        .new_order(&NewOrder { identifiers: &ids, profile: Some("tlsclient"), replaces: None })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotSupported(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("tlsclient") && msg.contains("classic, shortlived"), "{msg}");
    assert_eq!(ca.requests_to("/new-order").len(), 1, "an unknown profile never reaches the CA");
}

/// A leaf signed by a CA, so it carries an authority key identifier.
fn issued_leaf() -> Vec<u8> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["a.example.com".to_string()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x87, 0x65, 0x43, 0x21]));
    let _ = ca_cert;
    params.signed_by(&leaf_key, &issuer).unwrap().der().to_vec()
}

#[tokio::test]
async fn fetches_renewal_info_and_names_the_replaced_certificate() {
    let ca = FakeCa::start().await;
    let acct = account(&ca).await;
    let leaf = issued_leaf();
    let id = certificate_id(&leaf).unwrap();
    let (aki, serial) = id.split_once('.').unwrap();
    assert!(!aki.is_empty());
    assert_eq!(serial, "AIdlQyE", "the serial keeps its DER bytes, leading zero included");

    ca.state.lock().unwrap().window = (
        "2030-01-01T00:00:00Z".into(),
        "2030-01-03T00:00:00Z".into(),
        Some("https://ca.example/incident".into()),
        Some(3600),
    );
    let info = acct.client().renewal_info(&leaf).await.unwrap();
    let at = |s: &str| SystemTime::from(s.parse::<jiff::Timestamp>().unwrap());
    assert_eq!(info.window_start, at("2030-01-01T00:00:00Z"));
    assert_eq!(info.window_end, at("2030-01-03T00:00:00Z"));
    assert_eq!(info.explanation_url.as_deref(), Some("https://ca.example/incident"));
    assert_eq!(info.retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(ca.requests_to("/renewal-info")[0], serde_json::json!(id));

    // A mass revocation moves the window into the past: the client sees it at once.
    ca.state.lock().unwrap().window =
        ("2020-01-01T00:00:00Z".into(), "2020-01-01T01:00:00Z".into(), None, None);
    let info = acct.client().renewal_info(&leaf).await.unwrap();
    assert!(info.window_end < SystemTime::now());
    assert_eq!(info.retry_after, None);

    let ids = ids();
    acct.new_order(&NewOrder { identifiers: &ids, profile: None, replaces: Some(&id) })
        .await
        .unwrap();
    assert_eq!(ca.requests_to("/new-order")[0]["replaces"], serde_json::json!(id));
}

#[tokio::test]
async fn rate_limit_keeps_problem_status_and_retry_after() {
    let ca = FakeCa::start().await;
    let acct = account(&ca).await;
    ca.state.lock().unwrap().order_failures.push_back(Scripted {
        status: 429,
        content_type: "application/problem+json",
        retry_after: Some("120".into()),
        body: serde_json::json!({
            "type": "urn:ietf:params:acme:error:rateLimited",
            "detail": "too many new orders recently",
            "subproblems": [{
                "type": "urn:ietf:params:acme:error:rateLimited",
                "detail": "50 certificates per registered domain per week",
                "identifier": { "type": "dns", "value": "a.example.com" }
            }]
        })
        .to_string(),
    });
    let ids = ids();
    let err =
        acct.new_order(&NewOrder { identifiers: &ids, ..Default::default() }).await.unwrap_err();
    let Error::Api(api) = &err else { panic!("{err:?}") };
    assert_eq!(api.status, 429);
    assert_eq!(api.retry_after, Some(Duration::from_secs(120)));
    assert!(api.problem.is("rateLimited"));
    assert_eq!(api.problem.subproblems.len(), 1);
    assert_eq!(api.problem.subproblems[0].identifier.as_ref().unwrap().value, "a.example.com");
    assert!(err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains("a.example.com: rateLimited: 50 certificates"), "{msg}");
    assert!(msg.contains("retry after 120s"), "{msg}");
}

#[tokio::test]
async fn a_non_json_server_error_is_kept_and_retryable() {
    let ca = FakeCa::start().await;
    let acct = account(&ca).await;
    ca.state.lock().unwrap().order_failures.push_back(Scripted {
        status: 503,
        content_type: "text/html",
        retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        body: "<html>maintenance</html>".into(),
    });
    let ids = ids();
    let err =
        acct.new_order(&NewOrder { identifiers: &ids, ..Default::default() }).await.unwrap_err();
    let Error::Api(api) = &err else { panic!("{err:?}") };
    assert_eq!(api.status, 503);
    assert_eq!(api.retry_after, Some(Duration::ZERO), "a date in the past means now");
    assert!(api.problem.detail.as_deref().unwrap().contains("maintenance"));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_rejected_identifier_is_permanent() {
    let ca = FakeCa::start().await;
    let acct = account(&ca).await;
    ca.state.lock().unwrap().order_failures.push_back(Scripted {
        status: 400,
        content_type: "application/problem+json",
        retry_after: None,
        body:
            r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"policy forbids"}"#
                .into(),
    });
    let ids = ids();
    let err =
        acct.new_order(&NewOrder { identifiers: &ids, ..Default::default() }).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.problem().unwrap().is("rejectedIdentifier"));
}

#[tokio::test]
async fn bad_nonces_are_retried_transparently() {
    let ca = FakeCa::start().await;
    // Every third nonce is rejected, far more than any CA would do.
    ca.state.lock().unwrap().reject_nonces_every = 3;
    let acct = account(&ca).await;
    let ids = ids();
    for _ in 0..10 {
        acct.new_order(&NewOrder { identifiers: &ids, ..Default::default() }).await.unwrap();
    }
    assert_eq!(ca.requests_to("/new-order").len(), 10);
}
