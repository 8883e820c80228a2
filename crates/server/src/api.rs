//! The handlers of `/api/v1`.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use certhub_store::{CertRecord, IssuedRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{self, Caller, Need, Role, SCOPES};
use crate::{AppState, Problem};

type ApiResult<T> = Result<T, Problem>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/setup", post(setup))
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/v1/users", post(create_user))
        .route("/api/v1/certificates", get(list_certificates).post(create_certificate))
        .route("/api/v1/certificates/{name}", get(get_certificate).delete(delete_certificate))
        .route("/api/v1/certificates/{name}/history", get(certificate_history))
        .route("/api/v1/certificates/{name}/pull", get(pull_certificate))
        .route("/api/v1/certificates/{name}/request", post(request_certificate))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/accounts", get(list_accounts).post(create_account))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/audit/verify", get(audit_verify))
        .fallback(|| async { Problem::not_found("no such endpoint; see /api/v1/openapi.json") })
}

async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let users = state.store.user_count().await?;
    Ok(Json(json!({ "status": "ok", "setup_required": users == 0 })))
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

/// A request body, with a problem naming the rule when it does not parse.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        // serde names the field in "missing field `x`" and "unknown field `x`".
        let field = msg.split('`').nth(1).unwrap_or("body").to_string();
        Problem::invalid(&field, format!("the JSON body does not fit: {msg}"))
    })
}

fn check_username(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Problem::invalid("username", "use 1 to 64 letters, digits, '.', '_', '-' or '@'"))
    }
}

fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 12 {
        return Err(Problem::invalid("password", "use at least 12 characters"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupBody {
    token: String,
    username: String,
    password: String,
}

async fn setup(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: SetupBody = body(&bytes)?;
    if state.store.user_count().await? > 0 {
        return Err(Problem::conflict("the hub is already set up; sign in instead"));
    }
    check_username(&req.username)?;
    check_password(&req.password)?;
    // The token is taken, not read: of two setups at once, one gets it.
    let taken = {
        let mut token = state.setup_token.lock().unwrap_or_else(|p| p.into_inner());
        match token.as_deref() {
            Some(t) if auth::same_secret(t, &req.token) => token.take(),
            _ => None,
        }
    };
    let Some(taken) = taken else {
        return Err(Problem::unauthorized(
            "the setup token is wrong or used; use the one `certhub serve` printed at start",
        ));
    };
    let created = async {
        let password = req.password.clone();
        let hash = auth::argon2_task(move || auth::hash_password(&password)).await??;
        // The admin and its audit entry together, and only if no user exists yet.
        state.store.create_first_admin(&req.username, &hash, &auth::source(&parts)).await.map_err(
            |e| match e {
                certhub_store::Error::AlreadyExists { .. } => {
                    Problem::conflict("the hub is already set up; sign in instead")
                }
                other => other.into(),
            },
        )
    }
    .await;
    if let Err(e) = created {
        // Nothing was created: the token stays good for another try.
        *state.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(taken);
        return Err(e);
    }
    Ok((StatusCode::CREATED, Json(json!({ "username": req.username, "role": "admin" }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    username: String,
    password: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

async fn create_token(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: TokenBody = body(&bytes)?;
    state.logins.attempt(&req.username, &auth::source(&parts))?;
    let user = state.store.user(&req.username).await?;
    // An unknown name costs the same time as a wrong password.
    let phc =
        user.as_ref().map_or_else(|| auth::dummy_hash().to_string(), |u| u.password_hash.clone());
    let password = req.password.clone();
    let matches = auth::argon2_task(move || auth::verify_password(&password, &phc)).await?;
    let user = match user {
        Some(u) if matches => u,
        _ => return Err(Problem::unauthorized("wrong user name or password")),
    };
    state.logins.succeeded(&req.username);
    let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
    let allowed: Vec<&str> =
        SCOPES.iter().filter(|(_, least)| role >= *least).map(|(s, _)| *s).collect();
    let scopes = match req.scopes {
        None => allowed.iter().map(|s| s.to_string()).collect(),
        Some(asked) => {
            for s in &asked {
                if !SCOPES.iter().any(|(k, _)| k == s) {
                    return Err(Problem::invalid(
                        "scopes",
                        format!(
                            "unknown scope {s:?}; scopes are cert:read, cert:request, cert:key, admin"
                        ),
                    ));
                }
                if !allowed.contains(&s.as_str()) {
                    return Err(Problem::invalid(
                        "scopes",
                        format!("a {} cannot hold the {s} scope", role.as_str()),
                    ));
                }
            }
            asked
        }
    };
    let expires_at = match req.expires_in_days {
        Some(0) => return Err(Problem::invalid("expires_in_days", "use at least 1 day")),
        Some(d) => Some(now_ms() + i64::from(d) * 86_400_000),
        None => None,
    };
    let (token, id, secret) = auth::new_token();
    let label = req.label.unwrap_or_else(|| "api".into());
    let record = certhub_store::TokenRecord {
        id: id.clone(),
        user_name: user.name.clone(),
        label: label.clone(),
        scopes: scopes.join(" "),
        expires_at,
        created_at: 0,
        last_used_at: None,
    };
    state.store.insert_token(&record, &certhub_store::token_hash(&secret)).await?;
    let source = auth::source(&parts);
    state.store.audit(&user.name, "token.create", &id, &source, Some(&record.scopes)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "id": id,
            "label": label,
            "scopes": scopes,
            "expires_at": expires_at.map(rfc3339_ms),
            "note": "shown once: store it now",
        })),
    ))
}

async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    // An admin sees every token; anyone else their own.
    let whose = (caller.require(Need::Admin).is_err()).then_some(caller.user.as_str());
    let items: Vec<Value> = state
        .store
        .tokens(whose)
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "user": t.user_name,
                "label": t.label,
                "scopes": t.scopes.split_whitespace().collect::<Vec<_>>(),
                "expires_at": t.expires_at.map(rfc3339_ms),
                "created_at": rfc3339_ms(t.created_at),
                "last_used_at": t.last_used_at.map(rfc3339_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let own = state.store.tokens(Some(&caller.user)).await?.iter().any(|t| t.id == id);
    if !own {
        // Someone else's token: admins only, and without telling others whether it exists.
        caller.require(Need::Admin).map_err(|_| Problem::not_found(format!("no token {id:?}")))?;
    }
    state.store.delete_token(&id).await?;
    state.store.audit(&caller.actor(), "token.revoke", &id, &caller.source, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Need::Admin)?;
    cert_or_404(&state, &name).await?;
    state.store.delete_cert(&name).await?;
    state.store.audit(&caller.actor(), "cert.delete", &name, &caller.source, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    username: String,
    password: String,
    role: String,
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Need::Admin)?;
    let req: UserBody = body(&bytes)?;
    check_username(&req.username)?;
    check_password(&req.password)?;
    let role = Role::parse(&req.role)
        .ok_or_else(|| Problem::invalid("role", "one of admin, operator, viewer"))?;
    let password = req.password.clone();
    let hash = auth::argon2_task(move || auth::hash_password(&password)).await??;
    state.store.insert_user(&req.username, &hash, role.as_str()).await?;
    state
        .store
        .audit(&caller.actor(), "user.create", &req.username, &caller.source, Some(role.as_str()))
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "username": req.username, "role": role.as_str() }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    per_page: Option<u32>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

fn identifiers(c: &CertRecord) -> Vec<String> {
    c.identifiers
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.get("value").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn cert_view(c: &CertRecord, issued: Option<&IssuedRecord>) -> Value {
    json!({
        "name": c.name,
        "state": c.effective_state(issued, now_ms().div_euclid(1000)),
        "account": c.account_name,
        "identifiers": identifiers(c),
        "key_type": c.key_type,
        "serial": issued.map(|i| i.serial_hex.clone()),
        "issuer": issued.map(|i| i.issuer.clone()),
        "not_before": issued.map(|i| rfc3339_ms(i.not_before * 1000)),
        "not_after": issued.map(|i| rfc3339_ms(i.not_after * 1000)),
        "last_error": c.last_error,
        "renewal": {
            "policy": c.renewal_policy,
            "fallback_account": c.fallback_account,
            "failures": c.failures,
            "next_attempt": c.next_attempt_at.map(rfc3339_ms),
        },
    })
}

async fn list_certificates(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(Problem::invalid("page", "pages count from 1"));
    }
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(Problem::invalid("per_page", "between 1 and 500"));
    }
    let needle = q.q.as_deref().map(str::to_ascii_lowercase);
    let mut items = Vec::new();
    for c in state.store.certs().await? {
        let issued = state.store.latest_issued(&c.name).await?;
        let view = cert_view(&c, issued.as_ref());
        if q.state.as_deref().is_some_and(|s| view["state"] != s) {
            continue;
        }
        if let Some(n) = &needle
            && !c.name.to_ascii_lowercase().contains(n)
            && !identifiers(&c).iter().any(|i| i.contains(n))
        {
            continue;
        }
        items.push(view);
    }
    let total = items.len();
    let start = ((page - 1) as usize).saturating_mul(per_page as usize).min(total);
    let end = (start + per_page as usize).min(total);
    Ok(Json(json!({
        "items": items[start..end],
        "page": page,
        "per_page": per_page,
        "total": total,
    })))
}

async fn cert_or_404(state: &AppState, name: &str) -> ApiResult<CertRecord> {
    state
        .store
        .cert(name)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no certificate named {name:?}")))
}

async fn get_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    let c = cert_or_404(&state, &name).await?;
    let issued = state.store.latest_issued(&name).await?;
    Ok(Json(cert_view(&c, issued.as_ref())))
}

async fn certificate_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    cert_or_404(&state, &name).await?;
    let events: Vec<Value> = state
        .store
        .events_for(&name)
        .await?
        .into_iter()
        .map(|e| json!({ "at": rfc3339_ms(e.at), "kind": e.kind, "detail": e.detail }))
        .collect();
    Ok(Json(json!({ "items": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullQuery {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    key: Option<bool>,
}

/// The PKCS#12 password travels in a header, never in the URL (which proxies log).
const PKCS12_PASSWORD_HEADER: &str = "x-pkcs12-password";

async fn pull_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    query: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    caller.require(Need::Read)?;
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let format = q.format.as_deref().unwrap_or("pem");
    let with_key = match format {
        "pem" => q.key.unwrap_or(false),
        "pkcs12" => true,
        other => {
            return Err(Problem::invalid("format", format!("{other:?}: use pem or pkcs12")));
        }
    };
    if with_key {
        caller.require(Need::Key)?;
    }
    cert_or_404(&state, &name).await?;
    let issued =
        state.store.latest_issued(&name).await?.ok_or_else(|| {
            Problem::conflict(format!("certificate {name} has not been issued yet"))
        })?;
    if with_key && issued.key_pkcs8.is_empty() {
        return Err(Problem::conflict(format!(
            "the hub does not hold the key of {name} (it was ordered from the owner's CSR)"
        )));
    }
    let chain = certhub_core::split_pem_chain(&issued.chain_pem).map_err(Problem::internal)?;
    let (body, content_type) = if format == "pkcs12" {
        let password = headers
            .get(PKCS12_PASSWORD_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Problem::invalid(
                    PKCS12_PASSWORD_HEADER,
                    "a PKCS#12 file needs a password, sent in the X-Pkcs12-Password header",
                )
            })?;
        let der = certhub_deploy::pkcs12::build(&name, &issued.key_pkcs8, &chain, password, false)
            .map_err(Problem::internal)?;
        (der, "application/x-pkcs12")
    } else {
        let mut text: String =
            chain.iter().map(|d| certhub_core::pem_block("CERTIFICATE", d)).collect();
        if with_key {
            text.push_str(&certhub_core::pem_block("PRIVATE KEY", &issued.key_pkcs8));
        }
        (text.into_bytes(), "application/x-pem-file")
    };
    let action = if with_key { "cert.key-download" } else { "cert.download" };
    // Downloads of public certificates are frequent and harmless; keys are always audited.
    if with_key {
        state.store.audit(&caller.actor(), action, &name, &caller.source, Some(format)).await?;
    }
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], body)
        .into_response())
}

async fn request_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, [(header::HeaderName, String); 1], Json<Value>)> {
    caller.require(Need::Request)?;
    cert_or_404(&state, &name).await?;
    let job = state.jobs.start_request(worker(&state)?, &name);
    state.store.audit(&caller.actor(), "cert.request", &name, &caller.source, None).await?;
    let url = format!("/api/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, url.clone())],
        Json(json!({ "job": job, "status_url": url })),
    ))
}

