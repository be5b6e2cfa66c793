//! The mirror's durable journal: the ordered log of writes that could not be mirrored live,
//! and the two commands that read it, `switchyard journal status` and
//! `switchyard journal replay` (DESIGN.md "Mirror (dual-write)").
//!
//! A session's secondary worker appends a [`JournalEntry`] for every unit it could not
//! apply (secondary down, stalled, or too slow); nothing the primary acknowledged may be
//! dropped, so the journal is the last place such a write lives until an operator replays
//! it. The pieces, one job each:
//!
//! - [`record`]: one entry as one JSON line with a CRC32, the key that orders entries;
//! - [`writer`]: [`Journal`], the appender shared by all sessions, with batched fsync;
//! - [`reader`]: loading every segment, telling a torn last line from a corrupt one;
//! - [`cursor`]: what has been replayed, saved atomically;
//! - [`apply`]: sending one entry's frames to an upstream and reading the answers;
//! - [`replay`] and [`status`]: the two commands, and [`cli`] their output and exit codes.
//!
//! # On disk
//!
//! The directory (`mirror.journal_dir`, created 0700) holds segment files
//! `journal-000001.jsonl`, `journal-000002.jsonl`, … (0600), each at most 64 MiB, one JSON
//! object per line; a `cursor` file (what replay has applied); and the lock files `lock`
//! (held shared by every open [`Journal`], so the commands can tell that a switchyard is
//! still writing) and `replay.lock` (one replay at a time).
//!
//! Each [`Journal::open`] starts a *run*: it never appends to an old segment (whose last
//! line may be torn by a crash) but creates new ones, and the number of the first segment it
//! creates becomes the run's number, written into each of its lines. Session ids restart
//! with every switchyard process, so replay tells sessions apart by `(run, session)`, and
//! it orders entries by `(run, seq)`: all of an earlier process's writes come before a later
//! one's even if the clock stepped back.

pub mod apply;
pub mod cli;
pub mod cursor;
mod lock;
pub mod reader;
pub mod record;
pub mod replay;
pub mod status;
pub mod writer;

use std::path::PathBuf;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use cli::{run_replay, run_status};
pub use cursor::Cursor;
pub use reader::{LineIssue, SegmentInfo};
pub use record::{EntryId, EntryKey};
pub use replay::{replay, ReplayError, ReplayOptions, ReplayReport, StopReason, Stopped};
pub use status::{status, JournalStatus, TargetStatus};
pub use writer::{Journal, JournalOptions};

/// One unit of a session's writes that the secondary has not received: the client's
/// protocol messages exactly as the primary got them, with what is needed to apply them
/// again on a fresh connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The global order in which the primary acknowledged the units, across all sessions
    /// of one switchyard process. Replay applies entries in this order, not in file order
    /// (sessions append concurrently). A [`EntryKind::Prelude`] takes the seq of the unit
    /// whose session state it records (or any seq before the session's first journaled
    /// unit); at equal seqs a prelude goes first.
    pub seq: u64,
    /// The switchyard session id. Replay uses one upstream connection per session, so
    /// prepared statements and SET values carry over between a session's entries.
    pub session: u64,
    /// The upstream to apply the entry to.
    pub target: String,
    pub database: String,
    pub user: String,
    /// The session's other startup parameters (application_name, options, …).
    pub params: Vec<(String, String)>,
    /// The session-local transaction number, `None` for autocommit units.
    pub txn: Option<u64>,
    pub kind: EntryKind,
    /// Whole frontend messages (tag + length + body): a unit ending with Sync, or one
    /// simple Query, possibly followed by its CopyData / CopyDone.
    pub frames: Vec<Bytes>,
    /// The primary's CommandComplete tags for the unit, in order ("INSERT 0 1").
    pub primary_tags: Vec<String>,
    /// The SQL text(s), for humans, without parameter values.
    pub summary: String,
    pub at_unix_ms: u64,
}

/// What replay does with an entry. Both are applied the same way; they differ in what
/// they are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Writes, transaction control and session-state statements of the session.
    Unit,
    /// Session state (SET, PREPARE, a named Parse) that the session had established on the
    /// secondary before its first journaled unit. Replay applies it in order like a unit,
    /// and again on every new connection it opens for the session (a replay that resumes
    /// after an error starts the session's connection afresh).
    Prelude,
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryKind::Unit => "unit",
            EntryKind::Prelude => "prelude",
        })
    }
}

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The entry cannot be journaled as given (a malformed frame): a caller's bug.
    #[error("invalid journal entry (seq {seq}): {reason}")]
    InvalidEntry { seq: u64, reason: String },
    /// An earlier write or fsync failed, so the journal no longer promises durability and
    /// refuses further entries rather than leave a hole in the middle of a segment.
    #[error("the journal in {} stopped accepting entries after an I/O error: {reason}", dir.display())]
    Failed { dir: PathBuf, reason: String },
    /// The cursor file cannot be understood.
    #[error("{}: not a journal cursor ({reason}); fix or remove it (removing it replays everything again)", path.display())]
    BadCursor { path: PathBuf, reason: String },
}

impl JournalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> JournalError {
        let path = path.into();
        move |source| JournalError::Io { path, source }
    }
}
