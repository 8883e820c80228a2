//! Credentials: `GET /credentials` (each credential, its fields with secrets hidden, and the
//! certificates that use it), `POST /credentials` (add one of a kind), `POST
//! /credentials/{name}/rotate` and `POST /credentials/{name}/remove`. Admins only.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use certhub_core::credential::{KINDS, Kind};
use certhub_core::dns_provider::PROVIDERS;
use certhub_core::secret::Secret;
use certhub_engine::credentials::CredentialView;

use super::session::{Posted, Session};
use super::{Errors, FormData, PageInfo, problem_page, render};
use crate::ops::{self, CredentialBody, RotateBody};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage {
    page: PageInfo,
    credentials: Vec<CredentialView>,
    /// The kinds besides the DNS providers', each with its own form.
    kinds: &'static [Kind],
    /// The DNS providers' kinds.
    providers: &'static [Kind],
    all_kinds: Vec<&'static Kind>,
    /// The kind whose form was posted, to show its errors.
    posted: String,
    form: FormData,
    errors: Errors,
}

async fn credentials_page(
    state: &AppState,
    s: &Session,
    posted: &str,
    form: FormData,
    errors: Errors,
    flash: Option<String>,
) -> Response {
    match ops::credentials(state, &s.caller).await {
        Ok(credentials) => render(&CredentialsPage {
            page: PageInfo::new("Credentials", s, "credentials").flash(flash),
            credentials,
            kinds: KINDS,
            providers: PROVIDERS,
            all_kinds: certhub_core::credential::kinds().collect(),
            posted: posted.to_string(),
            form,
            errors,
        }),
        Err(p) => problem_page(p, s),
    }
}

/// The fields of kind `kind` as posted (`f-FIELD`), empty ones left out.
fn fields(kind: &str, form: &FormData) -> BTreeMap<String, Secret> {
    let Ok(k) = certhub_core::credential::kind(kind) else { return BTreeMap::new() };
    k.fields
        .iter()
        .filter_map(|f| {
            let v = form.value(&format!("f-{}", f.name));
            (!v.trim().is_empty()).then(|| (f.name.to_string(), Secret::new(v.trim())))
        })
        .collect()
}

pub(super) async fn credentials(State(state): State<AppState>, s: Session) -> Response {
    credentials_page(&state, &s, "", FormData::default(), Errors::default(), None).await
}

pub(super) async fn add(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let kind = form.value("kind").to_string();
    let body = CredentialBody {
        name: form.value("name").to_string(),
        kind: kind.clone(),
        fields: fields(&kind, &form),
    };
    match ops::add_credential(&state, &s.caller, body).await {
        Ok(c) => {
            let flash = format!("Credential {} ({}) kept.", c.name, c.kind);
            credentials_page(&state, &s, "", FormData::default(), Errors::default(), Some(flash))
                .await
        }
        Err(p) => {
            let errors = Errors::from_problem(&p, &["name", "fields", "kind"]);
            credentials_page(&state, &s, &kind, form, errors, None).await
        }
    }
}

pub(super) async fn rotate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let kind = form.value("kind").to_string();
    let body = RotateBody { fields: fields(&kind, &form) };
    match ops::rotate_credential(&state, &s.caller, &name, body).await {
        Ok(c) => {
            let flash = format!(
                "Credential {} rotated: certificates using it order with it from now on.",
                c.name
            );
            credentials_page(&state, &s, "", FormData::default(), Errors::default(), Some(flash))
                .await
        }
        Err(p) => problem_page(p, &s),
    }
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match ops::remove_credential(&state, &s.caller, &name).await {
        Ok(()) => {
            let flash = format!("Credential {name} removed.");
            credentials_page(&state, &s, "", FormData::default(), Errors::default(), Some(flash))
                .await
        }
        Err(p) => problem_page(p, &s),
    }
}
