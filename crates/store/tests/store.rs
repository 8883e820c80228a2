//! The store against real SQLite files in temporary directories and a real PostgreSQL
//! server (a database per test), the same tests on both.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use certhub_store::crypto::{self, MASTER_KEY_FILE, MasterKey};
use certhub_store::{
    AccountRecord, CertRecord, DATABASE_FILE, Error, IssuedRecord, OrderRecord, Store,
};
use certhub_testkit::postgres::TestDatabase;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use zeroize::Zeroizing;

const ACCOUNT_KEY: &[u8] = b"ACCOUNT-KEY-PLAINTEXT-7f3a9c1e5b2d8f4a6c0e1b3d5f7a9c2e";
const ROLLED_KEY: &[u8] = b"ROLLED-ACCOUNT-KEY-PLAINTEXT-0d9e8f7a6b5c4d3e2f1a0b9c";
const ORDER_KEY: &[u8] = b"ORDER-CERT-KEY-PLAINTEXT-a1b2c3d4e5f60718293a4b5c6d7e";
const ISSUED_KEY: &[u8] = b"ISSUED-CERT-KEY-PLAINTEXT-1029384756abcdefedcba6574839";
const DNS_SECRET: &str = "TSIG-SECRET-c2VjcmV0LXRzaWcta2V5LWZvci10ZXN0cw";
const SPEC_SECRET: &str = "SPEC-SECRET-bG9uZy1saXZlZC1hcGktdG9rZW4tdmFsdWU";
const DIRECTORY_URL: &str = "https://acme.example.test/directory-marker";

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

fn account(name: &str) -> AccountRecord {
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

fn cert(name: &str, account_name: &str) -> CertRecord {
    CertRecord {
        name: name.to_owned(),
        account_name: Some(account_name.to_owned()),
        identifiers: json!([{"type": "dns", "value": "www.example.test"}]),
        key_type: "ecdsa-p256".into(),
        reuse_key: false,
        csr_pem: None,
        profile: Some("shortlived".into()),
        preferred_chain: None,
        challenges: json!({
            "dns-01": {"provider": "rfc2136", "server": "127.0.0.1:53",
                       "tsig_name": "certhub.", "tsig_secret": DNS_SECRET}
        }),
        state: "pending".into(),
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

fn issued(cert_name: &str, serial: &str) -> IssuedRecord {
    IssuedRecord {
        id: 0,
        cert_name: cert_name.to_owned(),
        order_id: None,
        serial_hex: serial.to_owned(),
        issuer: "CN=Test CA".into(),
        sans: json!(["www.example.test"]),
        not_before: 1_700_000_000,
        not_after: 1_707_776_000,
        chain_pem: "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n".into(),
        key_type: "ecdsa-p256".into(),
        key_pkcs8: Zeroizing::new(ISSUED_KEY.to_vec()),
        revoked_at: None,
        revocation_reason: None,
        created_at: 0,
    }
}

async fn open(dir: &Path) -> Store {
    Store::open(dir).await.expect("open the store")
}

/// A raw connection to the data directory's SQLite file, for looking behind the store's back.
async fn raw(dir: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.join(DATABASE_FILE))
        .busy_timeout(Duration::from_secs(10));
    SqlitePool::connect_with(options).await.expect("open a raw connection")
}

/// Where one test's store lives: a temporary data directory (the master key, and the SQLite
/// file), and for PostgreSQL a database of its own, dropped when the test ends.
struct Db {
    dir: tempfile::TempDir,
    postgres: Option<TestDatabase>,
}

impl Db {
    async fn sqlite() -> Db {
        Db { dir: tempdir(), postgres: None }
    }

    async fn postgres() -> Db {
        Db { dir: tempdir(), postgres: Some(TestDatabase::create().await) }
    }

    fn url(&self) -> Option<&str> {
        self.postgres.as_ref().map(|db| db.url.as_str())
    }

    /// The data directory when the database is its SQLite file.
    fn sqlite_dir(&self) -> Option<&Path> {
        self.postgres.is_none().then(|| self.dir.path())
    }

    async fn open(&self) -> Store {
        Store::open_database(self.dir.path(), self.url()).await.expect("open the store")
    }

    async fn open_with_key(&self, key: MasterKey) -> Result<Store, Error> {
        Store::open_database_with_master_key(self.dir.path(), self.url(), key).await
    }

    /// A raw connection to the database, for looking behind the store's back.
    async fn raw(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match self.url() {
            Some(url) => url.to_string(),
            None => format!("sqlite://{}", self.dir.path().join(DATABASE_FILE).display()),
        };
        sqlx::AnyPool::connect(&url).await.expect("open a raw connection")
    }
}

/// Runs each test against SQLite and against PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Db::postgres().await).await
            }
        }
    )*};
}

