//! Sign-in and API tokens: `POST`/`GET /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use certhub_store::TokenKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, body, now_ms, rfc3339_ms};
use crate::auth::{self, Caller, Need, Role, SCOPES};
use crate::problem::Problem;
use crate::state::AppState;

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

pub(super) async fn create_token(
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

pub(super) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
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

pub(super) async fn revoke_token(
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
