//! The web UI: server-rendered pages (askama templates compiled into the binary) with htmx
//! for the live parts (search as you type, a running request's steps, test results). Every
//! page works from a plain link; htmx only swaps fragments. The pages call the same
//! operations as the REST API, so roles, validation and the audit log are the same.

mod agents;
mod assets;
mod audit;
mod certificate;
mod certificates;
mod credentials;
mod dashboard;
mod import;
mod new_certificate;
mod session;
mod settings;
mod setup;
mod signin;

pub(crate) use certificate::TABS;
pub(crate) use certificates::STATES;
pub(crate) use new_certificate::{CHALLENGE_METHODS, KEY_TYPES};
pub(crate) use session::IDLE_MINUTES;
pub(crate) use settings::{CHANNEL_EVENTS, DIRECTORIES};

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use crate::auth::Role;
use crate::problem::Problem;
use crate::state::AppState;
use session::Session;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/login", get(signin::login_page).post(signin::login))
        .route("/login/oidc", get(signin::oidc_begin))
        .route("/login/oidc/callback", get(signin::oidc_callback))
        .route("/logout", post(signin::logout))
        .route("/setup", get(setup::setup_page).post(setup::setup))
        .route(
            "/certificates",
            get(certificates::certificates).post(new_certificate::create_certificate),
        )
        .route("/certificates/new", get(new_certificate::new_certificate))
        .route("/certificates/import", get(import::import_page).post(import::import_certificate))
        .route("/certificates/{name}", get(certificate::certificate))
        .route("/certificates/{name}/test", post(certificate::test_certificate))
        .route("/certificates/{name}/request", post(certificate::request_certificate))
        .route("/certificates/{name}/revoke", post(certificate::revoke_certificate))
        .route("/certificates/{name}/download", post(certificate::download))
        .route("/certificates/{name}/edit", post(certificate::edit_certificate))
        .route("/certificates/{name}/deployments", post(certificate::add_deployments))
        .route("/certificates/{name}/targets", post(certificate::set_targets))
        .route(
            "/certificates/{name}/deployments/{task}/delete",
            post(certificate::remove_deployment),
        )
        .route("/jobs/{id}", get(certificate::job))
        .route("/settings", get(settings::settings))
        .route("/settings/accounts", post(settings::add_account))
        .route("/settings/users", post(settings::add_user))
        .route("/settings/users/{name}", post(settings::change_user))
        .route("/settings/password", post(settings::change_password))
        .route("/settings/renewal", post(settings::save_renewal))
        .route("/settings/tokens", post(settings::create_token))
        .route("/settings/tokens/{id}/revoke", post(settings::revoke_token))
        .route("/settings/notifications", post(settings::add_channel))
        .route("/settings/notifications/{name}/test", post(settings::test_channel))
        .route("/settings/notifications/{name}/delete", post(settings::delete_channel))
        .route("/credentials", get(credentials::credentials).post(credentials::add))
        .route("/credentials/{name}/rotate", post(credentials::rotate))
        .route("/credentials/{name}/remove", post(credentials::remove))
        .route("/agents", get(agents::agents))
        .route("/agents/tokens", post(agents::create_token))
        .route("/agents/{name}/remove", post(agents::remove))
        .route("/audit", get(audit::audit))
        .route("/assets/htmx.min.js", get(assets::htmx_js))
        .route("/assets/app.css", get(assets::app_css))
        .route("/assets/icon.svg", get(assets::icon))
        .route("/favicon.ico", get(assets::icon))
}

/// A posted form, its fields in order (a field may repeat).
#[derive(Debug, Default)]
pub(crate) struct FormData(Vec<(String, String)>);

impl FormData {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or "" (what a form field shows).
    pub fn value(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    /// Whether checkbox `key` was ticked.
    pub fn checked(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v == "on" || v == "true")
    }

    /// The trimmed, non-empty value of `key`.
    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// The trimmed value of `key`, or "" with `rule` added to `errors` for it when it is
    /// empty (a field the form needs).
    fn required(&self, key: &str, errors: &mut Errors, rule: &str) -> String {
        let value = self.text(key).unwrap_or_default();
        if value.is_empty() {
            errors.add(key, rule);
        }
        value
    }

