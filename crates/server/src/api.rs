//! The handlers of `/api/v1`.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use certhub_store::RETRY_STOPPED;
use certhub_store::{CertFilter, CertRecord, CertSummary, IssuedRecord, TokenKind};
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
        .route("/api/v1/users", post(create_user).get(list_users))
        .route("/api/v1/certificates", get(list_certificates).post(create_certificate))
        .route(
            "/api/v1/certificates/{name}",
            get(get_certificate).delete(delete_certificate).patch(edit_certificate),
        )
        .route(
            "/api/v1/certificates/{name}/deployments",
            get(list_deployments).post(add_deployments),
        )
        .route(
            "/api/v1/certificates/{name}/deployments/{task}",
            axum::routing::delete(remove_deployment),
        )
        .route("/api/v1/certificates/import", post(import_certificate))
        .route("/api/v1/settings", get(settings).patch(change_settings))
        .route(
            "/api/v1/certificates/{name}/challenges",
            get(list_challenges).put(replace_challenges),
        )
        .route("/api/v1/certificates/{name}/history", get(certificate_history))
        .route("/api/v1/certificates/{name}/pull", get(pull_certificate))
        .route("/api/v1/certificates/{name}/request", post(request_certificate))
        .route("/api/v1/certificates/{name}/preview", get(preview_certificate))
        .route("/api/v1/certificates/{name}/test", post(test_certificate))
        .route("/api/v1/certificates/{name}/revoke", post(revoke_certificate))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/accounts", get(list_accounts).post(create_account))
        .route("/api/v1/notifications", get(list_channels).post(create_channel))
        .route("/api/v1/notifications/{name}", axum::routing::delete(delete_channel))
        .route("/api/v1/notifications/{name}/test", post(test_channel))
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetupBody {
    /// The one-time setup token `certhub serve` printed or wrote to DATA_DIR/setup-token.
    token: String,
    /// The first admin's name.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._@-]{1,64}$"))]
    username: String,
    /// At least 12 characters.
    #[schemars(length(min = 12))]
    password: String,
}

async fn setup(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: SetupBody = body(&bytes)?;
    setup_admin(&state, &req.token, &req.username, &req.password, &auth::source(&parts)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "username": req.username, "role": "admin" }))))
}

/// Creates the first admin with the one-time setup token (the API's and the web UI's setup).
pub(crate) async fn setup_admin(
    state: &AppState,
    token: &str,
    username: &str,
    password: &str,
    source: &str,
) -> ApiResult<()> {
    if state.store.user_count().await? > 0 {
        return Err(Problem::conflict("the hub is already set up; sign in instead"));
    }
    check_username(username)?;
    check_password(password)?;
    // The token is taken, not read: of two setups at once, one gets it.
    let taken = {
        let mut setup = state.setup_token.lock().unwrap_or_else(|p| p.into_inner());
        match setup.as_deref() {
            Some(t) if certhub_store::same_secret(t, token.trim()) => setup.take(),
            _ => None,
        }
    };
    let Some(taken) = taken else {
        return Err(Problem::unauthorized(
            "the setup token is wrong or used; use the one `certhub serve` printed at start",
        ));
    };
    let created = async {
        let password = password.to_string();
        let hash = auth::argon2_task(move || auth::hash_password(&password)).await??;
        // The admin and its audit entry together, and only if no user exists yet.
        state.store.create_first_admin(username, &hash, source).await.map_err(|e| match e {
            certhub_store::Error::AlreadyExists { .. } => {
                Problem::conflict("the hub is already set up; sign in instead")
            }
            other => other.into(),
        })
    }
    .await;
    if let Err(e) = created {
        // Nothing was created: the token stays good for another try.
        *state.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(taken);
        return Err(e);
    }
    if let Some(file) = &state.setup_token_file
        && let Err(e) = std::fs::remove_file(file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %file.display(), error = %e, "removing the spent setup token failed");
    }
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    username: String,
    password: String,
    /// What the token is for (default `api`).
    #[serde(default)]
    label: Option<String>,
    /// Scopes within the owner's role (default: all it allows).
    #[serde(default)]
    #[schemars(with = "Option<Vec<Scope>>", length(min = 1))]
    scopes: Option<Vec<String>>,
    /// Days until it expires (default: never).
    #[serde(default)]
    #[schemars(range(min = 1, max = 3650))]
    expires_in_days: Option<u32>,
}