on_both_backends!(
    accounts_round_trip,
    certs_round_trip,
    orders_and_presented_round_trip,
    issued_round_trip,
    complete_order_stores_issued_order_and_state_together,
    secrets_are_encrypted_on_disk,
    blob_moved_to_another_row_fails_to_open,
    reopening_reads_everything_back,
    wrong_master_key_is_refused_at_open,
    two_handles_open_and_write_concurrently,
    history_keeps_events_in_order_and_goes_with_the_certificate,
    a_certificate_lease_has_one_holder_at_a_time,
    renewal_windows_are_cached_per_issued_certificate,
    users_and_tokens_keep_only_hashes,
    the_audit_chain_shows_any_change_or_removal,
    the_audit_log_cannot_be_emptied_or_rolled_back_unseen,
    a_change_and_its_audit_entry_are_stored_together,
    the_first_admin_is_made_once_with_its_audit_entry,
    notification_channels_keep_their_secrets_sealed_and_notices_happen_once,
    expired_tokens_and_idle_sessions_are_removed,
    jobs_keep_their_steps_in_order_and_end_once,
    hub_settings_round_trip,
    the_scheduler_looks_only_at_what_is_due_or_changed,
    the_list_is_filtered_and_paged_by_the_database,
    the_dashboard_overview_counts_what_the_list_shows,
    orders_are_counted_with_their_names_and_ari_renewals,
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
    assert!(store.set_cert_check("b", 9_000, None, seen("b").await).await.expect("set"));
    let task = ("files".to_string(), json!({"files": {}}));
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

async fn the_list_is_filtered_and_paged_by_the_database(db: Db) {
    use certhub_store::CertFilter;
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("account");
    let now = 1_708_000_000;
    for (name, host, state) in [
        ("api", "API.example.test", "valid"),
        ("blog", "blog.example.test", "valid"),
        ("cdn", "cdn_1.example.test", "valid"),
        ("docs", "docs.example.test", "pending"),
        ("edge", "100%.example.test", "failing"),
    ] {
        let mut c = cert(name, "acme");
        c.identifiers = json!([{"type": "dns", "value": host}]);
        c.state = state.into();
        store.insert_cert(&c, None).await.expect("cert");
    }
    // api: two issued, the latest counts; blog: expired; cdn: revoked.
    store.insert_issued(&issued("api", "01"), None).await.expect("issued");
    let mut later = issued("api", "02");
    later.not_after = now + 86_400;
    store.insert_issued(&later, None).await.expect("issued");
    store.insert_issued(&issued("blog", "03"), None).await.expect("issued");
    let cdn = store.insert_issued(&issued("cdn", "04"), None).await.expect("issued");
    store.set_revoked(cdn, 1, None, None).await.expect("revoke");

    let list = |filter: CertFilter| {
        let store = store.clone();
        async move {
            let (total, items) = store.cert_summaries(&filter, now).await.expect("list");
            let names: Vec<String> = items.iter().map(|c| c.name.clone()).collect();
            (total, names, items)
        }
    };
    let (total, names, items) = list(CertFilter::default()).await;
    assert_eq!(total, 5);
    assert_eq!(names, ["api", "blog", "cdn", "docs", "edge"]);
    assert_eq!(items[0].latest.as_ref().expect("issued").serial_hex, "02", "the latest");
    let states: Vec<String> = items.iter().map(|c| c.effective_state(now)).collect();
    assert_eq!(states, ["valid", "expired", "revoked", "pending", "failing"]);
    assert_eq!(items[3].latest, None);
    let full = store.cert("api").await.expect("read").expect("present");
    let latest = store.latest_issued("api").await.expect("read");
    assert_eq!(items[0], certhub_store::CertSummary::of(&full, latest.as_ref()));
    // One page, with the total before paging.
    let (total, names, _) =
        list(CertFilter { offset: 2, limit: Some(2), ..CertFilter::default() }).await;
    assert_eq!((total, names), (5, vec!["cdn".to_string(), "docs".into()]));
    let (total, names, _) =
        list(CertFilter { offset: 10, limit: Some(2), ..CertFilter::default() }).await;
    assert_eq!((total, names.len()), (5, 0));
    // The state the user sees, not the stored one.
    for (state, want) in [("valid", "api"), ("expired", "blog"), ("revoked", "cdn")] {
        let filter = CertFilter { state: Some(state.into()), ..CertFilter::default() };
        let (total, names, _) = list(filter).await;
        assert_eq!((total, names), (1, vec![want.to_string()]), "{state}");
    }
    // Names and identifier values, in any case; LIKE's wildcards are plain characters.
    for (search, want) in [
        ("api.EXAMPLE", &["api"][..]),
        ("LOG", &["blog"][..]),
        ("n_1", &["cdn"][..]),
        ("_", &["cdn"][..]),
        ("100%", &["edge"][..]),
        ("%", &["edge"][..]),
        ("dns", &[][..]),
        ("  ", &["api", "blog", "cdn", "docs", "edge"][..]),
    ] {
        let filter = CertFilter { search: Some(search.into()), ..CertFilter::default() };
        let (total, names, _) = list(filter).await;
        assert_eq!(names, want, "{search:?}");
        assert_eq!(total as usize, want.len());
    }
    let filter = CertFilter {
        state: Some("valid".into()),
        search: Some("example".into()),
        ..CertFilter::default()
    };
    assert_eq!(list(filter).await.1, ["api"]);
    // The total of an unfiltered list is kept by the database as certificates come and go.
    store.delete_cert("edge", None).await.expect("delete");
    assert_eq!(list(CertFilter::default()).await.0, 4);
    store.insert_cert(&cert("fresh", "acme"), None).await.expect("cert");
    assert_eq!(list(CertFilter::default()).await.0, 5);
}

/// The overview the database counts equals one worked out from the whole list with the
/// renewal decision itself: states, expiries and planned renewals per week, by the
/// certificate's policy or the hub's, and the certificates that need attention in order.
async fn the_dashboard_overview_counts_what_the_list_shows(db: Db) {
    use certhub_core::renewal::{Decision, RenewalPolicy, decide};
    use certhub_store::{CertFilter, OverviewSpec};
    use std::time::UNIX_EPOCH;

    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("account");
    let now = 1_708_000_000_i64;
    let day = 86_400;
    let policies = [None, Some("30d"), Some("50%"), Some("90%"), Some("5d"), Some("bogus")];
    let lifetimes = [6, 45, 90, 200];
    for k in 0..60_i64 {
        let mut c = cert(&format!("c{k:02}"), "acme");
        c.renewal_policy = policies[k as usize % policies.len()].map(Into::into);
        c.state = match k % 10 {
            7 => "failing",
            8 => "pending",
            _ => "valid",
        }
        .into();
        if k % 13 == 5 {
            c.last_error = Some("the CA said no".into());
        }
        store.insert_cert(&c, None).await.expect("cert");
        if k % 10 == 8 {
            continue; // never issued
        }
        let lifetime = lifetimes[k as usize % lifetimes.len()] * day;
        let mut i = issued(&c.name, &format!("{k:02x}"));
        // Spread over the lifetime: some just issued, some near the end, some past it.
        i.not_before = now - (k * 7 % 23) * lifetime / 20;
        i.not_after = i.not_before + lifetime;
        let id = store.insert_issued(&i, None).await.expect("issued");
        if k % 17 == 3 {
            store.set_revoked(id, 1, None, None).await.expect("revoke");
        }
    }
    let default: RenewalPolicy = "70%".parse().expect("policy");
    let spec = OverviewSpec { now, weeks: 12, soon: 30 * day, attention_limit: 10 };
    let got = store.overview(spec, default).await.expect("overview");

    let (_, all) = store.cert_summaries(&CertFilter::default(), now).await.expect("list");
    let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(secs as u64);
    let week = 7 * day;
    let mut states: Vec<(String, u64)> = Vec::new();
    let (mut expiring, mut renewing) = (vec![0_u64; 12], vec![0_u64; 12]);
    let mut attention = Vec::new();
    for c in &all {
        let state = c.effective_state(now);
        match states.iter_mut().find(|(s, _)| *s == state) {
            Some((_, n)) => *n += 1,
            None => states.push((state.clone(), 1)),
        }
        let latest = c.latest.as_ref();
        if let Some(i) = latest.filter(|_| state == "valid") {
            if let Some(slot) = usize::try_from((i.not_after - now) / week).ok().filter(|w| *w < 12)
            {
                expiring[slot] += 1;
            }
            let policy = match c.renewal_policy.as_deref() {
                Some(own) => own.parse::<RenewalPolicy>().ok(),
                None => Some(default),
            };
            if let Some(policy) = policy {
                let planned =
                    match decide(at(i.not_before), at(i.not_after), None, policy, at(now), 0) {
                        Decision::RenewNow(_) => now,
                        Decision::RenewAt(t, _) => {
                            t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64
                        }
                    };
                let slot = ((planned - now).max(0) / week) as usize;
                if slot < 12 {
                    renewing[slot] += 1;
                }
            }
        }
        let soon = latest.is_some_and(|i| i.not_after - now < 30 * day);
        if matches!(state.as_str(), "failing" | "expired" | "revoked")
            || (state == "valid" && soon)
            || c.last_error.is_some()
        {
            let rank = ["failing", "expired", "revoked"].iter().position(|s| *s == state);
            let end = latest.map_or(i64::MAX, |i| i.not_after);
            attention.push(((rank.unwrap_or(3), end, c.name.clone()), c.clone()));
        }
    }
    states.sort();
    attention.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.total, 60);
    assert_eq!(got.states, states);
    assert_eq!(got.expiring, expiring);
    assert_eq!(got.renewing, renewing);
    assert!(renewing.iter().sum::<u64>() > 10, "the fleet plans renewals: {renewing:?}");
    assert!(states.len() >= 5, "every kind of state is there: {states:?}");
    assert_eq!(got.attention_total, attention.len() as u64);
    assert!(attention.len() > 10, "more need attention than are listed");
    let want: Vec<_> = attention.into_iter().take(10).map(|(_, c)| c).collect();
    assert_eq!(got.attention, want);
}

