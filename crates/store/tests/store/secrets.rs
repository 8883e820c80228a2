//! Secrets at rest: encrypted columns, the master key and its file, private modes, redaction.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use certhub_store::crypto::{self, MASTER_KEY_FILE, MasterKey};
use certhub_store::{DATABASE_FILE, Error, Store};
use zeroize::Zeroizing;

use crate::common::{
    ACCOUNT_KEY, DIRECTORY_URL, DNS_SECRET, Db, ISSUED_KEY, ORDER_KEY, ROLLED_KEY, SPEC_SECRET,
    account, cert, issued, open, populate, raw, tempdir,
};

on_both_backends!(
    secrets_are_encrypted_on_disk,
    blob_moved_to_another_row_fails_to_open,
    wrong_master_key_is_refused_at_open
);

/// Every byte SQLite keeps for the database: the main file, the WAL and the shared memory.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in fs::read_dir(dir).expect("list the data directory") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(OsStr::to_str).unwrap_or_default();
        if name.starts_with(DATABASE_FILE) {
            bytes.extend(fs::read(&path).expect("read a database file"));
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

async fn secrets_are_encrypted_on_disk(db: Db) {
    let store = db.open().await;
    populate(&store).await;

    // SQLite: every byte of the files. (PostgreSQL's files belong to its server; the raw
    // columns below are what it stores.)
    if let Some(dir) = db.sqlite_dir() {
        let bytes = database_bytes(dir);
        // The scan sees the data: a non-secret value is there in clear.
        assert!(contains(&bytes, DIRECTORY_URL.as_bytes()), "scan found no data");
        for secret in
            [ACCOUNT_KEY, ORDER_KEY, ISSUED_KEY, DNS_SECRET.as_bytes(), SPEC_SECRET.as_bytes()]
        {
            assert!(
                !contains(&bytes, secret),
                "{} found in clear on disk",
                String::from_utf8_lossy(secret)
            );
        }
    }

    // The raw columns hold version-1 blobs, not the plaintext.
    let raw = db.raw().await;
    for (sql, secret) in [
        ("SELECT key_pkcs8 FROM accounts", ACCOUNT_KEY),
        ("SELECT challenges FROM certs", DNS_SECRET.as_bytes()),
        ("SELECT key_pkcs8 FROM orders", ORDER_KEY),
        ("SELECT spec FROM presented", SPEC_SECRET.as_bytes()),
        ("SELECT key_pkcs8 FROM issued", ISSUED_KEY),
    ] {
        let blobs: Vec<Vec<u8>> = sqlx::query_scalar(sql).fetch_all(&raw).await.expect("raw query");
        assert!(!blobs.is_empty(), "{sql} returned nothing");
        for blob in blobs {
            assert_eq!(blob.first(), Some(&1), "{sql}: blob version");
            assert!(!contains(&blob, secret), "{sql}: plaintext in the blob");
        }
    }
    raw.close().await;
    store.close().await;
}

#[tokio::test]
async fn data_dir_and_master_key_are_created_private() {
    let parent = tempdir();
    let dir = parent.path().join("data");
    let store = open(&dir).await;
    assert_eq!(mode(&dir), 0o700, "data directory mode");
    let key_path = dir.join(MASTER_KEY_FILE);
    assert_eq!(mode(&key_path), 0o600, "master key mode");
    assert_eq!(fs::read(&key_path).expect("read key").len(), 32);
    assert_eq!(mode(&dir.join(DATABASE_FILE)), 0o600, "database mode");
    // No temporary key files are left behind.
    let leftovers: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "leftover files: {leftovers:?}");
    // WAL mode is a property of the database file.
    let raw = raw(&dir).await;
    let journal: String =
        sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&raw).await.expect("journal mode");
    assert_eq!(journal, "wal");
    raw.close().await;
    store.close().await;
}

async fn blob_moved_to_another_row_fails_to_open(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("a")).await.expect("insert");
    let mut b = account("b");
    b.key_pkcs8 = Zeroizing::new(ROLLED_KEY.to_vec());
    store.insert_account(&b).await.expect("insert");
    store.insert_cert(&cert("c1", "a"), None).await.expect("insert");
    store.insert_cert(&cert("c2", "a"), None).await.expect("insert");

    let raw = db.raw().await;
    sqlx::query(
        "UPDATE accounts SET key_pkcs8 = (SELECT key_pkcs8 FROM accounts WHERE name = 'a') \
         WHERE name = 'b'",
    )
    .execute(&raw)
    .await
    .expect("copy blob");
    sqlx::query(
        "UPDATE certs SET challenges = (SELECT challenges FROM certs WHERE name = 'c1') \
         WHERE name = 'c2'",
    )
    .execute(&raw)
    .await
    .expect("copy blob");
    raw.close().await;

    let err = store.account("b").await.expect_err("moved blob must not open");
    match &err {
        Error::Crypto { source: crypto::Error::Open { table, row, column } } => assert_eq!(
            (table.as_str(), row.as_str(), column.as_str()),
            ("accounts", "b", "key_pkcs8")
        ),
        other => panic!("expected a crypto open error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("accounts") && message.contains("\"b\"") && message.contains("key_pkcs8")
    );
    assert!(!message.contains(String::from_utf8_lossy(ACCOUNT_KEY).as_ref()));
    // The untouched row still opens.
    assert!(store.account("a").await.expect("read").is_some());
    assert!(store.accounts().await.is_err(), "listing includes the bad row");

    let err = store.cert("c2").await.expect_err("moved blob must not open");
    let message = err.to_string();
    assert!(
        message.contains("certs") && message.contains("\"c2\"") && message.contains("challenges")
    );
    assert!(!message.contains(DNS_SECRET));
    assert!(store.cert("c1").await.expect("read").is_some());
}

