//! `[guard]`: automatic flip-back when the upstream answering sessions misbehaves.

use serde::Deserialize;

use crate::check::{self, Result};

pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.05;
pub const DEFAULT_MIN_STATEMENTS: u64 = 100;
pub const DEFAULT_WINDOW_S: u64 = 60;

/// Thresholds of the automatic flip-back.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    /// Off by default: reverting routing on its own is something an operator opts into.
    pub enabled: bool,
    /// Share of statements answered with an error, over the window, above which routing
    /// reverts to the last known-good primary. In `[0, 1]`.
    pub max_error_rate: f64,
    /// Statements the window must hold before the rate is judged, so that two errors out of
    /// three statements just after a cutover do not trigger it.
    pub min_statements: u64,
    /// Length of the sliding window, in seconds. Positive.
    pub window_s: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            enabled: false,
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            min_statements: DEFAULT_MIN_STATEMENTS,
            window_s: DEFAULT_WINDOW_S,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuard {
    enabled: Option<bool>,
    max_error_rate: Option<f64>,
    min_statements: Option<i64>,
    window_s: Option<i64>,
}

impl RawGuard {
    pub(crate) fn build(self) -> Result<Guard> {
        Ok(Guard {
            enabled: self.enabled.unwrap_or(false),
            max_error_rate: check::float(
                "guard.max_error_rate",
                self.max_error_rate,
                DEFAULT_MAX_ERROR_RATE,
                0.0,
                1.0,
                "a fraction between 0 and 1 (0.05 is 5% of statements)",
            )?,
            min_statements: check::non_negative(
                "guard.min_statements",
                self.min_statements,
                DEFAULT_MIN_STATEMENTS,
                "statements",
            )?,
            window_s: check::positive(
                "guard.window_s",
                self.window_s,
                DEFAULT_WINDOW_S,
                "seconds",
            )?,
        })
    }
}
