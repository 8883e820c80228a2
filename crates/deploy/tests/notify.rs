//! Notifications delivered to real peers: an SMTP server (aiosmtpd), and HTTP receivers that
//! check Slack's incoming-webhook format and the callback's signature.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use certhub_deploy::notify::{Notice, check, send};
use serde_json::{Value, json};

fn notice(event: &str) -> Notice {
    Notice {
        event: event.into(),
        cert_name: "web".into(),
        summary: "web was renewed".into(),
        detail: Some("serial 0a1b, expires 2027-02-20T10:00:00Z".into()),
    }
}

/// An HTTP receiver that keeps what it is sent and answers `status`.
async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<(HeaderMap, String)>>>) {
    let got: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook/{token}",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push((headers, body));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/T0KEN", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn an_email_reaches_a_real_smtp_server() {
    let smtp = certhub_testkit::smtp::SmtpServer::start().await;
    let config = json!({
        "host": "127.0.0.1", "port": smtp.addr.port(), "tls": "none",
        "from": "certhub <certhub@example.com>", "to": ["ops@example.com", "sec@example.com"],
    });
    let said = send(&http(), "smtp", &config, &notice("renewed")).await.unwrap();
    assert!(said.contains("ops@example.com, sec@example.com"), "{said}");
    let mail = smtp.wait_for(1).await.remove(0);
    assert!(mail.contains("Subject: [certhub] web was renewed"), "{mail}");
    assert!(mail.contains("To: ops@example.com, sec@example.com"), "{mail}");
    assert!(mail.contains("serial 0a1b"), "{mail}");
    assert!(mail.contains("Event: renewed"), "{mail}");

    // A server that is not there: the error names it.
    let closed = json!({
        "host": "127.0.0.1", "port": certhub_testkit::free_port(), "tls": "none",
        "from": "certhub@example.com", "to": "ops@example.com",
    });
    let err = send(&http(), "smtp", &closed, &notice("renewed")).await.unwrap_err();
    assert!(err.contains("email through 127.0.0.1:"), "{err}");
}

#[tokio::test]
async fn slack_gets_its_incoming_webhook_format() {
    let (url, got) = receiver(200).await;
    let said = send(&http(), "slack", &json!({ "url": url }), &notice("renewed")).await.unwrap();
    // The webhook's token (its path) is never repeated.
    assert!(!said.contains("T0KEN"), "{said}");
    let (headers, body) = got.lock().unwrap().remove(0);
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({ "text": "*certhub*: web was renewed\n```serial 0a1b, expires 2027-02-20T10:00:00Z```" })
    );

    let (failing, _) = receiver(500).await;
    let err =
        send(&http(), "slack", &json!({ "url": failing }), &notice("renewed")).await.unwrap_err();
    assert!(err.contains("500") && !err.contains("T0KEN"), "{err}");
}

#[tokio::test]
async fn a_callback_is_signed_like_every_certhub_event() {
    let (url, got) = receiver(204).await;
    let config = json!({ "url": url, "secret": "s3cr3t" });
    send(&http(), "callback", &config, &notice("renewal-failed")).await.unwrap();
    let (headers, body) = got.lock().unwrap().remove(0);
    let expected = certhub_core::Secret::new("s3cr3t").sign_hex(body.as_bytes());
    assert_eq!(headers["x-certhub-signature"], format!("sha256={expected}").as_str());
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event_type"], "cert_renewal_failed");
    assert_eq!(event["cert_name"], "web");
    assert_eq!(event["timestamp"].to_string(), headers["x-certhub-timestamp"].to_str().unwrap());
}

#[test]
fn a_bad_configuration_names_its_field() {
    let field = |kind: &str, config: Value| check(kind, &config).unwrap_err().field;
    assert_eq!(field("smtp", json!({ "from": "a@b.c", "to": ["d@e.f"] })), "host");
    assert_eq!(field("smtp", json!({ "host": "h", "from": "nope", "to": ["d@e.f"] })), "from");
    assert_eq!(field("smtp", json!({ "host": "h", "from": "a@b.c", "to": [] })), "to");
    assert_eq!(
        field("smtp", json!({ "host": "h", "from": "a@b.c", "to": "x", "tls": "ssl" })),
        "tls"
    );
    assert_eq!(
        field("smtp", json!({ "host": "h", "from": "a@b.c", "to": "d@e.f", "username": "u" })),
        "password"
    );
    assert_eq!(field("slack", json!({ "url": "ftp://x" })), "url");
    assert_eq!(field("callback", json!({ "url": "https://x/y" })), "secret");
    assert_eq!(field("pager", json!({})), "kind");
    assert!(check("smtp", &json!({ "host": "h", "from": "a@b.c", "to": "d@e.f, g@h.i" })).is_ok());
}
