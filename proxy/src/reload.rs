//! Configuration reload: from SIGHUP, from a change of the config file on disk (watched,
//! debounced, and ignored when the content did not change), and from the admin API. A
//! file that fails validation is rejected whole and the running configuration stays.
//! Settings that cannot change while running (the listen and admin addresses and TLS
//! files, the classifier's read-only function list) keep their running values and are
//! reported as needing a restart.
//!
//! A reload changes what *new* sessions get (routing, limits, users, upstreams); mirrored
//! sessions already open move at their next transaction boundary when their primary
//! changes. A change of `routing.primary` with the mirror on is a cutover: it runs as a
//! barrier (see [`crate::cutover`]) and is abandoned, with the old routing restored in
//! memory and in the file, if it cannot complete within `routing.cutover_timeout_ms`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use switchyard_config::Config;
use tracing::{error, info, warn};

use crate::state::Shared;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Signal,
    File,
    Api,
}

/// The outcome of the last reload, for `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    pub at_unix_ms: u64,
    pub source: Source,
    pub ok: bool,
    pub error: Option<String>,
    /// Changed settings that only take effect after a restart.
    pub restart_required: Vec<String>,
    /// Routing generation after the reload.
    pub generation: u64,
}

/// Reload bookkeeping shared by the triggers and the admin API.
#[derive(Default)]
pub struct Reloads {
    pub generation: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    last: Mutex<Option<LastReload>>,
    /// SHA-256 of the file content last loaded (or rejected), to ignore no-op file events.
    last_digest: Mutex<Option<[u8; 32]>>,
    /// Serialises reloads, so two triggers never interleave.
    lock: tokio::sync::Mutex<()>,
}

impl Reloads {
    pub fn last(&self) -> Option<LastReload> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Remembers the content of the file the running configuration came from.
    pub fn remember(&self, path: &Path) {
        if let Some(d) = digest(path) {
            if let Ok(mut last) = self.last_digest.lock() {
                *last = Some(d);
            }
        }
    }
}

fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).into())
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the running configuration was not loaded from a file")]
    NoSource,
    #[error("{0}")]
    Invalid(String),
    #[error("cutover abandoned: {0}")]
    CutoverAbandoned(String),
}

/// Loads the configuration file again and, if it is valid, makes it the running one.
pub async fn reload(shared: &Arc<Shared>, source: Source) -> Result<LastReload, ReloadError> {
    let _serial = shared.reloads.lock.lock().await;
    let old = shared.config.load_full();
    let path: PathBuf = old.source.clone().ok_or(ReloadError::NoSource)?;
    if let Some(d) = digest(&path) {
        if let Ok(mut last) = shared.reloads.last_digest.lock() {
            *last = Some(d);
        }
    }
    let now = crate::clock::unix_ms();
    let mut new = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            error!(?source, file = %path.display(), error = %message, "reload rejected; the running configuration stays");
            shared.reloads.failed.fetch_add(1, Ordering::Relaxed);
            let outcome = LastReload {
                at_unix_ms: now,
                source,
                ok: false,
                error: Some(message.clone()),
                restart_required: Vec::new(),
                generation: shared.reloads.generation.load(Ordering::Relaxed),
            };
            if let Ok(mut last) = shared.reloads.last.lock() {
                *last = Some(outcome);
            }
            return Err(ReloadError::Invalid(message));
        }
    };
    let mut restart: Vec<String> = old
        .restart_required(&new)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if old.mirror.read_only_functions != new.mirror.read_only_functions {
        restart.push("mirror.read_only_functions".to_owned());
    }
    // What cannot change live keeps its running value, so the configuration shown is the
    // one in effect.
    new.listen = old.listen.clone();
    new.admin = old.admin.clone();
    new.mirror.read_only_functions = old.mirror.read_only_functions.clone();
    new.mirror.journal_dir = old.mirror.journal_dir.clone();
    if new.limits.max_clients > old.limits.max_clients {
        shared
            .client_slots
            .add_permits(new.limits.max_clients - old.limits.max_clients);
    } else if new.limits.max_clients < old.limits.max_clients {
        // Sessions already open keep their slots; the limit applies as they close.
        shared
            .client_slots
            .forget_permits(old.limits.max_clients - new.limits.max_clients);
    }
    let routing_changed = old.routing != new.routing;
    let generation = if routing_changed {
        shared.reloads.generation.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        shared.reloads.generation.load(Ordering::Relaxed)
    };
    if routing_changed {
        info!(
            ?source,
            generation,
            primary = %new.routing.primary,
            canary_percent = new.routing.canary_percent,
            "routing changed; new sessions follow it"
        );
    }
    shared.verifiers.clear();
    let cutover = old.routing.primary != new.routing.primary && new.mirror.enabled;
    if cutover {
        let new = Arc::new(new);
        if let Err(reason) = run_cutover(shared, &old, new, generation, &path).await {
            shared.reloads.failed.fetch_add(1, Ordering::Relaxed);
            let outcome = LastReload {
                at_unix_ms: now,
                source,
                ok: false,
                error: Some(format!("cutover abandoned: {reason}")),
                restart_required: restart,
                generation: shared.reloads.generation.load(Ordering::Relaxed),
            };
            if let Ok(mut last) = shared.reloads.last.lock() {
                *last = Some(outcome);
            }
            return Err(ReloadError::CutoverAbandoned(reason));
        }
    } else {
        shared.config.store(Arc::new(new));
        if routing_changed {
            shared.routing_watch.send_replace(generation);
        }
    }
    shared.reloads.ok.fetch_add(1, Ordering::Relaxed);
    if !restart.is_empty() {
        warn!(keys = %restart.join(", "), "changed settings take effect only after a restart");
    }
    info!(?source, file = %path.display(), "configuration reloaded");
    let outcome = LastReload {
        at_unix_ms: now,
        source,
        ok: true,
        error: None,
        restart_required: restart,
        generation,
    };
    if let Ok(mut last) = shared.reloads.last.lock() {
        *last = Some(outcome.clone());
    }
    Ok(outcome)
}

