//! Signing in and out: `GET /login`, `POST /login` and `POST /logout`; through an OpenID
//! provider, `GET /login/oidc` (off to the provider) and `GET /login/oidc/callback` (back).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{self, Posted};
use super::{Errors, FormData, PageInfo, render_status};
use crate::ops;
use crate::problem::Problem;
use crate::state::AppState;

// ----- sign-in and setup -----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: PageInfo,
    values: FormData,
    errors: Errors,
    next: String,
    notice: Option<&'static str>,
    /// The form's CSRF token, also sent as the [`LOGIN_COOKIE`] cookie.
    csrf: String,
    /// What the OpenID sign-in button calls the provider, when there is one.
    oidc: Option<String>,
    /// Where that button goes (with `next`).
    oidc_href: String,
}

/// The cookie that carries the sign-in form's CSRF token. A sign-in has no session yet, so
/// the form posts back a random value that must equal this cookie's: another site can make a
/// browser post the form, but cannot read or set the cookie (SameSite=Strict, HttpOnly).
const LOGIN_COOKIE: &str = "certhub_login";

impl LoginPage {
    /// The page, with a fresh CSRF token: its cookie is set by [`LoginPage::respond`].
    fn new(
        state: &AppState,
        next: String,
        values: FormData,
        errors: Errors,
        notice: Option<&'static str>,
    ) -> Self {
        let csrf = crate::auth::random_secret();
        let oidc = state.oidc.as_ref().map(|o| o.label().to_string());
        let oidc_href = format!("/login/oidc?next={}", session::urlencode(&next));
        Self {
            page: PageInfo::public("Sign in"),
            values,
            errors,
            next,
            notice,
            csrf,
            oidc,
            oidc_href,
        }
    }

    fn respond(&self, status: StatusCode, https: bool) -> Response {
        let mut rsp = render_status(status, self);
        let cookie = format!(
            "{LOGIN_COOKIE}={}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            self.csrf,
            if https { "; Secure" } else { "" }
        );
        add_cookie(&mut rsp, &cookie);
        rsp
    }
}

/// Adds a `Set-Cookie` of `cookie` to `rsp` (cookies made here are always valid headers).
fn add_cookie(rsp: &mut Response, cookie: &str) {
    if let Ok(v) = header::HeaderValue::from_str(cookie) {
        rsp.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[derive(serde::Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    why: Option<String>,
}

/// Only a path on this hub is followed after sign-in. Browsers drop tabs and newlines from a
/// URL and read a backslash as a slash, so `/\t/evil.example` would reach `//evil.example`,
/// another site: anything but printable ASCII, any backslash, and a second leading slash are
/// refused.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

pub(super) async fn login_page(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
) -> Response {
    if matches!(state.store.user_count().await, Ok(0)) {
        return Redirect::to("/setup").into_response();
    }
    let notice = match q.why.as_deref() {
        Some("idle") => Some("Your session ended after an hour without use. Sign in again."),
        Some("expired") => Some("Your session has ended. Sign in again."),
        _ => None,
    };
    LoginPage::new(
        &state,
        safe_next(q.next.as_deref()),
        FormData::default(),
        Errors::default(),
        notice,
    )
    .respond(StatusCode::OK, state.https)
}

pub(super) async fn login(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    form: FormData,
) -> Response {
    let source = crate::auth::source(&parts);
    let next = safe_next(form.get("next"));
    let username = form.value("username").trim().to_string();
    let sent = session::cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    let outcome = async {
        if sent.is_empty() || !certhub_store::same_secret(sent, form.value("csrf")) {
            return Err(Problem::forbidden(
                "This sign-in form is stale or came from another site. Sign in again here.",
            ));
        }
        let user = ops::sign_in(&state, &username, form.value("password"), &source).await?;
        session::start(&state, &user, &source, state.https).await
    }
    .await;
    match outcome {
        Ok(cookie) => {
            (StatusCode::SEE_OTHER, [(header::LOCATION, next), (header::SET_COOKIE, cookie)])
                .into_response()
        }
        Err(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNAUTHORIZED);
            let mut errors = Errors::default();
            errors.add("password", p.detail);
            let values = FormData(vec![("username".into(), username)]);
            LoginPage::new(&state, next, values, errors, None).respond(status, state.https)
        }
    }
}

pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    _: Posted,
) -> Response {
    let cookie = session::end(&state, &headers).await;
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/login".to_string()), (header::SET_COOKIE, cookie)],
    )
        .into_response()
}

