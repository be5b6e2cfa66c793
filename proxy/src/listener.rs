//! The client listener: accepts TCP connections on `listen.address` and hands each to its
//! own session task, with a client slot when one of `limits.max_clients` is free.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{error, info};

use crate::session;
use crate::state::Shared;

/// Accepts clients forever (until the task is dropped).
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "listening for PostgreSQL clients");
    }
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let permit = shared.client_slots.clone().try_acquire_owned().ok();
        tokio::spawn(session::run(shared.clone(), tcp, peer, permit));
    }
}