/// A token scope, as its documentation names it.
#[derive(Deserialize, schemars::JsonSchema)]
#[allow(dead_code)] // The schema's vocabulary; bodies keep scopes as strings.
pub(crate) enum Scope {
    #[serde(rename = "cert:read")]
    CertRead,
    #[serde(rename = "cert:request")]
    CertRequest,
    #[serde(rename = "cert:key")]
    CertKey,
    #[serde(rename = "admin")]
    Admin,
}

async fn create_token(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: TokenBody = body(&bytes)?;
    let user = sign_in(&state, &req.username, &req.password, &auth::source(&parts)).await?;
    let label = req.label.unwrap_or_else(|| "api".into());
    let expires_at = token_expiry(req.expires_in_days)?;
    let source = auth::source(&parts);
    let (token, record) =
        issue_token(&state, &user, TokenKind::Api, &label, req.scopes, expires_at, &source).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "id": record.id,
            "label": label,
            "scopes": record.scopes.split_whitespace().collect::<Vec<_>>(),
            "expires_at": expires_at.map(rfc3339_ms),
            "note": "shown once: store it now",
        })),
    ))
}

/// The longest life a token may be given: ten years.
pub(crate) const MAX_TOKEN_DAYS: u32 = 3650;

/// When a token given `days` expires (never for `None`), or why `days` is refused.
pub(crate) fn token_expiry(days: Option<u32>) -> ApiResult<Option<i64>> {
    match days {
        None => Ok(None),
        Some(d @ 1..=MAX_TOKEN_DAYS) => Ok(Some(now_ms() + i64::from(d) * 86_400_000)),
        Some(_) => Err(Problem::invalid(
            "expires_in_days",
            format!("use a whole number of days from 1 to {MAX_TOKEN_DAYS}, or none for no expiry"),
        )),
    }
}

/// Checks a name and password (rate limited, and as slow for an unknown name); the user.
pub(crate) async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    source: &str,
) -> ApiResult<certhub_store::UserRecord> {
    state.logins.attempt(username, source)?;
    let user = state.store.user(username).await?;
    // An unknown name costs the same time as a wrong password.
    let phc =
        user.as_ref().map_or_else(|| auth::dummy_hash().to_string(), |u| u.password_hash.clone());
    let password = password.to_string();
    let matches = auth::argon2_task(move || auth::verify_password(&password, &phc)).await?;
    let user = match user {
        Some(u) if matches => u,
        _ => {
            let detail = if user.is_none() { "no such user" } else { "wrong password" };
            // The name as typed, cut to a user name's longest.
            let name: String = username.chars().take(64).collect();
            state.store.audit("anonymous", "sign-in.fail", &name, source, Some(detail)).await?;
            return Err(Problem::unauthorized("wrong user name or password"));
        }
    };
    state.logins.succeeded(username, source);
    Ok(user)
}

