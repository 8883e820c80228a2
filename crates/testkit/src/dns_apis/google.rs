//! Google Cloud DNS, as Google documents it. Sign-in is "OAuth 2.0 for server to server
//! applications": `POST oauth2.googleapis.com/token` with grant type
//! `urn:ietf:params:oauth:grant-type:jwt-bearer` and an RS256 JWT assertion signed with the
//! service account's key (`iss` its email, `aud` the token URI, `scope`, `iat`, `exp`); the
//! zone is then managed through the Cloud DNS API v1 (`dns.googleapis.com/dns/v1/projects/
//! {project}/managedZones`): `managedZones.list` / `get`, `resourceRecordSets.list`
//! (`…/{zone}/rrsets?name=&type=`) and `changes.create` (`POST …/{zone}/changes`, additions
//! and deletions applied atomically; a deletion must match the record set exactly). Only
//! TXT record sets are held; names are absolute, with the trailing dot. Errors are OAuth's
//! `{error, error_description}` and Google's `{"error":{code,message,errors:[…]}}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{hmac, signature};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use super::{Api, Fixture, Zones, form_pairs, normal};

const TOKEN_HOST: &str = "oauth2.googleapis.com";
const DNS_HOST: &str = "dns.googleapis.com";
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const PROJECT: &str = "certhub-test";
const CLIENT_EMAIL: &str = "certhub-dns@certhub-test.iam.gserviceaccount.com";
/// The scopes that allow changing Cloud DNS records.
const DNS_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/ndev.clouddns.readwrite",
    "https://www.googleapis.com/auth/cloud-platform",
];
/// The TTL of a record set this fake did not create.
const DEFAULT_TTL: u64 = 300;

pub(super) fn api() -> Api {
    Api { name: "gcloud", hosts: &[TOKEN_HOST, DNS_HOST], credential, router }
}

fn credential(fixture: &Fixture) -> Vec<(&'static str, String)> {
    let account = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "3f1c2b7a9d0e4c5b8a6f1e2d3c4b5a6978877665",
        "private_key": fixture.rsa_pkcs8_pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "104729383641522750193",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": TOKEN_URI,
    });
    vec![("service-account", account.to_string()), ("project-id", PROJECT.to_string())]
}

struct Fake {
    zones: Zones,
    fixture: Arc<Fixture>,
    /// Signs the access tokens issued: each host gets its own router, so the DNS host knows
    /// a token by its MAC under a key both derive from this run's fixture.
    key: hmac::Key,
    /// The TTLs of record sets by owner name (their values are those `zones` holds).
    ttls: tokio::sync::Mutex<HashMap<String, u64>>,
}

