//! The configuration as an operator meets it: the documented example, the defaults, the
//! errors a mistake produces, secrets, the routing function and what a reload may change.

mod defaults;
mod example;
mod redaction;
mod reload;
mod routing;
mod secrets;
mod unknown_keys;
mod validation;

use std::collections::HashMap;
use std::env::VarError;
use std::path::Path;

use switchyard_config::{Config, ConfigError};

/// The smallest valid config: one user, two upstreams, a primary.
pub const MINIMAL: &str = r#"
[[users]]
name = "app"
password = "app-secret"

[upstreams.blue]
host = "127.0.0.1"
port = 5432

[upstreams.green]
host = "127.0.0.1"
port = 5433

[routing]
primary = "blue"
"#;

/// Where the configs of these tests pretend to live.
pub const BASE_DIR: &str = "/etc/switchyard";

/// Parses `text` with an empty environment.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_env(text, &[])
}

/// Parses `text` with exactly the environment variables `vars`.
pub fn parse_with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |var: &str| env.get(var).cloned().ok_or(VarError::NotPresent);
    Config::from_toml_str_with_env(text, Path::new(BASE_DIR), &lookup)
}

/// The error `text` is rejected with; panics (with the config) if it is accepted.
pub fn rejected(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("config was accepted: {config:#?}\n--- text ---\n{text}"),
        Err(err) => err,
    }
}

/// `MINIMAL` with `line` added to the table `header` (created at the end when absent).
/// For `[[users]]` the line goes into the first (only) user.
pub fn minimal_with(header: &str, line: &str) -> String {
    match MINIMAL.find(&format!("{header}\n")) {
        Some(at) => {
            let end = at + header.len() + 1;
            format!("{}{line}\n{}", &MINIMAL[..end], &MINIMAL[end..])
        }
        None => format!("{MINIMAL}\n{header}\n{line}\n"),
    }
}

/// `MINIMAL` with the line starting with `prefix` replaced by `line` (removed when empty).
pub fn minimal_replacing(prefix: &str, line: &str) -> String {
    let mut found = false;
    let out: Vec<&str> = MINIMAL
        .lines()
        .filter_map(|l| {
            if !found && l.starts_with(prefix) {
                found = true;
                (!line.is_empty()).then_some(line)
            } else {
                Some(l)
            }
        })
        .collect();
    assert!(found, "no line starting with {prefix:?} in MINIMAL");
    out.join("\n")
}

/// Asserts that `err` is about `key` and that its message shows `value` and `expected`.
#[track_caller]
pub fn assert_names(err: &ConfigError, key: &str, value: &str, expected: &str) {
    let message = err.to_string();
    assert_eq!(err.key(), Some(key), "wrong key in: {message}");
    assert!(message.contains(key), "key {key:?} not in: {message}");
    assert!(message.contains(value), "value {value:?} not in: {message}");
    assert!(
        message.contains(expected),
        "expectation {expected:?} not in: {message}"
    );
}