/// A new token of `user` (an API token or a web session), with `scopes` (all its role allows
/// when `None`); the token, shown once, and its record. Audited.
pub(crate) async fn issue_token(
    state: &AppState,
    user: &certhub_store::UserRecord,
    kind: TokenKind,
    label: &str,
    scopes: Option<Vec<String>>,
    expires_at: Option<i64>,
    source: &str,
) -> ApiResult<(String, certhub_store::TokenRecord)> {
    let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
    let allowed: Vec<&str> =
        SCOPES.iter().filter(|(_, least)| role >= *least).map(|(s, _)| *s).collect();
    let scopes = match scopes {
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
            if asked.is_empty() {
                return Err(Problem::invalid("scopes", "choose at least one scope"));
            }
            asked
        }
    };
    let (token, id, secret) = auth::new_token();
    let record = certhub_store::TokenRecord {
        id: id.clone(),
        user_name: user.name.clone(),
        kind,
        label: label.to_string(),
        scopes: scopes.join(" "),
        expires_at,
        created_at: now_ms(),
        last_used_at: None,
    };
    let action = match kind {
        TokenKind::Session => "session.start",
        TokenKind::Api => "token.create",
    };
    let entry = certhub_store::AuditEntry::new(&user.name, action, &id, source)
        .with_detail(record.scopes.clone());
    state.store.insert_token(&record, &certhub_store::token_hash(&secret), Some(&entry)).await?;
    Ok((token, record))
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
                "kind": t.kind.as_str(),
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
    revoke_own_or_any_token(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes token `id`: the caller's own, or anyone's for an admin. Audited.
pub(crate) async fn revoke_own_or_any_token(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<()> {
    let own = state.store.tokens(Some(&caller.user)).await?.iter().any(|t| t.id == id);
    if !own {
        // Someone else's token: admins only, and without telling others whether it exists.
        caller.require(Need::Admin).map_err(|_| Problem::not_found(format!("no token {id:?}")))?;
    }
    state.store.delete_token(id, Some(&caller.entry("token.revoke", id))).await?;
    Ok(())
}

async fn delete_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Need::Admin)?;
    cert_or_404(&state, &name).await?;
    state.store.delete_cert(&name, Some(&caller.entry("cert.delete", &name))).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    #[schemars(regex(pattern = r"^[A-Za-z0-9._@-]{1,64}$"))]
    username: String,
    /// At least 12 characters.
    #[schemars(length(min = 12))]
    password: String,
    /// `admin`, `operator` or `viewer`.
    #[schemars(regex(pattern = "^(admin|operator|viewer)$"))]
    role: String,
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: UserBody = body(&bytes)?;
    let role = add_user(&state, &caller, &req.username, &req.password, &req.role).await?;
    Ok((StatusCode::CREATED, Json(json!({ "username": req.username, "role": role.as_str() }))))
}

/// Adds a user (admins only). Audited.
pub(crate) async fn add_user(
    state: &AppState,
    caller: &Caller,
    username: &str,
    password: &str,
    role: &str,
) -> ApiResult<Role> {
    caller.require(Need::Admin)?;
    check_username(username)?;
    check_password(password)?;
    let role = Role::parse(role)
        .ok_or_else(|| Problem::invalid("role", "one of admin, operator, viewer"))?;
    let password = password.to_string();
    let hash = auth::argon2_task(move || auth::hash_password(&password)).await??;
    let entry = caller.entry("user.create", username).with_detail(role.as_str());
    state.store.insert_user(username, &hash, role.as_str(), Some(&entry)).await?;
    Ok(role)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// The page, from 1.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub page: Option<u32>,
    /// Certificates a page, 1 to 500 (default 50).
    #[serde(default)]
    #[schemars(range(min = 1, max = 500))]
    pub per_page: Option<u32>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub q: Option<String>,
}

/// The values of a certificate's identifiers.
pub(crate) fn identifiers(identifiers: &[certhub_core::Identifier]) -> Vec<String> {
    identifiers.iter().map(ToString::to_string).collect()
}

/// A certificate as the API shows it, from its record and latest issued certificate.
pub(crate) fn cert_view(c: &CertRecord, issued: Option<&IssuedRecord>) -> Value {
    summary_view(&CertSummary::of(c, issued))
}

/// A certificate as the API shows it, from its summary.
pub(crate) fn summary_view(c: &CertSummary) -> Value {
    let issued = c.latest.as_ref();
    json!({
        "name": c.name,
        "state": c.effective_state(now_ms().div_euclid(1000)),
        "account": c.account_name,
        "identifiers": identifiers(&c.identifiers),
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
            "next_attempt": c.next_attempt_at.filter(|&t| t != RETRY_STOPPED).map(rfc3339_ms),
            // The CA refused for good: no automatic retry until it is changed or requested.
            "retries_stopped": c.next_attempt_at == Some(RETRY_STOPPED),
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
    let page = cert_page(&state, &q).await?;
    Ok(Json(json!({
        "items": page.items,
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
    })))
}

/// One page of the certificate list.
pub(crate) struct CertPage {
    pub items: Vec<Value>,
    pub page: u32,
    pub per_page: u32,
    pub total: usize,
}

/// The certificates matching `q` (state, and a search in names and identifiers), one page.
pub(crate) async fn cert_page(state: &AppState, q: &ListQuery) -> ApiResult<CertPage> {
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(Problem::invalid("page", "pages count from 1"));
    }
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(Problem::invalid("per_page", "between 1 and 500"));
    }
    let filter = CertFilter {
        state: q.state.clone().filter(|s| !s.is_empty()),
        search: q.q.clone(),
        offset: u64::from(page - 1) * u64::from(per_page),
        limit: Some(u64::from(per_page)),
    };
    let (total, summaries) = state.store.cert_summaries(&filter, now_ms().div_euclid(1000)).await?;
    let items = summaries.iter().map(summary_view).collect();
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    Ok(CertPage { items, page, per_page, total })
}

