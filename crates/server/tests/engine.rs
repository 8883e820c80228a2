//! The API through its router with a real engine whose CA is scripted (the fake CA): what
//! the engine says reaches the caller whole. An invalid change names its field; a request
//! runs as a job whose failure carries the same problem document a request answered at once
//! would (its kind, the CA's own document, Retry-After); the certificate then shows whether
//! automatic retries stopped.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use certhub_server::{AppState, Engine, router};
use certhub_store::Store;
use certhub_testkit::fake_ca::{FakeCa, Scripted};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Hub {
    app: axum::Router,
    ca: FakeCa,
    token: String,
    _dir: tempfile::TempDir,
}

impl Hub {
    /// A set-up hub with an engine, an account `main` at the fake CA and a certificate `web`.
    async fn start() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        // A request the fake CA refuses fails at once (no tries again within it).
        let acme = certhub_acme::ClientConfig { retries: 0, ..Default::default() };
        let config = certhub_engine::Config {
            data_dir: dir.path().to_path_buf(),
            acme,
            ..Default::default()
        };
        let engine = Engine::with_settings(
            store.clone(),
            config,
            certhub_engine::SharedSettings::new(certhub_engine::Settings::default()),
        );
        let state = AppState::new(store).with_engine(Arc::new(engine));
        let setup = state.setup_token_if_needed().await.unwrap().expect("a setup token");
        let mut hub =
            Hub { app: router(state), ca: FakeCa::start().await, token: String::new(), _dir: dir };
        let password = "correct horse battery";
        let (status, v) = hub
            .call(
                "POST",
                "/api/v1/setup",
                json!({"token": setup, "username": "ada", "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let (status, v) = hub
            .call("POST", "/api/v1/tokens", json!({"username": "ada", "password": password}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        hub.token = v["token"].as_str().unwrap().to_string();
        let account = json!({"name": "main", "directory": hub.ca.url, "agree_tos": true});
        let (status, v) = hub.call("POST", "/api/v1/accounts", account).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let cert = json!({
            "name": "web",
            "account": "main",
            "domains": ["web.test"],
            "challenges": ["http-01:listen=127.0.0.1:0"],
        });
        let (status, v) = hub.call("POST", "/api/v1/certificates", cert).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(
            (v["state"].as_str(), v["renewal"]["retries_stopped"].as_bool()),
            (Some("pending"), Some(false)),
            "{v}"
        );
        hub
    }

    /// Sends a request (with the hub's token once it has one): the status and the JSON body.
    async fn call(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if !self.token.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let req = if body.is_null() {
            req.body(Body::empty())
        } else {
            req.header("content-type", "application/json").body(Body::from(body.to_string()))
        }
        .unwrap();
        let rsp = self.app.clone().oneshot(req).await.unwrap();
        let status = rsp.status();
        let retry_after = rsp.headers().get("retry-after").cloned();
        let bytes = rsp.into_body().collect().await.unwrap().to_bytes();
        let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(r) = retry_after {
            v["retry-after header"] = json!(r.to_str().unwrap());
        }
        (status, v)
    }

    /// Requests `web` as a job and waits for its end: the job.
    async fn request(&self) -> Value {
        let (status, v) = self.call("POST", "/api/v1/certificates/web/request", Value::Null).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        let url = v["status_url"].as_str().unwrap().to_string();
        // A bound for a broken engine, not a timing: the scripted CA answers at once.
        for _ in 0..600 {
            let (status, job) = self.call("GET", &url, Value::Null).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if job["status"] != "running" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the job {url} never ended");
    }

    /// The CA answers the next newOrder with `status` and an ACME problem of `kind`.
    fn refuse(&self, status: u16, kind: &str, retry_after: Option<&str>) {
        self.ca.state.lock().unwrap().order_failures.push_back(Scripted {
            status,
            body: json!({
                "type": format!("urn:ietf:params:acme:error:{kind}"),
                "detail": format!("scripted {kind}"),
            })
            .to_string(),
            content_type: "application/problem+json",
            retry_after: retry_after.map(str::to_string),
        });
    }
}

#[tokio::test]
async fn an_invalid_change_names_its_field_and_a_taken_name_is_a_conflict() {
    let hub = Hub::start().await;
    let (status, v) =
        hub.call("PATCH", "/api/v1/certificates/web", json!({"renew_at": "sometimes"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "renew_at", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("sometimes"), "{v}");
    let (status, v) =
        hub.call("PATCH", "/api/v1/certificates/web", json!({"fallback_account": "nobody"})).await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("fallback_account")),
        "{v}"
    );
    let again = json!({"name": "web", "account": "main", "domains": ["other.test"],
        "challenges": ["http-01:listen=127.0.0.1:0"]});
    let (status, v) = hub.call("POST", "/api/v1/certificates", again).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(v["type"].as_str().unwrap().ends_with("/conflict"), "{v}");
    // A change that works says what changed, beside the certificate.
    let (status, v) =
        hub.call("PATCH", "/api/v1/certificates/web", json!({"renew_at": "30d"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["name"].as_str(), v["renewal"]["policy"].as_str()), (Some("web"), Some("30d")));
    assert!(!v["changed"].as_array().unwrap().is_empty(), "{v}");
    // The preview is the engine's typed plan, with its summary.
    let (status, v) = hub.call("GET", "/api/v1/certificates/web/preview", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["ca"]["account"].as_str(), v["ca"]["fallback"].as_bool()),
        (Some("main"), Some(false))
    );
    assert_eq!(v["validation"][0]["challenge"], "http-01", "{v}");
    assert!(v["summary"][0].as_str().unwrap().starts_with("Requesting web would:"), "{v}");
}

#[tokio::test]
async fn a_failed_request_job_carries_the_error_kind_the_cas_problem_and_retry_after() {
    let hub = Hub::start().await;

    // Refused for good: the job's error is the problem a request answered at once would be.
    hub.refuse(400, "rejectedIdentifier", None);
    let job = hub.request().await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = &job["error"];
    assert!(error["type"].as_str().unwrap().ends_with("/ca-refused"), "{job}");
    assert_eq!(error["status"], 502, "{job}");
    assert_eq!(error["ca_problem"]["type"], "urn:ietf:params:acme:error:rejectedIdentifier");
    assert_eq!(error["ca_problem"]["detail"], "scripted rejectedIdentifier");
    assert!(job["result"].as_str().unwrap().contains("rejectedIdentifier"), "{job}");
    let (_, cert) = hub.call("GET", "/api/v1/certificates/web", Value::Null).await;
    assert_eq!(cert["renewal"]["retries_stopped"], true, "{cert}");
    assert_eq!(cert["renewal"]["next_attempt"], Value::Null, "{cert}");
    assert!(cert["last_error"].as_str().unwrap().contains("rejectedIdentifier"), "{cert}");

    // A request by hand still runs; a transient failure keeps the CA's Retry-After.
    hub.refuse(429, "rateLimited", Some("7200"));
    let job = hub.request().await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = &job["error"];
    assert!(error["type"].as_str().unwrap().ends_with("/unavailable"), "{job}");
    assert_eq!(error["status"], 503, "{job}");
    // The wait counts from when the job ended, read just after.
    let left = error["retry_after"].as_u64().unwrap();
    assert!((7_190..=7_200).contains(&left), "{job}");
    assert_eq!(error["ca_problem"]["type"], "urn:ietf:params:acme:error:rateLimited", "{job}");
    let (_, cert) = hub.call("GET", "/api/v1/certificates/web", Value::Null).await;
    assert_eq!(cert["renewal"]["retries_stopped"], false, "{cert}");
    assert!(cert["renewal"]["next_attempt"].is_string(), "{cert}");
}

#[tokio::test]
async fn an_error_answered_at_once_carries_the_cas_problem_and_retry_after_header() {
    let hub = Hub::start().await;
    // Revoking needs an issued certificate, and there is none yet.
    let (status, v) = hub.call("POST", "/api/v1/certificates/web/revoke", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("no issued certificate"), "{v}");
    // A CA that refuses a new account, for now, with Retry-After: the answer says when to
    // come back, in the body and in the header.
    hub.ca.state.lock().unwrap().account_failures.push_back(Scripted {
        status: 503,
        body: json!({"type": "urn:ietf:params:acme:error:serverInternal", "detail": "scripted outage"})
            .to_string(),
        content_type: "application/problem+json",
        retry_after: Some("60".into()),
    });
    // A directory that does not answer is the directory's fault, named so.
    let nowhere =
        json!({"name": "second", "directory": "http://127.0.0.1:9/dir", "agree_tos": true});
    let (status, v) = hub.call("POST", "/api/v1/accounts", nowhere).await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("directory")),
        "{v}"
    );
    // A CA bundle that holds no certificate is the bundle's fault.
    let bad = json!({"name": "second", "directory": hub.ca.url, "agree_tos": true,
        "ca_bundle_pem": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"});
    let (status, v) = hub.call("POST", "/api/v1/accounts", bad).await;
    assert_eq!(
        (status, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ca_bundle_pem")),
        "{v}"
    );
    let account = json!({"name": "second", "directory": hub.ca.url, "agree_tos": true});
    let (status, v) = hub.call("POST", "/api/v1/accounts", account).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["retry_after"], 60, "{v}");
    assert_eq!(v["retry-after header"], "60", "{v}");
    assert_eq!(v["ca_problem"]["detail"], "scripted outage", "{v}");
}

#[tokio::test]
async fn a_credential_is_kept_without_showing_its_secret_rotated_and_kept_while_used() {
    let hub = Hub::start().await;
    let tsig = json!({
        "name": "dns",
        "kind": "tsig",
        "fields": { "key-name": "acme", "key-secret": "c2VjcmV0LW9uZQ==" },
    });
    let (status, v) = hub.call("POST", "/api/v1/credentials", tsig.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["fields"], json!({ "key-name": "acme", "key-secret": "(secret)" }), "{v}");
    let (status, _) = hub.call("POST", "/api/v1/credentials", tsig).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Bad input names its field and keeps nothing.
    for (body, field) in [
        (json!({"name": "x", "kind": "cloudfare", "fields": {}}), "kind"),
        (json!({"name": "x", "kind": "cloudflare", "fields": {}}), "fields"),
        (json!({"name": "x", "kind": "tsig", "fields": {"key-name": "k"}}), "fields"),
        (json!({"name": "x y", "kind": "callback", "fields": {"secret": "s"}}), "name"),
    ] {
        let (status, v) = hub.call("POST", "/api/v1/credentials", body).await;
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{v}");
    }
    // A certificate names it; the list says so, and removal is refused naming it.
    let spec = json!({"specs": ["dns-01:rfc2136=127.0.0.1:53,credential=dns"]});
    let (status, v) = hub.call("PUT", "/api/v1/certificates/web/challenges", spec).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = hub.call("GET", "/api/v1/credentials", Value::Null).await;
    assert_eq!(v["items"][0]["used_by"], json!(["web"]), "{v}");
    let (status, v) = hub.call("DELETE", "/api/v1/credentials/dns", Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("used by web"), "{v}");
    // Rotated: the new fields are kept, still not shown.
    let new = json!({"fields": {"key-name": "acme2", "key-secret": "c2VjcmV0LXR3bw=="}});
    let (status, v) = hub.call("PUT", "/api/v1/credentials/dns", new).await;
    assert_eq!((status, v["fields"]["key-name"].as_str()), (StatusCode::OK, Some("acme2")));
    assert!(!v.to_string().contains("c2VjcmV0"), "{v}");
    let (status, _) = hub.call("GET", "/api/v1/credentials/none", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The audit log has each change, and no secret.
    let (_, audit) = hub.call("GET", "/api/v1/audit?limit=100", Value::Null).await;
    let text = audit.to_string();
    assert!(text.contains("credential.add") && text.contains("credential.rotate"), "{text}");
    assert!(!text.contains("c2VjcmV0"), "{text}");
}
