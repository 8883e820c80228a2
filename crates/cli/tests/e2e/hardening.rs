//! What an adversarial look at certhub found, each held by a test: responders shared by the
//! hub's API, renewal service and Test and released when idle; messages that name the cause
//! and the fix; outcomes said once.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Env, call, hostile, job_done};

#[tokio::test(flavor = "multi_thread")]
async fn the_hubs_api_renewals_and_test_share_one_listener_and_release_it() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let port = env.pebble.http_port.to_string();
    let hub = env.serve(&["--check-interval", "3600", "--probe-http-port", &port], true).await;
    let token = hub.admin_token().await;

    // A request through the API answers on the http-01 listener…
    env.add_http01("api", "le", "api.test").await;
    env.back_off("api").await;
    let rsp = call(&hub, &token, "POST", "/api/v1/certificates/api/request", None).await;
    let id = rsp["job"]["id"].as_str().unwrap().to_string();
    let job = job_done(&hub, &token, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    // …then the hub's renewal service orders another on the same address (a settings
    // change wakes it at once)…
    env.add_http01("service", "le", "service.test").await;
    let change = json!({"check_interval_seconds": 3599});
    let settings = call(&hub, &token, "PATCH", "/api/v1/settings", Some(change)).await;
    assert_eq!(settings["check_interval_seconds"], 3599, "{settings}");
    let data_dir = env.data_dir().to_path_buf();
    certhub_testkit::wait_until("the renewal service to issue", Duration::from_secs(90), || {
        let data_dir = data_dir.clone();
        async move {
            let store = certhub_store::Store::open(&data_dir).await.ok()?;
            let issued = store.latest_issued("service").await.ok()?;
            let failed = store.cert("service").await.ok()??.last_error;
            store.close().await;
            assert!(failed.is_none(), "the hub's renewal failed: {failed:?}");
            issued
        }
    })
    .await;

    // …and Test presents its probe there too.
    let report = call(&hub, &token, "POST", "/api/v1/certificates/api/test", None).await;
    assert_eq!(report["works"], true, "{report}");

    // Idle, the hub holds no listener: a cron job beside it can order on that address.
    env.add_http01("cron", "le", "cron.test").await;
    env.ok(&["renew", "--due"]).await;
    env.verify_issued("cron", &["cron.test"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_whose_certificate_does_not_verify_is_named_once_with_the_flag() {
    let env = Env::start(hostile()).await;
    let args =
        ["account", "add", "untrusted", "--directory", &env.pebble.directory_url, "--agree-tos"];
    // Retrying will not help: the exit code says so (3, not 5 for transient).
    let err = env.fails(3, &args).await;
    assert!(err.contains("does not verify"), "{err}");
    assert!(err.contains("an issuer this machine does not trust"), "{err}");
    assert!(err.contains("--ca-bundle"), "{err}");
    assert_eq!(err.matches("does not verify").count(), 1, "said once: {err}");
    assert!(!err.contains("error sending request"), "{err}");
    assert!(!err.contains('\u{1b}'), "no colour off a terminal: {err:?}");
    assert!(!err.contains("ERROR"), "no log line without -v: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_says_each_outcome_once_off_a_terminal() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.add_http01("once", "le", "once.test").await;
    let out = env.run(&["cert", "request", "once"]).await;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let said = format!("{stdout}{stderr}");
    assert_eq!(said.matches("serial").count(), 1, "the result once: {said}");
    assert!(stdout.contains("once: valid, serial"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_that_wants_a_contact_or_refuses_certificate_key_revocation_says_what_to_do() {
    use certhub_testkit::fake_ca::{FakeCa, Scripted};
    let env = Env::start(hostile()).await;
    let ca = FakeCa::start().await;
    let refusal = |kind: &str, detail: &str| Scripted {
        status: 400,
        content_type: "application/problem+json",
        retry_after: None,
        body: json!({"type": format!("urn:ietf:params:acme:error:{kind}"), "detail": detail})
            .to_string(),
    };
    ca.state
        .lock()
        .unwrap()
        .account_failures
        .push_back(refusal("invalidContact", "a contact address is required"));
    let add = ["account", "add", "strict", "--directory", &ca.url, "--agree-tos"];
    let err = env.fails(4, &add).await;
    assert!(err.contains("pass --email"), "{err}");
    env.ok(&add).await;

    // A certificate of this CA's, with its key, revoked by that key: refused.
    let dir = tempfile::TempDir::new().unwrap();
    let (chain, key, _) = crate::common::bought_certificate(&["strict.test"], 60, 9);
    let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_file, chain).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let (cert, key) = (cert_file.to_str().unwrap(), key_file.to_str().unwrap());
    let challenge = "http-01:listen=127.0.0.1:0";
    env.ok(&[
        "cert",
        "import",
        "strict",
        "--cert",
        cert,
        "--key",
        key,
        "--account",
        "strict",
        "--challenge",
        challenge,
    ])
    .await;
    ca.state
        .lock()
        .unwrap()
        .revoke_failures
        .push_back(refusal("unauthorized", "revocation by certificate key is not supported"));
    let err = env.fails(4, &["cert", "revoke", "strict", "--with-cert-key"]).await;
    assert!(err.contains("revoke with the account key"), "{err}");
    assert!(err.contains("without --with-cert-key"), "{err}");
    // With the account key (RFC 5280's own name for the reason, as the API documents it).
    env.ok(&["cert", "revoke", "strict", "--reason", "keyCompromise"]).await;
    assert_eq!(ca.requests_to("/revoke").last().unwrap()["reason"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_cut_short_by_a_kill_says_so_as_soon_as_the_hub_is_back() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    // A dns-01 hook that never publishes: the request waits on it until the hub dies.
    let dir = tempfile::TempDir::new().unwrap();
    let ran = dir.path().join("hook-ran");
    let hook = crate::support::script(
        dir.path(),
        "hook",
        &format!("touch {}\nexec sleep 60\n", ran.display()),
    );
    let challenge = format!("dns-01:exec={}", hook.display());
    let add = ["cert", "add", "slow", "--account", "le", "-d", "slow.test", "--challenge"];
    env.ok(&[&add[..], &[challenge.as_str()]].concat()).await;
    // Backing off after a failure, so the hub's renewal service leaves it alone and only the
    // request made by hand runs.
    env.back_off("slow").await;
    let mut hub = env.serve(&["--check-interval", "3600"], true).await;
    let token = hub.admin_token().await;
    let rsp = call(&hub, &token, "POST", "/api/v1/certificates/slow/request", None).await;
    let id = rsp["job"]["id"].as_str().unwrap().to_string();
    // Killed mid-request, with no chance to record anything.
    let hook_runs = dir.path().join("hook-ran");
    certhub_testkit::wait_until("the hook to run", Duration::from_secs(30), || async {
        hook_runs.exists().then_some(())
    })
    .await;
    hub.child.start_kill().unwrap();
    hub.child.wait().await.unwrap();
    let hub = env.serve(&["--check-interval", "3600"], false).await;
    let job = call(&hub, &token, "GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(job["status"], "interrupted", "{job}");
    assert!(job["result"].as_str().unwrap().contains("resumes"), "{job}");
}

/// Schemathesis's `st`: from CERTHUB_SCHEMATHESIS, or where scripts/test installs it.
fn schemathesis() -> std::path::PathBuf {
    if let Some(st) = std::env::var_os("CERTHUB_SCHEMATHESIS") {
        return st.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let st = std::path::Path::new(&home).join(".cache/certhub/venv/bin/st");
    assert!(
        st.exists(),
        "Schemathesis is not installed: run scripts/test (it installs it with pip into \
         ~/.cache/certhub/venv), or set CERTHUB_SCHEMATHESIS to its `st`"
    );
    st
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_as_its_document_says_for_every_role() {
    let st = schemathesis();
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    // Something to find: an issued certificate with a deployment task.
    env.add_http01("web", "le", "web.test").await;
    env.ok(&["cert", "request", "web"]).await;
    let out = tempfile::TempDir::new().unwrap();
    env.ok(&["deploy", "add", "web", &format!("files:dir={}", out.path().display())]).await;
    let port = env.pebble.http_port.to_string();
    // With an agent endpoint, so that joining is fuzzed too.
    let args = ["--check-interval", "3600", "--probe-http-port", &port];
    let hub = env.serve(&[&args[..], &["--agent-listen", "127.0.0.1:0"]].concat(), true).await;
    let admin = hub.admin_token().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // A token for each role, made before the fuzzer's failed sign-ins lock this address.
    let mut tokens = Vec::new();
    for role in ["viewer", "operator"] {
        let user = json!({"username": role, "password": "a long enough password", "role": role});
        let rsp = http.post(hub.url("/api/v1/users")).bearer_auth(&admin).json(&user).send();
        assert_eq!(rsp.await.unwrap().status(), 201);
        let signed: Value = http
            .post(hub.url("/api/v1/tokens"))
            .json(&json!({"username": role, "password": "a long enough password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push((role, signed["token"].as_str().unwrap().to_string()));
    }
    // The admin last: it may delete what the others look at.
    tokens.push(("admin", admin));
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/schemathesis.toml");
    for (role, token) in tokens {
        let reports = tempfile::TempDir::new().unwrap();
        let run = tokio::process::Command::new(&st)
            .args(["--config-file", config, "--no-color", "run"])
            .arg(hub.url("/api/v1/openapi.json"))
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--max-examples", "25", "--seed", "20261206", "--workers", "1"])
            .args(["--report-dir"])
            .arg(reports.path())
            // Its cache (.schemathesis/) goes beside the reports, not into the work tree.
            .current_dir(reports.path())
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output();
        let run = tokio::time::timeout(Duration::from_secs(600), run)
            .await
            .expect("Schemathesis ends within 10 minutes")
            .expect("Schemathesis runs");
        let said = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "as {role}, answers departed from the document:\n{said}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(said.contains("passed"), "as {role}: {said}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_anchors_kept_outside_the_database_show_a_rollback() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let dir = tempfile::TempDir::new().unwrap();
    let anchors = dir.path().join("anchors");
    let file = anchors.to_str().unwrap();
    env.ok(&["audit", "anchor", "--out", file]).await;
    let said = env.ok(&["audit", "verify", "--anchor", file]).await;
    assert!(said.contains("holds every entry its 1 anchor(s) name"), "{said}");
    // A change after the anchor, anchored too; then the database goes back to before it.
    let files = ["certhub.db", "certhub.db-wal", "certhub.db-shm"].map(|f| env.data_dir().join(f));
    let before = files.clone().map(|f| std::fs::read(f).ok());
    env.ok(&["account", "update", "le", "--no-email"]).await;
    env.ok(&["audit", "anchor", "--out", file]).await;
    assert_eq!(std::fs::read_to_string(&anchors).unwrap().lines().count(), 2);
    for (f, copy) in files.iter().zip(before) {
        match copy {
            Some(bytes) => std::fs::write(f, bytes).unwrap(),
            None => {
                let _ = std::fs::remove_file(f);
            }
        }
    }
    let said = env.ok(&["audit", "verify"]).await;
    assert!(said.contains("intact"), "the log alone cannot tell: {said}");
    let err = env.fails(1, &["audit", "verify", "--anchor", file]).await;
    assert!(err.contains("rolled back"), "{err}");
    // An anchor file that is not one says so.
    std::fs::write(&anchors, "not an anchor\n").unwrap();
    let err = env.fails(3, &["audit", "verify", "--anchor", file]).await;
    assert!(err.contains("audit anchor 1") && err.contains("mac"), "{err}");
}