pub(crate) async fn cert_or_404(state: &AppState, name: &str) -> ApiResult<CertRecord> {
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullQuery {
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
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let password = headers.get(PKCS12_PASSWORD_HEADER).and_then(|v| v.to_str().ok());
    let format = q.format.as_deref().unwrap_or("pem");
    let (body, content_type) =
        pull(&state, &caller, &name, format, q.key.unwrap_or(false), password).await?;
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], body)
        .into_response())
}

/// The latest certificate of `name` as `pem` (the chain, and the key if `key`) or `pkcs12`
/// (always with the key, under `password`): the bytes and their media type. Key downloads
/// need the key scope and are audited.
pub(crate) async fn pull(
    state: &AppState,
    caller: &Caller,
    name: &str,
    format: &str,
    key: bool,
    password: Option<&str>,
) -> ApiResult<(Vec<u8>, &'static str)> {
    caller.require(Need::Read)?;
    let with_key = match format {
        "pem" => key,
        "pkcs12" => true,
        other => {
            return Err(Problem::invalid("format", format!("{other:?}: use pem or pkcs12")));
        }
    };
    if with_key {
        caller.require(Need::Key)?;
    }
    let not_issued = || async {
        cert_or_404(state, name).await?;
        Err(Problem::conflict(format!("certificate {name} has not been issued yet")))
    };
    // Public certificates are pulled often: they are read without the key's column.
    let (chain_pem, key) = if with_key {
        let Some(issued) = state.store.latest_issued(name).await? else {
            return not_issued().await;
        };
        if issued.key_pkcs8.is_empty() {
            return Err(Problem::conflict(format!(
                "the hub does not hold the key of {name} (it was ordered from the owner's CSR)"
            )));
        }
        (issued.chain_pem, Some(issued.key_pkcs8))
    } else {
        match state.store.latest_chain(name).await? {
            Some(chain_pem) => (chain_pem, None),
            None => return not_issued().await,
        }
    };
    let chain = certhub_core::split_pem_chain(&chain_pem).map_err(Problem::internal)?;
    let (body, content_type) = match &key {
        Some(key) if format == "pkcs12" => {
            let password = password.filter(|p| !p.is_empty()).ok_or_else(|| {
                Problem::invalid(
                    PKCS12_PASSWORD_HEADER,
                    "a PKCS#12 file needs a password, sent in the X-Pkcs12-Password header",
                )
            })?;
            let der = certhub_deploy::pkcs12::build(name, key, &chain, password, false)
                .map_err(Problem::internal)?;
            (der, "application/x-pkcs12")
        }
        _ => {
            let mut text: String =
                chain.iter().map(|d| certhub_core::pem_block("CERTIFICATE", d)).collect();
            if let Some(key) = &key {
                text.push_str(&certhub_core::pem_block("PRIVATE KEY", key));
            }
            (text.into_bytes(), "application/x-pem-file")
        }
    };
    // Downloads of public certificates are frequent and harmless; keys are always audited.
    if key.is_some() {
        state
            .store
            .audit(&caller.actor(), "cert.key-download", name, &caller.source, Some(format))
            .await?;
    }
    Ok((body, content_type))
}

async fn request_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, [(header::HeaderName, String); 1], Json<Value>)> {
    let job = start_request(&state, &caller, &name).await?;
    let url = format!("/api/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, url.clone())],
        Json(json!({ "job": job, "status_url": url })),
    ))
}

