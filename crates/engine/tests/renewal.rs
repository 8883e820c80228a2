//! Renewal in the engine, against the scripted fake CA. The retry policy: a refusal for good
//! stops automatic retries until the certificate is changed (or a fallback account takes
//! over); a transient failure waits for the backoff table or the CA's Retry-After. The hub's
//! scheduler: it sleeps until the earliest recorded check time, or until a change of a
//! certificate wakes it; the check interval (here five minutes) only bounds the sleep. The
//! CAs' budgets: due renewals spend them, the rest wait for the window, across runs. And a
//! request cut short is resumed, not ordered again.

use std::sync::Arc;
use std::time::Duration;

use certhub_engine::{
    Actor, CertChanges, Engine, Kind, LogProgress, NewAccount, NewCertificate, Settings,
};
use certhub_testkit::fake_ca::{FakeCa, Scripted};

struct Setup {
    _dir: tempfile::TempDir,
    ca: FakeCa,
    engine: Engine,
}

async fn setup() -> Setup {
    setup_with(Settings::default()).await
}

async fn setup_with(settings: Settings) -> Setup {
    let dir = tempfile::TempDir::new().unwrap();
    let store = certhub_store::Store::open(dir.path()).await.unwrap();
    // A request the fake CA refuses fails at once: these tests are about what follows a
    // failure (the retries within a request are the ACME client's own tests).
    let acme = certhub_acme::ClientConfig { retries: 0, ..Default::default() };
    let config =
        certhub_engine::Config { data_dir: dir.path().to_path_buf(), acme, ..Default::default() };
    let settings = certhub_engine::SharedSettings::new(settings);
    let engine = Engine::with_settings(store, config, settings);
    let ca = FakeCa::start().await;
    for name in ["main", "other"] {
        let account = NewAccount {
            name: name.into(),
            directory: ca.url.clone(),
            email: None,
            agree_tos: true,
            eab_kid: None,
            eab_hmac_key: None,
            eab_algorithm: None,
            key_type: None,
            ca_bundle_pem: None,
        };
        engine.add_account(&account, Actor::cli().entry("account.create", name)).await.unwrap();
    }
    Setup { _dir: dir, ca, engine }
}

async fn add(engine: &Engine, name: &str, fallback: Option<&str>) {
    let cert = NewCertificate {
        name: name.into(),
        account: "main".into(),
        domains: vec![format!("{name}.test")],
        challenges: vec!["http-01:listen=127.0.0.1:0".into()],
        fallback_account: fallback.map(str::to_string),
        ..Default::default()
    };
    engine.add_certificate(&cert, Actor::cli().entry("cert.create", name)).await.unwrap();
}

fn refuse(ca: &FakeCa, status: u16, kind: &str, retry_after: Option<&str>) {
    ca.state.lock().unwrap().order_failures.push_back(Scripted {
        status,
        body: serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{kind}"),
            "detail": format!("scripted {kind}"),
        })
        .to_string(),
        content_type: "application/problem+json",
        retry_after: retry_after.map(str::to_string),
    });
}

async fn renew_due(engine: &Engine) -> certhub_engine::RenewSummary {
    let run = certhub_engine::RenewRun {
        names: Vec::new(),
        due: true,
        policy: "75%".into(),
        jobs: 2,
        timeout: Duration::from_secs(30),
        rate_limits: Vec::new(),
    };
    engine.renew(&run, &Actor::hub(), Arc::new(LogProgress)).await.unwrap()
}

fn now_ms() -> i64 {
    certhub_engine::unix_ms(std::time::SystemTime::now())
}

