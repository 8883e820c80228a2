//! The hub's scheduler sleeps until the earliest recorded check time, or until a change of a
//! certificate wakes it; the check interval (here five minutes) only bounds the sleep.

use std::sync::Arc;
use std::time::Duration;

use certhub_engine::{Actor, CertChanges, Engine, NewAccount, NewCertificate, Settings};
use certhub_testkit::fake_ca::{FakeCa, Scripted};

fn refuse(ca: &FakeCa) {
    ca.state.lock().unwrap().order_failures.push_back(Scripted {
        status: 400,
        body: r#"{"type": "urn:ietf:params:acme:error:rejectedIdentifier", "detail": "no"}"#.into(),
        content_type: "application/problem+json",
        retry_after: None,
    });
}

async fn orders_reach(ca: &FakeCa, n: usize, what: &str) {
    certhub_testkit::wait_until(what, Duration::from_secs(20), || async {
        (ca.requests_to("/new-order").len() >= n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_wakes_at_the_next_check_time_and_on_a_change() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = certhub_store::Store::open(dir.path()).await.unwrap();
    let settings = certhub_engine::SharedSettings::new(Settings {
        check_interval_secs: 300,
        ..Settings::default()
    });
    let config =
        certhub_engine::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
    let engine = Arc::new(Engine::with_settings(store.clone(), config, settings));
    let ca = FakeCa::start().await;
    let account = NewAccount {
        name: "main".into(),
        directory: ca.url.clone(),
        email: None,
        agree_tos: true,
        eab_kid: None,
        eab_hmac_key: None,
        eab_algorithm: None,
        key_type: None,
        ca_bundle_pem: None,
    };
    engine.add_account(&account, Actor::cli().entry("account.create", "main")).await.unwrap();
    let cert = NewCertificate {
        name: "web".into(),
        account: "main".into(),
        domains: vec!["web.test".into()],
        challenges: vec!["http-01:listen=127.0.0.1:0".into()],
        ..Default::default()
    };
    engine.add_certificate(&cert, Actor::cli().entry("cert.create", "web")).await.unwrap();
    // Its next look is recorded for three seconds from now.
    let seen = store.cert("web").await.unwrap().unwrap().updated_at;
    let at = certhub_engine::unix_ms(std::time::SystemTime::now()) + 3_000;
    assert!(store.set_cert_check("web", at, Some("75%"), seen).await.unwrap());

    refuse(&ca);
    let checks = async {
        // The first look (at start) finds nothing due; the next comes at the recorded time,
        // not after the five-minute interval.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(ca.requests_to("/new-order").len(), 0, "ordered before its time");
        orders_reach(&ca, 1, "the look at the recorded time").await;
        // Refused for good: it waits for a change, and a change wakes the scheduler at once.
        certhub_testkit::wait_until("the refusal to be recorded", Duration::from_secs(10), || {
            let store = store.clone();
            async move {
                let c = store.cert("web").await.ok()??;
                (c.next_attempt_at == Some(certhub_store::RETRY_STOPPED)).then_some(())
            }
        })
        .await;
        // A certificate that was issued once (and since revoked, so due at once when its
        // retries start again): a change wakes the scheduler for it.
        let issued = certhub_store::IssuedRecord {
            id: 0,
            cert_name: "web".into(),
            order_id: None,
            serial_hex: "01".into(),
            issuer: "CN=Test".into(),
            sans: vec![certhub_core::Identifier::Dns("web.test".into())],
            not_before: 0,
            not_after: 1,
            chain_pem: String::new(),
            key_type: "ec-p256".into(),
            key_pkcs8: Default::default(),
            revoked_at: Some(1),
            revocation_reason: None,
            created_at: 0,
        };
        store.insert_issued(&issued, None).await.unwrap();
        refuse(&ca);
        let changes = CertChanges { renew_at: Some("30d".into()), ..Default::default() };
        engine.edit("web", &changes, Actor::cli().entry("cert.update", "web")).await.unwrap();
        orders_reach(&ca, 2, "the look after the change").await;
    };
    // The scheduler runs until the checks are done (the hub runs it beside its server).
    tokio::select! {
        () = certhub_engine::scheduler::run(engine.clone(), Vec::new(), || async {}) => {
            unreachable!("the scheduler runs until it is dropped")
        }
        () = checks => {}
    }
}