/// Starts requesting `name` now, as a job. Audited.
pub(crate) async fn start_request(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<crate::Job> {
    caller.require(Need::Request)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.request", name);
    Ok(state.jobs.start_request(engine(state)?, name, entry).await?)
}

/// The hub's engine; 503 without one.
pub(crate) fn engine(state: &AppState) -> ApiResult<std::sync::Arc<crate::Engine>> {
    state
        .engine
        .clone()
        .ok_or_else(|| Problem::unavailable("this hub runs no issuance engine; use certhub serve"))
}

async fn edit_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    let said = edit(&state, &caller, &name, body(&bytes)?).await?;
    let c = cert_or_404(&state, &name).await?;
    let issued = state.store.latest_issued(&name).await?;
    let mut view = cert_view(&c, issued.as_ref());
    view["changed"] = json!(said);
    Ok(Json(view))
}

/// Changes how certificate `name` is ordered and renewed (admins only: challenge specs run
/// hooks on the hub, as for adding); what changed, in words. Audited.
pub(crate) async fn edit(
    state: &AppState,
    caller: &Caller,
    name: &str,
    changes: crate::CertChanges,
) -> ApiResult<Vec<String>> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.update", name);
    Ok(engine(state)?.edit(name, &changes, entry).await?)
}

/// A certificate's challenge configurations, credentials left out, and which one validates
/// each identifier.
pub(crate) fn challenges_view(c: &CertRecord) -> Value {
    let specs: Vec<certhub_core::ChallengeSpec> = c.challenges.clone();
    let ids: Vec<certhub_core::Identifier> = c.identifiers.clone();
    let assigned = certhub_core::identifier::assign_challenges(&ids, &specs).unwrap_or_default();
    let items: Vec<Value> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            json!({
                "challenge": spec.config.kind().to_string(),
                "answers": spec.config.describe(),
                "applies_to": if spec.domains.is_empty() { vec!["all".to_string()] } else { spec.domains.clone() },
                "propagation_timeout_seconds": spec.propagation_timeout.map(|d| d.as_secs()),
                "validates": assigned.iter().filter(|(_, n)| *n == i).map(|(id, _)| id.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "items": items })
}

async fn list_challenges(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    Ok(Json(challenges_view(&cert_or_404(&state, &name).await?)))
}

async fn replace_challenges(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    let Specs { specs } = body(&bytes)?;
    if specs.is_empty() {
        return Err(Problem::invalid("specs", "give at least one challenge SPEC"));
    }
    let changes = crate::CertChanges { challenges: specs, ..Default::default() };
    edit(&state, &caller, &name, changes).await?;
    Ok(Json(challenges_view(&cert_or_404(&state, &name).await?)))
}

async fn import_certificate(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: crate::Import = body(&bytes)?;
    Ok((StatusCode::CREATED, Json(import(&state, &caller, req).await?)))
}

/// Imports a certificate obtained elsewhere (admins only: its deployment tasks run on the
/// hub). Audited.
pub(crate) async fn import(
    state: &AppState,
    caller: &Caller,
    req: crate::Import,
) -> ApiResult<Value> {
    caller.require(Need::Admin)?;
    let engine = engine(state)?;
    let entry = caller.entry("cert.import", &req.name);
    let bundle = req.bundle().map_err(certhub_engine::Error::from)?;
    let i = engine.import(&req, bundle, entry).await.map_err(|(e, _)| e)?;
    Ok(json!({
        "name": req.name,
        "imported": i.detail,
        "names": i.names,
        "without_key": i.keyless,
        "renewed_by": i.account,
        "expired": i.expired,
        "deployed": i.deployed.iter().map(|(t, d)| json!({ "task": t, "did": d })).collect::<Vec<_>>(),
    }))
}

async fn list_deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    // A task's description can hold a webhook URL with its token: admins only.
    caller.require(Need::Admin)?;
    cert_or_404(&state, &name).await?;
    let items: Vec<Value> = state
        .store
        .deploy_tasks(&name)
        .await?
        .into_iter()
        .map(|r| {
            let task = serde_json::from_value::<certhub_core::DeployTask>(r.task.clone()).ok();
            json!({
                "name": r.name,
                "when": task.as_ref().map(|t| t.trigger.as_str()),
                "does": task.as_ref().map(|t| t.action.describe()),
                "timeout": task.as_ref().map(|t| t.timeout.as_secs()),
                "last_outcome": r.last_outcome,
                "last_detail": r.last_detail,
                "last_run_at": r.last_run_at.map(rfc3339_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// A body of SPECs: challenge or deployment SPECs as the CLI takes them.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Specs {
    specs: Vec<String>,
}

async fn add_deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Need::Admin)?;
    let req: Specs = body(&bytes)?;
    let added = add_deploy_tasks(&state, &caller, &name, req.specs).await?;
    Ok((StatusCode::CREATED, Json(json!({ "items": added }))))
}

/// Adds deployment tasks to certificate `name` (admins only: tasks run commands and write
/// files on the hub); the tasks added. Audited.
pub(crate) async fn add_deploy_tasks(
    state: &AppState,
    caller: &Caller,
    name: &str,
    specs: Vec<String>,
) -> ApiResult<Value> {
    caller.require(Need::Admin)?;
    if specs.is_empty() {
        return Err(Problem::invalid("specs", "give at least one deployment SPEC"));
    }
    cert_or_404(state, name).await?;
    let entry = caller.entry("deploy.add", name);
    let tasks = engine(state)?.add_deployments(name, &specs, entry).await?;
    Ok(json!(tasks
        .iter()
        .map(|t| json!({ "name": t.name, "when": t.trigger.as_str(), "does": t.action.describe() }))
        .collect::<Vec<_>>()))
}

async fn remove_deployment(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    remove_deploy_task(&state, &caller, &name, &task).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes deployment task `task` of certificate `name` (admins only). Audited.
pub(crate) async fn remove_deploy_task(
    state: &AppState,
    caller: &Caller,
    name: &str,
    task: &str,
) -> ApiResult<()> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("deploy.remove", name).with_detail(task);
    state.store.remove_deploy_task(name, task, Some(&entry)).await?;
    Ok(())
}

async fn settings(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    Ok(Json(json!(state.settings.get())))
}

async fn change_settings(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    change_settings_as(&state, &caller, body(&bytes)?).await?;
    Ok(Json(json!(state.settings.get())))
}

/// Checks, saves and applies changes to the hub's settings (admins only); what changed, in
/// words. Audited.
pub(crate) async fn change_settings_as(
    state: &AppState,
    caller: &Caller,
    changes: crate::SettingsChanges,
) -> ApiResult<Vec<String>> {
    caller.require(Need::Admin)?;
    Ok(state.settings.change(&state.store, changes, caller.entry("settings.update", "hub")).await?)
}

async fn preview_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    cert_or_404(&state, &name).await?;
    Ok(Json(engine(&state)?.preview(&name, None).await?))
}

async fn test_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Request)?;
    cert_or_404(&state, &name).await?;
    let report = engine(&state)?.test(&name, None).await?;
    let works = report.iter().all(|i| i.works);
    Ok(Json(json!({ "works": works, "items": report })))
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn revoke_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let req: RevokeBody = if bytes.is_empty() { RevokeBody::default() } else { body(&bytes)? };
    let serial = revoke(&state, &caller, &name, req.reason).await?;
    Ok(Json(json!({ "name": name, "serial": serial, "state": "revoked" })))
}

