//! Per-upstream health as switchyard sees it: the outcome of the last connection attempt
//! or connection loss, by sessions (as primary) and by mirror workers (as secondary), for
//! `/status` and the metrics. It observes; it decides nothing (the guard does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use dashmap::DashMap;
use serde::Serialize;

use crate::clock::unix_ms;

/// What is known of one upstream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpstreamHealth {
    /// The last event was a success (a connection opened).
    pub ok: bool,
    pub last_ok_unix_ms: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_unix_ms: Option<u64>,
    /// Connections that could not be opened, or broke, since start.
    pub failures: u64,
}

/// See the module docs.
#[derive(Default)]
pub struct Health {
    upstreams: DashMap<String, Mutex<UpstreamHealth>>,
    pub failures_total: AtomicU64,
}

impl Health {
    fn update(&self, upstream: &str, f: impl FnOnce(&mut UpstreamHealth)) {
        let entry = self
            .upstreams
            .entry(upstream.to_owned())
            .or_insert_with(|| Mutex::new(UpstreamHealth::default()));
        let mut h = entry.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut h);
    }

    /// A connection to `upstream` was opened.
    pub fn connected(&self, upstream: &str) {
        self.update(upstream, |h| {
            h.ok = true;
            h.last_ok_unix_ms = Some(unix_ms());
        });
    }

    /// A connection to `upstream` could not be opened, or broke.
    pub fn failed(&self, upstream: &str, error: &str) {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        self.update(upstream, |h| {
            h.ok = false;
            h.failures += 1;
            h.last_error = Some(error.to_owned());
            h.last_error_unix_ms = Some(unix_ms());
        });
    }

    /// What is known of `upstream` (nothing yet: no connection attempted).
    pub fn of(&self, upstream: &str) -> Option<UpstreamHealth> {
        self.upstreams
            .get(upstream)
            .map(|h| h.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last event decides `ok`; failures are counted and the last error kept.
    #[test]
    fn last_event_wins() {
        let h = Health::default();
        assert!(h.of("green").is_none());
        h.connected("green");
        assert!(h.of("green").map(|g| g.ok).unwrap_or(false));
        h.failed("green", "connection refused");
        let g = h.of("green").expect("known");
        assert!(!g.ok);
        assert_eq!(g.failures, 1);
        assert_eq!(g.last_error.as_deref(), Some("connection refused"));
        h.connected("green");
        assert!(h.of("green").map(|g| g.ok).unwrap_or(false));
        assert_eq!(h.failures_total.load(Ordering::Relaxed), 1);
    }
}
