//! Shadow reads: which reads are sampled ([`Sampler`]), what a session's worker sends to
//! the secondary for one ([`secondary_frames`], [`run`]: the client's own frames,
//! inside a savepoint or a transaction that is rolled back, under a statement timeout of
//! their own), and the re-check of a mismatch on fresh connections to both upstreams
//! ([`Recheck`]), which tells a real difference from a race with writes in flight.

use std::collections::HashSet;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use switchyard_config::Upstream;
use switchyard_protocol::backend::DataRow;
use switchyard_protocol::frontend::{self, Bind, Describe, Execute, Parse};
use tokio::io::AsyncWriteExt;

use crate::diff::{self, Capture, Rules, TableNames, Verdict};
use crate::mirror::{read_frame, Conn};
use crate::mismatch::{Mismatch, Status};
use crate::state::Shared;
use crate::upstream::{self, Login};

/// Shadow reads a session may have queued for its worker; past this, reads are not
/// sampled (the secondary is behind), which bounds the rows held in memory.
pub const MAX_PENDING: usize = 8;
/// Re-checks running at once, across all sessions.
pub const RECHECKS_AT_ONCE: usize = 4;
/// How long a re-check may wait for its turn before it gives up.
const RECHECK_QUEUE_WAIT: Duration = Duration::from_secs(30);
/// Re-checks waiting or running, at most. Past it (green really differs and every read
/// shows it), a mismatch is settled at once as unverified instead of queuing one more task
/// that would only time out.
pub const RECHECKS_QUEUED: usize = 64;
/// Times a mismatch is re-run on both before it is confirmed: it vanishes as soon as one
/// re-run agrees (reads of rows other sessions keep writing rarely agree at the first).
const RECHECK_ATTEMPTS: usize = 3;
/// Name of the savepoint a shadow read runs under inside the client's transaction.
const SAVEPOINT: &str = "switchyard_shadow";

/// Per-session sampler: `percent` of the reads, reproducible when a seed is configured.
pub struct Sampler {
    seed: u64,
    session: u64,
    counter: AtomicU64,
}

impl Sampler {
    pub fn new(seed: Option<u64>, session: u64) -> Self {
        Sampler {
            seed: seed.unwrap_or_else(rand::random),
            session,
            counter: AtomicU64::new(0),
        }
    }

    /// Whether the next read is sampled.
    pub fn sample(&self, percent: u8) -> bool {
        match percent {
            0 => false,
            100.. => true,
            p => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                let mut h = std::hash::DefaultHasher::new();
                h.write_u64(self.seed);
                h.write_u64(self.session);
                h.write_u64(n);
                h.finish() % 100 < u64::from(p)
            }
        }
    }
}

/// A sampled read, for the session's worker: what the client sent and what the primary
/// answered.
pub struct ShadowWork {
    pub frames: Vec<Bytes>,
    /// See [`crate::order`]: the writes acknowledged before the read was sent run first.
    pub floor: u64,
    pub primary: Capture,
    pub ordered: bool,
    pub fingerprint: String,
    pub summary: String,
    /// Bind parameters as text, only when `shadow_reads.log_parameters`.
    pub parameters: Option<Vec<Option<String>>>,
    /// The Parse messages of the named prepared statements the read executes, created
    /// earlier in the session: a re-check on a fresh connection creates them first.
    pub parses: Vec<Bytes>,
}

