//! `[upstreams.X]`: the two PostgreSQL servers, the one in use today and the one being
//! migrated to.
//!
//! Exactly two, because every session has one primary and one secondary; any names, kept in
//! the order the file lists them. Names are restricted to letters, digits, `_` and `-`
//! because they travel into metric labels, log fields, admin URLs and CLI arguments.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::check::{self, Ctx, Result};
use crate::error::{key_segment, quote, ConfigError};
use crate::secret::{self, PasswordSources};

/// libpq's default port, used when an upstream does not say.
pub const DEFAULT_PORT: u16 = 5432;
/// Default time allowed to open a connection to an upstream (TCP, TLS and authentication).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5000;

/// The two upstreams, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstreams {
    pair: [Upstream; 2],
}

impl Upstreams {
    /// The pair, for callers that build a configuration in code (tests). Refuses two
    /// upstreams with the same name, or that are the same database.
    pub fn new(first: Upstream, second: Upstream) -> Result<Upstreams> {
        if first.name == second.name {
            return Err(ConfigError::invalid(
                format!("upstreams.{}", key_segment(&second.name)),
                quote(&second.name),
                "a name different from the other upstream's",
            ));
        }
        check_distinct(&first, &second)?;
        Ok(Upstreams {
            pair: [first, second],
        })
    }

    /// The two names, in file order.
    pub fn names(&self) -> [&str; 2] {
        [&self.pair[0].name, &self.pair[1].name]
    }

    pub fn get(&self, name: &str) -> Option<&Upstream> {
        self.pair.iter().find(|u| u.name == name)
    }

    /// 0 or 1: the upstream's place in file order, for per-upstream arrays.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.pair.iter().position(|u| u.name == name)
    }

    /// The name of the upstream that is not `name`. For a name that is neither (which a
    /// validated config never produces), the first upstream.
    pub fn other(&self, name: &str) -> &str {
        if self.pair[0].name == name {
            &self.pair[1].name
        } else {
            &self.pair[0].name
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Upstream> {
        self.pair.iter()
    }
}

impl<'a> IntoIterator for &'a Upstreams {
    type Item = &'a Upstream;
    type IntoIter = std::slice::Iter<'a, Upstream>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One PostgreSQL server and how switchyard logs in to it.
///
/// `user`, `password` and `database` default to the client's: absent, switchyard connects as
/// the role the client named, with that user's configured password, to the database the
/// client asked for. Set them when the new server's roles or database names differ.
#[derive(Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    /// Host name or IP address (resolved by the proxy when it connects).
    pub host: String,
    /// Non-zero; defaults to 5432 like libpq.
    pub port: u16,
    pub user: Option<String>,
    /// Resolved from `password`, `password_env` or `password_file` at load.
    pub password: Option<String>,
    pub database: Option<String>,
    pub tls: UpstreamTls,
    /// PEM CA bundle to verify the server's certificate; required by `verify-full`.
    pub ca_file: Option<PathBuf>,
    /// Positive; covers TCP connect, TLS and authentication.
    pub connect_timeout_ms: u64,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| crate::Redacted))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .finish()
    }
}

/// TLS towards an upstream, with libpq's `sslmode` meanings (without `allow` and
/// `verify-ca`, which a proxy has no use for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Plaintext.
    #[default]
    Disable,
    /// TLS if the server offers it, plaintext otherwise; certificate not verified.
    Prefer,
    /// TLS or fail; certificate not verified (encryption against passive listeners only).
    Require,
    /// TLS, certificate chain verified against `ca_file` and host name checked.
    VerifyFull,
}

impl UpstreamTls {
    /// The spelling used in the config file (libpq's `sslmode`).
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamTls::Disable => "disable",
            UpstreamTls::Prefer => "prefer",
            UpstreamTls::Require => "require",
            UpstreamTls::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    host: Option<String>,
    port: Option<i64>,
    user: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    database: Option<String>,
    tls: Option<UpstreamTls>,
    ca_file: Option<String>,
    connect_timeout_ms: Option<i64>,
}

/// The `[upstreams]` table as parsed: each entry keeps its position in the text, because
/// the TOML map does not keep file order.
pub(crate) type RawUpstreams = std::collections::BTreeMap<String, toml::Spanned<RawUpstream>>;

