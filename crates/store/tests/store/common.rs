//! Records, constants, the per-test database and assertions shared by the topic files.

use std::path::Path;
use std::time::Duration;

use certhub_core::{ChallengeSpec, Identifier};
use certhub_store::crypto::MasterKey;
use certhub_store::{AccountRecord, CertRecord, DATABASE_FILE, Error, IssuedRecord, Store};
use certhub_testkit::postgres::TestDatabase;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use zeroize::Zeroizing;

pub(crate) const ACCOUNT_KEY: &[u8] = b"ACCOUNT-KEY-PLAINTEXT-7f3a9c1e5b2d8f4a6c0e1b3d5f7a9c2e";
pub(crate) const ROLLED_KEY: &[u8] = b"ROLLED-ACCOUNT-KEY-PLAINTEXT-0d9e8f7a6b5c4d3e2f1a0b9c";
pub(crate) const ORDER_KEY: &[u8] = b"ORDER-CERT-KEY-PLAINTEXT-a1b2c3d4e5f60718293a4b5c6d7e";
pub(crate) const ISSUED_KEY: &[u8] = b"ISSUED-CERT-KEY-PLAINTEXT-1029384756abcdefedcba6574839";
pub(crate) const DNS_SECRET: &str = "TSIG-SECRET-c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw";
pub(crate) const SPEC_SECRET: &str = "SPEC-SECRET-bG9uZy1saXZlZC1hcGktdG9rZW4tdmFsdWU";
pub(crate) const DIRECTORY_URL: &str = "https://acme.example.test/directory-marker";

pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

pub(crate) fn account(name: &str) -> AccountRecord {
    AccountRecord {
        name: name.to_owned(),
        directory_url: DIRECTORY_URL.to_owned(),
        ca_bundle_pem: Some(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        ),
        email: Some("admin@example.test".into()),
        key_type: "ES256".into(),
        key_pkcs8: Zeroizing::new(ACCOUNT_KEY.to_vec()),
        account_url: None,
        status: "valid".into(),
        eab_kid: Some("kid-1".into()),
        created_at: 0,
        updated_at: 0,
    }
}

pub(crate) fn cert(name: &str, account_name: &str) -> CertRecord {
    CertRecord {
        name: name.to_owned(),
        account_name: Some(account_name.to_owned()),
        identifiers: vec![Identifier::Dns("www.example.test".into())],
        key_type: "ecdsa-p256".into(),
        reuse_key: false,
        csr_pem: None,
        profile: Some("shortlived".into()),
        preferred_chain: None,
        challenges: vec![
            ChallengeSpec::parse(&format!(
                "dns-01:rfc2136=127.0.0.1:53,key-name=certhub.,key-secret={DNS_SECRET}"
            ))
            .expect("a challenge SPEC"),
        ],
        state: certhub_store::CertState::Pending,
        last_error: None,
        renewal_policy: Some("30d".into()),
        fallback_account: None,
        fallback_after: 3,
        failures: 0,
        next_attempt_at: None,
        created_at: 0,
        updated_at: 0,
    }
}

pub(crate) fn issued(cert_name: &str, serial: &str) -> IssuedRecord {
    IssuedRecord {
        id: 0,
        cert_name: cert_name.to_owned(),
        order_id: None,
        serial_hex: serial.to_owned(),
        issuer: "CN=Test CA".into(),
        sans: vec![Identifier::Dns("www.example.test".into())],
        not_before: 1_700_000_000_000,
        not_after: 1_707_776_000_000,
        chain_pem: "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n".into(),
        key_type: "ecdsa-p256".into(),
        key_pkcs8: Zeroizing::new(ISSUED_KEY.to_vec()),
        revoked_at: None,
        revocation_reason: None,
        created_at: 0,
    }
}

pub(crate) async fn open(dir: &Path) -> Store {
    Store::open(dir).await.expect("open the store")
}

/// A raw connection to the data directory's SQLite file, for looking behind the store's back.
pub(crate) async fn raw(dir: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.join(DATABASE_FILE))
        .busy_timeout(Duration::from_secs(10));
    SqlitePool::connect_with(options).await.expect("open a raw connection")
}

/// Where one test's store lives: a temporary data directory (the master key, and the SQLite
/// file), and for PostgreSQL a database of its own, dropped when the test ends.
pub(crate) struct Db {
    dir: tempfile::TempDir,
    pub(crate) postgres: Option<TestDatabase>,
}

impl Db {
    pub(crate) async fn sqlite() -> Db {
        Db { dir: tempdir(), postgres: None }
    }

    pub(crate) async fn postgres() -> Db {
        Db { dir: tempdir(), postgres: Some(TestDatabase::create().await) }
    }

    fn url(&self) -> Option<&str> {
        self.postgres.as_ref().map(|db| db.url.as_str())
    }

    /// The data directory when the database is its SQLite file.
    pub(crate) fn sqlite_dir(&self) -> Option<&Path> {
        self.postgres.is_none().then(|| self.dir.path())
    }

    pub(crate) async fn open(&self) -> Store {
        Store::open_database(self.dir.path(), self.url()).await.expect("open the store")
    }

    pub(crate) async fn try_open(&self) -> Result<Store, Error> {
        Store::open_database(self.dir.path(), self.url()).await
    }

    pub(crate) async fn open_with_key(&self, key: MasterKey) -> Result<Store, Error> {
        Store::open_database_with_master_key(self.dir.path(), self.url(), key).await
    }

    /// A raw connection to the database, for looking behind the store's back.
    pub(crate) async fn raw(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match self.url() {
            Some(url) => url.to_string(),
            None => format!("sqlite://{}", self.dir.path().join(DATABASE_FILE).display()),
        };
        sqlx::AnyPool::connect(&url).await.expect("open a raw connection")
    }
}

pub(crate) fn assert_not_found(
    result: Result<impl std::fmt::Debug, Error>,
    what: &str,
    name: &str,
) {
    match result {
        Err(Error::NotFound { what: w, name: n }) if w == what && n == name => {}
        other => panic!("expected NotFound {{ {what}, {name} }}, got {other:?}"),
    }
}

pub(crate) fn assert_already_exists(
    result: Result<impl std::fmt::Debug, Error>,
    what: &str,
    name: &str,
) {
    match result {
        Err(Error::AlreadyExists { what: w, name: n }) if w == what && n == name => {}
        other => panic!("expected AlreadyExists {{ {what}, {name} }}, got {other:?}"),
    }
}

/// Fills a store with one row of every kind; returns the order id.
pub(crate) async fn populate(store: &Store) -> i64 {
    store.insert_account(&account("acme")).await.expect("insert account");
    store.insert_cert(&cert("www", "acme"), None).await.expect("insert cert");
    let order = store.create_order("www", "acme", None, None).await.expect("order");
    store.set_order_key(order.id, "ecdsa-p256", ORDER_KEY, Some(b"CSR")).await.expect("order key");
    store
        .record_presented(
            order.id,
            &json!({"tsig_secret": SPEC_SECRET}),
            &json!({"type": "dns-01"}),
        )
        .await
        .expect("presented");
    store.complete_order(order.id, &issued("www", "01"), None).await.expect("complete");
    order.id
}
