//! The hub (`certhub serve`): its API, setup, roles, jobs, own renewals, HTTPS, a clean stop.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{serial_of, shown_serial};
use crate::support::{self, Env, hostile};

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_serves_a_certificate_to_a_token_holder_and_stops_cleanly() {
    let env = Env::start(hostile()).await;
    env.account("le", &[]).await;
    env.add_http01("hub", "le", "hub.test").await;
    env.ok(&["cert", "request", "hub"]).await;

    let hub = env.serve(&[], true).await;
    let (port, said) = (hub.port, hub.said.clone());
    // Not on a terminal, the token goes to a private file, never to the (logged) output.
    let token_file = env.data_dir().join("setup-token");
    assert!(said.contains(&token_file.display().to_string()), "{said}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let setup_token = hub.setup_token.clone().unwrap();
    assert!(!said.contains(&setup_token), "the token is not in the output");
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // Set up with that token (201), then signed in.
    let token = hub.admin_token().await;
    assert!(!token_file.exists(), "the spent setup token is removed at once");
    let mut child = hub.child;
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
    let get_json = |path: &str| {
        let req = http.get(format!("{base}{path}")).bearer_auth(&token);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
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
    let shown = get_json("/certificates/api-cert").await;
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
    let listed = get_json("/certificates/api-cert/deployments").await;
    assert_eq!(listed["items"][0]["name"], "pem", "{listed}");
    let rsp = http
        .delete(format!("{base}/certificates/api-cert/deployments/pem"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 204);
    let plan = get_json("/certificates/api-cert/preview").await;
    assert!(
        plan["summary"][0].as_str().unwrap().starts_with("Requesting api-cert would"),
        "{plan}"
    );
    let settings = get_json("/settings").await;
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
    let challenges = get_json("/certificates/api-cert/challenges").await;
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

/// Behind a proxy that ends TLS, the hub speaks plain HTTP but browsers use HTTPS: an
/// https:// --public-url makes its cookies Secure and sends Strict-Transport-Security.
#[tokio::test(flavor = "multi_thread")]
async fn an_https_public_url_makes_cookies_secure_behind_a_proxy_that_ends_tls() {
    let env = Env::start(hostile()).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for (extra, secure) in [(&[][..], false), (&["--public-url", "https://hub.example"][..], true)]
    {
        let hub = env.serve(extra, !secure).await;
        if !secure {
            // A user, so that /login is the sign-in page rather than the way to setup.
            hub.admin_token().await;
        }
        let rsp = http.get(hub.url("/login")).send().await.unwrap();
        assert_eq!(rsp.status(), 200);
        let cookie = rsp.headers()["set-cookie"].to_str().unwrap().to_string();
        assert_eq!(cookie.contains("; Secure"), secure, "{extra:?}: {cookie}");
        let hsts = rsp.headers().contains_key("strict-transport-security");
        assert_eq!(hsts, secure, "{extra:?}: Strict-Transport-Security");
        drop(hub);
    }
}
