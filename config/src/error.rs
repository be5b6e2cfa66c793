//! Errors from loading a configuration.
//!
//! A config is rejected as a whole (at start-up, by `check-config`, or on reload, when the
//! running config stays), so the one error we report must let the operator fix the file
//! without guessing: every variant names the dotted key (`upstreams.green.port`,
//! `users[1].auth`), the offending value and what was expected. Errors reported by the TOML
//! parser keep their line and column.
//!
//! Secrets never appear in an error: a bad password, token or SCRAM verifier is shown as
//! `<redacted>`, environment variables and files by their *name*, never their content.
//!
//! Loading stops at the first error (in file order, section by section): errors that
//! follow one mistake are often consequences of it, and one precise message is easier to act
//! on than a list.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration was rejected. `Display` is the operator-facing message.
///
/// `Clone` and `PartialEq` so that the proxy can keep the last reload error in its status and
/// compare it; I/O failures are therefore carried as text, not as `std::io::Error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The config file itself could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read config file {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },

    /// The TOML parser rejected the text: bad syntax, an unknown key, a value of the wrong
    /// type or an unknown enum value. `key` is the dotted path where it was found (absent for
    /// pure syntax errors, which happen before there is a key).
    #[error("{}", ParseDisplay { key: key.as_deref(), location: *location, message })]
    Parse {
        key: Option<String>,
        location: Option<Location>,
        message: String,
    },

    /// A value is present but not acceptable.
    #[error("{key} = {value}: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },

    /// A required key is absent.
    #[error("{key} is missing: expected {expected}")]
    Missing { key: String, expected: String },

    /// Two keys that exclude each other are both set.
    #[error("{key} and {other} are both set: expected {expected}")]
    Conflict {
        key: String,
        other: String,
        expected: String,
    },

    /// A secret could not be resolved from where the config says it is (an unset
    /// environment variable, an unreadable or empty file). `value` is the variable's name or
    /// the file's path, never the secret.
    #[error("{key} = {value}: {problem}")]
    Secret {
        key: String,
        value: String,
        problem: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Parse { key, .. } => key.as_deref(),
            ConfigError::Invalid { key, .. }
            | ConfigError::Missing { key, .. }
            | ConfigError::Conflict { key, .. }
            | ConfigError::Secret { key, .. } => Some(key),
        }
    }

    pub(crate) fn invalid(
        key: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }

    pub(crate) fn missing(key: impl Into<String>, expected: impl Into<String>) -> Self {
        ConfigError::Missing {
            key: key.into(),
            expected: expected.into(),
        }
    }

    /// Turns an error of the TOML deserializer, with the key path serde tracked, into a
    /// `Parse` error that says where in `text` it happened.
    pub(crate) fn from_toml(err: serde_path_to_error::Error<toml::de::Error>, text: &str) -> Self {
        let key = key_path(err.path());
        let inner = err.into_inner();
        ConfigError::Parse {
            key: (!key.is_empty()).then_some(key),
            location: inner.span().map(|span| Location::of(text, span.start)),
            message: operator_wording(inner.message()),
        }
    }

    /// A syntax error, found before any key could be attached to it.
    pub(crate) fn from_syntax(err: toml::de::Error, text: &str) -> Self {
        ConfigError::Parse {
            key: None,
            location: err.span().map(|span| Location::of(text, span.start)),
            message: err.message().to_owned(),
        }
    }
}

/// A 1-based line and column (in characters) in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    fn of(text: &str, offset: usize) -> Location {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

struct ParseDisplay<'a> {
    key: Option<&'a str>,
    location: Option<Location>,
    message: &'a str,
}

impl fmt::Display for ParseDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key, self.location) {
            (Some(key), Some(at)) => write!(f, "{key} ({at}): {}", self.message),
            (Some(key), None) => write!(f, "{key}: {}", self.message),
            (None, Some(at)) => write!(f, "invalid TOML at {at}: {}", self.message),
            (None, None) => write!(f, "invalid TOML: {}", self.message),
        }
    }
}

/// The dotted path of a serde error, in the spelling of our other errors
/// (`upstreams.blue.port`, `users[1].auth`).
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            // `toml::Spanned` (used to keep the file order of upstreams) shows up as a
            // private field; it is not a key the operator wrote.
            Segment::Map { key } if key.starts_with("$__serde_spanned_private") => {}
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key_segment(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// A key as it must be written in a dotted TOML path: bare when it can be, quoted otherwise.
pub(crate) fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        quote(key)
    }
}

/// A string value as TOML would spell it, for error messages.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// serde speaks Rust (struct "fields", enum "variants", `i64`, `struct RawListen`); the
/// operator wrote TOML keys, values, integers and tables.
fn operator_wording(message: &str) -> String {
    let mut out = message
        .replacen("unknown field", "unknown key", 1)
        .replacen("unknown variant", "unknown value", 1)
        .replacen("floating point", "float", 1);
    for (rust, toml) in [
        ("expected struct ", "expected a table"),
        ("expected enum ", "expected a string"),
    ] {
        if let Some(at) = out.find(rust) {
            // Drop the Rust type name that follows.
            let name_end = out[at + rust.len()..]
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .map_or(out.len(), |end| at + rust.len() + end);
            out.replace_range(at..name_end, toml);
        }
    }
    for (rust, toml) in [
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
    ] {
        out = out.replacen(rust, toml, 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Location::of(text, 0), Location { line: 1, column: 1 });
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(Location::of(text, 6 + 6), Location { line: 2, column: 6 });
    }

    #[test]
    fn serde_wording_is_translated_into_toml_terms() {
        assert_eq!(
            operator_wording("invalid type: integer `3`, expected struct RawListen"),
            "invalid type: integer `3`, expected a table"
        );
        assert_eq!(
            operator_wording("invalid type: integer `3`, expected enum ListenTls"),
            "invalid type: integer `3`, expected a string"
        );
        assert_eq!(
            operator_wording("invalid type: string \"1\", expected i64"),
            "invalid type: string \"1\", expected an integer"
        );
        assert_eq!(
            operator_wording("unknown field `foo`, expected `address` or `tls`"),
            "unknown key `foo`, expected `address` or `tls`"
        );
    }

    #[test]
    fn keys_that_are_not_bare_are_quoted() {
        assert_eq!(key_segment("blue"), "blue");
        assert_eq!(key_segment("blue green"), "\"blue green\"");
        assert_eq!(key_segment(""), "\"\"");
    }
}
