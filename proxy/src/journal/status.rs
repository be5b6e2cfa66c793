//! `switchyard journal status`: what the journal holds and how much of it is still to
//! replay. Read-only: it neither creates the directory nor touches the cursor.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cursor::Cursor;
use super::reader::{self, LineIssue, SegmentInfo};
use super::{lock, JournalError};

/// A summary of a journal directory.
#[derive(Debug, Clone, Serialize)]
pub struct JournalStatus {
    pub dir: PathBuf,
    pub segments: Vec<SegmentInfo>,
    /// Readable entries (torn and corrupt lines excluded).
    pub entries: u64,
    /// Size of all segment files.
    pub bytes: u64,
    /// Distinct sessions (a session id of one switchyard process).
    pub sessions: u64,
    /// Distinct switchyard processes (runs) that wrote entries.
    pub runs: u64,
    pub oldest_unix_ms: Option<u64>,
    pub newest_unix_ms: Option<u64>,
    /// Entries already applied by replay.
    pub replayed: u64,
    /// Entries still to apply.
    pub pending: u64,
    /// Sessions with pending entries.
    pub pending_sessions: u64,
    /// Per target upstream, in name order.
    pub targets: Vec<TargetStatus>,
    /// The seq of the cursor's "applied through" entry.
    pub cursor_seq: Option<u64>,
    /// Lines at the end of a segment cut short by a crash (ignored by replay).
    pub torn_lines: Vec<LineIssue>,
    /// Unreadable lines followed by readable ones (replay refuses until they are repaired).
    pub corrupt_lines: Vec<LineIssue>,
    /// A switchyard process has the journal open and may append to it.
    pub writer_active: bool,
}

/// Entries of one target upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub entries: u64,
    pub pending: u64,
}

/// Summarizes the journal in `dir`. A missing directory is an empty journal.
pub fn status(dir: &Path) -> Result<JournalStatus, JournalError> {
    let loaded = reader::load(dir)?;
    let cursor = Cursor::load(dir)?;
    let mut sessions = HashSet::new();
    let mut pending_sessions = HashSet::new();
    let mut runs = HashSet::new();
    let mut targets: BTreeMap<&str, TargetStatus> = BTreeMap::new();
    let (mut replayed, mut pending) = (0, 0);
    for stored in &loaded.entries {
        let session = (stored.key.run, stored.entry.session);
        sessions.insert(session);
        runs.insert(stored.key.run);
        let target = targets
            .entry(&stored.entry.target)
            .or_insert_with(|| TargetStatus {
                name: stored.entry.target.clone(),
                entries: 0,
                pending: 0,
            });
        target.entries += 1;
        if cursor.is_applied(&stored.key) {
            replayed += 1;
        } else {
            pending += 1;
            target.pending += 1;
            pending_sessions.insert(session);
        }
    }
    let times = loaded.entries.iter().map(|s| s.entry.at_unix_ms);
    Ok(JournalStatus {
        dir: dir.to_path_buf(),
        entries: loaded.entries.len() as u64,
        bytes: loaded.segments.iter().map(|s| s.bytes).sum(),
        segments: loaded.segments,
        sessions: sessions.len() as u64,
        runs: runs.len() as u64,
        oldest_unix_ms: times.clone().min(),
        newest_unix_ms: times.max(),
        replayed,
        pending,
        pending_sessions: pending_sessions.len() as u64,
        targets: targets.into_values().collect(),
        cursor_seq: cursor.applied_through.map(|k| k.seq),
        torn_lines: loaded.torn,
        corrupt_lines: loaded.corrupt,
        writer_active: lock::writer_active(dir),
    })
}

/// `1712345678901` → `2024-04-05T19:34:38.901Z`.
pub(crate) fn format_unix_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::format_unix_ms;

    #[test]
    fn unix_milliseconds_format_as_utc() {
        assert_eq!(format_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_unix_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            format_unix_ms(1_712_345_678_901),
            "2024-04-05T19:34:38.901Z"
        );
    }
}
