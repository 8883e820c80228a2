//! The audit log: a hash chain, anchors against rollback, and entries stored with their change.

use serde_json::json;

use crate::common::{Db, account, cert, issued};

on_both_backends!(
    the_audit_chain_shows_any_change_or_removal,
    the_audit_log_cannot_be_emptied_or_rolled_back_unseen,
    a_change_and_its_audit_entry_are_stored_together
);

async fn the_audit_chain_shows_any_change_or_removal(db: Db) {
    let store = db.open().await;
    assert_eq!(store.verify_audit().await.unwrap(), Ok(0));
    for i in 0..5 {
        let target = format!("web{i}");
        store.audit("ada", "cert.request", &target, "127.0.0.1", None).await.unwrap();
    }
    store.audit("ada", "cert.key-download", "web1", "10.0.0.2", Some("pem")).await.unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Ok(6));
    let entries = store.audit_entries(0, 100).await.unwrap();
    assert_eq!(entries[0].prev_hash, certhub_store::audit::GENESIS);
    assert!(entries.windows(2).all(|w| w[1].prev_hash == w[0].hash));

    let raw = db.raw().await;
    // An entry changed in place.
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE id = $1")
        .bind(entries[2].id)
        .execute(&raw)
        .await
        .unwrap();
    let broken = store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, entries[2].id);
    assert!(broken.reason.contains("changed"), "{broken:?}");
    sqlx::query("UPDATE audit_log SET actor = 'ada' WHERE id = $1")
        .bind(entries[2].id)
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Ok(6));
    // The newest entry removed: the sealed record of the last entry shows it.
    sqlx::query("DELETE FROM audit_log WHERE id = $1")
        .bind(entries[5].id)
        .execute(&raw)
        .await
        .unwrap();
    let broken = store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, entries[5].id);
    assert!(broken.reason.contains("newest entries were removed"), "{broken:?}");
    // An entry removed.
    sqlx::query("DELETE FROM audit_log WHERE id = $1")
        .bind(entries[3].id)
        .execute(&raw)
        .await
        .unwrap();
    let broken = store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, entries[4].id);
    assert!(broken.reason.contains("removed"), "{broken:?}");
}

async fn the_audit_log_cannot_be_emptied_or_rolled_back_unseen(db: Db) {
    let store = db.open().await;
    assert_eq!(store.audit_anchor().await.unwrap(), None, "nothing to anchor yet");
    store.create_first_admin("ada", "$argon2id$fake", "10.0.0.1").await.unwrap();
    store.audit("ada", "cert.request", "web", "10.0.0.1", None).await.unwrap();
    let early = store.audit_anchor().await.unwrap().expect("an anchor");
    assert!(early.starts_with("certhub-audit-anchor/1 id="), "{early}");
    let raw = db.raw().await;
    let head = || async {
        sqlx::query_scalar::<_, Vec<u8>>("SELECT value FROM meta WHERE name = 'audit_head'")
            .fetch_one(&raw)
            .await
            .unwrap()
    };
    let early_head = head().await;
    let mail = store.audit("ada", "cert.request", "mail", "10.0.0.1", None).await.unwrap();
    let late = store.audit_anchor().await.unwrap().unwrap();
    assert_eq!(store.verify_audit_anchors(&[&early]).await.unwrap(), Ok(3));
    assert_eq!(store.verify_audit_anchors(&[&late]).await.unwrap(), Ok(3));

    // Rolled back to the earlier state: the newest entry gone and the record of the log as
    // it stood before put back. The log alone cannot tell; the later anchor can.
    sqlx::query("DELETE FROM audit_log WHERE id = $1").bind(mail.id).execute(&raw).await.unwrap();
    sqlx::query("UPDATE meta SET value = $1 WHERE name = 'audit_head'")
        .bind(early_head)
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Ok(2));
    assert_eq!(store.verify_audit_anchors(&[&early]).await.unwrap(), Ok(2));
    let broken = store.verify_audit_anchors(&[&late]).await.unwrap().unwrap_err();
    assert_eq!(broken.id, mail.id);
    assert!(broken.reason.contains("rolled back"), "{broken:?}");
    // An anchor that was edited is refused as such.
    let forged = late.replace(&format!("id={}", mail.id), "id=1");
    let e = store.verify_audit_anchors(&[&early, &forged]).await.unwrap_err().to_string();
    assert!(e.contains("audit anchor 2") && e.contains("its mac does not match"), "{e}");

    // The whole log and its record removed: a hub with users had a first entry.
    sqlx::query("DELETE FROM audit_log").execute(&raw).await.unwrap();
    sqlx::query("DELETE FROM meta WHERE name = 'audit_head'").execute(&raw).await.unwrap();
    let broken = store.verify_audit().await.unwrap().unwrap_err();
    assert!(broken.reason.contains("the log is empty, yet the hub has users"), "{broken:?}");
}