fn worker(state: &AppState) -> ApiResult<std::sync::Arc<dyn crate::Worker>> {
    state
        .worker
        .clone()
        .ok_or_else(|| Problem::unavailable("this hub runs no issuance engine; use certhub serve"))
}

async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Need::Admin)?;
    let req: crate::NewAccount = body(&bytes)?;
    let name = req.name.clone();
    let view = worker(&state)?.add_account(req).await?;
    state.store.audit(&caller.actor(), "account.create", &name, &caller.source, None).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn create_certificate(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // Challenge and deployment specs run hooks and commands and write files on the hub:
    // only an admin may set them.
    caller.require(Need::Admin)?;
    let req: crate::NewCertificate = body(&bytes)?;
    let name = req.name.clone();
    worker(&state)?.add_certificate(req).await?;
    state.store.audit(&caller.actor(), "cert.create", &name, &caller.source, None).await?;
    let c = cert_or_404(&state, &name).await?;
    Ok((StatusCode::CREATED, Json(cert_view(&c, None))))
}

async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    let job = state.jobs.get(&id).ok_or_else(|| Problem::not_found(format!("no job {id:?}")))?;
    Ok(Json(json!(job)))
}

async fn list_accounts(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    let items: Vec<Value> = state
        .store
        .accounts()
        .await?
        .into_iter()
        .map(|a| {
            json!({
                "name": a.name,
                "directory": a.directory_url,
                "email": a.email,
                "status": a.status,
                "key_type": a.key_type,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid("limit", "between 1 and 1000"));
    }
    let items: Vec<Value> = state
        .store
        .audit_entries(q.after.unwrap_or(0), limit)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": rfc3339_ms(e.at),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "source": e.source,
                "detail": e.detail,
                "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn audit_verify(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    Ok(Json(match state.store.verify_audit().await? {
        Ok(entries) => json!({ "intact": true, "entries": entries }),
        Err(b) => json!({ "intact": false, "broken_at": b.id, "reason": b.reason }),
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Epoch milliseconds as RFC 3339 UTC.
fn rfc3339_ms(ms: i64) -> String {
    certhub_core::rfc3339(ms.div_euclid(1000))
}
