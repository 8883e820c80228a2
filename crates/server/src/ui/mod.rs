//! The web UI: server-rendered pages (askama templates compiled into the binary) with htmx
//! for the live parts (search as you type, a running request's steps, test results). Every
//! page works from a plain link; htmx only swaps fragments. The pages call the same
//! operations as the REST API, so roles, validation and the audit log are the same.

mod session;

pub(crate) use session::IDLE_MINUTES;

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::Value;

use crate::api::{self, ListQuery, rfc3339_ms};
use crate::auth::{Need, Role};
use crate::{AppState, Problem};
use certhub_store::TokenKind;
use session::{Posted, Session};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/setup", get(setup_page).post(setup))
        .route("/certificates", get(certificates).post(create_certificate))
        .route("/certificates/new", get(new_certificate))
        .route("/certificates/import", get(import_page).post(import_certificate))
        .route("/certificates/{name}", get(certificate))
        .route("/certificates/{name}/test", post(test_certificate))
        .route("/certificates/{name}/request", post(request_certificate))
        .route("/certificates/{name}/revoke", post(revoke_certificate))
        .route("/certificates/{name}/download", post(download))
        .route("/certificates/{name}/edit", post(edit_certificate))
        .route("/certificates/{name}/deployments", post(add_deployments))
        .route("/certificates/{name}/deployments/{task}/delete", post(remove_deployment))
        .route("/jobs/{id}", get(job))
        .route("/settings", get(settings))
        .route("/settings/accounts", post(add_account))
        .route("/settings/users", post(add_user))
        .route("/settings/renewal", post(save_renewal))
        .route("/settings/tokens", post(create_token))
        .route("/settings/tokens/{id}/revoke", post(revoke_token))
        .route("/settings/notifications", post(add_channel))
        .route("/settings/notifications/{name}/test", post(test_channel))
        .route("/settings/notifications/{name}/delete", post(delete_channel))
        .route("/audit", get(audit))
        .route("/assets/htmx.min.js", get(htmx_js))
        .route("/assets/app.css", get(app_css))
        .route("/assets/icon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

/// Static files, embedded. htmx 2 (BSD Zero Clause, see assets/htmx.LICENSE).
async fn htmx_js() -> Response {
    asset("text/javascript", include_bytes!("../../assets/htmx.min.js"))
}

async fn app_css() -> Response {
    asset("text/css", include_bytes!("../../assets/app.css"))
}

async fn icon() -> Response {
    asset("image/svg+xml", include_bytes!("../../assets/icon.svg"))
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body)
        .into_response()
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
struct LoginQuery {
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

async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
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

async fn login(
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
        let user = api::sign_in(&state, &username, form.value("password"), &source).await?;
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

async fn logout(State(state): State<AppState>, headers: HeaderMap, _: Posted) -> Response {
    let cookie = session::end(&state, &headers).await;
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/login".to_string()), (header::SET_COOKIE, cookie)],
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    page: PageInfo,
    values: FormData,
    errors: Errors,
}

async fn setup_page(State(state): State<AppState>) -> Response {
    if !matches!(state.store.user_count().await, Ok(0)) {
        return Redirect::to("/login").into_response();
    }
    render(&SetupPage {
        page: PageInfo::public("Set up certhub"),
        values: FormData::default(),
        errors: Errors::default(),
    })
}

async fn setup(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    form: FormData,
) -> Response {
    let source = crate::auth::source(&parts);
    let mut errors = Errors::default();
    if form.value("password") != form.value("password2") {
        errors.add("password2", "the two passwords differ");
    }
    if errors.is_empty() {
        let username = form.value("username").trim();
        let made = async {
            api::setup_admin(
                &state,
                form.value("token"),
                username,
                form.value("password"),
                &source,
            )
            .await?;
            let user = state
                .store
                .user(username)
                .await?
                .ok_or_else(|| Problem::internal("the new admin is missing"))?;
            session::start(&state, &user, &source, state.https).await
        }
        .await;
        match made {
            Ok(cookie) => {
                return (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, "/settings".to_string()), (header::SET_COOKIE, cookie)],
                )
                    .into_response();
            }
            Err(p) => {
                let field = match p.status {
                    401 => "token",
                    _ => p.field.as_deref().unwrap_or("_"),
                };
                errors.add(field, p.detail);
            }
        }
    }
    render_status(
        StatusCode::BAD_REQUEST,
        &SetupPage {
            page: PageInfo::public("Set up certhub"),
            values: FormData(vec![("username".into(), form.value("username").into())]),
            errors,
        },
    )
}

// ----- dashboard -----

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
    fn from_view(v: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let not_after = v["not_after"].as_str().and_then(parse_rfc3339);
        Self {
            name: text(&v["name"]),
            state: text(&v["state"]),
            identifiers: v["identifiers"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            account: v["account"].as_str().unwrap_or("imported").to_string(),
            expires: v["not_after"]
                .as_str()
                .map(|t| t.replace('T', " ").replace('Z', " UTC"))
                .unwrap_or_default(),
            days_left: not_after.map(|t| (t - now_secs()).div_euclid(86_400)),
            last_error: text(&v["last_error"]),
        }
    }
}

fn now_secs() -> i64 {
    api::now_ms().div_euclid(1000)
}

/// Unix seconds of an RFC 3339 UTC time as the API writes it.
fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// One week of the dashboard's chart.
pub(crate) struct Week {
    pub label: String,
    pub expiring: u64,
    pub renewing: u64,
    /// Bar heights, in percent of the busiest week.
    pub expiring_pct: u64,
    pub renewing_pct: u64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: PageInfo,
    total: u64,
    counts: Vec<(String, u64)>,
    weeks: Vec<Week>,
    attention: Vec<CertRow>,
    /// How many need attention, of which `attention` shows the worst.
    attention_total: u64,
    expiring_days: i64,
}

/// Certificates expiring within this many days need attention.
const EXPIRING_DAYS: i64 = 30;
const CHART_WEEKS: usize = 12;
/// The dashboard lists at most this many of the certificates that need attention.
const ATTENTION_ROWS: u64 = 50;

async fn dashboard(State(state): State<AppState>, s: Session) -> Response {
    match dashboard_page(&state, &s).await {
        Ok(page) => render(&page),
        Err(p) => problem_page(p, &s),
    }
}

async fn dashboard_page(state: &AppState, s: &Session) -> Result<DashboardPage, Problem> {
    s.caller.require(Need::Read)?;
    let policy = state.settings.get().policy.parse().unwrap_or_default();
    let spec = certhub_store::OverviewSpec {
        now: now_secs(),
        weeks: CHART_WEEKS,
        soon: EXPIRING_DAYS * 86_400,
        attention_limit: ATTENTION_ROWS,
    };
    let overview = state.store.overview(spec, policy).await?;
    // The usual states always, in their order; any other after them.
    let mut counts: Vec<(String, u64)> = STATES.iter().map(|s| (s.to_string(), 0)).collect();
    for (state, n) in overview.states {
        match counts.iter_mut().find(|(k, _)| *k == state) {
            Some((_, count)) => *count = n,
            None => counts.push((state, n)),
        }
    }
    let peak =
        overview.expiring.iter().chain(&overview.renewing).copied().max().unwrap_or(0).max(1);
    let weeks = overview
        .expiring
        .iter()
        .zip(&overview.renewing)
        .enumerate()
        .map(|(n, (&expiring, &renewing))| Week {
            label: if n == 0 { "this week".into() } else { format!("+{n} w") },
            expiring,
            renewing,
            expiring_pct: expiring * 100 / peak,
            renewing_pct: renewing * 100 / peak,
        })
        .collect();
    let attention =
        overview.attention.iter().map(|c| CertRow::from_view(&api::summary_view(c))).collect();
    Ok(DashboardPage {
        page: PageInfo::new("Dashboard", s, "dashboard"),
        total: overview.total,
        counts,
        weeks,
        attention,
        attention_total: overview.attention_total,
        expiring_days: EXPIRING_DAYS,
    })
}

// ----- certificates -----

#[derive(Template)]
#[template(path = "certificates.html")]
struct CertificatesPage {
    page: PageInfo,
    list: CertTable,
    can_add: bool,
}

#[derive(Template)]
#[template(path = "certificates_table.html")]
struct CertTable {
    rows: Vec<CertRow>,
    q: String,
    state: String,
    page: u32,
    pages: u32,
    total: usize,
}

impl CertTable {
    /// The list URL for page `n`, keeping the filters.
    fn page_url(&self, n: &u32) -> String {
        format!(
            "/certificates?q={}&state={}&page={n}",
            session::urlencode(&self.q),
            session::urlencode(&self.state)
        )
    }
}

/// The states the list filters on.
pub(crate) const STATES: &[&str] = &["valid", "pending", "failing", "expired", "revoked"];

async fn certificates(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return problem_page(Problem::invalid("query", e.body_text()), &s),
    };
    if let Err(p) = s.caller.require(Need::Read) {
        return problem_page(p, &s);
    }
    let per_page = 50;
    let listing = ListQuery { per_page: Some(per_page), ..q };
    let page = match api::cert_page(&state, &listing).await {
        Ok(p) => p,
        Err(p) => return problem_page(p, &s),
    };
    let list = CertTable {
        rows: page.items.iter().map(CertRow::from_view).collect(),
        q: listing.q.clone().unwrap_or_default(),
        state: listing.state.clone().unwrap_or_default(),
        page: page.page,
        pages: (page.total as u32).div_ceil(per_page).max(1),
        total: page.total,
    };
    // A search as you type replaces the table only.
    if headers.contains_key("hx-request") && !headers.contains_key("hx-boosted") {
        return render(&list);
    }
    render(&CertificatesPage {
        page: PageInfo::new("Certificates", &s, "certificates"),
        list,
        can_add: s.caller.may(Need::Admin),
    })
}