/// Names of the prepared statements the unit's Bind messages use without parsing them in
/// the unit.
pub fn statements_used(frames: &[Bytes]) -> Vec<String> {
    let mut parsed: HashSet<&str> = HashSet::new();
    let mut used = Vec::new();
    for f in frames {
        let body = f.get(5..).unwrap_or_default();
        match f.first() {
            Some(b'P') => {
                if let Ok(p) = Parse::parse(body) {
                    parsed.insert(p.statement);
                }
            }
            Some(b'B') => {
                if let Ok(b) = Bind::parse(body) {
                    if !b.statement.is_empty()
                        && !parsed.contains(b.statement)
                        && !used.iter().any(|u| u == b.statement)
                    {
                        used.push(b.statement.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    used
}

/// The parameters of the unit's Bind messages, as text (binary values in hex).
pub fn parameters(frames: &[Bytes]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for f in frames.iter().filter(|f| f.first() == Some(&b'B')) {
        let Ok(bind) = Bind::parse(&f[5..]) else {
            continue;
        };
        for (i, v) in bind.params().enumerate() {
            out.push(v.map(|v| {
                if bind.param_format(i) == Some(1) {
                    format!("\\x{}", hex::encode(v))
                } else {
                    String::from_utf8_lossy(v).into_owned()
                }
            }));
        }
    }
    out
}

/// The wrapper's own statements: fixed texts and numbers, never a NUL byte, far below the
/// message size limit, so the builder cannot refuse them.
fn query(sql: &str) -> Bytes {
    frontend::query(sql).expect("switchyard's own SQL is a valid Query message")
}

fn describe_portal(name: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(name.len() + 7);
    b.put_u8(b'D');
    b.put_i32((name.len() + 6) as i32);
    b.put_u8(b'P');
    b.put_slice(name.as_bytes());
    b.put_u8(0);
    b.freeze()
}

/// The unit's frames with a Describe of each executed portal that the client did not
/// describe itself, so the answer carries the columns' names, types and formats.
fn with_descriptions(frames: &[Bytes]) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(frames.len() + 2);
    let mut described: HashSet<String> = HashSet::new();
    for f in frames {
        let body = f.get(5..).unwrap_or_default();
        match f.first() {
            Some(b'B') => {
                if let Ok(b) = Bind::parse(body) {
                    described.remove(b.portal);
                }
            }
            Some(b'D') => {
                if let Ok(d) = Describe::parse(body) {
                    if d.kind == b'P' {
                        described.insert(d.name.to_owned());
                    }
                }
            }
            Some(b'E') => {
                if let Ok(e) = Execute::parse(body) {
                    if described.insert(e.portal.to_owned()) {
                        out.push(describe_portal(e.portal));
                    }
                }
            }
            _ => {}
        }
        out.push(f.clone());
    }
    out
}

/// Whether the unit's frames can be replayed elsewhere: every Execute runs a portal bound
/// in the unit, and every Bind to the unnamed statement follows a Parse of it in the unit
/// (the unnamed statement and portals of reads are not mirrored).
pub fn self_contained(frames: &[Bytes]) -> bool {
    let mut portals: HashSet<&str> = HashSet::new();
    let mut unnamed_parsed = false;
    for f in frames {
        let body = f.get(5..).unwrap_or_default();
        match f.first() {
            Some(b'P') => match Parse::parse(body) {
                Ok(p) if p.statement.is_empty() => unnamed_parsed = true,
                Ok(_) => {}
                Err(_) => return false,
            },
            Some(b'B') => match Bind::parse(body) {
                Ok(b) => {
                    if b.statement.is_empty() && !unnamed_parsed {
                        return false;
                    }
                    portals.insert(b.portal);
                }
                Err(_) => return false,
            },
            Some(b'E') => match Execute::parse(body) {
                Ok(e) if portals.contains(e.portal) => {}
                _ => return false,
            },
            _ => {}
        }
    }
    true
}

/// What is sent to run a shadow read: the head (the wrapper that bounds the read, then the
/// client's frames) and the tail that undoes it. `in_transaction`: the client's
/// transaction is open on that connection, so a savepoint keeps an error of the read from
/// aborting it.
pub fn secondary_frames(
    frames: &[Bytes],
    in_transaction: bool,
    timeout_ms: u64,
) -> (Vec<Bytes>, Bytes) {
    let mut head = Vec::with_capacity(frames.len() + 3);
    if in_transaction {
        head.push(query(&format!(
            "SAVEPOINT {SAVEPOINT}; SET LOCAL statement_timeout = {timeout_ms}"
        )));
    } else {
        head.push(query(&format!(
            "BEGIN; SET LOCAL statement_timeout = {timeout_ms}"
        )));
    }
    head.extend(with_descriptions(frames));
    let tail = if in_transaction {
        query(&format!(
            "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
        ))
    } else {
        query("ROLLBACK")
    };
    (head, tail)
}

/// The answer to [`secondary_frames`].
pub struct Answer {
    pub capture: Capture,
    /// The wrapper failed (no savepoint, say): the capture means nothing.
    pub wrapper_failed: bool,
    /// The connection's transaction status afterwards.
    pub status: u8,
}

async fn until_ready(conn: &mut Conn) -> std::io::Result<(bool, u8)> {
    let mut failed = false;
    loop {
        let (tag, frame) = read_frame(conn).await?;
        match tag {
            b'E' => failed = true,
            b'Z' => return Ok((failed, frame.get(5).copied().unwrap_or(b'I'))),
            _ => {}
        }
    }
}

/// Runs a shadow read ([`secondary_frames`]) and reads its answer. With `tables`, the
/// names of the result's tables that it does not know yet are looked up in the same
/// wrapper, before the tail undoes it.
pub(crate) async fn run(
    conn: &mut Conn,
    (head, tail): &(Vec<Bytes>, Bytes),
    max_rows: u64,
    tables: Option<&mut TableNames>,
) -> std::io::Result<Answer> {
    for f in head {
        conn.stream.write_all(f).await?;
    }
    if tables.is_none() {
        conn.stream.write_all(tail).await?;
    }
    conn.stream.flush().await?;
    let (mut wrapper_failed, _) = until_ready(conn).await?;
    let mut capture = Capture::new(max_rows);
    loop {
        let (tag, frame) = read_frame(conn).await?;
        if tag == b'Z' {
            break;
        }
        capture.on_frame(tag, &frame);
    }
    if let Some(tables) = tables {
        let lookup = table_lookup(&capture, tables);
        if let Some(sql) = &lookup {
            conn.stream.write_all(&query(sql)).await?;
        }
        conn.stream.write_all(tail).await?;
        conn.stream.flush().await?;
        if lookup.is_some() {
            read_table_names(conn, tables).await?;
        }
    }
    let (failed, status) = until_ready(conn).await?;
    wrapper_failed |= failed;
    Ok(Answer {
        capture,
        wrapper_failed,
        status,
    })
}

/// The query that looks up the schema and table names of the columns' table OIDs that
/// `tables` does not know yet, if there are any.
fn table_lookup(capture: &Capture, tables: &TableNames) -> Option<String> {
    let oids: HashSet<u32> = capture
        .sets
        .iter()
        .filter_map(|s| s.columns.as_ref())
        .flatten()
        .map(|c| c.table_oid)
        .filter(|&oid| oid != 0 && !tables.contains_key(&oid))
        .collect();
    if oids.is_empty() {
        return None;
    }
    let list: Vec<String> = oids.iter().map(u32::to_string).collect();
    Some(format!(
        "SELECT c.oid::text, n.nspname, c.relname \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid IN ({})",
        list.join(",")
    ))
}

async fn read_table_names(conn: &mut Conn, tables: &mut TableNames) -> std::io::Result<()> {
    loop {
        let (tag, frame) = read_frame(conn).await?;
        match tag {
            b'D' => {
                let Ok(row) = DataRow::parse(&frame[5..]) else {
                    continue;
                };
                let v: Vec<Option<&[u8]>> = row.values().collect();
                if let [Some(oid), Some(schema), Some(table)] = v.as_slice() {
                    if let Some(oid) = std::str::from_utf8(oid).ok().and_then(|o| o.parse().ok()) {
                        tables.insert(
                            oid,
                            (
                                String::from_utf8_lossy(schema).into_owned(),
                                String::from_utf8_lossy(table).into_owned(),
                            ),
                        );
                    }
                }
            }
            b'Z' => return Ok(()),
            _ => {}
        }
    }
}

/// Who and where, for a fresh connection to one upstream.
#[derive(Clone)]
pub struct Target {
    pub upstream: Upstream,
    pub user: String,
    pub password: Option<String>,
}

/// A mismatch to re-run on both upstreams after a delay.
pub struct Recheck {
    pub id: u64,
    pub mismatch: Mismatch,
    pub frames: Vec<Bytes>,
    /// Session state (SET, PREPARE, named Parse) to re-create first, unit by unit.
    pub prelude: Vec<Vec<Bytes>>,
    pub primary: Target,
    pub secondary: Target,
    pub database: String,
    pub params: Vec<(String, String)>,
    pub rules: Rules,
    pub tables: TableNames,
    /// The primary's original answer failed or not: a re-check whose primary fails when the
    /// original did not cannot judge.
    pub primary_failed: bool,
}

impl Recheck {
    /// Waits `shadow_reads.recheck_after_ms`, re-runs the read on both upstreams, and
    /// settles the mismatch: confirmed if the difference persists, vanished if not.
    pub async fn run(self, shared: Arc<Shared>) {
        let config = shared.config.load_full();
        let settings = &config.shadow_reads;
        let busy = || {
            (
                Status::Unverified,
                Some("too many re-checks waiting".to_owned()),
            )
        };
        let (status, note) = match shared.shadow_recheck_queue.clone().try_acquire_owned() {
            Err(_) => busy(),
            Ok(_queued) => {
                tokio::time::sleep(Duration::from_millis(settings.recheck_after_ms)).await;
                match tokio::time::timeout(
                    RECHECK_QUEUE_WAIT,
                    shared.shadow_rechecks.clone().acquire_owned(),
                )
                .await
                {
                    Ok(Ok(_permit)) => {
                        let pause = Duration::from_millis(settings.recheck_after_ms.max(50));
                        self.judge(settings.statement_timeout_ms, settings.max_rows, pause)
                            .await
                    }
                    _ => busy(),
                }
            }
        };
        tracing::info!(
            fingerprint = %self.mismatch.fingerprint,
            statement = %self.mismatch.statement,
            kind = self.mismatch.difference.kind,
            detail = %self.mismatch.difference.detail,
            status = ?status,
            "shadow-read mismatch settled"
        );
        shared
            .mismatches
            .settle(self.id, self.mismatch, status, note, &settings.mismatch_log);
    }

    async fn judge(
        &self,
        timeout_ms: u64,
        max_rows: u64,
        pause: Duration,
    ) -> (Status, Option<String>) {
        let mut verdict = (Status::Unverified, None);
        for attempt in 1..=RECHECK_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(pause).await;
            }
            verdict = self.judge_once(timeout_ms, max_rows).await;
            if verdict.0 != Status::Confirmed {
                break;
            }
        }
        if verdict.0 == Status::Confirmed {
            let note = verdict.1.unwrap_or_default();
            verdict.1 = Some(format!(
                "{note} ({RECHECK_ATTEMPTS} re-runs on both, each differed)"
            ));
        }
        verdict
    }

    async fn judge_once(&self, timeout_ms: u64, max_rows: u64) -> (Status, Option<String>) {
        let frames = secondary_frames(&self.frames, false, timeout_ms);
        let (p, s) = tokio::join!(
            self.run_on(&self.primary, &frames, max_rows),
            self.run_on(&self.secondary, &frames, max_rows)
        );
        let (p, s) = match (p, s) {
            (Ok(p), Ok(s)) => (p, s),
            (Err(e), _) => {
                return (
                    Status::Unverified,
                    Some(format!("re-check on the primary failed: {e}")),
                )
            }
            (_, Err(e)) => {
                return (
                    Status::Unverified,
                    Some(format!("re-check on the secondary failed: {e}")),
                )
            }
        };
        if p.wrapper_failed || s.wrapper_failed {
            return (
                Status::Unverified,
                Some("the re-check could not open its transaction".to_owned()),
            );
        }
        if p.capture.error.is_some() && !self.primary_failed {
            let code = p.capture.error.as_ref().map(|e| e.0.as_str()).unwrap_or("");
            return (
                Status::Unverified,
                Some(format!(
                    "the read failed on a fresh connection to the primary ({code}): it depends on session state that cannot be re-created"
                )),
            );
        }
        match diff::compare(&p.capture, &s.capture, &self.rules, &self.tables) {
            Verdict::Match => (Status::Vanished, None),
            Verdict::Mismatch(d) => (
                Status::Confirmed,
                Some(format!("persisted: {}: {}", d.kind, d.detail)),
            ),
            Verdict::Skipped(why) => (
                Status::Unverified,
                Some(format!("re-check not comparable: {why}")),
            ),
        }
    }

    async fn run_on(
        &self,
        target: &Target,
        frames: &(Vec<Bytes>, Bytes),
        max_rows: u64,
    ) -> Result<Answer, String> {
        let login = Login {
            user: &target.user,
            password: target.password.as_deref(),
            params: &self.params,
            database: &self.database,
        };
        let c = upstream::connect(&target.upstream, &login)
            .await
            .map_err(|e| e.to_string())?;
        let mut conn = Conn {
            stream: c.stream,
            buf: c.leftover,
            backend_pid: c.backend_pid,
            backend_secret: c.backend_secret,
        };
        let work = async {
            for unit in &self.prelude {
                for f in unit {
                    conn.stream.write_all(f).await?;
                }
                conn.stream.flush().await?;
                // One ReadyForQuery per Query or Sync; errors (a statement closed since,
                // say) do not matter here.
                let expected = unit
                    .iter()
                    .filter(|f| matches!(f.first(), Some(b'Q' | b'S')))
                    .count();
                let mut seen = 0;
                while seen < expected {
                    let (tag, _) = read_frame(&mut conn).await?;
                    if tag == b'Z' {
                        seen += 1;
                    }
                }
            }
            run(&mut conn, frames, max_rows, None).await
        };
        let answer = tokio::time::timeout(Duration::from_millis(60_000), work)
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let _ = conn.stream.write_all(&[b'X', 0, 0, 0, 4]).await;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32((body.len() + 4) as i32);
        b.put_slice(body);
        b.freeze()
    }

    fn parse(name: &str, sql: &str) -> Bytes {
        let mut body = Vec::new();
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(sql.as_bytes());
        body.extend_from_slice(&[0, 0, 0]);
        msg(b'P', &body)
    }

    fn bind(portal: &str, statement: &str) -> Bytes {
        let mut body = Vec::new();
        body.extend_from_slice(portal.as_bytes());
        body.push(0);
        body.extend_from_slice(statement.as_bytes());
        body.push(0);
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        msg(b'B', &body)
    }

    fn execute(portal: &str) -> Bytes {
        let mut body = Vec::new();
        body.extend_from_slice(portal.as_bytes());
        body.push(0);
        body.extend_from_slice(&0i32.to_be_bytes());
        msg(b'E', &body)
    }

    /// The sampler takes the configured share, reproducibly for a given seed.
    #[test]
    fn sampler_share_and_seed() {
        let a = Sampler::new(Some(7), 1);
        let b = Sampler::new(Some(7), 1);
        let picks_a: Vec<bool> = (0..1000).map(|_| a.sample(10)).collect();
        let picks_b: Vec<bool> = (0..1000).map(|_| b.sample(10)).collect();
        assert_eq!(picks_a, picks_b, "same seed, same sample");
        let share = picks_a.iter().filter(|&&p| p).count();
        assert!(
            (60..=140).contains(&share),
            "about 10% of 1000, got {share}"
        );
        assert!(!a.sample(0));
        assert!(a.sample(100));
    }

    /// Executes of portals bound elsewhere, or of an unnamed statement parsed elsewhere,
    /// cannot be replayed on another connection.
    #[test]
    fn self_contained_units() {
        let sync = msg(b'S', &[]);
        assert!(self_contained(&[
            parse("", "SELECT 1"),
            bind("", ""),
            execute(""),
            sync.clone()
        ]));
        assert!(self_contained(&[bind("", "s1"), execute(""), sync.clone()]));
        assert!(!self_contained(&[bind("", ""), execute(""), sync.clone()]));
        assert!(!self_contained(&[execute("c1"), sync.clone()]));
        assert!(self_contained(&[query("SELECT 1")]));
    }

    /// Each Execute gets a Describe of its portal unless the client described it, and the
    /// read is wrapped so that it is undone and bounded.
    #[test]
    fn frames_for_the_secondary() {
        let sync = msg(b'S', &[]);
        let unit = [parse("", "SELECT 1"), bind("", ""), execute(""), sync];
        let (head, tail) = secondary_frames(&unit, true, 250);
        let tags: Vec<u8> = head.iter().map(|f| f[0]).collect();
        assert_eq!(tags, b"QPBDES".to_vec());
        assert!(String::from_utf8_lossy(&head[0])
            .contains("SAVEPOINT switchyard_shadow; SET LOCAL statement_timeout = 250"));
        assert!(String::from_utf8_lossy(&tail).contains("ROLLBACK TO SAVEPOINT switchyard_shadow"));
        let described = [
            bind("", "s"),
            describe_portal(""),
            execute(""),
            msg(b'S', &[]),
        ];
        let (head, tail) = secondary_frames(&described, false, 1);
        let tags: Vec<u8> = head.iter().map(|f| f[0]).collect();
        assert_eq!(tags, b"QBDES".to_vec());
        assert!(String::from_utf8_lossy(&tail).contains("ROLLBACK"));
    }
}
