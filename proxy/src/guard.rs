//! The guard (`[guard]`): counts, per upstream, the statements it answered and how many of
//! them failed *because of the server*, over a sliding window of `guard.window_s`
//! seconds. When an upstream that traffic was moved to (the canary, or the primary after a
//! cutover) fails more than `guard.max_error_rate` of at least `guard.min_statements`
//! statements, routing goes back to the last known-good primary, through the same path as
//! `POST /routing` (validated, written back to the file, reloaded), and the reason is
//! logged, counted and shown in `/status`.
//!
//! What counts as the server's fault ([`Fault::of`]): losing the connection to it or
//! failing to open one; SQLSTATE classes 08 (connection exception), 53 (insufficient
//! resources), 57 (operator intervention: shutdown, crash, cannot connect now; except
//! 57014 `query_canceled`, which a client's cancel or statement_timeout causes), 58
//! (system error) and XX (internal error). Everything else — syntax and access errors
//! (42), constraint violations (23), bad data (22), serialization failures and deadlocks
//! (40), and the rest — is the client's or the workload's, counted as a statement but not
//! as a failure, so a buggy application cannot flip routing back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use serde::Serialize;
use tracing::{error, warn};

use crate::state::Shared;

/// How a statement ended, for the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The client's (or the workload's) doing.
    Client,
    /// The server's trouble.
    Server,
}

impl Fault {
    /// Classifies an outcome by its SQLSTATE (`None`: success). See the module docs.
    pub fn of(sqlstate: Option<&str>) -> Fault {
        let Some(code) = sqlstate else {
            return Fault::None;
        };
        if code == "57014" {
            return Fault::Client;
        }
        match code.get(..2) {
            Some("08" | "53" | "57" | "58" | "XX") => Fault::Server,
            _ => Fault::Client,
        }
    }
}

/// One second of one upstream's traffic.
#[derive(Debug, Clone, Copy)]
struct Slot {
    second: u64,
    statements: u64,
    failures: u64,
}

/// What the guard did, for `/status` and the logs.
#[derive(Debug, Clone, Serialize)]
pub struct Trip {
    pub at_unix_ms: u64,
    pub upstream: String,
    pub statements: u64,
    pub failures: u64,
    pub error_rate: f64,
    /// The routing change it made (or tried).
    pub action: String,
    /// Whether the change was applied.
    pub applied: bool,
    pub error: Option<String>,
}

/// The guard's state. See the module docs.
#[derive(Default)]
pub struct Guard {
    windows: DashMap<String, Mutex<VecDeque<Slot>>>,
    /// The primary before the last cutover: where a flip-back goes.
    last_good: Mutex<Option<String>>,
    /// A trip is being acted upon.
    acting: AtomicBool,
    pub trips: AtomicU64,
    last_trip: Mutex<Option<Trip>>,
}

fn now_s() -> u64 {
    crate::clock::unix_ms() / 1000
}

impl Guard {
    /// A cutover from `old` to another primary completed: `old` is the last known-good.
    pub fn primary_changed(&self, old: &str) {
        if let Ok(mut g) = self.last_good.lock() {
            *g = Some(old.to_owned());
        }
    }

