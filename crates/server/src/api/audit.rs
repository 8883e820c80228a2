//! The audit log: `GET /api/v1/audit` and `GET /api/v1/audit/verify`.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, rfc3339_ms};
use crate::auth::{Caller, Need};
use crate::problem::Problem;
use crate::state::AppState;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Entries after this id.
    #[serde(default)]
    after: Option<i64>,
    /// At most this many, 1 to 1000 (default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<i64>,
}

pub(super) async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    let Query(q) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid("limit", "between 1 and 1000"));
    }
    let items: Vec<Value> = state
        .store
        .audit_entries(q.after.unwrap_or(0), limit)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": rfc3339_ms(e.at),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "source": e.source,
                "detail": e.detail,
                "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(super) async fn audit_verify(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    Ok(Json(match state.store.verify_audit().await? {
        Ok(entries) => json!({ "intact": true, "entries": entries }),
        Err(b) => json!({ "intact": false, "broken_at": b.id, "reason": b.reason }),
    }))
}
