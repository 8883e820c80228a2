//! Sign-in and API tokens: `POST`/`GET /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use certhub_store::TokenKind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, Items, body, rfc3339_ms};
use crate::auth::{self, Caller};
use crate::ops::{self, TokenView};
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
    #[serde(rename = "metrics")]
    Metrics,
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: TokenBody = body(&bytes)?;
    let user = ops::sign_in(&state, &req.username, &req.password, &auth::source(&parts)).await?;
    let label = req.label.unwrap_or_else(|| "api".into());
    let expires_at = ops::token_expiry(req.expires_in_days)?;
    let source = auth::source(&parts);
    let (token, record) =
        ops::issue_token(&state, &user, TokenKind::Api, &label, req.scopes, expires_at, &source)
            .await?;
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

pub(super) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<TokenView>>> {
    Ok(Json(Items { items: ops::tokens(&state, &caller).await? }))
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ops::revoke_token(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
