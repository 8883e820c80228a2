//! OVHcloud's API v1 (<https://eu.api.ovh.com/console/>, "First steps with the OVHcloud
//! APIs"), its DNS zones: `GET /1.0/domain/zone/{zone}`, record ids by
//! `GET /1.0/domain/zone/{zone}/record?fieldType=&subDomain=`, a record by
//! `GET|DELETE /1.0/domain/zone/{zone}/record/{id}`, `POST /1.0/domain/zone/{zone}/record`
//! to create one, `POST /1.0/domain/zone/{zone}/refresh` to apply the changes, and the
//! server's clock at `GET /1.0/auth/time`.
//!
//! Every other call is signed: `X-Ovh-Application` (application key), `X-Ovh-Consumer`
//! (consumer key), `X-Ovh-Timestamp` and `X-Ovh-Signature`, `$1$` + hex(SHA-1(application
//! secret + consumer key + method + full URL + body + timestamp, joined by `+`)).
//!
//! As at OVH, records created or deleted reach the zone (BIND) only when it is refreshed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, Fixture, Zones, form_pairs, normal};

/// The host of the `ovh-eu` endpoint (`https://eu.api.ovh.com/1.0`).
const HOST: &str = "eu.api.ovh.com";
/// The application key and secret, and the consumer key, the fake accepts.
const APP_KEY: &str = "certhubTestAppKey7q2w";
const APP_SECRET: &str = "certhubTestAppSecret4k9m1x8z3v6b";
const CONSUMER_KEY: &str = "certhubTestConsumerKey5h2j8n0p7r";
/// How far a request's timestamp may be from the server's clock, in seconds.
const TIME_WINDOW: u64 = 180;

pub(super) fn api() -> Api {
    Api {
        name: "ovh",
        hosts: &[HOST],
        credential: |_| {
            vec![
                ("application-key", APP_KEY.to_string()),
                ("application-secret", APP_SECRET.to_string()),
                ("consumer-key", CONSUMER_KEY.to_string()),
                ("endpoint", "ovh-eu".to_string()),
            ]
        },
        router,
    }
}

struct Ovh {
    zones: Zones,
    state: Mutex<Records>,
}

/// A TXT record of a zone (the only type held here).
struct Record {
    zone: String,
    sub_domain: String,
    target: String,
    ttl: u64,
}

#[derive(Default)]
struct Records {
    next_id: u64,
    by_id: BTreeMap<u64, Record>,
    /// Per zone, the (owner name, value) pairs its last refresh put in BIND.
    applied: BTreeMap<String, BTreeSet<(String, String)>>,
}

/// The body of `POST …/record`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewRecord {
    field_type: String,
    #[serde(default)]
    sub_domain: String,
    target: String,
    #[serde(default)]
    ttl: u64,
}

fn router(zones: Zones, _: Arc<Fixture>) -> Router {
    let state = Mutex::new(Records { next_id: 5_000_000_001, ..Records::default() });
    Router::new().fallback(handle).with_state(Arc::new(Ovh { zones, state }))
}

async fn handle(
    State(st): State<Arc<Ovh>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pq = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    st.zones.log_request(&method, HOST, &uri);
    let path = uri.path().strip_prefix("/1.0/").unwrap_or_default();
    if method == Method::GET && path == "auth/time" {
        return super::json(StatusCode::OK, json!(now()));
    }
    let body = String::from_utf8_lossy(&body);
    if let Some(refused) = refusal(&headers, method.as_str(), pq, &body) {
        return refused;
    }
    let parts: Vec<&str> = path.split('/').collect();
    let ["domain", "zone", zone, rest @ ..] = &parts[..] else {
        return not_found("Got an invalid (or empty) URL");
    };
    let zone = normal(zone);
    if !st.zones.zones().contains(&zone) {
        return not_found("This service does not exist");
    }
    match (method.as_str(), rest) {
        ("GET", []) => {
            let name_servers = ["dns200.anycast.me", "ns200.anycast.me"];
            let zone = json!({ "name": zone, "hasDnsAnycast": false, "nameServers": name_servers });
            super::json(StatusCode::OK, zone)
        }
        ("GET", ["record"]) => st.list(&zone, uri.query().unwrap_or_default()),
        ("POST", ["record"]) => st.create(&zone, &body),
        ("GET", ["record", id]) => st.record(&zone, id, false),
        ("DELETE", ["record", id]) => st.record(&zone, id, true),
        ("POST", ["refresh"]) => {
            st.refresh(&zone).await;
            super::json(StatusCode::OK, Value::Null)
        }
        _ => not_found("Got an invalid (or empty) URL"),
    }
}

impl Ovh {
    /// The ids of the zone's records, filtered by `fieldType` and `subDomain` if given.
    fn list(&self, zone: &str, query: &str) -> Response {
        let query = form_pairs(query);
        let param = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let field_type = param("fieldType");
        let sub_domain = param("subDomain").map(normal);
        let records = self.state.lock().unwrap();
        let ids: Vec<u64> = records
            .by_id
            .iter()
            .filter(|(_, r)| r.zone == zone)
            .filter(|_| field_type.is_none_or(|t| t.eq_ignore_ascii_case("TXT")))
            .filter(|(_, r)| sub_domain.as_ref().is_none_or(|s| *s == r.sub_domain))
            .map(|(id, _)| *id)
            .collect();
        super::json(StatusCode::OK, json!(ids))
    }

