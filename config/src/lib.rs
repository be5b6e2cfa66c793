//! switchyard's configuration: the model, its defaults, its validation and the routing
//! function that maps a session to its primary upstream.
//!
//! Pure: the only I/O is reading the config file, `password_file`s and environment
//! variables, all at load time. What comes out of [`Config::load`] is complete and checked —
//! defaults applied, secrets resolved, relative paths anchored to the config file's
//! directory — so the proxy never re-validates and a reload is "load, then swap", with a
//! rejected config leaving the running one untouched.
//!
//! The file is strict: an unknown key anywhere is an error (a misspelt `canary_procent`
//! silently ignored would route traffic the operator did not ask for), and every error
//! names the dotted key, the offending value and what was expected
//! ([`ConfigError`]).
//!
//! ```
//! # use switchyard_config::{bucket, Config};
//! # use std::path::Path;
//! let config = Config::from_toml_str(r#"
//!     [[users]]
//!     name = "app"
//!     password = "app-secret"
//!
//!     [upstreams.blue]
//!     host = "10.0.0.1"
//!     port = 5432
//!
//!     [upstreams.green]
//!     host = "10.0.0.2"
//!     port = 5432
//!
//!     [routing]
//!     primary = "blue"
//!     canary_percent = 10
//! "#, Path::new("/etc/switchyard")).unwrap();
//!
//! let primary = config.routing.primary_for(bucket("10.1.2.3"), &config.upstreams);
//! assert!(primary == "blue" || primary == "green");
//! ```

mod check;
mod config;
mod error;
mod guard;
mod limits;
mod listen;
mod logging;
mod mirror;
mod routing;
mod secret;
mod shadow_reads;
mod upstreams;
mod users;

pub use check::EnvLookup;
pub use config::Config;
pub use error::{ConfigError, Location};
pub use guard::Guard;
pub use limits::Limits;
pub use listen::{Admin, Listen, ListenTls};
pub use logging::{LogFormat, Logging};
pub use mirror::Mirror;
pub use routing::{bucket, Routing, Sticky};
pub use shadow_reads::ShadowReads;
pub use upstreams::{Upstream, UpstreamTls, Upstreams};
pub use users::{AuthMethod, User, UserSecret};

/// Every default and bound, for the proxy's documentation and tests.
pub mod defaults {
    pub use crate::guard::{DEFAULT_MAX_ERROR_RATE, DEFAULT_MIN_STATEMENTS, DEFAULT_WINDOW_S};
    pub use crate::limits::{
        DEFAULT_MAX_CLIENTS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_STARTUP_TIMEOUT_MS,
        MAX_MESSAGE_BYTES, MIN_MESSAGE_BYTES,
    };
    pub use crate::listen::{DEFAULT_ADMIN_ADDRESS, DEFAULT_LISTEN_ADDRESS};
    pub use crate::logging::DEFAULT_LEVEL;
    pub use crate::mirror::{DEFAULT_JOURNAL_DIR, DEFAULT_QUEUE_CAPACITY};
    pub use crate::routing::DEFAULT_CUTOVER_TIMEOUT_MS;
    pub use crate::shadow_reads::{
        DEFAULT_MAX_ROWS, DEFAULT_MISMATCH_LOG, DEFAULT_RECHECK_AFTER_MS,
        DEFAULT_STATEMENT_TIMEOUT_MS,
    };
    pub use crate::upstreams::{DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_PORT};
    pub use crate::users::MAX_NAME_BYTES;
}

/// What `Debug` and error messages print in place of a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// Prints as `<redacted>` (no quotes) in `Debug` output.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}
