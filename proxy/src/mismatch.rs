//! What shadow reads found: counters by result, mismatches by statement fingerprint, the
//! recent mismatches with their differing rows (for the admin API), and the JSON-lines
//! mismatch log (`shadow_reads.mismatch_log`).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use dashmap::DashMap;
use serde::Serialize;

use crate::diff::Difference;

/// Recent mismatches kept for the admin API.
const RECENT: usize = 100;
/// Fingerprints counted at most (a bound on memory against statement-shape churn).
const MAX_FINGERPRINTS: usize = 10_000;

/// Where a mismatch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its re-check.
    Pending,
    /// Still different when re-run on both: a real difference.
    Confirmed,
    /// Gone on re-check: a race with writes in flight (noise).
    Vanished,
    /// The re-check could not run or was inconclusive (see `recheck`).
    Unverified,
    /// Re-checks are off (`recheck_after_ms = 0` is "at once"; this is when no re-check
    /// could be scheduled at all).
    Unchecked,
}

/// One mismatch, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub id: u64,
    /// Unix time, milliseconds.
    pub at_ms: u64,
    pub session: u64,
    pub primary: String,
    pub secondary: String,
    pub fingerprint: String,
    pub statement: String,
    /// Bind parameters as text, only with `shadow_reads.log_parameters = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Option<String>>>,
    pub status: Status,
    /// What the re-check said, when it did not confirm or dismiss the mismatch plainly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recheck: Option<String>,
    pub difference: Difference,
}

/// Counts per statement fingerprint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FingerprintCounts {
    pub statement: String,
    pub mismatches: u64,
    pub confirmed: u64,
    pub vanished: u64,
}

/// Counters of shadow reads by result.
#[derive(Default)]
pub struct ShadowStats {
    /// Reads whose primary answer was captured and queued for the secondary.
    pub sampled: AtomicU64,
    /// Sampled reads the worker is done with (compared, skipped or failed).
    pub completed: AtomicU64,
    pub matched: AtomicU64,
    pub mismatched: AtomicU64,
    pub confirmed: AtomicU64,
    pub vanished: AtomicU64,
    pub unverified: AtomicU64,
    pub skipped: AtomicU64,
    /// Shadow reads that could not run (secondary connection lost mid-way).
    pub errors: AtomicU64,
    pub skipped_by_reason: DashMap<&'static str, u64>,
}

impl ShadowStats {
    pub fn skip(&self, reason: &'static str) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        *self.skipped_by_reason.entry(reason).or_default() += 1;
    }

    /// Share of settled mismatches that vanished on re-check: the measured noise.
    pub fn noise_rate(&self) -> Option<f64> {
        let v = self.vanished.load(Ordering::Relaxed) as f64;
        let c = self.confirmed.load(Ordering::Relaxed) as f64;
        (v + c > 0.0).then(|| v / (v + c))
    }
}

/// The store. See the module docs.
#[derive(Default)]
pub struct Mismatches {
    pub stats: ShadowStats,
    recent: Mutex<VecDeque<Mismatch>>,
    by_fingerprint: DashMap<String, FingerprintCounts>,
    next_id: AtomicU64,
    log: Mutex<Option<(PathBuf, std::fs::File)>>,
}

impl Mismatches {
    /// Records a new mismatch (its status `Pending` when a re-check follows) and returns
    /// its id.
    pub fn record(&self, mut m: Mismatch) -> u64 {
        m.id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        m.at_ms = crate::clock::unix_ms();
        self.stats.mismatched.fetch_add(1, Ordering::Relaxed);
        if self.by_fingerprint.len() < MAX_FINGERPRINTS
            || self.by_fingerprint.contains_key(&m.fingerprint)
        {
            self.by_fingerprint
                .entry(m.fingerprint.clone())
                .or_insert_with(|| FingerprintCounts {
                    statement: m.statement.clone(),
                    ..FingerprintCounts::default()
                })
                .mismatches += 1;
        }
        let id = m.id;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(m);
        id
    }

