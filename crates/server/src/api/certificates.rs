//! Certificates: every route under `/api/v1/certificates` but `/{name}/deployments`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, Items, Specs, body};
use crate::auth::{Caller, Need};
use crate::ops::{self, CertPage, CertView, ChallengeView, EventView, ImportView, ListQuery};
use crate::problem::Problem;
use crate::state::AppState;

pub(super) async fn list_certificates(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<CertPage>> {
    caller.require(Need::Read)?;
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    Ok(Json(ops::cert_page(&state, &caller, &q).await?))
}

pub(super) async fn create_certificate(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<CertView>)> {
    let req: certhub_engine::NewCertificate = body(&bytes)?;
    Ok((StatusCode::CREATED, Json(ops::add_certificate(&state, &caller, req).await?)))
}

pub(super) async fn get_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<CertView>> {
    Ok(Json(ops::certificate(&state, &caller, &name).await?.1))
}

pub(super) async fn edit_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<ops::EditedView>> {
    caller.require(Need::Admin)?;
    let changed = ops::edit(&state, &caller, &name, body(&bytes)?).await?;
    let (_, certificate) = ops::certificate(&state, &caller, &name).await?;
    Ok(Json(ops::EditedView { certificate, changed }))
}

pub(super) async fn delete_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::delete_certificate(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn import_certificate(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<ImportView>)> {
    let req: certhub_engine::Import = body(&bytes)?;
    Ok((StatusCode::CREATED, Json(ops::import(&state, &caller, req).await?)))
}

pub(super) async fn request_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, [(header::HeaderName, String); 1], Json<Value>)> {
    let job = ops::start_request(&state, &caller, &name).await?;
    let url = format!("/api/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, url.clone())],
        Json(json!({ "job": job, "status_url": url })),
    ))
}

pub(super) async fn preview_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<certhub_engine::Preview>> {
    Ok(Json(ops::preview(&state, &caller, &name).await?))
}

pub(super) async fn test_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let report = ops::test(&state, &caller, &name).await?;
    let works = report.iter().all(|i| i.works);
    Ok(Json(json!({ "works": works, "items": report })))
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn revoke_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let req: RevokeBody = if bytes.is_empty() { RevokeBody::default() } else { body(&bytes)? };
    let serial = ops::revoke(&state, &caller, &name, req.reason).await?;
    Ok(Json(json!({ "name": name, "serial": serial, "state": "revoked" })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullQuery {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    key: Option<bool>,
}

pub(super) async fn pull_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    query: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let password = headers.get(ops::PKCS12_PASSWORD_HEADER).and_then(|v| v.to_str().ok());
    let format = q.format.as_deref().unwrap_or("pem");
    let (body, content_type) =
        ops::pull(&state, &caller, &name, format, q.key.unwrap_or(false), password).await?;
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], body)
        .into_response())
}

pub(super) async fn certificate_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Items<EventView>>> {
    Ok(Json(Items { items: ops::cert_history(&state, &caller, &name).await? }))
}

pub(super) async fn list_challenges(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Items<ChallengeView>>> {
    caller.require(Need::Read)?;
    let c = ops::cert_or_404(&state, &name).await?;
    Ok(Json(Items { items: ops::challenges(&c)? }))
}

pub(super) async fn replace_challenges(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Items<ChallengeView>>> {
    caller.require(Need::Admin)?;
    let Specs { specs } = body(&bytes)?;
    if specs.is_empty() {
        return Err(Problem::invalid("specs", "give at least one challenge SPEC"));
    }
    let changes = certhub_engine::CertChanges { challenges: specs, ..Default::default() };
    ops::edit(&state, &caller, &name, changes).await?;
    let c = ops::cert_or_404(&state, &name).await?;
    Ok(Json(Items { items: ops::challenges(&c)? }))
}
