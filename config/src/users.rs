//! `[[users]]`: who may connect to switchyard, and how they prove it.
//!
//! Client authentication is switchyard's own (the upstreams never see the client's
//! handshake), so every role an application connects as must be listed here. Names are
//! compared exactly as the client sends them in its StartupMessage, i.e. case-sensitively,
//! as PostgreSQL does.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;

use crate::check::{Ctx, Result};
use crate::error::{quote, ConfigError};
use crate::secret::{self, PasswordSources};

/// Longest role name PostgreSQL keeps (`NAMEDATALEN - 1` bytes); a longer name in a
/// StartupMessage is truncated by the server, so it could never be the role switchyard logs
/// in as upstream.
pub const MAX_NAME_BYTES: usize = 63;

/// A role that may connect to switchyard.
#[derive(Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub auth: AuthMethod,
    /// `None` only for `auth = "trust"` users configured without a password.
    pub secret: Option<UserSecret>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("auth", &self.auth)
            .field("secret", &self.secret)
            .finish()
    }
}

/// How a client proves it is `User::name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum AuthMethod {
    /// SASL SCRAM-SHA-256, PostgreSQL's default since 14.
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// The legacy `md5` challenge; needs the plain password, because the client's answer
    /// is salted with the user name and a per-connection salt.
    #[serde(rename = "md5")]
    Md5,
    /// No password asked. A password may still be configured: it is then only used to log in
    /// to upstreams that have no credentials of their own.
    #[serde(rename = "trust")]
    Trust,
}

impl AuthMethod {
    /// The spelling used in the config file (and in `pg_hba.conf`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Trust => "trust",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What switchyard checks a client's proof against.
#[derive(Clone, PartialEq, Eq)]
pub enum UserSecret {
    /// The plain password (from `password`, `password_env` or `password_file`). Works with
    /// every auth method, and lets switchyard log in upstream as the client.
    Password(String),
    /// A SCRAM-SHA-256 verifier in PostgreSQL's `pg_authid.rolpassword` format,
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (salt and keys in
    /// base64), as `SELECT rolpassword FROM pg_authid` prints it. Enough to authenticate a
    /// client, not to log in anywhere as it: upstreams then need their own `password`.
    ScramVerifier(String),
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSecret::Password(_) => f.debug_tuple("Password").field(&crate::Redacted).finish(),
            UserSecret::ScramVerifier(_) => f
                .debug_tuple("ScramVerifier")
                .field(&crate::Redacted)
                .finish(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    name: Option<String>,
    auth: Option<AuthMethod>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    scram: Option<String>,
}

const ONE_SECRET: &str = "exactly one of password, password_env, password_file or scram per user";

pub(crate) fn build(raw: Option<Vec<RawUser>>, ctx: &Ctx<'_>) -> Result<Vec<User>> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err(ConfigError::missing(
            "users",
            "at least one [[users]] entry with a name and a password: clients authenticate \
             against switchyard, so only listed users can connect",
        ));
    }
    let mut users: Vec<User> = Vec::with_capacity(raw.len());
    for (index, raw) in raw.into_iter().enumerate() {
        let table = format!("users[{index}]");
        let user = raw.build(&table, ctx)?;
        if let Some(first) = users.iter().position(|u| u.name == user.name) {
            return Err(ConfigError::invalid(
                format!("{table}.name"),
                quote(&user.name),
                format!("a name not already used by users[{first}] (user names must be unique)"),
            ));
        }
        users.push(user);
    }
    Ok(users)
}

impl RawUser {
    fn build(self, table: &str, ctx: &Ctx<'_>) -> Result<User> {
        let name = check_name(table, self.name)?;
        let auth = self.auth.unwrap_or_default();

        let sources = PasswordSources {
            table,
            password: self.password,
            password_env: self.password_env,
            password_file: self.password_file,
        };
        let mut set = sources.set_keys();
        if self.scram.is_some() {
            set.push("scram");
        }
        secret::at_most_one(table, &set, ONE_SECRET)?;

        let secret = match self.scram {
            Some(verifier) => {
                let key = format!("{table}.scram");
                check_scram_verifier(&verifier).map_err(|problem| {
                    ConfigError::invalid(&key, crate::REDACTED, scram_expected(problem))
                })?;
                if auth == AuthMethod::Md5 {
                    return Err(ConfigError::invalid(
                        format!("{table}.auth"),
                        quote(auth.as_str()),
                        "\"scram-sha-256\" or \"trust\" with a SCRAM verifier: md5 needs the plain \
                         password (use password, password_env or password_file)",
                    ));
                }
                Some(UserSecret::ScramVerifier(verifier))
            }
            None => sources.resolve(ctx)?.map(UserSecret::Password),
        };
        if secret.is_none() && auth != AuthMethod::Trust {
            return Err(ConfigError::missing(
                format!("{table}.password"),
                format!(
                    "a secret for auth = {}: one of password, password_env, password_file or \
                     scram (only auth = \"trust\" needs none)",
                    quote(auth.as_str())
                ),
            ));
        }
        Ok(User { name, auth, secret })
    }
}

