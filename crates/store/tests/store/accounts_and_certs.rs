//! Accounts and managed certificates round trip, and a certificate's history of events.

use certhub_store::Error;

use crate::common::{
    ACCOUNT_KEY, Db, ROLLED_KEY, account, assert_already_exists, assert_not_found, cert,
};

on_both_backends!(
    accounts_round_trip,
    certs_round_trip,
    a_certificate_whose_identifiers_cannot_be_read_is_an_error_naming_its_row,
    history_keeps_events_in_order_and_goes_with_the_certificate
);

async fn accounts_round_trip(db: Db) {
    let store = db.open().await;

    store.insert_account(&account("zeta")).await.expect("insert");
    store.insert_account(&account("alpha")).await.expect("insert");
    assert_already_exists(store.insert_account(&account("alpha")).await, "account", "alpha");

    let got = store.account("alpha").await.expect("read").expect("present");
    let mut want = account("alpha");
    want.created_at = got.created_at;
    want.updated_at = got.updated_at;
    assert_eq!(got, want);
    assert!(got.created_at > 1_600_000_000_000, "epoch milliseconds");
    assert!(store.account("missing").await.expect("read").is_none());

    let names: Vec<_> = store.accounts().await.expect("list").into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["alpha", "zeta"]);

    let url = "https://acme.example.test/acct/1";
    store.set_account_registered("alpha", url, None).await.expect("set url");
    assert_eq!(store.account("alpha").await.unwrap().unwrap().status, "valid");
    store.set_account_key("alpha", "ES384", ROLLED_KEY, None).await.expect("set key");
    store.set_account_status("alpha", "deactivated", None).await.expect("set status");
    store.set_account_email("alpha", None, None).await.expect("set email");
    let got = store.account("alpha").await.expect("read").expect("present");
    assert_eq!(got.account_url.as_deref(), Some("https://acme.example.test/acct/1"));
    assert_eq!(got.key_type, "ES384");
    assert_eq!(got.key_pkcs8.as_slice(), ROLLED_KEY);
    assert_eq!(got.status, "deactivated");
    assert_eq!(got.email, None);
    assert!(got.updated_at >= got.created_at);

    assert_not_found(
        store.set_account_registered("missing", "u", None).await,
        "account",
        "missing",
    );
    assert_not_found(
        store.set_account_key("missing", "ES256", ACCOUNT_KEY, None).await,
        "account",
        "missing",
    );
    assert_not_found(store.set_account_status("missing", "x", None).await, "account", "missing");
    assert_not_found(store.set_account_email("missing", None, None).await, "account", "missing");
    assert_not_found(store.delete_account("missing").await, "account", "missing");

    store.insert_cert(&cert("www", "zeta"), None).await.expect("insert cert");
    match store.delete_account("zeta").await {
        Err(Error::InUse { what: "account", name, .. }) if name == "zeta" => {}
        other => panic!("expected InUse, got {other:?}"),
    }
    store.delete_account("alpha").await.expect("delete");
    assert!(store.account("alpha").await.expect("read").is_none());
}

