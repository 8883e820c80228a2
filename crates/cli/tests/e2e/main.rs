//! End to end: the real `certhub` binary against a real Pebble (30% of nonces rejected)
//! that resolves through a real BIND 9. Every issued chain is verified against Pebble's
//! root and every name.

mod browser;
mod hardening;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Env, hostile, script};

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn http01_listener_issues_a_verified_certificate() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "web",
        "--account",
        "le",
        "-d",
        "a.test",
        "-d",
        "WWW.A.test.",
        "--challenge",
        &env.http01(),
    ])
    .await;
    let out = env.ok(&["cert", "request", "web"]).await;
    assert!(out.contains("web: valid"), "{out}");
    let show = env.show("web").await;
    assert_eq!(show["state"], "valid");
    assert_eq!(names(&show["sans"]), set(&["a.test", "www.a.test"]));
    for field in ["serial", "issuer", "not_before", "not_after"] {
        assert!(show[field].is_string(), "{field} missing in {show}");
    }
    env.verify_issued("web", &["a.test", "www.a.test"]).await;
    let list: Value = serde_json::from_str(&env.ok(&["cert", "list", "--json"]).await).unwrap();
    assert_eq!(list[0]["name"], "web");
}

#[tokio::test(flavor = "multi_thread")]
async fn http01_webroot_writes_the_token_and_leaves_nothing_behind() {
    let env = Env::start(hostile()).await;
    let (webroot, spec, _server) = webroot_site(&env).await;
    env.account("le", &[]).await;
    env.ok(&["cert", "add", "site", "--account", "le", "-d", "site.test", "--challenge", &spec])
        .await;
    env.ok(&["cert", "request", "site"]).await;
    env.verify_issued("site", &["site.test"]).await;
    let left = walk(webroot.path());
    assert!(left.is_empty(), "webroot still holds {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_alpn01_issues() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "alpn",
        "--account",
        "le",
        "-d",
        "alpn.test",
        "--challenge",
        &env.tls_alpn01(),
    ])
    .await;
    env.ok(&["cert", "request", "alpn"]).await;
    env.verify_issued("alpn", &["alpn.test"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dns01_rfc2136_wildcard_plus_apex() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "wild",
        "--account",
        "le",
        "-d",
        "b.test",
        "-d",
        "*.b.test",
        "--challenge",
        &env.rfc2136(),
    ])
    .await;
    env.ok(&["cert", "request", "wild"]).await;
    env.verify_issued("wild", &["b.test", "x.b.test"]).await;
    assert!(
        env.bind.txt_values("_acme-challenge.b.test.").await.is_empty(),
        "TXT records were left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_identifier_takes_the_first_spec_that_suits_it() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let out = env
        .ok(&[
            "cert",
            "add",
            "mixed",
            "--account",
            "le",
            "-d",
            "c.test,*.c.test",
            "--challenge",
            &env.http01(),
            "--challenge",
            &env.rfc2136(),
        ])
        .await;
    assert!(out.contains("c.test  http-01") && out.contains("*.c.test  dns-01"), "{out}");
    // The TXT record below c.test would otherwise hide the zone's wildcard A for c.test itself.
    env.bind.update("update add c.test. 60 A 127.0.0.1").await;
    env.ok(&["cert", "request", "mixed"]).await;
    env.verify_issued("mixed", &["c.test", "y.c.test"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dns01_follows_a_cname_on_acme_challenge() {
    let env = Env::start(hostile()).await;
    // Delegate validation of cn.test to a name the certificate's owner controls.
    env.bind.update("update add _acme-challenge.cn.test. 60 CNAME cn.validation.test.").await;
    env.account("le", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "cname",
        "--account",
        "le",
        "-d",
        "cn.test",
        "--challenge",
        &env.rfc2136(),
    ])
    .await;
    env.ok(&["cert", "request", "cname"]).await;
    env.verify_issued("cname", &["cn.test"]).await;
    assert!(
        env.bind.txt_values("cn.validation.test.").await.is_empty(),
        "the delegated record was removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dns01_failures_say_what_went_wrong() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    // A wrong TSIG key is refused by the server, and the error says so.
    let wrong = format!(
        "dns-01:rfc2136={},key-name={},key-secret=c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=",
        env.bind.addr, env.bind.tsig_key_name
    );
    env.ok(&["cert", "add", "tsig", "--account", "le", "-d", "tsig.test", "--challenge", &wrong])
        .await;
    let err = env.fails(1, &["cert", "request", "tsig"]).await;
    assert!(err.contains("NOTAUTH") && err.contains("TSIG"), "{err}");
    // A hook that "succeeds" without publishing: the check names the server lacking the value.
    let dir = tempfile::TempDir::new().unwrap();
    let hook = script(dir.path(), "noop.sh", "exit 0\n");
    let spec = format!("dns-01:exec={};propagation-timeout=2", hook.display());
    env.ok(&["cert", "add", "slow", "--account", "le", "-d", "slow.test", "--challenge", &spec])
        .await;
    let err = env.fails(1, &["cert", "request", "slow"]).await;
    assert!(
        err.contains("_acme-challenge.slow.test") && err.contains(&env.bind.addr.to_string()),
        "{err}"
    );
    // A failing hook reports its own words.
    let hook = script(dir.path(), "fail.sh", "echo 'zone is read-only' >&2\nexit 3\n");
    let spec = format!("dns-01:exec={}", hook.display());
    env.ok(&[
        "cert",
        "add",
        "broken",
        "--account",
        "le",
        "-d",
        "broken.test",
        "--challenge",
        &spec,
    ])
    .await;
    let err = env.fails(1, &["cert", "request", "broken"]).await;
    assert!(err.contains("zone is read-only"), "{err}");
    // A profile the CA does not advertise is refused before anything is ordered.
    env.ok(&[
        "cert",
        "add",
        "prof",
        "--account",
        "le",
        "-d",
        "prof.test",
        "--profile",
        "shortlived",
        "--challenge",
        &env.http01(),
    ])
    .await;
    let err = env.fails(4, &["cert", "request", "prof"]).await;
    assert!(err.contains("shortlived") && err.contains("advertises no profiles"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns01_exec_hook_follows_legos_convention() {
    let env = Env::start(hostile()).await;
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("calls.log");
    let hook = script(
        dir.path(),
        "hook.sh",
        &format!(
            r#"echo "$@" >> {log}
if [ "$1" = present ]; then op="update add $2 60 TXT \"$3\""; else op="update delete $2 TXT \"$3\""; fi
printf 'server 127.0.0.1 {port}\n%s\nsend\n' "$op" | nsupdate -y {alg}:{name}:{secret}
"#,
            log = log.display(),
            port = env.bind.addr.port(),
            alg = env.bind.algorithm,
            name = env.bind.tsig_key_name,
            secret = env.bind.tsig_secret,
        ),
    );
    env.account("le", &[]).await;
    let spec = format!("dns-01:exec={}", hook.display());
    env.ok(&[
        "cert",
        "add",
        "hooked",
        "--account",
        "le",
        "-d",
        "e.test",
        "-d",
        "*.e.test",
        "--challenge",
        &spec,
    ])
    .await;
    env.ok(&["cert", "request", "hooked"]).await;
    env.verify_issued("hooked", &["e.test", "z.e.test"]).await;
    let calls = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("present _acme-challenge.e.test. ")).count(),
        2,
        "{calls}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("cleanup _acme-challenge.e.test. ")).count(),
        2,
        "{calls}"
    );
    assert!(env.bind.txt_values("_acme-challenge.e.test.").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dns01_callback_posts_signed_events_and_waits_for_the_record() {
    let env = Env::start(hostile()).await;
    let receiver = callback::Receiver::start("s3cret", &env.bind).await;
    env.account("le", &[]).await;
    let spec = format!("dns-01:callback={},secret=s3cret", receiver.url);
    env.ok(&["cert", "add", "cb", "--account", "le", "-d", "cb.test", "--challenge", &spec]).await;
    env.ok(&["cert", "request", "cb"]).await;
    env.verify_issued("cb", &["cb.test"]).await;
    let events = receiver.events();
    let kinds: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["cert_domain_validation_required", "cert_domain_validation_completed"],
        "{events:?}"
    );
    assert_eq!(events[0]["domain_validation_method"], "dns-01");
    assert_eq!(events[0]["challenge"]["txt_record_name"], "_acme-challenge.cb.test");
    assert!(events[0]["challenge"]["txt_record_val"].as_str().unwrap().len() == 43);
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_identifier_with_http01() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.ok(&[
        "cert",
        "add",
        "ip",
        "--account",
        "le",
        "--ip",
        "127.0.0.1",
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.ok(&["cert", "request", "ip"]).await;
    env.verify_issued("ip", &["127.0.0.1"]).await;
    let show = env.show("ip").await;
    assert_eq!(names(&show["sans"]), set(&["127.0.0.1"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn external_account_binding_is_required_and_accepted() {
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let mut opts = hostile();
    opts.eab_required = true;
    opts.eab_keys = vec![("kid-1".into(), hmac.into())];
    let env = Env::start(opts).await;
    let bundle = env.ca_bundle();
    let base = [
        "account",
        "add",
        "eab",
        "--directory",
        &env.pebble.directory_url,
        "--ca-bundle",
        &bundle,
        "--agree-tos",
    ];
    let err = env.fails(3, &base).await;
    assert!(err.contains("External Account Binding") && err.contains("--eab-kid"), "{err}");
    let wrong = "AAAAZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let err =
        env.fails(4, &[&base[..], &["--eab-kid", "kid-1", "--eab-hmac-key", wrong]].concat()).await;
    assert!(err.contains("unauthorized"), "{err}");
    env.ok(&[&base[..], &["--eab-kid", "kid-1", "--eab-hmac-key", hmac]].concat()).await;
    env.add_http01("bound", "eab", "eab.test").await;
    env.ok(&["cert", "request", "bound"]).await;
    env.verify_issued("bound", &["eab.test"]).await;
}

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
async fn key_rollover_then_issuance_with_the_new_key() {
    let env = Env::start(hostile()).await;
    env.account("le", &["--key-type", "rsa-2048"]).await;
    env.ok(&["account", "rollover", "le", "--key-type", "ec-p384"]).await;
    let list: Value = serde_json::from_str(&env.ok(&["account", "list", "--json"]).await).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["key_type"], "ec-p384");
    let shown: Value =
        serde_json::from_str(&env.ok(&["account", "show", "le", "--json"]).await).unwrap();
    assert_eq!(shown["ca"]["status"], "valid", "{shown}");
    env.ok(&[
        "cert",
        "add",
        "after",
        "--account",
        "le",
        "-d",
        "roll.test",
        "--key-type",
        "rsa-2048",
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.ok(&["cert", "request", "after"]).await;
    env.verify_issued("after", &["roll.test"]).await;
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
async fn account_lifecycle() {
    let env = Env::start(hostile()).await;
    let bundle = env.ca_bundle();
    let err = env
        .fails(
            3,
            &[
                "account",
                "add",
                "x",
                "--directory",
                &env.pebble.directory_url,
                "--ca-bundle",
                &bundle,
            ],
        )
        .await;
    assert!(err.contains("--agree-tos"), "{err}");
    let out = env
        .run(&[
            "account",
            "add",
            "quiet",
            "--directory",
            &env.pebble.directory_url,
            "--ca-bundle",
            &bundle,
            "--agree-tos",
        ])
        .await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no contact email"));
    env.ok(&["account", "update", "quiet", "--email", "new@example.com"]).await;
    let shown: Value =
        serde_json::from_str(&env.ok(&["account", "show", "quiet", "--json"]).await).unwrap();
    assert_eq!(shown["ca"]["contact"], json!(["mailto:new@example.com"]));
    env.fails(3, &["account", "deactivate", "quiet"]).await;
    env.ok(&["account", "deactivate", "quiet", "--yes"]).await;
    let list: Value = serde_json::from_str(&env.ok(&["account", "list", "--json"]).await).unwrap();
    assert_eq!(list[0]["status"], "deactivated");
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

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A webroot served where Pebble validates http-01, and the challenge spec that writes to it.
async fn webroot_site(env: &Env) -> (tempfile::TempDir, String, tokio::task::JoinHandle<()>) {
    let webroot = tempfile::TempDir::new().unwrap();
    let server = serve_dir(webroot.path().to_path_buf(), env.pebble.http_port).await;
    let spec = format!("http-01:webroot={}", webroot.path().display());
    (webroot, spec, server)
}

/// Serves files below `root` on 127.0.0.1:`port`, as a web server in front of a webroot.
async fn serve_dir(root: std::path::PathBuf, port: u16) -> tokio::task::JoinHandle<()> {
    use axum::extract::Path;
    use axum::http::StatusCode;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let app = axum::Router::new().route(
        "/.well-known/acme-challenge/{token}",
        axum::routing::get(move |Path(token): Path<String>| {
            let path = root.join(".well-known/acme-challenge").join(token);
            async move { std::fs::read(path).map_err(|_| StatusCode::NOT_FOUND) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

mod callback {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use certhub_testkit::bind::Bind;
    use serde_json::Value;

    pub struct Receiver {
        pub url: String,
        events: Arc<Mutex<Vec<Value>>>,
    }

    impl Receiver {
        /// A callback endpoint that checks the signature and publishes the record in BIND.
        pub async fn start(secret: &'static str, bind: &Bind) -> Receiver {
            let events = Arc::new(Mutex::new(Vec::new()));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/hook", listener.local_addr().unwrap());
            let updater = bind.updater();
            let seen = events.clone();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                    let seen = seen.clone();
                    let updater = updater.clone();
                    async move {
                        let mac = aws_lc_rs::hmac::Key::new(
                            aws_lc_rs::hmac::HMAC_SHA256,
                            secret.as_bytes(),
                        );
                        let tag = aws_lc_rs::hmac::sign(&mac, &body);
                        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                        let sent = headers
                            .get("x-certhub-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        if sent != format!("sha256={hex}") {
                            return StatusCode::UNAUTHORIZED;
                        }
                        let event: Value = serde_json::from_slice(&body).unwrap();
                        let name =
                            event["challenge"]["txt_record_name"].as_str().unwrap().to_string();
                        let value =
                            event["challenge"]["txt_record_val"].as_str().unwrap().to_string();
                        let op = if event["event_type"] == "cert_domain_validation_required" {
                            format!("update add {name}. 60 TXT \"{value}\"")
                        } else {
                            format!("update delete {name}. TXT \"{value}\"")
                        };
                        seen.lock().unwrap().push(event);
                        updater.update(&op).await;
                        StatusCode::OK
                    }
                }),
            );
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Receiver { url, events }
        }

        pub fn events(&self) -> Vec<Value> {
            self.events.lock().unwrap().clone()
        }
    }
}

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

/// The serial of a DER certificate as certhub shows it: lowercase hex, no leading zeros.
fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let hex: String =
        cert.tbs_certificate.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
    hex.trim_start_matches('0').to_string()
}

fn shown_serial(show: &Value) -> String {
    show["serial"].as_str().unwrap().to_ascii_lowercase().trim_start_matches('0').to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_reaches_a_real_nginx_and_each_renewal_reloads_it() {
    use certhub_testkit::nginx::Nginx;
    let mut opts = hostile();
    // Long enough for the steps below to run before the certificate is due, short enough to
    // see `renew --due` renew it on its own at the end.
    opts.validity_secs = Some(60);
    let env = Env::start(opts).await;
    env.account("le", &[]).await;
    let site = tempfile::TempDir::new().unwrap();
    let ssl = site.path().join("ssl");
    let block = site.path().join("reload-blocked");
    env.ok(&[
        "cert",
        "add",
        "web",
        "--account",
        "le",
        "-d",
        "web.test",
        "--challenge",
        &env.http01(),
        "--deploy",
        &format!("files:dir={};name=site", ssl.display()),
    ])
    .await;
    let out = env.ok(&["cert", "request", "web"]).await;
    assert!(out.contains("web"), "{out}");
    use std::os::unix::fs::PermissionsExt as _;
    let key_mode = std::fs::metadata(ssl.join("privkey.pem")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // nginx starts on the deployed files and serves the issued certificate.
    let nginx = Nginx::start(&ssl.join("fullchain.pem"), &ssl.join("privkey.pem")).await;
    let root = env.pebble.root_pem(0).await;
    let served = || async {
        let chain = nginx
            .served_chain("web.test", &root)
            .await
            .unwrap_or_else(|e| panic!("{e}\nnginx log:\n{}", nginx.log()));
        assert!(chain.len() >= 2, "nginx serves the whole chain");
        serial_of(&chain[0])
    };
    let first = shown_serial(&env.show("web").await);
    assert_eq!(served().await, first);

    // A reload task after the files; it fails while the block file exists.
    let reload = format!(
        "command:test ! -e {} && {};name=reload;timeout=30",
        block.display(),
        nginx.reload_command()
    );
    env.ok(&["deploy", "add", "web", &reload]).await;
    let dry = env.ok(&["deploy", "run", "web", "--dry-run"]).await;
    assert!(dry.contains("site") && dry.contains("reload") && dry.contains("dry run"), "{dry}");

    // Renewal: new files, reload, and nginx serves the new serial.
    env.ok(&["renew", "web"]).await;
    let second = shown_serial(&env.show("web").await);
    assert_ne!(second, first);
    let wait_for = |want: String| {
        let served = &served;
        async move {
            certhub_testkit::wait_until(
                "nginx to serve the new certificate",
                Duration::from_secs(20),
                || {
                    let want = want.clone();
                    async move { (served().await == want).then_some(()) }
                },
            )
            .await
        }
    };
    wait_for(second.clone()).await;

    // The reload fails: the certificate is issued and its files written, the failure is
    // reported and recorded, and nginx keeps serving the previous certificate.
    std::fs::write(&block, "").unwrap();
    let err = env.fails(1, &["renew", "web"]).await;
    assert!(err.contains("deploying it failed") && err.contains("reload"), "{err}");
    let third = shown_serial(&env.show("web").await);
    assert_ne!(third, second);
    assert_eq!(served().await, second);
    let list: Value =
        serde_json::from_str(&env.ok(&["deploy", "list", "web", "--json"]).await).unwrap();
    assert_eq!(list[0]["status"], "up to date", "{list}");
    assert_eq!(list[1]["status"], "failed", "{list}");
    assert!(list[1]["last_detail"].as_str().unwrap().contains("exited with status 1"), "{list}");

    // The next cron run retries the pending reload although nothing is due.
    std::fs::remove_file(&block).unwrap();
    let out = env.ok(&["renew", "--due"]).await;
    assert!(out.contains("1 not due (1 with pending deployments done)"), "{out}");
    wait_for(third.clone()).await;
    // Done: not looked at again before its renewal time.
    let out = env.ok(&["renew", "--due"]).await;
    assert!(out.contains("Nothing is due now") && !out.contains("pending"), "{out}");

    // Once 75% of the lifetime has passed, `renew --due` renews and deploys on its own.
    certhub_testkit::wait_until("renew --due to renew", Duration::from_secs(90), || async {
        env.ok(&["renew", "--due"]).await.contains("1 renewed").then_some(())
    })
    .await;
    let fourth = shown_serial(&env.show("web").await);
    assert_ne!(fourth, third);
    wait_for(fourth).await;

    let history = env.ok(&["cert", "history", "web"]).await;
    assert!(history.contains("deployed") && history.contains("deploy-failed"), "{history}");
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_reads_web_server_configuration_and_creates_a_certificate() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let etc = tempfile::TempDir::new().unwrap();
    let nginx = etc.path().join("nginx");
    std::fs::create_dir_all(nginx.join("sites-enabled")).unwrap();
    std::fs::write(
        nginx.join("nginx.conf"),
        "events {}\nhttp {\n  include mime.types;\n  include sites-enabled/*;\n}\n",
    )
    .unwrap();
    std::fs::write(nginx.join("mime.types"), "types { text/html html; }\n").unwrap();
    std::fs::write(
        nginx.join("sites-enabled/shop.conf"),
        "server {\n  listen 443 ssl;\n  server_name shop.test www.shop.test;\n}\n\
         server {\n  listen 80 default_server;\n  server_name _;\n}\n",
    )
    .unwrap();
    std::fs::write(
        nginx.join("sites-enabled/blog.conf"),
        "server { listen 80; server_name Blog.Test. ~^(?<sub>.+)\\.blog\\.test$; }\n",
    )
    .unwrap();
    let conf = nginx.join("nginx.conf");
    let conf = conf.to_str().unwrap();

    let out = env.ok(&["discover", "nginx", "--config", conf]).await;
    assert!(out.contains("Read 4 file(s), 3 site(s)."), "{out}");
    assert!(out.contains("shop.conf:1") && out.contains("www.shop.test"), "{out}");
    assert!(out.contains("skipped _:") && out.contains("skipped ~^(?<sub>"), "{out}");
    assert!(out.contains("Names to certify: blog.test, shop.test, www.shop.test"), "{out}");

    let json: Value = serde_json::from_str(
        &env.ok(&["discover", "nginx", "--config", conf, "--tls-only", "--json"]).await,
    )
    .unwrap();
    assert_eq!(json["identifiers"], json!(["shop.test", "www.shop.test"]));
    assert_eq!(json["sites"].as_array().unwrap().len(), 1);

    let missing = env.fails(6, &["discover", "nginx", "--config", "/nonexistent/nginx.conf"]).await;
    assert!(missing.contains("/nonexistent/nginx.conf"), "{missing}");
    std::fs::write(nginx.join("sites-enabled/broken.conf"), "server { server_name x.test;\n")
        .unwrap();
    let broken = env.fails(3, &["discover", "nginx", "--config", conf]).await;
    assert!(broken.contains("broken.conf"), "{broken}");
    std::fs::remove_file(nginx.join("sites-enabled/broken.conf")).unwrap();

    env.ok(&[
        "discover",
        "nginx",
        "--config",
        conf,
        "--match",
        "*.shop.test,shop.test",
        "--create",
        "shop",
        "--account",
        "le",
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.ok(&["cert", "request", "shop"]).await;
    env.verify_issued("shop", &["shop.test", "www.shop.test"]).await;
    assert_eq!(names(&env.show("shop").await["sans"]), set(&["shop.test", "www.shop.test"]));

    // Apache: virtual hosts, aliases, IncludeOptional.
    let apache = etc.path().join("apache2");
    std::fs::create_dir_all(apache.join("sites-enabled")).unwrap();
    std::fs::write(
        apache.join("apache2.conf"),
        "ServerRoot \"{root}\"\nIncludeOptional sites-enabled/*.conf\nIncludeOptional conf.d/*.conf\n"
            .replace("{root}", apache.to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(
        apache.join("sites-enabled/app.conf"),
        "<VirtualHost *:443>\n  ServerName app.test\n  ServerAlias api.app.test \\\n    admin.app.test\n  SSLEngine on\n</VirtualHost>\n",
    )
    .unwrap();
    let out = env
        .ok(&["discover", "apache", "--config", apache.join("apache2.conf").to_str().unwrap()])
        .await;
    assert!(out.contains("Names to certify: app.test, api.app.test, admin.app.test"), "{out}");
}

/// A certificate from a CA other than the ACME one (an OV certificate bought elsewhere):
/// (fullchain PEM, key PEM, serial hex).
fn bought_certificate(names: &[&str], days: i64, serial: u8) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Bought Elsewhere OV CA");
    ca.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.serial_number = Some(SerialNumber::from(vec![0x42, serial]));
    leaf.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(days);
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    (format!("{}{}", leaf.pem(), ca_cert.pem()), key.serialize_pem(), format!("42{serial:02x}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_certificates_are_watched_deployed_and_renewed_only_with_an_account() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let dir = tempfile::TempDir::new().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (chain, key, serial) = bought_certificate(&["shop.test", "www.shop.test"], 200, 1);
    let (cert_file, key_file) = (write("shop.pem", &chain), write("shop.key", &key));
    let ssl = dir.path().join("ssl");

    // A key that belongs to another certificate is refused.
    let (_, other_key, _) = bought_certificate(&["shop.test"], 200, 9);
    let err = env
        .fails(
            3,
            &["cert", "import", "shop", "--cert", &cert_file, "--key", &write("o.key", &other_key)],
        )
        .await;
    assert!(err.contains("does not belong to the certificate"), "{err}");

    let out = env
        .ok(&[
            "cert",
            "import",
            "shop",
            "--cert",
            &cert_file,
            "--key",
            &key_file,
            "--deploy",
            &format!("files:dir={}", ssl.display()),
            "--deploy",
            &format!("command:env > {}", dir.path().join("env.txt").display()),
        ])
        .await;
    assert!(out.contains("Imported shop (shop.test, www.shop.test)"), "{out}");
    // The command gets the facts, not certhub's own settings.
    let env_seen = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(env_seen.contains("CERTHUB_CERT_NAME=shop"), "{env_seen}");
    assert!(!env_seen.contains("CERTHUB_DATA_DIR"), "{env_seen}");
    assert_eq!(std::fs::read_to_string(ssl.join("fullchain.pem")).unwrap(), chain);
    let show = env.show("shop").await;
    assert_eq!(show["state"], "valid");
    assert_eq!(show["account"], Value::Null);
    assert_eq!(shown_serial(&show), serial);
    assert_eq!(show["issuer"], "Bought Elsewhere OV CA", "{show}");
    assert_eq!(names(&show["sans"]), set(&["shop.test", "www.shop.test"]));

    // Watched, not ordered.
    let out = env.run(&["renew", "--due"]).await;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("0 renewed, 1 not due"), "{stdout}{stderr}");
    assert!(stderr.contains("not renewed by ACME") && !stderr.contains("warning"), "{stderr}");
    let err = env.fails(3, &["cert", "request", "shop"]).await;
    assert!(err.contains("was imported and has no ACME account"), "{err}");

    // The same file again changes nothing; its successor replaces it and is deployed.
    let out = env.ok(&["cert", "import", "shop", "--cert", &cert_file, "--key", &key_file]).await;
    assert!(out.contains("nothing imported"), "{out}");
    let (chain2, key2, serial2) = bought_certificate(&["shop.test", "www.shop.test"], 20, 2);
    // One file holding the chain and the key.
    let combined = write("shop2.pem", &format!("{chain2}{key2}"));
    env.ok(&["cert", "import", "shop", "--cert", &combined]).await;
    assert_eq!(shown_serial(&env.show("shop").await), serial2);
    assert_eq!(std::fs::read_to_string(ssl.join("fullchain.pem")).unwrap(), chain2);
    // Expiring within 30 days: said on every run.
    let out = env.run(&["renew", "--due"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 20 days less the seconds since it was made: 19 or 20 whole days, by the second.
    assert!(
        ["19", "20"].iter().any(|d| stderr.contains(&format!("warning: shop expires in {d} days"))),
        "{stderr}"
    );
    let history = env.ok(&["cert", "history", "shop"]).await;
    assert_eq!(history.matches("imported").count(), 2, "{history}");

    // PKCS#12, with its password; a wrong one is refused.
    let out = tempfile::TempDir::new().unwrap();
    let out_dir = out.path().to_str().unwrap();
    env.ok(&["cert", "export", "shop", "--format", "pkcs12", "--out", out_dir, "--password", "pw"])
        .await;
    let p12 = out.path().join("shop.p12");
    let p12 = p12.to_str().unwrap();
    let err = env.fails(3, &["cert", "import", "pfx", "--pkcs12", p12, "--password", "nope"]).await;
    assert!(err.contains("password"), "{err}");
    env.ok(&["cert", "import", "pfx", "--pkcs12", p12, "--password", "pw"]).await;
    assert_eq!(shown_serial(&env.show("pfx").await), serial2);

    // With an account, ACME renews it.
    let (chain3, key3, _) = bought_certificate(&["acme.test"], 200, 3);
    env.ok(&[
        "cert",
        "import",
        "moving",
        "--cert",
        &write("m.pem", &chain3),
        "--key",
        &write("m.key", &key3),
        "--account",
        "le",
        "--challenge",
        &env.http01(),
    ])
    .await;
    env.ok(&["renew", "moving"]).await;
    env.verify_issued("moving", &["acme.test"]).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_serves_a_certificate_to_a_token_holder_and_stops_cleanly() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.add_http01("hub", "le", "hub.test").await;
    env.ok(&["cert", "request", "hub"]).await;

    let hub = env.serve(&[], true).await;
    let (mut child, port, said) = (hub.child, hub.port, hub.said);
    // Not on a terminal, the token goes to a private file, never to the (logged) output.
    let token_file = env.data_dir().join("setup-token");
    assert!(said.contains(&token_file.display().to_string()), "{said}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let setup_token = hub.setup_token.unwrap();
    assert!(!said.contains(&setup_token), "the token is not in the output");
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let rsp = http
        .post(format!("{base}/setup"))
        .json(&json!({"token": setup_token, "username": "admin", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 201);
    assert!(!token_file.exists(), "the spent setup token is removed at once");
    let token: Value = http
        .post(format!("{base}/tokens"))
        .json(&json!({"username": "admin", "password": "a long enough password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let pem = http
        .get(format!("{base}/certificates/hub/pull?key=true"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let root = env.pebble.root_pem(0).await;
    let chain: String = pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("CERTIFICATE"))
        .collect();
    support::verify_chain(&chain, &root, &["hub.test"]);
    assert!(pem.contains("PRIVATE KEY"));
    // An account and a certificate made through the API, requested, pulled.
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send()
    };
    let rsp = post(
        "/accounts",
        json!({"name": "api-le", "directory": env.pebble.directory_url, "agree_tos": true,
               "email": "ops@example.com", "ca_bundle_pem": env.pebble.listener_ca_pem}),
    )
    .await
    .unwrap();
    assert_eq!(rsp.status(), 201, "{}", rsp.text().await.unwrap());
    let rsp = post(
        "/certificates",
        json!({"name": "api-cert", "account": "api-le", "domains": ["api.test"],
               "challenges": [env.http01()]}),
    )
    .await
    .unwrap();
    assert_eq!(rsp.status(), 201, "{}", rsp.text().await.unwrap());
    let rsp = post("/certificates", json!({"name": "bad", "account": "api-le", "domains": ["*.x.test"], "challenges": [env.http01()]}))
        .await
        .unwrap();
    assert_eq!(rsp.status(), 400);
    assert!(rsp.text().await.unwrap().contains("dns-01"));
    let rsp = post("/certificates/api-cert/request", json!({})).await.unwrap();
    assert_eq!(rsp.status(), 202);
    let url = rsp.headers()["location"].to_str().unwrap().to_string();
    let job =
        certhub_testkit::wait_until("the API request to end", Duration::from_secs(60), || {
            let (http, url, token) =
                (http.clone(), format!("http://127.0.0.1:{port}{url}"), token.clone());
            async move {
                let job: Value =
                    http.get(url).bearer_auth(token).send().await.ok()?.json().await.ok()?;
                (job["status"] != "running").then_some(job)
            }
        })
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let shown: Value = http
        .get(format!("{base}/certificates/api-cert"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["state"], "valid", "{shown}");
    env.verify_issued("api-cert", &["api.test"]).await;

    // Edited, given a deployment task and its removal, previewed, tested: all through the API.
    let edited: Value = http
        .patch(format!("{base}/certificates/api-cert"))
        .bearer_auth(&token)
        .json(&json!({"renew_at": "30d"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(edited["renewal"]["policy"], "30d", "{edited}");
    let rsp = http
        .patch(format!("{base}/certificates/api-cert"))
        .bearer_auth(&token)
        .json(&json!({"renew_at": "101%"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 400);
    let out_dir = tempfile::TempDir::new().unwrap();
    let spec = format!("files:dir={};name=pem", out_dir.path().display());
    let rsp = post("/certificates/api-cert/deployments", json!({"specs": [spec]})).await.unwrap();
    assert_eq!(rsp.status(), 201, "{}", rsp.text().await.unwrap());
    let listed: Value = http
        .get(format!("{base}/certificates/api-cert/deployments"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["name"], "pem", "{listed}");
    let rsp = http
        .delete(format!("{base}/certificates/api-cert/deployments/pem"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 204);
    let plan: Value = http
        .get(format!("{base}/certificates/api-cert/preview"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        plan["summary"][0].as_str().unwrap().starts_with("Requesting api-cert would"),
        "{plan}"
    );
    let settings: Value = http
        .get(format!("{base}/settings"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["renewal_policy"], "75%");
    assert_eq!(settings["renewal_workers"], 4);

    // Settings change at run time: checked field by field, then in force and kept.
    let patch =
        |body: Value| http.patch(format!("{base}/settings")).bearer_auth(&token).json(&body).send();
    let rsp = patch(json!({"renewal_policy": "101%"})).await.unwrap();
    assert_eq!(rsp.status(), 400);
    assert_eq!(rsp.json::<Value>().await.unwrap()["field"], "renewal_policy");
    let rsp = patch(json!({"renewal_policy": "60%", "renewal_workers": 2})).await.unwrap();
    assert_eq!(rsp.status(), 200);
    let settings: Value = rsp.json().await.unwrap();
    assert_eq!(
        (settings["renewal_policy"].as_str(), settings["renewal_workers"].as_u64()),
        (Some("60%"), Some(2))
    );

    // Challenge configurations as a resource: which one validates each name, and replaced.
    let challenges: Value = http
        .get(format!("{base}/certificates/api-cert/challenges"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(challenges["items"][0]["challenge"], "http-01", "{challenges}");
    assert_eq!(challenges["items"][0]["validates"], json!(["api.test"]), "{challenges}");
    let put = |specs: Value| {
        http.put(format!("{base}/certificates/api-cert/challenges"))
            .bearer_auth(&token)
            .json(&json!({ "specs": specs }))
            .send()
    };
    let rsp = put(json!(["dns-01:rfc2136=nowhere"])).await.unwrap();
    assert_eq!(rsp.status(), 400);
    let rsp = put(json!([env.http01(), "dns-01:exec=/bin/true;domains=*.api.test"])).await.unwrap();
    assert_eq!(rsp.status(), 200);
    let challenges: Value = rsp.json().await.unwrap();
    assert_eq!(challenges["items"].as_array().unwrap().len(), 2, "{challenges}");
    assert_eq!(challenges["items"][1]["applies_to"], json!(["*.api.test"]), "{challenges}");

    // A viewer can read, but neither request nor download keys.
    let rsp = post(
        "/users",
        json!({"username": "vic", "password": "a viewer's password", "role": "viewer"}),
    )
    .await
    .unwrap();
    assert_eq!(rsp.status(), 201);
    let viewer: Value = http
        .post(format!("{base}/tokens"))
        .json(&json!({"username": "vic", "password": "a viewer's password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let viewer = viewer["token"].as_str().unwrap().to_string();
    let as_viewer = |req: reqwest::RequestBuilder| req.bearer_auth(&viewer).send();
    let rsp = as_viewer(http.get(format!("{base}/certificates/api-cert"))).await.unwrap();
    assert_eq!(rsp.status(), 200);
    let rsp = as_viewer(http.post(format!("{base}/certificates/api-cert/request"))).await.unwrap();
    assert_eq!(rsp.status(), 403);
    let rsp =
        as_viewer(http.get(format!("{base}/certificates/api-cert/pull?key=true"))).await.unwrap();
    assert_eq!(rsp.status(), 403);

    // A request through the API: 202 with a job that shows its steps, then the new serial.
    let first = env.show("hub").await["serial"].clone();
    let rsp = http
        .post(format!("{base}/certificates/hub/request"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 202);
    let accepted: Value = rsp.json().await.unwrap();
    let status_url = format!("http://127.0.0.1:{port}{}", accepted["status_url"].as_str().unwrap());
    let job =
        certhub_testkit::wait_until("the request job to end", Duration::from_secs(60), || {
            let (http, url, token) = (http.clone(), status_url.clone(), token.clone());
            async move {
                let job: Value =
                    http.get(url).bearer_auth(token).send().await.ok()?.json().await.ok()?;
                (job["status"] != "running").then_some(job)
            }
        })
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["steps"].as_array().unwrap().len() >= 3, "{job}");
    assert_ne!(env.show("hub").await["serial"], first);

    // Every change and every copy of a key are in the audit log, which verifies: the account
    // and certificate added with the CLI; through the API the setup, the admin's token, the
    // key download, the account, the certificate, its request; the CLI's export of that
    // certificate (with its key); its edit, the deployment task added and removed; the
    // viewer, the viewer's token, the settings changed, the challenges replaced, the second
    // request.
    let out = env.ok(&["audit", "verify"]).await;
    assert!(out.contains("intact: 17 entries"), "{out}");

    // SIGTERM: a clean stop.
    let pid = child.id().unwrap();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let status =
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");

    // After a restart the settings changed through the API still win over the flags' defaults,
    // and the finished job can still be read.
    let hub = env.serve(&[], false).await;
    let base = format!("http://127.0.0.1:{}/api/v1", hub.port);
    let get = |path: String| http.get(format!("{base}{path}")).bearer_auth(&token).send();
    let settings: Value = get("/settings".into()).await.unwrap().json().await.unwrap();
    assert_eq!(settings["renewal_policy"], "60%", "{settings}");
    let job_path = status_url.split("/api/v1").nth(1).unwrap().to_string();
    let again: Value = get(job_path).await.unwrap().json().await.unwrap();
    assert_eq!(
        (again["status"].clone(), again["steps"].clone()),
        (job["status"].clone(), job["steps"].clone())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_renews_what_is_due_by_itself() {
    let mut opts = hostile();
    opts.validity_secs = Some(20);
    let env = Env::start(opts).await;
    env.account("le", &[]).await;
    let out_dir = tempfile::TempDir::new().unwrap();
    env.ok(&[
        "cert",
        "add",
        "auto",
        "--account",
        "le",
        "-d",
        "auto.test",
        "--challenge",
        &env.http01(),
        "--deploy",
        &format!("files:dir={}", out_dir.path().display()),
    ])
    .await;
    // Never issued: the hub's first renewal run (at start) requests it.
    let hub = env.serve(&["--check-interval", "1"], true).await;
    let data_dir = env.data_dir().to_path_buf();
    let serial = move || {
        let data_dir = data_dir.clone();
        async move {
            let store = certhub_store::Store::open(&data_dir).await.ok()?;
            let s = store.latest_issued("auto").await.ok()?.map(|i| i.serial_hex);
            store.close().await;
            s
        }
    };
    let first =
        certhub_testkit::wait_until("the hub to issue", Duration::from_secs(60), serial.clone())
            .await;
    // Due after 75% of 20 s: renewed, and deployed, with no command run by hand.
    certhub_testkit::wait_until("the hub to renew", Duration::from_secs(60), || {
        let (serial, first) = (serial.clone(), first.clone());
        async move { serial().await.filter(|s| *s != first) }
    })
    .await;
    assert!(out_dir.path().join("fullchain.pem").exists());
    // It said nothing on stdout after its start banner: its work goes to the log.
    assert_eq!(hub.printed_later(), "", "the hub's stdout stays silent");
    // Each of the hub's own renewals is in the audit log, as done by the hub.
    let store = certhub_store::Store::open(env.data_dir()).await.unwrap();
    let renewals: Vec<_> = store
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "cert.renew" && e.target == "auto")
        .collect();
    assert!(renewals.len() >= 2, "{renewals:?}");
    assert!(renewals.iter().all(|e| e.actor == "hub" && e.source == "renewal service"));
    assert_eq!(renewals[0].detail.as_deref(), Some(first.as_str()));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_serves_https_with_its_own_managed_certificate() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.add_http01("self", "le", "hub.test").await;
    env.ok(&["cert", "request", "self"]).await;
    let both = env.fails(2, &["serve", "--tls-managed", "self", "--tls-cert", "x.pem"]).await;
    assert!(both.contains("cannot be used with") || both.contains("--tls-key"), "{both}");

    let hub = env.serve(&["--tls-managed", "self", "--check-interval", "1"], true).await;
    let port = hub.port;
    assert!(hub.said.contains(&format!("https://127.0.0.1:{port}")), "{}", hub.said);
    let root = reqwest::Certificate::from_pem(env.pebble.root_pem(0).await.as_bytes()).unwrap();
    let https = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([root])
        .resolve("hub.test", std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    let health: Value = https
        .get(format!("https://hub.test:{port}/api/v1/health"))
        .send()
        .await
        .expect("a verified TLS connection to the hub")
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    // Renewed (here by hand): the hub presents the new certificate without a restart.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let root_pem = env.pebble.root_pem(0).await;
    let before = certhub_testkit::nginx::served_chain(addr, "hub.test", &root_pem).await.unwrap();
    env.ok(&["renew", "self"]).await;
    let renewed = shown_serial(&env.show("self").await);
    assert_ne!(serial_of(&before[0]), renewed);
    certhub_testkit::wait_until(
        "the hub to present its renewed certificate",
        Duration::from_secs(30),
        || {
            let root_pem = root_pem.clone();
            let renewed = renewed.clone();
            async move {
                let chain =
                    certhub_testkit::nginx::served_chain(addr, "hub.test", &root_pem).await.ok()?;
                (serial_of(&chain[0]) == renewed).then_some(())
            }
        },
    )
    .await;
    drop(hub);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_tells_its_channels_about_expiry_failures_and_revocation() {
    use std::sync::{Arc, Mutex};
    // A callback endpoint that keeps the events whose signature checks out.
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = events.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let want = certhub_core::Secret::new("s3cr3t").sign_hex(body.as_bytes());
                if headers["x-certhub-signature"] != format!("sha256={want}").as_str() {
                    return axum::http::StatusCode::UNAUTHORIZED;
                }
                seen.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let told = |kind: &'static str, cert: &'static str| {
        let events = events.clone();
        move || {
            let n = events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e["event_type"] == kind && e["cert_name"] == cert)
                .count();
            async move { (n > 0).then_some(n) }
        }
    };

    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    let hub = env.serve(&["--check-interval", "1"], true).await;
    let token = hub.admin_token().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let channel = json!({ "name": "hook", "kind": "callback",
        "config": { "url": url, "secret": "s3cr3t" },
        "events": ["renewal-failed", "expiring", "revoked", "issued"] });
    let rsp = http
        .post(hub.url("/api/v1/notifications"))
        .bearer_auth(&token)
        .json(&channel)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 201, "{}", rsp.text().await.unwrap());
    let test: Value = http
        .post(hub.url("/api/v1/notifications/hook/test"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test["delivered"], true, "{test}");

    // A bought certificate that expires in 10 days: nothing renews it, so it is told, once.
    // It comes in through the API's import.
    let (chain, key, _) = bought_certificate(&["shop.test"], 10, 3);
    let rsp = http
        .post(hub.url("/api/v1/certificates/import"))
        .bearer_auth(&token)
        .json(&json!({ "name": "shop", "cert_pem": chain, "key_pem": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 201);
    let imported: Value = rsp.json().await.unwrap();
    assert!(imported["imported"].as_str().unwrap().contains("Bought Elsewhere"), "{imported}");
    assert_eq!(imported["names"], json!(["shop.test"]));
    let (_, other_key, _) = bought_certificate(&["shop.test"], 10, 4);
    let rsp = http
        .post(hub.url("/api/v1/certificates/import"))
        .bearer_auth(&token)
        .json(&json!({ "name": "shop2", "cert_pem": chain, "key_pem": other_key }))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 400);
    assert!(rsp.text().await.unwrap().contains("does not belong"));
    certhub_testkit::wait_until(
        "the expiry notice",
        Duration::from_secs(30),
        told("cert_expiring", "shop"),
    )
    .await;

    // A certificate nobody can validate: its failures are told once, after three in a row.
    let nowhere = format!("http-01:listen=127.0.0.1:{}", certhub_testkit::free_port());
    env.ok(&[
        "cert",
        "add",
        "broken",
        "--account",
        "le",
        "-d",
        "broken.test",
        "--challenge",
        &nowhere,
    ])
    .await;
    for _ in 0..20 {
        if env.show("broken").await["renewal"]["failures"].as_i64().unwrap_or(0) >= 4 {
            break;
        }
        env.run(&["cert", "request", "broken", "--timeout", "60"]).await;
    }
    assert!(env.show("broken").await["renewal"]["failures"].as_i64().unwrap() >= 4);
    certhub_testkit::wait_until(
        "the renewal failure notice",
        Duration::from_secs(30),
        told("cert_renewal_failed", "broken"),
    )
    .await;

    // Issued (by the hub itself: a certificate never issued is due), then revoked: both told.
    env.add_http01("web", "le", "web.test").await;
    certhub_testkit::wait_until(
        "the issue notice",
        Duration::from_secs(60),
        told("cert_issued", "web"),
    )
    .await;
    env.ok(&["cert", "revoke", "web"]).await;
    certhub_testkit::wait_until(
        "the revocation notice",
        Duration::from_secs(30),
        told("cert_revoked", "web"),
    )
    .await;
    // By then every earlier event has been handled: each notice came once.
    let events = events.lock().unwrap().clone();
    let count = |kind: &str| events.iter().filter(|e| e["event_type"] == kind).count();
    assert_eq!(count("cert_expiring"), 1, "{events:#?}");
    assert_eq!(count("cert_renewal_failed"), 1, "{events:#?}");
    assert_eq!(count("cert_issued"), 1, "{events:#?}");
    assert_eq!(count("cert_test"), 1, "{events:#?}");
    drop(hub);
}
