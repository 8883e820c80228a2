//! Agents: `GET /agents` (each agent, its connection and what it deployed), `POST
//! /agents/tokens` (a join token, shown once with the command to join), `POST
//! /agents/{name}/remove`.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::session::{Posted, Session};
use super::{Errors, FormData, PageInfo, problem_page, render};
use crate::ops::{self, AgentView, JoinTokenView};
use crate::problem::Problem;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    page: PageInfo,
    agents: Vec<AgentView>,
    /// Whether the hub serves agents (`--agent-listen`).
    serving: bool,
    /// A token just made.
    made: Option<JoinTokenView>,
    form: FormData,
    errors: Errors,
}

async fn agents_page(
    state: &AppState,
    s: &Session,
    made: Option<JoinTokenView>,
    form: FormData,
    errors: Errors,
    flash: Option<String>,
) -> Response {
    match ops::agents(state, &s.caller).await {
        Ok(agents) => render(&AgentsPage {
            page: PageInfo::new("Agents", s, "agents").flash(flash),
            agents,
            serving: state.agents.is_some(),
            made,
            form,
            errors,
        }),
        Err(p) => problem_page(p, s),
    }
}

pub(super) async fn agents(State(state): State<AppState>, s: Session) -> Response {
    agents_page(&state, &s, None, FormData::default(), Errors::default(), None).await
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    Posted { session: s, form }: Posted,
) -> Response {
    let labels: Vec<String> = form.value("labels").split_whitespace().map(String::from).collect();
    let made = async {
        let hours = match form.text("expires_in_hours") {
            None => None,
            Some(h) => match h.parse::<u64>() {
                Ok(h @ 1..=720) => Some(std::time::Duration::from_secs(h * 3600)),
                _ => {
                    return Err(Problem::invalid(
                        "expires_in_hours",
                        "use a whole number of hours from 1 to 720",
                    ));
                }
            },
        };
        ops::create_join_token(&state, &s.caller, &labels, hours).await
    };
    match made.await {
        Ok(t) => {
            agents_page(&state, &s, Some(t), FormData::default(), Errors::default(), None).await
        }
        Err(p) => {
            let errors = Errors::from_problem(&p, &["labels", "expires_in_hours"]);
            agents_page(&state, &s, None, form, errors, None).await
        }
    }
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match ops::remove_agent(&state, &s.caller, &name).await {
        Ok(()) => {
            let flash = format!("Agent {name} removed: its identity is refused from now on.");
            agents_page(&state, &s, None, FormData::default(), Errors::default(), Some(flash)).await
        }
        Err(p) => problem_page(p, &s),
    }
}