async fn certs_round_trip(db: Db) {
    let store = db.open().await;

    assert_not_found(store.insert_cert(&cert("www", "acme"), None).await, "account", "acme");
    store.insert_account(&account("acme")).await.expect("insert account");
    store.insert_account(&account("other")).await.expect("insert account");
    store.insert_cert(&cert("www", "acme"), None).await.expect("insert cert");
    store.insert_cert(&cert("api", "acme"), None).await.expect("insert cert");
    assert_already_exists(
        store.insert_cert(&cert("www", "acme"), None).await,
        "managed certificate",
        "www",
    );

    let got = store.cert("www").await.expect("read").expect("present");
    let mut want = cert("www", "acme");
    want.created_at = got.created_at;
    want.updated_at = got.updated_at;
    assert_eq!(got, want);
    assert!(store.cert("missing").await.expect("read").is_none());
    let names: Vec<_> = store.certs().await.expect("list").into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["api", "www"]);

    let mut changed = got.clone();
    changed.account_name = Some("other".into());
    changed.identifiers = vec![certhub_core::Identifier::Dns("*.example.test".into())];
    changed.key_type = "rsa-2048".into();
    changed.reuse_key = true;
    changed.csr_pem = Some("-----BEGIN CERTIFICATE REQUEST-----\n".into());
    changed.profile = None;
    changed.preferred_chain = Some("Root X2".into());
    changed.challenges =
        vec![certhub_core::ChallengeSpec::parse("http-01:webroot=/srv/www").unwrap()];
    changed.state = certhub_store::CertState::Failing;
    changed.last_error = Some("rate limited".into());
    store.update_cert(&changed, None).await.expect("update");
    let got = store.cert("www").await.expect("read").expect("present");
    changed.updated_at = got.updated_at;
    assert_eq!(got, changed);

    let mut unknown_account = changed.clone();
    unknown_account.account_name = Some("nobody".into());
    assert_not_found(store.update_cert(&unknown_account, None).await, "account", "nobody");
    assert_not_found(
        store.update_cert(&cert("missing", "acme"), None).await,
        "managed certificate",
        "missing",
    );

    store.set_cert_state("www", certhub_store::CertState::Valid, None).await.expect("set state");
    let got = store.cert("www").await.expect("read").expect("present");
    assert_eq!((got.state.as_str(), got.last_error), ("valid", None));
    store
        .set_cert_state("www", certhub_store::CertState::Failing, Some("timeout"))
        .await
        .expect("set state");
    let got = store.cert("www").await.expect("read").expect("present");
    assert_eq!(got.last_error.as_deref(), Some("timeout"));
    assert_not_found(
        store.set_cert_state("missing", certhub_store::CertState::Valid, None).await,
        "managed certificate",
        "missing",
    );

    store.delete_cert("api", None).await.expect("delete");
    assert!(store.cert("api").await.expect("read").is_none());
    assert_not_found(store.delete_cert("api", None).await, "managed certificate", "api");

    // An imported certificate has no account until one is attached.
    let mut imported = cert("bought", "acme");
    imported.account_name = None;
    store.insert_cert(&imported, None).await.expect("insert imported");
    let got = store.cert("bought").await.expect("read").expect("present");
    assert_eq!(got.account_name, None);
    imported.account_name = Some("other".into());
    store.update_cert(&imported, None).await.expect("attach an account");
    let got = store.cert("bought").await.expect("read").expect("present");
    assert_eq!(got.account_name.as_deref(), Some("other"));

    // Renewal settings and the retry state.
    imported.fallback_account = Some("nobody".into());
    assert_not_found(store.update_cert(&imported, None).await, "account", "other or nobody");
    imported.fallback_account = Some("acme".into());
    imported.fallback_after = 5;
    store.update_cert(&imported, None).await.expect("fallback account");
    store.set_cert_retry("bought", 2, Some(1_700_000_000_000)).await.expect("retry");
    let got = store.cert("bought").await.expect("read").expect("present");
    assert_eq!(
        (got.fallback_account.as_deref(), got.fallback_after, got.failures, got.next_attempt_at),
        (Some("acme"), 5, 2, Some(1_700_000_000_000))
    );
    store.set_cert_retry("bought", 0, None).await.expect("reset");
    let got = store.cert("bought").await.expect("read").expect("present");
    assert_eq!((got.failures, got.next_attempt_at), (0, None));
    assert_not_found(
        store.set_cert_retry("missing", 1, None).await,
        "managed certificate",
        "missing",
    );
}

async fn history_keeps_events_in_order_and_goes_with_the_certificate(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("le")).await.unwrap();
    store.insert_cert(&cert("web", "le"), None).await.unwrap();
    store
        .record_event("web", certhub_store::EventKind::Ordered, Some("https://ca/order/1"))
        .await
        .unwrap();
    store
        .record_event("web", certhub_store::EventKind::Validated, Some("a.test with http-01"))
        .await
        .unwrap();
    store
        .record_event("web", certhub_store::EventKind::Failed, Some("rateLimited: too many"))
        .await
        .unwrap();
    store.record_event("other", certhub_store::EventKind::Ordered, None).await.unwrap();
    let events = store.events_for("web").await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["ordered", "validated", "failed"]);
    assert_eq!(events[2].detail.as_deref(), Some("rateLimited: too many"));
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at && w[0].id < w[1].id));
    store.delete_cert("web", None).await.unwrap();
    assert!(store.events_for("web").await.unwrap().is_empty());
    assert_eq!(store.events_for("other").await.unwrap().len(), 1);
}

/// Stored data that cannot be read is never replaced by a default: reading it fails, naming
/// the table, the row and the column.
async fn a_certificate_whose_identifiers_cannot_be_read_is_an_error_naming_its_row(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("main")).await.unwrap();
    store.insert_cert(&cert("www", "main"), None).await.unwrap();
    let raw = db.raw().await;
    sqlx::query("UPDATE certs SET identifiers = $1 WHERE name = 'www'")
        .bind(r#"[{"type": "carrier-pigeon", "value": "www"}]"#)
        .execute(&raw)
        .await
        .unwrap();
    let err = store.cert("www").await.unwrap_err();
    assert!(matches!(err, Error::Json { table: "certs", column: "identifiers", .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("identifiers of certs row \"www\" cannot be read"), "{message}");
    assert!(store.certs().await.is_err());
}