    /// Settles mismatch `id` after its re-check (or without one), counts it, and appends it
    /// to the mismatch log at `log_path`.
    pub fn settle(
        &self,
        id: u64,
        snapshot: Mismatch,
        status: Status,
        recheck: Option<String>,
        log_path: &Path,
    ) {
        let counter = match status {
            Status::Confirmed => &self.stats.confirmed,
            Status::Vanished => &self.stats.vanished,
            Status::Unverified | Status::Unchecked | Status::Pending => &self.stats.unverified,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(mut f) = self.by_fingerprint.get_mut(&snapshot.fingerprint) {
            match status {
                Status::Confirmed => f.confirmed += 1,
                Status::Vanished => f.vanished += 1,
                _ => {}
            }
        }
        let mut settled = snapshot;
        settled.status = status;
        settled.recheck = recheck;
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(m) = recent.iter_mut().find(|m| m.id == id) {
                m.status = settled.status;
                m.recheck = settled.recheck.clone();
            }
        }
        self.append_log(&settled, log_path);
    }

    fn append_log(&self, m: &Mismatch, path: &Path) {
        let Ok(mut line) = serde_json::to_vec(m) else {
            return;
        };
        line.push(b'\n');
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.as_ref().is_none_or(|(p, _)| p != path) {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => *log = Some((path.to_owned(), f)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open the shadow-read mismatch log");
                    *log = None;
                    return;
                }
            }
        }
        if let Some((_, f)) = log.as_mut() {
            if let Err(e) = f.write_all(&line) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the shadow-read mismatch log");
            }
        }
    }

    /// The most recent mismatches, newest first.
    pub fn recent(&self) -> Vec<Mismatch> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().rev().cloned().collect()
    }

    /// Counts by fingerprint, most mismatches first.
    pub fn by_fingerprint(&self) -> Vec<(String, FingerprintCounts)> {
        let mut v: Vec<(String, FingerprintCounts)> = self
            .by_fingerprint
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| {
            b.1.mismatches
                .cmp(&a.1.mismatches)
                .then_with(|| a.0.cmp(&b.0))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(fingerprint: &str) -> Mismatch {
        Mismatch {
            id: 0,
            at_ms: 0,
            session: 1,
            primary: "blue".into(),
            secondary: "green".into(),
            fingerprint: fingerprint.into(),
            statement: "SELECT $1".into(),
            parameters: None,
            status: Status::Pending,
            recheck: None,
            difference: Difference {
                kind: "rows",
                detail: "rows differ".into(),
                result: 0,
                columns: vec!["id".into()],
                primary_rows: vec![vec![Some("1".into())]],
                secondary_rows: vec![],
            },
        }
    }

    /// Settling updates the recent list, the per-fingerprint counts, the noise rate, and
    /// appends one JSON line per settled mismatch.
    #[test]
    fn settle_counts_and_logs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("m.jsonl");
        let store = Mismatches::default();
        let a = store.record(sample("f1"));
        let b = store.record(sample("f1"));
        let c = store.record(sample("f2"));
        store.settle(a, sample("f1"), Status::Confirmed, None, &log);
        store.settle(b, sample("f1"), Status::Vanished, None, &log);
        assert_eq!(store.recent()[0].id, c);
        assert_eq!(store.recent()[2].status, Status::Confirmed);
        assert_eq!(store.recent()[1].status, Status::Vanished);
        let counts = store.by_fingerprint();
        assert_eq!(counts[0].0, "f1");
        assert_eq!(
            (
                counts[0].1.mismatches,
                counts[0].1.confirmed,
                counts[0].1.vanished
            ),
            (2, 1, 1)
        );
        assert_eq!(store.stats.noise_rate(), Some(0.5));
        let text = std::fs::read_to_string(&log).expect("log written");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["status"], "confirmed");
        assert_eq!(lines[0]["difference"]["primary_rows"][0][0], "1");
        assert!(
            lines[0].get("parameters").is_none(),
            "parameters are left out unless enabled"
        );
    }
}
