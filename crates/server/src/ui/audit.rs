//! The audit log and its verification: `GET /audit`.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::session::Session;
use super::{PageInfo, problem_page, render};
use crate::auth::Need;
use crate::clock::rfc3339_ms;
use crate::problem::Problem;
use crate::state::AppState;

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
pub(super) struct AuditQuery {
    #[serde(default)]
    after: Option<i64>,
}

const AUDIT_PAGE: i64 = 100;

pub(super) async fn audit(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<AuditQuery>,
) -> Response {
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