/// Runs the cutover barrier from `old`'s primary to `new`'s (already validated): hold,
/// install `new`, wait for every mirrored session to move, release. On timeout, restores
/// `old`'s routing (in memory and in the file), lets the sessions that moved move back,
/// releases, and returns why.
async fn run_cutover(
    shared: &Arc<Shared>,
    old: &Config,
    new: Arc<Config>,
    generation: u64,
    path: &Path,
) -> Result<(), String> {
    let barrier = &shared.barrier;
    let (from, to) = (old.routing.primary.as_str(), new.routing.primary.as_str());
    let started = std::time::Instant::now();
    let started_ms = crate::clock::unix_ms();
    let sessions = barrier.members();
    let timeout = Duration::from_millis(new.routing.cutover_timeout_ms);
    info!(
        from,
        to,
        sessions,
        timeout_ms = new.routing.cutover_timeout_ms,
        "cutover: holding new transactions and connections until every session has moved"
    );
    barrier.hold();
    shared.config.store(new.clone());
    shared.routing_watch.send_replace(generation);
    let laggards = barrier.wait_until(&new, timeout).await;
    if laggards.is_empty() {
        barrier.release();
        shared.guard.primary_changed(from);
        let report = barrier.report(from, to, true, None, started, started_ms, sessions);
        info!(
            from,
            to,
            sessions,
            duration_ms = report.duration_ms,
            pauses = report.pauses.count,
            pause_p50_ms = report.pauses.p50_ms,
            pause_max_ms = report.pauses.max_ms,
            "cutover completed: every session is on its new primary"
        );
        return Ok(());
    }
    let shown: Vec<String> = laggards
        .iter()
        .take(5)
        .map(|(id, why)| format!("session {id}: {why}"))
        .collect();
    let reason = format!(
        "{} of {sessions} sessions did not reach the barrier within routing.cutover_timeout_ms ({} ms): {}{}",
        laggards.len(),
        new.routing.cutover_timeout_ms,
        shown.join("; "),
        if laggards.len() > 5 { "; ..." } else { "" }
    );
    // Back to the old routing; the rest of the new configuration stays.
    let mut reverted = (*new).clone();
    reverted.routing = old.routing.clone();
    let reverted = Arc::new(reverted);
    let generation = shared.reloads.generation.fetch_add(1, Ordering::Relaxed) + 1;
    shared.config.store(reverted.clone());
    shared.routing_watch.send_replace(generation);
    let stranded = barrier.wait_until(&reverted, timeout).await;
    barrier.release();
    if let Err(e) = write_routing(path, &old.routing) {
        error!(file = %path.display(), error = %e, "cannot write the restored routing back to the config file; a restart would apply the abandoned cutover");
    }
    shared.reloads.remember(path);
    let report = barrier.report(
        from,
        to,
        false,
        Some(reason.clone()),
        started,
        started_ms,
        sessions,
    );
    warn!(
        from,
        to,
        reason = %reason,
        stranded = stranded.len(),
        pause_max_ms = report.pauses.max_ms,
        "cutover abandoned: traffic resumes on the old primary"
    );
    Err(reason)
}

