//! Secrets from where the config says they are: inline (`password`), an environment variable
//! (`password_env`, `token_env`) or a file (`password_file`).
//!
//! Secrets are resolved once, at load (and at each reload), so that a missing variable or
//! unreadable file rejects the config up front instead of failing the first login. Errors
//! name the variable or the file, never the secret.

use std::env::VarError;

use crate::check::{Ctx, Result};
use crate::error::{quote, ConfigError};

/// Where a password comes from, as written in a `[[users]]` entry or an `[upstreams.X]` table.
pub(crate) struct PasswordSources<'a> {
    /// Dotted prefix of the table (`users[0]`, `upstreams.blue`).
    pub table: &'a str,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

impl PasswordSources<'_> {
    /// The names (`password`, `password_env`, `password_file`) that are set, in that order.
    pub fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.password.is_some() {
            keys.push("password");
        }
        if self.password_env.is_some() {
            keys.push("password_env");
        }
        if self.password_file.is_some() {
            keys.push("password_file");
        }
        keys
    }

    /// The password, read from whichever source is set. The caller has checked that at most
    /// one is.
    pub fn resolve(self, ctx: &Ctx<'_>) -> Result<Option<String>> {
        let table = self.table;
        if let Some(password) = self.password {
            return check_password(&format!("{table}.password"), password).map(Some);
        }
        if let Some(var) = self.password_env {
            let key = format!("{table}.password_env");
            let password = env_secret(ctx, &key, &var, "the password")?;
            return check_password(&key, password).map(Some);
        }
        if let Some(file) = self.password_file {
            let key = format!("{table}.password_file");
            return read_password_file(ctx, &key, &file).map(Some);
        }
        Ok(None)
    }
}

/// Errors when more than one of `keys` (already the set ones, in file-documented order) is
/// set on `table`.
pub(crate) fn at_most_one(table: &str, keys: &[&str], expected: &str) -> Result<()> {
    match keys {
        [first, second, ..] => Err(ConfigError::Conflict {
            key: format!("{table}.{first}"),
            other: format!("{table}.{second}"),
            expected: expected.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The value of environment variable `var`, which must be set and non-empty: an empty
/// secret is as good as none, and PostgreSQL itself refuses empty passwords.
pub(crate) fn env_secret(ctx: &Ctx<'_>, key: &str, var: &str, holds: &str) -> Result<String> {
    if var.is_empty() || var.contains(['=', '\0']) {
        return Err(ConfigError::invalid(
            key,
            quote(var),
            "the name of an environment variable",
        ));
    }
    let problem = match (ctx.env)(var) {
        Ok(value) if !value.is_empty() => return Ok(value),
        Ok(_) => format!("environment variable {var} is empty (expected it to hold {holds})"),
        Err(VarError::NotPresent) => {
            format!("environment variable {var} is not set (expected it to hold {holds})")
        }
        Err(VarError::NotUnicode(_)) => {
            format!("environment variable {var} is not valid UTF-8 (expected it to hold {holds})")
        }
    };
    Err(ConfigError::Secret {
        key: key.to_owned(),
        value: quote(var),
        problem,
    })
}

/// A password file holds the password alone; one trailing line ending (`\n` or `\r\n`, as
/// editors and `echo` leave them) is not part of it. Anything else that would make the file
/// not "one password" is refused rather than guessed at.
fn read_password_file(ctx: &Ctx<'_>, key: &str, raw: &str) -> Result<String> {
    let path = ctx.path(key, raw)?;
    let secret_error = |problem: String| ConfigError::Secret {
        key: key.to_owned(),
        value: quote(&path.display().to_string()),
        problem,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|err| secret_error(format!("cannot read the password file: {err}")))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(secret_error(
            "the file is empty (expected the password)".into(),
        ));
    }
    if password.contains(['\n', '\r']) {
        return Err(secret_error(
            "the file has more than one line (expected the password alone)".into(),
        ));
    }
    check_password(key, password.to_owned())
}

/// A password must be non-empty (PostgreSQL refuses empty passwords) and free of NUL bytes
/// (the wire protocol's password message is NUL-terminated, so no client could send it).
fn check_password(key: &str, password: String) -> Result<String> {
    if password.is_empty() {
        return Err(ConfigError::invalid(key, "\"\"", "a non-empty password"));
    }
    if password.contains('\0') {
        return Err(ConfigError::invalid(
            key,
            "<redacted>",
            "a password without NUL characters (the wire protocol cannot carry them)",
        ));
    }
    Ok(password)
}
