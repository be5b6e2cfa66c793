//! [`Journal`]: the appender all sessions share.
//!
//! `append` serializes the entry outside the lock, then copies one line into the current
//! segment's buffer under it: cheap enough to call from a session's worker task. Durability
//! is batched ("group commit"): a background thread, woken by the first append after a
//! flush, waits `fsync_interval` so that entries of many sessions share one `fdatasync`,
//! then flushes the buffer and syncs, with the lock released during the sync itself. An
//! entry is therefore on disk within about `fsync_interval` of its `append`; `sync` forces
//! it at once (shutdown, tests).
//!
//! Segments are created lazily on the first append (an idle switchyard leaves no empty
//! files), never reopened (each [`Journal::open`] starts new ones: an old segment's last line
//! may be torn), and rotated before a line would take them past `segment_bytes`. A new
//! segment's directory entry is synced before the first line goes into it.
//!
//! After a failed write or sync the journal refuses every later entry ([`JournalError::Failed`]):
//! what reached the disk is then unknown, and writing on could leave a hole in the middle of
//! a segment, where replay would take it for corruption instead of a torn tail.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::cursor::Cursor;
use super::record::{self, segment_name, segment_number};
use super::{lock, JournalEntry, JournalError};

/// Default largest segment: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default longest time between an append and its fsync.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes buffered before a write(2) even without a flush.
const BUFFER_BYTES: usize = 256 << 10;

/// How a [`Journal`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// An appended entry is fsynced within about this long. Zero: the flusher syncs as soon
    /// as it wakes (still batched with whatever else arrived meanwhile).
    pub fsync_interval: Duration,
    /// A segment is rotated before a line would make it larger than this (a single larger
    /// line still gets a segment of its own).
    pub segment_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// The journal of one switchyard process: thread-safe, shared as `Arc<Journal>`. Dropping
/// it stops the flusher thread and syncs what is buffered.
pub struct Journal {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    /// The shared writer lock, held for the journal's lifetime (see [`super::lock`]).
    _lock: File,
}

struct Shared {
    dir: PathBuf,
    options: JournalOptions,
    state: Mutex<State>,
    /// Signalled on the first append after a flush, and on close.
    wake: Condvar,
    entries: AtomicU64,
    bytes: AtomicU64,
}

struct State {
    segment: Option<Segment>,
    /// The number the next segment will get (or a higher one, if taken meanwhile).
    next_number: u64,
    /// This journal's run: the number of its first segment, known once it exists.
    run: Option<u64>,
    /// Bytes are buffered or written but not yet synced.
    dirty: bool,
    closing: bool,
    failed: Option<String>,
}

struct Segment {
    path: PathBuf,
    writer: BufWriter<File>,
    /// A second handle on the same file, to sync it without holding the lock.
    sync_handle: Arc<File>,
    len: u64,
}

impl Journal {
    /// Opens the journal in `dir` with the default options (fsync within 20 ms, 64 MiB
    /// segments). Creates `dir` (mode 0700) if it is missing.
    pub fn open(dir: &Path) -> Result<Arc<Journal>, JournalError> {
        Journal::open_with(dir, JournalOptions::default())
    }

