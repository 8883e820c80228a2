//! Importing a certificate: `GET /certificates/import` and `POST /certificates/import`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{self, Posted, Session};
use super::{Errors, FormData, PageInfo, problem_page, render, render_status};
use crate::auth::Need;
use crate::ops;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "certificate_import.html")]
struct ImportPage {
    page: PageInfo,
    values: FormData,
    errors: Errors,
}

pub(super) async fn import_page(s: Session) -> Response {
    if let Err(p) = s.caller.require(Need::Admin) {
        return problem_page(p, &s);
    }
    render(&ImportPage {
        page: PageInfo::new("Import a certificate", &s, "certificates"),
        values: FormData::default(),
        errors: Errors::default(),
    })
}

pub(super) async fn import_certificate(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let mut errors = Errors::default();
    let name = form.required("name", &mut errors, "give the certificate a name, e.g. shop");
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
        let req = certhub_engine::Import {
            name: name.clone(),
            key_pem: if cert_pem.is_some() { form.text("key_pem") } else { None },
            cert_pem,
            password: pkcs12.as_ref().map(|_| form.value("password").to_string()),
            pkcs12_base64: pkcs12,
            deploy: form.lines("deploy"),
            ..Default::default()
        };
        match ops::import(&state, &s.caller, req).await {
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