    /// The non-empty lines of `key`.
    fn lines(&self, key: &str) -> Vec<String> {
        self.value(key).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = Response;

    /// A URL-encoded form, or a multipart one (a form with a file field): a chosen file's
    /// bytes arrive as base64 under the field's name, and a field with no file chosen as "".
    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !multipart {
            let Form(fields) = Form::<Vec<(String, String)>>::from_request(req, state)
                .await
                .map_err(IntoResponse::into_response)?;
            return Ok(Self(fields));
        }
        let mut parts = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut fields = Vec::new();
        while let Some(field) = parts.next_field().await.map_err(IntoResponse::into_response)? {
            let name = field.name().unwrap_or_default().to_string();
            let value = if field.file_name().is_some() {
                use base64::Engine as _;
                let bytes = field.bytes().await.map_err(IntoResponse::into_response)?;
                base64::engine::general_purpose::STANDARD.encode(bytes)
            } else {
                field.text().await.map_err(IntoResponse::into_response)?
            };
            fields.push((name, value));
        }
        Ok(Self(fields))
    }
}

/// Validation messages by field; `_` holds the one that names no field.
#[derive(Debug, Default)]
pub(crate) struct Errors(HashMap<String, String>);

impl Errors {
    /// The message for `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_string()).or_insert_with(|| message.into());
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A problem, next to its field when it names one of `fields`, else at the top.
    fn from_problem(p: &Problem, fields: &[&str]) -> Self {
        let mut e = Self::default();
        match p.field.as_deref().filter(|f| fields.contains(f)) {
            Some(f) => e.add(f, &p.detail),
            None => e.add("_", &p.detail),
        }
        e
    }
}

/// What every page's frame shows.
pub(crate) struct PageInfo {
    pub title: String,
    /// The signed-in user's navigation (none on the sign-in and setup pages).
    pub nav: Option<Nav>,
    /// A one-line message at the top, e.g. after a change.
    pub flash: Option<String>,
}

pub(crate) struct Nav {
    pub user: String,
    pub role: &'static str,
    pub admin: bool,
    pub csrf: String,
    pub active: &'static str,
}

impl PageInfo {
    fn new(title: impl Into<String>, s: &Session, active: &'static str) -> Self {
        Self {
            title: title.into(),
            nav: Some(Nav {
                user: s.caller.user.clone(),
                role: s.caller.role.as_str(),
                admin: s.caller.role == Role::Admin,
                csrf: s.csrf.clone(),
                active,
            }),
            flash: None,
        }
    }

    fn public(title: &str) -> Self {
        Self { title: title.into(), nav: None, flash: None }
    }

    fn flash(mut self, message: Option<String>) -> Self {
        self.flash = message;
        self
    }
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => Problem::internal(e).into_response(),
    }
}

fn render_status(status: StatusCode, t: &impl Template) -> Response {
    let mut rsp = render(t);
    if rsp.status() == StatusCode::OK {
        *rsp.status_mut() = status;
    }
    rsp
}

/// A problem as a page: the message in the frame, with a way back.
fn problem_page(p: Problem, s: &Session) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    render_status(
        status,
        &MessagePage { page: PageInfo::new(&p.title, s, ""), message: p.detail.clone() },
    )
}

/// A problem as a fragment for htmx to swap in.
fn problem_fragment(p: &Problem) -> Response {
    // htmx swaps only 2xx answers by default; the message is the content here.
    render(&Fragment { class: "result bad", lines: vec![p.detail.clone()] })
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    page: PageInfo,
    message: String,
}

#[derive(Template)]
#[template(path = "fragment.html")]
struct Fragment {
    class: &'static str,
    lines: Vec<String>,
}

/// A certificate as the pages show it.
pub(crate) struct CertRow {
    pub name: String,
    pub state: String,
    pub identifiers: String,
    pub account: String,
    pub expires: String,
    /// Days left, when issued.
    pub days_left: Option<i64>,
    pub last_error: String,
}

impl CertRow {
    fn of(v: &crate::ops::CertView) -> Self {
        let now = crate::clock::now_ms();
        Self {
            name: v.name.clone(),
            state: v.state.to_string(),
            identifiers: v.identifiers.join(", "),
            account: v.account.clone().unwrap_or_else(|| "imported".into()),
            expires: v
                .not_after
                .as_deref()
                .map(|t| t.replace('T', " ").replace('Z', " UTC"))
                .unwrap_or_default(),
            days_left: v.expires_at.map(|t| (t - now).div_euclid(86_400_000)),
            last_error: v.last_error.clone().unwrap_or_default(),
        }
    }
}