async fn a_change_and_its_audit_entry_are_stored_together(db: Db) {
    use certhub_store::AuditEntry;
    let store = db.open().await;
    store.insert_account(&account("acme")).await.unwrap();
    let entry =
        |action: &str, target: &str| AuditEntry::new("ada (web)", action, target, "10.0.0.1");
    store.insert_cert(&cert("www", "acme"), Some(&entry("cert.create", "www"))).await.unwrap();
    let task = certhub_core::DeployTask::parse("files:dir=/tmp/certhub-test", "files").unwrap();
    let added = entry("deploy.add", "www").with_detail("files");
    store.add_deploy_tasks("www", std::slice::from_ref(&task), Some(&added)).await.unwrap();
    let logged = store.audit_entries(0, 10).await.unwrap();
    let said: Vec<_> = logged.iter().map(|e| (e.action.as_str(), e.detail.as_deref())).collect();
    assert_eq!(said, [("cert.create", None), ("deploy.add", Some("files"))]);

    // The audit log refuses to take an entry: no change goes in without one.
    let raw = db.raw().await;
    let closing = match db.postgres {
        None => vec![
            "CREATE TRIGGER closed BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'the audit log is closed'); END",
        ],
        Some(_) => vec![
            "CREATE FUNCTION closed() RETURNS trigger AS \
             $$ BEGIN RAISE EXCEPTION 'the audit log is closed'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER closed BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION closed()",
        ],
    };
    for sql in closing {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    let more = certhub_core::DeployTask::parse(
        "webhook:url=https://hooks.test/certhub,secret=s3cr3t",
        "webhook",
    )
    .unwrap();
    assert!(
        store.add_deploy_tasks("www", &[more], Some(&entry("deploy.add", "www"))).await.is_err()
    );
    assert!(
        store
            .remove_deploy_task("www", "files", Some(&entry("deploy.remove", "www")))
            .await
            .is_err()
    );
    assert!(
        store
            .insert_cert(&cert("mail", "acme"), Some(&entry("cert.create", "mail")))
            .await
            .is_err()
    );
    assert!(store.delete_cert("www", Some(&entry("cert.delete", "www"))).await.is_err());
    let settings = json!({"policy": "30d"});
    assert!(
        store.set_hub_settings(&settings, Some(&entry("settings.update", "hub"))).await.is_err()
    );
    store.insert_user("ada", "$argon2id$fake", "admin", None).await.unwrap();
    assert!(
        store
            .insert_user("eve", "$argon2id$fake", "admin", Some(&entry("user.create", "eve")))
            .await
            .is_err()
    );
    let import = entry("cert.import", "bought");
    let task = [certhub_core::DeployTask::parse("files:dir=/tmp/certhub-test", "files").unwrap()];
    let imported = store
        .import_issued(
            &cert("bought", "acme"),
            true,
            &task,
            &issued("bought", "0f"),
            "0f",
            Some(&import),
        )
        .await;
    assert!(imported.is_err());
    assert!(store.cert("bought").await.unwrap().is_none(), "nothing of an import is stored");
    let tasks: Vec<String> =
        store.deploy_tasks("www").await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tasks, ["files"], "neither added nor removed");
    assert!(store.cert("mail").await.unwrap().is_none());
    assert!(store.cert("www").await.unwrap().is_some());
    assert_eq!(store.hub_settings().await.unwrap(), None);
    assert!(store.user("eve").await.unwrap().is_none());
    assert_eq!(store.verify_audit().await.unwrap(), Ok(2));
}
