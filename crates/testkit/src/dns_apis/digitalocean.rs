//! DigitalOcean API v2 (`https://api.digitalocean.com/v2`): domains and domain records
//! (`GET /domains/{domain_name}`, `GET|POST /domains/{domain_name}/records`,
//! `DELETE /domains/{domain_name}/records/{domain_record_id}`), with a personal access
//! token (`Authorization: Bearer TOKEN`).
//!
//! A record's `name` is relative to the domain (`@` for the apex); the list's `name` filter
//! takes the fully qualified name. Errors are `{"id", "message"}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};

use super::{Api, Zones, form_pairs, json as respond, normal};

const HOST: &str = "api.digitalocean.com";
const TOKEN: &str = "digitalocean-test-token";

pub(super) fn api() -> Api {
    Api {
        name: "digitalocean",
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
    domain: String,
    /// As given: relative to the domain, `@` for the apex.
    name: String,
    data: String,
    ttl: u64,
}

impl Record {
    /// The owner name, lowercase.
    fn fqdn(&self) -> String {
        match self.name.as_str() {
            "@" => self.domain.clone(),
            name => normal(&format!("{name}.{}", self.domain)),
        }
    }

    fn to_json(&self, id: u64) -> Value {
        json!({"id": id, "type": "TXT", "name": self.name, "data": self.data, "priority": null,
            "port": null, "ttl": self.ttl, "weight": null, "flags": null, "tag": null})
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
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", "Unable to authenticate you");
    }
    let segments: Vec<&str> = uri.path().trim_end_matches('/').split('/').skip(1).collect();
    let (domain, rest) = match segments.as_slice() {
        ["v2", "domains", domain, rest @ ..] => (normal(domain), rest),
        _ => return not_found(),
    };
    if !fake.zones.zones().contains(&domain) {
        return not_found();
    }
    match (&method, rest) {
        (&Method::GET, []) => respond(
            StatusCode::OK,
            json!({"domain": {"name": domain, "ttl": 1800, "zone_file": ""}}),
        ),
        (&Method::GET, ["records"]) => list(&fake, &domain, uri.query().unwrap_or_default()),
        (&Method::POST, ["records"]) => create(&fake, domain, &body).await,
        (&Method::DELETE, ["records", id]) => delete(&fake, &domain, id).await,
        _ => not_found(),
    }
}

/// `GET /v2/domains/{domain_name}/records?name=FQDN&type=TXT&per_page=…&page=…`.
fn list(fake: &Fake, domain: &str, query: &str) -> Response {
    let query = form_pairs(query);
    let param = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let name = param("name").map(normal);
    // Only TXT records are ever created here.
    let txt = param("type").is_none_or(|t| t.eq_ignore_ascii_case("TXT"));
    let records = fake.records.lock().unwrap();
    let found: Vec<Value> = records
        .iter()
        .filter(|(_, r)| txt && r.domain == domain)
        .filter(|(_, r)| name.as_ref().is_none_or(|n| *n == r.fqdn()))
        .map(|(id, r)| r.to_json(*id))
        .collect();
    let total = found.len();
    respond(StatusCode::OK, json!({"domain_records": found, "links": {}, "meta": {"total": total}}))
}

/// `POST /v2/domains/{domain_name}/records` with `{"type":"TXT","name","data","ttl"}`:
/// 201 `{"domain_record"}`.
async fn create(fake: &Fake, domain: String, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "unexpected end of JSON input");
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("type") != "TXT" {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity", "Type is invalid");
    }
    if field("name").is_empty() || field("data").is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "Data needs a value",
        );
    }
    let ttl = req.get("ttl").and_then(Value::as_u64).unwrap_or(1800);
    let record = Record { domain, name: field("name").into(), data: field("data").into(), ttl };
    let id = 28_000_000 + fake.next.fetch_add(1, Ordering::Relaxed);
    fake.records.lock().unwrap().insert(id, record.clone());
    fake.zones.add_txt(&record.fqdn(), &record.data).await;
    respond(StatusCode::CREATED, json!({"domain_record": record.to_json(id)}))
}

/// `DELETE /v2/domains/{domain_name}/records/{domain_record_id}`: 204.
async fn delete(fake: &Fake, domain: &str, id: &str) -> Response {
    let removed = id.parse::<u64>().ok().and_then(|id| {
        let mut records = fake.records.lock().unwrap();
        if records.get(&id).is_some_and(|r| r.domain == domain) {
            records.remove(&id)
        } else {
            None
        }
    });
    let Some(record) = removed else { return not_found() };
    fake.zones.remove_txt(&record.fqdn(), &record.data).await;
    StatusCode::NO_CONTENT.into_response()
}

fn error(status: StatusCode, id: &str, message: &str) -> Response {
    respond(status, json!({"id": id, "message": message}))
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "The resource you were accessing could not be found.")
}
