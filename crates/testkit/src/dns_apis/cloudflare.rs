//! Cloudflare API v4 (`https://api.cloudflare.com/client/v4`): zones and DNS records
//! (`GET /zones`, `GET|POST /zones/{zone_id}/dns_records`,
//! `DELETE /zones/{zone_id}/dns_records/{dns_record_id}`), with API-token authentication
//! (`Authorization: Bearer TOKEN`).
//!
//! Every answer is the v4 envelope `{"success", "errors", "messages", "result"}`, a list's
//! with `result_info`. Record names are fully qualified. A TXT record's `content` is kept as
//! sent (Cloudflare keeps the quotes a client gives) and goes to BIND unquoted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Zones, form_pairs, json as respond, normal, txt_unquote};

const HOST: &str = "api.cloudflare.com";
const TOKEN: &str = "cloudflare-test-token";

pub(super) fn api() -> Api {
    Api {
        name: "cloudflare",
        hosts: &[HOST],
        credential: |_| vec![("api-token", TOKEN.to_string())],
        router: |zones, _| router(zones),
    }
}

#[derive(Clone)]
struct Fake {
    zones: Zones,
    /// The records created here, by id.
    records: Arc<Mutex<BTreeMap<String, Record>>>,
    next: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Record {
    zone_id: String,
    zone: String,
    name: String,
    content: String,
    ttl: u64,
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
    // API tokens only: a missing or malformed header is 400, an unknown token 403.
    match super::bearer(&headers) {
        Some(TOKEN) => {}
        Some(_) => return failure(StatusCode::FORBIDDEN, 9109, "Invalid access token"),
        None => {
            return respond(
                StatusCode::BAD_REQUEST,
                json!({"success": false, "messages": [], "result": null, "errors": [{
                    "code": 6003, "message": "Invalid request headers", "error_chain": [
                        {"code": 6111, "message": "Invalid format for Authorization header"}]
                }]}),
            );
        }
    }
    let query = form_pairs(uri.query().unwrap_or_default());
    let segments: Vec<&str> = uri.path().trim_end_matches('/').split('/').skip(1).collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["client", "v4", "zones"]) => list_zones(&fake, &query),
        (&Method::GET, ["client", "v4", "zones", id, "dns_records"]) => {
            list_records(&fake, id, &query, uri.path())
        }
        (&Method::POST, ["client", "v4", "zones", id, "dns_records"]) => {
            create(&fake, id, &body, uri.path()).await
        }
        (&Method::DELETE, ["client", "v4", "zones", id, "dns_records", record]) => {
            delete(&fake, id, record, uri.path()).await
        }
        _ => no_route(uri.path()),
    }
}

/// `GET /zones?name=…`: the zones, filtered by exact name.
fn list_zones(fake: &Fake, query: &[(String, String)]) -> Response {
    let name = param(query, "name").map(normal);
    let zones: Vec<Value> = fake
        .zones
        .zones()
        .into_iter()
        .enumerate()
        .filter(|(_, z)| name.as_ref().is_none_or(|n| n == z))
        .map(|(i, z)| {
            json!({"id": zone_id(i), "name": z, "status": "active", "paused": false,
                "type": "full", "name_servers": [format!("ns.{z}")], "development_mode": 0})
        })
        .collect();
    listing(zones)
}

/// `GET /zones/{zone_id}/dns_records?name=…&type=…`: the records created here.
fn list_records(fake: &Fake, id: &str, query: &[(String, String)], path: &str) -> Response {
    if zone_name(fake, id).is_none() {
        return no_route(path);
    }
    let name = param(query, "name").or_else(|| param(query, "name.exact")).map(normal);
    // Only TXT records are ever created here.
    let txt = param(query, "type").is_none_or(|t| t.eq_ignore_ascii_case("TXT"));
    let records = fake.records.lock().unwrap();
    let found: Vec<Value> = records
        .iter()
        .filter(|(_, r)| txt && r.zone_id == id && name.as_ref().is_none_or(|n| *n == r.name))
        .map(|(rid, r)| record_json(rid, r))
        .collect();
    listing(found)
}