async fn orders_are_counted_with_their_names_and_ari_renewals(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("acme")).await.expect("account");
    let mut c = cert("www", "acme");
    c.identifiers = json!([{"type": "dns", "value": "WWW.example.test"},
                           {"type": "dns", "value": "example.test"}]);
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

async fn jobs_keep_their_steps_in_order_and_end_once(db: Db) {
    let store = db.open().await;
    let job = store.insert_job("j1", "request", "web", None).await.unwrap();
    assert_eq!((job.status.as_str(), job.steps.len()), ("running", 0));
    for step in ["ordering", "validating a.example\nwith http-01", "issued"] {
        store.add_job_step("j1", step).await.unwrap();
    }
    let read = store.job("j1").await.unwrap().unwrap();
    // A line break inside a step does not split it.
    assert_eq!(read.steps, ["ordering", "validating a.example with http-01", "issued"]);
    store.finish_job("j1", "succeeded", "issued serial 01").await.unwrap();
    // A job ends once: a later "interrupted" (a hub stopping) does not overwrite the outcome.
    store.finish_job("j1", "interrupted", "the hub stopped").await.unwrap();
    let read = store.job("j1").await.unwrap().unwrap();
    assert_eq!(
        (read.status.as_str(), read.result.as_deref()),
        ("succeeded", Some("issued serial 01"))
    );
    assert!(store.job("nope").await.unwrap().is_none());
    // Reopening (another hub, or a restart) reads it back.
    let again = db.open().await;
    assert_eq!(again.job("j1").await.unwrap().unwrap().steps.len(), 3);
    // Cleanup removes ended jobs only.
    store.insert_job("j2", "request", "api", None).await.unwrap();
    let removed = store.delete_jobs_before(i64::MAX).await.unwrap();
    assert_eq!(removed, 1);
    assert!(store.job("j1").await.unwrap().is_none());
    assert_eq!(store.job("j2").await.unwrap().unwrap().status, "running");
}

