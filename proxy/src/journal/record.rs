//! One journal line: the on-disk form of a [`JournalEntry`], and the [`EntryKey`] that orders
//! entries.
//!
//! A line is a JSON object (so `jq` and `grep` work on a journal) whose last member is a
//! CRC32 of everything before it:
//!
//! ```text
//! {"v":1,"run":1,"seq":17,…,"frames":["UQAAABlJTlNFUlQ…"],"crc32":"1c291ca3"}
//! ```
//!
//! The checksum covers the bytes from `{` up to (not including) `,"crc32":`, so it checks
//! the line exactly as written, without depending on how a JSON library re-serializes it.
//! Frames are base64 (standard alphabet, padded). A line that is cut short, altered or
//! holds a malformed frame is refused with a reason; [`crate::journal::reader`] decides
//! whether that is a torn tail or corruption.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::{EntryKind, JournalEntry};

/// The `v` of every line this version writes; lines of another version are refused.
pub const FORMAT_VERSION: u32 = 1;

/// `,"crc32":"` — what precedes the checksum's 8 hex digits and the closing `"}`.
const CRC_LEAD: &[u8] = b",\"crc32\":\"";
/// Length of the whole trailer: lead, 8 hex digits, `"}`.
const CRC_TRAILER_LEN: usize = CRC_LEAD.len() + 8 + 2;

/// The position of an entry in replay order: `(run, seq)`, a prelude before a unit of the
/// same seq, then the session, then where it is on disk, so that two entries never compare
/// equal (even if a caller gave two of them the same seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    pub run: u64,
    pub seq: u64,
    /// 0 for a prelude, 1 for a unit.
    pub rank: u8,
    pub session: u64,
    /// The segment number (`journal-NNNNNN.jsonl`) and 1-based line of the entry.
    pub segment: u64,
    pub line: u64,
}

/// What the cursor remembers of an entry: its [`EntryKey`] without the position on disk, so
/// that an operator who deletes a corrupt line (shifting the lines after it) or an old
/// segment does not change which entries count as applied. Ordered like the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryId {
    pub run: u64,
    pub seq: u64,
    pub rank: u8,
    pub session: u64,
}

impl EntryKey {
    pub fn new(run: u64, entry: &JournalEntry, segment: u64, line: u64) -> EntryKey {
        EntryKey {
            run,
            seq: entry.seq,
            rank: match entry.kind {
                EntryKind::Prelude => 0,
                EntryKind::Unit => 1,
            },
            session: entry.session,
            segment,
            line,
        }
    }

    pub fn id(&self) -> EntryId {
        EntryId {
            run: self.run,
            seq: self.seq,
            rank: self.rank,
            session: self.session,
        }
    }
}

/// The name of segment `number`: `journal-000042.jsonl` (wider past a million segments).
pub fn segment_name(number: u64) -> String {
    format!("journal-{number:06}.jsonl")
}

/// The number of a segment file name, `None` for any other file.
pub fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("journal-")?.strip_suffix(".jsonl")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks that every frame is one whole frontend message: a tag, a length of at least 4,
/// and exactly as many bytes as the length says. Replay sends the frames as they are, so a
/// malformed one would desynchronize the connection.
pub fn check_frames(frames: &[Bytes]) -> Result<(), String> {
    if frames.is_empty() {
        return Err("no frames".into());
    }
    for (i, frame) in frames.iter().enumerate() {
        if frame.len() < 5 {
            return Err(format!(
                "frame {i} is {} bytes, shorter than a header",
                frame.len()
            ));
        }
        let len = i32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
        if len < 4 || len as usize + 1 != frame.len() {
            return Err(format!(
                "frame {i} (type {:?}) declares length {len} but is {} bytes",
                frame[0] as char,
                frame.len()
            ));
        }
    }
    Ok(())
}

/// The line for `entry` in run `run`, newline included.
pub fn encode(run: u64, entry: &JournalEntry) -> Result<Vec<u8>, String> {
    check_frames(&entry.frames)?;
    let line = LineOut {
        v: FORMAT_VERSION,
        run,
        seq: entry.seq,
        session: entry.session,
        kind: entry.kind,
        txn: entry.txn,
        target: &entry.target,
        database: &entry.database,
        user: &entry.user,
        params: &entry.params,
        primary_tags: &entry.primary_tags,
        summary: &entry.summary,
        at_unix_ms: entry.at_unix_ms,
        frames: Frames(&entry.frames),
    };
    let mut out = serde_json::to_vec(&line).map_err(|e| e.to_string())?;
    // serde_json writes a struct as one object ending in `}`; the checksum replaces it.
    debug_assert_eq!(out.last(), Some(&b'}'));
    out.pop();
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(CRC_LEAD);
    out.extend_from_slice(format!("{crc:08x}\"}}\n").as_bytes());
    Ok(out)
}

