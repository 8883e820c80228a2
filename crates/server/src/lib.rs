//! certhub's hub: the REST API under `/api/v1` and the web UI (everything else).
//!
//! Nothing is open before setup: on first start (no users) `certhub serve` prints a one-time
//! setup token; `POST /api/v1/setup` with it creates the first admin. Callers then sign in
//! with `POST /api/v1/tokens` (name and password) for an API token, shown once and stored
//! hashed, and send it as `Authorization: Bearer TOKEN`.
//!
//! Roles: `admin` (everything), `operator` (read, request, download keys), `viewer` (read).
//! A token carries scopes (`cert:read`, `cert:request`, `cert:key`, `admin`) that narrow its
//! owner's role. Long operations answer 202 with a job (`/api/v1/jobs/{id}`) to watch.
//! Every change and every key download is written to the audit log. Errors are
//! `application/problem+json` naming the field and the rule. Lists are paginated
//! (`page`, `per_page`) and filterable.

mod agent_link;
mod api;
mod auth;
mod clock;
mod credentials;
mod hub;
mod jobs;
mod listen;
mod metrics;
mod oidc;
mod openapi;
mod ops;
mod problem;
mod state;
mod ui;

pub use agent_link::{AgentLink, AgentServerCert};
pub use certhub_engine::{
    CertChanges, Engine, Import, NewAccount, NewCertificate, Settings, SettingsChanges,
    SharedSettings,
};
pub use credentials::{Role, hash_password};
pub use hub::{AgentListener, Hub, ManagedIdentity, clean_up};
pub use jobs::Job;
pub use listen::{HubCert, Limits, Peer, PeerCertificate, serve};
pub use metrics::ScraperRange;
pub use oidc::{Oidc, OidcConfig};
pub use openapi::ROUTES;
pub use problem::Problem;
pub use state::AppState;

/// The hub's routes: the REST API under `/api/v1` and the web UI, every answer with the
/// security headers of [`secure_headers`].
pub fn router(state: AppState) -> axum::Router {
    let https = state.https;
    api::routes()
        // The API's description, built from the route table (which knows the API's types).
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(|| async { axum::Json(openapi::document()) }),
        )
        .merge(ui::routes())
        .route("/metrics", axum::routing::get(metrics::scrape))
        .layer(axum::middleware::from_fn(metrics::count_requests))
        .with_state(state)
        .layer(axum::middleware::map_response(move |rsp| secure_headers(rsp, https)))
}

/// What the UI needs and no more: its own scripts (htmx) and stylesheet, pictures of its own
/// or inline SVG, requests and forms to this hub only, and no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Adds the headers every answer carries: no framing, no type sniffing, no referrer sent
/// off this hub, the content security policy, and over HTTPS, Strict-Transport-Security
/// (a year), so a browser that has been here never uses plain HTTP again.
async fn secure_headers(
    mut rsp: axum::response::Response,
    https: bool,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = rsp.headers_mut();
    let mut set = |name, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "same-origin");
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    if https {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    rsp
}
