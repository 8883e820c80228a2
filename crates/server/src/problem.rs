//! Errors as RFC 9457 problem documents (`application/problem+json`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// An API error: what went wrong, and with which field, if one. A job that fails carries
/// the same document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` style names under certhub).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened, in one sentence.
    pub detail: String,
    /// The request field at fault, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The CA's own problem document, whole, when the CA refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_problem: Option<Box<serde_json::Value>>,
    /// Seconds to wait before retrying, when the CA said (also sent as Retry-After).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
}

impl Problem {
    fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://certhub.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            ca_problem: None,
            retry_after: None,
        }
    }

    /// 400: `field` breaks `rule`.
    pub fn invalid(field: &str, rule: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::BAD_REQUEST, "invalid", rule);
        p.field = Some(field.to_string());
        p
    }

    /// 401: no or no valid credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 409: the state does not allow it.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 429: too many attempts.
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", detail)
    }

    /// 408: the request did not arrive in time.
    pub fn too_slow(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "too-slow", detail)
    }

    /// 413: the request is larger than the hub takes.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", detail)
    }

    /// 503: the hub cannot do this now.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// 500: something on our side; the detail is logged, not shown.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the hub failed; see its log")
    }
}

impl From<certhub_engine::Error> for Problem {
    /// The engine's error by its kind, with the field at fault; an internal one is logged,
    /// not shown.
    fn from(e: certhub_engine::Error) -> Self {
        use certhub_engine::Kind;
        let (status, kind) = match e.kind {
            Kind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            Kind::NotFound => (StatusCode::NOT_FOUND, "not-found"),
            Kind::Conflict => (StatusCode::CONFLICT, "conflict"),
            Kind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Kind::CaRefused => (StatusCode::BAD_GATEWAY, "ca-refused"),
            Kind::Busy | Kind::Transient => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Kind::Internal => return Self::internal(e.message),
        };
        let mut p = Self::new(status, kind, e.message);
        p.field = e.field.map(str::to_string);
        p.ca_problem = e.problem.and_then(|ca| match serde_json::to_value(*ca) {
            Ok(ca) => Some(Box::new(ca)),
            Err(e) => {
                tracing::warn!(error = %e, "the CA's problem document could not be kept");
                None
            }
        });
        p.retry_after =
            e.retry_after.map(|d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX));
        p
    }
}

/// What a change refused for want of room says.
pub(crate) const STORAGE_FULL: &str = "the hub's database has no room left on its disk: \
     nothing was changed; free space where the database is (the data directory, or the \
     PostgreSQL server), then try again";

impl From<certhub_store::Error> for Problem {
    fn from(e: certhub_store::Error) -> Self {
        if e.is_storage_full() {
            tracing::error!(error = %e, "the database's disk is full");
            return Self::new(StatusCode::INSUFFICIENT_STORAGE, "storage-full", STORAGE_FULL);
        }
        match e {
            certhub_store::Error::NotFound { .. } => Self::not_found(e.to_string()),
            certhub_store::Error::AlreadyExists { .. }
            | certhub_store::Error::InUse { .. }
            | certhub_store::Error::Invalid { .. } => Self::conflict(e.to_string()),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut rsp = (status, axum::Json(&self)).into_response();
        let headers = rsp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        rsp
    }
}