async fn hub_settings_round_trip(db: Db) {
    let store = db.open().await;
    assert_eq!(store.hub_settings().await.unwrap(), None);
    let settings = json!({ "policy": "30d", "check_interval": 60 });
    store.set_hub_settings(&settings, None).await.unwrap();
    store.set_hub_settings(&settings, None).await.unwrap();
    assert_eq!(db.open().await.hub_settings().await.unwrap(), Some(settings));
}

async fn expired_tokens_and_idle_sessions_are_removed(db: Db) {
    let store = db.open().await;
    store.insert_user("ada", "$argon2id$fake", "admin", None).await.unwrap();
    use certhub_store::TokenKind;
    let token = |id: &str, kind: TokenKind, expires_at: Option<i64>| certhub_store::TokenRecord {
        id: id.into(),
        user_name: "ada".into(),
        kind,
        label: "web session".into(),
        scopes: "cert:read".into(),
        expires_at,
        created_at: 0,
        last_used_at: None,
    };
    store.insert_token(&token("expired", TokenKind::Api, Some(1)), "h1", None).await.unwrap();
    store.insert_token(&token("session", TokenKind::Session, None), "h2", None).await.unwrap();
    // An API token labelled like a session is still an API token.
    store.insert_token(&token("api", TokenKind::Api, None), "h3", None).await.unwrap();
    // Nothing has been idle since the epoch: only the expired token goes.
    assert_eq!(store.delete_stale_tokens(0).await.unwrap(), 1);
    let far = i64::MAX / 2;
    assert_eq!(store.delete_stale_tokens(far).await.unwrap(), 1);
    let left = store.tokens(None).await.unwrap();
    assert_eq!(left.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["api"]);
    assert_eq!(left[0].kind, TokenKind::Api, "the kind is stored, whatever the label");
}

