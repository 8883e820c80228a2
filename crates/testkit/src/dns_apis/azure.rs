//! Azure DNS, as Microsoft documents it. Sign-in is the Microsoft identity platform's OAuth
//! 2.0 client credentials flow (`POST login.microsoftonline.com/{tenant}/oauth2/v2.0/token`
//! with `scope`, or v1 `/{tenant}/oauth2/token` with `resource`); the zone is then managed
//! through Azure Resource Manager's DNS API, `Record Sets - Get / Create Or Update /
//! Delete` (`management.azure.com/subscriptions/{s}/resourceGroups/{g}/providers/
//! Microsoft.Network/dnsZones/{zone}/TXT/{relative name}?api-version=…`). Only TXT record
//! sets are held; names are relative to the zone (`@` is the apex), and a PUT replaces the
//! whole set. Errors are AADSTS error JSON for sign-in and ARM's `{"error":{code,message}}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::hmac;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use super::{Api, Fixture, Zones, form_pairs, normal};

const LOGIN: &str = "login.microsoftonline.com";
const MANAGEMENT: &str = "management.azure.com";
const TENANT: &str = "8f3c1a52-6d0e-4b7a-9c21-5e4d3b2a1f00";
const CLIENT_ID: &str = "2b7e9d41-0c3a-4f5e-8a6b-7c1d2e3f4a5b";
const CLIENT_SECRET: &str = "Qx8Q~certhub.azure-test_secret";
const SUBSCRIPTION: &str = "5d2c7e10-3b4a-4c8d-9e6f-0a1b2c3d4e5f";
const RESOURCE_GROUP: &str = "certhub-dns";
/// The resource ids ARM answers to (without `/.default` or a trailing slash).
const RESOURCES: &[&str] = &["https://management.azure.com", "https://management.core.windows.net"];
/// The api-versions of Microsoft.Network/dnszones.
const API_VERSIONS: &[&str] = &[
    "2016-04-01",
    "2017-09-01",
    "2017-10-01",
    "2018-03-01-preview",
    "2018-05-01",
    "2023-07-01-preview",
];

pub(super) fn api() -> Api {
    Api { name: "azure", hosts: &[LOGIN, MANAGEMENT], credential, router }
}

fn credential(_: &Fixture) -> Vec<(&'static str, String)> {
    vec![
        ("tenant-id", TENANT.to_string()),
        ("client-id", CLIENT_ID.to_string()),
        ("client-secret", CLIENT_SECRET.to_string()),
        ("subscription-id", SUBSCRIPTION.to_string()),
        ("resource-group", RESOURCE_GROUP.to_string()),
    ]
}

struct Fake {
    zones: Zones,
    /// Signs the access tokens issued: each host gets its own router, so the management
    /// host knows a token by its MAC under a key both derive from this run's fixture.
    key: hmac::Key,
    /// Record sets by owner name: (etag, TTL). Their values are those `zones` holds.
    sets: tokio::sync::Mutex<HashMap<String, (String, u64)>>,
}