#[tokio::test]
async fn a_refusal_for_good_stops_automatic_retries_until_the_certificate_changes() {
    let Setup { ca, engine, .. } = setup().await;
    add(&engine, "web", None).await;
    refuse(&ca, 400, "rejectedIdentifier", None);
    let err = engine.request("web", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    assert_eq!(err.kind, Kind::CaRefused, "{err}");
    assert!(err.is_permanent_refusal(), "{err}");
    assert!(err.problem.as_ref().is_some_and(|p| p.is("rejectedIdentifier")), "{err:?}");

    let store = engine.store();
    let cert = store.cert("web").await.unwrap().unwrap();
    assert_eq!(cert.next_attempt_at, Some(certhub_store::RETRY_STOPPED));
    assert!(cert.last_error.as_deref().is_some_and(|e| e.contains("rejectedIdentifier")));
    let events = store.events_for("web").await.unwrap();
    let failed = events.iter().rev().find(|e| e.kind == "failed").unwrap();
    assert!(failed.detail.as_deref().unwrap().contains("automatic retries stop"), "{failed:?}");

    // The scheduler looks and places no order, but says it failed (a cron job's exit code
    // keeps saying so), once a day until something changes.
    let orders = ca.requests_to("/new-order").len();
    let summary = renew_due(&engine).await;
    assert_eq!((summary.looked, summary.renewed, summary.not_due), (1, 0, 0), "{summary:?}");
    let (name, why) = &summary.failed[0];
    assert_eq!((name.as_str(), why.kind), ("web", Kind::CaRefused), "{why}");
    assert!(why.message.contains("rejectedIdentifier"), "{why}");
    assert!(why.message.contains("until the certificate is changed"), "{why}");
    assert_eq!(ca.requests_to("/new-order").len(), orders);
    assert_eq!(renew_due(&engine).await.looked, 0);
    let cert = store.cert("web").await.unwrap().unwrap();
    assert_eq!(cert.next_attempt_at, Some(certhub_store::RETRY_STOPPED));

    // A change ends the stop: the changed certificate is due again.
    let changes = CertChanges { renew_at: Some("30d".into()), ..Default::default() };
    engine.edit("web", &changes, Actor::cli().entry("cert.update", "web")).await.unwrap();
    let cert = store.cert("web").await.unwrap().unwrap();
    assert_eq!(cert.next_attempt_at, None);
    refuse(&ca, 400, "caa", None);
    let summary = renew_due(&engine).await;
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    assert_eq!(ca.requests_to("/new-order").len(), orders + 1);
}

#[tokio::test]
async fn a_transient_failure_waits_for_the_cas_retry_after_then_the_backoff_table() {
    let Setup { ca, engine, .. } = setup().await;
    add(&engine, "api", None).await;
    refuse(&ca, 429, "rateLimited", Some("7200"));
    let before = now_ms();
    let err = engine.request("api", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    assert_eq!(err.kind, Kind::Transient, "{err}");
    assert!(!err.is_permanent_refusal());
    assert_eq!(err.retry_after, Some(Duration::from_secs(7200)));
    let cert = engine.store().cert("api").await.unwrap().unwrap();
    let next = cert.next_attempt_at.expect("a next attempt");
    // The CA's two hours, longer than the table's first minute.
    assert!(next >= before + 7_200_000 && next < now_ms() + 7_300_000, "{next}");
    let orders = ca.requests_to("/new-order").len();
    let summary = renew_due(&engine).await;
    assert_eq!((summary.renewed, summary.failed.len()), (0, 0), "{summary:?}");
    assert_eq!(ca.requests_to("/new-order").len(), orders);

    // Without a Retry-After, the table's second step: five minutes.
    refuse(&ca, 503, "serverInternal", None);
    let before = now_ms();
    engine.request("api", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    let cert = engine.store().cert("api").await.unwrap().unwrap();
    let next = cert.next_attempt_at.unwrap();
    assert_eq!(cert.failures, 2);
    assert!(next >= before + 300_000 && next < now_ms() + 301_000, "{next}");
}

#[tokio::test]
async fn a_refusal_for_good_hands_the_next_attempt_to_the_fallback_account() {
    let Setup { ca, engine, .. } = setup().await;
    add(&engine, "mail", Some("other")).await;
    refuse(&ca, 403, "unauthorized", None);
    let before = now_ms();
    engine.request("mail", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    let cert = engine.store().cert("mail").await.unwrap().unwrap();
    assert_ne!(cert.next_attempt_at, Some(certhub_store::RETRY_STOPPED));
    assert_eq!(cert.failures, cert.fallback_after, "the fallback orders next");
    // It waits as after a first failure (a minute), not as after three in a row.
    let next = cert.next_attempt_at.unwrap();
    assert!(next >= before + 60_000 && next <= now_ms() + 60_000, "{next}");
    let (account, fallback) = certhub_engine::records::ordering_account(&cert).unwrap();
    assert_eq!((account, fallback), ("other", true));
    let events = engine.store().events_for("mail").await.unwrap();
    let failed = events.iter().rev().find(|e| e.kind == "failed").unwrap();
    assert!(failed.detail.as_deref().unwrap().contains("fallback account other"), "{failed:?}");

    // Refused for good by the fallback too: now retries stop.
    refuse(&ca, 400, "rejectedIdentifier", None);
    engine.request("mail", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    let cert = engine.store().cert("mail").await.unwrap().unwrap();
    assert_eq!(cert.next_attempt_at, Some(certhub_store::RETRY_STOPPED));
}

#[tokio::test]
async fn an_account_changed_by_another_process_is_connected_anew() {
    let Setup { ca, engine, .. } = setup().await;
    add(&engine, "shop", None).await;
    // A first request connects the account (and is refused, so nothing is issued).
    refuse(&ca, 503, "serverInternal", None);
    engine.request("shop", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    let orders = ca.requests_to("/new-order").len();
    // Another process deactivates the account: this engine must not go on ordering with it.
    engine.store().set_account_status("main", "deactivated", None).await.unwrap();
    let err = engine.request("shop", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    assert!(err.message.contains("account main is deactivated"), "{err}");
    assert_eq!(ca.requests_to("/new-order").len(), orders, "no order with a stale account");
}

#[tokio::test]
async fn a_recorded_challenge_that_cannot_be_read_stops_the_request_naming_it() {
    let Setup { ca, engine, .. } = setup().await;
    add(&engine, "api", None).await;
    // A run killed while presenting left a record, since damaged: no token.
    let store = engine.store();
    let order = store.create_order("api", "main", None, None).await.unwrap();
    let spec = certhub_core::ChallengeSpec::parse("http-01:listen=127.0.0.1:0").unwrap();
    let damaged = serde_json::json!({
        "kind": "http-01",
        "identifier": { "type": "dns", "value": "api.test" },
        "key_authorization": "abc.def",
    });
    let id = store
        .record_presented(order.id, &serde_json::to_value(&spec).unwrap(), &damaged)
        .await
        .unwrap();
    let err = engine.request("api", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    assert!(
        err.message
            .contains(&format!("the challenge of presented challenge {id} (order {})", order.id))
            && err.message.contains("it has no token"),
        "{err}"
    );
    assert!(ca.requests_to("/new-order").is_empty(), "nothing is ordered past the damage");
}

async fn orders_reach(ca: &FakeCa, n: usize, what: &str) {
    certhub_testkit::wait_until(what, Duration::from_secs(20), || async {
        (ca.requests_to("/new-order").len() >= n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_wakes_at_the_next_check_time_and_on_a_change() {
    let Setup { _dir, ca, engine } =
        setup_with(Settings { check_interval_secs: 300, ..Settings::default() }).await;
    let store = engine.store().clone();
    let engine = Arc::new(engine);
    add(&engine, "web", None).await;
    // Its next look is recorded for three seconds from now.
    let seen = store.cert("web").await.unwrap().unwrap().updated_at;
    let at = certhub_engine::unix_ms(std::time::SystemTime::now()) + 3_000;
    assert!(store.set_cert_check("web", at, Some("75%"), seen).await.unwrap());

    refuse(&ca, 400, "rejectedIdentifier", None);
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
        refuse(&ca, 400, "rejectedIdentifier", None);
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

/// Certificate `name` as issued once (a real certificate, self-signed), expiring within the
/// hour: due under any policy.
async fn issued_and_due(engine: &Engine, name: &str) {
    add(engine, name, None).await;
    let now = now_ms() / 1000;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![format!("{name}.test")])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let issued = certhub_store::IssuedRecord {
        id: 0,
        cert_name: name.into(),
        order_id: None,
        serial_hex: format!("{:02x}", name.len()),
        issuer: "CN=Test".into(),
        sans: vec![certhub_core::Identifier::Dns(format!("{name}.test"))],
        not_before: (now - 86_400) * 1000,
        not_after: (now + 3_600) * 1000,
        chain_pem: cert.pem(),
        key_type: "ec-p256".into(),
        key_pkcs8: zeroize::Zeroizing::new(key.serialize_der()),
        revoked_at: None,
        revocation_reason: None,
        created_at: 0,
    };
    let store = engine.store();
    store.insert_issued(&issued, None).await.unwrap();
    store.set_cert_state(name, certhub_store::CertState::Valid, None).await.unwrap();
}

#[tokio::test]
async fn due_renewals_spend_the_cas_budget_and_the_rest_wait_for_its_window() {
    let Setup { ca, engine, .. } = setup().await;
    for name in ["a", "b", "c"] {
        issued_and_due(&engine, name).await;
    }
    // The CA takes eight orders an account in three hours, spread: two at once, then one
    // every 22.5 minutes.
    let run = certhub_engine::RenewRun {
        names: Vec::new(),
        due: true,
        policy: "75%".into(),
        jobs: 1,
        timeout: Duration::from_secs(30),
        rate_limits: vec![format!("{}=orders=8/3h", ca.url)],
    };
    for _ in 0..2 {
        refuse(&ca, 500, "serverInternal", None);
    }
    let before = now_ms();
    let summary = engine.renew(&run, &Actor::hub(), Arc::new(LogProgress)).await.unwrap();
    assert_eq!((summary.looked, summary.waiting, summary.failed.len()), (3, 1, 2), "{summary:?}");
    assert_eq!(ca.requests_to("/new-order").len(), 2, "no order beyond the budget");
    // The one left waits for the pace, and is looked at then.
    let mut waiting = Vec::new();
    for name in ["a", "b", "c"] {
        let cert = engine.store().cert(name).await.unwrap().unwrap();
        if cert.failures == 0 {
            waiting.push(name);
        }
    }
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let pace = 3 * 3_600_000 / 8;
    let next = engine.store().next_check_after(before + pace - 1_000).await.unwrap();
    let next = next.expect("a check when the budget has an order again");
    assert!(next >= before + pace - 1_000 && next <= now_ms() + pace, "{next}");

    // A second run (another process sharing the store, say) counts the same orders: the
    // budget is spent, and nothing more is ordered.
    let summary = engine.renew(&run, &Actor::hub(), Arc::new(LogProgress)).await.unwrap();
    assert_eq!(summary.renewed, 0, "{summary:?}");
    assert_eq!(ca.requests_to("/new-order").len(), 2, "the budget holds across runs");

    // A person asking for it by name is not held to the budget.
    refuse(&ca, 500, "serverInternal", None);
    let by_hand =
        certhub_engine::RenewRun { names: vec![waiting[0].to_string()], due: false, ..run };
    let summary = engine.renew(&by_hand, &Actor::cli(), Arc::new(LogProgress)).await.unwrap();
    assert_eq!((summary.waiting, summary.failed.len()), (0, 1), "{summary:?}");
    assert_eq!(ca.requests_to("/new-order").len(), 3);
}

#[tokio::test]
async fn a_request_cut_short_is_resumed_by_the_next_without_a_new_order() {
    let Setup { ca, engine, .. } = setup().await;
    add(&engine, "web", None).await;
    // The CA creates the order, then answers for its authorization with an error (as a CA
    // in trouble might, or a request cut short would leave it): the order stays open.
    let first = engine.request("web", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    assert_eq!(ca.requests_to("/new-order").len(), 1, "{first}");
    let open = engine.store().open_order("web").await.unwrap().expect("the order stays open");
    assert!(open.order_url.as_deref().is_some_and(|u| u.ends_with("/order/1")), "{open:?}");
    // The next request takes the same order up again instead of placing another.
    let steps = Steps::default();
    engine.request("web", Duration::from_secs(30), &steps).await.unwrap_err();
    assert_eq!(ca.requests_to("/new-order").len(), 1, "no second order");
    assert_eq!(ca.requests_to("/order/1").len(), 1, "the open order was asked for");
    let said = steps.0.lock().unwrap().join("\n");
    assert!(said.contains("resuming order"), "{said}");
    assert_eq!(engine.store().open_order("web").await.unwrap().map(|o| o.id), Some(open.id));
}

/// The steps a request reports.
#[derive(Default)]
struct Steps(std::sync::Mutex<Vec<String>>);

impl certhub_engine::Progress for Steps {
    fn step(&self, _cert: &str, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

/// A CA that cannot be reached is asked once: the requests that follow within half a minute
/// fail at once, saying when it was asked, instead of each waiting out the client's retries.
#[tokio::test]
async fn a_ca_that_cannot_be_reached_is_not_asked_again_for_each_certificate() {
    let Setup { engine, .. } = setup().await;
    // A "CA" that takes each connection and drops it unanswered, counting them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/dir", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let store = engine.store();
    let other = store.account("other").await.unwrap().unwrap();
    let down = certhub_store::AccountRecord { name: "down".into(), directory_url: url, ..other };
    store.insert_account(&down).await.unwrap();
    for name in ["d1", "d2"] {
        let cert = NewCertificate {
            name: name.into(),
            account: "down".into(),
            domains: vec![format!("{name}.test")],
            challenges: vec!["http-01:listen=127.0.0.1:0".into()],
            ..Default::default()
        };
        engine.add_certificate(&cert, Actor::cli().entry("cert.create", name)).await.unwrap();
    }

    let first = engine.request("d1", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    assert_eq!(first.kind, Kind::Transient, "{first}");
    let asked = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(asked >= 1, "the CA was never asked");
    let second = engine.request("d2", Duration::from_secs(30), &LogProgress).await.unwrap_err();
    assert_eq!(second.kind, Kind::Transient, "{second}");
    assert!(
        second.message.contains("account down could not be reached")
            && second.message.contains("s ago"),
        "{second}"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), asked, "asked again");
}