async fn notification_channels_keep_their_secrets_sealed_and_notices_happen_once(db: Db) {
    let store = db.open().await;
    store.record_event("old", "issued", None).await.unwrap();
    // The cursor starts after the history that predates notifications.
    let start = store.notify_cursor().await.unwrap();
    assert!(store.events_after(start, 10).await.unwrap().is_empty());
    let channel = certhub_store::ChannelRecord {
        name: "ops".into(),
        kind: "slack".into(),
        config: json!({ "url": "https://hooks.slack.test/services/T0KEN-SECRET" }),
        events: vec!["renewed".into(), "expiring".into()],
    };
    store.insert_channel(&channel, None).await.unwrap();
    assert!(store.insert_channel(&channel, None).await.is_err(), "names are unique");
    assert_eq!(store.channel("ops").await.unwrap().as_ref(), Some(&channel));
    assert!(channel.wants("renewed") && !channel.wants("issued"));
    assert!(!format!("{channel:?}").contains("T0KEN"));
    let raw = db.raw().await;
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT config FROM notification_channels")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("T0KEN"), "the webhook URL is sealed");

    let id = store.record_event("web", "revoked", Some("serial 1")).await.unwrap();
    let pending = store.events_after(start, 10).await.unwrap();
    assert_eq!(pending.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
    store.set_notify_cursor(id).await.unwrap();
    assert_eq!(db.open().await.notify_cursor().await.unwrap(), id, "the cursor is stored");

    assert!(store.first_notice("web", "expiring", "serial 1").await.unwrap());
    assert!(!db.open().await.first_notice("web", "expiring", "serial 1").await.unwrap());
    assert!(store.first_notice("web", "expiring", "serial 2").await.unwrap());
    store.delete_channel("ops", None).await.unwrap();
    assert!(store.channels().await.unwrap().is_empty());
    assert!(store.delete_channel("ops", None).await.is_err());
}

async fn the_first_admin_is_made_once_with_its_audit_entry(db: Db) {
    let (a, b) = (db.open().await, db.open().await);
    let (ra, rb) = tokio::join!(
        a.create_first_admin("ada", "$argon2id$fake", "10.0.0.1"),
        b.create_first_admin("eve", "$argon2id$fake", "10.0.0.2"),
    );
    assert!(ra.is_ok() != rb.is_ok(), "exactly one setup wins: {ra:?} {rb:?}");
    assert_eq!(a.user_count().await.unwrap(), 1);
    let entries = a.audit_entries(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].actor.as_str(), entries[0].action.as_str()), ("setup", "user.create"));
    assert_eq!(a.verify_audit().await.unwrap(), Ok(1));
}