#[derive(Template)]
#[template(path = "certificate_new.html")]
struct NewCertPage {
    page: PageInfo,
    values: FormData,
    errors: Errors,
    accounts: Vec<String>,
}

/// The challenge methods the form offers: the spec prefix, and what the value is.
pub(crate) const CHALLENGE_METHODS: &[(&str, &str, &str)] = &[
    ("http-01:listen", "http-01, certhub answers on a port", "0.0.0.0:80"),
    ("http-01:webroot", "http-01, a file in a web server's root", "/var/www/html"),
    ("tls-alpn-01:listen", "tls-alpn-01, certhub answers TLS on a port", "0.0.0.0:443"),
    (
        "dns-01:rfc2136",
        "dns-01, RFC 2136 dynamic update",
        "ns1.example.com:53,key-name=certhub,key-secret=BASE64,algorithm=hmac-sha256",
    ),
    ("dns-01:exec", "dns-01, a script (lego's exec convention)", "/usr/local/bin/dns-hook"),
    (
        "dns-01:callback",
        "dns-01, signed events to a URL",
        "https://dns.example.com/hook,secret=SECRET",
    ),
];

/// Key types the form offers.
pub(crate) const KEY_TYPES: &[&str] = &["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"];

async fn new_certificate(State(state): State<AppState>, s: Session) -> Response {
    if let Err(p) = s.caller.require(Need::Admin) {
        return problem_page(p, &s);
    }
    let accounts = match account_names(&state).await {
        Ok(a) => a,
        Err(p) => return problem_page(p, &s),
    };
    let values = FormData(vec![
        ("challenge_method".into(), "http-01:listen".into()),
        ("key_type".into(), "ec-p256".into()),
    ]);
    render(&NewCertPage {
        page: PageInfo::new("New certificate", &s, "certificates"),
        values,
        errors: Errors::default(),
        accounts,
    })
}

