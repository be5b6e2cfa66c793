//! `switchyard journal replay`: apply the journal to its target upstream, in order, once.
//!
//! All entries are loaded into memory (they are small; see [`super::reader`]), sorted by
//! [`EntryKey`] — `(run, seq)`, the order in which the primary acknowledged them — and those
//! the [`Cursor`] does not mark as applied are sent, each on its session's own connection
//! (opened lazily as the entry's user, to its database, with its startup parameters, and
//! closed after the session's last entry), so prepared statements and SET values carry over
//! between a session's entries. A connection opened for a session whose preludes were
//! applied by an earlier replay gets those preludes again first.
//!
//! The first entry the upstream answers with an error stops the replay: the report names
//! the entry and the error, and the cursor records exactly what was committed, so the next
//! replay, once the cause is fixed, starts with that entry. "Committed" matters: entries of
//! a transaction that is still open when the replay stops are rolled back with their
//! connection, so they stay pending and are applied again from the transaction's start
//! (see [`super::cursor`]). Likewise a session whose journaled entries end inside a
//! transaction (the COMMIT is not in the journal: the primary rolled it back, or it is
//! still running) has that transaction rolled back, reported, and left pending.
//!
//! Limitations of this version: session state set by a *unit* (rather than a prelude) is
//! not re-established when a later replay resumes that session on a new connection; and an
//! entry appended by a running switchyard *after* a replay has moved past its seq is never
//! applied (the report warns when a switchyard holds the journal open).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use switchyard_config::{Config, UserSecret};

use super::apply::{ReplayConn, ServerError};
use super::cursor::Cursor;
use super::reader::{self, LineIssue, Stored};
use super::record::segment_name;
use super::{lock, EntryKind, JournalError};
use crate::upstream::Login;

/// How many divergences a report lists (all are counted).
const MAX_LISTED_DIVERGENCES: usize = 100;

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// How often the cursor is saved while entries are applied; it is always saved when the
    /// replay ends or stops. Zero saves after every entry. A replay killed outright (not
    /// interrupted) applies again, next time, what it applied since its last save.
    pub checkpoint_interval: Duration,
    /// When set to true (by a Ctrl-C handler), the replay stops after the entry in flight.
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            progress: false,
            checkpoint_interval: Duration::from_millis(200),
            interrupt: None,
        }
    }
}

/// What a replay did. A replay that stopped at an entry still returns a report (with
/// [`ReplayReport::stopped`] set); [`ReplayError`] is for a journal that cannot be replayed
/// at all.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub dir: PathBuf,
    /// Entries applied and committed by this replay (preludes included).
    pub applied: u64,
    /// Sessions with at least one entry applied by this replay.
    pub sessions: u64,
    /// The upstreams entries were applied to.
    pub targets: Vec<String>,
    /// Entries already applied by earlier replays.
    pub already_applied: u64,
    pub pending_before: u64,
    pub pending_after: u64,
    pub elapsed_ms: u64,
    /// The seq of the cursor's "applied through" entry after this replay.
    pub cursor_seq: Option<u64>,
    /// The entry the replay stopped at, and why.
    pub stopped: Option<Stopped>,
    /// The replay was interrupted between two entries.
    pub interrupted: bool,
    /// Entries whose CommandComplete tags differ from the primary's (the replay goes on).
    pub divergence_count: u64,
    pub divergences: Vec<ReplayDivergence>,
    /// Transactions left open by their session's last journaled entry: rolled back and left
    /// pending.
    pub rolled_back: Vec<RolledBack>,
    /// Torn lines skipped (the end of a segment cut short by a crash).
    pub torn_lines: Vec<LineIssue>,
    /// A switchyard process had the journal open and may still append to it.
    pub writer_active: bool,
}

impl ReplayReport {
    /// Every pending entry was applied.
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none() && !self.interrupted && self.pending_after == 0
    }

    fn empty(dir: &Path) -> ReplayReport {
        ReplayReport {
            dir: dir.to_path_buf(),
            applied: 0,
            sessions: 0,
            targets: Vec::new(),
            already_applied: 0,
            pending_before: 0,
            pending_after: 0,
            elapsed_ms: 0,
            cursor_seq: None,
            stopped: None,
            interrupted: false,
            divergence_count: 0,
            divergences: Vec::new(),
            rolled_back: Vec::new(),
            torn_lines: Vec::new(),
            writer_active: false,
        }
    }
}

/// The entry a replay stopped at.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    pub seq: u64,
    pub run: u64,
    pub session: u64,
    pub kind: EntryKind,
    pub target: String,
    pub summary: String,
    pub file: PathBuf,
    pub line: u64,
    pub reason: StopReason,
}