#[tokio::test]
async fn insecure_or_malformed_key_files_are_refused() {
    for (mode_bits, content_len) in
        [(0o640, 32), (0o604, 32), (0o660, 32), (0o600, 31), (0o600, 33)]
    {
        let dir = tempdir();
        let key_path = dir.path().join(MASTER_KEY_FILE);
        fs::write(&key_path, vec![7u8; content_len]).expect("write key");
        fs::set_permissions(&key_path, fs::Permissions::from_mode(mode_bits)).expect("chmod");
        let err = Store::open(dir.path()).await.expect_err("the key file must be refused");
        match (&err, content_len) {
            (Error::Crypto { source: crypto::Error::InsecureKeyFile { mode, .. } }, 32) => {
                assert_eq!(*mode, mode_bits)
            }
            (Error::Crypto { source: crypto::Error::KeyLength { len, .. } }, _) => {
                assert_eq!(*len, content_len)
            }
            _ => panic!("mode {mode_bits:o}, {content_len} bytes: unexpected {err:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(MASTER_KEY_FILE), "{message}");
        // Nothing was left half-created.
        assert!(!dir.path().join(DATABASE_FILE).exists());
    }
}

async fn wrong_master_key_is_refused_at_open(db: Db) {
    let key_a = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let key_b = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
    let store =
        db.open_with_key(MasterKey::from_base64(&key_a).expect("key a")).await.expect("key a");
    store.insert_account(&account("acme")).await.expect("insert");
    store.close().await;

    match db.open_with_key(MasterKey::from_base64(&key_b).expect("key b")).await {
        Err(Error::Crypto { source: crypto::Error::WrongMasterKey }) => {}
        other => panic!("expected WrongMasterKey, got {other:?}"),
    }
    let store =
        db.open_with_key(MasterKey::from_base64(&key_a).expect("key a")).await.expect("reopen");
    let got = store.account("acme").await.expect("read").expect("present");
    assert_eq!(got.key_pkcs8.as_slice(), ACCOUNT_KEY);
}

#[tokio::test]
async fn environment_master_key_takes_precedence_over_the_file() {
    let dir = tempdir();
    let b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    // With the variable set, no key file is read or created.
    let from_env = MasterKey::resolve(dir.path(), Some(OsStr::new(&b64))).expect("env key");
    assert!(!dir.path().join(MASTER_KEY_FILE).exists());
    let binding = crypto::Binding::new("accounts", "acme", "key_pkcs8");
    let blob = from_env.seal(&binding, ACCOUNT_KEY).expect("seal");
    let same = MasterKey::from_bytes(&[9u8; 32]).expect("raw key");
    assert_eq!(same.open(&binding, &blob).expect("open").as_slice(), ACCOUNT_KEY);

    // Even a bad key file is ignored when the variable is set.
    fs::write(dir.path().join(MASTER_KEY_FILE), b"short").expect("write");
    fs::set_permissions(dir.path().join(MASTER_KEY_FILE), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    assert!(MasterKey::resolve(dir.path(), Some(OsStr::new(&b64))).is_ok());
    assert!(MasterKey::resolve(dir.path(), None).is_err());

    // A malformed variable names itself.
    let err = MasterKey::resolve(dir.path(), Some(OsStr::new("AAAA"))).expect_err("too short");
    assert!(err.to_string().contains(crypto::MASTER_KEY_ENV), "{err}");
    let err =
        MasterKey::resolve(dir.path(), Some(OsStr::new("not base64!"))).expect_err("not base64");
    assert!(err.to_string().contains(crypto::MASTER_KEY_ENV), "{err}");

    // Without the variable the file is created, then reused.
    let fresh = tempdir();
    let first = MasterKey::resolve(fresh.path(), None).expect("create");
    let blob = first.seal(&binding, ACCOUNT_KEY).expect("seal");
    let second = MasterKey::resolve(fresh.path(), None).expect("load");
    assert_eq!(second.open(&binding, &blob).expect("open").as_slice(), ACCOUNT_KEY);
}

#[tokio::test]
async fn debug_output_redacts_secrets() {
    let rendered =
        format!("{:?} {:?} {:?}", account("acme"), cert("www", "acme"), issued("www", "01"));
    for secret in [
        String::from_utf8_lossy(ACCOUNT_KEY).into_owned(),
        DNS_SECRET.to_owned(),
        String::from_utf8_lossy(ISSUED_KEY).into_owned(),
    ] {
        assert!(!rendered.contains(&secret), "{secret} in {rendered}");
    }
    let dir = tempdir();
    let store = open(dir.path()).await;
    store.insert_account(&account("acme")).await.expect("insert");
    store.insert_cert(&cert("www", "acme"), None).await.expect("insert");
    let order = store.create_order("www", "acme", None, None).await.expect("order");
    store.set_order_key(order.id, "ecdsa-p256", ORDER_KEY, None).await.expect("key");
    let order = store.order(order.id).await.expect("read").expect("present");
    assert!(!format!("{order:?}").contains("ORDER-CERT-KEY"));
    assert!(format!("{store:?}").contains("MasterKey(<redacted>)"));
}
