//! Renewal: `renew --due`, CA rate limits, backoff and fallback accounts, the CA's window (ARI).

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::bought_certificate;
use crate::support::{Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn renew_due_renews_what_is_due_once_and_skips_what_is_locked() {
    let mut opts = hostile();
    opts.validity_secs = Some(12);
    let env = Env::start(opts).await;
    env.account("le", &[]).await;
    env.add_http01("short", "le", "short.test").await;
    // Never issued: due.
    let out = env.ok(&["renew", "--due"]).await;
    assert!(out.contains("1 renewed, 0 not due"), "{out}");
    let first = env.show("short").await["serial"].clone();

    // Just issued: not due until 75% of its 12 s have passed.
    let out = env.ok(&["renew", "--due"]).await;
    assert!(out.contains("0 renewed, 1 not due"), "{out}");
    assert_eq!(env.show("short").await["serial"], first);

    // By name: now, due or not.
    env.ok(&["renew", "short"]).await;
    let second = env.show("short").await["serial"].clone();
    assert_ne!(second, first);

    // Another process holds the certificate: skipped, nothing ordered.
    let lock_path = env.data_dir().join("locks/short.lock");
    let lock = std::fs::OpenOptions::new().write(true).open(&lock_path).unwrap();
    lock.try_lock().unwrap();
    let out = env.ok(&["renew", "short"]).await;
    assert!(out.contains("1 busy elsewhere"), "{out}");
    let err = env.fails(5, &["cert", "request", "short"]).await;
    assert!(err.contains("another certhub process"), "{err}");
    assert_eq!(env.show("short").await["serial"], second);
    drop(lock);

    // Once due, the next run renews it.
    certhub_testkit::wait_until(
        "renew --due to find the certificate due",
        Duration::from_secs(30),
        || async {
            let out = env.ok(&["renew", "--due"]).await;
            out.contains("1 renewed").then_some(())
        },
    )
    .await;
    let third = env.show("short").await["serial"].clone();
    assert_ne!(third, second);
    let store = certhub_store::Store::open(env.data_dir()).await.unwrap();
    assert_eq!(store.issued_for("short").await.unwrap().len(), 3);
    let err = env.fails(3, &["renew", "--due", "--policy", "120%"]).await;
    assert!(err.contains("--policy"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn renew_due_keeps_within_the_cas_rate_limits_and_says_how_long_the_rest_wait() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    for name in ["a", "b", "c"] {
        env.add_http01(name, "le", &format!("{name}.limits.test")).await;
    }
    let limit = format!("{}=orders=2/1h", env.pebble.directory_url);
    let err = env.fails(2, &["renew", "--due", "--rate-limit", "orders=2/1h"]).await;
    assert!(err.contains("DIRECTORY_URL=LIMITS"), "{err}");
    let err = env.fails(2, &["renew", "--due", "--rate-limit", &format!("{limit}x")]).await;
    assert!(err.contains("COUNT/WINDOW"), "{err}");
    // Two orders an hour: one now, the next in half an hour; it says which limit and when.
    let run = env.run(&["renew", "--due", "--rate-limit", &limit]).await;
    let (out, err) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{out}{err}");
    assert!(out.contains("1 renewed, 0 not due, 2 waiting for the CA's rate limits"), "{out}");
    assert!(
        err.contains("waiting until") && err.contains("2 new orders per account in 1h"),
        "{err}"
    );
    assert!(env.show("a").await["serial"].is_string(), "the first by name went first");
    // The waiting ones are not looked at again before their time; the renewed one is.
    let out = env.ok(&["renew", "--due", "--rate-limit", &limit]).await;
    assert!(out.contains("0 renewed, 1 not due, 0 busy"), "{out}");
    // Orders placed by any process count: a person's renewal by name spends the budget.
    env.ok(&["renew", "b"]).await;
    let store = certhub_store::Store::open(env.data_dir()).await.unwrap();
    let orders = store.orders_since(0).await.unwrap();
    assert_eq!(orders.len(), 2);
    assert!(orders.iter().all(|o| o.account_name == "le" && !o.ari_renewal));
    assert_eq!(orders[1].names, ["b.limits.test"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_back_off_then_switch_to_the_fallback_account() {
    let mut opts = hostile();
    opts.validity_secs = Some(600);
    let env = Env::start(opts).await;
    env.account("primary", &[]).await;
    env.account("backup", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "web",
        "--account",
        "primary",
        "-d",
        "web.test",
        "--challenge",
        &env.http01(),
        "--fallback-account",
        "backup",
        "--fallback-after",
        "2",
    ])
    .await;
    // The primary account stops working.
    env.ok(&["account", "deactivate", "primary", "--yes"]).await;

    let out = env.run(&["cert", "request", "web"]).await;
    assert!(!out.status.success());
    let show = env.show("web").await;
    assert_eq!(show["renewal"]["failures"], 1, "{show}");
    assert!(show["renewal"]["next_attempt"].is_string(), "{show}");

    // The backoff holds off cron runs, not a person asking by name.
    let out = env.run(&["renew", "--due"]).await;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("0 renewed, 1 not due"), "{stdout}{stderr}");
    assert!(stderr.contains("failed 1 time(s) in a row; next attempt after"), "{stderr}");
    let out = env.run(&["renew", "web"]).await;
    assert!(!out.status.success());
    assert_eq!(env.show("web").await["renewal"]["failures"], 2);

    // Two failures in a row: the fallback account orders it.
    env.ok(&["renew", "web"]).await;
    env.verify_issued("web", &["web.test"]).await;
    let show = env.show("web").await;
    assert_eq!(show["renewal"]["failures"], 0, "{show}");
    assert_eq!(show["renewal"]["next_attempt"], Value::Null, "{show}");
    let history = env.ok(&["cert", "history", "web"]).await;
    assert!(history.contains("ordering with fallback account backup after 2 failed"), "{history}");
    assert!(history.contains("failure 2 in a row"), "{history}");

    // A policy of its own: due after 1% of its 10 minutes, where the default waits 75%.
    let err = env.fails(3, &["cert", "set", "web", "--renew-at", "150%"]).await;
    assert!(err.contains("--renew-at"), "{err}");
    env.ok(&["cert", "set", "web", "--renew-at", "1%", "--account", "backup"]).await;
    let plan: Value =
        serde_json::from_str(&env.ok(&["cert", "preview", "web", "--json"]).await).unwrap();
    assert_eq!(plan["next_renewal"]["policy"], "1%", "{plan}");
    let serial = env.show("web").await["serial"].clone();
    certhub_testkit::wait_until(
        "the 1% policy to make it due",
        Duration::from_secs(30),
        || async { env.ok(&["renew", "--due"]).await.contains("1 renewed").then_some(()) },
    )
    .await;
    assert_ne!(env.show("web").await["serial"], serial);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cas_renewal_window_is_cached_until_retry_after_and_a_mass_revocation_renews_now() {
    use certhub_testkit::fake_ca::FakeCa;
    let env = Env::start(hostile()).await;
    let ca = FakeCa::start().await;
    env.ok(&["account", "add", "ari", "--directory", &ca.url, "--agree-tos"]).await;
    // A certificate of this CA's, brought in with the account that renews it.
    let dir = tempfile::TempDir::new().unwrap();
    let (chain, key, _) = bought_certificate(&["ari.test"], 60, 7);
    let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_file, chain).unwrap();
    std::fs::write(&key_file, key).unwrap();
    env.ok(&[
        "cert",
        "import",
        "ari",
        "--cert",
        cert_file.to_str().unwrap(),
        "--key",
        key_file.to_str().unwrap(),
        "--account",
        "ari",
        "--challenge",
        "http-01:listen=127.0.0.1:0",
    ])
    .await;

    // The window is next week; the CA says to ask again in an hour.
    let iso = |days: i64| {
        (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * days))
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    ca.state.lock().unwrap().window =
        (iso(7), iso(8), Some("https://ca.example/why".into()), Some(3600));
    let out = env.run(&["renew", "--due"]).await;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("0 renewed, 1 not due"), "{stdout}{stderr}");
    assert!(stderr.contains("the CA's renewal window"), "{stderr}");
    assert!(stderr.contains("https://ca.example/why"), "{stderr}");
    assert_eq!(ca.requests_to("/renewal-info").len(), 1);
    // The preview says what decides the next renewal: the CA's window, not the policy.
    let preview = env.ok(&["cert", "preview", "ari"]).await;
    assert!(preview.contains("by the CA's renewal window (ARI)"), "{preview}");
    assert!(preview.contains(&iso(7)[..10]), "{preview}");
    // Within the hour, cron runs use the stored window and leave the CA alone.
    env.ok(&["renew", "--due"]).await;
    assert_eq!(ca.requests_to("/renewal-info").len(), 1);

    // A mass revocation: the CA moves the window to now. Once the hour has passed (the
    // stored next fetch is moved back here), the next run sees it and renews at once,
    // naming the certificate it replaces.
    ca.state.lock().unwrap().window = (iso(-1), iso(0), None, None);
    let store = certhub_store::Store::open(env.data_dir()).await.unwrap();
    let issued = store.latest_issued("ari").await.unwrap().unwrap();
    let mut info = store.renewal_info(issued.id).await.unwrap().expect("stored window");
    info.next_fetch_at = 0;
    store.set_renewal_info(&info).await.unwrap();
    // The scheduler recorded the next look for that hour too.
    let seen = store.cert("ari").await.unwrap().unwrap().updated_at;
    assert!(store.set_cert_check("ari", 0, None, seen).await.unwrap());
    store.close().await;
    let out = env.run(&["renew", "--due"]).await;
    assert_eq!(ca.requests_to("/renewal-info").len(), 2);
    let orders = ca.requests_to("/new-order");
    assert_eq!(orders.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    let id = ca.requests_to("/renewal-info")[1].clone();
    assert_eq!(orders[0]["replaces"], id);
    assert_eq!(orders[0]["identifiers"], json!([{"type": "dns", "value": "ari.test"}]));
}
