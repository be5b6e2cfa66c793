//! The client listener: accepts TCP connections on `listen.address` and hands each to its
//! own session task on one of the [session threads](crate::threads), with a client slot
//! when one of `limits.max_clients` is free.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{error, info};

use crate::session;
use crate::state::Shared;
use crate::threads::SessionThreads;

/// Accepts clients forever (until the task is dropped).
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, threads: Arc<SessionThreads>) {
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
        // Taken off this runtime's event loop and registered with the session thread's.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                error!(error = %e, %peer, "cannot hand the connection to a session thread");
                continue;
            }
        };
        let shared = shared.clone();
        threads.spawn(move |counted| async move {
            let _counted = counted;
            match TcpStream::from_std(tcp) {
                Ok(tcp) => session::run(shared, tcp, peer, permit).await,
                Err(e) => error!(error = %e, %peer, "cannot register the client connection"),
            }
        });
    }
}
