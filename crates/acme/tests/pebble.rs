//! The ACME client against a real Pebble, with 30% of nonces rejected. IP identifiers
//! (RFC 8738) let Pebble validate http-01 without a DNS server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certhub_acme::{
    Account, AuthorizationStatus, CertificateChain, ChallengeType, Client, ClientConfig,
    EabAlgorithm, Error, ExternalAccountKey, Identifier, KeyAlgorithm, Look, NewAccount, NewOrder,
    OrderStatus, RevocationReason, SigningKey,
};
use certhub_testkit::pebble::{Pebble, PebbleOptions};

const WAIT: Duration = Duration::from_secs(30);

fn hostile() -> PebbleOptions {
    PebbleOptions { nonce_reject: 30, ..PebbleOptions::default() }
}

async fn client(pebble: &Pebble) -> Client {
    let config = ClientConfig {
        ca_bundle_pem: Some(pebble.listener_ca_pem.clone()),
        ..ClientConfig::default()
    };
    Client::new(&pebble.directory_url, config).await.unwrap()
}

async fn register(client: &Client, alg: KeyAlgorithm) -> Account {
    let key = SigningKey::generate(alg).unwrap();
    let contact = vec!["mailto:ops@example.com".to_string()];
    let req = NewAccount { contact: &contact, terms_of_service_agreed: true, ..Default::default() };
    client.new_account(key, &req).await.unwrap().0
}

/// Answers http-01 on the port Pebble's validator dials.
struct Responder(Arc<Mutex<HashMap<String, String>>>);

