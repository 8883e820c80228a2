//! First-run setup: `GET /setup` and `POST /setup` create the first admin.

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::session;
use super::{Errors, FormData, PageInfo, render, render_status};
use crate::ops;
use crate::problem::Problem;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    page: PageInfo,
    values: FormData,
    errors: Errors,
}

pub(super) async fn setup_page(State(state): State<AppState>) -> Response {
    if !matches!(state.store.user_count().await, Ok(0)) {
        return Redirect::to("/login").into_response();
    }
    render(&SetupPage {
        page: PageInfo::public("Set up certhub"),
        values: FormData::default(),
        errors: Errors::default(),
    })
}

pub(super) async fn setup(
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
            ops::setup_admin(
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
