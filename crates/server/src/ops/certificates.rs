//! Managed certificates: list, add, change, remove, import, request, preview, test, revoke,
//! download, history and challenge configurations.

use certhub_store::{CertFilter, CertRecord};
use serde::Deserialize;

use super::views::{CertPage, CertView, ChallengeView, DeployedView, EventView, ImportView};
use super::{OpResult, cert_or_404, engine};
use crate::auth::{Caller, Need};
use crate::clock::{now_ms, rfc3339_ms};
use crate::problem::Problem;
use crate::state::AppState;

/// Which certificates a list shows.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// The page, from 1.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub page: Option<u32>,
    /// Certificates a page, 1 to 500 (default 50).
    #[serde(default)]
    #[schemars(range(min = 1, max = 500))]
    pub per_page: Option<u32>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub q: Option<String>,
}

/// The certificates matching `q` (state, and a search in names and identifiers), one page.
pub(crate) async fn cert_page(
    state: &AppState,
    caller: &Caller,
    q: &ListQuery,
) -> OpResult<CertPage> {
    caller.require(Need::Read)?;
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(Problem::invalid("page", "pages count from 1"));
    }
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(Problem::invalid("per_page", "between 1 and 500"));
    }
    let filter = CertFilter {
        state: q.state.clone().filter(|s| !s.is_empty()),
        search: q.q.clone(),
        offset: u64::from(page - 1) * u64::from(per_page),
        limit: Some(u64::from(per_page)),
    };
    let (total, summaries) = state.store.cert_summaries(&filter, now_ms()).await?;
    let items = summaries.iter().map(CertView::from_summary).collect();
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    Ok(CertPage { items, page, per_page, total })
}

/// Certificate `name` with its latest issued certificate.
pub(crate) async fn certificate(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<(CertRecord, CertView)> {
    caller.require(Need::Read)?;
    let c = cert_or_404(state, name).await?;
    let issued = state.store.latest_issued(name).await?;
    let view = CertView::of(&c, issued.as_ref());
    Ok((c, view))
}

/// Adds a managed certificate (admins only: its challenge and deployment specs run hooks
/// and commands and write files on the hub). Audited.
pub(crate) async fn add_certificate(
    state: &AppState,
    caller: &Caller,
    req: certhub_engine::NewCertificate,
) -> OpResult<CertView> {
    caller.require(Need::Admin)?;
    let name = req.name.clone();
    engine(state)?.add_certificate(&req, caller.entry("cert.create", &name)).await?;
    Ok(CertView::of(&cert_or_404(state, &name).await?, None))
}

/// Changes how certificate `name` is ordered and renewed (admins only: challenge specs run
/// hooks on the hub, as for adding); what changed, in words. Audited.
pub(crate) async fn edit(
    state: &AppState,
    caller: &Caller,
    name: &str,
    changes: certhub_engine::CertChanges,
) -> OpResult<Vec<String>> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.update", name);
    Ok(engine(state)?.edit(name, &changes, entry).await?)
}

/// Removes certificate `name` with its history and tasks (admins only). Audited.
pub(crate) async fn delete_certificate(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<()> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    state.store.delete_cert(name, Some(&caller.entry("cert.delete", name))).await?;
    Ok(())
}

/// Imports a certificate obtained elsewhere (admins only: its deployment tasks run on the
/// hub). Audited.
pub(crate) async fn import(
    state: &AppState,
    caller: &Caller,
    req: certhub_engine::Import,
) -> OpResult<ImportView> {
    caller.require(Need::Admin)?;
    let engine = engine(state)?;
    let entry = caller.entry("cert.import", &req.name);
    let bundle = req.bundle().map_err(certhub_engine::Error::from)?;
    let i = engine.import(&req, bundle, entry).await.map_err(|(e, _)| e)?;
    Ok(ImportView {
        name: req.name,
        imported: i.detail,
        names: i.names,
        without_key: i.keyless,
        renewed_by: i.account,
        expired: i.expired,
        deployed: i.deployed.into_iter().map(|(task, did)| DeployedView { task, did }).collect(),
    })
}

