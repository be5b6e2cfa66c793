//! `[shadow_reads]`: a sample of reads also run on the secondary, and their results diffed.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::{self, Ctx, Result};
use crate::error::{quote, ConfigError};

pub const DEFAULT_RECHECK_AFTER_MS: u64 = 500;
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5000;
pub const DEFAULT_MAX_ROWS: u64 = 10_000;
pub const DEFAULT_MISMATCH_LOG: &str = "mismatches.jsonl";

/// Shadow reads and the normalisation of their results.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowReads {
    /// Share of read statements sampled, `0..=100`; 0 turns shadow reads off.
    pub percent: u8,
    /// Seed of the sampler; set it to make the sample reproducible (tests). Absent: seeded
    /// from the OS at start-up.
    pub seed: Option<u64>,
    /// A mismatch is re-run on both upstreams after this delay and only *confirmed* if it
    /// persists, which filters races with other sessions' in-flight mirrored writes. 0
    /// re-checks at once.
    pub recheck_after_ms: u64,
    /// Bound on a shadow read's run time on the secondary (its `statement_timeout`).
    /// Positive: a shadow read must never hold the secondary worker indefinitely.
    pub statement_timeout_ms: u64,
    /// Bound on the rows of one result that a shadow read compares, which bounds the memory
    /// and time a diff can take. Positive.
    pub max_rows: u64,
    /// Columns left out of the comparison: `"column"`, `"table.column"` or
    /// `"schema.table.column"`, each part possibly `*` (e.g. `"*.updated_at"`).
    pub ignore_columns: Vec<String>,
    /// Absolute tolerance for `float4`/`float8`/`numeric` values; 0 means exact. Finite and
    /// non-negative.
    pub float_tolerance: f64,
    /// JSON-lines report of mismatches. Resolved against the config file's directory.
    pub mismatch_log: PathBuf,
    /// Whether the report includes statement parameters (off: they may be personal data).
    pub log_parameters: bool,
}

impl Default for ShadowReads {
    fn default() -> Self {
        ShadowReads {
            percent: 0,
            seed: None,
            recheck_after_ms: DEFAULT_RECHECK_AFTER_MS,
            statement_timeout_ms: DEFAULT_STATEMENT_TIMEOUT_MS,
            max_rows: DEFAULT_MAX_ROWS,
            ignore_columns: Vec::new(),
            float_tolerance: 0.0,
            mismatch_log: PathBuf::from(DEFAULT_MISMATCH_LOG),
            log_parameters: false,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShadowReads {
    percent: Option<i64>,
    seed: Option<i64>,
    recheck_after_ms: Option<i64>,
    statement_timeout_ms: Option<i64>,
    max_rows: Option<i64>,
    ignore_columns: Option<Vec<String>>,
    float_tolerance: Option<f64>,
    mismatch_log: Option<String>,
    log_parameters: Option<bool>,
}

impl RawShadowReads {
    pub(crate) fn build(self, ctx: &Ctx<'_>) -> Result<ShadowReads> {
        let seed = match self.seed {
            None => None,
            Some(seed) => Some(check::non_negative(
                "shadow_reads.seed",
                Some(seed),
                0,
                "a seed",
            )?),
        };
        let ignore_columns = self.ignore_columns.unwrap_or_default();
        for (i, pattern) in ignore_columns.iter().enumerate() {
            let parts: Vec<&str> = pattern.split('.').collect();
            let bad = parts.len() > 3
                || parts
                    .iter()
                    .any(|p| p.is_empty() || p.chars().any(char::is_whitespace));
            if bad {
                return Err(ConfigError::invalid(
                    format!("shadow_reads.ignore_columns[{i}]"),
                    quote(pattern),
                    "\"column\", \"table.column\" or \"schema.table.column\", each part a name \
                     or * (e.g. \"*.updated_at\")",
                ));
            }
        }
        Ok(ShadowReads {
            percent: check::percent("shadow_reads.percent", self.percent, 0)?,
            seed,
            recheck_after_ms: check::non_negative(
                "shadow_reads.recheck_after_ms",
                self.recheck_after_ms,
                DEFAULT_RECHECK_AFTER_MS,
                "milliseconds",
            )?,
            statement_timeout_ms: check::positive(
                "shadow_reads.statement_timeout_ms",
                self.statement_timeout_ms,
                DEFAULT_STATEMENT_TIMEOUT_MS,
                "milliseconds",
            )?,
            max_rows: check::positive(
                "shadow_reads.max_rows",
                self.max_rows,
                DEFAULT_MAX_ROWS,
                "rows",
            )?,
            ignore_columns,
            float_tolerance: check::float(
                "shadow_reads.float_tolerance",
                self.float_tolerance,
                0.0,
                0.0,
                f64::MAX,
                "a finite, non-negative number (0 compares floats exactly)",
            )?,
            mismatch_log: ctx.path(
                "shadow_reads.mismatch_log",
                self.mismatch_log.as_deref().unwrap_or(DEFAULT_MISMATCH_LOG),
            )?,
            log_parameters: self.log_parameters.unwrap_or(false),
        })
    }
}
