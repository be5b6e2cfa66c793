//! The cutover barrier. A change of `routing.primary` (a cutover or a flip-back) is not
//! left to each session on its own: while the barrier holds, mirrored sessions that reach a
//! transaction boundary start nothing new and new connections wait; transactions in
//! progress finish; each session drains its mirror queue and swaps primary and secondary;
//! once every mirrored session is on its new primary, traffic resumes. If that does not
//! happen within `routing.cutover_timeout_ms`, the cutover is abandoned: the old routing is
//! restored (and written back to the file), sessions that had moved move back, traffic
//! resumes on the old primary, and the reason (which sessions were not ready, and why) is
//! reported.
//!
//! Sessions register here ([`Barrier::join`]) and report their moves; the reload that
//! changes the primary runs [`Barrier::hold`] / [`Barrier::wait_until`] /
//! [`Barrier::release`]. The barrier never reaches into a session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::Serialize;
use switchyard_config::Config;
use tokio::sync::{watch, Notify};

/// What a mirrored session is doing, as far as the barrier is concerned.
#[derive(Debug, Clone)]
struct Member {
    bucket: u8,
    primary: String,
    /// Held at a boundary since.
    held_since: Option<Instant>,
    /// Why its last move was refused.
    refused: Option<String>,
}

/// A finished (or abandoned) cutover, for `/status` and the logs.
#[derive(Debug, Clone, Serialize)]
pub struct CutoverReport {
    pub from: String,
    pub to: String,
    /// `completed` or `abandoned`.
    pub result: &'static str,
    pub reason: Option<String>,
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    /// Mirrored sessions open when it started.
    pub sessions: usize,
    /// How long sessions (and new connections) were held, in milliseconds.
    pub pauses: PauseSummary,
}

/// Distribution of the pauses clients saw during one cutover.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PauseSummary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl PauseSummary {
    fn of(mut pauses: Vec<Duration>) -> Self {
        if pauses.is_empty() {
            return PauseSummary::default();
        }
        pauses.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| pauses[((pauses.len() - 1) as f64 * q).round() as usize];
        PauseSummary {
            count: pauses.len(),
            p50_ms: ms(at(0.5)),
            p99_ms: ms(at(0.99)),
            max_ms: ms(pauses[pauses.len() - 1]),
        }
    }
}

/// The barrier and its bookkeeping. See the module docs.
pub struct Barrier {
    holding: watch::Sender<bool>,
    members: DashMap<u64, Member>,
    changed: Notify,
    /// Pauses of the cutover in progress: sessions released, new connections let in.
    pauses: Mutex<Vec<Duration>>,
    last: Mutex<Option<CutoverReport>>,
    pub completed: AtomicU64,
    pub abandoned: AtomicU64,
    /// Sum and count of all pauses since start, and the longest, for metrics.
    pub pause_us_total: AtomicU64,
    pub pause_count: AtomicU64,
    pub pause_max_us: AtomicU64,
}

impl Default for Barrier {
    fn default() -> Self {
        Barrier {
            holding: watch::Sender::new(false),
            members: DashMap::new(),
            changed: Notify::new(),
            pauses: Mutex::new(Vec::new()),
            last: Mutex::new(None),
            completed: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            pause_us_total: AtomicU64::new(0),
            pause_count: AtomicU64::new(0),
            pause_max_us: AtomicU64::new(0),
        }
    }
}

/// A session's registration; leaves the barrier when dropped.
pub struct Membership {
    barrier: Arc<Barrier>,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some((_, m)) = self.barrier.members.remove(&self.id) {
            if let Some(since) = m.held_since {
                self.barrier.pause(since.elapsed());
            }
        }
        self.barrier.changed.notify_waiters();
    }
}

impl Membership {
    /// The session now answers from `primary`.
    pub fn moved(&self, primary: &str) {
        if let Some(mut m) = self.barrier.members.get_mut(&self.id) {
            m.primary = primary.to_owned();
            m.refused = None;
        }
        self.barrier.changed.notify_waiters();
    }

    /// The session's move was refused (its secondary is missing writes, ...).
    pub fn refused(&self, reason: &str) {
        if let Some(mut m) = self.barrier.members.get_mut(&self.id) {
            m.refused = Some(reason.to_owned());
        }
        self.barrier.changed.notify_waiters();
    }

    /// The session is held at its boundary.
    pub fn held(&self) {
        if let Some(mut m) = self.barrier.members.get_mut(&self.id) {
            m.held_since.get_or_insert_with(Instant::now);
        }
    }

    /// The session resumes; its pause is counted.
    pub fn released(&self) {
        let since = self
            .barrier
            .members
            .get_mut(&self.id)
            .and_then(|mut m| m.held_since.take());
        if let Some(since) = since {
            self.barrier.pause(since.elapsed());
        }
    }

    /// Resolves when the barrier holds.
    pub async fn holding(&self) {
        let mut rx = self.barrier.holding.subscribe();
        let _ = rx.wait_for(|h| *h).await;
    }

    /// Resolves when the barrier no longer holds. (The session's own pause is counted at
    /// release, not here.)
    pub async fn open(&self) {
        let mut rx = self.barrier.holding.subscribe();
        let _ = rx.wait_for(|h| !*h).await;
    }

