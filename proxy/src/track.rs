//! Pairs what a client sends with what its primary answers, one *unit* at a time: a simple
//! Query, a FunctionCall, or an extended-protocol batch up to Sync, each ended by the
//! primary's ReadyForQuery. When a unit completes, this decides what the secondary must
//! replay so that both databases go through the same states:
//!
//! - a unit that changes data, transaction state or session state is mirrored once the
//!   primary accepted it; reads are not (shadow reads sample them separately);
//! - a unit the primary rejected is not mirrored, except for the named prepared statements
//!   it created before the error (they outlive the failed transaction);
//! - a COMMIT that the primary answered with ROLLBACK (the transaction had failed) is
//!   mirrored as ROLLBACK, so the secondary discards the transaction too;
//! - COPY FROM STDIN streams to the secondary as the data arrives, and is finished there
//!   with CopyDone or CopyFail according to the primary's outcome;
//! - a read sampled for shadowing (`shadow_reads.percent`) has the primary's answer
//!   captured as it streams to the client (row digests, the first rows verbatim), and is
//!   queued for the worker with its frames once it completes.
//!
//! Both pumps of a session call in here, one per direction; the lock is never held across
//! an await, and it is uncontended (both pumps run on the session's task).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use switchyard_protocol::backend::{command_tag, ErrorFields};
use switchyard_protocol::frame::FrameScan;
use switchyard_protocol::frontend::{Bind, Close, Execute, Parse, Query};

use crate::classify::{Classification, Kind, TxnControl};
use crate::diff::Capture;
use crate::guard::Fault;
use crate::latency::{SessionTimer, StatementKind};
use crate::mirror::{MirrorLink, Outcome, UnitWork};
use crate::shadow::{self, Sampler, ShadowWork};
use crate::state::Shared;

/// Whether a unit's answer is being captured for a shadow read.
#[derive(Default)]
enum Shadowing {
    /// Decided at the unit's first answer frame.
    #[default]
    Undecided,
    Off,
    On(Box<Capture>),
}

/// One request cycle of the session, from its first message to the primary's ReadyForQuery.
#[derive(Default)]
struct Unit {
    frames: Vec<Bytes>,
    /// The client sent the message that ends the unit (Query, Sync, FunctionCall).
    closed: bool,
    /// Worth replaying on the secondary.
    mirror: bool,
    /// The unit commits (COMMIT / END / COMMIT PREPARED).
    commits: bool,
    /// Classifications of the statements it executes, for reports.
    statements: Vec<Arc<Classification>>,
    named_parses: Vec<usize>,
    /// Responses.
    tags: Vec<String>,
    error: Option<String>,
    parses_ok: usize,
    /// COPY FROM STDIN data is being streamed to the secondary.
    streaming: bool,
    shadow: Shadowing,
    /// When its first message went to the primary, for latencies.
    started: Option<Instant>,
    /// The first statement it parses (its kind if it executes none, e.g. a prepare).
    parsed: Option<StatementKind>,
    /// Units acknowledged before it was sent all have a lower number: the secondary must
    /// have them first (see [`crate::order`]).
    floor: u64,
}

#[derive(Default)]
struct Inner {
    units: VecDeque<Unit>,
    statements: HashMap<String, Arc<Classification>>,
    /// The Parse message of each named prepared statement, so a shadow read's re-check
    /// can create the statement on a fresh connection.
    parses: HashMap<String, Bytes>,
    portals: HashMap<String, Arc<Classification>>,
    tx_status: u8,
    txn_counter: u64,
}

/// The per-session tracker. See the module docs.
pub struct Tracker {
    inner: Mutex<Inner>,
    shared: Arc<Shared>,
    link: MirrorLink,
    sampler: Sampler,
    /// The upstream answering the session now, for the guard.
    primary: Mutex<Arc<str>>,
    timer: SessionTimer,
}

fn write_like(c: &Classification) -> bool {
    c.kind != Kind::Read
}