/// Revokes the latest certificate of `name` (admins only); its serial. Audited.
pub(crate) async fn revoke(
    state: &AppState,
    caller: &Caller,
    name: &str,
    reason: Option<String>,
) -> ApiResult<String> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.revoke", name);
    Ok(engine(state)?.revoke(name, reason.as_deref(), false, entry).await?)
}

async fn list_users(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    let items: Vec<Value> = state
        .store
        .users()
        .await?
        .into_iter()
        .map(|u| json!({ "username": u.name, "role": u.role, "created_at": rfc3339_ms(u.created_at) }))
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: crate::NewAccount = body(&bytes)?;
    Ok((StatusCode::CREATED, Json(add_account(&state, &caller, req).await?)))
}

/// Registers a CA account (admins only). Audited.
pub(crate) async fn add_account(
    state: &AppState,
    caller: &Caller,
    req: crate::NewAccount,
) -> ApiResult<Value> {
    caller.require(Need::Admin)?;
    let entry = caller.entry("account.create", &req.name);
    let url = engine(state)?.add_account(&req, entry).await?;
    Ok(json!({ "name": req.name, "account_url": url, "status": "valid" }))
}

async fn create_certificate(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: crate::NewCertificate = body(&bytes)?;
    let c = add_certificate(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(cert_view(&c, None))))
}