/// Why a replay stopped at an entry.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// The upstream refused the entry; it was not applied.
    ServerError(ServerError),
    /// No connection could be opened for the entry's session; it was not applied.
    Connect { message: String },
    /// The connection failed while the entry was in flight: whether the upstream applied it
    /// is unknown, so check before replaying again.
    Lost { message: String },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::ServerError(e) => {
                write!(f, "{} {}: {}", e.severity, e.sqlstate, e.message)?;
                if let Some(detail) = &e.detail {
                    write!(f, " (detail: {detail})")?;
                }
                Ok(())
            }
            StopReason::Connect { message } => write!(f, "cannot connect: {message}"),
            StopReason::Lost { message } => write!(
                f,
                "{message}; the entry may or may not have been applied, check before replaying again"
            ),
        }
    }
}

/// An entry whose outcome on the target differs from the primary's.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayDivergence {
    pub seq: u64,
    pub session: u64,
    pub summary: String,
    pub primary_tags: Vec<String>,
    pub target_tags: Vec<String>,
}

/// A session's transaction that its journaled entries leave open.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    pub run: u64,
    pub session: u64,
    pub txn: Option<u64>,
    pub entries: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Why a journal cannot be replayed at all (nothing was applied).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "the journal has {} corrupt line(s), first {}: replaying around them could apply \
         later writes without earlier ones; repair or remove the line(s) and replay again",
        lines.len(), lines[0]
    )]
    Corrupt { lines: Vec<LineIssue> },
    #[error(
        "entry seq {seq} (session {session}, {} line {line}) is for upstream {target:?}, \
         which the configuration does not define (it has {known})",
        file.display()
    )]
    UnknownTarget {
        seq: u64,
        session: u64,
        target: String,
        file: PathBuf,
        line: u64,
        known: String,
    },
    #[error("another `switchyard journal replay` is running on {}", dir.display())]
    Busy { dir: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SessionKey {
    run: u64,
    session: u64,
}

impl SessionKey {
    fn of(stored: &Stored) -> SessionKey {
        SessionKey {
            run: stored.key.run,
            session: stored.entry.session,
        }
    }
}

/// Applies the journal in `dir` to the upstreams of `config`. See the module docs.
pub async fn replay(
    dir: &Path,
    config: &Config,
    options: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let mut report = ReplayReport::empty(dir);
    if !dir.exists() {
        return Ok(report);
    }
    let _replay_lock =
        match lock::try_replay_lock(dir).map_err(JournalError::io(dir.join(lock::REPLAY_LOCK)))? {
            Some(lock) => lock,
            None => return Err(ReplayError::Busy { dir: dir.into() }),
        };
    report.writer_active = lock::writer_active(dir);
    let loaded = reader::load(dir)?;
    if !loaded.corrupt.is_empty() {
        return Err(ReplayError::Corrupt {
            lines: loaded.corrupt,
        });
    }
    for torn in &loaded.torn {
        tracing::warn!(file = %torn.file.display(), line = torn.line, reason = %torn.reason, "skipping a torn journal line");
    }
    report.torn_lines = loaded.torn;
    let base = Cursor::load(dir)?;
    let mut entries = loaded.entries;
    entries.sort_by_key(|s| s.key);
    let pending: Vec<bool> = entries.iter().map(|s| !base.is_applied(&s.key)).collect();
    report.pending_before = pending.iter().filter(|&&p| p).count() as u64;
    report.already_applied = entries.len() as u64 - report.pending_before;

    let mut last_of_session = HashMap::new();
    let mut preludes: HashMap<SessionKey, Vec<usize>> = HashMap::new();
    for (i, stored) in entries.iter().enumerate() {
        let session = SessionKey::of(stored);
        if pending[i] {
            if config.upstream(&stored.entry.target).is_none() {
                return Err(unknown_target(dir, config, stored));
            }
            last_of_session.insert(session, i);
        }
        if stored.entry.kind == EntryKind::Prelude {
            preludes.entry(session).or_default().push(i);
        }
    }

    // Each transaction is applied whole, at the position of its last entry (its COMMIT or
    // ROLLBACK): in the primary's commit order. Applying a transaction's statements at their
    // own positions instead could leave one replay session waiting on a lock held by another
    // replay session's transaction whose COMMIT comes later in the journal: two sessions'
    // acknowledgements can be logged in either order when they are microseconds apart.
    let mut group_end: HashMap<(SessionKey, u64), usize> = HashMap::new();
    for (i, stored) in entries.iter().enumerate() {
        if let (true, EntryKind::Unit, Some(txn)) =
            (pending[i], stored.entry.kind, stored.entry.txn)
        {
            group_end.insert((SessionKey::of(stored), txn), i);
        }
    }
    let mut deferred: HashMap<(SessionKey, u64), Vec<usize>> = HashMap::new();

    let bar = progress_bar(options.progress, report.pending_before);
    let mut progress = Progress::new(&entries, base);
    let mut conns: HashMap<SessionKey, ReplayConn> = HashMap::new();
    let mut divergences = Vec::new();
    let mut stored_at = Instant::now();
    let mut saved = progress.base.clone();

    'entries: for (index, stored) in entries.iter().enumerate() {
        if !pending[index] {
            progress.skipped(index);
            continue;
        }
        let batch = match (stored.entry.kind, stored.entry.txn) {
            (EntryKind::Unit, Some(txn)) => {
                let group = (SessionKey::of(stored), txn);
                if group_end.get(&group) != Some(&index) {
                    deferred.entry(group).or_default().push(index);
                    progress.deferred(index);
                    continue;
                }
                let mut batch = deferred.remove(&group).unwrap_or_default();
                batch.push(index);
                batch
            }
            _ => vec![index],
        };
        for i in batch {
            let stored = &entries[i];
            if options
                .interrupt
                .as_ref()
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
            {
                report.interrupted = true;
                break 'entries;
            }
            let session = SessionKey::of(stored);
            let conn = match conns.entry(session) {
                Entry::Occupied(open) => open.into_mut(),
                Entry::Vacant(slot) => {
                    let earlier: Vec<usize> = preludes
                        .get(&session)
                        .map(|p| {
                            p.iter()
                                .copied()
                                .filter(|&j| j < i && !pending[j])
                                .collect()
                        })
                        .unwrap_or_default();
                    match open_session(dir, config, &entries, i, &earlier).await {
                        Ok(conn) => slot.insert(conn),
                        Err(stopped) => {
                            report.stopped = Some(*stopped);
                            break 'entries;
                        }
                    }
                }
            };
            bar.set_message(format!("seq {}", stored.key.seq));
            match conn.apply(&stored.entry.frames).await {
                Err(e) => {
                    conns.remove(&session);
                    report.stopped = Some(stopped(
                        dir,
                        stored,
                        StopReason::Lost {
                            message: e.to_string(),
                        },
                    ));
                    break 'entries;
                }
                Ok(answer) => {
                    if let Some(error) = answer.error {
                        report.stopped = Some(stopped(dir, stored, StopReason::ServerError(error)));
                        break 'entries;
                    }
                    let entry = &stored.entry;
                    if !entry.primary_tags.is_empty() && entry.primary_tags != answer.tags {
                        tracing::warn!(seq = entry.seq, session = entry.session, primary = ?entry.primary_tags, target = ?answer.tags, statement = %entry.summary, "replayed entry diverges from the primary");
                        report.divergence_count += 1;
                        if divergences.len() < MAX_LISTED_DIVERGENCES {
                            divergences.push(ReplayDivergence {
                                seq: entry.seq,
                                session: entry.session,
                                summary: entry.summary.clone(),
                                primary_tags: entry.primary_tags.clone(),
                                target_tags: answer.tags,
                            });
                        }
                    }
                    progress.applied(session, i, answer.status == b'I');
                    bar.inc(1);
                }
            }
            if last_of_session.get(&session) == Some(&i) {
                if let Some(conn) = conns.remove(&session) {
                    conn.close().await;
                }
                if let Some(open) = progress.session_ended(session) {
                    tracing::warn!(session = open.session, entries = open.entries, first_seq = open.first_seq, "the session's journaled entries end inside a transaction; rolled back and left pending");
                    report.rolled_back.push(open);
                }
            }
            if stored_at.elapsed() >= options.checkpoint_interval {
                let cursor = progress.snapshot();
                if cursor != saved {
                    cursor.store(dir)?;
                    saved = cursor;
                }
                stored_at = Instant::now();
            }
        }
    }
    // Whatever is still open is rolled back with its connection and stays pending.
    for (_, conn) in conns.drain() {
        conn.close().await;
    }
    bar.finish_and_clear();
    let cursor = progress.snapshot();
    if cursor != saved {
        cursor.store(dir)?;
    }
    report.applied = progress.committed.len() as u64;
    report.sessions = progress.sessions.len() as u64;
    report.targets = progress.targets.iter().cloned().collect();
    report.pending_after = entries
        .iter()
        .filter(|s| !cursor.is_applied(&s.key))
        .count() as u64;
    report.cursor_seq = cursor.applied_through.map(|k| k.seq);
    report.divergences = divergences;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Opens the connection of the session of `entries[i]` and re-applies the `earlier`
/// preludes (applied by a previous replay on a connection that no longer exists).
async fn open_session(
    dir: &Path,
    config: &Config,
    entries: &[Stored],
    i: usize,
    earlier: &[usize],
) -> Result<ReplayConn, Box<Stopped>> {
    let stored = &entries[i];
    let entry = &stored.entry;
    let up = config
        .upstream(&entry.target)
        .expect("targets checked before replay");
    let client_password = config.user(&entry.user).and_then(|u| match &u.secret {
        Some(UserSecret::Password(p)) => Some(p.as_str()),
        _ => None,
    });
    let login = Login {
        user: up.user.as_deref().unwrap_or(&entry.user),
        password: up.password.as_deref().or(client_password),
        params: &entry.params,
        database: &entry.database,
    };
    let mut conn = ReplayConn::open(up, &login).await.map_err(|e| {
        Box::new(stopped(
            dir,
            stored,
            StopReason::Connect {
                message: e.to_string(),
            },
        ))
    })?;
    for &j in earlier {
        let prelude = &entries[j];
        let reason = match conn.apply(&prelude.entry.frames).await {
            Ok(answer) => match answer.error {
                None => continue,
                Some(error) => StopReason::ServerError(error),
            },
            Err(e) => StopReason::Lost {
                message: e.to_string(),
            },
        };
        conn.close().await;
        return Err(Box::new(stopped(dir, prelude, reason)));
    }
    Ok(conn)
}

fn stopped(dir: &Path, stored: &Stored, reason: StopReason) -> Stopped {
    let entry = &stored.entry;
    Stopped {
        seq: entry.seq,
        run: stored.key.run,
        session: entry.session,
        kind: entry.kind,
        target: entry.target.clone(),
        summary: entry.summary.clone(),
        file: dir.join(segment_name(stored.key.segment)),
        line: stored.key.line,
        reason,
    }
}

fn unknown_target(dir: &Path, config: &Config, stored: &Stored) -> ReplayError {
    let [a, b] = config.upstreams.names();
    ReplayError::UnknownTarget {
        seq: stored.entry.seq,
        session: stored.entry.session,
        target: stored.entry.target.clone(),
        file: dir.join(segment_name(stored.key.segment)),
        line: stored.key.line,
        known: format!("{a:?} and {b:?}"),
    }
}

fn progress_bar(wanted: bool, len: u64) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} entries, {per_sec}, eta {eta} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// What this replay has applied, as a [`Cursor`] (see [`super::cursor`] for the meaning).
///
/// Entries are processed in key order. An entry is committed when its session is idle
/// (ReadyForQuery `I`) after it, or after a later entry of its session; until then it is
/// unapplied. The cursor's "applied through" is the last processed entry before the first
/// unapplied one; entries committed after that point are listed in "also applied".
struct Progress<'a> {
    entries: &'a [Stored],
    base: Cursor,
    /// The last processed entry (index into `entries`).
    position: Option<usize>,
    /// Processed but not committed: open transactions, and those rolled back.
    unapplied: BTreeSet<usize>,
    /// Each session's open transaction.
    open: HashMap<SessionKey, Vec<usize>>,
    committed: Vec<usize>,
    sessions: HashSet<SessionKey>,
    targets: BTreeSet<String>,
}

