//! The database itself: reopening, concurrent handles, PostgreSQL reconnection, SQLite upgrades.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

use certhub_store::{DATABASE_FILE, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::common::{
    ACCOUNT_KEY, DNS_SECRET, Db, ISSUED_KEY, ORDER_KEY, SPEC_SECRET, account, assert_not_found,
    cert, issued, open, populate, raw, tempdir,
};

on_both_backends!(
    reopening_reads_everything_back,
    two_handles_open_and_write_concurrently,
    a_database_a_newer_certhub_migrated_is_refused_and_not_ready
);

/// A newer certhub migrated the database further than this one knows: this one refuses to
/// open it, saying so, and a hub already running says it is not ready.
async fn a_database_a_newer_certhub_migrated_is_refused_and_not_ready(db: Db) {
    let store = db.open().await;
    assert_eq!(store.ready().await, Ok(()));
    let raw = db.raw().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(99999i64)
    .bind("from the future")
    .bind(true)
    .bind(vec![0u8])
    .bind(0i64)
    .execute(&raw)
    .await
    .expect("a future migration recorded");
    let said = store.ready().await.unwrap_err();
    assert!(said.contains("newer certhub") && said.contains("99999"), "{said}");
    store.close().await;
    let e = db.try_open().await.map(drop).unwrap_err();
    assert!(matches!(e, certhub_store::Error::Newer { database: 99999, .. }), "{e}");
}

/// PostgreSQL connections are not checked before every query (a round trip each time), but
/// one that sat idle is: connections the server ended meanwhile (a restart) are replaced,
/// and the next queries succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replaces_connections_the_server_ended_while_idle() {
    let db = Db::postgres().await;
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("insert account");
    let raw = db.raw().await;
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&raw)
    .await
    .expect("end the store's connections");
    assert!(ended >= 1, "the store had no connection to end");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..20 {
        let got = store.account("acme").await.expect("a query after the server ended them");
        assert!(got.is_some());
    }
}

async fn reopening_reads_everything_back(db: Db) {
    let store = db.open().await;
    let order_id = populate(&store).await;
    let before = (
        store.accounts().await.expect("accounts"),
        store.certs().await.expect("certs"),
        store.orders_for("www").await.expect("orders"),
        store.presented_all().await.expect("presented"),
        store.issued_for("www").await.expect("issued"),
    );
    store.close().await;
    drop(store);

    let store = db.open().await;
    let after = (
        store.accounts().await.expect("accounts"),
        store.certs().await.expect("certs"),
        store.orders_for("www").await.expect("orders"),
        store.presented_all().await.expect("presented"),
        store.issued_for("www").await.expect("issued"),
    );
    assert_eq!(before, after);
    assert_eq!(after.0[0].key_pkcs8.as_slice(), ACCOUNT_KEY);
    let secret = match &after.1[0].challenges[0].config {
        certhub_core::ChallengeConfig::Dns01Rfc2136 { key_secret, .. } => key_secret.expose(),
        other => panic!("{other:?}"),
    };
    assert_eq!(secret, DNS_SECRET);
    assert_eq!(after.2[0].id, order_id);
    assert_eq!(after.2[0].status, "valid");
    assert_eq!(after.2[0].key_pkcs8.as_deref().map(Vec::as_slice), Some(ORDER_KEY));
    assert_eq!(after.3[0].spec["tsig_secret"], SPEC_SECRET);
    assert_eq!(after.4[0].key_pkcs8.as_slice(), ISSUED_KEY);
}