    /// Creates a record (applied to the zone at its next refresh).
    fn create(&self, zone: &str, body: &str) -> Response {
        let Ok(new) = serde_json::from_str::<NewRecord>(body) else {
            return fail(
                StatusCode::BAD_REQUEST,
                "Invalid body: fieldType and target are required",
            );
        };
        if !new.field_type.eq_ignore_ascii_case("TXT") {
            return fail(StatusCode::BAD_REQUEST, "Only TXT records are held here");
        }
        let mut records = self.state.lock().unwrap();
        let id = records.next_id;
        records.next_id += 1;
        let record = Record {
            zone: zone.to_string(),
            sub_domain: normal(&new.sub_domain),
            target: new.target,
            ttl: new.ttl,
        };
        let answer = describe(id, &record);
        records.by_id.insert(id, record);
        super::json(StatusCode::OK, answer)
    }

    /// Answers a record, deleting it if `delete` (from the zone at its next refresh).
    fn record(&self, zone: &str, id: &str, delete: bool) -> Response {
        let mut records = self.state.lock().unwrap();
        let found = id
            .parse::<u64>()
            .ok()
            .filter(|id| records.by_id.get(id).is_some_and(|r| r.zone == zone));
        let Some(id) = found else {
            return not_found(&format!("The requested object (id = {id}) does not exist"));
        };
        if delete {
            records.by_id.remove(&id);
            return super::json(StatusCode::OK, Value::Null);
        }
        super::json(StatusCode::OK, describe(id, &records.by_id[&id]))
    }

    /// Applies the zone's records to BIND: what changed since the last refresh.
    async fn refresh(&self, zone: &str) {
        let (add, remove) = {
            let mut records = self.state.lock().unwrap();
            let live: BTreeSet<(String, String)> = records
                .by_id
                .values()
                .filter(|r| r.zone == zone)
                .map(|r| (owner(&r.sub_domain, zone), r.target.clone()))
                .collect();
            let before = records.applied.insert(zone.to_string(), live.clone()).unwrap_or_default();
            let add: Vec<_> = live.difference(&before).cloned().collect();
            let remove: Vec<_> = before.difference(&live).cloned().collect();
            (add, remove)
        };
        for (name, value) in &remove {
            self.zones.remove_txt(name, value).await;
        }
        for (name, value) in &add {
            self.zones.add_txt(name, value).await;
        }
    }
}

/// Checks the keys, the timestamp and the signature: OVH's answer if one is wrong.
fn refusal(headers: &HeaderMap, method: &str, pq: &str, body: &str) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if header("x-ovh-application") != APP_KEY {
        return Some(refuse(StatusCode::FORBIDDEN, "INVALID_KEY", "Invalid application key"));
    }
    match header("x-ovh-consumer") {
        "" => return Some(refuse(StatusCode::FORBIDDEN, "NOT_CREDENTIAL", "You must login first")),
        CONSUMER_KEY => {}
        _ => {
            let message = "This credential does not exist";
            return Some(refuse(StatusCode::FORBIDDEN, "INVALID_CREDENTIAL", message));
        }
    }
    let timestamp = header("x-ovh-timestamp");
    if !timestamp.parse::<u64>().is_ok_and(|t| t.abs_diff(now()) <= TIME_WINDOW) {
        return Some(refuse(StatusCode::BAD_REQUEST, "QUERY_TIME_OUT", "Query out of time"));
    }
    let signed =
        format!("{APP_SECRET}+{CONSUMER_KEY}+{method}+https://{HOST}{pq}+{body}+{timestamp}");
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, signed.as_bytes());
    let mut expected = String::from("$1$");
    for byte in digest.as_ref() {
        let _ = write!(expected, "{byte:02x}");
    }
    if header("x-ovh-signature") != expected {
        return Some(refuse(StatusCode::BAD_REQUEST, "INVALID_SIGNATURE", "Invalid signature"));
    }
    None
}

/// A record as OVH describes it.
fn describe(id: u64, record: &Record) -> Value {
    json!({
        "id": id,
        "zone": record.zone,
        "subDomain": record.sub_domain,
        "fieldType": "TXT",
        "target": record.target,
        "ttl": record.ttl,
    })
}

/// The owner name of `sub_domain` (empty: the zone's apex) in `zone`.
fn owner(sub_domain: &str, zone: &str) -> String {
    if sub_domain.is_empty() { zone.to_string() } else { format!("{sub_domain}.{zone}") }
}

/// OVH's answer to a refused authentication: `{"errorCode", "httpCode", "message"}`.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let http = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default());
    super::json(status, json!({ "errorCode": code, "httpCode": http, "message": message }))
}

/// OVH's answer to a call it cannot serve: `{"class": "Client::NotFound", "message": …}`.
fn fail(status: StatusCode, message: &str) -> Response {
    let class =
        format!("Client::{}", status.canonical_reason().unwrap_or_default().replace(' ', ""));
    super::json(status, json!({ "class": class, "message": message }))
}

fn not_found(message: &str) -> Response {
    fail(StatusCode::NOT_FOUND, message)
}

/// The server's clock, in seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
