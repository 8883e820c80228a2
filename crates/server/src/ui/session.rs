//! Web sessions: a sign-in makes a token of the user's (of kind [`TokenKind::Session`]) that
//! travels in an HttpOnly, SameSite=Strict cookie. It ends after [`SESSION_HOURS`] hours, or
//! after [`IDLE_MINUTES`] minutes without use, or at sign-out. Every form posts a CSRF token
//! derived from the session's secret, checked before anything changes.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::{self, Caller, Role};
use crate::clock::now_ms;
use crate::state::AppState;
use certhub_store::TokenKind;

/// The cookie's name.
pub(crate) const COOKIE: &str = "certhub_session";
/// What session tokens are labelled where tokens are listed. Sessions are told from API
/// tokens by their kind, never by this label, which an API token may carry too.
pub(crate) const SESSION_LABEL: &str = "web session";
/// A session's longest life.
pub(crate) const SESSION_HOURS: i64 = 12;
/// A session unused for this long has ended.
pub(crate) const IDLE_MINUTES: i64 = 60;

/// A signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Who, with the scopes of their role.
    pub caller: Caller,
    /// The token forms must post back.
    pub csrf: String,
}

/// The value of cookie `name`, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The CSRF token of a session: bound to its secret, useless without the cookie.
fn csrf_for(secret: &str) -> String {
    certhub_store::token_hash(&format!("csrf:{secret}"))[..32].to_string()
}

/// Where a browser without a (live) session goes: the sign-in page, then back to `next`.
fn to_sign_in(parts: &Parts, why: Option<&str>) -> Response {
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut url = format!("/login?next={}", urlencode(next));
    if let Some(why) = why {
        url.push_str("&why=");
        url.push_str(why);
    }
    if parts.headers.contains_key("hx-request") {
        // htmx follows this header with a full page load.
        return (StatusCode::UNAUTHORIZED, [("hx-redirect", url)]).into_response();
    }
    Redirect::to(&url).into_response()
}

/// Percent-encodes a query value.
pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some((id, secret)) = cookie(&parts.headers, COOKIE).and_then(auth::split_token) else {
            return Err(to_sign_in(parts, None));
        };
        let fail = |e: certhub_store::Error| crate::problem::Problem::from(e).into_response();
        let Some((record, role)) = state.store.verify_token(id, secret).await.map_err(fail)? else {
            return Err(to_sign_in(parts, Some("expired")));
        };
        if record.kind != TokenKind::Session {
            return Err(to_sign_in(parts, None));
        }
        let last = record.last_used_at.unwrap_or(record.created_at);
        if now_ms() - last > IDLE_MINUTES * 60_000 {
            state.store.delete_token(&record.id, None).await.map_err(fail)?;
            return Err(to_sign_in(parts, Some("idle")));
        }
        let role = Role::parse(&role).unwrap_or(Role::Viewer);
        Ok(Session {
            caller: Caller::with_role_scopes(
                record.user_name,
                role,
                record.id,
                auth::source(parts),
            ),
            csrf: csrf_for(secret),
        })
    }
}

/// A form posted by a signed-in browser, its CSRF token checked: every handler that changes
/// something takes one, so none can forget the check.
pub(crate) struct Posted {
    pub session: Session,
    pub form: super::FormData,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let form = super::FormData::from_request(Request::from_parts(parts, body), state).await?;
        session.check_csrf(&headers, &form).map_err(IntoResponse::into_response)?;
        Ok(Posted { session, form })
    }
}

impl Session {
    /// Fails unless the form (or the htmx header) carries this session's CSRF token.
    fn check_csrf(&self, headers: &HeaderMap, form: &super::FormData) -> Result<(), StaleForm> {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .or_else(|| form.get("csrf"))
            .unwrap_or_default();
        if certhub_store::same_secret(sent, &self.csrf) { Ok(()) } else { Err(StaleForm) }
    }
}

/// A form without this session's CSRF token: stale, or sent from another site.
#[derive(Debug)]
pub(crate) struct StaleForm;

impl IntoResponse for StaleForm {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            "This form is stale or came from another site. Reload the page and try again.",
        )
            .into_response()
    }
}

/// Starts a session for `user`: the `Set-Cookie` value. `secure` marks it HTTPS-only.
pub(crate) async fn start(
    state: &AppState,
    user: &certhub_store::UserRecord,
    source: &str,
    secure: bool,
) -> Result<String, crate::problem::Problem> {
    let expires = now_ms() + SESSION_HOURS * 3_600_000;
    let (token, _) = crate::ops::issue_token(
        state,
        user,
        TokenKind::Session,
        SESSION_LABEL,
        None,
        Some(expires),
        source,
    )
    .await?;
    Ok(format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_HOURS * 3600,
        if secure { "; Secure" } else { "" }
    ))
}

/// Ends the session in `headers` (if any): the `Set-Cookie` value that clears the cookie.
pub(crate) async fn end(state: &AppState, headers: &HeaderMap) -> String {
    if let Some((id, secret)) = cookie(headers, COOKIE).and_then(auth::split_token)
        && let Ok(Some((record, _))) = state.store.verify_token(id, secret).await
    {
        let _ = state.store.delete_token(&record.id, None).await;
    }
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}
