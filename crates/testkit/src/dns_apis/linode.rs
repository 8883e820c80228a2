//! Linode (Akamai) API v4 (`https://api.linode.com/v4`): domains and domain records
//! (`GET /domains`, `GET /domains/{domainId}`, `GET|POST /domains/{domainId}/records`,
//! `DELETE /domains/{domainId}/records/{recordId}`), with a personal access token
//! (`Authorization: Bearer TOKEN`).
//!
//! Lists are pages (`{"data", "page", "pages", "results"}`) that an `X-Filter` JSON header
//! narrows (plain `{"field": value}` equality; operators are ignored). A record's `name` is
//! relative to the domain (empty for the apex). Errors are `{"errors":[{"reason"}]}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Zones, json as respond, normal};

const HOST: &str = "api.linode.com";
const TOKEN: &str = "linode-test-token";
/// The id of the first zone's domain; the others follow.
const FIRST_DOMAIN_ID: u64 = 1_234_000;

pub(super) fn api() -> Api {
    Api {
        name: "linode",
        hosts: &[HOST],
        credential: |_| vec![("api-token", TOKEN.to_string())],
        router: |zones, _| router(zones),
    }
}

#[derive(Clone)]
struct Fake {
    zones: Zones,
    /// The records created here, by id.
    records: Arc<Mutex<BTreeMap<u64, Record>>>,
    next: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Record {
    domain_id: u64,
    /// The owner name, lowercase.
    fqdn: String,
    /// As given: relative to the domain, empty for the apex.
    name: String,
    target: String,
    ttl_sec: u64,
}

impl Record {
    fn to_json(&self, id: u64) -> Value {
        json!({"id": id, "type": "TXT", "name": self.name, "target": self.target,
            "priority": 0, "weight": 0, "port": 0, "service": null, "protocol": null,
            "tag": null, "ttl_sec": self.ttl_sec,
            "created": "2025-01-01T00:00:00", "updated": "2025-01-01T00:00:00"})
    }
}

fn router(zones: Zones) -> Router {
    let fake = Fake { zones, records: Arc::default(), next: Arc::default() };
    Router::new().fallback(handle).with_state(fake)
}

async fn handle(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.zones.log_request(&method, HOST, &uri);
    if super::bearer(&headers) != Some(TOKEN) {
        return error(StatusCode::UNAUTHORIZED, "Invalid Token");
    }
    let segments: Vec<&str> = uri.path().trim_end_matches('/').split('/').skip(1).collect();
    let domains: Vec<(u64, String)> =
        fake.zones.zones().into_iter().zip(FIRST_DOMAIN_ID..).map(|(z, id)| (id, z)).collect();
    if let ["v4", "domains"] = segments.as_slice() {
        if method != Method::GET {
            return not_found();
        }
        let all = domains.iter().map(|(id, z)| domain_json(*id, z)).collect();
        return page(filtered(all, &headers));
    }
    let (domain_id, domain, rest) = match segments.as_slice() {
        ["v4", "domains", id, rest @ ..] => {
            match domains.iter().find(|(d, _)| id.parse::<u64>().ok() == Some(*d)) {
                Some((d, z)) => (*d, z.as_str(), rest),
                None => return not_found(),
            }
        }
        _ => return not_found(),
    };
    match (&method, rest) {
        (&Method::GET, []) => respond(StatusCode::OK, domain_json(domain_id, domain)),
        (&Method::GET, ["records"]) => {
            let records = fake.records.lock().unwrap();
            let all = records
                .iter()
                .filter(|(_, r)| r.domain_id == domain_id)
                .map(|(id, r)| r.to_json(*id))
                .collect();
            page(filtered(all, &headers))
        }
        (&Method::POST, ["records"]) => create(&fake, domain_id, domain, &body).await,
        (&Method::DELETE, ["records", id]) => delete(&fake, domain_id, id).await,
        _ => not_found(),
    }
}

/// `POST /v4/domains/{domainId}/records` with `{"type":"TXT","name","target","ttl_sec"}`:
/// the record created.
async fn create(fake: &Fake, domain_id: u64, domain: &str, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("type") != "TXT" {
        return invalid("type", "type is not supported by this fake");
    }
    if field("target").is_empty() {
        return invalid("target", "target is required for TXT records");
    }
    let name = field("name");
    let fqdn =
        if name.is_empty() { domain.to_string() } else { normal(&format!("{name}.{domain}")) };
    let ttl_sec = req.get("ttl_sec").and_then(Value::as_u64).unwrap_or(0);
    let record =
        Record { domain_id, fqdn, name: name.into(), target: field("target").into(), ttl_sec };
    let id = 5_000_000 + fake.next.fetch_add(1, Ordering::Relaxed);
    fake.records.lock().unwrap().insert(id, record.clone());
    fake.zones.add_txt(&record.fqdn, &record.target).await;
    respond(StatusCode::OK, record.to_json(id))
}

/// `DELETE /v4/domains/{domainId}/records/{recordId}`: `{}`.
async fn delete(fake: &Fake, domain_id: u64, id: &str) -> Response {
    let removed = id.parse::<u64>().ok().and_then(|id| {
        let mut records = fake.records.lock().unwrap();
        if records.get(&id)?.domain_id != domain_id {
            return None;
        }
        records.remove(&id)
    });
    let Some(record) = removed else { return not_found() };
    fake.zones.remove_txt(&record.fqdn, &record.target).await;
    respond(StatusCode::OK, json!({}))
}

fn domain_json(id: u64, domain: &str) -> Value {
    json!({"id": id, "domain": domain, "type": "master", "status": "active",
        "soa_email": format!("hostmaster@{domain}"), "description": "", "group": "",
        "tags": [], "ttl_sec": 0, "refresh_sec": 0, "retry_sec": 0, "expire_sec": 0,
        "master_ips": [], "axfr_ips": [],
        "created": "2025-01-01T00:00:00", "updated": "2025-01-01T00:00:00"})
}

/// The items the `X-Filter` header's plain `{"field": value}` conditions all hold for.
fn filtered(items: Vec<Value>, headers: &HeaderMap) -> Vec<Value> {
    let filter =
        headers.get("x-filter").and_then(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok());
    let Some(Value::Object(conditions)) = filter else { return items };
    items
        .into_iter()
        .filter(|item| {
            conditions.iter().all(|(key, want)| {
                key.starts_with('+') || want.is_object() || item.get(key) == Some(want)
            })
        })
        .collect()
}

/// One page holding every item.
fn page(data: Vec<Value>) -> Response {
    let results = data.len();
    respond(StatusCode::OK, json!({"data": data, "page": 1, "pages": 1, "results": results}))
}

fn error(status: StatusCode, reason: &str) -> Response {
    respond(status, json!({"errors": [{"reason": reason}]}))
}

fn invalid(field: &str, reason: &str) -> Response {
    respond(StatusCode::BAD_REQUEST, json!({"errors": [{"field": field, "reason": reason}]}))
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found")
}
