//! The session threads: `listen.threads` single-threaded tokio runtimes, each on its own OS
//! thread, running the sessions the listener hands it and everything a session spawns (its
//! mirror worker, shadow re-checks). A session's two relay directions, its worker and the
//! sockets they wait on then share one event loop: a readiness event wakes the task on the
//! thread that is already awake, with no hand-off between threads, no work stealing and no
//! futex wake-up per message. Each new client goes to the thread with the fewest sessions.
//!
//! The listener, the admin API and the reload watchers run on the process's main runtime,
//! apart from the sessions, so a busy session thread never delays an operator's request.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::{Builder, Handle};

/// The running session threads (they live as long as the process).
pub struct SessionThreads {
    threads: Vec<SessionThread>,
}

struct SessionThread {
    handle: Handle,
    /// Sessions handed to this thread that have not finished.
    sessions: Arc<AtomicUsize>,
}

/// A session's place in its thread's count, given back when the session's future ends or
/// is dropped.
pub struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionThreads {
    /// Starts `count` threads (at least one), or one per CPU core the process may use when
    /// `count` is `None`.
    pub fn start(count: Option<usize>) -> io::Result<Self> {
        let count = count
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("sessions-{i}"))
                // The runtime only runs its tasks while something blocks on it; this never
                // returns, and the thread ends with the process.
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
            threads.push(SessionThread {
                handle,
                sessions: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(SessionThreads { threads })
    }

    /// How many session threads run.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Live sessions on each thread, in thread order.
    pub fn sessions(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.sessions.load(Ordering::Relaxed))
            .collect()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Runs the future `make` builds on the thread with the fewest sessions. `make` gets the
    /// thread's count for the session: the future must hold it until it ends. The future is
    /// first polled on that thread, so a socket it registers there (`TcpStream::from_std`)
    /// belongs to that thread's event loop.
    ///
    /// The count is handed in rather than wrapped around the future: an `async` block that
    /// awaits a future it captured keeps room for it twice (the capture and the awaited
    /// value), which doubled the size of every session task.
    pub fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce(Counted) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(thread) = self
            .threads
            .iter()
            .min_by_key(|t| t.sessions.load(Ordering::Relaxed))
        else {
            return;
        };
        thread.sessions.fetch_add(1, Ordering::Relaxed);
        thread.handle.spawn(make(Counted(thread.sessions.clone())));
    }
}
