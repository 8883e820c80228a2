//! A scripted ACME server for what Pebble 2.4.0 lacks: ARI (`renewalInfo`, `replaces`),
//! profiles, Retry-After on errors and rate limits. It speaks the RFC 8555 wire format and
//! verifies every JWS it receives (ES256/ES384 signatures, nonce, url, jwk/kid).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// A scripted error answer.
#[derive(Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub retry_after: Option<String>,
}

#[derive(Default)]
pub struct FakeState {
    base: String,
    nonces: HashSet<String>,
    next: u64,
    /// Every verified request: (path, protected header, payload).
    pub requests: Vec<(String, Value, Value)>,
    /// Errors to answer newOrder with, in turn.
    pub order_failures: VecDeque<Scripted>,
    /// Errors to answer newAccount with, in turn.
    pub account_failures: VecDeque<Scripted>,
    /// Errors to answer revokeCert with, in turn (then it revokes).
    pub revoke_failures: VecDeque<Scripted>,
    /// Errors to answer an authorization's POST-as-GET with, in turn (then 404: the fake
    /// validates nothing, so an order never gets past its authorizations).
    pub authz_failures: VecDeque<Scripted>,
    /// The last order created, as its resource shows it.
    last_order: Option<Value>,
    /// The ARI answer: (start, end, explanationURL, Retry-After seconds).
    pub window: (String, String, Option<String>, Option<u64>),
    /// Percentage of nonces to reject as badNonce.
    pub reject_nonces_every: u64,
}

/// The domain the fake CA names itself by in CAA records (its directory's `caaIdentities`).
pub const FAKE_CA_CAA_IDENTITY: &str = "fake-ca.example";

pub struct FakeCa {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

impl FakeCa {
    pub async fn start() -> FakeCa {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let state = Arc::new(Mutex::new(FakeState {
            base: base.clone(),
            window: (
                "2030-01-01T00:00:00Z".into(),
                "2030-01-02T00:00:00Z".into(),
                None,
                Some(21600),
            ),
            ..FakeState::default()
        }));
        let app = Router::new()
            .route("/dir", get(directory))
            .route("/nonce", get(nonce).head(nonce))
            .route("/new-account", post(new_account))
            .route("/new-order", post(new_order))
            .route("/revoke", post(revoke))
            .route("/order/{id}", post(order))
            .route("/authz/{id}", post(authz))
            .route("/renewal-info/{id}", get(renewal_info))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeCa { url: format!("{base}/dir"), state }
    }

    pub fn requests_to(&self, path: &str) -> Vec<Value> {
        let s = self.state.lock().unwrap();
        s.requests.iter().filter(|(p, _, _)| p == path).map(|(_, _, b)| b.clone()).collect()
    }
}

type Shared = State<Arc<Mutex<FakeState>>>;

fn fresh_nonce(s: &mut FakeState) -> String {
    s.next += 1;
    let n = format!("nonce-{}", s.next);
    s.nonces.insert(n.clone());
    n
}

async fn directory(State(s): Shared) -> Response {
    let base = s.lock().unwrap().base.clone();
    axum::Json(json!({
        "newNonce": format!("{base}/nonce"),
        "newAccount": format!("{base}/new-account"),
        "newOrder": format!("{base}/new-order"),
        "revokeCert": format!("{base}/revoke"),
        "keyChange": format!("{base}/key-change"),
        "renewalInfo": format!("{base}/renewal-info"),
        "meta": {
            "termsOfService": format!("{base}/tos"),
            "profiles": { "classic": "90 days", "shortlived": "160 hours" },
            "caaIdentities": [FAKE_CA_CAA_IDENTITY]
        }
    }))
    .into_response()
}

async fn nonce(State(s): Shared) -> Response {
    let n = fresh_nonce(&mut s.lock().unwrap());
    ([("replay-nonce", n), ("cache-control", "no-store".to_string())], "").into_response()
}

fn problem(s: &mut FakeState, status: u16, kind: &str, detail: &str) -> Response {
    let n = fresh_nonce(s);
    (
        StatusCode::from_u16(status).unwrap(),
        [
            (header::CONTENT_TYPE.as_str(), "application/problem+json".to_string()),
            ("replay-nonce", n),
        ],
        json!({ "type": format!("urn:ietf:params:acme:error:{kind}"), "detail": detail })
            .to_string(),
    )
        .into_response()
}

/// Verifies the JWS; returns (protected header, payload) or an error response.
fn verify(s: &mut FakeState, path: &str, body: &[u8]) -> Result<(Value, Value), Box<Response>> {
    let jws: Value = serde_json::from_slice(body)
        .map_err(|_| Box::new(problem(s, 400, "malformed", "not JSON")))?;
    let field = |k: &str| jws[k].as_str().unwrap_or_default().to_string();
    let (p64, b64, sig) = (field("protected"), field("payload"), field("signature"));
    let decode = |v: &str| URL_SAFE_NO_PAD.decode(v).ok();
    let header: Value = decode(&p64)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Box::new(problem(s, 400, "malformed", "bad protected header")))?;
    let nonce = header["nonce"].as_str().unwrap_or_default().to_string();
    if !s.nonces.remove(&nonce) {
        return Err(Box::new(problem(s, 400, "badNonce", "unknown nonce")));
    }
    if s.reject_nonces_every > 0 && s.next.is_multiple_of(s.reject_nonces_every) {
        return Err(Box::new(problem(s, 400, "badNonce", "scripted rejection")));
    }
    if header["url"] != format!("{}{path}", s.base) {
        return Err(Box::new(problem(s, 400, "malformed", "url mismatch")));
    }
    let jwk = &header["jwk"];
    if jwk.is_null() && header["kid"].is_null() {
        return Err(Box::new(problem(s, 400, "malformed", "neither jwk nor kid")));
    }
    if !jwk.is_null() {
        let x = decode(jwk["x"].as_str().unwrap_or_default()).unwrap_or_default();
        let y = decode(jwk["y"].as_str().unwrap_or_default()).unwrap_or_default();
        let point = [vec![4u8], x, y].concat();
        let alg = match header["alg"].as_str() {
            Some("ES256") => &ECDSA_P256_SHA256_FIXED,
            Some("ES384") => &ECDSA_P384_SHA384_FIXED,
            _ => {
                return Err(Box::new(problem(
                    s,
                    400,
                    "badSignatureAlgorithm",
                    "ES256 or ES384 only here",
                )));
            }
        };
        let sig = decode(&sig).unwrap_or_default();
        UnparsedPublicKey::new(alg, &point)
            .verify(format!("{p64}.{b64}").as_bytes(), &sig)
            .map_err(|_| Box::new(problem(s, 400, "malformed", "bad signature")))?;
    }
    let payload = if b64.is_empty() {
        Value::Null
    } else {
        decode(&b64)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Box::new(problem(s, 400, "malformed", "bad payload")))?
    };
    s.requests.push((path.to_string(), header.clone(), payload.clone()));
    Ok((header, payload))
}