    /// [`Journal::open`] with explicit options.
    pub fn open_with(dir: &Path, options: JournalOptions) -> Result<Arc<Journal>, JournalError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(JournalError::io(dir))?;
        let lock =
            lock::hold_writer_lock(dir).map_err(JournalError::io(dir.join(lock::WRITER_LOCK)))?;
        let next_number = first_free_number(dir)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            options,
            state: Mutex::new(State {
                segment: None,
                next_number,
                run: None,
                dirty: false,
                closing: false,
                failed: None,
            }),
            wake: Condvar::new(),
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("journal-flush".into())
                .spawn(move || shared.flush_loop())
                .map_err(JournalError::io(dir))?
        };
        Ok(Arc::new(Journal {
            shared,
            flusher: Some(flusher),
            _lock: lock,
        }))
    }

    /// Appends `entry` to the current segment. Returns once the line is buffered; it is on
    /// disk within `fsync_interval` (or at [`Journal::sync`]).
    pub fn append(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        if let Some(reason) = &state.failed {
            return Err(shared.failed(reason));
        }
        // The run is only known once the first segment exists; it is part of the line.
        if state.segment.is_none() {
            shared.guard(&mut state, |shared, state| shared.rotate(state))?;
        }
        let run = state.run.expect("a segment exists, so the run is known");
        // Serialize without the lock held: many sessions append at once.
        drop(state);
        let line = record::encode(run, entry).map_err(|reason| JournalError::InvalidEntry {
            seq: entry.seq,
            reason,
        })?;
        let mut state = shared.lock();
        if let Some(reason) = &state.failed {
            return Err(shared.failed(reason));
        }
        shared.guard(&mut state, |shared, state| {
            let len = line.len() as u64;
            let full = state
                .segment
                .as_ref()
                .is_none_or(|s| s.len > 0 && s.len + len > shared.options.segment_bytes);
            if full {
                shared.rotate(state)?;
            }
            let segment = state.segment.as_mut().expect("rotated");
            segment
                .writer
                .write_all(&line)
                .map_err(JournalError::io(&segment.path))?;
            segment.len += len;
            Ok(())
        })?;
        if !state.dirty {
            state.dirty = true;
            shared.wake.notify_one();
        }
        drop(state);
        shared.entries.fetch_add(1, Ordering::Relaxed);
        shared.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes out and fsyncs everything appended so far.
    pub fn sync(&self) -> Result<(), JournalError> {
        self.shared.flush_and_sync()
    }

    /// Entries appended since [`Journal::open`].
    pub fn entries_written(&self) -> u64 {
        self.shared.entries.load(Ordering::Relaxed)
    }

    /// Bytes appended since [`Journal::open`].
    pub fn bytes_written(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        if let Err(e) = self.shared.flush_and_sync() {
            tracing::error!(error = %e, "cannot sync the journal at close");
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent enough to go on:
        // at worst a line was half-buffered, which the next failed write reports.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, reason: &str) -> JournalError {
        JournalError::Failed {
            dir: self.dir.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Runs `f`; an I/O error in it marks the journal failed for good.
    fn guard(
        &self,
        state: &mut State,
        f: impl FnOnce(&Self, &mut State) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        let result = f(self, state);
        if let Err(e @ JournalError::Io { .. }) = &result {
            tracing::error!(error = %e, "journal write failed; no further entries are accepted");
            state.failed = Some(e.to_string());
        }
        result
    }

    /// Closes the current segment (flushed and synced) and creates the next one.
    fn rotate(&self, state: &mut State) -> Result<(), JournalError> {
        if let Some(mut old) = state.segment.take() {
            old.writer.flush().map_err(JournalError::io(&old.path))?;
            old.sync_handle
                .sync_data()
                .map_err(JournalError::io(&old.path))?;
        }
        loop {
            let number = state.next_number;
            state.next_number += 1;
            let path = self.dir.join(segment_name(number));
            let file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => f,
                // Another journal in the same directory took it: try the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(JournalError::io(&path)(e)),
            };
            sync_dir(&self.dir).map_err(JournalError::io(&self.dir))?;
            let sync_handle = Arc::new(file.try_clone().map_err(JournalError::io(&path))?);
            state.run.get_or_insert(number);
            state.segment = Some(Segment {
                path,
                writer: BufWriter::with_capacity(BUFFER_BYTES, file),
                sync_handle,
                len: 0,
            });
            return Ok(());
        }
    }

    fn flush_and_sync(&self) -> Result<(), JournalError> {
        let mut state = self.lock();
        if let Some(reason) = &state.failed {
            return Err(self.failed(reason));
        }
        if !state.dirty {
            return Ok(());
        }
        let Some(segment) = state.segment.as_mut() else {
            state.dirty = false;
            return Ok(());
        };
        let flushed = segment
            .writer
            .flush()
            .map_err(JournalError::io(&segment.path));
        let handle = segment.sync_handle.clone();
        let path = segment.path.clone();
        if let Err(e) = flushed {
            state.failed = Some(e.to_string());
            return Err(e);
        }
        state.dirty = false;
        drop(state);
        // Appends go on into the buffer while the disk syncs.
        if let Err(e) = handle.sync_data() {
            let e = JournalError::io(&path)(e);
            tracing::error!(error = %e, "journal fsync failed; no further entries are accepted");
            self.lock().failed = Some(e.to_string());
            return Err(e);
        }
        Ok(())
    }

    /// The flusher thread: sleeps until something is appended, lets a batch accumulate for
    /// `fsync_interval`, syncs it, and exits when the journal is dropped.
    fn flush_loop(&self) {
        let mut state = self.lock();
        loop {
            state = self
                .wake
                .wait_while(state, |s| !s.dirty && !s.closing)
                .unwrap_or_else(|e| e.into_inner());
            if state.closing {
                return;
            }
            let interval = self.options.fsync_interval;
            if !interval.is_zero() {
                state = self
                    .wake
                    .wait_timeout_while(state, interval, |s| !s.closing)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            drop(state);
            // Failures are recorded in the state and reported to the next append.
            let _ = self.flush_and_sync();
            state = self.lock();
            if state.failed.is_some() {
                return;
            }
        }
    }
}

/// The first segment number after every existing segment and every run the cursor knows
/// (so a run never reuses the number of one already replayed, even if its files were
/// deleted).
fn first_free_number(dir: &Path) -> Result<u64, JournalError> {
    let mut highest = 0;
    for item in fs::read_dir(dir).map_err(JournalError::io(dir))? {
        let item = item.map_err(JournalError::io(dir))?;
        if let Some(n) = item.file_name().to_str().and_then(segment_number) {
            highest = highest.max(n);
        }
    }
    match Cursor::load(dir) {
        Ok(cursor) => highest = highest.max(cursor.highest_run()),
        // The proxy must start even if the cursor is damaged; replay reports it.
        Err(e) => tracing::warn!(error = %e, "cannot read the journal cursor"),
    }
    Ok(highest + 1)
}

/// Makes the directory's entries (a new or renamed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