/// The run and entry of one line (without its newline), or why it is not a valid line.
pub fn decode(line: &[u8]) -> Result<(u64, JournalEntry), String> {
    if line.len() < CRC_TRAILER_LEN + 2 || !line.ends_with(b"\"}") {
        return Err("incomplete line (no checksum at its end)".into());
    }
    let body_len = line.len() - CRC_TRAILER_LEN;
    let (body, trailer) = line.split_at(body_len);
    if !trailer.starts_with(CRC_LEAD) {
        return Err("incomplete line (no checksum at its end)".into());
    }
    let hex = &trailer[CRC_LEAD.len()..CRC_LEAD.len() + 8];
    let stored = std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("the checksum is not 8 hex digits")?;
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ));
    }
    let parsed: LineIn = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    if parsed.v != FORMAT_VERSION {
        return Err(format!(
            "format version {} (this switchyard reads version {FORMAT_VERSION})",
            parsed.v
        ));
    }
    let frames = parsed
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            BASE64
                .decode(f)
                .map(Bytes::from)
                .map_err(|e| format!("frame {i} is not base64: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_frames(&frames)?;
    Ok((
        parsed.run,
        JournalEntry {
            seq: parsed.seq,
            session: parsed.session,
            target: parsed.target,
            database: parsed.database,
            user: parsed.user,
            params: parsed.params,
            txn: parsed.txn,
            kind: parsed.kind,
            frames,
            primary_tags: parsed.primary_tags,
            summary: parsed.summary,
            at_unix_ms: parsed.at_unix_ms,
        },
    ))
}

#[derive(Serialize)]
struct LineOut<'a> {
    v: u32,
    run: u64,
    seq: u64,
    session: u64,
    kind: EntryKind,
    txn: Option<u64>,
    target: &'a str,
    database: &'a str,
    user: &'a str,
    params: &'a [(String, String)],
    primary_tags: &'a [String],
    summary: &'a str,
    at_unix_ms: u64,
    frames: Frames<'a>,
}

/// Serializes frames as base64 strings without building them all first.
struct Frames<'a>(&'a [Bytes]);

impl Serialize for Frames<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for frame in self.0 {
            seq.serialize_element(&BASE64.encode(frame))?;
        }
        seq.end()
    }
}

#[derive(Deserialize)]
struct LineIn {
    v: u32,
    run: u64,
    seq: u64,
    session: u64,
    kind: EntryKind,
    txn: Option<u64>,
    target: String,
    database: String,
    user: String,
    params: Vec<(String, String)>,
    primary_tags: Vec<String>,
    summary: String,
    at_unix_ms: u64,
    frames: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> JournalEntry {
        let mut q = vec![b'Q', 0, 0, 0, 0];
        q.extend_from_slice(b"insert into t values (1)\0");
        let len = (q.len() - 1) as i32;
        q[1..5].copy_from_slice(&len.to_be_bytes());
        JournalEntry {
            seq: 42,
            session: 7,
            target: "green".into(),
            database: "app".into(),
            user: "app".into(),
            params: vec![("application_name".into(), "line\n\"quoted\"".into())],
            txn: Some(3),
            kind: EntryKind::Unit,
            frames: vec![Bytes::from(q)],
            primary_tags: vec!["INSERT 0 1".into()],
            summary: "insert into t values ($1)".into(),
            at_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_line_round_trips_and_is_one_json_object() {
        let line = encode(3, &entry()).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let text = std::str::from_utf8(&line).unwrap();
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(value["seq"], 42);
        assert_eq!(value["crc32"].as_str().unwrap().len(), 8);
        let (run, back) = decode(&line[..line.len() - 1]).unwrap();
        assert_eq!((run, back), (3, entry()));
    }

    #[test]
    fn a_changed_byte_fails_the_checksum() {
        let mut line = encode(1, &entry()).unwrap();
        line.pop();
        let at = line.iter().position(|&b| b == b'4').unwrap();
        line[at] = b'5';
        assert!(decode(&line).unwrap_err().contains("checksum mismatch"));
    }

    #[test]
    fn a_cut_line_is_incomplete() {
        let line = encode(1, &entry()).unwrap();
        for cut in [0, 1, 10, line.len() / 2, line.len() - 3] {
            assert!(decode(&line[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut e = entry();
        e.frames = vec![Bytes::from_static(b"Q\0\0\0\x09ab")];
        assert!(encode(1, &e).unwrap_err().contains("declares length 9"));
        e.frames.clear();
        assert!(encode(1, &e).is_err());
    }

    #[test]
    fn segment_names_parse_back() {
        assert_eq!(segment_name(42), "journal-000042.jsonl");
        assert_eq!(segment_number("journal-000042.jsonl"), Some(42));
        assert_eq!(segment_number("journal-1234567.jsonl"), Some(1_234_567));
        assert_eq!(segment_number("journal-.jsonl"), None);
        assert_eq!(segment_number("journal-00001.jsonl.tmp"), None);
        assert_eq!(segment_number("cursor"), None);
    }
}