    /// Counts one statement answered by `upstream` (or a connection to it that failed),
    /// and acts when the upstream's failure rate is past the threshold.
    pub fn record(&self, shared: &Arc<Shared>, upstream: &str, fault: Fault) {
        let config = shared.config.load();
        let settings = &config.guard;
        if !settings.enabled {
            return;
        }
        let now = now_s();
        let window = settings.window_s.max(1);
        let (statements, failures) = {
            let entry = self
                .windows
                .entry(upstream.to_owned())
                .or_insert_with(|| Mutex::new(VecDeque::new()));
            let mut slots = entry.lock().unwrap_or_else(|e| e.into_inner());
            while slots.front().is_some_and(|s| s.second + window <= now) {
                slots.pop_front();
            }
            match slots.back_mut() {
                Some(s) if s.second == now => {
                    s.statements += 1;
                    s.failures += u64::from(fault == Fault::Server);
                }
                _ => slots.push_back(Slot {
                    second: now,
                    statements: 1,
                    failures: u64::from(fault == Fault::Server),
                }),
            }
            slots
                .iter()
                .fold((0, 0), |(st, f), s| (st + s.statements, f + s.failures))
        };
        if fault != Fault::Server || statements < settings.min_statements {
            return;
        }
        let rate = failures as f64 / statements as f64;
        if rate <= settings.max_error_rate {
            return;
        }
        // Only an upstream that traffic was moved to can be moved away from.
        let routing = &config.routing;
        let last_good = self.last_good.lock().ok().and_then(|g| g.clone());
        let action = if upstream != routing.primary && routing.canary_percent > 0 {
            (None, "canary_percent = 0".to_owned())
        } else if upstream == routing.primary && last_good.as_deref().is_some_and(|g| g != upstream)
        {
            let good = last_good.unwrap_or_default();
            (
                Some(good.clone()),
                format!("primary = {good:?}, canary_percent = 0"),
            )
        } else {
            return;
        };
        if self.acting.swap(true, Ordering::AcqRel) {
            return;
        }
        self.trips.fetch_add(1, Ordering::Relaxed);
        warn!(
            upstream,
            statements,
            failures,
            error_rate = rate,
            max_error_rate = settings.max_error_rate,
            window_s = window,
            action = %action.1,
            "guard: the upstream fails too often; routing goes back to the last known-good primary"
        );
        let mut trip = Trip {
            at_unix_ms: now * 1000,
            upstream: upstream.to_owned(),
            statements,
            failures,
            error_rate: rate,
            action: action.1.clone(),
            applied: false,
            error: None,
        };
        if let Ok(mut last) = self.last_trip.lock() {
            *last = Some(trip.clone());
        }
        let shared = shared.clone();
        let upstream = upstream.to_owned();
        tokio::spawn(async move {
            let change = crate::admin::routing::RoutingChange {
                primary: action.0,
                canary_percent: Some(0),
                // The failing upstream's journal backlog says nothing about the good one.
                force: true,
            };
            let flips_primary = change.primary.is_some();
            match crate::admin::routing::apply(&shared, change).await {
                Ok(_) => {
                    trip.applied = true;
                    if flips_primary {
                        // The cutover back made the failing upstream the "last good" one:
                        // it is not; there is nothing to flip back to until an operator
                        // cuts over again.
                        if let Ok(mut g) = shared.guard.last_good.lock() {
                            *g = None;
                        }
                    }
                }
                Err(e) => {
                    error!(upstream = %upstream, error = %e, "guard: the routing change failed");
                    trip.error = Some(e.to_string());
                }
            }
            let guard = &shared.guard;
            guard.windows.remove(&upstream);
            if let Ok(mut last) = guard.last_trip.lock() {
                *last = Some(trip);
            }
            guard.acting.store(false, Ordering::Release);
        });
    }

    /// Statements and server failures per upstream over the window, for `/status`.
    pub fn windows(&self, window_s: u64) -> Vec<(String, u64, u64)> {
        let now = now_s();
        self.windows
            .iter()
            .map(|e| {
                let slots = e.value().lock().unwrap_or_else(|p| p.into_inner());
                let (st, f) = slots
                    .iter()
                    .filter(|s| s.second + window_s > now)
                    .fold((0, 0), |(st, f), s| (st + s.statements, f + s.failures));
                (e.key().clone(), st, f)
            })
            .collect()
    }

    pub fn last_trip(&self) -> Option<Trip> {
        self.last_trip.lock().ok().and_then(|t| t.clone())
    }

    pub fn last_good(&self) -> Option<String> {
        self.last_good.lock().ok().and_then(|g| g.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented rule: connection, resource, operator, system and internal errors are
    /// the server's; a cancel, syntax, constraint, data or serialization error is not.
    #[test]
    fn fault_classes() {
        for server in [
            "08006", "08P01", "53300", "53100", "57P01", "57P03", "58030", "XX000",
        ] {
            assert_eq!(Fault::of(Some(server)), Fault::Server, "{server}");
        }
        for client in [
            "57014", "42601", "42P01", "23505", "22012", "40001", "40P01", "25P02", "P0001",
        ] {
            assert_eq!(Fault::of(Some(client)), Fault::Client, "{client}");
        }
        assert_eq!(Fault::of(None), Fault::None);
    }
}
