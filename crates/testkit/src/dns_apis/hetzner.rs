//! Hetzner Cloud API (`https://api.hetzner.cloud/v1`), DNS part: zones and their RRSets
//! (`GET /zones`, `GET /zones/{id_or_name}`, `GET /zones/{id_or_name}/rrsets`,
//! `GET|DELETE /zones/{id_or_name}/rrsets/{rr_name}/{rr_type}` and the RRSet actions
//! `POST …/actions/{add_records,remove_records,set_records,change_ttl}`), with a project
//! API token (`Authorization: Bearer TOKEN`).
//!
//! An RRSet's name is relative to the zone (`@` for the apex), lowercase, without a trailing
//! dot. `add_records` creates the RRSet if missing; `remove_records` deletes it once empty.
//! A change answers 201 with an action, done at once here. TXT values must be quoted
//! character-strings (`"\"…\""`); BIND gets them unquoted. Only TXT RRSets are held.
//! Errors are `{"error":{"code","message","details"}}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::txt_unquote;
use super::{Api, Zones, form_pairs, json as respond};

const HOST: &str = "api.hetzner.cloud";
const TOKEN: &str = "hetzner-test-token";
/// The id of the first zone; the others follow.
const FIRST_ZONE_ID: u64 = 42_000;

pub(super) fn api() -> Api {
    Api {
        name: "hetzner",
        hosts: &[HOST],
        credential: |_| vec![("api-token", TOKEN.to_string())],
        router: |zones, _| router(zones),
    }
}

#[derive(Clone)]
struct Fake {
    zones: Zones,
    rrsets: Arc<Mutex<BTreeMap<RrKey, RrSet>>>,
    next_action: Arc<AtomicU64>,
}

/// A TXT RRSet's zone id and name.
type RrKey = (u64, String);

#[derive(Default)]
struct RrSet {
    /// None: the zone's.
    ttl: Option<u64>,
    /// Quoted character-strings, as given.
    values: Vec<String>,
}

fn router(zones: Zones) -> Router {
    let fake = Fake { zones, rrsets: Arc::default(), next_action: Arc::default() };
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
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "unable to authenticate");
    }
    let query = form_pairs(uri.query().unwrap_or_default());
    let param = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let segments: Vec<&str> = uri.path().trim_end_matches('/').split('/').skip(1).collect();
    let zones: Vec<(u64, String)> =
        fake.zones.zones().into_iter().zip(FIRST_ZONE_ID..).map(|(z, id)| (id, z)).collect();
    let ["v1", "zones", rest @ ..] = segments.as_slice() else { return not_found() };
    let (zone, rest) = match rest {
        [] if method == Method::GET => {
            let name = param("name");
            let found: Vec<Value> = zones
                .iter()
                .filter(|(_, z)| name.is_none_or(|n| n == z))
                .map(|(id, z)| zone_json(&fake, *id, z))
                .collect();
            return listing("zones", found);
        }
        [zone, rest @ ..] => {
            match zones.iter().find(|(id, z)| z == zone || zone.parse::<u64>().ok() == Some(*id)) {
                Some(zone) => (zone, rest),
                None => return not_found(),
            }
        }
        [] => return not_found(),
    };
    let (zone_id, zone_name) = (zone.0, zone.1.as_str());
    match (&method, rest) {
        (&Method::GET, []) => {
            respond(StatusCode::OK, json!({"zone": zone_json(&fake, zone_id, zone_name)}))
        }
        (&Method::GET, ["rrsets"]) => {
            let name = param("name");
            let txt = param("type").is_none_or(|t| t == "TXT");
            let rrsets = fake.rrsets.lock().unwrap();
            let found: Vec<Value> = rrsets
                .iter()
                .filter(|((z, n), _)| txt && *z == zone_id && name.is_none_or(|w| w == n))
                .map(|((_, n), set)| rrset_json(zone_id, n, set))
                .collect();
            listing("rrsets", found)
        }
        (&Method::GET, ["rrsets", name, "TXT"]) => {
            let name = rr_name(name);
            let rrsets = fake.rrsets.lock().unwrap();
            match rrsets.get(&(zone_id, name.clone())) {
                Some(set) => {
                    respond(StatusCode::OK, json!({"rrset": rrset_json(zone_id, &name, set)}))
                }
                None => not_found(),
            }
        }
        (&Method::DELETE, ["rrsets", name, "TXT"]) => {
            let body = br#"{"records":[]}"#;
            change(&fake, zone_id, zone_name, &rr_name(name), "delete", body).await
        }
        (&Method::POST, ["rrsets", name, "TXT", "actions", action]) => {
            change(&fake, zone_id, zone_name, &rr_name(name), action, &body).await
        }
        (_, ["rrsets", _, kind, ..]) if *kind != "TXT" => {
            invalid("rr_type", "only TXT RRSets are supported by this fake")
        }
        _ => not_found(),
    }
}

