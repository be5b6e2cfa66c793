//! Free TCP ports on 127.0.0.1 for servers that tests start.
//!
//! Picking a port and binding it are two steps, done by different processes (the test picks,
//! PostgreSQL or switchyard binds), and nextest runs many test processes at once. Three
//! things keep two servers from getting the same port:
//!
//! * ports are picked at random *below* the kernel's ephemeral range, where no outgoing
//!   client connection can be sitting;
//! * a port is reserved for the life of the test process with an exclusive `flock` on
//!   `$TMPDIR/switchyard-tests-ports/<port>.lock`, and other test processes skip reserved
//!   ports (the kernel drops the lock when the process dies, however it dies);
//! * a port is checked by binding it, and never handed out twice within one process.
//!
//! Something outside the tests can still take a port in between; [`crate::PgCluster`]
//! retries with another port when that happens.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};

/// The ports this process has handed out, with their reservations (released at exit).
static RESERVED: Mutex<Vec<(u16, Option<Flock<File>>)>> = Mutex::new(Vec::new());

/// A TCP port on 127.0.0.1 that nothing listens on right now, reserved against other test
/// processes for the life of this one.
pub fn free_port() -> u16 {
    let (low, high) = candidate_range();
    let lock_dir = lock_dir();
    let mut reserved = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = low + (random() % u64::from(high - low)) as u16;
        if reserved.iter().any(|(taken, _)| *taken == port) {
            continue;
        }
        let lock = match &lock_dir {
            Some(dir) => match reserve(dir, port) {
                Reservation::Held(lock) => Some(lock),
                Reservation::Unavailable => None,
                Reservation::TakenByAnother => continue,
            },
            None => None,
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            reserved.push((port, lock));
            return port;
        }
    }
    // Fall back to the kernel's choice (inside the ephemeral range).
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0 to find a free port")
            .port();
        if !reserved.iter().any(|(taken, _)| *taken == port) {
            reserved.push((port, None));
            return port;
        }
    }
}

/// The shared directory of port reservations, world-writable (sticky) so that root and
/// normal users can share it; `None` if it cannot be used.
fn lock_dir() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join("switchyard-tests-ports");
    if !dir.is_dir() {
        fs::create_dir_all(&dir).ok()?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).ok()?;
    }
    Some(dir)
}

enum Reservation {
    /// We hold the port's lock until the process exits.
    Held(Flock<File>),
    /// The lock file cannot be opened (e.g. another OS user's file): go on without it.
    Unavailable,
    /// Another test process holds the port.
    TakenByAnother,
}

/// Takes the exclusive lock on `port`'s file without waiting.
fn reserve(dir: &std::path::Path, port: u16) -> Reservation {
    let path = dir.join(format!("{port}.lock"));
    let Ok(file) = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    else {
        return Reservation::Unavailable;
    };
    // Let the next user of this port (maybe another OS user) open the file too.
    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o666));
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Reservation::Held(lock),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Reservation::TakenByAnother,
        Err(_) => Reservation::Unavailable,
    }
}

/// Ports from 20000 up to the start of the ephemeral range (usually 32768).
fn candidate_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low > 21000 {
        (20000, ephemeral_low)
    } else {
        (10000, 20000)
    }
}

fn random() -> u64 {
    // RandomState is seeded from the OS once per process and differs for every instance.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}
