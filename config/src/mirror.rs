//! `[mirror]`: the ordered, asynchronous replay of each session's writes on its secondary.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::{self, Ctx, Result};
use crate::error::{quote, ConfigError};

pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;
pub const DEFAULT_JOURNAL_DIR: &str = "journal";

/// Mirroring of writes onto the secondary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Off: sessions open no secondary connection; no mirroring, no shadow reads, and a
    /// cutover then has nothing to drain (the operator takes responsibility for the other
    /// database being current).
    pub enabled: bool,
    /// Statements a session may have waiting for its secondary before it switches to
    /// journaling. Positive: this is the per-session memory bound.
    pub queue_capacity: usize,
    /// Where writes that could not be mirrored live are journaled. Resolved against the
    /// config file's directory (default `<config dir>/journal`).
    pub journal_dir: PathBuf,
    /// Functions that do not write, so that `SELECT f(...)` is classified as a read (by
    /// default any call of a function that is not built-in and known read-only is a write).
    /// Written as in SQL, optionally schema-qualified (`pricing.quote`).
    pub read_only_functions: Vec<String>,
}

impl Default for Mirror {
    fn default() -> Self {
        Mirror {
            enabled: true,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            journal_dir: PathBuf::from(DEFAULT_JOURNAL_DIR),
            read_only_functions: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMirror {
    enabled: Option<bool>,
    queue_capacity: Option<i64>,
    journal_dir: Option<String>,
    read_only_functions: Option<Vec<String>>,
}

impl RawMirror {
    pub(crate) fn build(self, ctx: &Ctx<'_>) -> Result<Mirror> {
        let read_only_functions = self.read_only_functions.unwrap_or_default();
        for (i, function) in read_only_functions.iter().enumerate() {
            let bad = function.is_empty()
                || function.chars().any(|c| c.is_whitespace() || c == '(')
                || function.split('.').any(str::is_empty);
            if bad {
                return Err(ConfigError::invalid(
                    format!("mirror.read_only_functions[{i}]"),
                    quote(function),
                    "a function name, optionally schema-qualified, without arguments \
                     (e.g. \"pricing.quote\")",
                ));
            }
        }
        Ok(Mirror {
            enabled: self.enabled.unwrap_or(true),
            queue_capacity: check::positive_usize(
                "mirror.queue_capacity",
                self.queue_capacity,
                DEFAULT_QUEUE_CAPACITY,
                "statements per session",
            )?,
            journal_dir: ctx.path(
                "mirror.journal_dir",
                self.journal_dir.as_deref().unwrap_or(DEFAULT_JOURNAL_DIR),
            )?,
            read_only_functions,
        })
    }
}
