//! `[logging]`: how switchyard's own logs look.

use std::fmt;

use serde::Deserialize;

use crate::check::{self, Result};

pub const DEFAULT_LEVEL: &str = "info";

/// Log output settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    pub format: LogFormat,
    /// A `tracing` filter directive: a level (`trace`, `debug`, `info`, `warn`, `error`) or
    /// per-module directives (`info,switchyard::mirror=debug`). Checked here only for being
    /// non-empty; the proxy parses it (and rejects the config if it does not parse). The
    /// `RUST_LOG` environment variable, when set, is for the proxy to honour or not.
    pub level: String,
    /// Whether statement parameters may appear in logs. Off: they may be personal data.
    pub log_parameters: bool,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            format: LogFormat::Human,
            level: DEFAULT_LEVEL.to_owned(),
            log_parameters: false,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event, for terminals.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    format: Option<LogFormat>,
    level: Option<String>,
    log_parameters: Option<bool>,
}

impl RawLogging {
    pub(crate) fn build(self) -> Result<Logging> {
        let level = match self.level {
            None => DEFAULT_LEVEL.to_owned(),
            Some(level) => check::non_empty(
                "logging.level",
                level,
                "a tracing filter such as \"info\" or \"info,switchyard::mirror=debug\"",
            )?,
        };
        Ok(Logging {
            format: self.format.unwrap_or_default(),
            level,
            log_parameters: self.log_parameters.unwrap_or(false),
        })
    }
}
