//! Certificates: every route under `/api/v1/certificates` but `/{name}/deployments`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use certhub_store::{CertFilter, CertRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiResult, Specs, body, cert_or_404, cert_view, engine, now_ms, rfc3339_ms, summary_view,
};
use crate::auth::{Caller, Need};
use crate::problem::Problem;
use crate::state::AppState;

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

pub(super) async fn list_certificates(
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

pub(super) async fn create_certificate(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: certhub_engine::NewCertificate = body(&bytes)?;
    let c = add_certificate(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(cert_view(&c, None))))
}

/// Adds a managed certificate (admins only: its challenge and deployment specs run hooks
/// and commands and write files on the hub). Audited.
pub(crate) async fn add_certificate(
    state: &AppState,
    caller: &Caller,
    req: certhub_engine::NewCertificate,
) -> ApiResult<CertRecord> {
    caller.require(Need::Admin)?;
    let name = req.name.clone();
    engine(state)?.add_certificate(&req, caller.entry("cert.create", &name)).await?;
    cert_or_404(state, &name).await
}

pub(super) async fn get_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    let c = cert_or_404(&state, &name).await?;
    let issued = state.store.latest_issued(&name).await?;
    Ok(Json(cert_view(&c, issued.as_ref())))
}

pub(super) async fn edit_certificate(
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
    changes: certhub_engine::CertChanges,
) -> ApiResult<Vec<String>> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.update", name);
    Ok(engine(state)?.edit(name, &changes, entry).await?)
}

pub(super) async fn delete_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Need::Admin)?;
    cert_or_404(&state, &name).await?;
    state.store.delete_cert(&name, Some(&caller.entry("cert.delete", &name))).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn import_certificate(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: certhub_engine::Import = body(&bytes)?;
    Ok((StatusCode::CREATED, Json(import(&state, &caller, req).await?)))
}

/// Imports a certificate obtained elsewhere (admins only: its deployment tasks run on the
/// hub). Audited.
pub(crate) async fn import(
    state: &AppState,
    caller: &Caller,
    req: certhub_engine::Import,
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

pub(super) async fn request_certificate(
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
) -> ApiResult<crate::jobs::Job> {
    caller.require(Need::Request)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.request", name);
    Ok(state.jobs.start_request(engine(state)?, name, entry).await?)
}

pub(super) async fn preview_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    cert_or_404(&state, &name).await?;
    Ok(Json(engine(&state)?.preview(&name, None).await?))
}

pub(super) async fn test_certificate(
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

pub(super) async fn revoke_certificate(
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

pub(super) async fn pull_certificate(
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

pub(super) async fn certificate_history(
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

pub(super) async fn list_challenges(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    Ok(Json(challenges_view(&cert_or_404(&state, &name).await?)))
}

pub(super) async fn replace_challenges(
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
    let changes = certhub_engine::CertChanges { challenges: specs, ..Default::default() };
    edit(&state, &caller, &name, changes).await?;
    Ok(Json(challenges_view(&cert_or_404(&state, &name).await?)))
}
