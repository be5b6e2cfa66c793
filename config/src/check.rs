//! Small validators shared by the sections: each takes the dotted key, the raw value from the
//! file (absent when the key was not written) and the default, and returns the typed value or
//! an error naming key, value and expectation.
//!
//! Integers are read from the file as `i64` (TOML's only integer type) and narrowed here, so
//! that `port = 70000` or `canary_percent = -5` gets our message ("expected a TCP port, an
//! integer from 1 to 65535") instead of serde's "expected u16".

use std::env::VarError;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::error::{quote, ConfigError};

pub(crate) type Result<T> = std::result::Result<T, ConfigError>;

/// Reads an environment variable; `std::env::var` in production, a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> std::result::Result<String, VarError>;

/// What resolving a section may need from outside the TOML text.
pub(crate) struct Ctx<'a> {
    /// Directory relative paths are resolved against (the config file's directory).
    pub base_dir: &'a Path,
    pub env: EnvLookup<'a>,
}

impl Ctx<'_> {
    /// `path` as written in the file, made relative to the config file's directory unless
    /// it is absolute.
    pub fn path(&self, key: &str, raw: &str) -> Result<PathBuf> {
        if raw.is_empty() {
            return Err(ConfigError::invalid(
                key,
                quote(raw),
                "a file or directory path",
            ));
        }
        Ok(self.base_dir.join(raw))
    }

    pub fn optional_path(&self, key: &str, raw: Option<&str>) -> Result<Option<PathBuf>> {
        raw.map(|raw| self.path(key, raw)).transpose()
    }
}

/// An integer in `range` (inclusive), or `default` when absent.
pub(crate) fn integer(
    key: &str,
    raw: Option<i64>,
    default: u64,
    range: RangeInclusive<u64>,
    expected: &str,
) -> Result<u64> {
    let Some(raw) = raw else { return Ok(default) };
    match u64::try_from(raw) {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(ConfigError::invalid(key, raw.to_string(), expected)),
    }
}

/// A percentage, `0..=100`.
pub(crate) fn percent(key: &str, raw: Option<i64>, default: u8) -> Result<u8> {
    let value = integer(
        key,
        raw,
        default.into(),
        0..=100,
        "a percentage, an integer from 0 to 100",
    )?;
    Ok(u8::try_from(value).expect("range checked above"))
}

/// A duration or count that may be zero.
pub(crate) fn non_negative(key: &str, raw: Option<i64>, default: u64, unit: &str) -> Result<u64> {
    integer(
        key,
        raw,
        default,
        0..=u64::MAX,
        &format!("a non-negative integer ({unit})"),
    )
}

/// A duration or count that must be at least one (a zero timeout or capacity would make the
/// feature unusable rather than disabled).
pub(crate) fn positive(key: &str, raw: Option<i64>, default: u64, unit: &str) -> Result<u64> {
    integer(
        key,
        raw,
        default,
        1..=u64::MAX,
        &format!("a positive integer ({unit})"),
    )
}

pub(crate) fn positive_usize(
    key: &str,
    raw: Option<i64>,
    default: usize,
    unit: &str,
) -> Result<usize> {
    let value = positive(key, raw, default as u64, unit)?;
    usize::try_from(value).map_err(|_| {
        ConfigError::invalid(
            key,
            value.to_string(),
            format!("a smaller integer ({unit})"),
        )
    })
}

/// A finite float in `[min, max]`.
pub(crate) fn float(
    key: &str,
    raw: Option<f64>,
    default: f64,
    min: f64,
    max: f64,
    expected: &str,
) -> Result<f64> {
    let Some(value) = raw else { return Ok(default) };
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(key, value.to_string(), expected))
    }
}

/// A listen address: an IP address and a port, as `SocketAddr` parses it. Host names are
/// refused rather than resolved, because a name that resolves to several addresses would
/// make "which interface does switchyard listen on" depend on DNS at start-up. Port 0 is
/// allowed (the OS picks a free port; the test harness relies on it).
///
/// Returned in `SocketAddr`'s canonical spelling, so that `restart_required` does not
/// report a change between two spellings of the same address.
pub(crate) fn socket_addr(key: &str, raw: Option<&str>, default: &str) -> Result<String> {
    let raw = raw.unwrap_or(default);
    raw.parse::<SocketAddr>()
        .map(|addr| addr.to_string())
        .map_err(|_| {
            ConfigError::invalid(
                key,
                quote(raw),
                "an IP address and port such as \"127.0.0.1:6432\" or \"[::1]:6432\" \
             (host names are not resolved)",
            )
        })
}

/// A string that must not be empty.
pub(crate) fn non_empty(key: &str, raw: String, expected: &str) -> Result<String> {
    if raw.trim().is_empty() {
        Err(ConfigError::invalid(key, quote(&raw), expected))
    } else {
        Ok(raw)
    }
}