async fn account_names(state: &AppState) -> Result<Vec<String>, Problem> {
    Ok(state.store.accounts().await?.into_iter().map(|a| a.name).collect())
}

async fn create_certificate(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let mut errors = Errors::default();
    let name = form.text("name").unwrap_or_default();
    if name.is_empty() {
        errors.add("name", "give the certificate a name, e.g. www");
    }
    let account = form.text("account").unwrap_or_default();
    if account.is_empty() {
        errors.add("account", "choose the CA account that orders it (add one under Settings)");
    }
    let mut domains = Vec::new();
    let mut ips = Vec::new();
    for line in form.lines("domains").iter().flat_map(|l| l.split([',', ' '])) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.parse::<std::net::IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => domains.push(line.to_string()),
        }
    }
    if domains.is_empty() && ips.is_empty() {
        errors.add("domains", "list at least one domain name or IP address");
    }
    let method = form.value("challenge_method");
    let challenge_value = form.text("challenge_value");
    if !CHALLENGE_METHODS.iter().any(|(m, _, _)| *m == method) {
        errors.add("challenge_method", "choose how the CA validates the names");
    }
    let Some(challenge_value) = challenge_value else {
        errors.add("challenge_value", "say where the challenge is answered");
        return new_cert_form(&state, &s, form, errors).await;
    };
    if !errors.is_empty() {
        return new_cert_form(&state, &s, form, errors).await;
    }
    let req = crate::NewCertificate {
        name: name.clone(),
        account,
        domains,
        ips,
        key_type: form.text("key_type"),
        reuse_key: form.checked("reuse_key"),
        challenges: vec![format!("{method}={challenge_value}")],
        deploy: form.lines("deploy"),
        renew_at: form.text("renew_at"),
        ..Default::default()
    };
    match api::add_certificate(&state, &s.caller, req).await {
        Ok(_) => Redirect::to(&format!("/certificates/{}?tab=preview", session::urlencode(&name)))
            .into_response(),
        Err(p) => {
            let errors = Errors::from_problem(&p, &["name", "account", "domains", "renew_at"]);
            new_cert_form(&state, &s, form, errors).await
        }
    }
}

async fn new_cert_form(
    state: &AppState,
    s: &Session,
    values: FormData,
    errors: Errors,
) -> Response {
    let accounts = account_names(state).await.unwrap_or_default();
    render_status(
        StatusCode::BAD_REQUEST,
        &NewCertPage {
            page: PageInfo::new("New certificate", s, "certificates"),
            values,
            errors,
            accounts,
        },
    )
}

#[derive(Template)]
#[template(path = "certificate_import.html")]
struct ImportPage {
    page: PageInfo,
    values: FormData,
    errors: Errors,
}

async fn import_page(s: Session) -> Response {
    if let Err(p) = s.caller.require(Need::Admin) {
        return problem_page(p, &s);
    }
    render(&ImportPage {
        page: PageInfo::new("Import a certificate", &s, "certificates"),
        values: FormData::default(),
        errors: Errors::default(),
    })
}

async fn import_certificate(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let mut errors = Errors::default();
    let name = form.text("name").unwrap_or_default();
    if name.is_empty() {
        errors.add("name", "give the certificate a name, e.g. shop");
    }
    let cert_pem = form.text("cert_pem");
    // A file chosen in the form arrives as base64 (see FormData).
    let pkcs12 = form.text("pkcs12");
    match (&cert_pem, &pkcs12) {
        (None, None) => errors.add(
            "cert_pem",
            "paste the certificate and its chain (PEM, leaf first), or choose a PKCS#12 file",
        ),
        (Some(_), Some(_)) => {
            errors.add("pkcs12", "give PEM or a PKCS#12 file, not both");
        }
        _ => {}
    }
    if errors.is_empty() {
        let req = crate::Import {
            name: name.clone(),
            key_pem: if cert_pem.is_some() { form.text("key_pem") } else { None },
            cert_pem,
            password: pkcs12.as_ref().map(|_| form.value("password").to_string()),
            pkcs12_base64: pkcs12,
            deploy: form.lines("deploy"),
            ..Default::default()
        };
        match api::import(&state, &s.caller, req).await {
            Ok(_) => {
                return Redirect::to(&format!("/certificates/{}", session::urlencode(&name)))
                    .into_response();
            }
            Err(p) => {
                // The engine's error names the field at fault.
                let field = match p.field.as_deref() {
                    Some("pkcs12_base64") => "pkcs12",
                    Some("key_pem") => "key_pem",
                    Some("deploy") => "deploy",
                    Some("name") => "name",
                    _ => "cert_pem",
                };
                errors.add(field, p.detail);
            }
        }
    }
    render_status(
        StatusCode::BAD_REQUEST,
        &ImportPage {
            page: PageInfo::new("Import a certificate", &s, "certificates"),
            values: form,
            errors,
        },
    )
}