async fn two_handles_open_and_write_concurrently(db: Db) {
    // Both open a fresh store at the same time: one creates the key and the schema.
    let (a, b) = tokio::join!(db.open(), db.open());

    a.insert_account(&account("acme")).await.expect("insert via a");
    assert_eq!(
        b.account("acme").await.expect("read via b").expect("present").key_pkcs8.as_slice(),
        ACCOUNT_KEY
    );

    let writer = |store: Store, prefix: &'static str| async move {
        for i in 0..20 {
            let name = format!("{prefix}{i}");
            store.insert_cert(&cert(&name, "acme"), None).await.expect("insert cert");
            let order = store.create_order(&name, "acme", None, None).await.expect("order");
            store
                .complete_order(order.id, &issued(&name, &format!("{i:02x}")), None)
                .await
                .expect("complete");
        }
    };
    let (ra, rb) =
        tokio::join!(tokio::spawn(writer(a.clone(), "a-")), tokio::spawn(writer(b.clone(), "b-")));
    ra.expect("writer a");
    rb.expect("writer b");

    assert_eq!(a.certs().await.expect("list").len(), 40);
    assert_eq!(b.certs().await.expect("list").len(), 40);
    for store in [&a, &b] {
        for name in ["a-19", "b-19"] {
            let c = store.cert(name).await.expect("read").expect("present");
            assert_eq!(c.state, "valid");
            assert!(store.latest_issued(name).await.expect("latest").is_some());
        }
    }
}

#[tokio::test]
async fn a_populated_sqlite_store_upgrades_with_every_row() {
    let dir = tempdir();
    // The schema as it stood after migration 0003, applied from the same files.
    let old = tempdir();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in fs::read_dir(&sources).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(OsStr::to_str).unwrap_or_default().to_string();
        if name.as_str() < "0004" {
            fs::copy(&path, old.path().join(&name)).expect("copy a migration");
        }
    }
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join(DATABASE_FILE))
        .create_if_missing(true)
        .foreign_keys(true);
    let old_db = SqlitePool::connect_with(options).await.expect("create the old database");
    sqlx::migrate::Migrator::new(old.path())
        .await
        .expect("old migrations")
        .run(&old_db)
        .await
        .expect("the old schema");
    for sql in [
        "INSERT INTO accounts (name, directory_url, key_type, key_pkcs8, status, created_at, \
         updated_at) VALUES ('le', 'https://ca/dir', 'ec-p256', x'01', 'valid', 1, 1)",
        "INSERT INTO certs (name, account_name, identifiers, key_type, reuse_key, challenges, \
         state, created_at, updated_at) VALUES ('web', 'le', '[]', 'ec-p256', TRUE, x'01', \
         'valid', 1, 1)",
        "INSERT INTO orders (cert_name, account_name, status, created_at, updated_at) \
         VALUES ('web', 'le', 'valid', 1, 1)",
        "INSERT INTO issued (cert_name, order_id, serial_hex, issuer, sans, not_before, \
         not_after, chain_pem, key_type, key_pkcs8, created_at) VALUES ('web', 1, '0a', 'CA', \
         '[]', 1, 2, 'PEM', 'ec-p256', x'01', 1)",
        "INSERT INTO deploy_tasks (cert_name, name, position, task) VALUES ('web', 't', 0, x'01')",
        "INSERT INTO events (cert_name, at, kind) VALUES ('web', 1, 'issued')",
    ] {
        sqlx::query(sql).execute(&old_db).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    old_db.close().await;

    let store = open(dir.path()).await;
    store.close().await;
    let raw = raw(dir.path()).await;
    let count = |table: &'static str| {
        let raw = raw.clone();
        async move {
            let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
            sqlx::query_scalar::<_, i64>(sql).fetch_one(&raw).await.expect("count")
        }
    };
    for table in ["accounts", "certs", "orders", "issued", "deploy_tasks", "events"] {
        assert_eq!(count(table).await, 1, "{table}");
    }
    let reuse: i64 =
        sqlx::query_scalar("SELECT reuse_key FROM certs").fetch_one(&raw).await.unwrap();
    assert_eq!(reuse, 1);
    // Validity written in unix seconds reads in milliseconds, as every other time.
    let validity: (i64, i64) =
        sqlx::query_as("SELECT not_before, not_after FROM issued").fetch_one(&raw).await.unwrap();
    assert_eq!(validity, (1_000, 2_000));
    let broken: Vec<(String,)> =
        sqlx::query_as("PRAGMA foreign_key_check").fetch_all(&raw).await.expect("check");
    assert!(broken.is_empty(), "{broken:?}");
    // And the store writes to the upgraded tables, foreign keys enforced again.
    let store = open(dir.path()).await;
    store.insert_account(&account("acme")).await.expect("account");
    store.insert_cert(&cert("api", "acme"), None).await.expect("cert");
    assert_not_found(store.insert_cert(&cert("x", "nobody"), None).await, "account", "nobody");
}