fn router(zones: Zones, fixture: Arc<Fixture>) -> Router {
    let secret = [b"gcloud".as_slice(), fixture.rsa_public_der.as_slice()].concat();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let fake = Fake { zones, fixture, key, ttls: Default::default() };
    Router::new().fallback(handle).with_state(Arc::new(fake))
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn next() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
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
    if host == TOKEN_HOST {
        return match (method == Method::POST, uri.path()) {
            (true, "/token") => token(&fake, &body),
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    // Cloud DNS: the bearer token (with a scope for DNS), then the resource.
    match super::bearer(&headers).and_then(|t| dns_scope(&fake.key, t)) {
        None => {
            let message = "Request had invalid authentication credentials. Expected OAuth 2 \
                           access token, login cookie or other valid authentication credential. \
                           See https://developers.google.com/identity/sign-in/web/devconsole-project.";
            return google_error(StatusCode::UNAUTHORIZED, "authError", message);
        }
        Some(false) => {
            let message = "Request had insufficient authentication scopes.";
            return google_error(StatusCode::FORBIDDEN, "insufficientPermissions", message);
        }
        Some(true) => {}
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let ["dns", "v1", "projects", project, "managedZones", rest @ ..] = segments.as_slice() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if *project != PROJECT {
        let message = "The caller does not have permission";
        return google_error(StatusCode::FORBIDDEN, "forbidden", message);
    }
    let query = form_pairs(uri.query().unwrap_or_default());
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let zones = fake.zones.zones();
    let Some(zone) = rest.first() else {
        // managedZones.list, optionally of the zone named `dnsName`.
        let dns_name = param("dnsName").map(normal);
        let found =
            zones.iter().enumerate().filter(|(_, z)| dns_name.as_ref().is_none_or(|d| d == *z));
        let list: Vec<Value> = found.map(|(i, z)| zone_json(i, z)).collect();
        let body = json!({"kind": "dns#managedZonesListResponse", "managedZones": list});
        return super::json(StatusCode::OK, body);
    };
    // A managed zone is named by its name or its id.
    let Some((i, apex)) =
        zones.iter().enumerate().find(|(i, z)| zone_name(z) == *zone || zone_id(*i) == *zone)
    else {
        let message =
            format!("The 'parameters.managedZone' resource named '{zone}' does not exist.");
        return google_error(StatusCode::NOT_FOUND, "notFound", &message);
    };
    match (&rest[1..], method == Method::GET) {
        ([], true) => super::json(StatusCode::OK, zone_json(i, apex)),
        (["rrsets"], true) => list(&fake, apex, param("name"), param("type")).await,
        (["changes"], false) if method == Method::POST => change(&fake, apex, &body).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The JWT bearer grant: a JWT of the service account, signed with its key (RS256).
fn token(fake: &Fake, body: &[u8]) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(body));
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let error = |code: &str, description: &str| {
        let body = json!({"error": code, "error_description": description});
        super::json(StatusCode::BAD_REQUEST, body)
    };
    let grant = get("grant_type").unwrap_or_default();
    if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return error("unsupported_grant_type", &format!("Invalid grant_type: {grant}"));
    }
    let Some(assertion) = get("assertion") else {
        return error("invalid_request", "Missing required parameter: assertion");
    };
    // header.claims.signature, each base64url.
    let decode = |s: &str| B64.decode(s.trim_end_matches('=')).ok();
    let part = |s: &str| decode(s).and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, c, s] = parts.as_slice() else { return error("invalid_grant", "Invalid JWT.") };
    let (Some(header), Some(claims), Some(sig)) = (part(h), part(c), decode(s)) else {
        return error("invalid_grant", "Invalid JWT.");
    };
    let claim = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
    if claim("iss") != CLIENT_EMAIL {
        return error("invalid_grant", "Invalid grant: account not found");
    }
    let public = &fake.fixture.rsa_public_der;
    let key = signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public);
    let signed = format!("{h}.{c}");
    let rs256 = header.get("alg").and_then(Value::as_str) == Some("RS256");
    if !rs256 || key.verify(signed.as_bytes(), &sig).is_err() {
        return error("invalid_grant", "Invalid JWT Signature.");
    }
    if claim("aud") != TOKEN_URI {
        return error("invalid_grant", "Invalid JWT: Failed audience check.");
    }
    // At most an hour long, and now within it (allowing for a little clock skew).
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let time = |k: &str| claims.get(k).and_then(Value::as_u64).unwrap_or_default();
    let (iat, exp) = (time("iat"), time("exp"));
    if iat > exp || exp - iat > 3600 || iat > now + 300 || exp < now {
        let description = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                           reasonable timeframe. Check your iat and exp values in the JWT claim.";
        return error("invalid_grant", description);
    }
    let scopes = claim("scope");
    if scopes.trim().is_empty() {
        return error("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    let dns = scopes.split_whitespace().any(|s| DNS_SCOPES.contains(&s));
    let payload = format!("ya29.{}.{}", next(), if dns { "dns" } else { "other" });
    let tag = hmac::sign(&fake.key, payload.as_bytes());
    let access_token = format!("{payload}.{}", B64.encode(tag.as_ref()));
    let body = json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"});
    super::json(StatusCode::OK, body)
}

/// Whether a token this fake issued carries a scope for Cloud DNS (None: not issued here).
fn dns_scope(key: &hmac::Key, token: &str) -> Option<bool> {
    let (payload, tag) = token.rsplit_once('.')?;
    hmac::verify(key, payload.as_bytes(), &B64.decode(tag).ok()?).ok()?;
    Some(payload.ends_with(".dns"))
}

/// resourceRecordSets.list: the zone's TXT record sets, or those named `name` (of `type`).
async fn list(fake: &Fake, apex: &str, name: Option<&str>, kind: Option<&str>) -> Response {
    if kind.is_some() && name.is_none() {
        let message = "The 'parameters.name' parameter is required but was missing.";
        return google_error(StatusCode::BAD_REQUEST, "required", message);
    }
    let ttls = fake.ttls.lock().await;
    let rrsets: Vec<Value> = fake
        .zones
        .all_txt()
        .into_iter()
        .filter(|(owner, _)| fake.zones.zone_of(owner).as_deref() == Some(apex))
        .filter(|(owner, _)| name.is_none_or(|n| normal(n) == *owner))
        .filter(|_| kind.is_none_or(|k| k == "TXT"))
        .map(|(owner, values)| {
            let rrdatas: Vec<String> = values.iter().map(String::as_str).map(quote).collect();
            let ttl = ttls.get(&owner).copied().unwrap_or(DEFAULT_TTL);
            json!({
                "kind": "dns#resourceRecordSet",
                "name": format!("{owner}."),
                "type": "TXT",
                "ttl": ttl,
                "rrdatas": rrdatas,
            })
        })
        .collect();
    let body = json!({"kind": "dns#resourceRecordSetsListResponse", "rrsets": rrsets});
    super::json(StatusCode::OK, body)
}

/// A record set as it is now: (TTL, values), None if there is none.
type Set = Option<(u64, Vec<String>)>;

/// changes.create: every deletion must match its record set exactly (412 otherwise), no
/// addition may meet a set still there (409); then all are applied at once.
async fn change(fake: &Fake, apex: &str, body: &[u8]) -> Response {
    let Ok(change) = serde_json::from_slice::<Value>(body) else {
        return google_error(StatusCode::BAD_REQUEST, "parseError", "Parse Error");
    };
    let sets_of = |k: &str| change.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    let (additions, deletions) = (sets_of("additions"), sets_of("deletions"));
    if additions.is_empty() && deletions.is_empty() {
        let message = "The 'entity.change' parameter is required but was missing.";
        return google_error(StatusCode::BAD_REQUEST, "required", message);
    }
    let mut ttls = fake.ttls.lock().await;
    // Each record set the change touches, as it will be.
    let mut after: BTreeMap<String, Set> = BTreeMap::new();
    let now = |after: &BTreeMap<String, Set>, ttls: &HashMap<String, u64>, owner: &str| {
        after.get(owner).cloned().unwrap_or_else(|| {
            let values = fake.zones.txt(owner);
            let ttl = ttls.get(owner).copied().unwrap_or(DEFAULT_TTL);
            (!values.is_empty()).then_some((ttl, values))
        })
    };
    // Deletions first, then additions, each named as Google names it in an error.
    let field = |what: &str, i: usize| format!("entity.change.{what}[{i}]");
    let deletes = deletions.iter().enumerate().map(|(i, s)| (true, field("deletions", i), s));
    let adds = additions.iter().enumerate().map(|(i, s)| (false, field("additions", i), s));
    for (deletion, field, set) in deletes.chain(adds) {
        let (owner, ttl, values) = match rrset(&fake.zones, apex, set, &field) {
            Ok(parsed) => parsed,
            Err((reason, message)) => {
                return google_error(StatusCode::BAD_REQUEST, reason, &message);
            }
        };
        let current = now(&after, &ttls, &owner);
        if !deletion {
            if current.is_some() {
                let message =
                    format!("The resource '{field}' named '{owner}. (TXT)' already exists");
                return google_error(StatusCode::CONFLICT, "alreadyExists", &message);
            }
            after.insert(owner, Some((ttl, values)));
            continue;
        }
        let Some((old_ttl, old)) = current else {
            let message = format!("The resource '{field}' named '{owner}. (TXT)' does not exist.");
            return google_error(StatusCode::NOT_FOUND, "notFound", &message);
        };
        if old_ttl != ttl || old.len() != values.len() || !old.iter().all(|v| values.contains(v)) {
            let message = format!("Precondition not met for '{field}'");
            return google_error(StatusCode::PRECONDITION_FAILED, "conditionNotMet", &message);
        }
        after.insert(owner, None);
    }
    // Apply: each set's values become the new ones (by their difference), with its TTL.
    for (owner, set) in &after {
        let old = fake.zones.txt(owner);
        let new = set.as_ref().map(|(_, v)| v.clone()).unwrap_or_default();
        for value in old.iter().filter(|v| !new.contains(v)) {
            fake.zones.remove_txt(owner, value).await;
        }
        for value in new.iter().filter(|v| !old.contains(v)) {
            fake.zones.add_txt(owner, value).await;
        }
        if let Some((ttl, _)) = set {
            ttls.insert(owner.clone(), *ttl);
        } else {
            ttls.remove(owner);
        }
    }
    let body = json!({
        "kind": "dns#change",
        "id": next().to_string(),
        "status": "done",
        "startTime": super::utc_now("%Y-%m-%dT%H:%M:%S.000Z"),
        "additions": additions,
        "deletions": deletions,
    });
    super::json(StatusCode::OK, body)
}

/// A ResourceRecordSet of a change: (owner name, TTL, unquoted values).
type Parsed = (String, u64, Vec<String>);

/// The ResourceRecordSet `set` of a change, or the error's (reason, message).
fn rrset(
    zones: &Zones,
    apex: &str,
    set: &Value,
    field: &str,
) -> Result<Parsed, (&'static str, String)> {
    let text = |k: &str| set.get(k).and_then(Value::as_str).unwrap_or_default();
    let (name, kind) = (text("name"), text("type"));
    let required =
        |p: &str| ("required", format!("The '{field}.{p}' parameter is required but was missing."));
    let invalid = |p: &str, v: &str| ("invalid", format!("Invalid value for '{field}.{p}': '{v}'"));
    if name.is_empty() {
        return Err(required("name"));
    }
    if !name.ends_with('.') || zones.zone_of(name).as_deref() != Some(apex) {
        return Err(invalid("name", name));
    }
    if kind != "TXT" {
        return Err(invalid("type", kind)); // this fake holds TXT record sets only
    }
    let mut values: Vec<String> = Vec::new();
    let rrdatas = set.get("rrdatas").and_then(Value::as_array).into_iter().flatten();
    for value in rrdatas.filter_map(Value::as_str).map(super::txt_unquote) {
        if !values.contains(&value) {
            values.push(value);
        }
    }
    if values.is_empty() {
        return Err(required("rrdata"));
    }
    Ok((normal(name), set.get("ttl").and_then(Value::as_u64).unwrap_or(DEFAULT_TTL), values))
}

/// A TXT value as Cloud DNS shows it: quoted character-strings of at most 255 bytes.
fn quote(value: &str) -> String {
    let (mut out, mut len) = (String::from("\""), 0);
    for c in value.chars() {
        if len + c.len_utf8() > 255 {
            out.push_str("\" \"");
            len = 0;
        }
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
        len += c.len_utf8();
    }
    out.push('"');
    out
}

fn zone_name(apex: &str) -> String {
    apex.replace('.', "-")
}

fn zone_id(i: usize) -> String {
    (7_140_000_000_000_000_000u64 + i as u64).to_string()
}

fn zone_json(i: usize, apex: &str) -> Value {
    let servers: Vec<String> =
        (1..=4).map(|n| format!("ns-cloud-a{n}.googledomains.com.")).collect();
    json!({
        "kind": "dns#managedZone",
        "name": zone_name(apex),
        "dnsName": format!("{apex}."),
        "description": "",
        "id": zone_id(i),
        "nameServers": servers,
        "visibility": "public",
    })
}

fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let errors = json!([{"domain": "global", "reason": reason, "message": message}]);
    let body = json!({"error": {"code": status.as_u16(), "message": message, "errors": errors}});
    super::json(status, body)
}