impl Responder {
    async fn start(port: u16) -> Responder {
        use axum::extract::{Path, State};
        let tokens: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let app = axum::Router::new()
            .route(
                "/.well-known/acme-challenge/{token}",
                axum::routing::get(
                    |State(t): State<Arc<Mutex<HashMap<String, String>>>>,
                     Path(token): Path<String>| async move {
                        t.lock()
                            .unwrap()
                            .get(&token)
                            .cloned()
                            .ok_or(axum::http::StatusCode::NOT_FOUND)
                    },
                ),
            )
            .with_state(tokens.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Responder(tokens)
    }
}

/// Orders a certificate for 127.0.0.1; returns the chain and the certificate key (PKCS#8).
async fn issue(acct: &Account, responder: &Responder) -> (CertificateChain, Vec<u8>) {
    issue_with_chain(acct, responder, None).await
}

async fn issue_with_chain(
    acct: &Account,
    responder: &Responder,
    preferred: Option<&str>,
) -> (CertificateChain, Vec<u8>) {
    let ids = vec![Identifier::ip("127.0.0.1".parse().unwrap())];
    let (url, order) =
        acct.new_order(&NewOrder { identifiers: &ids, ..Default::default() }).await.unwrap();
    // Pebble reuses the account's valid authorization for a name half the time
    // (PEBBLE_AUTHZREUSE), and an order whose authorizations are all reused is ready at once.
    assert!(
        matches!(order.status, OrderStatus::Pending | OrderStatus::Ready),
        "a new order is {:?}",
        order.status
    );
    for authz_url in &order.authorizations {
        let (authz, _) = acct.authorization(authz_url).await.unwrap();
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        assert_eq!(order.status, OrderStatus::Pending, "a ready order has a pending authz");
        let ch = authz
            .challenges
            .iter()
            .find(|c| c.kind == ChallengeType::Http01)
            .expect("http-01 offered");
        assert!(
            !authz.challenges.iter().any(|c| c.kind == ChallengeType::Dns01),
            "no dns-01 for IPs"
        );
        let token = ch.token.clone().unwrap();
        responder.0.lock().unwrap().insert(token.clone(), acct.key_authorization(&token));
        acct.respond_challenge(&ch.url).await.unwrap();
        acct.wait_authorization(authz_url, WAIT).await.unwrap();
    }
    let order = acct.wait_order(&url, WAIT, Look::Now, |s| s == OrderStatus::Ready).await.unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let csr = params.serialize_request(&key).unwrap();
    acct.finalize(&url, &order.finalize, csr.der()).await.unwrap();
    let order = acct.wait_order(&url, WAIT, Look::Soon, |s| s == OrderStatus::Valid).await.unwrap();
    let chain =
        acct.download_certificate(order.certificate.as_deref().unwrap(), preferred).await.unwrap();
    (chain, key.serialize_der())
}

fn serial_hex(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let hex: String = cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    hex.trim_start_matches("00").to_string()
}

fn common_name(pem: &str) -> String {
    let block = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1;
    let cert = block.parse_x509().unwrap();
    cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn issues_for_an_ip_with_each_account_key_type_despite_bad_nonces() {
    let pebble = Pebble::start(hostile()).await;
    let responder = Responder::start(pebble.http_port).await;
    let client = client(&pebble).await;
    for alg in [KeyAlgorithm::EcP256, KeyAlgorithm::EcP384, KeyAlgorithm::Rsa2048] {
        let acct = register(&client, alg).await;
        let (chain, _) = issue(&acct, &responder).await;
        assert!(chain.certificates.len() >= 2, "leaf and intermediate");
        let (_, leaf) = x509_parser::parse_x509_certificate(chain.leaf()).unwrap();
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![x509_parser::extensions::GeneralName::IPAddress(&[127, 0, 0, 1])]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn finds_an_existing_account_by_key_and_deactivates_it() {
    let pebble = Pebble::start(hostile()).await;
    let client = client(&pebble).await;
    let acct = register(&client, KeyAlgorithm::EcP256).await;
    let again = SigningKey::from_pkcs8(acct.key().pkcs8_der()).unwrap();
    let (found, _) = client
        .new_account(again, &NewAccount { only_return_existing: true, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(found.url(), acct.url());
    let unknown = SigningKey::generate(KeyAlgorithm::EcP256).unwrap();
    let err = client
        .new_account(unknown, &NewAccount { only_return_existing: true, ..Default::default() })
        .await
        .unwrap_err();
    assert!(err.problem().unwrap().is("accountDoesNotExist"), "{err}");
    let contact = vec!["mailto:new@example.com".to_string()];
    assert_eq!(acct.update_contacts(&contact).await.unwrap().contact, contact);
    acct.deactivate().await.unwrap();
    let ids = vec![Identifier::ip("127.0.0.1".parse().unwrap())];
    let err =
        acct.new_order(&NewOrder { identifiers: &ids, ..Default::default() }).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn external_account_binding_with_each_mac() {
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let opts = PebbleOptions {
        eab_required: true,
        eab_keys: vec![("kid-1".into(), hmac.into())],
        ..hostile()
    };
    let pebble = Pebble::start(opts).await;
    let client = client(&pebble).await;
    assert!(client.directory().meta.external_account_required);
    let key = SigningKey::generate(KeyAlgorithm::EcP256).unwrap();
    let err = client
        .new_account(key, &NewAccount { terms_of_service_agreed: true, ..Default::default() })
        .await
        .unwrap_err();
    assert!(err.problem().unwrap().is("externalAccountRequired"), "{err}");
    let wrong = "AAAAZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let wrong = ExternalAccountKey::new("kid-1", wrong, EabAlgorithm::Hs256).unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcP256).unwrap();
    let req = NewAccount {
        terms_of_service_agreed: true,
        external_account: Some(&wrong),
        ..Default::default()
    };
    let err = client.new_account(key, &req).await.unwrap_err();
    assert!(err.problem().unwrap().is("unauthorized"), "{err}");
    // The 48-byte key is long enough for HS256 and HS384; HS512 needs 64 bytes and is refused
    // before anything is sent.
    assert!(ExternalAccountKey::new("kid-1", hmac, EabAlgorithm::Hs512).is_err());
    for alg in [EabAlgorithm::Hs256, EabAlgorithm::Hs384] {
        let eab = ExternalAccountKey::new("kid-1", hmac, alg).unwrap();
        let key = SigningKey::generate(KeyAlgorithm::EcP256).unwrap();
        let req = NewAccount {
            terms_of_service_agreed: true,
            external_account: Some(&eab),
            ..Default::default()
        };
        client.new_account(key, &req).await.unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rollover_then_issuance_with_the_new_key() {
    let pebble = Pebble::start(hostile()).await;
    let responder = Responder::start(pebble.http_port).await;
    let client = client(&pebble).await;
    let acct = register(&client, KeyAlgorithm::EcP256).await;
    let old = SigningKey::from_pkcs8(acct.key().pkcs8_der()).unwrap();
    let rolled =
        acct.change_key(SigningKey::generate(KeyAlgorithm::Rsa2048).unwrap()).await.unwrap();
    assert_eq!(rolled.url(), acct.url());
    issue(&rolled, &responder).await;
    let err = client
        .new_account(old, &NewAccount { only_return_existing: true, ..Default::default() })
        .await
        .unwrap_err();
    assert!(err.problem().unwrap().is("accountDoesNotExist"), "the old key no longer works: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_by_account_key_and_by_certificate_key() {
    let pebble = Pebble::start(hostile()).await;
    let responder = Responder::start(pebble.http_port).await;
    let client = client(&pebble).await;
    let acct = register(&client, KeyAlgorithm::EcP256).await;
    let (first, _) = issue(&acct, &responder).await;
    acct.revoke(first.leaf(), Some(RevocationReason::KeyCompromise)).await.unwrap();
    let status = pebble.cert_status(&serial_hex(first.leaf())).await;
    assert_eq!(
        (status["Status"].as_str(), status["Reason"].as_i64()),
        (Some("Revoked"), Some(1)),
        "{status}"
    );

    let (second, key) = issue(&acct, &responder).await;
    let cert_key = SigningKey::from_pkcs8(&key).unwrap();
    client
        .revoke_with_certificate_key(second.leaf(), &cert_key, Some(RevocationReason::Superseded))
        .await
        .unwrap();
    let status = pebble.cert_status(&serial_hex(second.leaf())).await;
    assert_eq!(
        (status["Status"].as_str(), status["Reason"].as_i64()),
        (Some("Revoked"), Some(4)),
        "{status}"
    );

    let err = acct.revoke(first.leaf(), None).await.unwrap_err();
    assert!(err.problem().unwrap().is("alreadyRevoked"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn selects_the_preferred_alternate_chain() {
    let pebble = Pebble::start(PebbleOptions { alternate_roots: 2, ..hostile() }).await;
    let responder = Responder::start(pebble.http_port).await;
    let client = client(&pebble).await;
    let acct = register(&client, KeyAlgorithm::EcP256).await;
    let default_root = common_name(&pebble.root_pem(0).await);
    let (chain, _) = issue(&acct, &responder).await;
    assert_eq!(chain.issuer_names.last(), Some(&default_root));
    for n in [1, 2] {
        let wanted = common_name(&pebble.root_pem(n).await);
        let (chain, _) = issue_with_chain(&acct, &responder, Some(&wanted)).await;
        assert_eq!(chain.issuer_names.last(), Some(&wanted), "alternate {n}");
    }
    let (chain, _) = issue_with_chain(&acct, &responder, Some("No Such Root")).await;
    assert_eq!(chain.issuer_names.last(), Some(&default_root), "no match keeps the default");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocklisted_name_is_a_typed_rejected_identifier() {
    let pebble =
        Pebble::start(PebbleOptions { blocklist: vec!["blocked.test".into()], ..hostile() }).await;
    let client = client(&pebble).await;
    let acct = register(&client, KeyAlgorithm::EcP256).await;
    let ids = vec![Identifier::dns("x.blocked.test")];
    let err =
        acct.new_order(&NewOrder { identifiers: &ids, ..Default::default() }).await.unwrap_err();
    let Error::Api(api) = &err else { panic!("{err:?}") };
    assert!(api.problem.is("rejectedIdentifier"), "{err}");
    assert!(err.to_string().contains("x.blocked.test"), "{err}");
    assert!(!err.is_retryable());
}