/// Adds a managed certificate (admins only: its challenge and deployment specs run hooks
/// and commands and write files on the hub). Audited.
pub(crate) async fn add_certificate(
    state: &AppState,
    caller: &Caller,
    req: crate::NewCertificate,
) -> ApiResult<CertRecord> {
    caller.require(Need::Admin)?;
    let name = req.name.clone();
    engine(state)?.add_certificate(&req, caller.entry("cert.create", &name)).await?;
    cert_or_404(state, &name).await
}

async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    let job =
        state.jobs.get(&id).await?.ok_or_else(|| Problem::not_found(format!("no job {id:?}")))?;
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

/// A channel as shown: where it sends, never its secrets.
pub(crate) fn channel_view(c: &certhub_store::ChannelRecord) -> Value {
    let target = certhub_deploy::notify::target(&c.kind, &c.config);
    json!({ "name": c.name, "kind": c.kind, "events": c.events, "target": target })
}

async fn list_channels(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    let items: Vec<Value> = state.store.channels().await?.iter().map(channel_view).collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelBody {
    pub name: String,
    pub kind: String,
    pub config: Value,
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: ChannelBody = body(&bytes)?;
    let channel = add_channel(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(channel_view(&channel))))
}

/// Adds a notification channel (admins only). Audited.
pub(crate) async fn add_channel(
    state: &AppState,
    caller: &Caller,
    req: ChannelBody,
) -> ApiResult<certhub_store::ChannelRecord> {
    caller.require(Need::Admin)?;
    let name = req.name.trim();
    if !certhub_core::name::is_valid(name) {
        return Err(Problem::invalid("name", format!("use {}", certhub_core::name::RULE)));
    }
    certhub_deploy::notify::check(&req.kind, &req.config)
        .map_err(|e| Problem::invalid(&e.field, e.rule))?;
    let events = req.events.unwrap_or_else(|| vec!["all".into()]);
    if events.is_empty() {
        return Err(Problem::invalid("events", "choose at least one event"));
    }
    for e in &events {
        if e != "all" && !certhub_deploy::notify::EVENTS.contains(&e.as_str()) {
            return Err(Problem::invalid(
                "events",
                format!("{e:?}: events are {} or all", certhub_deploy::notify::EVENTS.join(", ")),
            ));
        }
    }
    let channel = certhub_store::ChannelRecord {
        name: name.to_string(),
        kind: req.kind,
        config: req.config,
        events,
    };
    let entry = caller.entry("channel.create", name).with_detail(channel.kind.clone());
    state.store.insert_channel(&channel, Some(&entry)).await?;
    Ok(channel)
}

async fn delete_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    remove_channel(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a notification channel (admins only). Audited.
pub(crate) async fn remove_channel(state: &AppState, caller: &Caller, name: &str) -> ApiResult<()> {
    caller.require(Need::Admin)?;
    state.store.delete_channel(name, Some(&caller.entry("channel.delete", name))).await?;
    Ok(())
}

async fn test_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let outcome = send_test(&state, &caller, &name).await?;
    Ok(Json(match outcome {
        Ok(detail) => json!({ "delivered": true, "detail": detail }),
        Err(detail) => json!({ "delivered": false, "detail": detail }),
    }))
}

/// Sends a test notice through channel `name` (admins only): what happened, or why not.
pub(crate) async fn send_test(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<Result<String, String>> {
    caller.require(Need::Admin)?;
    let channel = state
        .store
        .channel(name)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no notification channel {name:?}")))?;
    let notice = certhub_deploy::notify::Notice {
        event: "test".into(),
        cert_name: "(test)".into(),
        summary: format!("test notification from certhub, sent by {}", caller.user),
        detail: Some(format!("Channel {name} works.")),
    };
    let http = reqwest::Client::new();
    Ok(certhub_deploy::notify::send(&http, &channel.kind, &channel.config, &notice).await)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Entries after this id.
    #[serde(default)]
    after: Option<i64>,
    /// At most this many, 1 to 1000 (default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
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

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Epoch milliseconds as RFC 3339 UTC.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    certhub_core::rfc3339(ms.div_euclid(1000))
}
