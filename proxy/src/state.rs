//! State shared by the listener, the sessions and (read-only) the admin API: the running
//! configuration, the client TLS acceptor, the cancel registry and the client slots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use switchyard_config::{Config, ListenTls};
use tokio::sync::Semaphore;

use crate::auth::VerifierCache;
use crate::cancel::CancelRegistry;
use crate::classify::Classifier;
use crate::divergence::{Divergences, NonDeterministic};
use crate::journal::Journal;
use crate::mirror::MirrorStats;
use crate::tls::{self, TlsError};

pub struct Shared {
    pub config: ArcSwap<Config>,
    pub tls: ArcSwapOption<tokio_rustls::TlsAcceptor>,
    pub cancels: Arc<CancelRegistry>,
    /// SCRAM verifiers derived from configured plain passwords.
    pub verifiers: VerifierCache,
    /// Statement classification, shared by all sessions (it caches by text).
    pub classifier: Arc<Classifier>,
    /// The mirror's journal, when `mirror.enabled`.
    pub journal: Option<Arc<Journal>>,
    /// The global order of mirrored units (the primary's acknowledgement order).
    pub order: Arc<crate::order::Order>,
    pub mirror_stats: MirrorStats,
    pub divergences: Divergences,
    /// The cutover barrier: sessions that can move, and the cutover in progress.
    pub barrier: Arc<crate::cutover::Barrier>,
    /// The automatic flip-back.
    pub guard: crate::guard::Guard,
    /// What connections to each upstream did last.
    pub health: crate::health::Health,
    /// What shadow reads found.
    pub mismatches: crate::mismatch::Mismatches,
    /// Shadow-read re-checks allowed to run at once.
    pub shadow_rechecks: Arc<Semaphore>,
    /// Shadow-read re-checks allowed to wait or run (see `shadow::RECHECKS_QUEUED`).
    pub shadow_recheck_queue: Arc<Semaphore>,
    pub nondeterministic: NonDeterministic,
    /// Statement latencies by upstream, role and kind.
    pub latencies: Arc<crate::latency::Latencies>,
    /// Every session's mirror worker, for shutdown.
    pub mirror_workers: crate::mirror::Workers,
    /// Sessions moved from one primary to the other since start.
    pub session_moves: AtomicU64,
    /// The routing generation, for sessions waiting to move when routing changes.
    pub routing_watch: tokio::sync::watch::Sender<u64>,
    /// Reload bookkeeping: generation, counts, the last outcome.
    pub reloads: crate::reload::Reloads,
    /// Live sessions by their current primary.
    pub sessions_by_primary: dashmap::DashMap<String, i64>,
    /// Volatile column defaults by table, as looked up by the mirror workers.
    pub volatile_defaults: dashmap::DashMap<String, Vec<String>>,
    /// One permit per client session allowed by `limits.max_clients`.
    pub client_slots: Arc<Semaphore>,
    /// The threads running sessions, once started (for `/status`).
    pub session_threads: std::sync::OnceLock<Arc<crate::threads::SessionThreads>>,
    next_session_id: AtomicU64,
}

impl Shared {
    pub fn new(config: Config, journal: Option<Arc<Journal>>) -> Result<Arc<Self>, TlsError> {
        let acceptor = build_acceptor(&config)?;
        let slots = config.limits.max_clients;
        let classifier = Arc::new(Classifier::new(
            CLASSIFIER_CACHE,
            config.mirror.read_only_functions.clone(),
        ));
        let seq_start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        Ok(Arc::new(Self {
            classifier,
            journal,
            // Microseconds since the epoch at start: later runs continue the order of the
            // journal left by earlier ones.
            order: Arc::new(crate::order::Order::new(seq_start)),
            mirror_stats: MirrorStats::default(),
            divergences: Divergences::default(),
            barrier: Arc::new(crate::cutover::Barrier::default()),
            guard: crate::guard::Guard::default(),
            health: crate::health::Health::default(),
            mismatches: crate::mismatch::Mismatches::default(),
            shadow_rechecks: Arc::new(Semaphore::new(crate::shadow::RECHECKS_AT_ONCE)),
            shadow_recheck_queue: Arc::new(Semaphore::new(crate::shadow::RECHECKS_QUEUED)),
            nondeterministic: NonDeterministic::default(),
            latencies: Arc::default(),
            volatile_defaults: dashmap::DashMap::new(),
            sessions_by_primary: dashmap::DashMap::new(),
            reloads: crate::reload::Reloads::default(),
            routing_watch: tokio::sync::watch::Sender::new(0),
            session_moves: AtomicU64::new(0),
            mirror_workers: crate::mirror::Workers::default(),
            config: ArcSwap::from_pointee(config),
            tls: ArcSwapOption::from(acceptor.map(Arc::new)),
            cancels: Arc::new(CancelRegistry::default()),
            verifiers: VerifierCache::default(),
            client_slots: Arc::new(Semaphore::new(slots)),
            session_threads: std::sync::OnceLock::new(),
            next_session_id: AtomicU64::new(1),
        }))
    }

    pub fn next_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Distinct statement texts whose classification is cached.
const CLASSIFIER_CACHE: usize = 10_000;

/// The client TLS acceptor for `listen.tls`, or `None` when TLS is disabled.
pub fn build_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, TlsError> {
    match (
        &config.listen.tls,
        &config.listen.tls_cert,
        &config.listen.tls_key,
    ) {
        (ListenTls::Disable, _, _) => Ok(None),
        (_, Some(cert), Some(key)) => tls::acceptor(cert, key).map(Some),
        // Validation guarantees the files are named when TLS is on.
        _ => Ok(None),
    }
}

/// Counts a session under its primary for as long as it lives.
pub struct SessionCount {
    shared: Arc<Shared>,
    primary: String,
}

impl SessionCount {
    pub fn new(shared: Arc<Shared>, primary: &str) -> Self {
        *shared
            .sessions_by_primary
            .entry(primary.to_owned())
            .or_insert(0) += 1;
        Self {
            shared,
            primary: primary.to_owned(),
        }
    }
}

impl Drop for SessionCount {
    fn drop(&mut self) {
        if let Some(mut n) = self.shared.sessions_by_primary.get_mut(&self.primary) {
            *n -= 1;
        }
    }
}