pub(crate) fn build(raw: Option<RawUpstreams>, ctx: &Ctx<'_>) -> Result<Upstreams> {
    let mut entries: Vec<(String, toml::Spanned<RawUpstream>)> =
        raw.unwrap_or_default().into_iter().collect();
    entries.sort_by_key(|(_, raw)| raw.span().start);

    const EXPECTED: &str = "exactly two upstreams, e.g. [upstreams.blue] and \
        [upstreams.green]: the server in use today and the one being migrated to";
    if entries.is_empty() {
        return Err(ConfigError::missing("upstreams", EXPECTED));
    }
    if entries.len() != 2 {
        let names: Vec<String> = entries.iter().map(|(name, _)| key_segment(name)).collect();
        let count = match entries.len() {
            1 => "1 upstream".to_owned(),
            n => format!("{n} upstreams"),
        };
        return Err(ConfigError::invalid(
            "upstreams",
            format!("{count} ({})", names.join(", ")),
            EXPECTED,
        ));
    }
    let mut built = Vec::with_capacity(2);
    for (name, raw) in entries {
        built.push(raw.into_inner().build(name, ctx)?);
    }
    let second = built.pop().expect("two upstreams");
    let first = built.pop().expect("two upstreams");
    Upstreams::new(first, second)
}

impl RawUpstream {
    fn build(self, name: String, ctx: &Ctx<'_>) -> Result<Upstream> {
        let table = format!("upstreams.{}", key_segment(&name));
        let key = |k: &str| format!("{table}.{k}");

        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(ConfigError::invalid(
                &table,
                quote(&name),
                "an upstream name of 1 to 63 letters, digits, '_' or '-' (it is used in \
                 metrics, logs, URLs and CLI arguments)",
            ));
        }

        let host = match self.host {
            None => {
                return Err(ConfigError::missing(
                    key("host"),
                    "the PostgreSQL server's host name or IP address",
                ))
            }
            Some(host) if host.trim().is_empty() || host.chars().any(char::is_whitespace) => {
                return Err(ConfigError::invalid(
                    key("host"),
                    quote(&host),
                    "a host name or IP address",
                ))
            }
            Some(host) => host,
        };
        let port = check::integer(
            &key("port"),
            self.port,
            DEFAULT_PORT.into(),
            1..=65535,
            "a TCP port, an integer from 1 to 65535",
        )?;
        let port = u16::try_from(port).expect("range checked");

        let user = self
            .user
            .map(|u| {
                check::non_empty(
                    &key("user"),
                    u,
                    "a role name (or remove the key to use the client's)",
                )
            })
            .transpose()?;
        let database = self
            .database
            .map(|d| {
                check::non_empty(
                    &key("database"),
                    d,
                    "a database name (or remove the key to use the client's)",
                )
            })
            .transpose()?;

        let sources = PasswordSources {
            table: &table,
            password: self.password,
            password_env: self.password_env,
            password_file: self.password_file,
        };
        secret::at_most_one(
            &table,
            &sources.set_keys(),
            "at most one of password, password_env or password_file",
        )?;
        let password = sources.resolve(ctx)?;

        let tls = self.tls.unwrap_or_default();
        let ca_file = ctx.optional_path(&key("ca_file"), self.ca_file.as_deref())?;
        if tls == UpstreamTls::VerifyFull && ca_file.is_none() {
            return Err(ConfigError::missing(
                key("ca_file"),
                format!(
                    "a PEM file of the CA certificates to verify {name}'s certificate against, \
                     because {} = \"verify-full\" (switchyard does not fall back to the system's \
                     web roots; use tls = \"require\" to encrypt without verifying)",
                    key("tls")
                ),
            ));
        }
        let connect_timeout_ms = check::positive(
            &key("connect_timeout_ms"),
            self.connect_timeout_ms,
            DEFAULT_CONNECT_TIMEOUT_MS,
            "milliseconds",
        )?;

        Ok(Upstream {
            name,
            host,
            port,
            user,
            password,
            database,
            tls,
            ca_file,
            connect_timeout_ms,
        })
    }
}

/// Two upstreams that are one database would receive every mirrored write twice (once from
/// the client, once from the mirror), so the second must differ from the first in host, port
/// or database. This cannot see through aliases (`localhost` vs `127.0.0.1`); it catches the
/// copy-pasted table.
fn check_distinct(first: &Upstream, second: &Upstream) -> Result<()> {
    if first.host.eq_ignore_ascii_case(&second.host)
        && first.port == second.port
        && first.database == second.database
    {
        let table = format!("upstreams.{}", key_segment(&second.name));
        let db = second
            .database
            .as_deref()
            .map(|d| format!("/{d}"))
            .unwrap_or_default();
        return Err(ConfigError::invalid(
            table,
            quote(&format!("{}:{}{db}", second.host, second.port)),
            format!(
                "a different server or database than upstreams.{}: switchyard mirrors every \
                 write from one upstream to the other, so one database behind both would apply \
                 each write twice",
                key_segment(&first.name)
            ),
        ));
    }
    Ok(())
}
