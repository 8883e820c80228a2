//! The API through its router, on a real store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use certhub_server::{AppState, ROUTES, router};
use certhub_store::{AccountRecord, CertRecord, IssuedRecord, Store};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Hub {
    app: axum::Router,
    store: Store,
    setup_token: String,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let state = AppState::new(store.clone());
        let setup_token = state.setup_token_if_needed().await.unwrap().expect("a setup token");
        Hub { app: router(state), store, setup_token, _dir: dir }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => {
                req.header("content-type", "application/json").body(Body::from(b.to_string()))
            }
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    /// Sends `req`: the status, the content type and the body.
    async fn send(&self, req: Request<Body>) -> (StatusCode, String, Vec<u8>) {
        let rsp = self.app.clone().oneshot(req).await.unwrap();
        let status = rsp.status();
        let ctype = rsp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, ctype, rsp.into_body().collect().await.unwrap().to_bytes().to_vec())
    }

    async fn call_with(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn json(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, ctype, bytes) = self.call(method, uri, token, body).await;
        if !status.is_success() {
            assert_eq!(ctype, "application/problem+json", "{uri}: errors are problem documents");
        }
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn set_up(&self) -> String {
        let (status, _) = self
            .json(
                "POST",
                "/api/v1/setup",
                None,
                Some(json!({"token": self.setup_token, "username": "ada", "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        self.token("ada", "correct horse battery", None).await
    }

    async fn token(&self, user: &str, password: &str, scopes: Option<Value>) -> String {
        let mut body = json!({"username": user, "password": password, "label": "test"});
        if let Some(s) = scopes {
            body["scopes"] = s;
        }
        let (status, v) = self.json("POST", "/api/v1/tokens", None, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// A certificate "web" with a real chain and key, as if issued.
    async fn issued_certificate(&self) -> (Vec<u8>, Vec<u8>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["web.test".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        self.store
            .insert_account(&AccountRecord {
                name: "le".into(),
                directory_url: "https://ca.test/dir".into(),
                ca_bundle_pem: None,
                email: None,
                key_type: "ec-p256".into(),
                key_pkcs8: zeroize::Zeroizing::new(vec![1]),
                account_url: None,
                status: "valid".into(),
                eab_kid: None,
                created_at: 0,
                updated_at: 0,
            })
            .await
            .unwrap();
        for name in ["web", "api", "mail"] {
            self.store
                .insert_cert(
                    &CertRecord {
                        name: name.into(),
                        account_name: Some("le".into()),
                        identifiers: vec![certhub_core::Identifier::Dns(format!("{name}.test"))],
                        key_type: "ec-p256".into(),
                        challenges: Vec::new(),
                        ..CertRecord::default()
                    },
                    None,
                )
                .await
                .unwrap();
        }
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
                as i64;
        self.store
            .insert_issued(
                &IssuedRecord {
                    id: 0,
                    cert_name: "web".into(),
                    order_id: None,
                    serial_hex: "0a".into(),
                    issuer: "Test CA".into(),
                    sans: vec![certhub_core::Identifier::Dns("web.test".into())],
                    not_before: (now - 60) * 1000,
                    not_after: (now + 86_400) * 1000,
                    chain_pem: format!("{}{}", leaf.pem(), ca_cert.pem()),
                    key_type: "ec-p256".into(),
                    key_pkcs8: zeroize::Zeroizing::new(key.serialize_der()),
                    revoked_at: None,
                    revocation_reason: None,
                    created_at: 0,
                },
                None,
            )
            .await
            .unwrap();
        self.store.set_cert_state("web", certhub_store::CertState::Valid, None).await.unwrap();
        (leaf.der().to_vec(), key.serialize_der())
    }
}

#[tokio::test]
async fn nothing_is_open_before_setup_and_setup_happens_once() {
    {
        let hub = Hub::start().await;
        let (status, v) = hub.json("GET", "/api/v1/ready", None, None).await;
        assert_eq!((status, v["status"].as_str()), (StatusCode::OK, Some("ready")), "{v}");
    }
    let hub = Hub::start().await;
    let (status, v) = hub.json("GET", "/api/v1/health", None, None).await;
    assert_eq!((status, &v["setup_required"]), (StatusCode::OK, &json!(true)));
    let (status, v) = hub.json("GET", "/api/v1/certificates", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");

    let bad = json!({"token": "nope", "username": "ada", "password": "correct horse battery"});
    let (status, _) = hub.json("POST", "/api/v1/setup", None, Some(bad)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let short = json!({"token": hub.setup_token, "username": "ada", "password": "short"});
    let (status, v) = hub.json("POST", "/api/v1/setup", None, Some(short)).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("password")), "{v}");
    let missing = json!({"token": hub.setup_token, "password": "correct horse battery"});
    let (status, v) = hub.json("POST", "/api/v1/setup", None, Some(missing)).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("username")), "{v}");

    // Two setups at once with the token: one admin, not two.
    let setup = |user: &str| json!({"token": hub.setup_token, "username": user, "password": "correct horse battery"});
    let (a, b) = tokio::join!(
        hub.json("POST", "/api/v1/setup", None, Some(setup("ada"))),
        hub.json("POST", "/api/v1/setup", None, Some(setup("mallory"))),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::UNAUTHORIZED]);
    assert_eq!(hub.store.user_count().await.unwrap(), 1);
    let again =
        json!({"token": hub.setup_token, "username": "eve", "password": "correct horse battery"});
    let (status, _) = hub.json("POST", "/api/v1/setup", None, Some(again)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, v) = hub.json("GET", "/api/v1/health", None, None).await;
    assert_eq!(v["setup_required"], json!(false));
}

#[tokio::test]
async fn sign_in_is_rate_limited_and_tokens_work_until_they_do_not() {
    let hub = Hub::start().await;
    let admin = hub.set_up().await;
    for _ in 0..5 {
        let wrong = json!({"username": "ada", "password": "wrong password!!"});
        let (status, _) = hub.json("POST", "/api/v1/tokens", None, Some(wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let right = json!({"username": "ada", "password": "correct horse battery"});
    let (status, v) = hub.json("POST", "/api/v1/tokens", None, Some(right)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // Earlier tokens still work; a forged one does not.
    let (status, _) = hub.json("GET", "/api/v1/certificates", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let forged = format!("{}x", &admin[..admin.len() - 1]);
    let (status, _) = hub.json("GET", "/api/v1/certificates", Some(&forged), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = hub.json("GET", "/api/v1/certificates", Some("not-a-token"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn certificates_list_filter_page_and_pull() {
    let hub = Hub::start().await;
    let admin = hub.set_up().await;
    let (leaf, key) = hub.issued_certificate().await;

    let (_, v) = hub.json("GET", "/api/v1/certificates", Some(&admin), None).await;
    assert_eq!(v["total"], 3);
    let names: Vec<&str> =
        v["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["api", "mail", "web"]);
    let (_, v) = hub.json("GET", "/api/v1/certificates?state=valid", Some(&admin), None).await;
    assert_eq!((v["total"].clone(), v["items"][0]["serial"].clone()), (json!(1), json!("0a")));
    let (_, v) = hub.json("GET", "/api/v1/certificates?q=MAIL", Some(&admin), None).await;
    assert_eq!(v["items"][0]["name"], "mail");
    let (_, v) =
        hub.json("GET", "/api/v1/certificates?per_page=2&page=2", Some(&admin), None).await;
    assert_eq!((v["items"].as_array().unwrap().len(), v["total"].clone()), (1, json!(3)));
    let (status, v) = hub.json("GET", "/api/v1/certificates?per_page=0", Some(&admin), None).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("per_page")));
    let (status, v) = hub.json("GET", "/api/v1/certificates/nope", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (_, v) = hub.json("GET", "/api/v1/certificates/web", Some(&admin), None).await;
    assert_eq!(v["identifiers"], json!(["web.test"]));

    // The pull endpoint: the chain, and the key only when asked and allowed.
    let (status, ctype, body) =
        hub.call("GET", "/api/v1/certificates/web/pull", Some(&admin), None).await;
    assert_eq!((status, ctype.as_str()), (StatusCode::OK, "application/x-pem-file"));
    let blocks = pem::parse_many(&body).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].contents(), leaf.as_slice());
    let (_, _, body) =
        hub.call("GET", "/api/v1/certificates/web/pull?key=true", Some(&admin), None).await;
    let blocks = pem::parse_many(&body).unwrap();
    assert_eq!(blocks.last().unwrap().contents(), key.as_slice());
    let (status, v) =
        hub.json("GET", "/api/v1/certificates/web/pull?format=pkcs12", Some(&admin), None).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("x-pkcs12-password")));
    let (status, _) = hub
        .json("GET", "/api/v1/certificates/web/pull?format=pkcs12&password=pw", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "never a password in the URL");
    let (status, ctype, body) = hub
        .call_with(
            "GET",
            "/api/v1/certificates/web/pull?format=pkcs12",
            Some(&admin),
            &[("x-pkcs12-password", "pw")],
        )
        .await;
    assert_eq!((status, ctype.as_str()), (StatusCode::OK, "application/x-pkcs12"));
    let contents = certhub_deploy::pkcs12::read(&body, "pw").unwrap();
    assert_eq!(contents.chain_der[0], leaf);
    let (status, _) = hub.json("GET", "/api/v1/certificates/api/pull", Some(&admin), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "not issued yet");
    let (status, _) = hub.json("DELETE", "/api/v1/certificates/mail", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = hub.json("GET", "/api/v1/certificates/mail", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Key downloads are audited, and the chain verifies.
    let (_, v) = hub.json("GET", "/api/v1/audit", Some(&admin), None).await;
    let actions: Vec<&str> =
        v["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["user.create", "token.create", "cert.key-download", "cert.key-download", "cert.delete"]
    );
    let (_, v) = hub.json("GET", "/api/v1/audit/verify", Some(&admin), None).await;
    assert_eq!(v, json!({"intact": true, "entries": 5}));
}

#[tokio::test]
async fn settings_change_field_by_field_and_outlive_the_process() {
    let hub = Hub::start().await;
    let admin = hub.set_up().await;
    let (_, v) = hub.json("GET", "/api/v1/settings", Some(&admin), None).await;
    assert_eq!(
        v,
        json!({"renewal_policy": "75%", "check_interval_seconds": 300, "expiry_warning_days": 30, "renewal_workers": 4})
    );
    for (body, field) in [
        (json!({"renewal_policy": "often"}), "renewal_policy"),
        (json!({"check_interval_seconds": 0}), "check_interval_seconds"),
        (json!({"expiry_warning_days": 9999}), "expiry_warning_days"),
        (json!({"renewal_workers": 0}), "renewal_workers"),
        (json!({"renewal_policy": "30d", "colour": "blue"}), "colour"),
    ] {
        let (status, v) = hub.json("PATCH", "/api/v1/settings", Some(&admin), Some(body)).await;
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{v}");
    }
    let new_user = json!({"username": "vic", "password": "viewer password 1", "role": "viewer"});
    hub.json("POST", "/api/v1/users", Some(&admin), Some(new_user)).await;
    let viewer = hub.token("vic", "viewer password 1", None).await;
    let change = json!({"renewal_policy": "30d", "renewal_workers": 16});
    let (status, _) =
        hub.json("PATCH", "/api/v1/settings", Some(&viewer), Some(change.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = hub.json("PATCH", "/api/v1/settings", Some(&admin), Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["renewal_policy"].as_str(), v["renewal_workers"].as_u64()),
        (Some("30d"), Some(16))
    );
    let (_, v) = hub.json("GET", "/api/v1/audit", Some(&admin), None).await;
    let last = v["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "settings.update", "{last}");
    assert_eq!(last["detail"], "renewal policy 30d, 16 renewal workers", "{last}");

    // The next start: what was changed wins over the flags, the rest follows them.
    let flags = certhub_server::Settings { check_interval_secs: 60, ..Default::default() };
    let next = certhub_server::SharedSettings::load(&hub.store, flags).await.unwrap();
    let now = next.get();
    assert_eq!(
        (now.policy.as_str(), now.renewal_workers, now.check_interval_secs),
        ("30d", 16, 60)
    );
}

#[tokio::test]
async fn challenge_configurations_are_listed_without_their_credentials() {
    let hub = Hub::start().await;
    let admin = hub.set_up().await;
    hub.issued_certificate().await;
    let mut web = hub.store.cert("web").await.unwrap().unwrap();
    let specs: Vec<certhub_core::ChallengeSpec> = [
        "dns-01:rfc2136=127.0.0.1:53,key-name=certhub,key-secret=c2VjcmV0;domains=*.test",
        "http-01:webroot=/var/www",
    ]
    .iter()
    .map(|s| certhub_core::ChallengeSpec::parse(s).unwrap())
    .collect();
    web.challenges = specs;
    hub.store.update_cert(&web, None).await.unwrap();
    let (status, v) =
        hub.json("GET", "/api/v1/certificates/web/challenges", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!v.to_string().contains("c2VjcmV0"), "the TSIG secret stays out: {v}");
    // web.test matches the first pattern, but dns-01 fits it: the first fitting one validates.
    assert_eq!(v["items"][0]["challenge"], "dns-01", "{v}");
    assert_eq!(v["items"][0]["applies_to"], json!(["*.test"]), "{v}");
    assert_eq!(v["items"][0]["validates"], json!(["web.test"]), "{v}");
    assert_eq!(v["items"][1]["validates"], json!([]), "{v}");
    let (status, _) =
        hub.json("GET", "/api/v1/certificates/nope/challenges", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body = json!({"specs": []});
    let (status, v) =
        hub.json("PUT", "/api/v1/certificates/web/challenges", Some(&admin), Some(body)).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("specs")));
    // A certificate whose stored configurations validate none of its names says so.
    let (status, v) =
        hub.json("GET", "/api/v1/certificates/api/challenges", Some(&admin), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("api.test") && detail.contains("PUT"), "{v}");
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_download_keys_or_administer() {
    let hub = Hub::start().await;
    let admin = hub.set_up().await;
    hub.issued_certificate().await;
    let new_user = json!({"username": "vic", "password": "viewer password 1", "role": "viewer"});
    let (status, _) = hub.json("POST", "/api/v1/users", Some(&admin), Some(new_user)).await;
    assert_eq!(status, StatusCode::CREATED);
    let bad_role = json!({"username": "x", "password": "viewer password 1", "role": "root"});
    let (status, v) = hub.json("POST", "/api/v1/users", Some(&admin), Some(bad_role)).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("role")));

    let asks_key =
        json!({"username": "vic", "password": "viewer password 1", "scopes": ["cert:key"]});
    let (status, v) = hub.json("POST", "/api/v1/tokens", None, Some(asks_key)).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scopes")), "{v}");
    let viewer = hub.token("vic", "viewer password 1", None).await;
    let (status, _) = hub.json("GET", "/api/v1/certificates/web", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) =
        hub.call("GET", "/api/v1/certificates/web/pull", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) =
        hub.json("GET", "/api/v1/certificates/web/pull?key=true", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("operator"), "{v}");
    let (status, _) = hub.json("GET", "/api/v1/audit", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let more = json!({"username": "eve", "password": "viewer password 1", "role": "admin"});
    let (status, _) = hub.json("POST", "/api/v1/users", Some(&viewer), Some(more)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Tokens: one's own are listed and revocable; others' only by an admin.
    let (_, v) = hub.json("GET", "/api/v1/tokens", Some(&viewer), None).await;
    let mine: Vec<&str> =
        v["items"].as_array().unwrap().iter().map(|t| t["user"].as_str().unwrap()).collect();
    assert_eq!(mine, ["vic"]);
    let viewer_id = v["items"][0]["id"].as_str().unwrap().to_string();
    let (_, v) = hub.json("GET", "/api/v1/tokens", Some(&admin), None).await;
    let admin_id =
        v["items"].as_array().unwrap().iter().find(|t| t["user"] == "ada").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
    let (status, _) =
        hub.json("DELETE", &format!("/api/v1/tokens/{admin_id}"), Some(&viewer), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a viewer cannot touch the admin's token");
    let (status, _) = hub.json("DELETE", "/api/v1/certificates/web", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        hub.json("DELETE", &format!("/api/v1/tokens/{viewer_id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = hub.json("GET", "/api/v1/certificates", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked token no longer works");

    // An admin's token narrowed to reading cannot download keys either.
    let reader = hub.token("ada", "correct horse battery", Some(json!(["cert:read"]))).await;
    let (status, v) =
        hub.json("GET", "/api/v1/certificates/web/pull?key=true", Some(&reader), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["detail"].as_str().unwrap().contains("cert:key"), "{v}");
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let hub = Hub::start().await;
    let admin = hub.set_up().await;
    hub.issued_certificate().await;
    let (_, doc) = hub.json("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.values().map(|p| p.as_object().unwrap().len()).sum::<usize>(), ROUTES.len());
    for (method, path, _, _) in ROUTES {
        assert!(paths[*path][*method].is_object(), "{method} {path} documented");
        let uri = path.replace("{name}", "web").replace("{id}", "0");
        let (status, _, body) =
            hub.call(&method.to_uppercase(), &uri, Some(&admin), Some(json!({}))).await;
        // A route's own 404 (no such job) names the thing; only the fallback says "endpoint".
        let fallback = String::from_utf8_lossy(&body).contains("no such endpoint");
        assert!(
            !fallback && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is served ({status})"
        );
    }
    let (status, ctype, _) = hub.call("GET", "/api/v1/nothing-here", Some(&admin), None).await;
    assert_eq!((status, ctype.as_str()), (StatusCode::NOT_FOUND, "application/problem+json"));
}

#[tokio::test]
async fn sign_in_limits_count_failures_only_and_failures_are_audited() {
    let hub = Hub::start().await;
    let admin = hub.set_up().await;
    // Many good sign-ins in a row are never refused.
    for _ in 0..25 {
        hub.token("ada", "correct horse battery", None).await;
    }
    let wrong = json!({"username": "ada", "password": "wrong guess"});
    for _ in 0..5 {
        let (status, _) = hub.json("POST", "/api/v1/tokens", None, Some(wrong.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, v) = hub.json("POST", "/api/v1/tokens", None, Some(wrong.clone())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let (_, v) = hub.json("GET", "/api/v1/audit?limit=1000", Some(&admin), None).await;
    let failures = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "sign-in.fail" && e["target"] == "ada")
        .count();
    assert_eq!(failures, 5, "each failed sign-in is audited, refused ones are not: {v}");
}

#[tokio::test]
async fn admins_disable_demote_and_remove_users_and_everyone_changes_their_own_password() {
    let hub = Hub::start().await;
    let admin = hub.set_up().await;
    let new_user = json!({"username": "otto", "password": "operator password", "role": "operator"});
    let (status, _) = hub.json("POST", "/api/v1/users", Some(&admin), Some(new_user)).await;
    assert_eq!(status, StatusCode::CREATED);
    let otto = hub.token("otto", "operator password", None).await;
    let (status, _) = hub.json("GET", "/api/v1/certificates", Some(&otto), None).await;
    assert_eq!(status, StatusCode::OK);

    // Disabled: the token stops at once, and signing in says why.
    let off = json!({"disabled": true});
    let (status, v) = hub.json("PATCH", "/api/v1/users/otto", Some(&admin), Some(off)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["disabled_at"].is_string(), "{v}");
    let (status, _) = hub.json("GET", "/api/v1/certificates", Some(&otto), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let again = json!({"username": "otto", "password": "operator password", "label": "x"});
    let (status, v) = hub.json("POST", "/api/v1/tokens", None, Some(again)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(v["detail"].as_str().unwrap_or_default().contains("disabled"), "{v}");
    let on = json!({"disabled": false, "role": "viewer"});
    let (status, v) = hub.json("PATCH", "/api/v1/users/otto", Some(&admin), Some(on)).await;
    assert_eq!((status, v["role"].as_str()), (StatusCode::OK, Some("viewer")), "{v}");
    let (status, _) = hub.json("POST", "/api/v1/certificates/web/request", Some(&otto), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the new role holds at once");

    // The admin neither disables, demotes nor removes themselves; nobody removes the last.
    for (method, body) in [
        ("PATCH", Some(json!({"disabled": true}))),
        ("PATCH", Some(json!({"role": "viewer"}))),
        ("DELETE", None),
    ] {
        let (status, v) = hub.json(method, "/api/v1/users/ada", Some(&admin), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {v}");
    }
    let (status, _) =
        hub.json("PATCH", "/api/v1/users/otto", Some(&otto), Some(json!({"role": "admin"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // One's own password, given the current one.
    let wrong =
        json!({"current_password": "not it at all", "new_password": "a brand new password"});
    let (status, v) = hub.json("PUT", "/api/v1/me/password", Some(&otto), Some(wrong)).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("current_password")));
    let right =
        json!({"current_password": "operator password", "new_password": "a brand new password"});
    let (status, _) = hub.json("PUT", "/api/v1/me/password", Some(&otto), Some(right)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    hub.token("otto", "a brand new password", None).await;

    // Removed: gone with their tokens; audited throughout.
    let (status, _) = hub.json("DELETE", "/api/v1/users/otto", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = hub.json("GET", "/api/v1/certificates", Some(&otto), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = hub.json("DELETE", "/api/v1/users/otto", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = hub.json("GET", "/api/v1/audit", Some(&admin), None).await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["user.disable", "user.enable", "user.role", "user.password", "user.remove"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}