/// The detail page's tabs: id and label.
pub(crate) const TABS: &[(&str, &str)] = &[
    ("domains", "Domains"),
    ("authorization", "Authorization"),
    ("deployment", "Deployment"),
    ("advanced", "Advanced"),
    ("preview", "Preview"),
    ("history", "History"),
];

#[derive(Template)]
#[template(path = "certificate.html")]
struct CertPage {
    page: PageInfo,
    cert: CertRow,
    tab: String,
    /// Rows of label and value for the tab (Domains, Authorization, Deployment, Advanced).
    facts: Vec<(String, String)>,
    /// Lines of the Preview tab.
    preview: Vec<String>,
    history: Vec<(String, String, String)>,
    issued: bool,
    can_request: bool,
    can_revoke: bool,
    can_key: bool,
    /// Whether the edit forms show (admins).
    admin: bool,
    /// The CA accounts, for the Advanced tab's form.
    accounts: Vec<String>,
    /// The edit form's values: what is stored, or what was posted.
    values: FormData,
    errors: Errors,
}

#[derive(serde::Deserialize)]
struct TabQuery {
    #[serde(default)]
    tab: Option<String>,
}

async fn certificate(
    State(state): State<AppState>,
    s: Session,
    Path(name): Path<String>,
    Query(q): Query<TabQuery>,
) -> Response {
    match cert_page(&state, &s, &name, q.tab.as_deref().unwrap_or("domains")).await {
        Ok(page) => render(&page),
        Err(p) => problem_page(p, &s),
    }
}

async fn cert_page(
    state: &AppState,
    s: &Session,
    name: &str,
    tab: &str,
) -> Result<CertPage, Problem> {
    s.caller.require(Need::Read)?;
    let tab = if TABS.iter().any(|(t, _)| *t == tab) { tab } else { "domains" };
    let c = api::cert_or_404(state, name).await?;
    let issued = state.store.latest_issued(name).await?;
    let row = CertRow::from_view(&api::cert_view(&c, issued.as_ref()));
    let mut facts = Vec::new();
    let mut preview = Vec::new();
    let mut history = Vec::new();
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    match tab {
        "domains" => {
            for id in api::identifiers(&c.identifiers) {
                facts.push(("Identifier".into(), id));
            }
            if let Some(i) = &issued {
                facts.push(("Serial".into(), i.serial_hex.clone()));
                facts.push(("Issuer".into(), i.issuer.clone()));
                facts.push(("Valid from".into(), rfc3339_ms(i.not_before * 1000)));
                facts.push(("Valid until".into(), rfc3339_ms(i.not_after * 1000)));
            }
        }
        "authorization" => {
            let specs: Vec<certhub_core::ChallengeSpec> = c.challenges.clone();
            for spec in specs {
                // The kind and where it answers; credentials stay out of the page.
                facts.push((spec.config.kind().to_string(), spec.config.describe()));
            }
        }
        "deployment" => {
            for r in state.store.deploy_tasks(name).await? {
                let does = match serde_json::from_value::<certhub_core::DeployTask>(r.task.clone())
                {
                    Ok(t) => format!(
                        "{} ({}, at most {} s)",
                        t.action.describe(),
                        t.trigger.as_str(),
                        t.timeout.as_secs()
                    ),
                    Err(_) => "unreadable task".into(),
                };
                let last = match (&r.last_outcome, r.last_run_at) {
                    (Some(o), Some(at)) => format!(" · last run {}: {o}", rfc3339_ms(at)),
                    _ => " · not run yet".into(),
                };
                facts.push((r.name.clone(), format!("{does}{last}")));
            }
        }
        "advanced" => {
            facts.push((
                "CA account".into(),
                c.account_name.clone().unwrap_or_else(|| "none (imported)".into()),
            ));
            facts.push(("Key type".into(), c.key_type.clone()));
            facts.push((
                "Key reuse".into(),
                if c.reuse_key { "kept across renewals" } else { "new key each time" }.into(),
            ));
            facts.push((
                "Profile".into(),
                c.profile.clone().unwrap_or_else(|| "the CA's default".into()),
            ));
            facts.push((
                "Preferred chain".into(),
                c.preferred_chain.clone().unwrap_or_else(|| "the CA's default".into()),
            ));
            facts.push((
                "Renewal policy".into(),
                c.renewal_policy
                    .clone()
                    .unwrap_or_else(|| format!("hub default ({})", state.settings.get().policy)),
            ));
            facts.push((
                "Fallback account".into(),
                c.fallback_account.clone().unwrap_or_else(|| "none".into()),
            ));
            facts.push(("Failures in a row".into(), c.failures.to_string()));
            match c.next_attempt_at {
                Some(certhub_store::RETRY_STOPPED) => facts.push((
                    "Next attempt".into(),
                    format!("none: {}", certhub_engine::issue::RETRIES_STOPPED),
                )),
                Some(at) => facts.push(("Next attempt".into(), rfc3339_ms(at))),
                None => {}
            }
        }
        "preview" => match api::engine(state)?.preview(name, None).await {
            Ok(plan) => {
                preview = plan["summary"].as_array().into_iter().flatten().map(text).collect()
            }
            Err(e) => preview = vec![format!("No plan: {}", e.message)],
        },
        _ => {
            for e in state.store.events_for(name).await?.into_iter().rev() {
                history.push((rfc3339_ms(e.at), e.kind, e.detail.unwrap_or_default()));
            }
        }
    }
    let admin = s.caller.may(Need::Admin);
    let accounts = if admin && tab == "advanced" {
        state.store.accounts().await?.into_iter().map(|a| a.name).collect()
    } else {
        Vec::new()
    };
    let values = FormData(vec![
        ("account".into(), c.account_name.clone().unwrap_or_default()),
        ("renew_at".into(), c.renewal_policy.clone().unwrap_or_default()),
        ("fallback_account".into(), c.fallback_account.clone().unwrap_or_else(|| "none".into())),
        ("fallback_after".into(), c.fallback_after.to_string()),
    ]);
    Ok(CertPage {
        page: PageInfo::new(name, s, "certificates"),
        cert: row,
        tab: tab.to_string(),
        facts,
        preview,
        history,
        issued: issued.is_some(),
        can_request: s.caller.may(Need::Request),
        can_revoke: admin && issued.as_ref().is_some_and(|i| i.revoked_at.is_none()),
        can_key: s.caller.may(Need::Key),
        admin,
        accounts,
        values,
        errors: Errors::default(),
    })
}

