//! The secondary worker: one task per mirrored session that owns the session's connection
//! to its secondary and replays the session's units there, in the session's order, after
//! the primary has answered them. The client never waits for it: the session hands work
//! over through [`MirrorLink`] and goes on.
//!
//! What cannot be applied live goes to the journal, in order, never silently dropped:
//! - the secondary cannot be reached at session start, or its connection breaks: the
//!   transaction open on the secondary (rolled back there by the break) and everything
//!   after it are journaled;
//! - the secondary falls behind by more than `mirror.queue_capacity` units (slow, or
//!   stalled): the worker stops mirroring live. The unit in flight is left to finish in the
//!   background; if it leaves a transaction open, that transaction is journaled too, so
//!   the secondary's copy of it is rolled back rather than half-applied.
//!
//! Journal entries carry the global acknowledgement order (`seq`), so replay applies them
//! in the order the primary committed them, whatever order they were appended in. Before
//! the first journaled unit of a session, its session state (SET, PREPARE, named
//! statements) is journaled as a prelude so the units can run on a fresh connection.
//!
//! Sampled reads (shadow reads) go through the same queue, so they run on the secondary
//! after the session's earlier writes; see [`crate::shadow`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use switchyard_config::Upstream;
use switchyard_protocol::backend::{command_tag, rows_from_tag, ErrorFields};
use switchyard_protocol::frame::split_frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

use crate::diff::{self, Rules, TableNames, Verdict};
use crate::divergence::Divergence;
use crate::journal::{EntryKind, JournalEntry};
use crate::mismatch::{Mismatch, Status as MismatchStatus};
use crate::shadow::{self, Recheck, ShadowWork, Target};
use crate::state::Shared;
use crate::stream::Stream;
use crate::upstream::{self, Login};

/// How long units left in flight on a stalled secondary may take before they are given
/// up (and journaled: they may then be applied twice if the secondary was only slow).
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(600);
/// At shutdown, how long units in flight may take to be answered before they are journaled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Units written to the secondary in one pipelined batch, at most.
const MAX_BATCH: usize = 256;
const MAX_BATCH_BYTES: usize = 1 << 20;
/// How long a batch that ends inside a transaction waits for the transaction's next unit.
const HOLD: Duration = Duration::from_millis(10);

/// How a unit ended on one side.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// CommandComplete tags, in order.
    pub tags: Vec<String>,
    /// SQLSTATE of the ErrorResponse, if the unit failed.
    pub error: Option<String>,
}

impl Outcome {
    /// Whether `other` is the same outcome: both ok or both failed, and the same row
    /// counts statement by statement.
    pub fn agrees_with(&self, other: &Outcome) -> bool {
        if self.error.is_some() != other.error.is_some() {
            return false;
        }
        if self.error.is_some() {
            return true;
        }
        self.tags.len() == other.tags.len()
            && self
                .tags
                .iter()
                .zip(&other.tags)
                .all(|(a, b)| rows_from_tag(a) == rows_from_tag(b))
    }
}

/// What non-determinism reporting needs of a unit, kept while the unit itself is applied.
struct Note {
    ok: bool,
    fingerprint: String,
    summary: String,
    volatile: Vec<String>,
    inserts_into: Vec<String>,
}

impl Note {
    fn of(w: &UnitWork) -> Note {
        Note {
            ok: w.expect.error.is_none(),
            fingerprint: w.fingerprint.clone(),
            summary: w.summary.clone(),
            volatile: w.volatile.clone(),
            inserts_into: w.inserts_into.clone(),
        }
    }
}

/// A unit the secondary must replay, as decided by the session's tracker.
pub struct UnitWork {
    pub frames: Vec<Bytes>,
    /// The frames that re-create the session state this unit established (SET, PREPARE,
    /// named Parse), for the journal's prelude.
    pub prelude: Option<Vec<Bytes>>,
    pub expect: Outcome,
    pub txn: Option<u64>,
    pub summary: String,
    pub fingerprint: String,
    /// Volatile functions the unit's writes call (now(), random(), nextval(), ...).
    pub volatile: Vec<String>,
    /// Tables the unit INSERTs into or COPYs into, whose column defaults may be volatile.
    pub inserts_into: Vec<String>,
    /// Its first statement's kind, for the secondary's latencies.
    pub kind: crate::latency::StatementKind,
    /// See [`crate::order`]: the units of other sessions below it are applied first.
    pub floor: u64,
    /// It ended outside a transaction on the primary: later units of other sessions may
    /// depend on it (see [`crate::order`]).
    pub visible: bool,
}

enum Item {
    Unit {
        seq: u64,
        work: UnitWork,
    },
    CopyStart {
        seq: u64,
        floor: u64,
        frames: Vec<Bytes>,
        summary: String,
    },
    CopyData(Bytes),
    CopyEnd {
        outcome: Outcome,
        txn: Option<u64>,
    },
    /// A sampled read to run on the secondary and compare.
    Shadow(Box<ShadowWork>),
    /// Answered once everything queued before it has been handled.
    Drain(tokio::sync::oneshot::Sender<()>),
    /// Trade connections with the session: see [`MirrorLink::swap`].
    Swap(Box<SwapRequest>),
}

/// The session's primary connection, offered to the worker in exchange for its own.
pub struct SwapRequest {
    /// The upstream the offered connection goes to (the session's primary so far).
    pub upstream: Upstream,
    pub stream: Stream,
    pub buf: BytesMut,
    pub backend_pid: i32,
    pub backend_secret: i32,
    reply: tokio::sync::oneshot::Sender<Swapped>,
}

/// The worker's answer to a [`SwapRequest`].
pub enum Swapped {
    /// The worker's connection, to the secondary so far, which becomes the primary.
    Moved {
        stream: Stream,
        buf: BytesMut,
        backend_pid: i32,
        backend_secret: i32,
    },
    /// The secondary is not in step (journaling, or a transaction open there): the session
    /// keeps its primary. The offered connection comes back.
    Refused {
        stream: Stream,
        buf: BytesMut,
        reason: &'static str,
    },
}

struct Control {
    /// Set when switchyard shuts down: everything left goes to the journal.
    stopping: Arc<AtomicBool>,
    depth: AtomicUsize,
    capacity: usize,
    /// Bytes of COPY data queued: bounded by [`COPY_QUEUE_MAX`] rather than counted as units.
    copy_bytes: AtomicUsize,
    overflow: Notify,
    journaling: AtomicBool,
    /// Shadow reads queued and not yet run.
    shadow_pending: AtomicUsize,
}

