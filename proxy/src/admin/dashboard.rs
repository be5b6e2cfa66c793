//! The operator's dashboard: `GET /` serves one self-contained HTML page (inline CSS and
//! JavaScript, compiled into the binary, nothing fetched from elsewhere) that polls the
//! admin API and drives `POST /routing`; `GET /history` serves the latency time series it
//! charts. Both are read-only and unauthenticated, like `/status`: the page sends the admin
//! token, when the operator gives it, only with its POSTs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::AdminState;

const PAGE: &str = include_str!("dashboard.html");

/// The page may run its own inline script and talk to this origin, and nothing else.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub(super) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
}

pub(super) async fn history(State(state): State<Arc<AdminState>>) -> Json<crate::latency::History> {
    Json(state.shared.latencies.history())
}
