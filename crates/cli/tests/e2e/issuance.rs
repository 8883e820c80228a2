//! Requests: refused names, batches, revocation, chains, CSRs, key types, rules, kill -9.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{walk, webroot_site};
use crate::support::{self, Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn a_blocklisted_name_is_refused_by_name() {
    let mut opts = hostile();
    opts.blocklist = vec!["blocked.test".into()];
    let env = Env::start(opts).await;
    env.account("le", &[]).await;
    env.add_http01("bad", "le", "x.blocked.test").await;
    let err = env.fails(4, &["cert", "request", "bad"]).await;
    assert!(err.contains("rejectedIdentifier") && err.contains("x.blocked.test"), "{err}");
    let history = env.ok(&["cert", "history", "bad"]).await;
    assert!(history.contains("failed") && history.contains("rejectedIdentifier"), "{history}");
    assert_eq!(env.show("bad").await["state"], "failing");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_at_once_report_each_and_fail_only_if_one_fails() {
    let mut opts = hostile();
    opts.blocklist = vec!["blocked.test".into()];
    let env = Env::start(opts).await;
    env.account("le", &[]).await;
    for (name, domain) in [("one", "one.test"), ("two", "two.test"), ("three", "three.test")] {
        env.add_http01(name, "le", domain).await;
    }
    env.ok(&["cert", "request", "one", "two", "three", "--jobs", "3"]).await;
    for name in ["one", "two", "three"] {
        assert_eq!(env.show(name).await["state"], "valid");
    }
    env.add_http01("nope", "le", "n.blocked.test").await;
    let out = env.run(&["cert", "request", "one", "nope", "--jobs", "2"]).await;
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope") && stderr.contains("1 of 2"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("one: valid"));
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_is_visible_at_the_ca() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    for (name, domain) in [("r1", "r1.test"), ("r2", "r2.test")] {
        env.add_http01(name, "le", domain).await;
        env.ok(&["cert", "request", name]).await;
    }
    env.ok(&["cert", "revoke", "r1", "--reason", "key-compromise"]).await;
    env.ok(&["cert", "revoke", "r2", "--reason", "superseded", "--with-cert-key"]).await;
    for (name, reason) in [("r1", 1), ("r2", 4)] {
        let show = env.show(name).await;
        assert_eq!(show["state"], "revoked");
        let status = env.pebble.cert_status(show["serial"].as_str().unwrap()).await;
        assert_eq!(status["Status"], "Revoked", "{status}");
        assert_eq!(status["Reason"], reason, "{status}");
    }
    let err = env.fails(3, &["cert", "revoke", "r1"]).await;
    assert!(err.contains("already revoked"), "{err}");
    let history: Value =
        serde_json::from_str(&env.ok(&["cert", "history", "r1", "--json"]).await).unwrap();
    let events: Vec<&str> =
        history.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["ordered", "validated", "issued", "revoked"], "{history}");
    assert!(history[3]["detail"].as_str().unwrap().contains("KeyCompromise"));
}

#[tokio::test(flavor = "multi_thread")]
async fn preferred_chain_selects_the_alternate_root() {
    let mut opts = hostile();
    opts.alternate_roots = 1;
    let env = Env::start(opts).await;
    let alt_root = env.pebble.root_pem(1).await;
    let alt_cn = common_name(&alt_root);
    env.account("le", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "alt",
        "--account",
        "le",
        "-d",
        "alt.test",
        "--preferred-chain",
        &alt_cn,
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.add_http01("dflt", "le", "dflt.test").await;
    env.ok(&["cert", "request", "alt", "dflt"]).await;
    let out = tempfile::TempDir::new().unwrap();
    env.ok(&["cert", "export", "alt", "--out", out.path().to_str().unwrap()]).await;
    let fullchain = std::fs::read_to_string(out.path().join("fullchain.pem")).unwrap();
    support::verify_chain(&fullchain, &alt_root, &["alt.test"]);
    env.verify_issued("dflt", &["dflt.test"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_csr_keeps_its_key() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["csr.test".to_string(), "csr2.test".to_string()])
            .unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "csr.test");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("req.csr");
    std::fs::write(&path, csr).unwrap();
    let out = env
        .ok(&[
            "cert",
            "add",
            "mine",
            "--account",
            "le",
            "--csr",
            path.to_str().unwrap(),
            "--challenge",
            &env.http01(),
        ])
        .await;
    assert!(out.contains("csr.test") && out.contains("csr2.test"), "{out}");
    env.ok(&["cert", "request", "mine"]).await;
    let chain = env.verify_issued("mine", &["csr.test", "csr2.test"]).await;
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(
        leaf.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
    let exported = tempfile::TempDir::new().unwrap();
    env.ok(&["cert", "export", "mine", "--out", exported.path().to_str().unwrap()]).await;
    assert!(!exported.path().join("privkey.pem").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn key_types_and_pkcs12_export() {
    let env = Env::start(hostile()).await;
    env.account("le", &["--key-type", "ec-p384"]).await;
    env.ok(&[
        "cert",
        "add",
        "rsa",
        "--account",
        "le",
        "-d",
        "rsa.test",
        "--key-type",
        "rsa-3072",
        "--reuse-key",
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.ok(&[
        "cert",
        "add",
        "p384",
        "--account",
        "le",
        "-d",
        "p384.test",
        "--key-type",
        "ec-p384",
        "--challenge",
        &env.tls_alpn01(),
    ])
    .await;
    env.ok(&["cert", "request", "rsa", "p384"]).await;
    let first = env.verify_issued("rsa", &["rsa.test"]).await;
    env.verify_issued("p384", &["p384.test"]).await;
    // Key reuse: a second issuance keeps the key.
    env.ok(&["cert", "request", "rsa"]).await;
    let second = env.verify_issued("rsa", &["rsa.test"]).await;
    let spki =
        |der: &[u8]| x509_parser::parse_x509_certificate(der).unwrap().1.public_key().raw.to_vec();
    assert_eq!(spki(&first[0]), spki(&second[0]));
    assert_ne!(first[0], second[0]);

    let out = tempfile::TempDir::new().unwrap();
    let dir = out.path().to_str().unwrap();
    env.ok(&["cert", "export", "p384", "--format", "pkcs12", "--out", dir, "--password", "pw"])
        .await;
    let p12 = std::fs::read(out.path().join("p384.p12")).unwrap();
    let store = p12_keystore::KeyStore::from_pkcs12(
        &p12,
        "pw",
        p12_keystore::Pkcs12ImportPolicy::default(),
    )
    .unwrap();
    let (_, chain) = store.private_key_chain().expect("a key with its chain");
    assert!(chain.certs().len() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn identifier_rules_are_enforced_with_clear_messages() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let http = env.http01();
    let err = env
        .fails(3, &["cert", "add", "w", "--account", "le", "-d", "*.r.test", "--challenge", &http])
        .await;
    assert!(err.contains("*.r.test") && err.contains("dns-01"), "{err}");
    let err = env
        .fails(
            3,
            &["cert", "add", "s", "--account", "le", "-d", "SRVDEVAPP01", "--challenge", &http],
        )
        .await;
    assert!(err.contains("srvdevapp01") && err.contains("single-label"), "{err}");
    let err = env
        .fails(
            3,
            &[
                "cert",
                "add",
                "i",
                "--account",
                "le",
                "--ip",
                "127.0.0.1",
                "--challenge",
                &env.rfc2136(),
            ],
        )
        .await;
    assert!(err.contains("127.0.0.1") && err.contains("dns-01"), "{err}");
    let err = env
        .fails(3, &["cert", "add", "b", "--account", "le", "-d", "a..test", "--challenge", &http])
        .await;
    assert!(err.contains("a..test"), "{err}");
    let out = env
        .run(&[
            "cert",
            "add",
            "d",
            "--account",
            "le",
            "-d",
            "www.r.test,*.r.test",
            "--challenge",
            &env.rfc2136(),
        ])
        .await;
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("www.r.test"),
        "the dropped name is reported"
    );
    let show = env.show("d").await;
    assert_eq!(show["identifiers"], json!(["*.r.test"]));
    let err = env.fails(6, &["cert", "request", "missing"]).await;
    assert!(err.contains("missing"), "{err}");
    let err = env
        .fails(
            3,
            &[
                "cert",
                "add",
                "x",
                "--account",
                "le",
                "-d",
                "x.test",
                "--challenge",
                "smtp-01:listen=1",
            ],
        )
        .await;
    assert!(err.contains("smtp-01"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_any_moment_then_the_next_run_completes() {
    let env = Env::start(hostile()).await;
    let (webroot, spec, _server) = webroot_site(&env).await;
    env.account("le", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "k",
        "--account",
        "le",
        "-d",
        "k1.test,k2.test,k3.test",
        "--challenge",
        &spec,
    ])
    .await;
    // Kill at moments spread over a request (ordering, validating, finalizing), each run
    // resuming what the previous one left, until a run completes before it is killed.
    let mut killed = 0;
    for delay_ms in [5u64, 10, 20, 30, 45, 60, 80, 100, 130, 170, 220, 300] {
        let mut child = env.command(&["cert", "request", "k"]).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = child.start_kill();
        let status = child.wait().await.unwrap();
        // A run killed after it stored the certificate has done its work too.
        if status.success() || env.show("k").await["state"] == "valid" {
            break;
        }
        killed += 1;
    }
    assert!(killed >= 3, "the request finished too fast to be interrupted ({killed} kills)");
    if env.show("k").await["state"] != "valid" {
        env.ok(&["cert", "request", "k"]).await;
    }
    env.verify_issued("k", &["k1.test", "k2.test", "k3.test"]).await;
    let left = walk(webroot.path());
    assert!(left.is_empty(), "webroot still holds {left:?}");
    let store = certhub_store::Store::open(env.data_dir()).await.unwrap();
    assert!(store.presented_all().await.unwrap().is_empty(), "challenge records left behind");
    let orders = store.orders_for("k").await.unwrap();
    assert_eq!(
        orders.iter().filter(|o| o.status == "valid").count(),
        1,
        "exactly one order completed"
    );
    assert_eq!(store.issued_for("k").await.unwrap().len(), 1, "exactly one certificate stored");
}

fn common_name(pem: &str) -> String {
    let der = support::pem_certs(pem).remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string()
}
