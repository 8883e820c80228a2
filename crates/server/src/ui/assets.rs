//! Static files, embedded: `/assets/htmx.min.js`, `app.css`, `icon.svg`, and `/favicon.ico`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Static files, embedded. htmx 2 (BSD Zero Clause, see assets/htmx.LICENSE).
pub(super) async fn htmx_js() -> Response {
    asset("text/javascript", include_bytes!("../../assets/htmx.min.js"))
}

pub(super) async fn app_css() -> Response {
    asset("text/css", include_bytes!("../../assets/app.css"))
}

pub(super) async fn icon() -> Response {
    asset("image/svg+xml", include_bytes!("../../assets/icon.svg"))
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body)
        .into_response()
}