impl Control {
    /// Resolves once the session's queue is deeper than its capacity. (A notification
    /// alone is not proof: it may be stale, from an overflow that has since drained.)
    async fn overflowed(&self) {
        loop {
            let notified = self.overflow.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.depth.load(Ordering::Relaxed) > self.capacity
                || self.copy_bytes.load(Ordering::Relaxed) > self.capacity * COPY_BYTES_PER_UNIT
                || self.stopping.load(Ordering::Relaxed)
            {
                return;
            }
            notified.await;
        }
    }
}

/// The session's end of its worker's queue.
#[derive(Clone)]
pub struct MirrorLink {
    tx: mpsc::UnboundedSender<Item>,
    control: Arc<Control>,
    capacity: usize,
    order: Arc<crate::order::Order>,
    session: u64,
    global_depth: Arc<std::sync::atomic::AtomicI64>,
}

impl MirrorLink {
    fn stats_depth(&self, delta: i64) {
        self.global_depth.fetch_add(delta, Ordering::Relaxed);
    }

    fn send(&self, item: Item) {
        self.stats_depth(1);
        let depth = self.control.depth.fetch_add(1, Ordering::Relaxed) + 1;
        if depth > self.capacity && !self.control.journaling.load(Ordering::Relaxed) {
            self.control.overflow.notify_one();
        }
        // The worker outlives the session's sends: it exits only once the queue is closed.
        let _ = self.tx.send(item);
    }

    fn next_seq(&self, visible: bool) -> u64 {
        self.order.assign(self.session, visible)
    }

    /// The floor of a request the client sends now (see [`crate::order`]).
    pub fn floor(&self) -> u64 {
        self.order.floor()
    }

    pub fn unit(&self, work: UnitWork) {
        let seq = self.next_seq(work.visible);
        self.send(Item::Unit { seq, work });
    }

    pub fn copy_start(&self, frames: Vec<Bytes>, summary: String, floor: u64) {
        // Its outcome is not known yet: others may depend on it.
        let seq = self.next_seq(true);
        self.send(Item::CopyStart {
            seq,
            floor,
            frames,
            summary,
        });
    }

    pub fn copy_data(&self, frames: Bytes) {
        // COPY data is bounded by bytes, not by the unit count.
        let bytes = self
            .control
            .copy_bytes
            .fetch_add(frames.len(), Ordering::Relaxed)
            + frames.len();
        if bytes > self.capacity * COPY_BYTES_PER_UNIT
            && !self.control.journaling.load(Ordering::Relaxed)
        {
            self.control.overflow.notify_one();
        }
        let _ = self.tx.send(Item::CopyData(frames));
    }

    pub fn copy_end(&self, outcome: Outcome, txn: Option<u64>) {
        self.send(Item::CopyEnd { outcome, txn });
    }

    /// Queues a sampled read for the secondary.
    pub fn shadow(&self, work: ShadowWork) {
        self.control.shadow_pending.fetch_add(1, Ordering::Relaxed);
        self.send(Item::Shadow(Box::new(work)));
    }

    /// Whether the worker can take another shadow read now: it is mirroring (not
    /// journaling) and not behind on the shadow reads already queued.
    pub fn shadow_ready(&self) -> bool {
        !self.journaling()
            && self.control.shadow_pending.load(Ordering::Relaxed) < crate::shadow::MAX_PENDING
            && self.depth() < self.capacity / 2
    }

    /// Waits until everything queued so far has been applied or journaled.
    pub async fn drained(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Item::Drain(tx));
        let _ = rx.await;
    }

    /// Offers the session's primary connection (to `upstream`) for the worker's secondary
    /// connection, once everything queued before has been applied. Only when the secondary
    /// is in step: not journaling, and no transaction open there.
    pub async fn swap(
        &self,
        upstream: Upstream,
        stream: Stream,
        buf: BytesMut,
        backend: (i32, i32),
    ) -> Option<Swapped> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Item::Swap(Box::new(SwapRequest {
            upstream,
            stream,
            buf,
            backend_pid: backend.0,
            backend_secret: backend.1,
            reply,
        })));
        answer.await.ok()
    }

    /// Units queued and not yet handled.
    pub fn depth(&self) -> usize {
        self.control.depth.load(Ordering::Relaxed)
    }

    /// The session's writes now go to the journal instead of the secondary.
    pub fn journaling(&self) -> bool {
        self.control.journaling.load(Ordering::Relaxed)
    }
}

/// Who the worker is mirroring for.
pub struct SessionInfo {
    pub id: u64,
    pub secondary: Upstream,
    pub user: String,
    pub password: Option<String>,
    /// The client's user name and configured password: what a fresh connection to an
    /// upstream without its own `user`/`password` logs in with (shadow-read re-checks).
    pub client_user: String,
    pub client_password: Option<String>,
    pub database: String,
    pub params: Vec<(String, String)>,
}

/// Starts the worker for a session and returns the session's end of it.
pub fn spawn(shared: Arc<Shared>, info: SessionInfo) -> MirrorLink {
    let (tx, rx) = mpsc::unbounded_channel();
    let capacity = shared.config.load().mirror.queue_capacity;
    let control = Arc::new(Control {
        stopping: shared.mirror_workers.stopping.clone(),
        depth: AtomicUsize::new(0),
        capacity,
        copy_bytes: AtomicUsize::new(0),
        overflow: Notify::new(),
        journaling: AtomicBool::new(false),
        shadow_pending: AtomicUsize::new(0),
    });
    shared.mirror_workers.register(&control);
    let link = MirrorLink {
        tx,
        control: control.clone(),
        capacity,
        order: shared.order.clone(),
        session: info.id,
        global_depth: shared.mirror_stats.queue_depth.clone(),
    };
    let worker = Worker {
        shared,
        info,
        control,
        rx,
        conn: None,
        open_tx: Vec::new(),
        prelude: Vec::new(),
        prelude_journaled: false,
        copy: None,
        status: b'I',
        tables: TableNames::new(),
    };
    tokio::spawn(worker.run());
    link
}

/// A unit applied on the secondary inside a transaction that is still open there.
struct Applied {
    seq: u64,
    frames: Vec<Bytes>,
    tags: Vec<String>,
    txn: Option<u64>,
    summary: String,
    /// The session state the unit establishes (see [`UnitWork::prelude`]), for a unit whose
    /// prelude is not yet in `Worker::prelude`.
    prelude: Option<Vec<Bytes>>,
}