impl<'a> Progress<'a> {
    fn new(entries: &'a [Stored], base: Cursor) -> Progress<'a> {
        Progress {
            entries,
            base,
            position: None,
            unapplied: BTreeSet::new(),
            open: HashMap::new(),
            committed: Vec::new(),
            sessions: HashSet::new(),
            targets: BTreeSet::new(),
        }
    }

    /// Entry `i` was applied by an earlier replay.
    fn skipped(&mut self, i: usize) {
        self.advance(i);
    }

    /// Entry `i` will be applied later, with the rest of its transaction.
    fn deferred(&mut self, i: usize) {
        self.advance(i);
        self.unapplied.insert(i);
    }

    fn advance(&mut self, i: usize) {
        if self.position.is_none_or(|p| i > p) {
            self.position = Some(i);
        }
    }

    /// Entry `i` of `session` was applied; `idle`: the session is outside a transaction.
    fn applied(&mut self, session: SessionKey, i: usize, idle: bool) {
        self.advance(i);
        let mut done = self.open.remove(&session).unwrap_or_default();
        done.push(i);
        if idle {
            for j in done {
                self.unapplied.remove(&j);
                self.committed.push(j);
            }
            self.sessions.insert(session);
            self.targets.insert(self.entries[i].entry.target.clone());
        } else {
            self.unapplied.insert(i);
            self.open.insert(session, done);
        }
    }

    /// The session's connection is closed: an open transaction is rolled back.
    fn session_ended(&mut self, session: SessionKey) -> Option<RolledBack> {
        let open = self.open.remove(&session)?;
        let first = &self.entries[*open.first()?];
        let last = &self.entries[*open.last()?];
        Some(RolledBack {
            run: session.run,
            session: session.session,
            txn: first.entry.txn,
            entries: open.len() as u64,
            first_seq: first.entry.seq,
            last_seq: last.entry.seq,
        })
    }

    fn snapshot(&self) -> Cursor {
        let mut cursor = self.base.clone();
        let through = match self.unapplied.first() {
            Some(&first) => first.checked_sub(1),
            None => self.position,
        };
        if let Some(id) = through.map(|i| self.entries[i].key.id()) {
            if cursor.applied_through.is_none_or(|t| id > t) {
                cursor.applied_through = Some(id);
            }
        }
        cursor
            .also_applied
            .extend(self.committed.iter().map(|&i| self.entries[i].key.id()));
        let through = cursor.applied_through;
        cursor
            .also_applied
            .retain(|k| through.is_none_or(|t| *k > t));
        cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::EntryId;
    use crate::journal::{EntryKey, JournalEntry};

    fn stored(seq: u64, session: u64) -> Stored {
        let entry = JournalEntry {
            seq,
            session,
            target: "green".into(),
            database: "app".into(),
            user: "app".into(),
            params: Vec::new(),
            txn: None,
            kind: EntryKind::Unit,
            frames: Vec::new(),
            primary_tags: Vec::new(),
            summary: String::new(),
            at_unix_ms: 0,
        };
        Stored {
            key: EntryKey::new(1, &entry, 1, seq),
            entry,
        }
    }

    fn key(seq: u64, session: u64) -> EntryKey {
        stored(seq, session).key
    }

    fn id(seq: u64, session: u64) -> EntryId {
        key(seq, session).id()
    }

    #[test]
    fn an_open_transaction_holds_the_cursor_and_later_commits_are_listed() {
        // Session 1: 1 (BEGIN), 2, 5 (COMMIT); session 2: 3, 4 autocommit.
        let entries: Vec<Stored> = [(1, 1), (2, 1), (3, 2), (4, 2), (5, 1)]
            .into_iter()
            .map(|(seq, s)| stored(seq, s))
            .collect();
        let s1 = SessionKey::of(&entries[0]);
        let s2 = SessionKey::of(&entries[2]);
        let mut p = Progress::new(&entries, Cursor::default());
        p.applied(s1, 0, false);
        p.applied(s1, 1, false);
        p.applied(s2, 2, true);
        p.applied(s2, 3, true);
        // Stopped here: session 1's transaction is rolled back.
        let c = p.snapshot();
        assert_eq!(c.applied_through, None);
        assert_eq!(c.also_applied, [id(3, 2), id(4, 2)].into_iter().collect());
        assert!(
            !c.is_applied(&key(1, 1)) && !c.is_applied(&key(2, 1)) && !c.is_applied(&key(5, 1))
        );

        // Next replay: 1, 2 again, 3 and 4 skipped, 5 commits.
        let mut p = Progress::new(&entries, c);
        p.applied(s1, 0, false);
        p.applied(s1, 1, false);
        p.skipped(2);
        p.skipped(3);
        p.applied(s1, 4, true);
        let c = p.snapshot();
        assert_eq!(c.applied_through, Some(id(5, 1)));
        assert!(c.also_applied.is_empty());
    }

    #[test]
    fn a_rolled_back_trailing_transaction_stays_pending() {
        let entries: Vec<Stored> = [(1, 1), (2, 2), (3, 1)]
            .into_iter()
            .map(|(seq, s)| stored(seq, s))
            .collect();
        let s1 = SessionKey::of(&entries[0]);
        let s2 = SessionKey::of(&entries[1]);
        let mut p = Progress::new(&entries, Cursor::default());
        p.applied(s1, 0, true);
        p.applied(s2, 1, false);
        let rolled = p.session_ended(s2).expect("open transaction");
        assert_eq!((rolled.entries, rolled.first_seq), (1, 2));
        p.applied(s1, 2, true);
        let c = p.snapshot();
        assert_eq!(c.applied_through, Some(id(1, 1)));
        assert_eq!(c.also_applied, [id(3, 1)].into_iter().collect());
    }
}
