//! The replay cursor: which entries have been applied, in the file `cursor`.
//!
//! Replay applies entries in key order, so "everything up to here" is almost the whole
//! story: `applied_through` is the last key such that every entry at or before it has been
//! applied and committed. Almost, because sessions interleave: while session A's
//! transaction is open (its entries applied but not committed), session B's autocommit
//! entries after it do commit. If the replay then stops, A's transaction is rolled back and
//! must be applied again from its start, but B's must not: those go to `also_applied`.
//!
//! The file is replaced atomically (write a temp file, fsync, rename, fsync the directory),
//! so after a crash it is either the old cursor or the new one.
//!
//! ```text
//! {"version":1,"seq":1712000000000123,"applied_through":{"run":1,"seq":1712000000000123,"rank":1,"session":4},"also_applied":[],"updated_unix_ms":…}
//! ```

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::record::{EntryId, EntryKey};
use super::writer::sync_dir;
use super::JournalError;

pub const CURSOR_FILE: &str = "cursor";
const CURSOR_VERSION: u32 = 1;

/// What replay has applied (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub version: u32,
    /// The seq of `applied_through`, for humans reading the file.
    pub seq: Option<u64>,
    /// Every entry at or before this one has been applied.
    pub applied_through: Option<EntryId>,
    /// Entries after `applied_through` that have been applied as well.
    pub also_applied: BTreeSet<EntryId>,
    pub updated_unix_ms: u64,
}

impl Cursor {
    /// The cursor in `dir`; an empty one (nothing applied) when there is no file.
    pub fn load(dir: &Path) -> Result<Cursor, JournalError> {
        let path = dir.join(CURSOR_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Cursor::default()),
            Err(e) => return Err(JournalError::io(&path)(e)),
        };
        let cursor: Cursor =
            serde_json::from_slice(&text).map_err(|e| JournalError::BadCursor {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if cursor.version != CURSOR_VERSION {
            return Err(JournalError::BadCursor {
                path,
                reason: format!(
                    "version {} (this switchyard reads version {CURSOR_VERSION})",
                    cursor.version
                ),
            });
        }
        Ok(cursor)
    }

    /// Replaces the cursor file in `dir` atomically and durably.
    pub fn store(&self, dir: &Path) -> Result<(), JournalError> {
        let mut cursor = self.clone();
        cursor.version = CURSOR_VERSION;
        cursor.seq = cursor.applied_through.map(|k| k.seq);
        cursor.updated_unix_ms = crate::clock::unix_ms();
        let mut text = serde_json::to_vec(&cursor).expect("a cursor serializes");
        text.push(b'\n');
        let path = dir.join(CURSOR_FILE);
        let tmp = dir.join(format!("{CURSOR_FILE}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(JournalError::io(&tmp))?;
        file.write_all(&text).map_err(JournalError::io(&tmp))?;
        file.sync_all().map_err(JournalError::io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(JournalError::io(&path))?;
        sync_dir(dir).map_err(JournalError::io(dir))
    }

    /// Whether the entry at `key` has been applied.
    pub fn is_applied(&self, key: &EntryKey) -> bool {
        let id = key.id();
        self.applied_through.is_some_and(|t| id <= t) || self.also_applied.contains(&id)
    }

    /// The highest run the cursor mentions (0 if none).
    pub fn highest_run(&self) -> u64 {
        let through = self.applied_through.map_or(0, |k| k.run);
        let also = self.also_applied.iter().map(|k| k.run).max().unwrap_or(0);
        through.max(also)
    }
}