    pub fn is_holding(&self) -> bool {
        *self.barrier.holding.borrow()
    }
}

impl Barrier {
    /// Registers a mirrored session (one that can move).
    pub fn join(self: &Arc<Self>, id: u64, bucket: u8, primary: &str) -> Membership {
        self.members.insert(
            id,
            Member {
                bucket,
                primary: primary.to_owned(),
                held_since: None,
                refused: None,
            },
        );
        Membership {
            barrier: self.clone(),
            id,
        }
    }

    fn pause(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.pause_us_total.fetch_add(us, Ordering::Relaxed);
        self.pause_count.fetch_add(1, Ordering::Relaxed);
        self.pause_max_us.fetch_max(us, Ordering::Relaxed);
        if let Ok(mut p) = self.pauses.lock() {
            p.push(d);
        }
    }

    /// New connections wait here while the barrier holds; how long they waited counts as a
    /// pause.
    pub async fn wait_open(&self) {
        let mut rx = self.holding.subscribe();
        if !*rx.borrow_and_update() {
            return;
        }
        let since = Instant::now();
        let _ = rx.wait_for(|h| !*h).await;
        self.pause(since.elapsed());
    }

    /// Starts holding: sessions stop at their next boundary, new connections wait.
    pub fn hold(&self) {
        if let Ok(mut p) = self.pauses.lock() {
            p.clear();
        }
        self.holding.send_replace(true);
    }

    /// Stops holding; every held session resumes. Their pauses end now.
    pub fn release(&self) {
        self.holding.send_replace(false);
        let mut ended = Vec::new();
        for mut m in self.members.iter_mut() {
            if let Some(since) = m.held_since.take() {
                ended.push(since.elapsed());
            }
        }
        for d in ended {
            self.pause(d);
        }
    }

    /// Mirrored sessions not yet on the primary `config` gives them, with what they are
    /// doing.
    fn laggards(&self, config: &Config) -> Vec<(u64, String)> {
        self.members
            .iter()
            .filter(|m| m.primary != config.routing.primary_for(m.bucket, &config.upstreams))
            .map(|m| {
                let why = match &m.refused {
                    Some(r) => format!("move refused: {r}"),
                    None if m.held_since.is_some() => "held, moving".to_owned(),
                    None => "not at a transaction boundary (a transaction or request in progress)"
                        .to_owned(),
                };
                (*m.key(), why)
            })
            .collect()
    }

    /// Waits until every mirrored session is on the primary `config` gives it, or until
    /// `timeout`; returns the sessions still elsewhere (empty on success).
    pub async fn wait_until(&self, config: &Config, timeout: Duration) -> Vec<(u64, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let laggards = self.laggards(config);
            if laggards.is_empty() {
                return laggards;
            }
            // Re-evaluated on every change, and now and then (a refusal may clear).
            let tick = tokio::time::sleep(Duration::from_millis(50));
            tokio::select! {
                () = &mut notified => {}
                () = tick => {}
                () = tokio::time::sleep_until(deadline) => return self.laggards(config),
            }
        }
    }

    pub fn is_holding(&self) -> bool {
        *self.holding.borrow()
    }

    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Records the outcome of a cutover.
    #[allow(clippy::too_many_arguments)]
    pub fn report(
        &self,
        from: &str,
        to: &str,
        completed: bool,
        reason: Option<String>,
        started: Instant,
        started_unix_ms: u64,
        sessions: usize,
    ) -> CutoverReport {
        let pauses = self
            .pauses
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        let report = CutoverReport {
            from: from.to_owned(),
            to: to.to_owned(),
            result: if completed { "completed" } else { "abandoned" },
            reason,
            started_unix_ms,
            duration_ms: started.elapsed().as_millis() as u64,
            sessions,
            pauses: PauseSummary::of(pauses),
        };
        if completed {
            self.completed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(report.clone());
        }
        report
    }

    pub fn last(&self) -> Option<CutoverReport> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pause percentiles come from the recorded pauses, nearest rank.
    #[test]
    fn pause_summary() {
        let p = PauseSummary::of((1..=100).map(Duration::from_millis).collect());
        assert_eq!(p.count, 100);
        assert_eq!(p.max_ms, 100.0);
        assert_eq!(p.p50_ms, 51.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(PauseSummary::of(Vec::new()).count, 0);
    }

    /// A held member's pause is counted when it is released; new connections wait only
    /// while the barrier holds.
    #[tokio::test]
    async fn hold_and_release() {
        let b = Arc::new(Barrier::default());
        let m = b.join(1, 5, "blue");
        b.wait_open().await; // open: returns at once
        b.hold();
        assert!(m.is_holding());
        m.held();
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.wait_open().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "a new connection waits while the barrier holds"
        );
        b.release();
        waiter.await.expect("the waiter ends once released");
        m.released(); // already counted at release
        assert_eq!(b.pause_count.load(Ordering::Relaxed), 2);
        let report = b.report("blue", "green", true, None, Instant::now(), 0, 1);
        assert_eq!(report.pauses.count, 2);
        assert!(report.pauses.max_ms >= 15.0, "{report:?}");
    }
}
