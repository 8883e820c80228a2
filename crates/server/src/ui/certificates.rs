//! The certificate list, with its search as you type: `GET /certificates`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::session::{self, Session};
use super::{CertRow, PageInfo, problem_page, render};
use crate::auth::Need;
use crate::ops::{self, ListQuery};
use crate::problem::Problem;
use crate::state::AppState;

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

pub(super) async fn certificates(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return problem_page(Problem::invalid("query", e.body_text()), &s),
    };
    let per_page = 50;
    let listing = ListQuery { per_page: Some(per_page), ..q };
    let page = match ops::cert_page(&state, &s.caller, &listing).await {
        Ok(p) => p,
        Err(p) => return problem_page(p, &s),
    };
    let list = CertTable {
        rows: page.items.iter().map(CertRow::of).collect(),
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