fn router(zones: Zones, fixture: Arc<Fixture>) -> Router {
    let secret = [b"azure".as_slice(), fixture.rsa_public_der.as_slice()].concat();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let fake = Fake { zones, key, sets: Default::default() };
    Router::new().fallback(handle).with_state(Arc::new(fake))
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn next() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A GUID-shaped id (etags, trace and correlation ids).
fn guid() -> String {
    let n = next();
    format!("{:08x}-0000-4000-8000-{n:012x}", n ^ 0x5eed_c0de)
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = super::host_of(&headers);
    fake.zones.log_request(&method, &host, &uri);
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    if host == LOGIN {
        return match segments.as_slice() {
            [tenant, "oauth2", "v2.0", "token"] if method == Method::POST => {
                token(&fake, tenant, &body, true)
            }
            [tenant, "oauth2", "token"] if method == Method::POST => {
                token(&fake, tenant, &body, false)
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    // Resource Manager: the bearer token, the api-version, then the resource path.
    let Some(bearer) = super::bearer(&headers) else {
        let message = "Authentication failed. The 'Authorization' header is missing.";
        return arm_error(StatusCode::UNAUTHORIZED, "AuthenticationFailed", message);
    };
    if !valid_token(&fake.key, bearer) {
        let message = "The access token is invalid.";
        return arm_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message);
    }
    let query = form_pairs(uri.query().unwrap_or_default());
    let Some((_, version)) = query.iter().find(|(k, _)| k == "api-version") else {
        let message =
            "The api-version query parameter (?api-version=) is required for all requests.";
        return arm_error(StatusCode::BAD_REQUEST, "MissingApiVersionParameter", message);
    };
    let literal =
        |i: usize, want: &str| segments.get(i).is_some_and(|s| s.eq_ignore_ascii_case(want));
    let fixed = [
        (0, "subscriptions"),
        (2, "resourceGroups"),
        (4, "providers"),
        (5, "Microsoft.Network"),
        (6, "dnsZones"),
    ];
    let path_ok = segments.len() == 10 && fixed.into_iter().all(|(i, want)| literal(i, want));
    if !path_ok {
        let message = format!("No HTTP resource was found that matches the URI '{}'.", uri.path());
        return arm_error(StatusCode::NOT_FOUND, "NotFound", &message);
    }
    let (sub, rg, zone, kind, name) =
        (segments[1], segments[3], normal(segments[7]), segments[8], segments[9]);
    if !sub.eq_ignore_ascii_case(SUBSCRIPTION) {
        let message = format!("The subscription '{sub}' could not be found.");
        return arm_error(StatusCode::NOT_FOUND, "SubscriptionNotFound", &message);
    }
    if !API_VERSIONS.contains(&version.as_str()) {
        let message = format!(
            "No registered resource provider found for location 'global' and API version \
             '{version}' for type 'dnszones'. The supported api-versions are '{}'.",
            API_VERSIONS.join(", ")
        );
        return arm_error(StatusCode::BAD_REQUEST, "NoRegisteredProviderFound", &message);
    }
    if !rg.eq_ignore_ascii_case(RESOURCE_GROUP) {
        let message = format!("Resource group '{rg}' could not be found.");
        return arm_error(StatusCode::NOT_FOUND, "ResourceGroupNotFound", &message);
    }
    if !fake.zones.zones().contains(&zone) {
        let message = format!(
            "The Resource 'Microsoft.Network/dnszones/{zone}' under resource group '{rg}' was \
             not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        );
        return arm_error(StatusCode::NOT_FOUND, "ResourceNotFound", &message);
    }
    if !kind.eq_ignore_ascii_case("TXT") {
        let message = format!("This fake of Azure DNS holds TXT record sets only, not {kind}.");
        return arm_error(StatusCode::BAD_REQUEST, "BadRequest", &message);
    }
    let fqdn = if name == "@" { zone.clone() } else { normal(&format!("{name}.{zone}")) };
    record_set(&fake, &method, &headers, &body, &zone, name, &fqdn).await
}

/// The client credentials grant: `client_id` and `client_secret` for a `.default` scope (v2)
/// or a `resource` (v1) of Resource Manager.
fn token(fake: &Fake, tenant: &str, body: &[u8], v2: bool) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(body));
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let bad = StatusCode::BAD_REQUEST;
    let missing = |p: &str| {
        let message = format!("The request body must contain the following parameter: '{p}'.");
        aad_error(bad, "invalid_request", 900144, &message)
    };
    if !tenant.eq_ignore_ascii_case(TENANT) {
        let message = format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and \
             are signing into the correct cloud."
        );
        return aad_error(bad, "invalid_request", 90002, &message);
    }
    match get("grant_type") {
        None => return missing("grant_type"),
        Some("client_credentials") => {}
        Some(other) => {
            let message = format!("The app requested an unsupported grant type '{other}'.");
            return aad_error(bad, "unsupported_grant_type", 70003, &message);
        }
    }
    let Some(client_id) = get("client_id") else { return missing("client_id") };
    if client_id != CLIENT_ID {
        let message = format!(
            "Application with identifier '{client_id}' was not found in the directory \
             '{TENANT}'. This can happen if the application has not been installed by the \
             administrator of the tenant or consented to by any user in the tenant."
        );
        return aad_error(bad, "unauthorized_client", 700016, &message);
    }
    let unauthorized = StatusCode::UNAUTHORIZED;
    match get("client_secret") {
        None => {
            let message = "The request body must contain the following parameter: \
                           'client_assertion' or 'client_secret'.";
            return aad_error(unauthorized, "invalid_client", 7000218, message);
        }
        Some(secret) if secret != CLIENT_SECRET => {
            let message = format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is \
                 the client secret value, not the client secret ID, for a secret added to app \
                 '{CLIENT_ID}'."
            );
            return aad_error(unauthorized, "invalid_client", 7000215, &message);
        }
        Some(_) => {}
    }
    let resource = if v2 {
        let Some(scope) = get("scope") else { return missing("scope") };
        let Some(resource) = scope.strip_suffix("/.default") else {
            let message = format!(
                "The provided value for scope {scope} is not valid. Client credential flows \
                 must have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            );
            return aad_error(bad, "invalid_scope", 1002012, &message);
        };
        resource
    } else {
        let Some(resource) = get("resource") else { return missing("resource") };
        resource
    };
    if !RESOURCES.contains(&resource.trim_end_matches('/')) {
        let message = format!(
            "The resource principal named {resource} was not found in the tenant named \
             {TENANT}. This can happen if the application has not been installed by the \
             administrator of the tenant or consented to by any user in the tenant."
        );
        return aad_error(bad, "invalid_resource", 500011, &message);
    }
    let payload = format!("{}.{CLIENT_ID}", next());
    let tag = hmac::sign(&fake.key, payload.as_bytes());
    let access_token = format!("{payload}.{}", B64.encode(tag.as_ref()));
    let body = json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": access_token,
    });
    super::json(StatusCode::OK, body)
}

