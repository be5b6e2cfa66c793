//! `[listen]` (where clients connect) and `[admin]` (the HTTP admin API and metrics).
//!
//! Both bind sockets, so neither can change on a live reload: see
//! [`Config::restart_required`](crate::Config::restart_required).

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::check::{self, Ctx, Result};
use crate::error::{quote, ConfigError};
use crate::secret;

/// Default client listen address: localhost, PgBouncer's port, so that a proxy started
/// without thinking about it is not reachable from the network.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:6432";
/// Default admin API address: localhost only.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9187";

/// Where switchyard accepts PostgreSQL clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Listen {
    /// `ip:port`, validated as a `SocketAddr` and kept in its canonical spelling.
    pub address: String,
    pub tls: ListenTls,
    /// PEM certificate chain; required by `allow` and `require`. Resolved against the config
    /// file's directory.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; required by `allow` and `require`.
    pub tls_key: Option<PathBuf>,
    /// Threads that run client sessions, `1..=MAX_THREADS`; `None` (key absent or `0`):
    /// one per CPU core the process may use.
    pub threads: Option<usize>,
}

/// Largest accepted `listen.threads`.
pub const MAX_THREADS: usize = 1024;

impl Default for Listen {
    fn default() -> Self {
        Listen {
            address: DEFAULT_LISTEN_ADDRESS.to_owned(),
            tls: ListenTls::Disable,
            tls_cert: None,
            tls_key: None,
            threads: None,
        }
    }
}

/// Client-side TLS. The names follow what a PostgreSQL client sees, not libpq's `sslmode`
/// (which is the client's half).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenTls {
    /// Answer every SSLRequest with `N`; clients with `sslmode=require` cannot connect.
    #[default]
    Disable,
    /// TLS when the client asks for it (SSLRequest), plaintext otherwise.
    Allow,
    /// Clients must ask for TLS; a plaintext StartupMessage is refused.
    Require,
}

impl ListenTls {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenTls::Disable => "disable",
            ListenTls::Allow => "allow",
            ListenTls::Require => "require",
        }
    }
}

impl fmt::Display for ListenTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The admin HTTP API (`/status`, `/metrics`, `POST /reload`, …).
#[derive(Clone, PartialEq)]
pub struct Admin {
    pub address: String,
    /// Name of the environment variable that holds the bearer token, as written.
    pub token_env: Option<String>,
    /// The bearer token read from `token_env` at load. When set, mutating endpoints require
    /// it; when absent they are open, which is why the admin API binds localhost by default.
    pub token: Option<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: DEFAULT_ADMIN_ADDRESS.to_owned(),
            token_env: None,
            token: None,
        }
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("address", &self.address)
            .field("token_env", &self.token_env)
            .field("token", &self.token.as_ref().map(|_| crate::Redacted))
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    address: Option<String>,
    tls: Option<ListenTls>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    threads: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    address: Option<String>,
    token_env: Option<String>,
}

impl RawListen {
    pub(crate) fn build(self, ctx: &Ctx<'_>) -> Result<Listen> {
        let address = check::socket_addr(
            "listen.address",
            self.address.as_deref(),
            DEFAULT_LISTEN_ADDRESS,
        )?;
        let tls = self.tls.unwrap_or_default();
        let tls_cert = ctx.optional_path("listen.tls_cert", self.tls_cert.as_deref())?;
        let tls_key = ctx.optional_path("listen.tls_key", self.tls_key.as_deref())?;
        // A certificate without its key (or the reverse) is half a TLS setup, whatever the mode.
        match (&tls_cert, &tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::missing(
                    "listen.tls_key",
                    "the private key that goes with listen.tls_cert",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(
                    "listen.tls_cert",
                    "the certificate that goes with listen.tls_key",
                ))
            }
            _ => {}
        }
        if tls != ListenTls::Disable && tls_cert.is_none() {
            return Err(ConfigError::missing(
                "listen.tls_cert",
                format!(
                    "a PEM certificate and listen.tls_key, because listen.tls = {}",
                    quote(tls.as_str())
                ),
            ));
        }
        let threads = check::integer(
            "listen.threads",
            self.threads,
            0,
            0..=MAX_THREADS as u64,
            "a number of threads from 1 to 1024, or 0 for one per CPU core",
        )?;
        Ok(Listen {
            address,
            tls,
            tls_cert,
            tls_key,
            threads: usize::try_from(threads).ok().filter(|&n| n > 0),
        })
    }
}

impl RawAdmin {
    pub(crate) fn build(self, ctx: &Ctx<'_>, listen: &Listen) -> Result<Admin> {
        let address = check::socket_addr(
            "admin.address",
            self.address.as_deref(),
            DEFAULT_ADMIN_ADDRESS,
        )?;
        if clashes(&address, &listen.address) {
            return Err(ConfigError::invalid(
                "admin.address",
                quote(&address),
                format!(
                    "an address other than listen.address ({}): both cannot bind the same port",
                    quote(&listen.address)
                ),
            ));
        }
        let token = match &self.token_env {
            Some(var) => Some(secret::env_secret(
                ctx,
                "admin.token_env",
                var,
                "the admin bearer token",
            )?),
            None => None,
        };
        Ok(Admin {
            address,
            token_env: self.token_env,
            token,
        })
    }
}

/// Whether two listen addresses would fight over one port: the same port (not 0, which the
/// OS makes unique) on the same IP, or on a wildcard that covers the other.
fn clashes(a: &str, b: &str) -> bool {
    let (Ok(a), Ok(b)) = (
        a.parse::<std::net::SocketAddr>(),
        b.parse::<std::net::SocketAddr>(),
    ) else {
        return false;
    };
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip()))
}

/// Whether binding the wildcard `wild` also takes `other`: `0.0.0.0` takes every IPv4
/// address, `[::]` every address (Linux binds it dual-stack by default).
fn covers(wild: std::net::IpAddr, other: std::net::IpAddr) -> bool {
    wild.is_unspecified() && (wild.is_ipv6() || other.is_ipv4())
}
