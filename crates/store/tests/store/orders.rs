//! Orders, presented challenges and issued certificates, and completing an order atomically.

use certhub_store::{CertRecord, Error, OrderRecord};
use serde_json::json;
use zeroize::Zeroizing;

use crate::common::{
    Db, ISSUED_KEY, ORDER_KEY, SPEC_SECRET, account, assert_already_exists, assert_not_found, cert,
    issued,
};

on_both_backends!(
    orders_and_presented_round_trip,
    issued_round_trip,
    complete_order_stores_issued_order_and_state_together,
    orders_are_counted_with_their_names_and_ari_renewals,
    admissions_share_one_budget_and_hold_places_until_ordered
);

async fn admissions_share_one_budget_and_hold_places_until_ordered(db: Db) {
    let (one, two) = (db.open().await, db.open().await);
    one.insert_account(&account("acme")).await.expect("account");
    for name in ["a", "b", "c", "d"] {
        one.insert_cert(&cert(name, "acme"), None).await.expect("cert");
    }
    let names = vec!["a.example.test".to_string()];
    let hold = |cert_name, until| certhub_store::BudgetHold {
        cert_name,
        account_name: "acme",
        names: &names,
        ari_renewal: false,
        until,
    };
    let later = jiff::Timestamp::now().as_millisecond() + 60_000;
    // Room for two orders: two stores admitting three at once admit two.
    let two_at_most = |placed: &[certhub_store::PlacedOrder]| {
        if placed.len() < 2 { Ok(()) } else { Err(placed.len()) }
    };
    let (a, b, c) = (hold("a", later), hold("b", later), hold("c", later));
    let (a, b, c) = tokio::join!(
        one.admit_order(0, &a, two_at_most),
        two.admit_order(0, &b, two_at_most),
        one.admit_order(0, &c, two_at_most),
    );
    let admitted = [a, b, c].into_iter().map(|r| r.expect("admission")).filter(Result::is_ok);
    assert_eq!(admitted.count(), 2);
    // A hold counts until its certificate's order is placed, then the order counts.
    let counted = |store: certhub_store::Store| async move {
        let count = |placed: &[certhub_store::PlacedOrder]| Err::<(), usize>(placed.len());
        let probe = hold("x", 0);
        store.admit_order(0, &probe, count).await.expect("admission").unwrap_err()
    };
    assert_eq!(counted(two.clone()).await, 2);
    for name in ["a", "b", "c"] {
        one.create_order(name, "acme", None, None).await.expect("order");
    }
    assert_eq!(counted(one.clone()).await, 3);
    // A request that ends without an order gives its place back; an ended hold counts no more.
    one.admit_order(0, &hold("d", later), |_| Ok::<(), ()>(())).await.unwrap().unwrap();
    assert_eq!(counted(two.clone()).await, 4);
    two.release_hold("d").await.expect("release");
    assert_eq!(counted(two.clone()).await, 3);
    one.admit_order(0, &hold("d", 1), |_| Ok::<(), ()>(())).await.unwrap().unwrap();
    assert_eq!(counted(two.clone()).await, 3);
}

async fn orders_are_counted_with_their_names_and_ari_renewals(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("account");
    let mut c = cert("www", "acme");
    c.identifiers = vec![
        certhub_core::Identifier::Dns("WWW.example.test".into()),
        certhub_core::Identifier::Dns("example.test".into()),
    ];
    store.insert_cert(&c, None).await.expect("cert");
    let first = store.create_order("www", "acme", None, None).await.expect("order");
    store.create_order("www", "acme", Some("aaa.bbb"), None).await.expect("order");
    let orders = store.orders_since(first.created_at - 1).await.expect("orders");
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0].account_name, "acme");
    assert_eq!(orders[0].names, ["www.example.test", "example.test"]);
    assert_eq!(orders.iter().map(|o| o.ari_renewal).collect::<Vec<_>>(), [false, true]);
    assert!(store.orders_since(orders[1].at).await.expect("orders").is_empty());
}