// ----- through an OpenID provider -----

/// The cookie that carries a sign-in at the OpenID provider (see [`crate::oidc::Pending`]).
/// SameSite=Lax: the provider sends the browser back from another site, and a Strict cookie
/// would not come along.
const OIDC_COOKIE: &str = "certhub_oidc";

fn oidc_cookie(value: &str, max_age: u64, https: bool) -> String {
    format!(
        "{OIDC_COOKIE}={value}; Path=/login/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if https { "; Secure" } else { "" }
    )
}

/// The sign-in page with `problem` said where the OpenID button is, and the pending
/// sign-in's cookie cleared.
fn oidc_failed(state: &AppState, next: String, p: Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut errors = Errors::default();
    errors.add("oidc", p.detail);
    let mut rsp =
        LoginPage::new(state, next, FormData::default(), errors, None).respond(status, state.https);
    add_cookie(&mut rsp, &oidc_cookie("", 0, state.https));
    rsp
}

/// What a sign-in through an OpenID provider hears from a hub without one.
fn no_provider() -> Problem {
    Problem::not_found("this hub has no OpenID provider: sign in with a password")
}

/// `GET /login/oidc`: off to the provider, with a fresh state, nonce and PKCE verifier kept
/// in the browser's cookie.
pub(super) async fn oidc_begin(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(oidc) = state.oidc.clone() else {
        return oidc_failed(&state, next, no_provider());
    };
    match oidc.begin(&next).await {
        Ok((url, pending)) => {
            let cookie = oidc_cookie(&pending.to_cookie(), crate::oidc::PENDING_SECS, state.https);
            (StatusCode::SEE_OTHER, [(header::LOCATION, url), (header::SET_COOKIE, cookie)])
                .into_response()
        }
        Err(p) => oidc_failed(&state, next, p),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `GET /login/oidc/callback`: the provider's answer. The state must be the one this
/// browser was sent off with; the code is exchanged, the ID token verified, and the user
/// signed in (made at the first sign-in, their role set from the claim at each).
pub(super) async fn oidc_callback(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let pending =
        session::cookie(&parts.headers, OIDC_COOKIE).and_then(crate::oidc::Pending::from_cookie);
    let next = pending.as_ref().map_or_else(|| "/".to_string(), |p| safe_next(Some(&p.next)));
    let outcome = async {
        let oidc = state.oidc.clone().ok_or_else(no_provider)?;
        let pending = pending.as_ref().ok_or_else(|| {
            Problem::unauthorized(
                "this sign-in took longer than ten minutes or began in another browser; \
                 sign in again",
            )
        })?;
        if let Some(error) = &q.error {
            let why = q.error_description.as_deref().unwrap_or(error);
            return Err(Problem::unauthorized(format!(
                "the OpenID provider did not sign you in: {why}"
            )));
        }
        let sent = q.state.as_deref().ok_or_else(|| {
            Problem::forbidden("the OpenID provider's answer has no state; sign in again")
        })?;
        if !certhub_store::same_secret(sent, &pending.state) {
            return Err(Problem::forbidden(
                "this sign-in answer is not the one this browser asked for; sign in again",
            ));
        }
        let code = q.code.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
            Problem::unauthorized("the OpenID provider sent no code; sign in again")
        })?;
        let source = crate::auth::source(&parts);
        let who = oidc.finish(pending, code).await?;
        let user = ops::sign_in_oidc(&state, &who, &source).await?;
        session::start(&state, &user, &source, state.https).await
    }
    .await;
    match outcome {
        // The page that follows is asked for by this site's own page: after a redirect from
        // another site the browser would hold back the SameSite=Strict session cookie.
        Ok(cookie) => {
            let mut rsp = super::render(&SignedIn { next: &next });
            add_cookie(&mut rsp, &cookie);
            add_cookie(&mut rsp, &oidc_cookie("", 0, state.https));
            rsp
        }
        Err(p) => oidc_failed(&state, next, p),
    }
}

/// The page after a sign-in through the provider: it moves on to `next` (a path on this
/// hub) by itself, so that the browser asks for it from this site and sends the session's
/// SameSite=Strict cookie.
#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedIn<'a> {
    next: &'a str,
}