/// A scripted error, as an answer.
fn scripted(s: &mut FakeState, f: Scripted) -> Response {
    let n = fresh_nonce(s);
    let mut headers = HeaderMap::new();
    headers.insert("replay-nonce", n.parse().unwrap());
    headers.insert(header::CONTENT_TYPE, f.content_type.parse().unwrap());
    if let Some(ra) = f.retry_after {
        headers.insert(header::RETRY_AFTER, ra.parse().unwrap());
    }
    (StatusCode::from_u16(f.status).unwrap(), headers, f.body).into_response()
}

async fn new_account(State(s): Shared, body: Bytes) -> Response {
    let mut s = s.lock().unwrap();
    if let Err(r) = verify(&mut s, "/new-account", &body) {
        return *r;
    }
    if let Some(f) = s.account_failures.pop_front() {
        return scripted(&mut s, f);
    }
    let n = fresh_nonce(&mut s);
    let loc = format!("{}/acct/1", s.base);
    (
        StatusCode::CREATED,
        [("replay-nonce", n), ("location", loc)],
        axum::Json(json!({"status": "valid"})),
    )
        .into_response()
}

async fn new_order(State(s): Shared, body: Bytes) -> Response {
    let mut s = s.lock().unwrap();
    let (_, payload) = match verify(&mut s, "/new-order", &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if let Some(f) = s.order_failures.pop_front() {
        return scripted(&mut s, f);
    }
    let n = fresh_nonce(&mut s);
    let base = s.base.clone();
    let mut order = json!({
        "status": "pending",
        "identifiers": payload["identifiers"],
        "authorizations": [format!("{base}/authz/1")],
        "finalize": format!("{base}/order/1/finalize"),
    });
    for k in ["profile", "replaces"] {
        if !payload[k].is_null() {
            order[k] = payload[k].clone();
        }
    }
    s.last_order = Some(order.clone());
    (
        StatusCode::CREATED,
        [("replay-nonce", n), ("location", format!("{base}/order/1"))],
        axum::Json(order),
    )
        .into_response()
}

async fn renewal_info(State(s): Shared, Path(id): Path<String>) -> Response {
    let mut s = s.lock().unwrap();
    s.requests.push(("/renewal-info".into(), Value::Null, json!(id.clone())));
    let (start, end, explanation, retry_after) = s.window.clone();
    let mut body = json!({ "suggestedWindow": { "start": start, "end": end } });
    if let Some(e) = explanation {
        body["explanationURL"] = json!(e);
    }
    let mut headers = HeaderMap::new();
    headers.insert("x-cert-id", id.parse().unwrap());
    if let Some(ra) = retry_after {
        headers.insert(header::RETRY_AFTER, ra.to_string().parse().unwrap());
    }
    (headers, axum::Json(body)).into_response()
}

/// An order's POST-as-GET: the last order created, as it was.
async fn order(State(s): Shared, Path(id): Path<String>, body: Bytes) -> Response {
    let mut s = s.lock().unwrap();
    if let Err(r) = verify(&mut s, &format!("/order/{id}"), &body) {
        return *r;
    }
    let Some(order) = s.last_order.clone() else {
        return problem(&mut s, 404, "malformed", "no such order");
    };
    let n = fresh_nonce(&mut s);
    (StatusCode::OK, [("replay-nonce", n)], axum::Json(order)).into_response()
}

/// An authorization's POST-as-GET: a scripted error, else 404.
async fn authz(State(s): Shared, Path(id): Path<String>, body: Bytes) -> Response {
    let mut s = s.lock().unwrap();
    if let Err(r) = verify(&mut s, &format!("/authz/{id}"), &body) {
        return *r;
    }
    match s.authz_failures.pop_front() {
        Some(f) => scripted(&mut s, f),
        None => problem(&mut s, 404, "malformed", "the fake CA validates nothing"),
    }
}

async fn revoke(State(s): Shared, body: Bytes) -> Response {
    let mut s = s.lock().unwrap();
    if let Err(r) = verify(&mut s, "/revoke", &body) {
        return *r;
    }
    if let Some(f) = s.revoke_failures.pop_front() {
        return scripted(&mut s, f);
    }
    let n = fresh_nonce(&mut s);
    (StatusCode::OK, [("replay-nonce", n)]).into_response()
}