/// The certificate page after an edit: its tab with a message, or the posted form with its
/// errors.
async fn cert_page_after(
    state: &AppState,
    s: &Session,
    name: &str,
    tab: &str,
    outcome: Result<String, (FormData, Errors)>,
) -> Response {
    let page = match cert_page(state, s, name, tab).await {
        Ok(page) => page,
        Err(p) => return problem_page(p, s),
    };
    match outcome {
        Ok(flash) => render(&CertPage { page: page.page.flash(Some(flash)), ..page }),
        Err((values, errors)) => {
            render_status(StatusCode::BAD_REQUEST, &CertPage { values, errors, ..page })
        }
    }
}

/// Where the engine's error about a change belongs on the Advanced tab: the field it names.
fn advanced_field(p: &Problem) -> &'static str {
    match p.field.as_deref() {
        Some("fallback_account" | "fallback_after") => "fallback_account",
        Some("renew_at") => "renew_at",
        _ => "account",
    }
}

async fn edit_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let tab = if form.value("tab") == "advanced" { "advanced" } else { "authorization" };
    let mut errors = Errors::default();
    let mut changes = crate::CertChanges::default();
    if tab == "authorization" {
        changes.challenges = form.lines("challenges");
        if changes.challenges.is_empty() {
            errors.add("challenges", "give at least one challenge SPEC, one a line");
        }
    } else {
        let c = match api::cert_or_404(&state, &name).await {
            Ok(c) => c,
            Err(p) => return problem_page(p, &s),
        };
        changes.account = form.text("account").filter(|a| Some(a) != c.account_name.as_ref());
        changes.renew_at = match (form.text("renew_at"), &c.renewal_policy) {
            (None, Some(_)) => Some("default".into()),
            (Some(p), current) if Some(&p) != current.as_ref() => Some(p),
            _ => None,
        };
        let fallback = form.text("fallback_account").unwrap_or_else(|| "none".into());
        if fallback != c.fallback_account.clone().unwrap_or_else(|| "none".into()) {
            changes.fallback_account = Some(fallback);
        }
        match form.value("fallback_after").trim().parse::<u16>() {
            Ok(n) if n >= 1 => {
                changes.fallback_after = (i64::from(n) != c.fallback_after).then_some(n)
            }
            _ => errors.add("fallback_after", "a whole number of failures, at least 1"),
        }
        if errors.is_empty() && changes.is_empty() {
            return cert_page_after(&state, &s, &name, tab, Ok("Nothing changed.".into())).await;
        }
    }
    if errors.is_empty() {
        match api::edit(&state, &s.caller, &name, changes).await {
            Ok(said) => {
                let flash = format!("Saved: {}.", said.join(", "));
                return cert_page_after(&state, &s, &name, tab, Ok(flash)).await;
            }
            Err(p) if p.status == 400 || (p.status == 404 && tab == "advanced") => {
                let field = if tab == "advanced" { advanced_field(&p) } else { "challenges" };
                errors.add(field, p.detail);
            }
            Err(p) => return problem_page(p, &s),
        }
    }
    cert_page_after(&state, &s, &name, tab, Err((form, errors))).await
}

