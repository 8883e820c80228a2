//! The whole cycle with the store on PostgreSQL: request, deploy, renew, leases, a wrong URL.

use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_cycle_on_postgresql() {
    let mut env = Env::start(hostile()).await;
    env.database = Some(certhub_testkit::postgres::TestDatabase::create().await);
    env.account("le", &[]).await;
    let out_dir = tempfile::TempDir::new().unwrap();
    env.ok(&[
        "cert",
        "add",
        "pg",
        "--account",
        "le",
        "-d",
        "pg.test,www.pg.test",
        "--challenge",
        &env.http01(),
        "--deploy",
        &format!("files:dir={}", out_dir.path().display()),
    ])
    .await;
    env.ok(&["cert", "request", "pg"]).await;
    env.verify_issued("pg", &["pg.test", "www.pg.test"]).await;
    assert!(out_dir.path().join("privkey.pem").exists());
    let first = env.show("pg").await["serial"].clone();
    env.ok(&["renew", "pg"]).await;
    assert_ne!(env.show("pg").await["serial"], first);
    let history = env.ok(&["cert", "history", "pg"]).await;
    assert_eq!(history.matches("issued").count(), 2, "{history}");
    // A hub on another machine holds the certificate: this one leaves it alone.
    let other_hub = certhub_store::Store::open_database(
        env.data_dir(),
        env.database.as_ref().map(|d| d.url.as_str()),
    )
    .await
    .unwrap();
    let lease = other_hub.try_lease_cert("pg").await.unwrap().expect("the lease");
    let out = env.ok(&["renew", "pg"]).await;
    assert!(out.contains("1 busy elsewhere"), "{out}");
    drop(lease);
    // Nothing went to a SQLite file: the data directory holds the master key only.
    assert!(!env.data_dir().join(certhub_store::DATABASE_FILE).exists());
    // A wrong URL is refused with a message that does not show the password.
    let out = env
        .command(&["cert", "list"])
        .env("CERTHUB_DATABASE_URL", "mysql://u:hunter2@localhost/x")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("expected postgres://") && !err.contains("hunter2"), "{err}");
}
