//! The admin HTTP API on `admin.address`. It only reads shared state or asks for a reload
//! (a routing change is a reload of the file it writes); it never reaches into a session.

pub mod dashboard;
pub mod routing;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::state::Shared;

pub(crate) struct AdminState {
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
        .route("/", get(dashboard::page))
        .route("/history", get(dashboard::history))
        .route("/status", get(status))
        .route("/divergences", get(divergences))
        .route("/mismatches", get(mismatches))
        .route("/metrics", get(metrics))
        .route("/reload", axum::routing::post(reload))
        .route("/routing", axum::routing::post(post_routing))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin API stopped");
    }
}

async fn status(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let shared = &state.shared;
    let config = shared.config.load();
    let sessions: serde_json::Map<String, serde_json::Value> = config
        .upstreams
        .names()
        .iter()
        .map(|name| {
            let n = shared
                .sessions_by_primary
                .get(*name)
                .map(|n| *n)
                .unwrap_or(0);
            (name.to_string(), json!(n))
        })
        .collect();
    let m = &shared.mirror_stats;
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "routing": {
            "primary": config.routing.primary,
            "canary_percent": config.routing.canary_percent,
            "sticky": config.routing.sticky.as_str(),
            "generation": shared.reloads.generation.load(Relaxed),
        },
        "upstreams": config
            .upstreams
            .names()
            .iter()
            .map(|name| {
                let up = config.upstream(name);
                let role = if *name == config.routing.primary {
                    "primary"
                } else if config.routing.canary_percent > 0 {
                    "canary"
                } else {
                    "secondary"
                };
                (name.to_string(), json!({
                    "address": up.map(|u| format!("{}:{}", u.host, u.port)),
                    "role": role,
                    "sessions": sessions.get(*name).cloned().unwrap_or(json!(0)),
                    "health": shared.health.of(name),
                }))
            })
            .collect::<serde_json::Map<_, _>>(),
        "sessions": sessions.values().filter_map(|v| v.as_i64()).sum::<i64>(),
        "sessions_by_primary": sessions,
        "session_threads": shared.session_threads.get().map(|t| t.sessions()),
        "mirror": {
            "enabled": config.mirror.enabled,
            "queue_depth": m.queue_depth.load(Relaxed),
            "units_applied": m.applied.load(Relaxed),
            "batches": m.batches.load(Relaxed),
            "units_journaled": m.journaled.load(Relaxed),
            "journal_fallbacks": m.journal_switches.load(Relaxed),
            "units_lost": m.lost.load(Relaxed),
            "order_waits": shared.order.waits.load(Relaxed),
            "order_waits_expired": shared.order.expired.load(Relaxed),
            "journal_entries_written": shared.journal.as_ref().map(|j| j.entries_written()),
        },
        "divergences": shared.divergences.total(),
        "shadow_reads": shadow_summary(shared, config.shadow_reads.percent),
        "guard": {
            "enabled": config.guard.enabled,
            "max_error_rate": config.guard.max_error_rate,
            "min_statements": config.guard.min_statements,
            "window_s": config.guard.window_s,
            "trips": shared.guard.trips.load(Relaxed),
            "last_known_good_primary": shared.guard.last_good(),
            "last_trip": shared.guard.last_trip(),
            "windows": shared.guard.windows(config.guard.window_s).into_iter().map(|(name, statements, failures)| (name, json!({
                "statements": statements,
                "server_failures": failures,
                "error_rate": if statements > 0 { failures as f64 / statements as f64 } else { 0.0 },
            }))).collect::<serde_json::Map<_, _>>(),
        },
        "cutover": {
            "holding": shared.barrier.is_holding(),
            "completed": shared.barrier.completed.load(Relaxed),
            "abandoned": shared.barrier.abandoned.load(Relaxed),
            "last": shared.barrier.last(),
        },
        "non_deterministic_statements": shared.nondeterministic.len(),
        "latency": shared.latencies.summary(),
        "admin": { "token_required": config.admin.token.is_some() },
        "reloads": {
            "ok": shared.reloads.ok.load(Relaxed),
            "failed": shared.reloads.failed.load(Relaxed),
            "last": shared.reloads.last(),
        },
    }))
}

/// A JSON error with its HTTP status.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Mutating endpoints require `Authorization: Bearer <token>` when `admin.token_env` is
/// set. Returns the refusal to send, if the request is not authorized.
fn refusal(state: &AdminState, headers: &HeaderMap) -> Option<Response> {
    let config = state.shared.config.load();
    let token = config.admin.token.as_deref()?;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs Authorization: Bearer <token> (admin.token_env)",
        )),
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => None,
        Some(_) => Some(error(StatusCode::FORBIDDEN, "wrong admin token")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn reload(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if let Some(denied) = refusal(&state, &headers) {
        return denied;
    }
    match crate::reload::reload(&state.shared, crate::reload::Source::Api).await {
        Ok(outcome) => Json(json!({ "reloaded": true, "outcome": outcome })).into_response(),
        Err(e @ crate::reload::ReloadError::CutoverAbandoned(_)) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
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

/// Shadow-read counters, for `/status` and `/mismatches`.
fn shadow_summary(shared: &Shared, percent: u8) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &shared.mismatches.stats;
    let skipped: serde_json::Map<String, serde_json::Value> = s
        .skipped_by_reason
        .iter()
        .map(|e| (e.key().to_string(), json!(*e.value())))
        .collect();
    json!({
        "percent": percent,
        "sampled": s.sampled.load(Relaxed),
        "completed": s.completed.load(Relaxed),
        "matched": s.matched.load(Relaxed),
        "mismatched": s.mismatched.load(Relaxed),
        "confirmed": s.confirmed.load(Relaxed),
        "vanished": s.vanished.load(Relaxed),
        "unverified": s.unverified.load(Relaxed),
        "skipped": s.skipped.load(Relaxed),
        "skipped_by_reason": skipped,
        "errors": s.errors.load(Relaxed),
        "noise_rate": s.noise_rate(),
    })
}

async fn mismatches(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    let shared = &state.shared;
    let percent = shared.config.load().shadow_reads.percent;
    Json(json!({
        "counts": shadow_summary(shared, percent),
        "by_fingerprint": shared
            .mismatches
            .by_fingerprint()
            .into_iter()
            .map(|(fingerprint, c)| json!({
                "fingerprint": fingerprint,
                "statement": c.statement,
                "mismatches": c.mismatches,
                "confirmed": c.confirmed,
                "vanished": c.vanished,
            }))
            .collect::<Vec<_>>(),
        "recent": shared.mismatches.recent(),
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

async fn post_routing(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(denied) = refusal(&state, &headers) {
        return denied;
    }
    let change: routing::RoutingChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                "invalid body: {e}; expected {{\"primary\": \"NAME\", \"canary_percent\": 0..100}}"
            ),
            )
        }
    };
    match routing::apply(&state.shared, change).await {
        Ok(outcome) => Json(json!({ "changed": true, "outcome": outcome })).into_response(),
        Err(e @ routing::RoutingError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ (routing::RoutingError::Backlog { .. } | routing::RoutingError::Abandoned(_))) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