async fn orders_and_presented_round_trip(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("insert account");
    store.insert_cert(&cert("www", "acme"), None).await.expect("insert cert");

    assert_not_found(
        store.create_order("missing", "acme", None, None).await,
        "managed certificate",
        "missing",
    );
    assert_not_found(store.create_order("www", "missing", None, None).await, "account", "missing");

    let first = store.create_order("www", "acme", None, None).await.expect("create");
    assert_eq!(first.status, "new");
    assert_eq!(first.cert_name, "www");
    assert_eq!(first.account_name, "acme");
    assert_eq!(first.key_pkcs8, None);
    assert_eq!(store.open_order("www").await.expect("open order"), Some(first.clone()));

    store.set_order_url(first.id, "https://acme.example.test/order/1").await.expect("set url");
    let kinds = |events: Vec<certhub_store::EventRecord>| {
        events
            .into_iter()
            .map(|e| (e.kind.to_string(), e.detail.unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(store.events_for("www").await.expect("events")),
        [("ordered".to_string(), "https://acme.example.test/order/1".to_string())],
        "the order URL is recorded with its event"
    );
    store
        .set_order_key(first.id, "ecdsa-p256", ORDER_KEY, Some(b"CSR-DER"))
        .await
        .expect("set key");
    store
        .set_order_status(first.id, certhub_store::OrderStatus::Pending, None)
        .await
        .expect("set status");
    let got = store.order(first.id).await.expect("read").expect("present");
    assert_eq!(
        got,
        OrderRecord {
            order_url: Some("https://acme.example.test/order/1".into()),
            status: certhub_store::OrderStatus::Pending,
            key_pkcs8: Some(Zeroizing::new(ORDER_KEY.to_vec())),
            key_type: Some("ecdsa-p256".into()),
            csr_der: Some(b"CSR-DER".to_vec()),
            updated_at: got.updated_at,
            ..first.clone()
        }
    );

    // Records of presented challenges.
    let spec = json!({"provider": "rfc2136", "tsig_secret": SPEC_SECRET});
    let challenge = json!({"type": "dns-01", "token": "tok-1", "url": "https://acme/chall/1"});
    let p1 = store.record_presented(first.id, &spec, &challenge).await.expect("record");
    let p2 = store
        .record_presented(first.id, &json!({"webroot": "/srv"}), &json!({"type": "http-01"}))
        .await
        .expect("record");
    assert_not_found(store.record_presented(9999, &spec, &challenge).await, "order", "9999");
    let listed = store.presented_for(first.id).await.expect("list");
    assert_eq!(listed.iter().map(|p| p.id).collect::<Vec<_>>(), [p1, p2]);
    assert_eq!(listed[0].order_id, first.id);
    assert_eq!(listed[0].spec, spec);
    assert_eq!(listed[0].challenge, challenge);
    assert!(!format!("{:?}", listed[0]).contains(SPEC_SECRET));
    assert_eq!(store.presented_all().await.expect("list all"), listed);

    match store.delete_cert("www", None).await {
        Err(Error::InUse { name, .. }) if name == "www" => {}
        other => panic!("expected InUse while challenges await cleanup, got {other:?}"),
    }

    store.remove_presented(p1, Some("www.example.com with dns-01")).await.expect("remove");
    assert_not_found(
        store.remove_presented(p1, None).await,
        "presented challenge",
        &p1.to_string(),
    );
    let remaining = store.presented_all().await.expect("list all");
    assert_eq!(remaining.iter().map(|p| p.id).collect::<Vec<_>>(), [p2]);
    // A challenge that failed or was left over leaves no event.
    store.remove_presented(p2, None).await.expect("remove");
    assert_eq!(
        kinds(store.events_for("www").await.expect("events"))[1..],
        [("validated".to_string(), "www.example.com with dns-01".to_string())]
    );

    // A failed attempt ends; the next one becomes the open order.
    store
        .set_order_status(
            first.id,
            certhub_store::OrderStatus::Invalid,
            Some("dns record not found"),
        )
        .await
        .expect("set status");
    assert_eq!(store.open_order("www").await.expect("open order"), None);
    let second = store.create_order("www", "acme", None, None).await.expect("create");
    assert!(second.id > first.id);
    assert_eq!(store.open_order("www").await.expect("open order").map(|o| o.id), Some(second.id));
    store
        .set_order_status(second.id, certhub_store::OrderStatus::Abandoned, None)
        .await
        .expect("set status");
    assert_eq!(store.open_order("www").await.expect("open order"), None);

    // An order placed with its key and CSR holds them from the start.
    let key = certhub_store::OrderKey {
        key_type: "ecdsa-p256",
        key_pkcs8: ORDER_KEY,
        csr_der: b"CSR-DER-2",
    };
    let third = store.create_order("www", "acme", None, Some(key)).await.expect("create");
    let read = store.order(third.id).await.expect("read").expect("present");
    assert_eq!(read, third);
    // Placed in one write, at one moment.
    assert_eq!(read.updated_at, read.created_at);
    assert_eq!(read.key_pkcs8.as_deref().map(|k| k.as_slice()), Some(ORDER_KEY));
    assert_eq!(read.key_type.as_deref(), Some("ecdsa-p256"));
    assert_eq!(read.csr_der.as_deref(), Some(&b"CSR-DER-2"[..]));
    store
        .set_order_status(third.id, certhub_store::OrderStatus::Abandoned, None)
        .await
        .expect("set status");

    let all = store.orders_for("www").await.expect("list");
    assert_eq!(all.iter().map(|o| o.id).collect::<Vec<_>>(), [third.id, second.id, first.id]);
    assert_eq!(all[2].error.as_deref(), Some("dns record not found"));

    assert_not_found(store.set_order_url(9999, "u").await, "order", "9999");
    assert_not_found(store.set_order_key(9999, "t", ORDER_KEY, None).await, "order", "9999");
    assert_not_found(
        store.set_order_status(9999, certhub_store::OrderStatus::Valid, None).await,
        "order",
        "9999",
    );

    // Without presented challenges the certificate and its history can go.
    store.delete_cert("www", None).await.expect("delete");
    assert!(store.orders_for("www").await.expect("list").is_empty());
}

async fn issued_round_trip(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("insert account");
    store.insert_cert(&cert("www", "acme"), None).await.expect("insert cert");

    assert_eq!(store.latest_issued("www").await.expect("latest"), None);
    assert_not_found(
        store.insert_issued(&issued("missing", "01"), None).await,
        "managed certificate",
        "missing",
    );
    let mut with_unknown_order = issued("www", "01");
    with_unknown_order.order_id = Some(4242);
    assert_not_found(store.insert_issued(&with_unknown_order, None).await, "order", "4242");

    let first = store.insert_issued(&issued("www", "01"), None).await.expect("insert");
    let second = store.insert_issued(&issued("www", "02"), None).await.expect("insert");
    let latest = store.latest_issued("www").await.expect("latest").expect("present");
    let mut want = issued("www", "02");
    want.id = second;
    want.created_at = latest.created_at;
    assert_eq!(latest, want);
    assert!(!format!("{latest:?}").contains("ISSUED-CERT-KEY"));

    let all = store.issued_for("www").await.expect("list");
    assert_eq!(all.iter().map(|i| i.id).collect::<Vec<_>>(), [second, first]);

    store.set_revoked(first, 1_710_000_000_000, Some(4), None).await.expect("revoke");
    let revoked = store.issued(first).await.expect("read").expect("present");
    assert_eq!(revoked.revoked_at, Some(1_710_000_000_000));
    assert_eq!(revoked.revocation_reason, Some(4));
    assert_not_found(store.set_revoked(9999, 1, None, None).await, "issued certificate", "9999");

    // At most one issued certificate per order.
    let order = store.create_order("www", "acme", None, None).await.expect("order");
    let mut for_order = issued("www", "03");
    for_order.order_id = Some(order.id);
    store.insert_issued(&for_order, None).await.expect("insert");
    assert_already_exists(
        store.insert_issued(&for_order, None).await,
        "issued certificate for order",
        &order.id.to_string(),
    );
}

async fn complete_order_stores_issued_order_and_state_together(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("insert account");
    store.insert_cert(&cert("www", "acme"), None).await.expect("insert cert");
    store
        .set_cert_state("www", certhub_store::CertState::Failing, Some("earlier failure"))
        .await
        .expect("set state");
    store.set_cert_retry("www", 2, Some(i64::MAX)).await.expect("set retry");
    let order = store.create_order("www", "acme", None, None).await.expect("order");
    store
        .set_order_status(order.id, certhub_store::OrderStatus::Ready, None)
        .await
        .expect("status");

    // Success: every change lands, the failures in a row are over, and the history says so.
    let done = issued("www", "0a");
    let id = store.complete_order(order.id, &done, None).await.expect("complete");
    let got = store.order(order.id).await.expect("read").expect("present");
    assert_eq!(got.status, "valid");
    let cert = store.cert("www").await.expect("read").expect("present");
    assert_eq!((cert.state.as_str(), cert.last_error), ("valid", None));
    assert_eq!((cert.failures, cert.next_attempt_at), (0, None));
    let events = store.events_for("www").await.expect("events");
    let expected =
        format!("serial 0a, expires {}", certhub_core::time::rfc3339(done.not_after / 1000));
    assert_eq!(
        events.iter().map(|e| (e.kind.as_str(), e.detail.as_deref())).collect::<Vec<_>>(),
        [("issued", Some(expected.as_str()))]
    );
    let latest = store.latest_issued("www").await.expect("latest").expect("present");
    assert_eq!((latest.id, latest.order_id), (id, Some(order.id)));
    assert_eq!(latest.key_pkcs8.as_slice(), ISSUED_KEY);

    // Failure half-way (the issued insert violates the one-per-order rule after the order's
    // status was already updated in the transaction): nothing changes.
    let second = store.create_order("www", "acme", None, None).await.expect("order");
    store
        .set_order_status(second.id, certhub_store::OrderStatus::Processing, None)
        .await
        .expect("status");
    store
        .set_cert_state("www", certhub_store::CertState::Renewing, Some("in progress"))
        .await
        .expect("set state");
    let mut taken = issued("www", "0b");
    taken.order_id = Some(second.id);
    let taken_id = store.insert_issued(&taken, None).await.expect("insert");
    assert_already_exists(
        store.complete_order(second.id, &issued("www", "0c"), None).await,
        "issued certificate for order",
        &second.id.to_string(),
    );
    let got = store.order(second.id).await.expect("read").expect("present");
    assert_eq!(got.status, "processing");
    assert_eq!(store.events_for("www").await.expect("events").len(), 1, "no second event");
    let cert = store.cert("www").await.expect("read").expect("present");
    assert_eq!(cert.state, "renewing", "the state stays as it was");
    assert_eq!(cert.last_error.as_deref(), Some("in progress"));
    let ids: Vec<_> =
        store.issued_for("www").await.expect("list").into_iter().map(|i| i.id).collect();
    assert_eq!(ids, [taken_id, id]);

    // The order must belong to the certificate named in the record.
    store.insert_cert(&cert_named("api"), None).await.expect("insert cert");
    let third = store.create_order("www", "acme", None, None).await.expect("order");
    match store.complete_order(third.id, &issued("api", "0d"), None).await {
        Err(Error::Invalid { .. }) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(store.order(third.id).await.expect("read").expect("present").status, "new");
    assert_not_found(store.complete_order(9999, &issued("www", "0e"), None).await, "order", "9999");
}

fn cert_named(name: &str) -> CertRecord {
    cert(name, "acme")
}
