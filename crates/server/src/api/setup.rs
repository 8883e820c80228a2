//! First-run setup: `POST /api/v1/setup` creates the first admin with the setup token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, body};
use crate::auth;
use crate::ops;
use crate::state::AppState;

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

pub(super) async fn setup(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: SetupBody = body(&bytes)?;
    let source = auth::source(&parts);
    ops::setup_admin(&state, &req.token, &req.username, &req.password, &source).await?;
    Ok((StatusCode::CREATED, Json(json!({ "username": req.username, "role": "admin" }))))
}
