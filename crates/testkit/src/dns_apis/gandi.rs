//! Gandi's LiveDNS API v5 (<https://api.gandi.net/docs/livedns/>), its record sets:
//! `GET`, `PUT` (replace the whole set) and `DELETE`
//! `/v5/livedns/domains/{fqdn}/records/{rrset_name}/{rrset_type}`, authenticated by a
//! personal access token (`Authorization: Bearer TOKEN`).
//!
//! A record set is every value of one name and type: a PUT replaces it, so the fake applies
//! the difference between the set it held and the one sent. TXT values are written quoted
//! (`"\"text\""`), as LiveDNS writes them. Errors carry LiveDNS's body
//! (`{"code", "message", "object", "cause"}`, or `{"status": "error", "errors": […]}` for a
//! body that fails validation).

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

const HOST: &str = "api.gandi.net";
/// The personal access token the fake accepts.
const TOKEN: &str = "pat_certhub-test-5e0c1f4a-7b2d-4c9e-a1f3-6d8b2e9c0a17";
/// LiveDNS's bounds for `rrset_ttl`, and its default.
const MIN_TTL: u64 = 300;
const DEFAULT_TTL: u64 = 10800;

pub(super) fn api() -> Api {
    Api {
        name: "gandi",
        hosts: &[HOST],
        credential: |_| vec![("api-token", TOKEN.to_string())],
        router,
    }
}

struct Gandi {
    zones: Zones,
    /// The TTL of each record set (by owner name); the values live in `zones`.
    ttl: Mutex<HashMap<String, u64>>,
}

/// The body of a PUT on a record set.
#[derive(Deserialize)]
struct RrSet {
    rrset_ttl: Option<u64>,
    rrset_values: Vec<String>,
}

fn router(zones: Zones, _: Arc<Fixture>) -> Router {
    let gandi = Gandi { zones, ttl: Mutex::default() };
    Router::new().fallback(handle).with_state(Arc::new(gandi))
}

async fn handle(
    State(st): State<Arc<Gandi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.zones.log_request(&method, HOST, &uri);
    if super::bearer(&headers) != Some(TOKEN) {
        return error(
            StatusCode::UNAUTHORIZED,
            "The server could not verify that you authorized to access the document you \
             requested. Either you supplied the wrong credentials (e.g., bad api key), or your \
             access token has expired",
        );
    }
    let rest = uri.path().strip_prefix("/v5/livedns/domains/").unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').collect();
    let [domain, "records", name, rtype] = &parts[..] else {
        return error(StatusCode::NOT_FOUND, "The resource could not be found.");
    };
    let domain = normal(domain);
    if !st.zones.zones().contains(&domain) {
        return error(StatusCode::NOT_FOUND, "Unknown domain");
    }
    // Only TXT sets are held here: any other is one that does not exist.
    if !rtype.eq_ignore_ascii_case("TXT") {
        return error(StatusCode::NOT_FOUND, "The resource could not be found.");
    }
    // Names are relative to the domain, `@` being the domain itself.
    let name = normal(name);
    let fqdn = if name == "@" { domain.clone() } else { format!("{name}.{domain}") };
    let current = st.zones.txt(&fqdn);
    match method.as_str() {
        "GET" | "DELETE" if current.is_empty() => {
            error(StatusCode::NOT_FOUND, "The resource could not be found.")
        }
        "GET" => {
            let ttl = st.ttl.lock().unwrap().get(&fqdn).copied().unwrap_or(DEFAULT_TTL);
            let values: Vec<String> = current.iter().map(String::as_str).map(quote).collect();
            let href = format!("https://{HOST}/v5/livedns/domains/{domain}/records/{name}/TXT");
            super::json(
                StatusCode::OK,
                json!({
                    "rrset_name": name,
                    "rrset_type": "TXT",
                    "rrset_ttl": ttl,
                    "rrset_values": values,
                    "rrset_href": href,
                }),
            )
        }
        "PUT" => {
            let Ok(rrset) = serde_json::from_slice::<RrSet>(&body) else {
                return invalid("body", "Invalid JSON body: rrset_values is required");
            };
            let ttl = rrset.rrset_ttl.unwrap_or(DEFAULT_TTL);
            if ttl < MIN_TTL {
                return invalid(
                    "rrset_ttl",
                    &format!("{ttl} is less than minimum value {MIN_TTL}"),
                );
            }
            if rrset.rrset_values.is_empty() {
                return invalid("rrset_values", "Shorter than minimum length 1");
            }
            let wanted: Vec<String> =
                rrset.rrset_values.iter().map(String::as_str).map(super::txt_unquote).collect();
            // The set sent replaces the set held: remove what it lacks, add what is new.
            for value in &current {
                if !wanted.contains(value) {
                    st.zones.remove_txt(&fqdn, value).await;
                }
            }
            for value in &wanted {
                if !current.contains(value) {
                    st.zones.add_txt(&fqdn, value).await;
                }
            }
            st.ttl.lock().unwrap().insert(fqdn, ttl);
            super::json(StatusCode::CREATED, json!({ "message": "DNS Record Created" }))
        }
        "DELETE" => {
            for value in &current {
                st.zones.remove_txt(&fqdn, value).await;
            }
            st.ttl.lock().unwrap().remove(&fqdn);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method is not allowed for the requested URL.",
        ),
    }
}

/// LiveDNS's error body:
/// `{"code": 404, "message": …, "object": "HTTPNotFound", "cause": "Not Found"}`.
fn error(status: StatusCode, message: &str) -> Response {
    let cause = status.canonical_reason().unwrap_or_default();
    let object = format!("HTTP{}", cause.replace(' ', ""));
    super::json(
        status,
        json!({ "code": status.as_u16(), "message": message, "object": object, "cause": cause }),
    )
}

/// LiveDNS's answer to a body that fails validation (400).
fn invalid(field: &str, description: &str) -> Response {
    super::json(
        StatusCode::BAD_REQUEST,
        json!({
            "status": "error",
            "errors": [{ "location": "body", "name": field, "description": description }],
        }),
    )
}

/// A TXT value as LiveDNS writes it: quoted, inner quotes escaped.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\\\""))
}
