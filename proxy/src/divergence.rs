//! What the mirror found: divergences (a mirrored unit whose outcome on the secondary
//! differs from the primary's: error vs ok, or row counts) and non-deterministic writes
//! (units calling volatile functions, whose effect can differ on the two sides even when
//! both succeed). Counted in total and per fingerprint; the most recent divergences are
//! kept, bounded, for the admin API.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::mirror::Outcome;

/// How many recent divergences are kept for the admin API.
const RECENT: usize = 100;

/// One mirrored unit whose outcomes differ.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    pub at_unix_ms: u64,
    pub session: u64,
    pub secondary: String,
    pub fingerprint: String,
    pub statement: String,
    pub primary: Outcome,
    pub secondary_outcome: Outcome,
}

impl Divergence {
    pub fn new(
        session: u64,
        secondary: &str,
        fingerprint: &str,
        statement: &str,
        primary: Outcome,
        secondary_outcome: Outcome,
    ) -> Self {
        Self {
            at_unix_ms: crate::clock::unix_ms(),
            session,
            secondary: secondary.to_owned(),
            fingerprint: fingerprint.to_owned(),
            statement: statement.to_owned(),
            primary,
            secondary_outcome,
        }
    }
}

/// Divergences seen since start.
#[derive(Default)]
pub struct Divergences {
    total: AtomicU64,
    recent: Mutex<VecDeque<Divergence>>,
    by_fingerprint: Mutex<HashMap<String, u64>>,
}

impl Divergences {
    pub fn record(&self, d: Divergence) {
        self.total.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            session = d.session,
            secondary = %d.secondary,
            fingerprint = %d.fingerprint,
            statement = %d.statement,
            primary = ?d.primary,
            secondary_outcome = ?d.secondary_outcome,
            "divergence: the secondary's outcome differs from the primary's"
        );
        if let Ok(mut m) = self.by_fingerprint.lock() {
            *m.entry(d.fingerprint.clone()).or_default() += 1;
        }
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == RECENT {
                r.pop_front();
            }
            r.push_back(d);
        }
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The most recent divergences, newest last.
    pub fn recent(&self) -> Vec<Divergence> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn by_fingerprint(&self) -> HashMap<String, u64> {
        self.by_fingerprint
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

/// Writes whose effect may differ on the two databases, by fingerprint.
#[derive(Default)]
pub struct NonDeterministic {
    seen: Mutex<HashMap<String, (u64, Vec<String>)>>,
}

impl NonDeterministic {
    /// Counts one more occurrence; returns true the first time a fingerprint is seen (so
    /// the caller logs it once, with the reason).
    pub fn record(&self, fingerprint: &str, reasons: &[String]) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        match seen.get_mut(fingerprint) {
            Some(entry) => {
                entry.0 += 1;
                false
            }
            None => {
                seen.insert(fingerprint.to_owned(), (1, reasons.to_vec()));
                true
            }
        }
    }

    /// Distinct statement fingerprints seen.
    pub fn len(&self) -> usize {
        self.seen.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fingerprint → (count, reasons).
    pub fn snapshot(&self) -> HashMap<String, (u64, Vec<String>)> {
        self.seen.lock().map(|m| m.clone()).unwrap_or_default()
    }
}