/// Writes `routing.primary` and `routing.canary_percent` into the config file (comments
/// and layout kept), atomically.
pub fn write_routing(path: &Path, routing: &switchyard_config::Routing) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    doc["routing"]["primary"] = toml_edit::value(routing.primary.as_str());
    doc["routing"]["canary_percent"] = toml_edit::value(i64::from(routing.canary_percent));
    write_atomically(path, &doc.to_string())
}

/// Replaces `path` with `text` by renaming a sibling temporary file over it.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("toml.switchyard-tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    // Keep the file's permissions (it may hold secrets).
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path)
}

/// Reloads on every SIGHUP until the task is dropped.
pub async fn on_sighup(shared: Arc<Shared>, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        let _ = reload(&shared, Source::Signal).await;
    }
}

/// Installs the SIGHUP handler (before the listener accepts anyone: until then SIGHUP
/// would terminate the process). `None`, logged, when it cannot be installed.
pub fn sighup() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hup) => Some(hup),
        Err(_) => {
            error!("cannot install the SIGHUP handler; reload with POST /reload instead");
            None
        }
    }
}

/// How long the file must stay quiet before a change is acted upon (editors write in steps).
const DEBOUNCE: Duration = Duration::from_millis(250);

/// A watch on the config file's directory, registered before the listener accepts
/// anyone, so that no change written after switchyard is up can be missed.
pub struct FileWatch {
    path: std::path::PathBuf,
    rx: tokio::sync::mpsc::UnboundedReceiver<()>,
    _watcher: notify::RecommendedWatcher,
}

impl FileWatch {
    /// Starts watching; `None` (logged) without a config file or when watching fails.
    pub fn start(shared: &Shared) -> Option<FileWatch> {
        use notify::{RecursiveMode, Watcher};
        let path = shared.config.load().source.clone()?;
        shared.reloads.remember(&path);
        let dir = path.parent().map(Path::to_path_buf)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let file_name = path.file_name().map(|n| n.to_owned());
        let mut watcher = match notify::recommended_watcher(
            move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if event
                        .paths
                        .iter()
                        .any(|p| p.file_name().map(|n| n.to_owned()) == file_name)
                    {
                        let _ = tx.send(());
                    }
                }
            },
        ) {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "cannot watch the config file; reload with SIGHUP or POST /reload");
                return None;
            }
        };
        // The directory, not the file: editors and `mv` replace the file (a new inode).
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            warn!(error = %e, dir = %dir.display(), "cannot watch the config directory");
            return None;
        }
        Some(FileWatch {
            path,
            rx,
            _watcher: watcher,
        })
    }

    /// Reloads whenever the file's content changes, until the task is dropped.
    pub async fn run(self, shared: Arc<Shared>) {
        let FileWatch {
            path,
            mut rx,
            _watcher,
        } = self;
        while rx.recv().await.is_some() {
            // Debounce: wait until events stop for a moment.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let current = digest(&path);
            let unchanged = shared
                .reloads
                .last_digest
                .lock()
                .map(|last| current.is_some() && *last == current)
                .unwrap_or(false);
            if current.is_none() || unchanged {
                continue; // removed mid-rename, or rewritten with the same content
            }
            let _ = reload(&shared, Source::File).await;
        }
    }
}