/// Starts requesting `name` now, as a job. Audited.
pub(crate) async fn start_request(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<crate::jobs::Job> {
    caller.require(Need::Request)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.request", name);
    Ok(state.jobs.start_request(engine(state)?, name, entry).await?)
}

/// What a request of `name` would do now, without doing it.
pub(crate) async fn preview(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<certhub_engine::Preview> {
    caller.require(Need::Read)?;
    cert_or_404(state, name).await?;
    Ok(engine(state)?.preview(name, None).await?)
}

/// Whether each identifier of `name` can be validated as configured (a dry run of the
/// challenges, against the hub itself).
pub(crate) async fn test(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<Vec<certhub_engine::Probe>> {
    caller.require(Need::Request)?;
    cert_or_404(state, name).await?;
    Ok(engine(state)?.test(name, None).await?)
}

/// Revokes the latest certificate of `name` (admins only); its serial. Audited.
pub(crate) async fn revoke(
    state: &AppState,
    caller: &Caller,
    name: &str,
    reason: Option<String>,
) -> OpResult<String> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.revoke", name);
    Ok(engine(state)?.revoke(name, reason.as_deref(), false, entry).await?)
}

/// The PKCS#12 password travels in a header, never in the URL (which proxies log).
pub(crate) const PKCS12_PASSWORD_HEADER: &str = "x-pkcs12-password";

/// The latest certificate of `name` as `pem` (the chain, and the key if `key`) or `pkcs12`
/// (always with the key, under `password`): the bytes and their media type. Key downloads
/// need the key scope and are audited.
pub(crate) async fn pull(
    state: &AppState,
    caller: &Caller,
    name: &str,
    format: &str,
    key: bool,
    password: Option<&str>,
) -> OpResult<(Vec<u8>, &'static str)> {
    caller.require(Need::Read)?;
    let with_key = match format {
        "pem" => key,
        "pkcs12" => true,
        other => {
            return Err(Problem::invalid("format", format!("{other:?}: use pem or pkcs12")));
        }
    };
    if with_key {
        caller.require(Need::Key)?;
    }
    let not_issued = || async {
        cert_or_404(state, name).await?;
        Err(Problem::conflict(format!("certificate {name} has not been issued yet")))
    };
    // Public certificates are pulled often: they are read without the key's column.
    let (chain_pem, key) = if with_key {
        let Some(issued) = state.store.latest_issued(name).await? else {
            return not_issued().await;
        };
        if issued.key_pkcs8.is_empty() {
            return Err(Problem::conflict(format!(
                "the hub does not hold the key of {name} (it was ordered from the owner's CSR)"
            )));
        }
        (issued.chain_pem, Some(issued.key_pkcs8))
    } else {
        match state.store.latest_chain(name).await? {
            Some(chain_pem) => (chain_pem, None),
            None => return not_issued().await,
        }
    };
    let chain = certhub_core::split_pem_chain(&chain_pem).map_err(Problem::internal)?;
    let (body, content_type) = match &key {
        Some(key) if format == "pkcs12" => {
            let password = password.filter(|p| !p.is_empty()).ok_or_else(|| {
                Problem::invalid(
                    PKCS12_PASSWORD_HEADER,
                    "a PKCS#12 file needs a password, sent in the X-Pkcs12-Password header",
                )
            })?;
            let der = certhub_deploy::pkcs12::build(name, key, &chain, password, false)
                .map_err(Problem::internal)?;
            (der, "application/x-pkcs12")
        }
        _ => {
            let mut text: String =
                chain.iter().map(|d| certhub_core::pem_block("CERTIFICATE", d)).collect();
            if let Some(key) = &key {
                text.push_str(&certhub_core::pem_block("PRIVATE KEY", key));
            }
            (text.into_bytes(), "application/x-pem-file")
        }
    };
    // Downloads of public certificates are frequent and harmless; keys are always audited.
    if key.is_some() {
        state
            .store
            .audit(&caller.actor(), "cert.key-download", name, &caller.source, Some(format))
            .await?;
    }
    Ok((body, content_type))
}

/// The events of certificate `name`, oldest first.
pub(crate) async fn cert_history(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<Vec<EventView>> {
    caller.require(Need::Read)?;
    cert_or_404(state, name).await?;
    Ok(state
        .store
        .events_for(name)
        .await?
        .into_iter()
        .map(|e| EventView { at: rfc3339_ms(e.at), kind: e.kind.to_string(), detail: e.detail })
        .collect())
}

/// A certificate's challenge configurations, credentials left out, and which one validates
/// each identifier; a conflict naming the identifiers none of them validates.
pub(crate) fn challenges(c: &CertRecord) -> OpResult<Vec<ChallengeView>> {
    let assigned = certhub_core::identifier::assign_challenges(&c.identifiers, &c.challenges)
        .map_err(|v| {
            let v: Vec<String> = v.iter().map(ToString::to_string).collect();
            Problem::conflict(format!(
                "certificate {}: its challenge configurations do not cover its identifiers ({}); \
                 replace them with PUT /api/v1/certificates/{}/challenges",
                c.name,
                v.join("; "),
                c.name
            ))
        })?;
    Ok(c.challenges
        .iter()
        .enumerate()
        .map(|(i, spec)| ChallengeView {
            challenge: spec.config.kind().to_string(),
            answers: spec.config.describe(),
            applies_to: if spec.domains.is_empty() {
                vec!["all".to_string()]
            } else {
                spec.domains.clone()
            },
            propagation_timeout_seconds: spec.propagation_timeout.map(|d| d.as_secs()),
            propagation: (!spec.propagation.is_check()).then(|| spec.propagation.to_string()),
            validates: assigned
                .iter()
                .filter(|(_, n)| *n == i)
                .map(|(id, _)| id.to_string())
                .collect(),
        })
        .collect())
}