/// A connection the worker talks to (its secondary, or a re-check's).
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    pub(crate) buf: BytesMut,
    pub(crate) backend_pid: i32,
    pub(crate) backend_secret: i32,
}

/// The COPY being streamed: where it stands on the secondary.
struct CopyState {
    seq: u64,
    summary: String,
    /// The secondary refused the COPY (its error), so data is not sent.
    refused: Option<String>,
    /// Started with the extended protocol: CopyDone must be followed by a Sync (the one
    /// sent before the data is ignored by PostgreSQL during COPY-in).
    extended: bool,
    /// The COPY is being journaled instead: all its frames so far.
    journal_frames: Option<Vec<Bytes>>,
    /// Everything streamed so far, kept (up to [`COPY_RETAIN_MAX`] bytes) so that the
    /// COPY can still be journaled whole if the secondary fails before it completes.
    retained: Option<(Vec<Bytes>, usize)>,
}

/// COPY data a session may have queued for its secondary before it falls back to the
/// journal, per unit of `mirror.queue_capacity` (64 MiB with the default 1000).
const COPY_BYTES_PER_UNIT: usize = 64 << 10;

/// How much of a streaming COPY is kept in memory for the journal, per session. A COPY
/// larger than this that loses its secondary midway is reported as lost to the mirror.
const COPY_RETAIN_MAX: usize = 64 << 20;

