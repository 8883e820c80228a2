//! The hub's notification channels: expiry, renewal failure, issuance, revocation, told once.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::bought_certificate;
use crate::support::{Env, hostile};

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
    env.add_cert("broken", "le", "broken.test", &nowhere).await;
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
