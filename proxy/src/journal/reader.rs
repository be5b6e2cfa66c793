//! Loading a journal directory: every segment, every line, and what is wrong with them.
//!
//! A line that fails to decode is one of two things. If no valid line follows it in its
//! segment, it is a *torn tail*: the process or machine stopped in the middle of a write
//! (or the file system left zeros at the end of the file after a crash). Nothing after it
//! was ever acknowledged as durable, so it is skipped with a warning. If a valid line
//! follows, the segment is *corrupt* there: an entry that was written is unreadable, and
//! replaying around it could apply later writes without an earlier one, so replay refuses
//! until an operator has looked at it (file and line are reported). Every segment can have
//! a torn tail, because each switchyard process writes segments of its own.
//!
//! Everything is read into memory: entries are small (a few statements and their
//! parameters), and a journal is bounded by how long the secondary was unavailable.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::record::{self, segment_number, EntryKey};
use super::{JournalEntry, JournalError};

/// One entry and where it sits in replay order.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: EntryKey,
    pub entry: JournalEntry,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineIssue {
    pub file: PathBuf,
    /// 1-based.
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for LineIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} line {}: {}",
            self.file.display(),
            self.line,
            self.reason
        )
    }
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentInfo {
    pub name: String,
    pub bytes: u64,
    pub entries: u64,
}

/// Everything in a journal directory.
#[derive(Debug, Default)]
pub struct Loaded {
    /// In file order (segment, line); sort by key for replay order.
    pub entries: Vec<Stored>,
    pub segments: Vec<SegmentInfo>,
    pub torn: Vec<LineIssue>,
    pub corrupt: Vec<LineIssue>,
}

/// Reads every segment of `dir`, in segment order. A missing directory is an empty journal.
pub fn load(dir: &Path) -> Result<Loaded, JournalError> {
    let mut loaded = Loaded::default();
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(loaded),
        Err(e) => return Err(JournalError::io(dir)(e)),
    };
    let mut segments = Vec::new();
    for item in listing {
        let item = item.map_err(JournalError::io(dir))?;
        let name = item.file_name();
        if let Some(number) = name.to_str().and_then(segment_number) {
            segments.push((number, item.path()));
        }
    }
    segments.sort();
    for (number, path) in segments {
        read_segment(&mut loaded, number, &path)?;
    }
    Ok(loaded)
}

fn read_segment(loaded: &mut Loaded, number: u64, path: &Path) -> Result<(), JournalError> {
    let bytes = fs::read(path).map_err(JournalError::io(path))?;
    let mut entries = 0;
    // Lines that failed since the last good one: corrupt if a good line follows, torn if not.
    let mut bad: Vec<LineIssue> = Vec::new();
    let mut rest = &bytes[..];
    let mut line_no = 0u64;
    while !rest.is_empty() {
        line_no += 1;
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = &rest[..end];
                rest = &rest[end + 1..];
                (line, true)
            }
            None => {
                let line = rest;
                rest = &[];
                (line, false)
            }
        };
        // A complete checksum proves the line whole even if its newline never made it.
        match record::decode(line) {
            Ok((run, entry)) => {
                loaded.corrupt.append(&mut bad);
                loaded.entries.push(Stored {
                    key: EntryKey::new(run, &entry, number, line_no),
                    entry,
                });
                entries += 1;
            }
            Err(reason) => {
                let reason = if complete {
                    reason
                } else {
                    format!("{reason}; the line has no newline (a write cut short)")
                };
                bad.push(LineIssue {
                    file: path.to_path_buf(),
                    line: line_no,
                    reason,
                });
            }
        }
    }
    loaded.torn.append(&mut bad);
    loaded.segments.push(SegmentInfo {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes: bytes.len() as u64,
        entries,
    });
    Ok(())
}
