//! `POST /routing`: an operator's routing change (primary, canary percent). The change is
//! validated as a whole configuration before anything is touched, written back into the
//! config file (comments and layout kept, via `toml_edit`; replaced atomically), and then
//! reloaded like any other change, so a restart keeps it.

use std::path::Path;

use serde::Deserialize;
use switchyard_config::Config;

use crate::reload::{self, LastReload, Source};
use crate::state::Shared;

/// The request body. Unknown fields are errors, like unknown config keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingChange {
    pub primary: Option<String>,
    pub canary_percent: Option<u8>,
    /// Make an upstream primary even though the journal holds writes it has not received.
    #[serde(default)]
    pub force: bool,
}

/// Why a routing change was refused; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("{0}")]
    Invalid(String),
    #[error("upstream {upstream} has {pending} journaled writes not replayed yet: run `switchyard journal replay` first, or pass \"force\": true")]
    Backlog { upstream: String, pending: u64 },
    #[error("the running configuration was not loaded from a file")]
    NoFile,
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("reload failed: {0}")]
    Reload(String),
    /// The cutover barrier was not reached in time; the old routing stays (and is back in
    /// the file).
    #[error("cutover abandoned: {0}")]
    Abandoned(String),
}

/// Applies `change`: validate, refuse a primary with a journal backlog, write, reload.
pub async fn apply(
    shared: &std::sync::Arc<Shared>,
    change: RoutingChange,
) -> Result<LastReload, RoutingError> {
    if change.primary.is_none() && change.canary_percent.is_none() {
        return Err(RoutingError::Invalid(
            "nothing to change: give \"primary\" and/or \"canary_percent\"".into(),
        ));
    }
    let running = shared.config.load_full();
    let path = running.source.clone().ok_or(RoutingError::NoFile)?;
    let text = std::fs::read_to_string(&path).map_err(|source| RoutingError::Write {
        path: path.display().to_string(),
        source,
    })?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| RoutingError::Invalid(format!("{}: {e}", path.display())))?;
    if let Some(primary) = &change.primary {
        doc["routing"]["primary"] = toml_edit::value(primary.as_str());
    }
    if let Some(percent) = change.canary_percent {
        doc["routing"]["canary_percent"] = toml_edit::value(i64::from(percent));
    }
    let new_text = doc.to_string();
    let base = path.parent().unwrap_or(Path::new("."));
    // The whole file must still be valid: the same checks as a reload, before the write.
    let candidate =
        Config::from_toml_str(&new_text, base).map_err(|e| RoutingError::Invalid(e.to_string()))?;
    if candidate.routing.primary != running.routing.primary && !change.force {
        let pending = crate::journal::status(&running.mirror.journal_dir)
            .ok()
            .and_then(|s| {
                s.targets
                    .into_iter()
                    .find(|t| t.name == candidate.routing.primary)
                    .map(|t| t.pending)
            })
            .unwrap_or(0);
        if pending > 0 {
            return Err(RoutingError::Backlog {
                upstream: candidate.routing.primary.clone(),
                pending,
            });
        }
    }
    crate::reload::write_atomically(&path, &new_text).map_err(|source| RoutingError::Write {
        path: path.display().to_string(),
        source,
    })?;
    reload::reload(shared, Source::Api)
        .await
        .map_err(|e| match e {
            reload::ReloadError::CutoverAbandoned(reason) => RoutingError::Abandoned(reason),
            other => RoutingError::Reload(other.to_string()),
        })
}
