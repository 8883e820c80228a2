//! One certificate's page, its tabs and actions: `/certificates/{name}/…`, `/jobs/{id}`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session::{Posted, Session};
use super::{
    CertRow, Errors, FormData, Fragment, PageInfo, problem_fragment, problem_page, render,
    render_status,
};
use crate::auth::Need;
use crate::clock::rfc3339_ms;
use crate::ops;
use crate::problem::Problem;
use crate::state::AppState;

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
    /// The Deployment tab's targets, and a line for what each agent reported.
    targets: Vec<String>,
    agents: Vec<String>,
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
pub(super) struct TabQuery {
    #[serde(default)]
    tab: Option<String>,
}

pub(super) async fn certificate(
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
    let tab = if TABS.iter().any(|(t, _)| *t == tab) { tab } else { "domains" };
    let (c, view) = ops::certificate(state, &s.caller, name).await?;
    let row = CertRow::of(&view);
    let mut facts = Vec::new();
    let mut preview = Vec::new();
    let mut history = Vec::new();
    let (mut targets, mut agents) = (Vec::new(), Vec::new());
    if tab == "deployment" {
        let t = ops::cert_targets(state, &s.caller, name).await?;
        targets = t.targets;
        agents = t
            .agents
            .into_iter()
            .map(|a| {
                let mut line = format!("{}: {}", a.agent, a.state);
                if let Some(serial) = &a.serial {
                    line.push_str(&format!(" serial {serial}"));
                }
                if let Some(at) = &a.deployed_at {
                    line.push_str(&format!(" at {at}"));
                }
                if let Some(e) = &a.error {
                    line.push_str(&format!(" · {e}"));
                }
                for v in &a.verified {
                    line.push_str(&format!(" · {v}"));
                }
                line
            })
            .collect();
    }
    match tab {
        "domains" => {
            for id in &view.identifiers {
                facts.push(("Identifier".into(), id.clone()));
            }
            let issued = [
                ("Serial", &view.serial),
                ("Issuer", &view.issuer),
                ("Valid from", &view.not_before),
                ("Valid until", &view.not_after),
            ];
            for (label, value) in issued {
                if let Some(value) = value {
                    facts.push((label.into(), value.clone()));
                }
            }
        }
        "authorization" => {
            let specs: Vec<certhub_core::ChallengeSpec> = c.challenges.clone();
            for spec in specs {
                // The kind and where it answers; credentials stay out of the page.
                facts.push((spec.config.kind().to_string(), spec.config.describe()));
            }
        }
        // Tasks name commands, files and hosts of the hub: admins only, as in the API.
        "deployment" if !s.caller.may(Need::Admin) => {
            facts.push(("Tasks".into(), "shown to admins only".into()));
        }
        "deployment" => {
            for t in ops::deploy_tasks(state, &s.caller, name).await? {
                let last = match (&t.last_outcome, &t.last_run_at) {
                    (Some(o), Some(at)) if t.failures > 1 => {
                        format!(" · last run {at}: {o} ({} times in a row)", t.failures)
                    }
                    (Some(o), Some(at)) => format!(" · last run {at}: {o}"),
                    _ => " · not run yet".into(),
                };
                let does = format!("{} ({}, at most {} s)", t.does, t.when, t.timeout);
                facts.push((t.name, format!("{does}{last}")));
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
        "preview" => match ops::preview(state, &s.caller, name).await {
            Ok(plan) => preview = plan.summary,
            Err(p) if p.status == 503 => return Err(p),
            Err(p) => preview = vec![format!("No plan: {}", p.detail)],
        },
        _ => {
            for e in ops::cert_history(state, &s.caller, name).await?.into_iter().rev() {
                history.push((e.at, e.kind, e.detail.unwrap_or_default()));
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
        ("targets".into(), targets.join("\n")),
    ]);
    Ok(CertPage {
        page: PageInfo::new(name, s, "certificates"),
        cert: row,
        tab: tab.to_string(),
        facts,
        preview,
        history,
        targets,
        agents,
        issued: view.serial.is_some(),
        can_request: s.caller.may(Need::Request),
        can_revoke: admin && view.serial.is_some() && !view.revoked,
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

pub(super) async fn edit_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let tab = if form.value("tab") == "advanced" { "advanced" } else { "authorization" };
    let mut errors = Errors::default();
    let mut changes = certhub_engine::CertChanges::default();
    if tab == "authorization" {
        changes.challenges = form.lines("challenges");
        if changes.challenges.is_empty() {
            errors.add("challenges", "give at least one challenge SPEC, one a line");
        }
    } else {
        let c = match ops::cert_or_404(&state, &name).await {
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
        match ops::edit(&state, &s.caller, &name, changes).await {
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

pub(super) async fn add_deployments(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let outcome = match ops::add_deploy_tasks(&state, &s.caller, &name, form.lines("deploy")).await
    {
        Ok(added) => Ok(format!(
            "Added {}.",
            added.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
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

pub(super) async fn set_targets(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let targets = form.lines("targets");
    let outcome = match ops::set_cert_targets(&state, &s.caller, &name, &targets).await {
        Ok(t) if t.targets.is_empty() => Ok("Deployed by the hub.".to_string()),
        Ok(t) => Ok(format!("Deployed on {}.", t.targets.join(", "))),
        Err(p) if p.status == 400 => {
            let mut errors = Errors::default();
            errors.add("targets", p.detail);
            Err((form, errors))
        }
        Err(p) => return problem_page(p, &s),
    };
    cert_page_after(&state, &s, &name, "deployment", outcome).await
}

pub(super) async fn remove_deployment(
    State(state): State<AppState>,
    Path((name, task)): Path<(String, String)>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match ops::remove_deploy_task(&state, &s.caller, &name, &task).await {
        Ok(()) => {
            cert_page_after(&state, &s, &name, "deployment", Ok(format!("Removed {task}."))).await
        }
        Err(p) => problem_page(p, &s),
    }
}

pub(super) async fn test_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match ops::test(&state, &s.caller, &name).await {
        Ok(report) => {
            let works = report.iter().all(|i| i.works);
            let lines = report
                .iter()
                .map(|i| {
                    let mark = if i.works { "✓" } else { "✗" };
                    format!("{mark} {} {}: {}", i.identifier, i.challenge, i.detail)
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
    job: crate::jobs::Job,
}

pub(super) async fn request_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, .. }: Posted,
) -> Response {
    match ops::start_request(&state, &s.caller, &name).await {
        Ok(job) => render(&JobFragment { job }),
        Err(p) => problem_fragment(&p),
    }
}

pub(super) async fn job(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
) -> Response {
    if let Err(p) = s.caller.require(Need::Read) {
        return problem_fragment(&p);
    }
    match state.jobs.get(&id).await {
        Ok(Some(job)) => render(&JobFragment { job }),
        Ok(None) => problem_fragment(&Problem::not_found(format!("no job {id:?}"))),
        Err(e) => problem_fragment(&e.into()),
    }
}

pub(super) async fn revoke_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session: s, form }: Posted,
) -> Response {
    let reason = form.text("reason").filter(|r| r != "unspecified");
    match ops::revoke(&state, &s.caller, &name, reason).await {
        Ok(serial) => render(&Fragment {
            class: "result good",
            lines: vec![format!("Revoked serial {serial}. Reload the page to see the new state.")],
        }),
        Err(p) => problem_fragment(&p),
    }
}

pub(super) async fn download(
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
    match ops::pull(&state, &s.caller, &name, format, key, password).await {
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
