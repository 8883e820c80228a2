//! Signing in and out: `GET /login`, `POST /login` and `POST /logout`.

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
}

/// The cookie that carries the sign-in form's CSRF token. A sign-in has no session yet, so
/// the form posts back a random value that must equal this cookie's: another site can make a
/// browser post the form, but cannot read or set the cookie (SameSite=Strict, HttpOnly).
const LOGIN_COOKIE: &str = "certhub_login";

impl LoginPage {
    /// The page, with a fresh CSRF token: its cookie is set by [`LoginPage::respond`].
    fn new(next: String, values: FormData, errors: Errors, notice: Option<&'static str>) -> Self {
        let csrf = crate::auth::random_secret();
        Self { page: PageInfo::public("Sign in"), values, errors, next, notice, csrf }
    }

    fn respond(&self, status: StatusCode, https: bool) -> Response {
        let mut rsp = render_status(status, self);
        let cookie = format!(
            "{LOGIN_COOKIE}={}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            self.csrf,
            if https { "; Secure" } else { "" }
        );
        if let Ok(v) = header::HeaderValue::from_str(&cookie) {
            rsp.headers_mut().insert(header::SET_COOKIE, v);
        }
        rsp
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
    LoginPage::new(safe_next(q.next.as_deref()), FormData::default(), Errors::default(), notice)
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
            LoginPage::new(next, values, errors, None).respond(status, state.https)
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
