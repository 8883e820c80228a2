//! GoDaddy's Domains API v1 (<https://developer.godaddy.com/doc/endpoint/domains>), its
//! records of one name and type: `GET`, `PUT` (replace them all) and `DELETE`
//! `/v1/domains/{domain}/records/{type}/{name}`, authenticated by an API key and secret
//! (`Authorization: sso-key KEY:SECRET`).
//!
//! A PUT replaces every record of the name and type, so the fake applies the difference
//! between the values it held and the ones sent. GoDaddy refuses a TTL under 600 seconds.
//! Errors carry GoDaddy's body (`{"code": "UNABLE_TO_AUTHENTICATE", "message": …}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Api, Fixture, Zones, normal};

const HOST: &str = "api.godaddy.com";
/// The API key and secret the fake accepts.
const KEY: &str = "certhubTestKey_3mQ7xV9pL2";
const SECRET: &str = "certhubTestSecret_8kR4tW6n";
/// GoDaddy's least TTL, and the TTL a record is given when none is sent.
const MIN_TTL: u64 = 600;
const DEFAULT_TTL: u64 = 3600;

pub(super) fn api() -> Api {
    Api {
        name: "godaddy",
        hosts: &[HOST],
        credential: |_| vec![("api-key", KEY.to_string()), ("api-secret", SECRET.to_string())],
        router,
    }
}

struct GoDaddy {
    zones: Zones,
    /// The TTL of each owner name's TXT records; the values live in `zones`.
    ttl: Mutex<HashMap<String, u64>>,
}

/// One record of a PUT body (`name`, `type`, `priority`… are ignored: the path names them).
#[derive(Deserialize)]
struct Record {
    data: String,
    ttl: Option<u64>,
}

fn router(zones: Zones, _: Arc<Fixture>) -> Router {
    let godaddy = GoDaddy { zones, ttl: Mutex::default() };
    Router::new().fallback(handle).with_state(Arc::new(godaddy))
}

async fn handle(
    State(st): State<Arc<GoDaddy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.zones.log_request(&method, HOST, &uri);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    match auth.and_then(|a| a.strip_prefix("sso-key ")).and_then(|c| c.split_once(':')) {
        None => {
            let message = "Unauthorized : Credentials must be specified";
            return error(StatusCode::UNAUTHORIZED, "MALFORMED_CREDENTIALS", message);
        }
        Some((key, secret)) if key != KEY || secret != SECRET => {
            let message = "Unauthorized : Could not authenticate API key/secret";
            return error(StatusCode::UNAUTHORIZED, "UNABLE_TO_AUTHENTICATE", message);
        }
        Some(_) => {}
    }
    let rest = uri.path().strip_prefix("/v1/domains/").unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').collect();
    let [domain, "records", rtype, name] = &parts[..] else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource was not found");
    };
    let domain = normal(domain);
    if !st.zones.zones().contains(&domain) {
        let message = "The given domain is not registered, or does not have a zone file";
        return error(StatusCode::NOT_FOUND, "UNKNOWN_DOMAIN", message);
    }
    // Only TXT records are held here.
    if !rtype.eq_ignore_ascii_case("TXT") {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "Only TXT records are held here");
    }
    // Names are relative to the domain, `@` being the domain itself.
    let name = normal(name);
    let fqdn = if name == "@" { domain } else { format!("{name}.{domain}") };
    let current = st.zones.txt(&fqdn);
    match method.as_str() {
        "GET" => {
            let ttl = st.ttl.lock().unwrap().get(&fqdn).copied().unwrap_or(DEFAULT_TTL);
            let records: Vec<_> = current
                .iter()
                .map(|data| json!({ "data": data, "name": name, "ttl": ttl, "type": "TXT" }))
                .collect();
            super::json(StatusCode::OK, json!(records))
        }
        "PUT" => {
            let Ok(records) = serde_json::from_slice::<Vec<Record>>(&body) else {
                let message = "is not an array of records, each with data";
                return invalid("UNEXPECTED_TYPE", "records", message);
            };
            for (i, record) in records.iter().enumerate() {
                if record.ttl.is_some_and(|ttl| ttl < MIN_TTL) {
                    let path = format!("records[{i}].ttl");
                    let message = format!("must have a minimum value of {MIN_TTL}");
                    return invalid("UNKNOWN_RESTRICTION", &path, &message);
                }
            }
            let wanted: Vec<&str> = records.iter().map(|r| r.data.as_str()).collect();
            // The records sent replace those held: remove what they lack, add what is new.
            for value in &current {
                if !wanted.contains(&value.as_str()) {
                    st.zones.remove_txt(&fqdn, value).await;
                }
            }
            for value in &wanted {
                if !current.iter().any(|v| v.as_str() == *value) {
                    st.zones.add_txt(&fqdn, value).await;
                }
            }
            let ttl = records.first().and_then(|r| r.ttl).unwrap_or(DEFAULT_TTL);
            st.ttl.lock().unwrap().insert(fqdn, ttl);
            StatusCode::OK.into_response()
        }
        "DELETE" if current.is_empty() => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "No records found for the given name and type",
        ),
        "DELETE" => {
            for value in &current {
                st.zones.remove_txt(&fqdn, value).await;
            }
            st.ttl.lock().unwrap().remove(&fqdn);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "Method not allowed"),
    }
}

/// GoDaddy's error body: `{"code": "UNKNOWN_DOMAIN", "message": …}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    super::json(status, json!({ "code": code, "message": message }))
}

/// GoDaddy's answer to a body that fails its schema (422), naming the field.
fn invalid(code: &str, path: &str, message: &str) -> Response {
    super::json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({
            "code": "INVALID_BODY",
            "fields": [{ "code": code, "message": message, "path": path }],
            "message": "Request body doesn't fulfill schema, see details in `fields`",
        }),
    )
}
