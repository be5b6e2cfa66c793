//! The admin HTTP API on `admin.address`. It only reads shared state or asks for a reload;
//! it never reaches into a session.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::state::Shared;

struct AdminState {
    shared: Arc<Shared>,
    started: Instant,
    metrics: crate::metrics::Metrics,
}

/// Serves the admin API until the task is dropped.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin API listening");
    }
    let state = Arc::new(AdminState {
        shared,
        started: Instant::now(),
        metrics: crate::metrics::Metrics::default(),
    });
    let app = Router::new()
        .route("/status", get(status))
        .route("/divergences", get(divergences))
        .route("/metrics", get(metrics))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin API stopped");
    }
}

async fn status(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    let config = state.shared.config.load();
    let max = config.limits.max_clients;
    let free = state.shared.client_slots.available_permits();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "routing": {
            "primary": config.routing.primary,
            "canary_percent": config.routing.canary_percent,
        },
        "sessions": max.saturating_sub(free),
    }))
}

async fn divergences(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    let d = &state.shared.divergences;
    Json(json!({
        "total": d.total(),
        "by_fingerprint": d.by_fingerprint(),
        "recent": d.recent(),
        "non_deterministic": state
            .shared
            .nondeterministic
            .snapshot()
            .into_iter()
            .map(|(fingerprint, (count, reasons))| json!({
                "fingerprint": fingerprint,
                "count": count,
                "reasons": reasons,
            }))
            .collect::<Vec<_>>(),
    }))
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.shared),
    )
}
