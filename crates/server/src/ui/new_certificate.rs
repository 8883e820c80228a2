//! Adding a certificate: `GET /certificates/new` and `POST /certificates`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{self, Posted, Session};
use super::{Errors, FormData, PageInfo, problem_page, render, render_status};
use crate::auth::Need;
use crate::ops;
use crate::problem::Problem;
use crate::state::AppState;

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
        "dns-01:provider",
        "dns-01, a DNS provider's API (its credential kept under Credentials)",
        "cloudflare,credential=cf",
    ),
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

pub(super) async fn new_certificate(State(state): State<AppState>, s: Session) -> Response {
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

pub(super) async fn create_certificate(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let mut errors = Errors::default();
    let name = form.required("name", &mut errors, "give the certificate a name, e.g. www");
    let account = form.required(
        "account",
        &mut errors,
        "choose the CA account that orders it (add one under Settings)",
    );
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
    let req = certhub_engine::NewCertificate {
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
    match ops::add_certificate(&state, &s.caller, req).await {
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
    let accounts = match account_names(state).await {
        Ok(a) => a,
        Err(p) => return problem_page(p, s),
    };
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
