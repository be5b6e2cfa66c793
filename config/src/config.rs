//! The whole configuration: loading, the order sections are validated in, lookups, and what
//! a reload may not change.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::check::{Ctx, EnvLookup};
use crate::error::ConfigError;
use crate::guard::{Guard, RawGuard};
use crate::limits::{Limits, RawLimits};
use crate::listen::{Admin, Listen, RawAdmin, RawListen};
use crate::logging::{Logging, RawLogging};
use crate::mirror::{Mirror, RawMirror};
use crate::routing::{RawRouting, Routing};
use crate::shadow_reads::{RawShadowReads, ShadowReads};
use crate::upstreams::{self, RawUpstreams, Upstream, Upstreams};
use crate::users::{self, RawUser, User};

/// A validated configuration: every value checked, every default applied, every secret
/// resolved, every relative path made relative to the config file's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Listen,
    pub admin: Admin,
    pub users: Vec<User>,
    pub upstreams: Upstreams,
    pub routing: Routing,
    pub mirror: Mirror,
    pub shadow_reads: ShadowReads,
    pub guard: Guard,
    pub limits: Limits,
    pub logging: Logging,
    /// The file this config was loaded from (made absolute, so that a reload or a write-back
    /// finds it whatever the working directory has become); `None` when parsed from a string.
    pub source: Option<PathBuf>,
}

/// The file as written: every key optional (defaults and "missing" errors are ours, so they
/// can say what was expected), unknown keys refused at every level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<RawListen>,
    admin: Option<RawAdmin>,
    users: Option<Vec<RawUser>>,
    upstreams: Option<RawUpstreams>,
    routing: Option<RawRouting>,
    mirror: Option<RawMirror>,
    shadow_reads: Option<RawShadowReads>,
    guard: Option<RawGuard>,
    limits: Option<RawLimits>,
    logging: Option<RawLogging>,
}

/// Keys whose change a reload cannot apply, because they are bound into sockets (or the TLS
/// acceptor of the listening socket) at start-up.
const RESTART_KEYS: [&str; 6] = [
    "listen.address",
    "listen.tls",
    "listen.tls_cert",
    "listen.tls_key",
    "listen.threads",
    "admin.address",
];

impl Config {
    /// Reads, parses, resolves and validates the config file at `path`. Relative paths in it
    /// (`listen.tls_cert`, `listen.tls_key`, `upstreams.X.ca_file`, `password_file`,
    /// `mirror.journal_dir`, `shadow_reads.mismatch_log`) are resolved against the file's
    /// directory, so the config means the same whatever directory switchyard starts in.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = std::fs::read_to_string(&absolute).map_err(|err| ConfigError::Read {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
        let base_dir = absolute.parent().unwrap_or(Path::new("."));
        let mut config = Config::from_toml_str(&text, base_dir)?;
        config.source = Some(absolute);
        Ok(config)
    }

    /// Parses and validates config text, resolving relative paths against `base_dir` and
    /// secrets from the process environment.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Config::from_toml_str_with_env(text, base_dir, &|var| std::env::var(var))
    }

    /// [`from_toml_str`](Self::from_toml_str) with `env` standing in for the process
    /// environment, for callers (tests) that must not touch process-global state.
    pub fn from_toml_str_with_env(
        text: &str,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|err| ConfigError::from_syntax(err, text))?;
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer)
            .map_err(|err| ConfigError::from_toml(err, text))?;
        let ctx = Ctx { base_dir, env };

        // Sections in the order the documented example lists them, so the first error reported
        // is, in a file written in that order, the first one in the file.
        let listen = raw.listen.unwrap_or_default().build(&ctx)?;
        let admin = raw.admin.unwrap_or_default().build(&ctx, &listen)?;
        let users = users::build(raw.users, &ctx)?;
        let upstreams = upstreams::build(raw.upstreams, &ctx)?;
        let routing = raw.routing.unwrap_or_default().build(&upstreams)?;
        Ok(Config {
            listen,
            admin,
            users,
            upstreams,
            routing,
            mirror: raw.mirror.unwrap_or_default().build(&ctx)?,
            shadow_reads: raw.shadow_reads.unwrap_or_default().build(&ctx)?,
            guard: raw.guard.unwrap_or_default().build()?,
            limits: raw.limits.unwrap_or_default().build()?,
            logging: raw.logging.unwrap_or_default().build()?,
            source: None,
        })
    }

    /// The configured user called exactly `name` (case-sensitive, like PostgreSQL roles).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|user| user.name == name)
    }

    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.get(name)
    }

    /// The name of the other of the two upstreams (see [`Upstreams::other`]).
    pub fn other_upstream(&self, name: &str) -> &str {
        self.upstreams.other(name)
    }

    /// The dotted keys that differ between `self` (running) and `new` but cannot change on a
    /// live reload: `listen.address`, `listen.tls`, `listen.tls_cert`, `listen.tls_key`,
    /// `listen.threads`, `admin.address`. Empty when `new` can be applied as is. Certificate
    /// files are compared by path, not content. Everything else (users, upstreams, routing,
    /// limits, …) is reloadable as far as this crate is concerned.
    pub fn restart_required(&self, new: &Config) -> Vec<&'static str> {
        let (old_l, new_l) = (&self.listen, &new.listen);
        let changed = [
            old_l.address != new_l.address,
            old_l.tls != new_l.tls,
            old_l.tls_cert != new_l.tls_cert,
            old_l.tls_key != new_l.tls_key,
            old_l.threads != new_l.threads,
            self.admin.address != new.admin.address,
        ];
        RESTART_KEYS
            .iter()
            .zip(changed)
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| *key)
            .collect()
    }
}