/// `POST /zones/{zone_id}/dns_records` with `{"type":"TXT","name","content","ttl"}`.
async fn create(fake: &Fake, id: &str, body: &[u8], path: &str) -> Response {
    let Some(zone) = zone_name(fake, id) else { return no_route(path) };
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return failure(StatusCode::BAD_REQUEST, 9207, "Request body is invalid.");
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("type") != "TXT" || field("name").is_empty() || field("content").is_empty() {
        return failure(StatusCode::BAD_REQUEST, 1004, "DNS Validation Error");
    }
    // A name outside the zone is relative to it; `@` is the apex.
    let name = normal(field("name"));
    let name = if name == "@" {
        zone.clone()
    } else if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    };
    let content = field("content").to_string();
    let ttl = req.get("ttl").and_then(Value::as_u64).unwrap_or(1);
    let record = Record { zone_id: id.to_string(), zone, name, content, ttl };
    let rid = format!("{:032x}", fake.next.fetch_add(1, Ordering::Relaxed) + 1);
    {
        let mut records = fake.records.lock().unwrap();
        if records.values().any(|r| r.name == record.name && r.content == record.content) {
            return failure(StatusCode::BAD_REQUEST, 81058, "An identical record already exists.");
        }
        records.insert(rid.clone(), record.clone());
    }
    fake.zones.add_txt(&record.name, &txt_unquote(&record.content)).await;
    success(record_json(&rid, &record))
}

/// `DELETE /zones/{zone_id}/dns_records/{dns_record_id}`: `{"result":{"id"}}`.
async fn delete(fake: &Fake, id: &str, rid: &str, path: &str) -> Response {
    if zone_name(fake, id).is_none() {
        return no_route(path);
    }
    let removed = {
        let mut records = fake.records.lock().unwrap();
        if records.get(rid).is_some_and(|r| r.zone_id == id) { records.remove(rid) } else { None }
    };
    let Some(record) = removed else {
        return failure(StatusCode::NOT_FOUND, 81044, "Record does not exist.");
    };
    fake.zones.remove_txt(&record.name, &txt_unquote(&record.content)).await;
    success(json!({"id": rid}))
}

/// A zone's id: 32 hex digits, like Cloudflare's.
fn zone_id(index: usize) -> String {
    format!("{:032x}", 0xc1f0_0000_u128 + index as u128)
}

fn zone_name(fake: &Fake, id: &str) -> Option<String> {
    fake.zones.zones().into_iter().enumerate().find(|(i, _)| zone_id(*i) == id).map(|(_, z)| z)
}

fn record_json(id: &str, r: &Record) -> Value {
    json!({"id": id, "zone_id": r.zone_id, "zone_name": r.zone, "name": r.name, "type": "TXT",
        "content": r.content, "proxiable": false, "proxied": false, "ttl": r.ttl,
        "settings": {}, "meta": {}, "comment": null, "tags": [],
        "created_on": "2025-01-01T00:00:00Z", "modified_on": "2025-01-01T00:00:00Z"})
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn success(result: Value) -> Response {
    respond(
        StatusCode::OK,
        json!({"success": true, "errors": [], "messages": [], "result": result}),
    )
}

fn listing(result: Vec<Value>) -> Response {
    let count = result.len();
    respond(
        StatusCode::OK,
        json!({"success": true, "errors": [], "messages": [], "result": result,
            "result_info": {"page": 1, "per_page": count.max(20), "count": count,
                "total_count": count, "total_pages": 1}}),
    )
}

fn failure(status: StatusCode, code: u32, message: &str) -> Response {
    respond(
        status,
        json!({"success": false, "errors": [{"code": code, "message": message}],
            "messages": [], "result": null}),
    )
}

/// An unknown path or zone id.
fn no_route(path: &str) -> Response {
    respond(
        StatusCode::NOT_FOUND,
        json!({"success": false, "messages": [], "result": null, "errors": [
            {"code": 7003, "message": format!(
                "Could not route to {path}, perhaps your object identifier is invalid?")},
            {"code": 7000, "message": "No route for that URI"}]}),
    )
}
