//! Each challenge type against Pebble and BIND: http-01, tls-alpn-01, dns-01, IP identifiers.

use serde_json::Value;

use crate::common::{names, set, walk, webroot_site};
use crate::support::{Env, hostile, script};

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
    env.add_cert("alpn", "le", "alpn.test", &env.tls_alpn01()).await;
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
    env.add_cert("cname", "le", "cn.test", &env.rfc2136()).await;
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
    env.add_cert("broken", "le", "broken.test", &spec).await;
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
    let hook = crate::support::nsupdate_hook(
        &env,
        dir.path(),
        &format!(r#"echo "$@" >> {}"#, log.display()),
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
    // Which certificate asks, in which format.
    assert_eq!(
        (events[0]["cert_name"].as_str(), events[0]["version"].as_u64()),
        (Some("cb"), Some(1))
    );

    // A channel named once (its URL and secret kept as a credential) serves any certificate.
    let input = format!("secret=s3cret\nurl={}\n", receiver.url);
    let add = ["credential", "add", "hooks", "--kind", "callback"];
    crate::credentials::with_input(&env, &add, &input, &[]).await;
    let channel = "dns-01:channel=hooks";
    env.ok(&["cert", "add", "cb2", "--account", "le", "-d", "cb2.test", "--challenge", channel])
        .await;
    let preview = env.ok(&["cert", "preview", "cb2"]).await;
    assert!(preview.contains("callback channel hooks"), "{preview}");
    env.ok(&["cert", "request", "cb2"]).await;
    env.verify_issued("cb2", &["cb2.test"]).await;
    let events = receiver.events();
    let asked: Vec<&str> = events.iter().filter_map(|e| e["cert_name"].as_str()).collect();
    assert_eq!(asked, ["cb", "cb", "cb2", "cb2"], "{events:?}");
    // A channel credential without a URL is refused where it is named.
    crate::credentials::with_input(
        &env,
        &["credential", "add", "bare", "--kind", "callback"],
        "k3y\n",
        &[],
    )
    .await;
    let said = env
        .fails(
            3,
            &[
                "cert",
                "add",
                "cb3",
                "--account",
                "le",
                "-d",
                "cb3.test",
                "--challenge",
                "dns-01:channel=bare",
            ],
        )
        .await;
    assert!(said.contains("credential bare has no url"), "{said}");
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
