//! `cert preview` and `cert test`: the plan and a per-identifier probe, with nothing ordered.

use serde_json::Value;

use crate::common::{walk, webroot_site};
use crate::support::{Env, hostile, script};

#[tokio::test(flavor = "multi_thread")]
async fn preview_shows_the_plan_without_side_effects_or_secrets() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "plan",
        "--account",
        "le",
        "-d",
        "p.test,*.p.test",
        "--reuse-key",
        "--preferred-chain",
        "Some Root",
        "--challenge",
        &env.http01(),
        "--challenge",
        &env.rfc2136(),
    ])
    .await;
    let plan: Value =
        serde_json::from_str(&env.ok(&["cert", "preview", "plan", "--json"]).await).unwrap();
    assert_eq!(plan["ca"]["directory"], env.pebble.directory_url.as_str());
    let steps = plan["validation"].as_array().unwrap();
    assert_eq!(steps[0]["identifier"], "p.test");
    assert_eq!(steps[0]["challenge"], "http-01");
    assert_eq!(steps[1]["identifier"], "*.p.test");
    assert_eq!(steps[1]["challenge"], "dns-01");
    assert_eq!(steps[1]["record"], "_acme-challenge.p.test");
    assert!(plan["key"].as_str().unwrap().contains("new ec-p256"), "{plan}");
    assert!(plan["next_renewal"]["when"].as_str().unwrap().starts_with("now"), "{plan}");
    assert!(
        !plan.to_string().contains(&env.bind.tsig_secret),
        "the TSIG secret stays out of the plan"
    );
    let text = env.ok(&["cert", "preview", "plan"]).await;
    assert!(text.contains("Some Root") && text.contains("p.test"), "{text}");
    // Nothing happened: no order, no event, the listener's port is free.
    let store = certhub_store::Store::open(env.data_dir()).await.unwrap();
    assert!(store.orders_for("plan").await.unwrap().is_empty());
    assert!(store.events_for("plan").await.unwrap().is_empty());
    std::net::TcpListener::bind(("127.0.0.1", env.pebble.http_port))
        .expect("preview opened no listener");
    // After issuance the plan reuses the key and names the renewal date.
    env.bind.update("update add p.test. 60 A 127.0.0.1").await;
    env.ok(&["cert", "request", "plan"]).await;
    let plan: Value =
        serde_json::from_str(&env.ok(&["cert", "preview", "plan", "--json"]).await).unwrap();
    assert!(plan["key"].as_str().unwrap().contains("reused"), "{plan}");
    assert!(plan["next_renewal"]["when"].as_str().unwrap().starts_with("20"), "{plan}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cert_test_reports_per_identifier_without_ordering() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let (webroot, served, _server) = webroot_site(&env).await;
    let unserved = tempfile::TempDir::new().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let noop = script(dir.path(), "noop.sh", "exit 0\n");
    let specs = [
        format!("http-01:webroot={};domains=bad.t.test", unserved.path().display()),
        format!("dns-01:exec={};propagation-timeout=1;domains=nodns.t.test", noop.display()),
        format!("{served};domains=www.t.test"),
        format!("{};domains=alpn.t.test", env.tls_alpn01()),
        env.rfc2136(),
    ];
    let mut args = vec![
        "cert",
        "add",
        "probe",
        "--account",
        "le",
        "-d",
        "www.t.test,alpn.t.test,*.w.test,bad.t.test,nodns.t.test",
    ];
    for s in &specs {
        args.extend(["--challenge", s.as_str()]);
    }
    env.ok(&args).await;
    let (http, tls) = (env.pebble.http_port.to_string(), env.pebble.tls_port.to_string());
    let out = env
        .run(&["cert", "test", "probe", "--http-port", &http, "--tls-port", &tls, "--json"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let works = |id: &str| {
        let r = report.as_array().unwrap().iter().find(|r| r["identifier"] == id).unwrap();
        (r["works"].as_bool().unwrap(), r["detail"].as_str().unwrap().to_string())
    };
    for id in ["www.t.test", "alpn.t.test", "*.w.test"] {
        assert!(works(id).0, "{id}: {}", works(id).1);
    }
    let (ok, why) = works("bad.t.test");
    assert!(!ok && why.contains("404"), "{why}");
    let (ok, why) = works("nodns.t.test");
    assert!(!ok && why.contains("_acme-challenge.nodns.t.test"), "{why}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 of 5 identifiers would fail"), "{stderr}");
    // Nothing ordered, nothing left behind.
    let store = certhub_store::Store::open(env.data_dir()).await.unwrap();
    assert!(store.orders_for("probe").await.unwrap().is_empty());
    assert!(walk(webroot.path()).is_empty());
    assert!(env.bind.txt_values("_acme-challenge.w.test.").await.is_empty());
}