/// An RRSet action (or `delete`), applied at once: 201 `{"action"}`.
async fn change(
    fake: &Fake,
    zone_id: u64,
    zone: &str,
    name: &str,
    action: &str,
    body: &[u8],
) -> Response {
    if name != "@"
        && (name.ends_with('.')
            || name != name.to_ascii_lowercase()
            || name == zone
            || name.ends_with(&format!(".{zone}")))
    {
        return invalid(
            "rr_name",
            "must be relative to the zone, lowercase, without a trailing dot",
        );
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "json_error", "invalid JSON in request body");
    };
    let values: Vec<String> = req["records"]
        .as_array()
        .map(|records| {
            records.iter().filter_map(|r| r["value"].as_str()).map(String::from).collect()
        })
        .unwrap_or_default();
    if values.iter().any(|v| v.len() < 2 || !(v.starts_with('"') && v.ends_with('"'))) {
        return invalid("records", "TXT record values must be enclosed in double quotes");
    }
    if action == "add_records" && values.is_empty() {
        return invalid("records", "must contain at least one record");
    }
    let key = (zone_id, name.to_string());
    // What BIND must gain and lose, decided under the lock.
    let (added, removed, command): (Vec<String>, Vec<String>, &str) = {
        let mut rrsets = fake.rrsets.lock().unwrap();
        if action == "add_records" {
            let set = rrsets.entry(key).or_default();
            if let Some(ttl) = req["ttl"].as_u64() {
                set.ttl = Some(ttl);
            }
            let added: Vec<String> =
                values.into_iter().filter(|v| !set.values.contains(v)).collect();
            set.values.extend(added.iter().cloned());
            (added, Vec::new(), "add_rrset_records")
        } else {
            let Some(set) = rrsets.get_mut(&key) else { return not_found() };
            let held = &mut set.values;
            let result = match action {
                "remove_records" => {
                    let removed: Vec<String> =
                        values.into_iter().filter(|v| held.contains(v)).collect();
                    held.retain(|v| !removed.contains(v));
                    (Vec::new(), removed, "remove_rrset_records")
                }
                "set_records" => {
                    let added: Vec<String> =
                        values.iter().filter(|v| !held.contains(v)).cloned().collect();
                    let removed: Vec<String> =
                        held.iter().filter(|v| !values.contains(v)).cloned().collect();
                    *held = values;
                    (added, removed, "set_rrset_records")
                }
                "change_ttl" => {
                    set.ttl = req["ttl"].as_u64();
                    (Vec::new(), Vec::new(), "change_rrset_ttl")
                }
                "delete" => (Vec::new(), std::mem::take(held), "delete_rrset"),
                _ => return not_found(),
            };
            if set.values.is_empty() {
                rrsets.remove(&key);
            }
            result
        }
    };
    let fqdn = if name == "@" { zone.to_string() } else { format!("{name}.{zone}") };
    for value in added {
        fake.zones.add_txt(&fqdn, &txt_unquote(&value)).await;
    }
    for value in removed {
        fake.zones.remove_txt(&fqdn, &txt_unquote(&value)).await;
    }
    let id = 1 + fake.next_action.fetch_add(1, Ordering::Relaxed);
    respond(
        StatusCode::CREATED,
        json!({"action": {"id": id, "command": command, "status": "success", "progress": 100,
            "started": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T00:00:00+00:00",
            "resources": [{"id": zone_id, "type": "zone"}], "error": null}}),
    )
}

/// A path's RRSet name: `@` may come percent-encoded.
fn rr_name(name: &str) -> String {
    if name == "%40" { "@".to_string() } else { name.to_string() }
}

fn zone_json(fake: &Fake, id: u64, name: &str) -> Value {
    let record_count = fake.rrsets.lock().unwrap().keys().filter(|(z, _)| *z == id).count();
    json!({"id": id, "name": name, "created": "2025-01-01T00:00:00+00:00", "mode": "primary",
        "primary_nameservers": [], "labels": {}, "protection": {"delete": false}, "ttl": 3600,
        "status": "ok", "record_count": record_count, "registrar": "other",
        "authoritative_nameservers": {"assigned": [format!("ns.{name}.")], "delegated": [],
            "delegation_last_check": null, "delegation_status": "unknown"}})
}

fn rrset_json(zone_id: u64, name: &str, set: &RrSet) -> Value {
    let records: Vec<Value> =
        set.values.iter().map(|v| json!({"value": v, "comment": ""})).collect();
    json!({"id": format!("{name}/TXT"), "name": name, "type": "TXT", "ttl": set.ttl, "labels": {},
        "protection": {"change": false}, "records": records, "zone": zone_id})
}

/// Every item on one page.
fn listing(key: &str, items: Vec<Value>) -> Response {
    let total = items.len();
    let mut body = json!({"meta": {"pagination": {"page": 1, "per_page": total.max(25),
        "previous_page": null, "next_page": null, "last_page": 1, "total_entries": total}}});
    body[key] = Value::Array(items);
    respond(StatusCode::OK, body)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    respond(status, json!({"error": {"code": code, "message": message, "details": {}}}))
}

fn invalid(field: &str, message: &str) -> Response {
    respond(
        StatusCode::BAD_REQUEST,
        json!({"error": {"code": "invalid_input",
            "message": format!("invalid input in field '{field}'"),
            "details": {"fields": [{"name": field, "messages": [message]}]}}}),
    )
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "resource not found")
}
