//! What renewal reads and holds: what is due or changed, the CA's renewal windows, leases.

use std::time::Duration;

use crate::common::{Db, account, assert_not_found, cert, issued};

on_both_backends!(
    a_certificate_lease_has_one_holder_at_a_time,
    renewal_windows_are_cached_per_issued_certificate,
    the_scheduler_looks_only_at_what_is_due_or_changed
);

async fn the_scheduler_looks_only_at_what_is_due_or_changed(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("account");
    for name in ["a", "b", "c"] {
        let mut c = cert(name, "acme");
        c.renewal_policy = (name != "c").then(|| "30d".into());
        store.insert_cert(&c, None).await.expect("cert");
    }
    let to_check = |now: i64, policy: &'static str| {
        let store = store.clone();
        async move { store.certs_to_check(now, policy).await.expect("query") }
    };
    // New certificates are looked at at once.
    assert_eq!(to_check(1_000, "75%").await, ["a", "b", "c"]);
    let seen = |name: &'static str| {
        let store = store.clone();
        async move { store.cert(name).await.expect("read").expect("present").updated_at }
    };
    assert!(store.set_cert_check("a", 5_000, None, seen("a").await).await.expect("set"));
    assert!(store.set_cert_check("b", 9_000, None, seen("b").await).await.expect("set"));
    assert!(store.set_cert_check("c", 5_000, Some("75%"), seen("c").await).await.expect("set"));
    assert_eq!(to_check(1_000, "75%").await, Vec::<String>::new());
    assert_eq!(to_check(5_000, "75%").await, ["a", "c"]);
    // c's time assumed the hub-wide policy: another policy looks at it again.
    assert_eq!(to_check(1_000, "30d").await, ["c"]);
    assert_eq!(to_check(1_000, "80%").await, ["c"]);
    // A time computed before a change is not recorded over it.
    let stale = seen("a").await;
    let mut a = store.cert("a").await.expect("read").expect("present");
    a.renewal_policy = Some("10d".into());
    store.update_cert(&a, None).await.expect("edit");
    assert_eq!(to_check(1_000, "75%").await, ["a"], "an edit has it looked at");
    assert!(!store.set_cert_check("a", 5_000, None, stale).await.expect("set"));
    assert_eq!(to_check(1_000, "75%").await, ["a"]);
    assert!(store.set_cert_check("a", 5_000, None, seen("a").await).await.expect("set"));
    // An issuance, a revocation, a failure and a deployment task each have it looked at.
    let id = store.insert_issued(&issued("a", "01"), None).await.expect("issued");
    assert_eq!(to_check(1_000, "75%").await, ["a"]);
    assert!(store.set_cert_check("a", 5_000, None, seen("a").await).await.expect("set"));
    store.set_revoked(id, 2_000, Some(1), None).await.expect("revoke");
    assert_eq!(to_check(1_000, "75%").await, ["a"]);
    assert!(store.set_cert_check("b", 9_000, None, seen("b").await).await.expect("set"));
    store.set_cert_retry("b", 1, Some(7_000)).await.expect("retry");
    assert_eq!(to_check(1_000, "75%").await, ["a", "b"]);
    // Its retry time wakes the scheduler as a check time does.
    assert_eq!(store.next_check_after(5_000).await.expect("next"), Some(7_000));
    assert!(store.set_cert_check("b", 9_000, None, seen("b").await).await.expect("set"));
    let task = certhub_core::DeployTask::parse("files:dir=/tmp/certhub-test", "files").unwrap();
    store.add_deploy_tasks("b", &[task], None).await.expect("task");
    assert_eq!(to_check(1_000, "75%").await, ["a", "b"]);
    assert!(store.set_cert_check("b", 9_000, None, seen("b").await).await.expect("set"));
    store.record_deploy_outcome("b", "files", None, "failed", Some("no")).await.expect("ran");
    assert_eq!(to_check(1_000, "75%").await, ["a", "b"], "a failed deployment is retried");
    assert!(store.set_cert_check("b", 9_000, None, seen("b").await).await.expect("set"));
    store.record_deploy_outcome("b", "files", Some(1), "deployed", None).await.expect("ran");
    assert_eq!(to_check(1_000, "75%").await, ["a"], "a done one is not");
    assert!(!store.set_cert_check("missing", 1, None, 0).await.expect("set"));
}

async fn renewal_windows_are_cached_per_issued_certificate(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("account");
    store.insert_cert(&cert("www", "acme"), None).await.expect("cert");
    let id = store.insert_issued(&issued("www", "01"), None).await.expect("issued");
    assert_eq!(store.renewal_info(id).await.expect("read"), None);
    let mut info = certhub_store::RenewalInfoRecord {
        issued_id: id,
        window_start: 1_000,
        window_end: 2_000,
        directory_url: "https://ca.example/dir".into(),
        explanation_url: Some("https://ca.example/why".into()),
        fetched_at: 500,
        next_fetch_at: 600,
    };
    store.set_renewal_info(&info).await.expect("store");
    assert_eq!(store.renewal_info(id).await.expect("read").as_ref(), Some(&info));
    // A mass revocation moves the window; the next fetch replaces it.
    info.window_start = 10;
    info.window_end = 20;
    info.explanation_url = None;
    store.set_renewal_info(&info).await.expect("replace");
    assert_eq!(store.renewal_info(id).await.expect("read"), Some(info.clone()));
    info.issued_id = 9_999;
    assert_not_found(store.set_renewal_info(&info).await, "issued certificate", "9999");
    // It goes with its certificate.
    store.delete_cert("www", None).await.expect("delete");
    assert_eq!(store.renewal_info(id).await.expect("read"), None);
}

async fn a_certificate_lease_has_one_holder_at_a_time(db: Db) {
    let (a, b) = (db.open().await, db.open().await);
    let lease = a.try_lease_cert("web").await.expect("lease").expect("granted");
    let other = b.try_lease_cert("other").await.expect("lease");
    assert!(other.is_some(), "another certificate is not held");
    match db.sqlite_dir() {
        // One data directory: its lock files serialise requests, the lease is a formality.
        Some(_) => assert!(b.try_lease_cert("web").await.expect("lease").is_some()),
        None => {
            assert!(b.try_lease_cert("web").await.expect("lease").is_none(), "held by a");
            drop(lease);
            // The server releases the lock when the lease's connection closes.
            let mut again = None;
            for _ in 0..100 {
                again = b.try_lease_cert("web").await.expect("lease");
                if again.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(again.is_some(), "released when dropped");
        }
    }
}