impl CopyState {
    fn retain(&mut self, frame: &Bytes) {
        if let Some((frames, bytes)) = self.retained.as_mut() {
            *bytes += frame.len();
            if *bytes > COPY_RETAIN_MAX {
                self.retained = None;
            } else {
                frames.push(frame.clone());
            }
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    info: SessionInfo,
    control: Arc<Control>,
    rx: mpsc::UnboundedReceiver<Item>,
    conn: Option<Conn>,
    open_tx: Vec<Applied>,
    prelude: Vec<(u64, Vec<Bytes>, String)>,
    prelude_journaled: bool,
    copy: Option<CopyState>,
    /// The secondary connection's transaction status after the last answer.
    status: u8,
    /// Table names of the secondary, by OID, for `shadow_reads.ignore_columns`.
    tables: TableNames,
}

struct SecondaryResult {
    outcome: Outcome,
    status: u8,
    /// From the previous answer (or the write) to this ReadyForQuery: service time in a pipeline.
    elapsed: Duration,
}

impl Worker {
    async fn run(mut self) {
        let login = Login {
            user: &self.info.user,
            password: self.info.password.as_deref(),
            params: &self.info.params,
            database: &self.info.database,
        };
        match upstream::connect(&self.info.secondary, &login).await {
            Ok(c) => {
                self.shared.health.connected(&self.info.secondary.name);
                self.conn = Some(Conn {
                    stream: c.stream,
                    buf: c.leftover,
                    backend_pid: c.backend_pid,
                    backend_secret: c.backend_secret,
                })
            }
            Err(e) => {
                self.shared
                    .health
                    .failed(&self.info.secondary.name, &e.to_string());
                self.start_journaling(&format!("cannot connect to the secondary: {e}"))
            }
        }
        let mut next: Option<Item> = None;
        loop {
            let item = match next.take() {
                Some(item) => item,
                None => match self.rx.recv().await {
                    Some(item) => self.dequeued(item),
                    None => break,
                },
            };
            let Item::Unit { seq, work } = item else {
                self.handle(item).await;
                continue;
            };
            self.wait_for_order(work.floor).await;
            let (batch, after) = self.gather(seq, work).await;
            next = after;
            let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
            self.shared.order.started(&seqs);
            self.units(batch).await;
            self.shared.order.done(&seqs);
            self.units_settled(seqs.len());
        }
        if let Some(copy) = self.copy.take() {
            // The session ended in the middle of a COPY.
            self.shared.order.done(&[copy.seq]);
        }
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.stream.write_all(&[b'X', 0, 0, 0, 4]).await;
        }
        debug!(session = self.info.id, "mirror worker finished");
    }

    /// Collects the batch that starts with `first`, to be written to the secondary at once
    /// and answered in order (pipelined), so the secondary's round trip and wake-ups are
    /// paid once per batch instead of once per unit:
    /// - everything already queued joins it;
    /// - while the batch ends inside a transaction on the primary, the worker waits up to
    ///   [`HOLD`] for the next unit of that transaction, so a transaction reaches the
    ///   secondary as one write (nothing can observe its effects before it commits, and
    ///   the unit that ends it is sent at once);
    /// - a unit that must first wait for another session's (see [`crate::order`]), any
    ///   other item, or the batch limits end it. That item is returned, to be handled next.
    async fn gather(&mut self, seq: u64, first: UnitWork) -> (Vec<(u64, UnitWork)>, Option<Item>) {
        let mut open = !first.visible;
        let mut bytes = first.frames.iter().map(Bytes::len).sum::<usize>();
        let mut batch = vec![(seq, first)];
        // Held units still count as queued: a hold must not itself overflow the queue.
        let limit = MAX_BATCH.min(self.control.capacity / 2).max(1);
        while batch.len() < limit && bytes < MAX_BATCH_BYTES {
            let item = match self.rx.try_recv() {
                Ok(item) => item,
                Err(_) if open && !self.journaling() && self.conn.is_some() => {
                    match tokio::time::timeout(HOLD, self.rx.recv()).await {
                        Ok(Some(item)) => item,
                        Ok(None) | Err(_) => break,
                    }
                }
                Err(_) => break,
            };
            match self.dequeued(item) {
                // Inside the primary's transaction the secondary is inside it too, and a
                // worker inside a transaction never waits for others (see `wait_for_order`).
                Item::Unit { seq, work }
                    if open
                        || self.journaling()
                        || self.shared.order.ready(work.floor, self.info.id) =>
                {
                    open = !work.visible;
                    bytes += work.frames.iter().map(Bytes::len).sum::<usize>();
                    batch.push((seq, work));
                }
                other => return (batch, Some(other)),
            }
        }
        (batch, None)
    }

    /// `n` units were applied or journaled: they leave the queue's depth.
    fn units_settled(&self, n: usize) {
        self.shared
            .mirror_stats
            .queue_depth
            .fetch_sub(n as i64, Ordering::Relaxed);
        self.control.depth.fetch_sub(n, Ordering::Relaxed);
    }

    fn journaling(&self) -> bool {
        self.control.journaling.load(Ordering::Relaxed)
    }

    /// Waits until the units of other sessions that the primary acknowledged before this
    /// one was sent have been applied (see [`crate::order`]). Not while journaling: the
    /// journal is replayed in acknowledgement order anyway.
    ///
    /// Only a worker whose secondary connection is outside a transaction waits: it holds
    /// no locks there, so no unit it waits for can be waiting for it. Inside a
    /// transaction, the unit goes on at once (the primary already ordered it by its locks).
    async fn wait_for_order(&self, floor: u64) {
        if self.status == b'I' && !self.journaling() && self.conn.is_some() {
            self.shared.order.wait(floor, self.info.id).await;
        }
    }

    fn swap(&mut self, request: SwapRequest) {
        let refuse = if self.journaling() || self.conn.is_none() {
            Some("the secondary is missing writes (they are in the journal)")
        } else if !self.open_tx.is_empty() || self.copy.is_some() {
            Some("a transaction is open on the secondary")
        } else {
            None
        };
        let answer = match (refuse, self.conn.take()) {
            (None, Some(mine)) => {
                self.conn = Some(Conn {
                    stream: request.stream,
                    buf: request.buf,
                    backend_pid: request.backend_pid,
                    backend_secret: request.backend_secret,
                });
                self.info.secondary = request.upstream;
                self.status = b'I';
                // OIDs are per database.
                self.tables.clear();
                Swapped::Moved {
                    stream: mine.stream,
                    buf: mine.buf,
                    backend_pid: mine.backend_pid,
                    backend_secret: mine.backend_secret,
                }
            }
            (reason, mine) => {
                self.conn = mine;
                Swapped::Refused {
                    stream: request.stream,
                    buf: request.buf,
                    reason: reason.unwrap_or("no secondary connection"),
                }
            }
        };
        if let Err(Swapped::Moved { stream, .. }) = request.reply.send(answer) {
            // The session is gone: nothing to hand over to; close the connection.
            drop(stream);
        }
    }

    fn start_journaling(&mut self, reason: &str) {
        if !self.control.journaling.swap(true, Ordering::Relaxed) {
            warn!(session = self.info.id, secondary = %self.info.secondary.name, reason, "mirror falls back to the journal");
            self.shared
                .mirror_stats
                .journal_switches
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn handle(&mut self, item: Item) {
        match item {
            Item::Drain(done) => {
                let _ = done.send(());
            }
            Item::Swap(request) => self.swap(*request),
            Item::Unit { seq, work } => {
                self.wait_for_order(work.floor).await;
                self.shared.order.started(&[seq]);
                self.units(vec![(seq, work)]).await;
                self.shared.order.done(&[seq]);
            }
            Item::CopyStart {
                seq,
                floor,
                frames,
                summary,
            } => {
                self.wait_for_order(floor).await;
                self.shared.order.started(&[seq]);
                self.copy_start(seq, frames, summary).await;
            }
            Item::CopyData(frame) => self.copy_data(frame).await,
            Item::CopyEnd { outcome, txn } => {
                let seq = self.copy.as_ref().map(|c| c.seq);
                self.copy_end(outcome, txn).await;
                if let Some(seq) = seq {
                    self.shared.order.done(&[seq]);
                }
            }
            Item::Shadow(work) => {
                self.wait_for_order(work.floor).await;
                self.shadow(*work).await;
            }
        }
    }

    fn note_volatile(&self, work: &Note, defaults: Vec<String>) {
        if (work.volatile.is_empty() && defaults.is_empty()) || !work.ok {
            return;
        }
        let mut reasons = work.volatile.clone();
        reasons.extend(defaults);
        let first = self
            .shared
            .nondeterministic
            .record(&work.fingerprint, &reasons);
        if first {
            info!(
                fingerprint = %work.fingerprint,
                statement = %work.summary,
                reasons = %reasons.join(", "),
                "non-deterministic write: its result can differ on the two databases"
            );
        }
    }

    /// The volatile column defaults of `tables` ("table.column = nextval(...)"), looked up
    /// once per table in the secondary's catalog and cached for every session. An INSERT
    /// that relies on one fills the column differently on each side.
    async fn volatile_defaults(&mut self, tables: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for table in tables {
            if let Some(known) = self.shared.volatile_defaults.get(table) {
                found.extend(known.iter().cloned());
                continue;
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            let sql = format!(
                "SELECT a.attname || ' = ' || pg_get_expr(d.adbin, d.adrelid) \
                 FROM pg_attrdef d JOIN pg_attribute a \
                 ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
                 WHERE d.adrelid = to_regclass('{}') AND NOT a.attisdropped",
                table.replace('\'', "''")
            );
            match query_rows(conn, &sql).await {
                Ok(Some(rows)) if rows.is_empty() => {
                    // No defaults at all, or no such table (yet): cache only the former.
                    let exists = format!(
                        "SELECT 1 WHERE to_regclass('{}') IS NOT NULL",
                        table.replace('\'', "''")
                    );
                    match query_rows(conn, &exists).await {
                        Ok(Some(found)) if !found.is_empty() => {
                            self.shared
                                .volatile_defaults
                                .insert(table.clone(), Vec::new());
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.lost_secondary(&format!(
                                "connection to the secondary failed: {e}"
                            ));
                            break;
                        }
                    }
                }
                Ok(Some(rows)) => {
                    let volatile: Vec<String> = rows
                        .into_iter()
                        .filter(|expr| is_volatile_default(expr))
                        .map(|expr| format!("default of {table}.{expr}"))
                        .collect();
                    found.extend(volatile.iter().cloned());
                    self.shared
                        .volatile_defaults
                        .insert(table.clone(), volatile);
                }
                // The secondary's transaction is aborted, say: look again next time.
                Ok(None) => {}
                Err(e) => {
                    self.lost_secondary(&format!("connection to the secondary failed: {e}"));
                    break;
                }
            }
        }
        found
    }

    /// Takes `item` off the queue's accounting. A unit stays counted until it is applied or
    /// journaled ([`Worker::units_settled`]), so that the depth (the overflow check, a
    /// shutdown's wait) includes units held in a batch or in flight to the secondary.
    fn dequeued(&self, item: Item) -> Item {
        match &item {
            Item::Unit { .. } => {}
            Item::CopyData(data) => {
                self.control
                    .copy_bytes
                    .fetch_sub(data.len(), Ordering::Relaxed);
            }
            _ => {
                self.shared
                    .mirror_stats
                    .queue_depth
                    .fetch_sub(1, Ordering::Relaxed);
                self.control.depth.fetch_sub(1, Ordering::Relaxed);
            }
        }
        item
    }

    /// Applies a batch of units on the secondary (pipelined), or journals them.
    async fn units(&mut self, batch: Vec<(u64, UnitWork)>) {
        // Non-determinism is noted after the batch: the tables it creates exist by then.
        let notes: Vec<Note> = batch
            .iter()
            .filter(|(_, w)| !w.volatile.is_empty() || !w.inserts_into.is_empty())
            .map(|(_, w)| Note::of(w))
            .collect();
        self.apply_units(batch).await;
        for note in notes {
            let defaults = self.volatile_defaults(&note.inserts_into).await;
            self.note_volatile(&note, defaults);
        }
    }

    async fn apply_units(&mut self, batch: Vec<(u64, UnitWork)>) {
        let Some(mut conn) = self.conn.take().filter(|_| !self.journaling()) else {
            for (seq, w) in batch {
                self.journal_unit(seq, &w.frames, &w.expect.tags, w.txn, &w.summary);
            }
            return;
        };
        self.shared
            .mirror_stats
            .batches
            .fetch_add(1, Ordering::Relaxed);
        let mut outbox: VecDeque<Bytes> = batch
            .iter()
            .flat_map(|(_, w)| w.frames.iter().cloned())
            .collect();
        let mut results: Vec<SecondaryResult> = Vec::with_capacity(batch.len());
        let control = self.control.clone();
        let step = {
            let work = async {
                write_outbox(&mut conn.stream, &mut outbox).await?;
                while results.len() < batch.len() {
                    results.push(read_result(&mut conn).await?);
                }
                Ok::<(), std::io::Error>(())
            };
            tokio::pin!(work);
            tokio::select! {
                r = &mut work => match r {
                    Ok(()) => None,
                    Err(e) => Some(Err(e)),
                },
                () = control.overflowed() => Some(Ok(())),
            }
        };
        let answered = results.len();
        let mut rest = Vec::new();
        for (i, (seq, work)) in batch.into_iter().enumerate() {
            if i < answered {
                let result = results.remove(0);
                self.applied(seq, work, result);
            } else {
                rest.push(Applied {
                    seq,
                    frames: work.frames,
                    tags: work.expect.tags,
                    txn: work.txn,
                    summary: work.summary,
                    prelude: work.prelude,
                });
            }
        }
        match step {
            None => self.conn = Some(conn),
            Some(Err(e)) => {
                self.lost_secondary(&format!("connection to the secondary failed: {e}"));
                for a in rest {
                    self.journal_unit(a.seq, &a.frames, &a.tags, a.txn, &a.summary);
                }
            }
            Some(Ok(())) => self.overflowed(conn, outbox, rest),
        }
    }

    fn applied(&mut self, seq: u64, work: UnitWork, result: SecondaryResult) {
        let role = crate::latency::Role::Secondary;
        let latencies = &self.shared.latencies;
        latencies.record(&self.info.secondary.name, role, work.kind, result.elapsed);
        self.shared
            .mirror_stats
            .applied
            .fetch_add(1, Ordering::Relaxed);
        if !work.expect.agrees_with(&result.outcome) {
            self.shared.divergences.record(Divergence::new(
                self.info.id,
                &self.info.secondary.name,
                &work.fingerprint,
                &work.summary,
                work.expect.clone(),
                result.outcome.clone(),
            ));
        }
        if let Some(p) = work.prelude {
            if self.prelude.len() < 1000 {
                self.prelude.push((seq, p, work.summary.clone()));
            }
        }
        self.status = result.status;
        if result.status == b'I' {
            self.open_tx.clear();
        } else {
            self.open_tx.push(Applied {
                seq,
                frames: work.frames,
                tags: work.expect.tags,
                txn: work.txn,
                summary: work.summary,
                // Already in `self.prelude`.
                prelude: None,
            });
        }
    }

    /// The connection broke: what the secondary had of the open transaction is gone
    /// with it, so that goes to the journal first.
    fn lost_secondary(&mut self, reason: &str) {
        self.conn = None;
        self.shared.health.failed(&self.info.secondary.name, reason);
        self.start_journaling(reason);
        let open = std::mem::take(&mut self.open_tx);
        // The open transaction's units are journaled whole: what they establish (a named
        // Parse) must not also be in the prelude, or a replay would create it twice.
        self.take_preludes_of(&open);
        for a in open {
            self.journal_unit(a.seq, &a.frames, &a.tags, a.txn, &a.summary);
        }
    }

    /// Removes from the prelude, and returns, what the units `of` established.
    fn take_preludes_of(&mut self, of: &[Applied]) -> Vec<(u64, Vec<Bytes>, String)> {
        let seqs: std::collections::HashSet<u64> = of.iter().map(|a| a.seq).collect();
        let (taken, kept) = std::mem::take(&mut self.prelude)
            .into_iter()
            .partition(|(seq, _, _)| seqs.contains(seq));
        self.prelude = kept;
        taken
    }

    /// The session's queue overflowed while `in_flight` units were on their way to (or
    /// being answered by) the secondary. Mirroring stops; the units in flight are finished
    /// in the background (the rest of their bytes written, their answers read). Whatever
    /// they leave uncommitted on the secondary (the open transaction, or units that never
    /// got an answer) is journaled; the connection is then closed, which rolls the open
    /// transaction back there.
    ///
    /// The session state those units establish (a named Parse, a SET) dies with that
    /// connection: for every unit that is *not* journaled (it was applied), what it
    /// established goes into the journal's prelude, so that the journaled units that use it
    /// (an Execute of that statement) can run on a replay's fresh connection. A unit that is
    /// journaled carries its own.
    fn overflowed(&mut self, mut conn: Conn, mut outbox: VecDeque<Bytes>, in_flight: Vec<Applied>) {
        let reason = if self.control.stopping.load(Ordering::Relaxed) {
            "switchyard is shutting down"
        } else {
            "the secondary fell behind by more than mirror.queue_capacity"
        };
        self.start_journaling(reason);
        let grace = if self.control.stopping.load(Ordering::Relaxed) {
            SHUTDOWN_GRACE
        } else {
            IN_FLIGHT_GRACE
        };
        let mut open = std::mem::take(&mut self.open_tx);
        let journal = self.entry_template();
        // The open transaction's preludes wait until it is known whether it is journaled.
        let mut preludes = self.take_preludes_of(&open);
        self.journal_prelude();
        let shared = self.shared.clone();
        let session = self.info.id;
        self.shared
            .mirror_stats
            .unsettled
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // A unit leaves `unanswered` only once its answer is read: one still waiting
            // when the grace runs out is journaled like the rest.
            let mut unanswered: VecDeque<Applied> = in_flight.into();
            let settle = async {
                write_outbox(&mut conn.stream, &mut outbox).await?;
                while !unanswered.is_empty() {
                    let result = read_result(&mut conn).await?;
                    let Some(mut unit) = unanswered.pop_front() else {
                        break;
                    };
                    if let Some(prelude) = unit.prelude.take() {
                        preludes.push((unit.seq, prelude, unit.summary.clone()));
                    }
                    if result.status == b'I' {
                        open.clear();
                    } else {
                        open.push(unit);
                    }
                }
                Ok::<(), std::io::Error>(())
            };
            let settled = matches!(tokio::time::timeout(grace, settle).await, Ok(Ok(())));
            let journaled: std::collections::HashSet<u64> =
                open.iter().chain(&unanswered).map(|a| a.seq).collect();
            for (seq, frames, summary) in preludes {
                if !journaled.contains(&seq) {
                    journal.write(
                        &shared,
                        seq,
                        &frames,
                        &[],
                        None,
                        &summary,
                        EntryKind::Prelude,
                    );
                }
            }
            for a in open.iter().chain(&unanswered) {
                journal.write(
                    &shared,
                    a.seq,
                    &a.frames,
                    &a.tags,
                    a.txn,
                    &a.summary,
                    EntryKind::Unit,
                );
            }
            let _ = conn.stream.write_all(&[b'X', 0, 0, 0, 4]).await;
            shared
                .mirror_stats
                .unsettled
                .fetch_sub(1, Ordering::Relaxed);
            debug!(
                session,
                settled, "the units in flight at overflow are settled"
            );
        });
    }

    fn entry_template(&self) -> EntryTemplate {
        EntryTemplate {
            session: self.info.id,
            target: self.info.secondary.name.clone(),
            database: self.info.database.clone(),
            user: self.info.user.clone(),
            params: self.info.params.clone(),
        }
    }

    fn journal_prelude(&mut self) {
        if self.prelude_journaled {
            return;
        }
        self.prelude_journaled = true;
        let t = self.entry_template();
        for (seq, frames, summary) in std::mem::take(&mut self.prelude) {
            t.write(
                &self.shared,
                seq,
                &frames,
                &[],
                None,
                &summary,
                EntryKind::Prelude,
            );
        }
    }

    fn journal_unit(
        &mut self,
        seq: u64,
        frames: &[Bytes],
        tags: &[String],
        txn: Option<u64>,
        summary: &str,
    ) {
        self.journal_prelude();
        self.entry_template().write(
            &self.shared,
            seq,
            frames,
            tags,
            txn,
            summary,
            EntryKind::Unit,
        );
    }

    async fn copy_start(&mut self, seq: u64, frames: Vec<Bytes>, summary: String) {
        debug!(session = self.info.id, frames = frames.len(), tags = ?frames.iter().map(|f| f[0] as char).collect::<String>(), journaling = self.journaling(), "mirroring a COPY");
        let mut state = CopyState {
            seq,
            summary,
            refused: None,
            extended: frames.first().is_some_and(|f| f[0] != b'Q'),
            journal_frames: None,
            retained: Some((frames.clone(), frames.iter().map(Bytes::len).sum())),
        };
        if self.journaling() {
            state.journal_frames = Some(frames);
            self.copy = Some(state);
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            state.journal_frames = Some(frames);
            self.copy = Some(state);
            return;
        };
        let started = async {
            for f in &frames {
                conn.stream.write_all(f).await?;
            }
            conn.stream.flush().await?;
            // Wait for CopyInResponse, or the secondary's refusal.
            loop {
                let (tag, frame) = read_frame(conn).await?;
                match tag {
                    b'G' => return Ok::<Option<String>, std::io::Error>(None),
                    b'E' => {
                        let code = error_code(&frame);
                        // Read up to ReadyForQuery.
                        loop {
                            let (t, _) = read_frame(conn).await?;
                            if t == b'Z' {
                                return Ok(Some(code));
                            }
                        }
                    }
                    _ => {}
                }
            }
        };
        match started.await {
            Ok(refused) => {
                state.refused = refused;
                self.copy = Some(state);
            }
            Err(e) => {
                self.lost_secondary(&format!(
                    "connection to the secondary failed during COPY: {e}"
                ));
                state.journal_frames = Some(frames);
                self.copy = Some(state);
            }
        }
    }

    async fn copy_data(&mut self, frame: Bytes) {
        let Some(mut state) = self.copy.take() else {
            return;
        };
        if let Some(frames) = state.journal_frames.as_mut() {
            frames.push(frame);
        } else if state.refused.is_none() {
            state.retain(&frame);
            if let Some(mut conn) = self.conn.take() {
                let control = self.control.clone();
                let step = tokio::select! {
                    r = conn.stream.write_all(&frame) => r.err().map(|e| e.to_string()),
                    () = control.overflowed() => Some("the secondary fell behind by more than mirror.queue_capacity during COPY".to_owned()),
                };
                match step {
                    None => self.conn = Some(conn),
                    Some(reason) => {
                        // Dropping the connection aborts the COPY on the secondary, which
                        // rolls it back: it goes to the journal whole, if it was kept.
                        drop(conn);
                        self.lost_secondary(&reason);
                        match state.retained.take() {
                            Some((frames, _)) => state.journal_frames = Some(frames),
                            None => {
                                warn!(session = self.info.id, "a COPY larger than the retention limit lost its secondary midway; it is missing on the secondary and must be re-run there");
                                self.shared
                                    .mirror_stats
                                    .copies_lost
                                    .fetch_add(1, Ordering::Relaxed);
                                state.refused = Some("08006".into());
                            }
                        }
                    }
                }
            }
        }
        self.copy = Some(state);
    }

    async fn copy_end(&mut self, outcome: Outcome, txn: Option<u64>) {
        debug!(
            session = self.info.id,
            ?outcome,
            copy = self.copy.is_some(),
            "COPY ends"
        );
        let Some(state) = self.copy.take() else {
            return;
        };
        if let Some(mut frames) = state.journal_frames {
            if outcome.error.is_none() {
                // The Sync sent before the data is ignored during COPY-in; a replay counts
                // one ReadyForQuery per Sync, so only the final one is kept.
                frames.retain(|f| f[0] != b'S' && f[0] != b'H');
                frames.push(Bytes::from_static(&[b'c', 0, 0, 0, 4]));
                if state.extended {
                    frames.push(Bytes::from_static(&[b'S', 0, 0, 0, 4]));
                }
                self.journal_unit(state.seq, &frames, &outcome.tags, txn, &state.summary);
            }
            return;
        }
        if let Some(code) = state.refused {
            if outcome.error.is_none() {
                self.record_divergence(
                    &state.summary,
                    outcome,
                    Outcome {
                        tags: vec![],
                        error: Some(code),
                    },
                );
            }
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let end: &[u8] = if outcome.error.is_none() {
            &[b'c', 0, 0, 0, 4]
        } else {
            b"f\x00\x00\x00\x1bprimary rejected the COPY\x00"
        };
        let result = async {
            conn.stream.write_all(end).await?;
            if state.extended {
                conn.stream.write_all(&[b'S', 0, 0, 0, 4]).await?;
            }
            conn.stream.flush().await?;
            read_result(conn).await
        }
        .await;
        match result {
            Ok(r) => {
                if outcome.error.is_none() && !outcome.agrees_with(&r.outcome) {
                    self.record_divergence(&state.summary, outcome, r.outcome);
                }
                self.status = r.status;
                if r.status == b'I' {
                    self.open_tx.clear();
                }
            }
            Err(e) => self.lost_secondary(&format!(
                "connection to the secondary failed after COPY: {e}"
            )),
        }
    }

    /// Runs a sampled read on the secondary, compares its answer with the primary's, and
    /// reports a mismatch (re-checked later on both upstreams).
    async fn shadow(&mut self, work: ShadowWork) {
        self.control.shadow_pending.fetch_sub(1, Ordering::Relaxed);
        self.shadow_compare(work).await;
        self.shared
            .mismatches
            .stats
            .completed
            .fetch_add(1, Ordering::Relaxed);
    }

    async fn shadow_compare(&mut self, work: ShadowWork) {
        let stats = &self.shared.mismatches.stats;
        if self.journaling() || self.conn.is_none() || self.copy.is_some() {
            stats.skip("secondary not in step");
            return;
        }
        if self.status == b'E' {
            stats.skip("transaction failed on the secondary");
            return;
        }
        let config = self.shared.config.load_full();
        let settings = &config.shadow_reads;
        let rules = Rules {
            ordered: work.ordered,
            ignore: settings.ignore_columns.clone(),
            float_tolerance: settings.float_tolerance,
        };
        let frames = shadow::secondary_frames(
            &work.frames,
            self.status != b'I',
            settings.statement_timeout_ms,
        );
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let control = self.control.clone();
        let mut tables = std::mem::take(&mut self.tables);
        let lookup = rules.needs_table_names().then_some(&mut tables);
        let step = tokio::select! {
            r = shadow::run(&mut conn, &frames, settings.max_rows, lookup) => Some(r),
            () = control.overflowed() => None,
        };
        self.tables = tables;
        let answer = match step {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                self.lost_secondary(&format!(
                    "connection to the secondary failed during a shadow read: {e}"
                ));
                return;
            }
            None => {
                // Writes queued up behind a slow read: the read is abandoned with the
                // connection (which rolls back what it held open), and they are journaled.
                stats.skip("secondary fell behind");
                drop(conn);
                self.lost_secondary(
                    "the secondary fell behind by more than mirror.queue_capacity during a shadow read",
                );
                return;
            }
        };
        self.conn = Some(conn);
        self.status = answer.status;
        if answer.wrapper_failed {
            stats.skip("could not wrap the read on the secondary");
            return;
        }
        let difference = match diff::compare(&work.primary, &answer.capture, &rules, &self.tables) {
            Verdict::Match => {
                stats.matched.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Verdict::Skipped(reason) => {
                stats.skip(reason);
                return;
            }
            Verdict::Mismatch(d) => d,
        };
        let primary_name = config.other_upstream(&self.info.secondary.name).to_owned();
        warn!(
            session = self.info.id,
            fingerprint = %work.fingerprint,
            statement = %work.summary,
            kind = difference.kind,
            detail = %difference.detail,
            "shadow read differs on the secondary; re-checking"
        );
        let mismatch = Mismatch {
            id: 0,
            at_ms: 0,
            session: self.info.id,
            primary: primary_name.clone(),
            secondary: self.info.secondary.name.clone(),
            fingerprint: work.fingerprint,
            statement: work.summary,
            parameters: work.parameters,
            status: MismatchStatus::Pending,
            recheck: None,
            difference: *difference,
        };
        let id = self.shared.mismatches.record(mismatch.clone());
        let target = |up: &Upstream| Target {
            upstream: up.clone(),
            user: up
                .user
                .clone()
                .unwrap_or_else(|| self.info.client_user.clone()),
            password: up
                .password
                .clone()
                .or_else(|| self.info.client_password.clone()),
        };
        let Some(primary) = config.upstream(&primary_name) else {
            return;
        };
        let recheck = Recheck {
            id,
            mismatch,
            frames: work.frames,
            prelude: {
                let mut p: Vec<Vec<Bytes>> =
                    self.prelude.iter().map(|(_, f, _)| f.clone()).collect();
                if !work.parses.is_empty() {
                    let mut parses = work.parses;
                    parses.push(Bytes::from_static(&[b'S', 0, 0, 0, 4]));
                    p.push(parses);
                }
                p
            },
            primary: target(primary),
            secondary: target(&self.info.secondary),
            database: self.info.database.clone(),
            params: self.info.params.clone(),
            rules,
            tables: self.tables.clone(),
            primary_failed: work.primary.error.is_some(),
        };
        tokio::spawn(recheck.run(self.shared.clone()));
    }

    fn record_divergence(&self, summary: &str, primary: Outcome, secondary: Outcome) {
        self.shared.divergences.record(Divergence::new(
            self.info.id,
            &self.info.secondary.name,
            "",
            summary,
            primary,
            secondary,
        ));
    }
}

/// Fields every journal entry of a session shares.
#[derive(Clone)]
struct EntryTemplate {
    session: u64,
    target: String,
    database: String,
    user: String,
    params: Vec<(String, String)>,
}

impl EntryTemplate {
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        shared: &Shared,
        seq: u64,
        frames: &[Bytes],
        tags: &[String],
        txn: Option<u64>,
        summary: &str,
        kind: EntryKind,
    ) {
        let entry = JournalEntry {
            seq,
            session: self.session,
            target: self.target.clone(),
            database: self.database.clone(),
            user: self.user.clone(),
            params: self.params.clone(),
            txn,
            kind,
            frames: frames.to_vec(),
            primary_tags: tags.to_vec(),
            summary: summary.to_owned(),
            at_unix_ms: crate::clock::unix_ms(),
        };
        match shared.journal.as_ref().map(|j| j.append(&entry)) {
            Some(Ok(())) => {
                shared
                    .mirror_stats
                    .journaled
                    .fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(e)) => {
                // Nothing else can hold this write: shout.
                tracing::error!(session = self.session, seq, error = %e, statement = %summary, "cannot append to the journal: this write is missing on the secondary");
                shared.mirror_stats.lost.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                tracing::error!(session = self.session, seq, statement = %summary, "no journal is open: this write is missing on the secondary");
                shared.mirror_stats.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Upper bound on a message from the secondary (its result rows are read and dropped).
const MAX_SECONDARY_MESSAGE: usize = 1 << 30;

/// Whether a column default expression (as `pg_get_expr` prints it) is evaluated anew on
/// each database: sequences, clocks, random values.
fn is_volatile_default(expr: &str) -> bool {
    let e = expr.to_ascii_lowercase();
    [
        "nextval(",
        "now()",
        "random(",
        "gen_random_uuid(",
        "uuid_generate",
        "clock_timestamp(",
        "statement_timestamp(",
        "transaction_timestamp(",
        "timeofday(",
        "current_timestamp",
        "localtimestamp",
        "current_date",
        "current_time",
        "txid_current(",
        "pg_current_xact_id(",
    ]
    .iter()
    .any(|f| e.contains(f))
}

/// Runs a catalog query on the secondary between mirrored units: the first column of each
/// row, or `None` when the query failed there (its error is consumed).
pub(crate) async fn query_rows(conn: &mut Conn, sql: &str) -> std::io::Result<Option<Vec<String>>> {
    let msg = switchyard_protocol::frontend::query(sql)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    conn.stream.write_all(&msg).await?;
    conn.stream.flush().await?;
    let mut rows = Vec::new();
    let mut failed = false;
    loop {
        let (tag, frame) = read_frame(conn).await?;
        match tag {
            b'D' => {
                if let Ok(row) = switchyard_protocol::backend::DataRow::parse(&frame[5..]) {
                    if let Some(Some(v)) = row.values().next() {
                        rows.push(String::from_utf8_lossy(v).into_owned());
                    }
                }
            }
            b'E' => failed = true,
            b'Z' => return Ok((!failed).then_some(rows)),
            _ => {}
        }
    }
}

/// Writes the outbox, frame by frame; progress is kept in the outbox itself, so a write
/// interrupted between two `write` calls can be resumed by whoever owns the outbox next.
async fn write_outbox(stream: &mut Stream, outbox: &mut VecDeque<Bytes>) -> std::io::Result<()> {
    use bytes::Buf;
    while let Some(front) = outbox.front_mut() {
        let n = stream.write(front).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        front.advance(n);
        if front.is_empty() {
            outbox.pop_front();
        }
    }
    stream.flush().await
}

pub(crate) async fn read_frame(conn: &mut Conn) -> std::io::Result<(u8, Bytes)> {
    loop {
        match split_frame(&mut conn.buf, MAX_SECONDARY_MESSAGE) {
            Ok(Some(f)) => return Ok((f.tag, f.bytes)),
            Ok(None) => {
                conn.buf.reserve(8192);
                if conn.stream.read_buf(&mut conn.buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

fn error_code(frame: &[u8]) -> String {
    ErrorFields::parse(&frame[5..])
        .map(|e| e.code.to_owned())
        .unwrap_or_else(|_| "XX000".to_owned())
}

/// Reads the secondary's answer to one unit, up to its ReadyForQuery.
async fn read_result(conn: &mut Conn) -> std::io::Result<SecondaryResult> {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    loop {
        let (tag, frame) = read_frame(conn).await?;
        match tag {
            b'C' => {
                if let Ok(t) = command_tag(&frame[5..]) {
                    outcome.tags.push(t.to_owned());
                }
            }
            b'E' if outcome.error.is_none() => {
                outcome.error = Some(error_code(&frame));
            }
            b'Z' => {
                return Ok(SecondaryResult {
                    outcome,
                    status: frame.get(5).copied().unwrap_or(b'I'),
                    elapsed: started.elapsed(),
                })
            }
            _ => {}
        }
    }
}

/// Counters of the mirror, for metrics and status.
#[derive(Default)]
pub struct MirrorStats {
    pub applied: AtomicU64,
    /// Pipelined writes of units to secondaries (a batch is one or more units).
    pub batches: AtomicU64,
    pub journaled: AtomicU64,
    pub journal_switches: AtomicU64,
    pub lost: AtomicU64,
    pub copies_lost: AtomicU64,
    /// Sessions whose units in flight at an overflow are still being settled.
    pub unsettled: AtomicU64,
    /// Units queued for secondaries and not yet handled, over all sessions.
    pub queue_depth: Arc<std::sync::atomic::AtomicI64>,
}

/// Every session's worker, for shutdown.
#[derive(Default)]
pub struct Workers {
    stopping: Arc<AtomicBool>,
    controls: std::sync::Mutex<Vec<std::sync::Weak<Control>>>,
}

impl Workers {
    fn register(&self, control: &Arc<Control>) {
        if let Ok(mut controls) = self.controls.lock() {
            controls.retain(|c| c.strong_count() > 0);
            controls.push(Arc::downgrade(control));
        }
    }
}

/// Settles every session's mirror before the process exits: a moment to apply what is
/// queued live, then everything left (queued, or in flight on a secondary that does not
/// answer) goes to the journal, which is synced. Returns the units still unhandled when
/// `limit` ran out (normally none).
pub async fn settle_for_shutdown(shared: &Shared, live: Duration, limit: Duration) -> i64 {
    let pending = || {
        shared.mirror_stats.queue_depth.load(Ordering::Relaxed)
            + shared.mirror_stats.unsettled.load(Ordering::Relaxed) as i64
    };
    let deadline = tokio::time::Instant::now() + live;
    while pending() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if pending() > 0 {
        info!(
            units = pending(),
            "shutting down: journaling what the secondaries have not applied yet"
        );
        shared
            .mirror_workers
            .stopping
            .store(true, Ordering::Relaxed);
        if let Ok(controls) = shared.mirror_workers.controls.lock() {
            for c in controls.iter().filter_map(std::sync::Weak::upgrade) {
                c.overflow.notify_one();
            }
        }
        let deadline = tokio::time::Instant::now() + limit;
        while pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    pending()
}