async fn add_deployments(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let outcome = match api::add_deploy_tasks(&state, &s.caller, &name, form.lines("deploy")).await
    {
        Ok(added) => Ok(format!(
            "Added {}.",
            added
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(p) if p.status == 400 => {
            let mut errors = Errors::default();
            errors.add("deploy", p.detail);
            Err((form, errors))
        }
        Err(p) => return problem_page(p, &s),
    };
    cert_page_after(&state, &s, &name, "deployment", outcome).await
}

async fn remove_deployment(
    State(state): State<AppState>,
    Path((name, task)): Path<(String, String)>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match api::remove_deploy_task(&state, &s.caller, &name, &task).await {
        Ok(()) => {
            cert_page_after(&state, &s, &name, "deployment", Ok(format!("Removed {task}."))).await
        }
        Err(p) => problem_page(p, &s),
    }
}

async fn test_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    let run = async {
        s.caller.require(Need::Request)?;
        api::cert_or_404(&state, &name).await?;
        Ok::<_, Problem>(serde_json::json!(api::engine(&state)?.test(&name, None).await?))
    };
    match run.await {
        Ok(report) => {
            let items = report.as_array().cloned().unwrap_or_default();
            let works = items.iter().all(|i| i["works"] == true);
            let lines = items
                .iter()
                .map(|i| {
                    format!(
                        "{} {} {}: {}",
                        if i["works"] == true { "✓" } else { "✗" },
                        i["identifier"].as_str().unwrap_or_default(),
                        i["challenge"].as_str().unwrap_or_default(),
                        i["detail"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            render(&Fragment { class: if works { "result good" } else { "result bad" }, lines })
        }
        Err(p) => problem_fragment(&p),
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobFragment {
    job: crate::Job,
}

async fn request_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match api::start_request(&state, &s.caller, &name).await {
        Ok(job) => render(&JobFragment { job }),
        Err(p) => problem_fragment(&p),
    }
}

async fn job(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    if let Err(p) = s.caller.require(Need::Read) {
        return problem_fragment(&p);
    }
    match state.jobs.get(&id).await {
        Ok(Some(job)) => render(&JobFragment { job }),
        Ok(None) => problem_fragment(&Problem::not_found(format!("no job {id:?}"))),
        Err(e) => problem_fragment(&e.into()),
    }
}

async fn revoke_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let reason = form.text("reason").filter(|r| r != "unspecified");
    match api::revoke(&state, &s.caller, &name, reason).await {
        Ok(serial) => render(&Fragment {
            class: "result good",
            lines: vec![format!("Revoked serial {serial}. Reload the page to see the new state.")],
        }),
        Err(p) => problem_fragment(&p),
    }
}

async fn download(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let (format, key, ext) = match form.value("format") {
        "pem-key" => ("pem", true, "pem"),
        "pkcs12" => ("pkcs12", true, "p12"),
        _ => ("pem", false, "pem"),
    };
    let password = form.get("password");
    match api::pull(&state, &s.caller, &name, format, key, password).await {
        Ok((body, content_type)) => {
            let file = format!(
                "{}.{ext}",
                name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.', "_")
            );
            (
                [
                    (header::CONTENT_TYPE, content_type.to_string()),
                    (header::CACHE_CONTROL, "no-store".into()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
                ],
                body,
            )
                .into_response()
        }
        Err(p) => problem_page(p, &s),
    }
}

// ----- settings -----

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    page: PageInfo,
    admin: bool,
    accounts: Vec<AccountRow>,
    users: Vec<(String, String)>,
    tokens: Vec<TokenRow>,
    settings: crate::Settings,
    channels: Vec<ChannelRow>,
    /// A token just made, shown once.
    new_token: Option<String>,
    values: FormData,
    errors: Errors,
    /// Which form the errors belong to.
    form: &'static str,
}

pub(crate) struct AccountRow {
    pub name: String,
    pub directory: String,
    pub email: String,
    pub status: String,
}

pub(crate) struct ChannelRow {
    pub name: String,
    pub kind: String,
    pub target: String,
    pub events: String,
}

pub(crate) struct TokenRow {
    pub id: String,
    pub user: String,
    pub label: String,
    pub scopes: String,
    pub expires: String,
    pub last_used: String,
}

/// Where the CA account form's shortcuts point.
pub(crate) const DIRECTORIES: &[(&str, &str)] = &[
    ("letsencrypt", "Let's Encrypt"),
    ("letsencrypt-staging", "Let's Encrypt (staging)"),
    ("custom", "Another ACME CA (directory URL below)"),
];

async fn settings(State(state): State<AppState>, s: Session) -> Response {
    let values = FormData(vec![
        ("directory".into(), "letsencrypt".into()),
        ("role".into(), "viewer".into()),
    ]);
    settings_page(&state, &s, None, values, Errors::default(), "", None).await
}

async fn settings_page(
    state: &AppState,
    s: &Session,
    new_token: Option<String>,
    values: FormData,
    errors: Errors,
    form: &'static str,
    flash: Option<String>,
) -> Response {
    let build = async {
        s.caller.require(Need::Read)?;
        let admin = s.caller.may(Need::Admin);
        let accounts = state
            .store
            .accounts()
            .await?
            .into_iter()
            .map(|a| AccountRow {
                name: a.name,
                directory: a.directory_url,
                email: a.email.unwrap_or_default(),
                status: a.status,
            })
            .collect();
        let users = if admin {
            state.store.users().await?.into_iter().map(|u| (u.name, u.role)).collect()
        } else {
            Vec::new()
        };
        let whose = (!admin).then_some(s.caller.user.as_str());
        let tokens = state
            .store
            .tokens(whose)
            .await?
            .into_iter()
            .filter(|t| t.kind != certhub_store::TokenKind::Session)
            .map(|t| TokenRow {
                id: t.id,
                user: t.user_name,
                label: t.label,
                scopes: t.scopes,
                expires: t.expires_at.map(rfc3339_ms).unwrap_or_else(|| "never".into()),
                last_used: t.last_used_at.map(rfc3339_ms).unwrap_or_else(|| "never".into()),
            })
            .collect();
        Ok::<_, Problem>(SettingsPage {
            page: PageInfo::new("Settings", s, "settings").flash(flash),
            admin,
            accounts,
            users,
            tokens,
            settings: state.settings.get(),
            channels: if admin {
                state
                    .store
                    .channels()
                    .await?
                    .into_iter()
                    .map(|c| ChannelRow {
                        target: certhub_deploy::notify::target(&c.kind, &c.config),
                        events: c.events.join(" "),
                        name: c.name,
                        kind: c.kind,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            new_token,
            values,
            errors,
            form,
        })
    };
    match build.await {
        Ok(page) => render_status(
            if form.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST },
            &page,
        ),
        Err(p) => problem_page(p, s),
    }
}

/// The settings page after a change, with its message.
async fn settings_done(state: &AppState, s: &Session, flash: Option<String>) -> Response {
    settings_page(state, s, None, FormData::default(), Errors::default(), "", flash).await
}

async fn add_account(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let mut errors = Errors::default();
    let directory = match form.value("directory") {
        "custom" => form.text("directory_url").unwrap_or_else(|| {
            errors.add("directory_url", "give the CA's ACME directory URL");
            String::new()
        }),
        d => d.to_string(),
    };
    let name = form.text("name").unwrap_or_default();
    if name.is_empty() {
        errors.add("name", "name the account, e.g. le");
    }
    if !form.checked("agree_tos") {
        errors.add("agree_tos", "the CA requires agreeing to its terms of service");
    }
    if !errors.is_empty() {
        return settings_page(&state, &s, None, form, errors, "account", None).await;
    }
    let req = crate::NewAccount {
        name: name.clone(),
        directory,
        email: form.text("email"),
        agree_tos: true,
        eab_kid: form.text("eab_kid"),
        eab_hmac_key: form.text("eab_hmac_key"),
        eab_algorithm: None,
        key_type: None,
        ca_bundle_pem: form.text("ca_bundle_pem"),
    };
    match api::add_account(&state, &s.caller, req).await {
        Ok(_) => {
            let values = FormData(vec![("directory".into(), "letsencrypt".into())]);
            let flash = Some(format!("Account {name} registered."));
            settings_page(&state, &s, None, values, Errors::default(), "", flash).await
        }
        Err(p) => {
            let errors = Errors::from_problem(&p, &["name", "email", "eab_kid", "eab_hmac_key"]);
            settings_page(&state, &s, None, form, errors, "account", None).await
        }
    }
}

async fn save_renewal(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let now = state.settings.get();
    let mut errors = Errors::default();
    // Numbers are read here; their ranges are checked with the rest of the settings.
    fn number<T: std::str::FromStr + PartialEq>(
        form: &FormData,
        errors: &mut Errors,
        key: &str,
        current: T,
    ) -> Option<T> {
        let value = form.value(key).trim();
        match value.parse::<T>() {
            Ok(n) => (n != current).then_some(n),
            Err(_) => {
                errors.add(key, format!("{key} must be a whole number, not {value:?}"));
                None
            }
        }
    }
    if form.text("renewal_policy").is_none() {
        errors.add("renewal_policy", "give a renewal policy, e.g. 75% or 30d");
    }
    let changes = crate::SettingsChanges {
        renewal_policy: form.text("renewal_policy").filter(|p| *p != now.policy),
        check_interval_seconds: number(
            &form,
            &mut errors,
            "check_interval_seconds",
            now.check_interval_secs,
        ),
        expiry_warning_days: number(
            &form,
            &mut errors,
            "expiry_warning_days",
            now.expiry_warning_days,
        ),
        renewal_workers: number(&form, &mut errors, "renewal_workers", now.renewal_workers),
    };
    let unchanged = changes.is_empty();
    if !unchanged && let Err(p) = now.clone().apply(&changes) {
        // Also when a number was unreadable, so that every field's problem shows at once.
        errors.add(p.field.unwrap_or("_"), p.message);
    }
    if errors.is_empty() {
        if unchanged {
            return settings_done(&state, &s, Some("Nothing changed.".into())).await;
        }
        match api::change_settings_as(&state, &s.caller, changes).await {
            Ok(said) => {
                let flash = Some(format!("Saved: {}.", said.join(", ")));
                return settings_done(&state, &s, flash).await;
            }
            Err(p) => {
                errors = Errors::from_problem(
                    &p,
                    &[
                        "renewal_policy",
                        "check_interval_seconds",
                        "expiry_warning_days",
                        "renewal_workers",
                    ],
                )
            }
        }
    }
    settings_page(&state, &s, None, form, errors, "renewal", None).await
}

async fn add_user(State(state): State<AppState>, Posted { session: s, form }: Posted) -> Response {
    let username = form.value("username").trim().to_string();
    match api::add_user(&state, &s.caller, &username, form.value("password"), form.value("role"))
        .await
    {
        Ok(role) => {
            let flash = Some(format!("User {username} added as {}.", role.as_str()));
            settings_done(&state, &s, flash).await
        }
        Err(p) => {
            let errors = Errors::from_problem(&p, &["username", "password", "role"]);
            let values = FormData(vec![
                ("username".into(), username),
                ("role".into(), form.value("role").into()),
            ]);
            settings_page(&state, &s, None, values, errors, "user", None).await
        }
    }
}

async fn create_token(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let label = form.text("label").unwrap_or_else(|| "api".into());
    let scopes: Vec<String> =
        form.0.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    let made = async {
        let expires_at = match form.text("expires_in_days").map(|d| d.parse::<u32>()) {
            None => None,
            Some(Ok(d)) => api::token_expiry(Some(d))?,
            // Not a number: refused with the same words as one out of range.
            Some(Err(_)) => api::token_expiry(Some(0))?,
        };
        let user = state
            .store
            .user(&s.caller.user)
            .await?
            .ok_or_else(|| Problem::unauthorized("your user no longer exists"))?;
        let source = &s.caller.source;
        api::issue_token(&state, &user, TokenKind::Api, &label, Some(scopes), expires_at, source)
            .await
    };
    match made.await {
        Ok((token, _)) => {
            settings_page(&state, &s, Some(token), FormData::default(), Errors::default(), "", None)
                .await
        }
        Err(p) => {
            let errors = Errors::from_problem(&p, &["label", "scopes", "expires_in_days"]);
            settings_page(&state, &s, None, form, errors, "token", None).await
        }
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match api::revoke_own_or_any_token(&state, &s.caller, &id).await {
        Ok(()) => {
            let flash = Some(format!("Token {id} revoked."));
            settings_done(&state, &s, flash).await
        }
        Err(p) => problem_page(p, &s),
    }
}

/// The events a channel can ask for, as the form offers them.
pub(crate) const CHANNEL_EVENTS: &[&str] = certhub_deploy::notify::EVENTS;

async fn add_channel(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let kind = form.value("kind").to_string();
    let mut config = serde_json::Map::new();
    let mut put = |key: &str, field: &str| {
        if let Some(v) = form.text(field) {
            config.insert(key.into(), Value::String(v));
        }
    };
    match kind.as_str() {
        "smtp" => {
            for key in ["host", "tls", "username", "password", "from", "to"] {
                put(key, &format!("smtp_{key}"));
            }
        }
        _ => {
            put("url", "url");
            put("secret", "secret");
        }
    }
    if kind == "smtp"
        && let Some(port) = form.text("smtp_port")
    {
        config.insert(
            "port".into(),
            port.parse::<u64>().map(Value::from).unwrap_or(Value::String(port)),
        );
    }
    let events: Vec<String> =
        form.0.iter().filter(|(k, _)| k == "event").map(|(_, v)| v.clone()).collect();
    let req = api::ChannelBody {
        name: form.value("channel_name").to_string(),
        kind,
        config: Value::Object(config),
        events: Some(events),
    };
    match api::add_channel(&state, &s.caller, req).await {
        Ok(c) => {
            let flash = Some(format!("Channel {} added. Send it a test to check it.", c.name));
            settings_done(&state, &s, flash).await
        }
        Err(p) => {
            let fields = [
                "name", "kind", "host", "port", "tls", "from", "to", "password", "url", "secret",
                "events",
            ];
            let errors = Errors::from_problem(&p, &fields);
            settings_page(&state, &s, None, form, errors, "channel", None).await
        }
    }
}

async fn test_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match api::send_test(&state, &s.caller, &name).await {
        Ok(Ok(said)) => {
            render(&Fragment { class: "result good", lines: vec![format!("✓ {said}")] })
        }
        Ok(Err(why)) => {
            render(&Fragment { class: "result bad", lines: vec![format!("✗ {why}")] })
        }
        Err(p) => problem_fragment(&p),
    }
}

async fn delete_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match api::remove_channel(&state, &s.caller, &name).await {
        Ok(()) => {
            let flash = Some(format!("Channel {name} removed."));
            settings_done(&state, &s, flash).await
        }
        Err(p) => problem_page(p, &s),
    }
}

// ----- audit -----

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: PageInfo,
    entries: Vec<[String; 6]>,
    verdict: String,
    intact: bool,
    next: Option<i64>,
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    #[serde(default)]
    after: Option<i64>,
}

const AUDIT_PAGE: i64 = 100;

async fn audit(State(state): State<AppState>, s: Session, Query(q): Query<AuditQuery>) -> Response {
    let build = async {
        s.caller.require(Need::Admin)?;
        let entries = state.store.audit_entries(q.after.unwrap_or(0), AUDIT_PAGE).await?;
        let next =
            (entries.len() as i64 == AUDIT_PAGE).then(|| entries.last().map(|e| e.id)).flatten();
        let (verdict, intact) = match state.store.verify_audit().await? {
            Ok(n) => {
                (format!("Intact: all {n} entries verify, each hashing the one before."), true)
            }
            Err(b) => (format!("Broken at entry {}: {}", b.id, b.reason), false),
        };
        let entries = entries
            .into_iter()
            .map(|e| {
                [
                    e.id.to_string(),
                    rfc3339_ms(e.at).replace('T', " "),
                    e.actor,
                    e.action,
                    e.target,
                    format!(
                        "{}{}",
                        e.source,
                        e.detail.map(|d| format!(" · {d}")).unwrap_or_default()
                    ),
                ]
            })
            .collect();
        Ok::<_, Problem>(AuditPage {
            page: PageInfo::new("Audit log", &s, "audit"),
            entries,
            verdict,
            intact,
            next,
        })
    };
    match build.await {
        Ok(page) => render(&page),
        Err(p) => problem_page(p, &s),
    }
}
