//! `[limits]`: bounds that protect switchyard from its clients.

use serde::Deserialize;

use crate::check::{self, Result};

pub const DEFAULT_MAX_CLIENTS: usize = 1000;
/// 64 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Smallest accepted `max_message_bytes`: below this, ordinary startup packets and queries
/// would be refused.
pub const MIN_MESSAGE_BYTES: usize = 1024;
/// Largest accepted `max_message_bytes`: 1 GiB, PostgreSQL's own limit on a field value
/// (`MaxAllocSize`), so nothing a server accepts is ever refused by the proxy in front of it.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024 * 1024;
pub const DEFAULT_STARTUP_TIMEOUT_MS: u64 = 10_000;

/// Resource bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent client connections; positive. (PostgreSQL's own answer past its limit is
    /// SQLSTATE 53300, too_many_connections.)
    pub max_clients: usize,
    /// Largest message (tag excluded, length word included) accepted from a client or an
    /// upstream, in bytes, `1024..=1 GiB`.
    pub max_message_bytes: usize,
    /// Time a client has from connecting to completing authentication (like PostgreSQL's
    /// `authentication_timeout`); positive.
    pub startup_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: DEFAULT_MAX_CLIENTS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            startup_timeout_ms: DEFAULT_STARTUP_TIMEOUT_MS,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    max_clients: Option<i64>,
    max_message_bytes: Option<i64>,
    startup_timeout_ms: Option<i64>,
}

impl RawLimits {
    pub(crate) fn build(self) -> Result<Limits> {
        let max_message_bytes = check::integer(
            "limits.max_message_bytes",
            self.max_message_bytes,
            DEFAULT_MAX_MESSAGE_BYTES as u64,
            MIN_MESSAGE_BYTES as u64..=MAX_MESSAGE_BYTES as u64,
            "a size in bytes from 1024 to 1073741824 (1 GiB)",
        )?;
        Ok(Limits {
            max_clients: check::positive_usize(
                "limits.max_clients",
                self.max_clients,
                DEFAULT_MAX_CLIENTS,
                "connections",
            )?,
            max_message_bytes: usize::try_from(max_message_bytes).expect("at most 1 GiB"),
            startup_timeout_ms: check::positive(
                "limits.startup_timeout_ms",
                self.startup_timeout_ms,
                DEFAULT_STARTUP_TIMEOUT_MS,
                "milliseconds",
            )?,
        })
    }
}
