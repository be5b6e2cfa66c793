//! Advisory locks (`flock`) in the journal directory.
//!
//! - `lock`: every open [`super::Journal`] holds it *shared* for its lifetime, so `status`
//!   and `replay` can tell that a switchyard process may still append (an entry appended
//!   during a replay with a seq below the replay's position would otherwise be passed over).
//! - `replay.lock`: a replay holds it *exclusively*, so two replays never apply the same
//!   entries twice.
//!
//! `flock` locks belong to the open file and vanish with the process, so a crash never
//! leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub(crate) const WRITER_LOCK: &str = "lock";
pub(crate) const REPLAY_LOCK: &str = "replay.lock";

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Takes the writer lock of `dir` shared; the lock lasts as long as the returned file.
pub(crate) fn hold_writer_lock(dir: &Path) -> io::Result<File> {
    let file = open(&dir.join(WRITER_LOCK))?;
    flock(&file, libc::LOCK_SH)?;
    Ok(file)
}

/// Whether some process holds the writer lock of `dir` (an open [`super::Journal`]).
/// False when the lock file does not exist or cannot be opened.
pub(crate) fn writer_active(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(WRITER_LOCK)) else {
        return false;
    };
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        // Released when `file` is dropped, at once.
        Ok(()) => false,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Takes the replay lock of `dir`; `Ok(None)` when another replay holds it.
pub(crate) fn try_replay_lock(dir: &Path) -> io::Result<Option<File>> {
    let file = open(&dir.join(REPLAY_LOCK))?;
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}
