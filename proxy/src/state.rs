//! State shared by the listener, the sessions and (read-only) the admin API: the running
//! configuration, the client TLS acceptor, the cancel registry and the client slots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use switchyard_config::{Config, ListenTls};
use tokio::sync::Semaphore;

use crate::auth::VerifierCache;
use crate::cancel::CancelRegistry;
use crate::tls::{self, TlsError};

pub struct Shared {
    pub config: ArcSwap<Config>,
    pub tls: ArcSwapOption<tokio_rustls::TlsAcceptor>,
    pub cancels: Arc<CancelRegistry>,
    /// SCRAM verifiers derived from configured plain passwords.
    pub verifiers: VerifierCache,
    /// One permit per client session allowed by `limits.max_clients`.
    pub client_slots: Arc<Semaphore>,
    next_session_id: AtomicU64,
}

impl Shared {
    pub fn new(config: Config) -> Result<Arc<Self>, TlsError> {
        let acceptor = build_acceptor(&config)?;
        let slots = config.limits.max_clients;
        Ok(Arc::new(Self {
            config: ArcSwap::from_pointee(config),
            tls: ArcSwapOption::from(acceptor.map(Arc::new)),
            cancels: Arc::new(CancelRegistry::default()),
            verifiers: VerifierCache::default(),
            client_slots: Arc::new(Semaphore::new(slots)),
            next_session_id: AtomicU64::new(1),
        }))
    }

    pub fn next_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// The client TLS acceptor for `listen.tls`, or `None` when TLS is disabled.
pub fn build_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, TlsError> {
    match (&config.listen.tls, &config.listen.tls_cert, &config.listen.tls_key) {
        (ListenTls::Disable, _, _) => Ok(None),
        (_, Some(cert), Some(key)) => tls::acceptor(cert, key).map(Some),
        // Validation guarantees the files are named when TLS is on.
        _ => Ok(None),
    }
}
