//! The dashboard: `GET /`.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::certificates::STATES;
use super::session::Session;
use super::{CertRow, PageInfo, problem_page, render};
use crate::auth::Need;
use crate::ops;
use crate::problem::Problem;
use crate::state::AppState;

// ----- dashboard -----

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

pub(super) async fn dashboard(State(state): State<AppState>, s: Session) -> Response {
    match dashboard_page(&state, &s).await {
        Ok(page) => render(&page),
        Err(p) => problem_page(p, &s),
    }
}

async fn dashboard_page(state: &AppState, s: &Session) -> Result<DashboardPage, Problem> {
    s.caller.require(Need::Read)?;
    let text = state.settings.get().policy;
    let policy = text.parse().map_err(|e| {
        Problem::internal(format!("the hub's renewal policy {text:?} cannot be read: {e}"))
    })?;
    let spec = certhub_store::OverviewSpec {
        now: crate::clock::now_ms(),
        weeks: CHART_WEEKS,
        soon: EXPIRING_DAYS * 86_400_000,
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
        overview.attention.iter().map(|c| CertRow::of(&ops::CertView::from_summary(c))).collect();
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