fn valid_token(key: &hmac::Key, token: &str) -> bool {
    let Some((payload, tag)) = token.rsplit_once('.') else { return false };
    B64.decode(tag).is_ok_and(|tag| hmac::verify(key, payload.as_bytes(), &tag).is_ok())
}

/// Get, Create Or Update (the whole set; `If-Match` / `If-None-Match: *` honoured) or
/// Delete the TXT record set `name` (relative) of `zone`.
async fn record_set(
    fake: &Fake,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    zone: &str,
    name: &str,
    fqdn: &str,
) -> Response {
    let mut sets = fake.sets.lock().await;
    let current = fake.zones.txt(fqdn);
    if !current.is_empty() && !sets.contains_key(fqdn) {
        sets.insert(fqdn.to_string(), (guid(), 3600)); // values put in `zones` directly
    }
    let meta = sets.get(fqdn).cloned();
    let header =
        |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(|v| v.trim_matches('"'));
    let stale = match header("if-match") {
        Some("*") => meta.is_none(),
        Some(etag) => meta.as_ref().is_none_or(|(e, _)| e != etag),
        None => false,
    };
    if stale || (header("if-none-match") == Some("*") && meta.is_some()) {
        let message = format!("The Record set {name} has been modified (etag mismatch).");
        return arm_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed", &message);
    }
    let view = |etag: &str, ttl: u64, values: &[String]| {
        let records: Vec<Value> = values.iter().map(|v| json!({"value": chunks(v)})).collect();
        let group = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}");
        json!({
            "id": format!("{group}/providers/Microsoft.Network/dnszones/{zone}/TXT/{name}"),
            "name": name,
            "type": "Microsoft.Network/dnszones/TXT",
            "etag": etag,
            "properties": {
                "fqdn": format!("{fqdn}."),
                "TTL": ttl,
                "provisioningState": "Succeeded",
                "TXTRecords": records,
            },
        })
    };
    if method == Method::GET {
        let Some((etag, ttl)) = meta else {
            let message = format!(
                "The resource record '{name}' does not exist in resource group \
                 '{RESOURCE_GROUP}' of subscription '{SUBSCRIPTION}'."
            );
            return arm_error(StatusCode::NOT_FOUND, "NotFound", &message);
        };
        return super::json(StatusCode::OK, view(&etag, ttl, &current));
    }
    let values = if method == Method::PUT {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let props = parsed.as_ref().and_then(|b| b.get("properties"));
        let Some(props) = props.filter(|p| p.is_object()) else {
            let message = "The request content was invalid: 'properties' is required.";
            return arm_error(StatusCode::BAD_REQUEST, "BadRequest", message);
        };
        let mut values: Vec<String> = Vec::new();
        for record in props.get("TXTRecords").and_then(Value::as_array).into_iter().flatten() {
            let Some(parts) = record.get("value").and_then(Value::as_array) else {
                let message = "Each TXT record must have a 'value' array of strings.";
                return arm_error(StatusCode::BAD_REQUEST, "BadRequest", message);
            };
            let value: String = parts.iter().filter_map(Value::as_str).collect();
            if !values.contains(&value) {
                values.push(value);
            }
        }
        Some((values, props.get("TTL").and_then(Value::as_u64).unwrap_or(3600)))
    } else if method == Method::DELETE {
        None
    } else {
        let message = format!("The requested resource does not support http method '{method}'.");
        return arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &message);
    };
    // Make the set's values the new ones (none for a delete): remove and add the difference.
    let new = values.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
    for value in current.iter().filter(|v| !new.contains(v)) {
        fake.zones.remove_txt(fqdn, value).await;
    }
    for value in new.iter().filter(|v| !current.contains(v)) {
        fake.zones.add_txt(fqdn, value).await;
    }
    let Some((_, ttl)) = values else {
        // 200 when a set was deleted, 204 when there was none.
        let gone = sets.remove(fqdn).is_some();
        let status = if gone { StatusCode::OK } else { StatusCode::NO_CONTENT };
        return status.into_response();
    };
    let etag = guid();
    sets.insert(fqdn.to_string(), (etag.clone(), ttl));
    let status = if meta.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    super::json(status, view(&etag, ttl, &new))
}

/// A TXT value as Azure returns it: strings of at most 255 bytes.
fn chunks(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for c in value.chars() {
        if out.last().is_some_and(|s| s.len() + c.len_utf8() > 255) {
            out.push(String::new());
        }
        out.last_mut().expect("one chunk at least").push(c);
    }
    out
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    super::json(status, json!({"error": {"code": code, "message": message}}))
}

/// The Microsoft identity platform's error JSON, `AADSTS{code}: …` with its trace ids.
fn aad_error(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let (trace, correlation, timestamp) = (guid(), guid(), super::utc_now("%Y-%m-%d %H:%M:%SZ"));
    let description = format!(
        "AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\n\
         Timestamp: {timestamp}"
    );
    super::json(
        status,
        json!({
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://{LOGIN}/error?code={code}"),
        }),
    )
}
