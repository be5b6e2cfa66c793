//! CancelRequest routing. A client receives BackendKeyData carrying the real process ID of
//! its session's first primary backend (clients compare it with `pg_backend_pid()`) and a
//! secret key of switchyard's own. This registry maps that pair to wherever the session's
//! query runs now, so a cancel reaches the right backend even after the session moved.

use std::sync::Arc;

use dashmap::DashMap;

use crate::upstream;

/// A backend that a cancel request can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    pub host: String,
    pub port: u16,
    pub pid: i32,
    pub secret: i32,
}

/// The key pair a client sees: (process ID, switchyard's secret).
pub type ClientKey = (i32, i32);

/// Every live session's cancel targets, shared by the listener and the sessions.
#[derive(Default)]
pub struct CancelRegistry {
    sessions: DashMap<ClientKey, Vec<CancelTarget>>,
}

impl CancelRegistry {
    /// Registers a session whose primary backend is `primary` and returns the key to hand
    /// to the client; the secret is random and unique among live sessions.
    pub fn register(self: &Arc<Self>, primary: CancelTarget) -> CancelHandle {
        loop {
            let key = (primary.pid, rand::random::<i32>());
            if let dashmap::Entry::Vacant(slot) = self.sessions.entry(key) {
                slot.insert(vec![primary]);
                return CancelHandle {
                    registry: self.clone(),
                    key,
                };
            }
        }
    }

    /// Sends a cancel to every backend registered under `key`; returns whether the key was
    /// known. An unknown key is ignored, as PostgreSQL ignores a wrong secret.
    pub async fn cancel(&self, key: ClientKey) -> bool {
        let targets = match self.sessions.get(&key) {
            Some(t) => t.clone(),
            None => return false,
        };
        for t in targets {
            if let Err(e) = upstream::send_cancel(&t.host, t.port, t.pid, t.secret).await {
                tracing::warn!(host = %t.host, port = t.port, error = %e, "cancel request not delivered");
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// A session's registration; removed from the registry when dropped.
pub struct CancelHandle {
    registry: Arc<CancelRegistry>,
    key: ClientKey,
}

impl CancelHandle {
    pub fn key(&self) -> ClientKey {
        self.key
    }

    /// Replaces the backends a cancel for this session goes to (the primary first).
    pub fn set_targets(&self, targets: Vec<CancelTarget>) {
        if let Some(mut entry) = self.registry.sessions.get_mut(&self.key) {
            *entry = targets;
        }
    }

    /// The backends a cancel for this session goes to now.
    pub fn targets(&self) -> Vec<CancelTarget> {
        self.registry
            .sessions
            .get(&self.key)
            .map(|t| t.clone())
            .unwrap_or_default()
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.registry.sessions.remove(&self.key);
    }
}