impl Tracker {
    pub fn new(
        shared: Arc<Shared>,
        link: MirrorLink,
        sampler: Sampler,
        timer: SessionTimer,
        primary: &str,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                tx_status: b'I',
                ..Inner::default()
            }),
            shared,
            link,
            sampler,
            timer,
            primary: Mutex::new(Arc::from(primary)),
        }
    }

    /// The session moved to another primary.
    pub fn set_primary(&self, primary: &str) {
        if let Ok(mut p) = self.primary.lock() {
            *p = Arc::from(primary);
        }
    }

    /// Where the primary's latencies go (the session moves it with itself).
    pub fn timer(&self) -> &SessionTimer {
        &self.timer
    }

    pub fn link(&self) -> &MirrorLink {
        &self.link
    }

    /// No unit is open or awaiting its answer.
    pub fn idle(&self) -> bool {
        self.inner
            .lock()
            .map(|i| i.units.is_empty())
            .unwrap_or(false)
    }

    /// A chunk of complete client frames on its way to the primary. Consecutive CopyData
    /// frames of a streaming COPY are handed to the worker as one slice of the chunk.
    pub fn on_client_chunk(&self, chunk: &Bytes, max: usize) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut offset = 0;
        let mut run: Option<(usize, usize)> = None;
        for (tag, frame) in FrameScan::new(chunk, max) {
            let range = offset..offset + frame.len();
            offset += frame.len();
            let streaming = inner.units.back().is_some_and(|u| u.streaming);
            if tag == b'd' && streaming {
                run = Some(match run {
                    Some((start, _)) => (start, range.end),
                    None => (range.start, range.end),
                });
                continue;
            }
            if let Some((start, end)) = run.take() {
                self.link.copy_data(chunk.slice(start..end));
            }
            self.on_client_frame(&mut inner, tag, chunk.slice(range));
        }
        if let Some((start, end)) = run {
            self.link.copy_data(chunk.slice(start..end));
        }
    }

    fn on_client_frame(&self, inner: &mut Inner, tag: u8, frame: Bytes) {
        if matches!(tag, b'd' | b'c' | b'f') {
            if let Some(unit) = inner.units.back_mut() {
                // While streaming, CopyDone/CopyFail are decided by the primary's outcome
                // at CopyEnd; before the primary accepted the COPY, data is kept.
                if !unit.streaming && unit.mirror {
                    unit.frames.push(frame);
                }
            }
            return;
        }
        if matches!(tag, b'S' | b'H') && inner.units.back().is_some_and(|u| u.streaming) {
            // PostgreSQL ignores Sync and Flush during COPY-in; the Sync a client sends after
            // CopyDone is what ends the COPY's unit. The worker sends its own.
            return;
        }
        if inner.units.back().is_none_or(|u| u.closed) {
            let started = Some(Instant::now());
            inner.units.push_back(Unit {
                started,
                floor: self.link.floor(),
                ..Unit::default()
            });
        }
        let Some(unit) = inner.units.back_mut() else {
            return;
        };
        let body = &frame[5..];
        match tag {
            b'Q' => {
                let cls = match Query::parse(body) {
                    Ok(q) => self.shared.classifier.classify(q.sql),
                    // Unreadable text (e.g. not UTF-8): when in doubt it is a write.
                    Err(_) => self.shared.classifier.classify("\u{0}unparseable"),
                };
                unit.mirror |= write_like(&cls);
                unit.commits |= is_commit(&cls);
                unit.statements.push(cls);
                unit.closed = true;
            }
            b'P' => {
                if let Ok(p) = Parse::parse(body) {
                    let cls = self.shared.classifier.classify(p.sql);
                    unit.parsed = unit.parsed.or(Some(cls.kind.into()));
                    if !p.statement.is_empty() {
                        unit.mirror = true;
                        unit.named_parses.push(unit.frames.len());
                        inner.parses.insert(p.statement.to_owned(), frame.clone());
                    }
                    inner.statements.insert(p.statement.to_owned(), cls);
                } else {
                    unit.mirror = true;
                }
            }
            b'B' => {
                if let Ok(b) = Bind::parse(body) {
                    if let Some(cls) = inner.statements.get(b.statement) {
                        inner.portals.insert(b.portal.to_owned(), cls.clone());
                    }
                }
            }
            b'E' => match Execute::parse(body)
                .ok()
                .and_then(|e| inner.portals.get(e.portal))
            {
                Some(cls) => {
                    unit.mirror |= write_like(cls);
                    unit.commits |= is_commit(cls);
                    unit.statements.push(cls.clone());
                }
                None => unit.mirror = true,
            },
            b'C' => {
                unit.mirror = true;
                if let Ok(c) = Close::parse(body) {
                    if c.kind == b'S' {
                        inner.statements.remove(c.name);
                        inner.parses.remove(c.name);
                    } else {
                        inner.portals.remove(c.name);
                    }
                }
            }
            b'S' => unit.closed = true,
            b'F' => {
                unit.mirror = true;
                unit.closed = true;
            }
            _ => {}
        }
        unit.frames.push(frame);
    }

    /// A primary frame on its way to the client.
    pub fn on_server_frame(&self, tag: u8, frame: &[u8]) {
        if matches!(tag, b'A' | b'N' | b'S') {
            return; // asynchronous: not part of any unit's answer
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let body = &frame[5..];
        if tag == b'Z' {
            let status = body.first().copied().unwrap_or(b'I');
            let before = inner.tx_status;
            if before == b'I' && status != b'I' {
                inner.txn_counter += 1;
            }
            inner.tx_status = status;
            let txn = (before != b'I' || status != b'I').then_some(inner.txn_counter);
            if status == b'I' {
                inner.portals.clear();
            }
            if let Some(unit) = inner.units.pop_front() {
                drop(inner);
                if self.shared.config.load().guard.enabled {
                    let primary = self.primary.lock().map(|p| p.clone());
                    if let Ok(primary) = primary {
                        let fault = Fault::of(unit.error.as_deref());
                        self.shared.guard.record(&self.shared, &primary, fault);
                    }
                }
                self.finish(unit, txn, status == b'I');
            }
            return;
        }
        let tx_status = inner.tx_status;
        let Some(unit) = inner.units.front_mut() else {
            return;
        };
        if let Shadowing::Undecided = unit.shadow {
            unit.shadow = self.decide_shadow(unit, tx_status);
        }
        if let Shadowing::On(capture) = &mut unit.shadow {
            capture.on_frame(tag, frame);
        }
        match tag {
            b'C' => {
                if let Ok(t) = command_tag(body) {
                    unit.tags.push(t.to_owned());
                }
            }
            b'E' => {
                unit.error = Some(
                    ErrorFields::parse(body)
                        .map(|e| e.code.to_owned())
                        .unwrap_or_else(|_| "XX000".to_owned()),
                );
            }
            b'1' => unit.parses_ok += 1,
            b'G' if unit.mirror && !unit.streaming => {
                unit.streaming = true;
                let frames = std::mem::take(&mut unit.frames);
                self.link
                    .copy_start(frames, summary(&unit.statements), unit.floor);
            }
            _ => {}
        }
    }

    /// Whether the unit's answer is captured for a shadow read: a read (nothing to mirror,
    /// no volatile function) outside a failed transaction, sampled, while the worker keeps
    /// up.
    fn decide_shadow(&self, unit: &Unit, tx_status: u8) -> Shadowing {
        if unit.mirror
            || unit.statements.is_empty()
            || tx_status == b'E'
            || !unit.statements.iter().all(|c| c.kind == Kind::Read)
        {
            return Shadowing::Off;
        }
        let config = self.shared.config.load();
        let settings = &config.shadow_reads;
        if !self.sampler.sample(settings.percent) {
            return Shadowing::Off;
        }
        let stats = &self.shared.mismatches.stats;
        if unit.statements.iter().any(|c| !c.volatile.is_empty()) {
            stats.skip("non-deterministic read");
            return Shadowing::Off;
        }
        if !self.link.shadow_ready() {
            stats.skip("secondary behind");
            return Shadowing::Off;
        }
        Shadowing::On(Box::new(Capture::new(settings.max_rows)))
    }

    /// Queues a completed, captured read for the worker.
    fn send_shadow(&self, unit: &mut Unit, capture: Capture) {
        let stats = &self.shared.mismatches.stats;
        if !unit.statements.iter().all(|c| c.kind == Kind::Read) {
            return;
        }
        if !shadow::self_contained(&unit.frames) {
            stats.skip("refers to a portal or statement of an earlier read");
            return;
        }
        stats
            .sampled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log_parameters = self.shared.config.load().shadow_reads.log_parameters;
        let parses = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            shadow::statements_used(&unit.frames)
                .iter()
                .filter_map(|name| inner.parses.get(name).cloned())
                .collect()
        };
        self.link.shadow(ShadowWork {
            floor: unit.floor,
            parses,
            parameters: log_parameters.then(|| shadow::parameters(&unit.frames)),
            frames: std::mem::take(&mut unit.frames),
            primary: capture,
            ordered: unit.statements.iter().all(|c| c.ordered),
            fingerprint: unit
                .statements
                .first()
                .map(|c| c.fingerprint.clone())
                .unwrap_or_default(),
            summary: summary(&unit.statements),
        });
    }

    /// `visible`: the unit left the primary outside a transaction (its effects are
    /// committed, and other sessions may depend on them).
    fn finish(&self, mut unit: Unit, txn: Option<u64>, visible: bool) {
        let kind = StatementKind::of_unit(&unit.statements, unit.parsed);
        self.timer.unit(kind, unit.started);
        if let Shadowing::On(capture) = std::mem::take(&mut unit.shadow) {
            if !unit.mirror {
                self.send_shadow(&mut unit, *capture);
                return;
            }
        }
        let outcome = Outcome {
            tags: std::mem::take(&mut unit.tags),
            error: unit.error.take(),
        };
        if unit.streaming {
            self.link.copy_end(outcome, txn);
            return;
        }
        if !unit.mirror {
            return;
        }
        let text = summary(&unit.statements);
        let volatile: Vec<String> = unit
            .statements
            .iter()
            .filter(|c| c.kind == Kind::Write)
            .flat_map(|c| c.volatile.iter().cloned())
            .collect();
        let fingerprint = unit
            .statements
            .first()
            .map(|c| c.fingerprint.clone())
            .unwrap_or_default();
        let frames = if outcome.error.is_none() {
            // Only a lone COMMIT answered with ROLLBACK: inside a longer unit, ROLLBACK is
            // also the tag of ROLLBACK TO SAVEPOINT.
            let lone_commit =
                unit.commits && unit.statements.len() == 1 && unit.statements[0].statements == 1;
            if lone_commit && outcome.tags.len() == 1 && outcome.tags[0] == "ROLLBACK" {
                // The primary rolled the transaction back: so must the secondary.
                vec![rollback_query()]
            } else {
                unit.frames
            }
        } else {
            // Rejected: keep only the named statements it created before the error.
            let mut kept: Vec<Bytes> = unit
                .named_parses
                .iter()
                .filter(|&&i| {
                    // The i-th frame is a Parse; it succeeded if it was among the first
                    // `parses_ok` Parse messages of the unit.
                    let nth = unit.frames[..i].iter().filter(|f| f[0] == b'P').count();
                    nth < unit.parses_ok
                })
                .map(|&i| unit.frames[i].clone())
                .collect();
            if kept.is_empty() {
                return;
            }
            kept.push(Bytes::from_static(&[b'S', 0, 0, 0, 4]));
            kept
        };
        let session_state = unit.statements.iter().any(|c| c.kind == Kind::Session)
            && unit.statements.iter().all(|c| c.kind != Kind::Write);
        let prelude = if outcome.error.is_some() {
            None
        } else if session_state {
            Some(frames.clone())
        } else if !unit.named_parses.is_empty() {
            let mut p: Vec<Bytes> = unit
                .named_parses
                .iter()
                .filter_map(|&i| frames.get(i).cloned())
                .collect();
            p.push(Bytes::from_static(&[b'S', 0, 0, 0, 4]));
            Some(p)
        } else {
            None
        };
        let inserts_into: Vec<String> = unit
            .statements
            .iter()
            .filter(|c| c.kind == Kind::Write)
            .flat_map(|c| c.inserts_into.iter().cloned())
            .collect();
        self.link.unit(UnitWork {
            floor: unit.floor,
            visible,
            inserts_into,
            prelude,
            frames,
            expect: outcome,
            txn,
            summary: text,
            fingerprint,
            volatile,
            kind,
        });
    }
}

fn is_commit(c: &Classification) -> bool {
    matches!(
        c.txn,
        Some(TxnControl::Commit) | Some(TxnControl::CommitPrepared)
    )
}

fn summary(statements: &[Arc<Classification>]) -> String {
    let mut s = String::new();
    for c in statements {
        if !s.is_empty() {
            s.push_str("; ");
        }
        s.push_str(&c.normalized);
        if s.len() > 500 {
            let mut end = 500;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push('…');
            break;
        }
    }
    s
}

fn rollback_query() -> Bytes {
    switchyard_protocol::frontend::query("ROLLBACK").expect("a fixed, valid Query message")
}