async fn users_and_tokens_keep_only_hashes(db: Db) {
    let store = db.open().await;
    assert_eq!(store.user_count().await.unwrap(), 0);
    store.insert_user("ada", "$argon2id$v=19$fake", "admin", None).await.expect("user");
    assert_already_exists(store.insert_user("ada", "x", "viewer", None).await, "user", "ada");
    assert_eq!(store.user_count().await.unwrap(), 1);
    assert_eq!(store.user("ada").await.unwrap().unwrap().role, "admin");
    assert!(!format!("{:?}", store.user("ada").await.unwrap()).contains("argon2"));
    let token = certhub_store::TokenRecord {
        id: "t1".into(),
        user_name: "ada".into(),
        kind: certhub_store::TokenKind::Api,
        label: "ci".into(),
        scopes: "cert:read cert:key".into(),
        expires_at: None,
        created_at: 0,
        last_used_at: None,
    };
    store.insert_token(&token, &certhub_store::token_hash("s3cret"), None).await.expect("token");
    let (got, role) = store.verify_token("t1", "s3cret").await.unwrap().expect("valid");
    assert_eq!(got.scopes, "cert:read cert:key");
    assert_eq!(role, "admin");
    assert!(store.verify_token("t1", "wrong").await.unwrap().is_none());
    assert!(store.verify_token("t2", "s3cret").await.unwrap().is_none());
    let expired =
        certhub_store::TokenRecord { id: "t2".into(), expires_at: Some(1), ..token.clone() };
    store.insert_token(&expired, &certhub_store::token_hash("old"), None).await.expect("token");
    assert!(store.verify_token("t2", "old").await.unwrap().is_none(), "expired");
    let nobody = certhub_store::TokenRecord { id: "t3".into(), user_name: "bob".into(), ..token };
    assert_not_found(store.insert_token(&nobody, "h", None).await, "user", "bob");
    store.insert_user("bob", "$argon2id$v=19$fake", "viewer", None).await.expect("user");
    let bobs = certhub_store::TokenRecord { id: "t4".into(), user_name: "bob".into(), ..nobody };
    store.insert_token(&bobs, &certhub_store::token_hash("b"), None).await.expect("token");
    let ids = |v: Vec<certhub_store::TokenRecord>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let mut all = ids(store.tokens(None).await.unwrap());
    all.sort();
    assert_eq!(all, ["t1", "t2", "t4"]);
    assert_eq!(ids(store.tokens(Some("bob")).await.unwrap()), ["t4"]);
    store.delete_token("t1", None).await.expect("revoke");
    assert!(store.verify_token("t1", "s3cret").await.unwrap().is_none(), "revoked");
    assert_not_found(store.delete_token("t1", None).await, "token", "t1");
    // The secret is nowhere in the database.
    let raw = db.raw().await;
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM api_tokens").fetch_all(&raw).await.unwrap();
    assert!(hashes.iter().all(|h| h.len() == 64 && !h.contains("s3cret")));
}

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
    let task = ("files".to_string(), json!({"files": {}}));
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
    let more = ("webhook".to_string(), json!({"webhook": {}}));
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
    let task = [("files".to_string(), json!({"files": {}}))];
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