fn check_name(table: &str, name: Option<String>) -> Result<String> {
    let key = format!("{table}.name");
    let Some(name) = name else {
        return Err(ConfigError::missing(
            key,
            "the PostgreSQL role name clients connect as",
        ));
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.contains('\0') {
        return Err(ConfigError::invalid(
            key,
            quote(&name),
            format!("a role name of 1 to {MAX_NAME_BYTES} bytes without NUL characters"),
        ));
    }
    Ok(name)
}

fn scram_expected(problem: &str) -> String {
    format!(
        "a SCRAM verifier \"SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>\" as stored \
         in pg_authid.rolpassword ({problem})"
    )
}

/// Checks the shape of a SCRAM-SHA-256 verifier: the mechanism prefix, a positive iteration
/// count, a non-empty base64 salt and two base64 keys of 32 bytes (SHA-256 outputs).
/// Returns what is wrong, in words that never quote the verifier.
pub(crate) fn check_scram_verifier(verifier: &str) -> std::result::Result<(), &'static str> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let rest = verifier
        .strip_prefix("SCRAM-SHA-256$")
        .ok_or("it does not start with \"SCRAM-SHA-256$\"")?;
    let (iter_salt, keys) = rest
        .split_once('$')
        .ok_or("the \"$\" before the keys is missing")?;
    let (iterations, salt) = iter_salt
        .split_once(':')
        .ok_or("the \":\" between iterations and salt is missing")?;
    match iterations.parse::<u32>() {
        Ok(n) if n > 0 && iterations.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err("the iteration count is not a positive integer"),
    }
    match b64.decode(salt) {
        Ok(salt) if !salt.is_empty() => {}
        _ => return Err("the salt is not non-empty base64"),
    }
    let (stored_key, server_key) = keys
        .split_once(':')
        .ok_or("the \":\" between StoredKey and ServerKey is missing")?;
    if b64.decode(stored_key).map(|k| k.len()) != Ok(32) {
        return Err("the StoredKey is not base64 of 32 bytes");
    }
    if b64.decode(server_key).map(|k| k.len()) != Ok(32) {
        return Err("the ServerKey is not base64 of 32 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_scram_verifier;

    /// The verifier PostgreSQL derives for password "app-secret" with salt
    /// "saltsaltsaltsalt" and 4096 iterations (computed with Python's hashlib/hmac).
    const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$\
        UeRKcq/ORPFIr8B85dUmQsXVXPvTGxhi3RO5tBVvefo=:\
        xCaIcANNs27ViTfrmSNrDxnYWGphKLNOAIsIBMYBuXw=";

    #[test]
    fn a_verifier_in_pg_authid_format_is_accepted() {
        assert_eq!(check_scram_verifier(VERIFIER), Ok(()));
    }

    #[test]
    fn each_malformed_part_of_a_verifier_is_named() {
        let cases = [
            (
                VERIFIER.replacen("SCRAM-SHA-256", "SCRAM-SHA-1", 1),
                "does not start",
            ),
            (VERIFIER.replacen("4096", "0", 1), "iteration count"),
            (VERIFIER.replacen("4096", "-1", 1), "iteration count"),
            (
                VERIFIER.replacen("4096:", "4096", 1),
                "between iterations and salt",
            ),
            (VERIFIER.replacen("c2FsdHNhbHRzYWx0c2FsdA==", "", 1), "salt"),
            (
                VERIFIER.replacen("c2FsdHNhbHRzYWx0c2FsdA==", "not base64!", 1),
                "salt",
            ),
            (VERIFIER.replacen("UeRKcq/O", "", 1), "StoredKey"),
            (VERIFIER.replacen("xCaIcANN", "", 1), "ServerKey"),
            (
                VERIFIER.replacen("=:", "=", 1),
                "between StoredKey and ServerKey",
            ),
            (VERIFIER.replacen("$UeR", "UeR", 1), "before the keys"),
        ];
        for (verifier, expected) in cases {
            let problem = check_scram_verifier(&verifier).expect_err(&verifier);
            assert!(problem.contains(expected), "{verifier}: {problem}");
        }
    }
}