fn assert_not_found(result: Result<impl std::fmt::Debug, Error>, what: &str, name: &str) {
    match result {
        Err(Error::NotFound { what: w, name: n }) if w == what && n == name => {}
        other => panic!("expected NotFound {{ {what}, {name} }}, got {other:?}"),
    }
}

fn assert_already_exists(result: Result<impl std::fmt::Debug, Error>, what: &str, name: &str) {
    match result {
        Err(Error::AlreadyExists { what: w, name: n }) if w == what && n == name => {}
        other => panic!("expected AlreadyExists {{ {what}, {name} }}, got {other:?}"),
    }
}

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
    changed.identifiers = json!([{"type": "dns", "value": "*.example.test"}]);
    changed.key_type = "rsa-2048".into();
    changed.reuse_key = true;
    changed.csr_pem = Some("-----BEGIN CERTIFICATE REQUEST-----\n".into());
    changed.profile = None;
    changed.preferred_chain = Some("Root X2".into());
    changed.challenges = json!({"http-01": {"webroot": "/srv/www"}});
    changed.state = "failing".into();
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

    store.set_cert_state("www", "valid", None).await.expect("set state");
    let got = store.cert("www").await.expect("read").expect("present");
    assert_eq!((got.state.as_str(), got.last_error), ("valid", None));
    store.set_cert_state("www", "failing", Some("timeout")).await.expect("set state");
    let got = store.cert("www").await.expect("read").expect("present");
    assert_eq!(got.last_error.as_deref(), Some("timeout"));
    assert_not_found(
        store.set_cert_state("missing", "valid", None).await,
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
        events.into_iter().map(|e| (e.kind, e.detail.unwrap_or_default())).collect::<Vec<_>>()
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
    store.set_order_status(first.id, "pending", None).await.expect("set status");
    let got = store.order(first.id).await.expect("read").expect("present");
    assert_eq!(
        got,
        OrderRecord {
            order_url: Some("https://acme.example.test/order/1".into()),
            status: "pending".into(),
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
        .set_order_status(first.id, "invalid", Some("dns record not found"))
        .await
        .expect("set status");
    assert_eq!(store.open_order("www").await.expect("open order"), None);
    let second = store.create_order("www", "acme", None, None).await.expect("create");
    assert!(second.id > first.id);
    assert_eq!(store.open_order("www").await.expect("open order").map(|o| o.id), Some(second.id));
    store.set_order_status(second.id, "abandoned", None).await.expect("set status");
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
    store.set_order_status(third.id, "abandoned", None).await.expect("set status");

    let all = store.orders_for("www").await.expect("list");
    assert_eq!(all.iter().map(|o| o.id).collect::<Vec<_>>(), [third.id, second.id, first.id]);
    assert_eq!(all[2].error.as_deref(), Some("dns record not found"));

    assert_not_found(store.set_order_url(9999, "u").await, "order", "9999");
    assert_not_found(store.set_order_key(9999, "t", ORDER_KEY, None).await, "order", "9999");
    assert_not_found(store.set_order_status(9999, "valid", None).await, "order", "9999");

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
    store.set_cert_state("www", "failing", Some("earlier failure")).await.expect("set state");
    store.set_cert_retry("www", 2, Some(i64::MAX)).await.expect("set retry");
    let order = store.create_order("www", "acme", None, None).await.expect("order");
    store.set_order_status(order.id, "ready", None).await.expect("status");

    // Success: every change lands, the failures in a row are over, and the history says so.
    let done = issued("www", "0a");
    let id = store.complete_order(order.id, &done, None).await.expect("complete");
    let got = store.order(order.id).await.expect("read").expect("present");
    assert_eq!(got.status, "valid");
    let cert = store.cert("www").await.expect("read").expect("present");
    assert_eq!((cert.state.as_str(), cert.last_error), ("valid", None));
    assert_eq!((cert.failures, cert.next_attempt_at), (0, None));
    let events = store.events_for("www").await.expect("events");
    let expected = format!("serial 0a, expires {}", certhub_core::time::rfc3339(done.not_after));
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
    store.set_order_status(second.id, "processing", None).await.expect("status");
    store.set_cert_state("www", "issuing", Some("in progress")).await.expect("set state");
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
    assert_eq!(cert.state, "issuing");
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

/// Fills a store with one row of every kind; returns the order id.
async fn populate(store: &Store) -> i64 {
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
    assert_eq!(after.1[0].challenges["dns-01"]["tsig_secret"], DNS_SECRET);
    assert_eq!(after.2[0].id, order_id);
    assert_eq!(after.2[0].status, "valid");
    assert_eq!(after.2[0].key_pkcs8.as_deref().map(Vec::as_slice), Some(ORDER_KEY));
    assert_eq!(after.3[0].spec["tsig_secret"], SPEC_SECRET);
    assert_eq!(after.4[0].key_pkcs8.as_slice(), ISSUED_KEY);
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

async fn history_keeps_events_in_order_and_goes_with_the_certificate(db: Db) {
    let store = db.open().await;
    store.insert_account(&account("le")).await.unwrap();
    store.insert_cert(&cert("web", "le"), None).await.unwrap();
    store.record_event("web", "ordered", Some("https://ca/order/1")).await.unwrap();
    store.record_event("web", "validated", Some("a.test with http-01")).await.unwrap();
    store.record_event("web", "failed", Some("rateLimited: too many")).await.unwrap();
    store.record_event("other", "ordered", None).await.unwrap();
    let events = store.events_for("web").await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["ordered", "validated", "failed"]);
    assert_eq!(events[2].detail.as_deref(), Some("rateLimited: too many"));
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at && w[0].id < w[1].id));
    store.delete_cert("web", None).await.unwrap();
    assert!(store.events_for("web").await.unwrap().is_empty());
    assert_eq!(store.events_for("other").await.unwrap().len(), 1);
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
    let broken: Vec<(String,)> =
        sqlx::query_as("PRAGMA foreign_key_check").fetch_all(&raw).await.expect("check");
    assert!(broken.is_empty(), "{broken:?}");
    // And the store writes to the upgraded tables, foreign keys enforced again.
    let store = open(dir.path()).await;
    store.insert_account(&account("acme")).await.expect("account");
    store.insert_cert(&cert("api", "acme"), None).await.expect("cert");
    assert_not_found(store.insert_cert(&cert("x", "nobody"), None).await, "account", "nobody");
}
