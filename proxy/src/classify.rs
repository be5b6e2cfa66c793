//! Statement classification: what a SQL string does, decided once per text.
//!
//! The session asks one question of every simple-protocol Query and every Parse: is this a
//! *read* (answer from the primary, maybe shadow it on the secondary), a *write* (mirror it),
//! *transaction* control (mirror it, and it moves the transaction state) or *session* state
//! (mirror it, so prepared statements, settings, cursors and temp tables exist on both sides)?
//! This module answers it with the real PostgreSQL grammar (`pg_query` wraps libpg_query), plus
//! a keyword fast path for the statements every transaction sends (`BEGIN`, `COMMIT`, `SET`).
//!
//! # The one rule: when in doubt, it is a write
//!
//! A write misclassified as a read is silent data loss on the secondary; a read misclassified
//! as a write only costs a mirrored statement. So every uncertainty resolves to [`Kind::Write`]:
//! a string that does not parse, a function that is not known to be side-effect free, a node of
//! the parse tree this module does not know how to walk, `EXECUTE` of a prepared statement
//! whose text this stateless function cannot see, a panic inside the parser wrapper.
//!
//! # Decisions worth knowing (the borderline cases)
//!
//! * Empty strings and strings of only comments are [`Kind::Read`] with `statements == 0`:
//!   PostgreSQL answers them with EmptyQueryResponse and nothing changes anywhere.
//! * `SHOW` is a read. `SET`, `SET LOCAL`, `RESET`, `SET ROLE`, `SET SESSION AUTHORIZATION`,
//!   `SET TRANSACTION`, `SET CONSTRAINTS`, `DISCARD`, `PREPARE`, `DEALLOCATE`, `LISTEN`,
//!   `UNLISTEN`, `LOAD` are session: they change what later statements of this session mean.
//! * Temp objects are session: `CREATE TEMP TABLE` (also `pg_temp.x`), `CREATE TEMP VIEW`,
//!   `CREATE TEMP SEQUENCE`, `CREATE TEMP TABLE … AS` / `SELECT … INTO TEMP` whose query does not
//!   write. PostgreSQL itself allows them in read-only transactions; they die with the session.
//!   Statements that merely *touch* a temp table (INSERT, CREATE INDEX, DROP) cannot be told
//!   apart from ordinary ones without the catalog and are writes.
//! * Cursors are session: `DECLARE` (a write if its query writes, e.g. `FOR UPDATE`), `FETCH`,
//!   `MOVE`, `CLOSE`. A cursor's position is state; if only sampled FETCHes reached the
//!   secondary its cursor would drift, so every FETCH is replayed in order instead.
//! * `EXECUTE name` is a write: the prepared text is not visible here (the session, which
//!   knows it, may classify that text instead).
//! * `NOTIFY` (and `pg_notify()`) is a write: listeners connected to the secondary (the
//!   application after a cutover) must hear the same notifications as the primary's.
//! * `LOCK TABLE` is a write: the secondary's transaction must take the same locks, in order.
//! * `VACUUM`, `ANALYZE`, `CLUSTER`, `REINDEX`, `CHECKPOINT`, `GRANT`/`REVOKE`, `COMMENT`,
//!   `TRUNCATE`, `REFRESH MATERIALIZED VIEW`, every other DDL, `DO`, `CALL`: writes.
//! * `COPY … FROM` is a write; `COPY … TO STDOUT` (a table or a query) is a read unless the
//!   query writes (`COPY (DELETE … RETURNING *) TO STDOUT`); `COPY … TO 'file'` and
//!   `TO PROGRAM` are writes, because they have an effect on the server outside the result.
//! * `EXPLAIN` without `ANALYZE` is a read whatever it explains (nothing is executed).
//!   `EXPLAIN ANALYZE x` executes `x`, so it has `x`'s kind. Plans and timings always differ
//!   between two servers, so EXPLAIN reports the volatile reason `"EXPLAIN"` and is `ordered`.
//! * `SELECT … FOR UPDATE/NO KEY UPDATE/SHARE/KEY SHARE` anywhere in the tree is a write (the
//!   row locks must be taken on the secondary too), as is `SELECT … INTO` a permanent table and
//!   any data-modifying CTE (`WITH x AS (INSERT/UPDATE/DELETE/MERGE …)`).
//! * Function calls: a read stays a read only if every function it calls is on the built-in
//!   allowlist below (generous: aggregates, string/math/date/json/array functions, catalog
//!   inspection, `random()`, `now()`, `pg_sleep()`, `txid_current()`, `currval()`…) or on the
//!   configured `read_only_functions`. `nextval`, `setval`, advisory locks, `set_config`,
//!   `pg_notify`, `lo_*`, `pg_terminate_backend`, `dblink`, and every unknown function make it a
//!   write. Functions qualified with a schema other than `pg_catalog` must be configured.
//! * Multi-statement strings: a write if any statement is; transaction if all are; otherwise
//!   session if any statement is session or transaction control (`BEGIN; SELECT 1; COMMIT`
//!   must be replayed on the secondary in order, but changes no data); otherwise read.
//!
//! # What a syntactic classifier cannot see
//!
//! Side effects hidden behind names: views or operators implemented by writing functions,
//! triggers and rules on the tables a statement reads, volatile column defaults (that is what
//! [`Classification::inserts_into`] is for: the caller looks the defaults up in the catalog).
//!
//! # Stack and panics
//!
//! libpg_query 18 checks its own recursion against the calling thread's real stack and refuses
//! trees deeper than protobuf can carry, so hostile nesting (`SELECT 1+1+…` ×10⁵) is an error,
//! and an error is a write (libpg_query 6 overflowed the stack and aborted the process). The
//! Rust side of a maximally deep but legal tree needs under 256 KiB optimised; unoptimised
//! builds parse on a helper thread (see `parse_guarded`). Panics inside the `pg_query`
//! wrapper are caught and classified as writes (with `panic = "abort"` that net is gone;
//! nothing in this module itself unwraps input-derived data).

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use dashmap::DashMap;
use pg_query::protobuf as pb;
use pg_query::NodeEnum;
use sha2::{Digest, Sha256};

/// What a statement (or a string of statements) does, as far as mirroring is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Changes nothing: answered by the primary, may be shadowed on the secondary and diffed.
    Read,
    /// Changes data, schema, locks or the server: mirrored to the secondary after the primary
    /// succeeds. Also everything this module cannot prove to be something else.
    Write,
    /// Transaction control only (BEGIN, COMMIT, SAVEPOINT, PREPARE TRANSACTION, …).
    Transaction,
    /// Session state (SET, PREPARE, LISTEN, cursors, temp objects, …): mirrored in order so the
    /// secondary's session means the same thing as the primary's.
    Session,
}

impl Kind {
    /// The lowercase name used in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Transaction => "transaction",
            Kind::Session => "session",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which transaction-control statement a string contains (the last one, if several).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnControl {
    /// `BEGIN`, `START TRANSACTION` (with any modes).
    Begin,
    /// `COMMIT`, `END` (with or without `AND CHAIN`).
    Commit,
    /// `ROLLBACK`, `ABORT` (with or without `AND CHAIN`).
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint,
    /// `RELEASE [SAVEPOINT] name`.
    ReleaseSavepoint,
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackToSavepoint,
    /// `PREPARE TRANSACTION 'gid'`.
    PrepareTransaction,
    /// `COMMIT PREPARED 'gid'`.
    CommitPrepared,
    /// `ROLLBACK PREPARED 'gid'`.
    RollbackPrepared,
}

/// Everything the session, the mirror and the reports need to know about one SQL string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The combined kind of all statements in the string (see the module docs).
    pub kind: Kind,
    /// The last transaction-control statement in the string: always `Some` when `kind` is
    /// [`Kind::Transaction`], and also set for mixed strings such as `BEGIN; INSERT …`.
    pub txn: Option<TxnControl>,
    /// Every row-returning statement (SELECT/VALUES/TABLE, `COPY (query) TO`, EXPLAIN) has a
    /// top-level ORDER BY, so results must be compared in sequence rather than as a multiset.
    /// An ORDER BY only inside a subquery does not count.
    pub ordered: bool,
    /// Why the statement's effect or result may differ between two servers: `"now()"`,
    /// `"current_timestamp"`, `"nextval()"`, `"random()"`, `"EXPLAIN"`, … deduplicated, in order
    /// of appearance. Reported for reads too (a read with `now()` will not diff cleanly).
    pub volatile: Vec<String>,
    /// Tables an INSERT, a MERGE with an INSERT action, or a COPY FROM writes rows into, as
    /// written (schema-qualified if written so), deduplicated, so the caller can look up
    /// volatile column defaults.
    pub inserts_into: Vec<String>,
    /// Number of statements in the string (0 for an empty or comment-only string).
    pub statements: usize,
    /// pg_query's fingerprint (hex, relation names and schemas significant): equal for the same
    /// statement shape with different constants. `"fast:<hex>"` for statements decided by the
    /// keyword fast path, `"unparsed:<hex>"` (a hash of the whitespace-normalised text) for
    /// strings that do not parse.
    pub fingerprint: String,
    /// The text with constants replaced by `$n`, for reports; the raw text if it does not parse.
    pub normalized: String,
}

/// Classify one SQL string (simple-protocol Query text or a Parse message's query).
///
/// `read_only_functions` names user-defined functions known to be free of side effects, as
/// `name` (any schema) or `schema.name`, compared without regard to ASCII case.
pub fn classify(sql: &str, read_only_functions: &[String]) -> Classification {
    if let Some(fast) = fast_path(sql) {
        return fast;
    }
    parse_guarded(sql, read_only_functions).unwrap_or_else(|| unparsed(sql))
}

/// Stack for the parser in unoptimised builds (virtual memory; only what is used is touched).
const DEBUG_PARSE_STACK: usize = 16 << 20;

/// The parser path, with its two hazards fenced off; `None` means "classify as unparsed".
///
/// * pg_query's own result handling indexes into the tree it built: a panic there must not
///   take the session down, and "could not classify" is a write.
/// * `pg_query::parse` is generic, so its recursive protobuf decode is compiled at the
///   caller's optimisation level. Unoptimised, a legal but maximally nested statement (fifty
///   `+1`s) needs 2–3 MiB of stack, more than a tokio worker has; optimised, under 256 KiB.
///   So debug builds parse on a helper thread with a large stack.
fn parse_guarded(sql: &str, read_only_functions: &[String]) -> Option<Classification> {
    let run = || {
        panic::catch_unwind(AssertUnwindSafe(|| {
            classify_parsed(sql, read_only_functions)
        }))
        .ok()
        .flatten()
    };
    if !cfg!(debug_assertions) {
        return run();
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("classify-parse".to_owned())
            .stack_size(DEBUG_PARSE_STACK)
            .spawn_scoped(scope, run)
            .ok()?
            .join()
            .ok()
            .flatten()
    })
}

/// A bounded, thread-safe cache in front of [`classify`], keyed by the exact text.
///
/// When full, an arbitrary eighth of the entries is dropped (statement texts recur in bursts;
/// an LRU would cost a lock per hit). Under concurrent inserts the length can exceed the
/// capacity by at most the number of inserting threads. Texts longer than
/// [`Classifier::MAX_CACHED_TEXT`] are classified but not cached: they are almost always bulk
/// statements with inline values that never recur, and would pin memory.
pub struct Classifier {
    cache: DashMap<String, Arc<Classification>>,
    capacity: usize,
    read_only_functions: Vec<String>,
}

impl Classifier {
    /// Longest statement text (in bytes) that is kept in the cache.
    pub const MAX_CACHED_TEXT: usize = 16 * 1024;

    /// A cache of at most `capacity` classifications (0 disables caching).
    pub fn new(capacity: usize, read_only_functions: Vec<String>) -> Self {
        Classifier {
            cache: DashMap::new(),
            capacity,
            read_only_functions,
        }
    }

    /// The classification of `sql`; the same `Arc` for the same statement *shape* (the
    /// text with its literals blanked, see [`shape`]) while it stays cached. Nothing in a
    /// classification depends on a literal's value — kind, transaction control, ORDER BY,
    /// volatile functions, tables inserted into, and the fingerprint and normalised text
    /// (which blank constants themselves) — so `UPDATE t SET x = 1 WHERE id = 7` and
    /// `... = 2 WHERE id = 8` share one parse.
    pub fn classify(&self, sql: &str) -> Arc<Classification> {
        if self.capacity == 0 || sql.len() > Self::MAX_CACHED_TEXT {
            return Arc::new(classify(sql, &self.read_only_functions));
        }
        let key = shape(sql);
        if let Some(hit) = self.cache.get(&key) {
            return Arc::clone(hit.value());
        }
        let classification = Arc::new(classify(sql, &self.read_only_functions));
        if self.cache.len() >= self.capacity {
            self.evict();
        }
        // If another thread classified the same shape meanwhile, keep (and return) its Arc.
        let entry = self.cache.entry(key).or_insert(classification);
        Arc::clone(entry.value())
    }

    /// Number of cached classifications.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    fn evict(&self) {
        let mut budget = (self.capacity / 8).max(1);
        self.cache.retain(|_, _| {
            if budget > 0 {
                budget -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// The statement's text with its literals blanked: string constants (`'...'`, `E'...'`,
/// `$tag$...$tag$`) become `'?'` and numeric constants `0`; identifiers (quoted or not),
/// keywords, parameters (`$1`), operators and comments are kept as written. Two texts of
/// the same shape differ only in constants. It is a lexer of PostgreSQL's token rules, not a
/// parser: text it cannot read (an unterminated quote) is kept from there on.
pub fn shape(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut last = 0; // start of the text not copied yet
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    while i < b.len() {
        let c = b[i];
        // Identifiers and keywords (letters, _, non-ASCII), including a letter prefix such
        // as E'..' or X'..' handled below.
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let word = &sql[start..i];
            let prefix = matches!(
                word,
                "E" | "e" | "B" | "b" | "X" | "x" | "N" | "n" | "U&" | "u&"
            );
            if prefix && b.get(i) == Some(&b'\'') {
                out.push_str(&sql[last..start]);
                i = skip_quoted(b, i, word.eq_ignore_ascii_case("e"));
                out.push_str("'?'");
                last = i;
            }
            continue;
        }
        match c {
            b'"' => {
                // Quoted identifier: kept.
                i += 1;
                while i < b.len() {
                    if b[i] == b'"' {
                        if b.get(i + 1) == Some(&b'"') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
            }
            b'\'' => {
                out.push_str(&sql[last..i]);
                i = skip_quoted(b, i, false);
                out.push_str("'?'");
                last = i;
            }
            b'$' => {
                // $1 parameter, or $tag$ dollar quote.
                let start = i;
                let mut j = i + 1;
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                    continue;
                }
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80)
                {
                    j += 1;
                }
                if b.get(j) != Some(&b'$') {
                    i = j;
                    continue;
                }
                let tag = &b[start..=j];
                let body = j + 1;
                match b[body..].windows(tag.len()).position(|w| w == tag) {
                    Some(end) => {
                        out.push_str(&sql[last..start]);
                        out.push_str("'?'");
                        i = body + end + tag.len();
                        last = i;
                    }
                    None => i = b.len(),
                }
            }
            b'0'..=b'9' => {
                out.push_str(&sql[last..i]);
                i = skip_number(b, i);
                out.push('0');
                last = i;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[last..i]);
                i = skip_number(b, i);
                out.push('0');
                last = i;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            _ => i += 1,
        }
    }
    if last < sql.len() {
        out.push_str(&sql[last..]);
    }
    out
}

/// Past a quoted string starting at `b[i] == '\''`; `backslash`: E'' escapes.
fn skip_quoted(b: &[u8], mut i: usize, backslash: bool) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Past a numeric constant (digits, `.`, exponent, `_` separators, 0x/0o/0b forms).
fn skip_number(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        let c = b[i];
        let exponent_sign = (c == b'+' || c == b'-') && i > 0 && matches!(b[i - 1], b'e' | b'E');
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Fast path: BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE and SET/RESET without the parser.
// ---------------------------------------------------------------------------------------------

/// Decide the most frequent statements without the parser, or `None` to let the parser decide.
///
/// Only a single statement is ever accepted: after an optional trailing `;` the text may not
/// contain another `;` (so no quoted or commented text can hide a second statement), nor a
/// comment after the leading ones. Transaction statements are matched against their complete
/// grammar; anything unusual (quoted names, two-phase commit, trailing comments) goes to the
/// parser.
/// `SET`/`RESET` are session whatever their value, so only their shape is checked; a malformed
/// value is rejected by the server, and what the server rejects is never mirrored.
fn fast_path(sql: &str) -> Option<Classification> {
    let body = skip_leading_comments(sql)?.trim_ascii_end();
    let body = body.strip_suffix(';').unwrap_or(body).trim_ascii_end();
    if body.is_empty()
        || body.contains(';')
        || body.contains("--")
        || body.contains("/*")
        || body.contains('\0')
    {
        return None;
    }
    let first = body.split(|c: char| c.is_ascii_whitespace()).next()?;
    let keyword = first.to_ascii_uppercase();
    match keyword.as_str() {
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE" => {
            let (txn, canonical) = fast_transaction(body)?;
            Some(fast_classification(
                Kind::Transaction,
                Some(txn),
                &canonical,
                body.to_owned(),
            ))
        }
        "SET" => {
            let (canonical, normalized) = fast_set(body)?;
            Some(fast_classification(
                Kind::Session,
                None,
                &canonical,
                normalized,
            ))
        }
        "RESET" => {
            let canonical = fast_reset(body)?;
            Some(fast_classification(
                Kind::Session,
                None,
                &canonical,
                body.to_owned(),
            ))
        }
        _ => None,
    }
}

fn fast_classification(
    kind: Kind,
    txn: Option<TxnControl>,
    canonical: &str,
    normalized: String,
) -> Classification {
    Classification {
        kind,
        txn,
        ordered: false,
        volatile: Vec::new(),
        inserts_into: Vec::new(),
        statements: 1,
        fingerprint: format!("fast:{}", short_hash(canonical)),
        normalized,
    }
}

/// Skip whitespace, `-- line` comments and (nested) `/* block */` comments. `None` if a block
/// comment is not closed (the parser will report that).
fn skip_leading_comments(sql: &str) -> Option<&str> {
    let mut rest = sql;
    loop {
        // ASCII whitespace only, as PostgreSQL's scanner: a no-break space is not a separator.
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix("--") {
            match after.find('\n') {
                Some(end) => rest = &after[end + 1..],
                None => return Some(""),
            }
        } else if rest.starts_with("/*") {
            let mut depth = 0usize;
            let mut i = 0;
            let bytes = rest.as_bytes();
            loop {
                if i + 1 >= bytes.len() {
                    return None;
                }
                match (bytes[i], bytes[i + 1]) {
                    (b'/', b'*') => {
                        depth += 1;
                        i += 2;
                    }
                    (b'*', b'/') => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => i += 1,
                }
            }
            // `i` is just past an ASCII `*/`, so it is a char boundary.
            rest = &rest[i..];
        } else {
            return Some(rest);
        }
    }
}

/// Words of a transaction statement: identifiers/keywords and commas, nothing else.
fn transaction_words(body: &str) -> Option<Vec<&str>> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in body.char_indices() {
        let word_char = c.is_ascii_alphanumeric() || c == '_' || c == '$';
        match (word_char, start) {
            (true, None) => start = Some(i),
            (true, Some(_)) => {}
            (false, Some(s)) => {
                words.push(&body[s..i]);
                start = None;
            }
            (false, None) => {}
        }
        if !word_char {
            if c == ',' {
                words.push(",");
            } else if !c.is_ascii_whitespace() {
                return None;
            }
        }
    }
    if let Some(s) = start {
        words.push(&body[s..]);
    }
    Some(words)
}

/// A cursor over the words of a statement, matching keywords case-insensitively.
struct Words<'a> {
    words: Vec<&'a str>,
    at: usize,
    canonical: Vec<String>,
}

impl<'a> Words<'a> {
    fn peek_is(&self, keyword: &str) -> bool {
        self.words
            .get(self.at)
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    }

    fn eat(&mut self, keyword: &str) -> bool {
        if self.peek_is(keyword) {
            self.at += 1;
            if keyword != "," {
                self.canonical.push(keyword.to_owned());
            }
            true
        } else {
            false
        }
    }

    fn expect(&mut self, keyword: &str) -> Option<()> {
        self.eat(keyword).then_some(())
    }

    /// A plain identifier (the savepoint name); left out of the canonical form so that
    /// generated savepoint names do not multiply fingerprints.
    fn ident(&mut self) -> Option<()> {
        let word = self.words.get(self.at)?;
        let mut chars = word.chars();
        let first = chars.next()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        self.at += 1;
        Some(())
    }

    fn done(&self) -> bool {
        self.at == self.words.len()
    }
}

/// Match `body` against the grammar of the common transaction statements.
fn fast_transaction(body: &str) -> Option<(TxnControl, String)> {
    let mut w = Words {
        words: transaction_words(body)?,
        at: 0,
        canonical: Vec::new(),
    };
    let txn = if w.eat("BEGIN") {
        let _ = w.eat("WORK") || w.eat("TRANSACTION");
        transaction_modes(&mut w)?;
        TxnControl::Begin
    } else if w.eat("START") {
        w.expect("TRANSACTION")?;
        transaction_modes(&mut w)?;
        TxnControl::Begin
    } else if w.eat("COMMIT") || w.eat("END") {
        let _ = w.eat("WORK") || w.eat("TRANSACTION");
        transaction_chain(&mut w)?;
        TxnControl::Commit
    } else if w.eat("ABORT") {
        let _ = w.eat("WORK") || w.eat("TRANSACTION");
        transaction_chain(&mut w)?;
        TxnControl::Rollback
    } else if w.eat("ROLLBACK") {
        let _ = w.eat("WORK") || w.eat("TRANSACTION");
        if w.eat("TO") {
            let _ = w.eat("SAVEPOINT");
            w.ident()?;
            TxnControl::RollbackToSavepoint
        } else {
            transaction_chain(&mut w)?;
            TxnControl::Rollback
        }
    } else if w.eat("SAVEPOINT") {
        w.ident()?;
        TxnControl::Savepoint
    } else if w.eat("RELEASE") {
        let _ = w.eat("SAVEPOINT");
        w.ident()?;
        TxnControl::ReleaseSavepoint
    } else {
        return None;
    };
    w.done().then(|| (txn, w.canonical.join(" ")))
}

/// `[AND [NO] CHAIN]`
fn transaction_chain(w: &mut Words<'_>) -> Option<()> {
    if w.eat("AND") {
        let _ = w.eat("NO");
        w.expect("CHAIN")?;
    }
    Some(())
}

/// `transaction_mode [[,] transaction_mode …]`, possibly empty.
fn transaction_modes(w: &mut Words<'_>) -> Option<()> {
    let mut first = true;
    while !w.done() {
        if !first {
            let _ = w.eat(",");
        }
        first = false;
        if w.eat("ISOLATION") {
            w.expect("LEVEL")?;
            if w.eat("SERIALIZABLE") {
            } else if w.eat("REPEATABLE") {
                w.expect("READ")?;
            } else if w.eat("READ") {
                if !(w.eat("COMMITTED") || w.eat("UNCOMMITTED")) {
                    return None;
                }
            } else {
                return None;
            }
        } else if w.eat("READ") {
            if !(w.eat("WRITE") || w.eat("ONLY")) {
                return None;
            }
        } else if w.eat("NOT") {
            w.expect("DEFERRABLE")?;
        } else if !w.eat("DEFERRABLE") {
            return None;
        }
    }
    Some(())
}

/// Setting names that start the special `SET` forms; those go to the parser.
const SET_SPECIAL_FORMS: &[&str] = &[
    "authorization",
    "characteristics",
    "constraints",
    "local",
    "names",
    "role",
    "schema",
    "session",
    "time",
    "transaction",
    "xml",
];

/// `SET [SESSION | LOCAL] name {= | TO} value`: returns the canonical form (for the
/// fingerprint) and the text with the value replaced by `$1` (for reports: values can be
/// secrets, and never appear in reports).
fn fast_set(body: &str) -> Option<(String, String)> {
    let mut rest = body.get(3..)?;
    let mut canonical = String::from("SET");
    rest = rest.trim_ascii_start();
    for scope in ["SESSION", "LOCAL"] {
        if let Some(after) = strip_keyword(rest, scope) {
            canonical.push(' ');
            canonical.push_str(scope);
            rest = after;
            break;
        }
    }
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && !name.ends_with('.')
        && !name.contains("..")
        && !SET_SPECIAL_FORMS.contains(&name.to_ascii_lowercase().as_str());
    if !name_ok {
        return None;
    }
    let after_name = rest[name_len..].trim_ascii_start();
    let value = if let Some(v) = after_name.strip_prefix('=') {
        v
    } else {
        strip_keyword(after_name, "TO")?
    };
    if value.trim_ascii().is_empty() {
        return None;
    }
    let value_start = body.len() - value.len();
    let normalized = format!("{} $1", body[..value_start].trim_ascii_end());
    canonical.push(' ');
    canonical.push_str(&name.to_ascii_lowercase());
    canonical.push_str(" = $1");
    Some((canonical, normalized))
}

/// `RESET name | RESET ALL | RESET ROLE | RESET TIME ZONE …`: words only.
fn fast_reset(body: &str) -> Option<String> {
    let ok = body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c.is_ascii_whitespace());
    let words: Vec<String> = body
        .split_ascii_whitespace()
        .map(|w| w.to_ascii_uppercase())
        .collect();
    (ok && words.len() >= 2).then(|| words.join(" "))
}

/// `text` without a leading case-insensitive `keyword` followed by whitespace.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let tail = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && tail.starts_with(|c: char| c.is_ascii_whitespace()))
        .then(|| tail.trim_ascii_start())
}

// ---------------------------------------------------------------------------------------------
// The parser path.
// ---------------------------------------------------------------------------------------------

/// Fingerprints keep relation names and schemas significant (libpg_query ≤ 17 behaviour):
/// the default of libpg_query 18 would fingerprint `FROM a x` and `FROM b x` alike.
const FINGERPRINT_OPTIONS: pg_query::FingerprintOptions =
    pg_query::FingerprintOptions::RANGEVAR_PG17_COMPAT;

/// Classify through the parser; `None` if the text does not parse.
fn classify_parsed(sql: &str, read_only_functions: &[String]) -> Option<Classification> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).ok()?;
    let mut walker = Walker::new(read_only_functions);
    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in &parsed.protobuf.stmts {
        let stmt = match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(node) => walker.statement(node),
            None => Stmt::write(),
        };
        statements.push(stmt);
    }
    let fingerprint =
        match pg_query::fingerprint(sql, pg_query::ParserOptions::DEFAULT, FINGERPRINT_OPTIONS) {
            Ok(fp) => fp.hex,
            Err(_) => unparsed_fingerprint(sql),
        };
    let normalized = pg_query::normalize(sql).unwrap_or_else(|_| sql.to_owned());
    Some(Classification {
        kind: combine_kinds(&statements),
        txn: statements.iter().rev().find_map(|s| s.txn),
        ordered: combine_ordered(&statements),
        volatile: walker.volatile,
        inserts_into: walker.inserts_into,
        statements: statements.len(),
        fingerprint,
        normalized,
    })
}

/// The classification of a string the parser rejects: a write, fingerprinted by its text.
fn unparsed(sql: &str) -> Classification {
    let statements = panic::catch_unwind(|| count_statements(sql))
        .ok()
        .flatten()
        .unwrap_or(1)
        .max(1);
    Classification {
        kind: Kind::Write,
        txn: None,
        ordered: false,
        volatile: Vec::new(),
        inserts_into: Vec::new(),
        statements,
        fingerprint: unparsed_fingerprint(sql),
        normalized: sql.to_owned(),
    }
}

/// Count the statements of a string the parser rejected, from the scanner's tokens: a
/// statement is a run of non-comment tokens ended by `;` or the end. `None` if even the
/// scanner fails (an unterminated quote).
fn count_statements(sql: &str) -> Option<usize> {
    let scanned = pg_query::scan(sql).ok()?;
    let mut statements = 0;
    let mut open = false;
    for token in &scanned.tokens {
        match pb::Token::try_from(token.token) {
            Ok(pb::Token::Ascii59) => {
                statements += usize::from(open);
                open = false;
            }
            Ok(pb::Token::SqlComment | pb::Token::CComment) => {}
            _ => open = true,
        }
    }
    Some(statements + usize::from(open))
}

fn unparsed_fingerprint(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("unparsed:{}", short_hash(&collapsed))
}

/// The first 8 bytes of SHA-256, as 16 hex digits (the width of pg_query's fingerprints).
fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

/// What one statement of a string does.
#[derive(Debug, Clone, Copy)]
struct Stmt {
    kind: Kind,
    txn: Option<TxnControl>,
    /// `Some(has top-level ORDER BY)` for statements that return the rows of a query.
    rows_ordered: Option<bool>,
}

impl Stmt {
    fn of(kind: Kind) -> Stmt {
        Stmt {
            kind,
            txn: None,
            rows_ordered: None,
        }
    }

    fn write() -> Stmt {
        Stmt::of(Kind::Write)
    }

    fn session() -> Stmt {
        Stmt::of(Kind::Session)
    }
}

/// Write beats everything; transaction only if every statement is; any session or
/// transaction statement among reads makes the string session (it must be replayed in order);
/// no statements at all is a read.
fn combine_kinds(statements: &[Stmt]) -> Kind {
    if statements.iter().any(|s| s.kind == Kind::Write) {
        Kind::Write
    } else if !statements.is_empty() && statements.iter().all(|s| s.kind == Kind::Transaction) {
        Kind::Transaction
    } else if statements
        .iter()
        .any(|s| matches!(s.kind, Kind::Session | Kind::Transaction))
    {
        Kind::Session
    } else {
        Kind::Read
    }
}

/// Ordered only if there are rows to compare and every row-returning statement is ordered.
fn combine_ordered(statements: &[Stmt]) -> bool {
    let mut row_sets = statements.iter().filter_map(|s| s.rows_ordered).peekable();
    row_sets.peek().is_some() && row_sets.all(|ordered| ordered)
}

/// Walks parse trees, deciding statement kinds and collecting volatile reasons and insert
/// targets along the way.
struct Walker<'a> {
    read_only_functions: &'a [String],
    volatile: Vec<String>,
    inserts_into: Vec<String>,
    /// Something in the subtree being walked changes data or takes row locks (or is a node
    /// this walker does not understand). Scoped per query by [`Walker::query_writes`].
    writes: bool,
    depth: usize,
}

/// Beyond this nesting the walker stops and calls the statement a write. libpg_query 18
/// already refuses trees deeper than about 100 protobuf levels; this is a second fence.
const MAX_WALK_DEPTH: usize = 1000;

impl<'a> Walker<'a> {
    fn new(read_only_functions: &'a [String]) -> Self {
        Walker {
            read_only_functions,
            volatile: Vec::new(),
            inserts_into: Vec::new(),
            writes: false,
            depth: 0,
        }
    }

    /// Classify one top-level (or EXPLAINed / COPYed) statement.
    fn statement(&mut self, node: &NodeEnum) -> Stmt {
        use NodeEnum as N;
        match node {
            N::SelectStmt(s) => {
                let writes = self.query_writes(|w| w.select(s));
                let kind = match &s.into_clause {
                    Some(into) if !writes && into.rel.as_ref().is_some_and(is_temp) => {
                        Kind::Session
                    }
                    Some(_) => Kind::Write,
                    None if writes => Kind::Write,
                    None => Kind::Read,
                };
                Stmt {
                    kind,
                    txn: None,
                    rows_ordered: s.into_clause.is_none().then_some(!s.sort_clause.is_empty()),
                }
            }
            N::InsertStmt(_) | N::UpdateStmt(_) | N::DeleteStmt(_) | N::MergeStmt(_) => {
                self.node_enum(node);
                Stmt::write()
            }
            N::ExplainStmt(e) => {
                self.note_volatile("EXPLAIN".to_owned());
                let inner = e.query.as_ref().and_then(|q| q.node.as_ref());
                let kind = match inner {
                    // Only ANALYZE executes the statement.
                    Some(inner) if explain_analyzes(&e.options) => self.statement(inner).kind,
                    Some(_) => Kind::Read,
                    None => Kind::Write,
                };
                Stmt {
                    kind,
                    txn: None,
                    rows_ordered: Some(true),
                }
            }
            N::CopyStmt(c) => self.copy(c),
            N::VariableShowStmt(_) => Stmt::of(Kind::Read),
            N::TransactionStmt(t) => match txn_control(t.kind) {
                Some(txn) => Stmt {
                    kind: Kind::Transaction,
                    txn: Some(txn),
                    rows_ordered: None,
                },
                None => Stmt::write(),
            },
            N::VariableSetStmt(_)
            | N::ConstraintsSetStmt(_)
            | N::DiscardStmt(_)
            | N::PrepareStmt(_)
            | N::DeallocateStmt(_)
            | N::ListenStmt(_)
            | N::UnlistenStmt(_)
            | N::LoadStmt(_)
            | N::FetchStmt(_)
            | N::ClosePortalStmt(_) => Stmt::session(),
            N::DeclareCursorStmt(d) => {
                let writes = self.query_writes(|w| w.boxed(&d.query));
                Stmt::of(if writes { Kind::Write } else { Kind::Session })
            }
            N::CreateStmt(c) if c.relation.as_ref().is_some_and(is_temp) => Stmt::session(),
            N::ViewStmt(v) if v.view.as_ref().is_some_and(is_temp) => Stmt::session(),
            N::CreateSeqStmt(s) if s.sequence.as_ref().is_some_and(is_temp) => Stmt::session(),
            N::CreateTableAsStmt(c) => {
                let writes = self.query_writes(|w| w.boxed(&c.query));
                let temp = c
                    .into
                    .as_ref()
                    .and_then(|into| into.rel.as_ref())
                    .is_some_and(is_temp);
                Stmt::of(if temp && !writes {
                    Kind::Session
                } else {
                    Kind::Write
                })
            }
            N::AlterTableStmt(a) => {
                self.alter_table_volatile(a);
                Stmt::write()
            }
            // EXECUTE: the prepared text is not known here. NOTIFY: the secondary's listeners
            // must hear it too. Everything else (DDL, DO, CALL, LOCK, TRUNCATE, VACUUM, GRANT,
            // CHECKPOINT, REFRESH, …) changes the database or the server.
            _ => Stmt::write(),
        }
    }

    /// `COPY … FROM` writes; `COPY … TO STDOUT` reads; `TO 'file'` / `TO PROGRAM` write.
    fn copy(&mut self, c: &pb::CopyStmt) -> Stmt {
        if c.is_from {
            if let Some(rel) = &c.relation {
                self.note_insert(rel);
            }
            self.boxed(&c.where_clause);
            return Stmt::write();
        }
        let to_client = !c.is_program && c.filename.is_empty();
        let inner = match c.query.as_ref().and_then(|q| q.node.as_ref()) {
            Some(query) => self.statement(query),
            None => Stmt {
                kind: Kind::Read,
                txn: None,
                rows_ordered: Some(false),
            },
        };
        if to_client && inner.kind == Kind::Read {
            Stmt {
                kind: Kind::Read,
                txn: None,
                rows_ordered: Some(inner.rows_ordered.unwrap_or(false)),
            }
        } else {
            Stmt::write()
        }
    }

    /// `ALTER TABLE … ADD COLUMN … DEFAULT f()` and `ALTER COLUMN … TYPE … USING f()` evaluate
    /// their expression once per existing row, right now: report volatile functions there.
    fn alter_table_volatile(&mut self, a: &pb::AlterTableStmt) {
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
                continue;
            };
            let evaluates_now = matches!(
                pb::AlterTableType::try_from(cmd.subtype),
                Ok(pb::AlterTableType::AtAddColumn | pb::AlterTableType::AtAlterColumnType)
            );
            if evaluates_now {
                // The statement is a write anyway; only the volatile reasons matter here.
                self.query_writes(|w| w.boxed(&cmd.def));
            }
        }
    }

    /// Walk with a fresh `writes` flag and report whether this subtree writes.
    fn query_writes(&mut self, walk: impl FnOnce(&mut Self)) -> bool {
        let outer = std::mem::replace(&mut self.writes, false);
        walk(self);
        let inner = self.writes;
        self.writes = outer || inner;
        inner
    }

    fn node(&mut self, node: &pb::Node) {
        if let Some(inner) = &node.node {
            self.node_enum(inner);
        }
    }

    fn boxed(&mut self, node: &Option<Box<pb::Node>>) {
        if let Some(node) = node {
            self.node(node);
        }
    }

    fn nodes(&mut self, nodes: &[pb::Node]) {
        for node in nodes {
            self.node(node);
        }
    }

    fn node_enum(&mut self, node: &NodeEnum) {
        if self.depth >= MAX_WALK_DEPTH {
            self.writes = true;
            return;
        }
        self.depth += 1;
        self.visit(node);
        self.depth -= 1;
    }

    /// One node of a raw parse tree: note what matters, descend into every child expression.
    fn visit(&mut self, node: &NodeEnum) {
        use NodeEnum as N;
        match node {
            // Leaves: names, constants, parameters, type names, relation references.
            N::ColumnRef(_)
            | N::ParamRef(_)
            | N::AConst(_)
            | N::AStar(_)
            | N::RangeVar(_)
            | N::Alias(_)
            | N::TypeName(_)
            | N::RoleSpec(_)
            | N::Integer(_)
            | N::Float(_)
            | N::Boolean(_)
            | N::String(_)
            | N::BitString(_)
            | N::SetToDefault(_)
            | N::CurrentOfExpr(_)
            | N::MergeSupportFunc(_)
            | N::CtesearchClause(_)
            | N::ReturningOption(_)
            | N::JsonFormat(_)
            | N::JsonReturning(_)
            | N::JsonOutput(_) => {}

            N::FuncCall(f) => self.func_call(f),
            N::SqlvalueFunction(f) => {
                if let Some(name) = sql_value_function_name(f.op) {
                    self.note_volatile(name.to_owned());
                }
            }

            // Statements nested in CTEs (and in EXPLAIN/COPY/PREPARE bodies).
            N::SelectStmt(s) => self.select(s),
            N::InsertStmt(i) => {
                self.writes = true;
                if let Some(rel) = &i.relation {
                    self.note_insert(rel);
                }
                self.with_clause(i.with_clause.as_ref());
                self.nodes(&i.cols);
                self.boxed(&i.select_stmt);
                if let Some(oc) = &i.on_conflict_clause {
                    self.on_conflict(oc);
                }
                self.returning(i.returning_clause.as_ref());
            }
            N::UpdateStmt(u) => {
                self.writes = true;
                self.with_clause(u.with_clause.as_ref());
                self.nodes(&u.target_list);
                self.nodes(&u.from_clause);
                self.boxed(&u.where_clause);
                self.returning(u.returning_clause.as_ref());
            }
            N::DeleteStmt(d) => {
                self.writes = true;
                self.with_clause(d.with_clause.as_ref());
                self.nodes(&d.using_clause);
                self.boxed(&d.where_clause);
                self.returning(d.returning_clause.as_ref());
            }
            N::MergeStmt(m) => {
                self.writes = true;
                let inserts = m.merge_when_clauses.iter().any(|c| {
                    matches!(&c.node, Some(N::MergeWhenClause(w))
                        if w.command_type == pb::CmdType::CmdInsert as i32)
                });
                if let (true, Some(rel)) = (inserts, &m.relation) {
                    self.note_insert(rel);
                }
                self.with_clause(m.with_clause.as_ref());
                self.boxed(&m.source_relation);
                self.boxed(&m.join_condition);
                self.nodes(&m.merge_when_clauses);
                self.returning(m.returning_clause.as_ref());
            }
            N::MergeWhenClause(w) => {
                self.boxed(&w.condition);
                self.nodes(&w.target_list);
                self.nodes(&w.values);
            }
            N::CommonTableExpr(c) => {
                self.boxed(&c.ctequery);
                if let Some(cycle) = &c.cycle_clause {
                    self.boxed(&cycle.cycle_mark_value);
                    self.boxed(&cycle.cycle_mark_default);
                }
            }
            N::WithClause(w) => self.with_clause(Some(w)),
            N::LockingClause(_) | N::IntoClause(_) => self.writes = true,
            N::OnConflictClause(oc) => self.on_conflict(oc),
            N::InferClause(ic) => {
                self.nodes(&ic.index_elems);
                self.boxed(&ic.where_clause);
            }
            N::IndexElem(e) => self.boxed(&e.expr),
            N::ReturningClause(r) => self.returning(Some(r)),

            // Expressions.
            N::AExpr(e) => {
                self.boxed(&e.lexpr);
                self.boxed(&e.rexpr);
            }
            N::BoolExpr(e) => self.nodes(&e.args),
            N::TypeCast(c) => self.boxed(&c.arg),
            N::CollateClause(c) => self.boxed(&c.arg),
            N::NamedArgExpr(a) => self.boxed(&a.arg),
            N::SubLink(s) => {
                self.boxed(&s.testexpr);
                self.boxed(&s.subselect);
            }
            N::CaseExpr(c) => {
                self.boxed(&c.arg);
                self.nodes(&c.args);
                self.boxed(&c.defresult);
            }
            N::CaseWhen(w) => {
                self.boxed(&w.expr);
                self.boxed(&w.result);
            }
            N::CoalesceExpr(e) => self.nodes(&e.args),
            N::MinMaxExpr(e) => self.nodes(&e.args),
            N::NullTest(t) => self.boxed(&t.arg),
            N::BooleanTest(t) => self.boxed(&t.arg),
            N::RowExpr(r) => self.nodes(&r.args),
            N::AArrayExpr(a) => self.nodes(&a.elements),
            N::AIndirection(i) => {
                self.boxed(&i.arg);
                self.nodes(&i.indirection);
            }
            N::AIndices(i) => {
                self.boxed(&i.lidx);
                self.boxed(&i.uidx);
            }
            N::GroupingFunc(g) => self.nodes(&g.args),
            N::GroupingSet(g) => self.nodes(&g.content),
            N::XmlExpr(x) => {
                self.nodes(&x.named_args);
                self.nodes(&x.args);
            }
            N::XmlSerialize(x) => self.boxed(&x.expr),
            N::MultiAssignRef(m) => self.boxed(&m.source),
            N::ResTarget(t) => {
                self.nodes(&t.indirection);
                self.boxed(&t.val);
            }
            N::SortBy(s) => self.boxed(&s.node),
            N::WindowDef(w) => self.window_def(w),
            N::List(l) => self.nodes(&l.items),

            // FROM items.
            N::JoinExpr(j) => {
                self.boxed(&j.larg);
                self.boxed(&j.rarg);
                self.boxed(&j.quals);
            }
            N::RangeSubselect(r) => self.boxed(&r.subquery),
            N::RangeFunction(r) => {
                self.nodes(&r.functions);
                self.nodes(&r.coldeflist);
            }
            N::RangeTableSample(r) => {
                self.boxed(&r.relation);
                self.nodes(&r.args);
                self.boxed(&r.repeatable);
            }
            N::RangeTableFunc(r) => {
                self.boxed(&r.docexpr);
                self.boxed(&r.rowexpr);
                self.nodes(&r.namespaces);
                self.nodes(&r.columns);
            }
            N::RangeTableFuncCol(c) => {
                self.boxed(&c.colexpr);
                self.boxed(&c.coldefexpr);
            }
            N::ColumnDef(c) => {
                self.boxed(&c.raw_default);
                self.nodes(&c.constraints);
            }
            N::Constraint(c) => {
                self.boxed(&c.raw_expr);
                self.boxed(&c.where_clause);
            }

            // SQL/JSON.
            N::JsonValueExpr(v) => self.json_value(v),
            N::JsonArgument(a) => {
                if let Some(v) = &a.val {
                    self.json_value(v);
                }
            }
            N::JsonFuncExpr(f) => {
                if let Some(v) = &f.context_item {
                    self.json_value(v);
                }
                self.boxed(&f.pathspec);
                self.nodes(&f.passing);
                self.json_behavior(f.on_empty.as_deref());
                self.json_behavior(f.on_error.as_deref());
            }
            N::JsonTable(t) => {
                if let Some(v) = &t.context_item {
                    self.json_value(v);
                }
                if let Some(p) = &t.pathspec {
                    self.boxed(&p.string);
                }
                self.nodes(&t.passing);
                self.nodes(&t.columns);
                self.json_behavior(t.on_error.as_deref());
            }
            N::JsonTableColumn(c) => {
                if let Some(p) = &c.pathspec {
                    self.boxed(&p.string);
                }
                self.nodes(&c.columns);
                self.json_behavior(c.on_empty.as_deref());
                self.json_behavior(c.on_error.as_deref());
            }
            N::JsonTablePathSpec(p) => self.boxed(&p.string),
            N::JsonKeyValue(kv) => {
                self.boxed(&kv.key);
                if let Some(v) = &kv.value {
                    self.json_value(v);
                }
            }
            N::JsonParseExpr(p) => {
                if let Some(v) = &p.expr {
                    self.json_value(v);
                }
            }
            N::JsonScalarExpr(s) => self.boxed(&s.expr),
            N::JsonSerializeExpr(s) => {
                if let Some(v) = &s.expr {
                    self.json_value(v);
                }
            }
            N::JsonObjectConstructor(o) => self.nodes(&o.exprs),
            N::JsonArrayConstructor(a) => self.nodes(&a.exprs),
            N::JsonArrayQueryConstructor(a) => self.boxed(&a.query),
            N::JsonAggConstructor(a) => self.json_agg(a),
            N::JsonObjectAgg(a) => {
                if let Some(ctor) = &a.constructor {
                    self.json_agg(ctor);
                }
                if let Some(kv) = &a.arg {
                    self.boxed(&kv.key);
                    if let Some(v) = &kv.value {
                        self.json_value(v);
                    }
                }
            }
            N::JsonArrayAgg(a) => {
                if let Some(ctor) = &a.constructor {
                    self.json_agg(ctor);
                }
                if let Some(v) = &a.arg {
                    self.json_value(v);
                }
            }
            N::JsonIsPredicate(p) => self.boxed(&p.expr),
            N::JsonBehavior(b) => self.boxed(&b.expr),

            // Anything else is a node a raw query tree should not contain, or one this walker
            // does not know: assume the worst.
            _ => self.writes = true,
        }
    }

    fn select(&mut self, s: &pb::SelectStmt) {
        self.with_clause(s.with_clause.as_ref());
        self.nodes(&s.distinct_clause);
        self.nodes(&s.target_list);
        self.nodes(&s.from_clause);
        self.boxed(&s.where_clause);
        self.nodes(&s.group_clause);
        self.boxed(&s.having_clause);
        self.nodes(&s.window_clause);
        self.nodes(&s.values_lists);
        self.nodes(&s.sort_clause);
        self.boxed(&s.limit_offset);
        self.boxed(&s.limit_count);
        if !s.locking_clause.is_empty() {
            // FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE: row locks are a write.
            self.writes = true;
        }
        for arm in [&s.larg, &s.rarg].into_iter().flatten() {
            if self.depth >= MAX_WALK_DEPTH {
                self.writes = true;
                return;
            }
            self.depth += 1;
            self.select(arm);
            self.depth -= 1;
        }
    }

    fn with_clause(&mut self, with: Option<&pb::WithClause>) {
        if let Some(with) = with {
            self.nodes(&with.ctes);
        }
    }

    fn returning(&mut self, returning: Option<&pb::ReturningClause>) {
        if let Some(r) = returning {
            self.nodes(&r.exprs);
        }
    }

    fn on_conflict(&mut self, oc: &pb::OnConflictClause) {
        if let Some(infer) = &oc.infer {
            self.nodes(&infer.index_elems);
            self.boxed(&infer.where_clause);
        }
        self.nodes(&oc.target_list);
        self.boxed(&oc.where_clause);
    }

    fn window_def(&mut self, w: &pb::WindowDef) {
        self.nodes(&w.partition_clause);
        self.nodes(&w.order_clause);
        self.boxed(&w.start_offset);
        self.boxed(&w.end_offset);
    }

    fn json_value(&mut self, v: &pb::JsonValueExpr) {
        self.boxed(&v.raw_expr);
        self.boxed(&v.formatted_expr);
    }

    fn json_behavior(&mut self, b: Option<&pb::JsonBehavior>) {
        if let Some(b) = b {
            self.boxed(&b.expr);
        }
    }

    fn json_agg(&mut self, a: &pb::JsonAggConstructor) {
        self.boxed(&a.agg_filter);
        self.nodes(&a.agg_order);
        if let Some(w) = &a.over {
            self.window_def(w);
        }
    }

    fn func_call(&mut self, f: &pb::FuncCall) {
        match FuncName::of(&f.funcname) {
            Some(name) => {
                if let Some(reason) = name.volatile_reason(f.args.len()) {
                    self.note_volatile(reason);
                }
                if !name.is_read_only(self.read_only_functions) {
                    self.writes = true;
                }
            }
            None => self.writes = true,
        }
        self.nodes(&f.args);
        self.nodes(&f.agg_order);
        self.boxed(&f.agg_filter);
        if let Some(w) = &f.over {
            self.window_def(w);
        }
    }

    fn note_volatile(&mut self, reason: String) {
        if !self.volatile.contains(&reason) {
            self.volatile.push(reason);
        }
    }

    fn note_insert(&mut self, rel: &pb::RangeVar) {
        let table = if rel.schemaname.is_empty() {
            rel.relname.clone()
        } else {
            format!("{}.{}", rel.schemaname, rel.relname)
        };
        if !self.inserts_into.contains(&table) {
            self.inserts_into.push(table);
        }
    }
}

/// A temp relation: `CREATE TEMP …` or created in the `pg_temp` schema.
fn is_temp(rel: &pb::RangeVar) -> bool {
    rel.relpersistence == "t"
        || rel.schemaname == "pg_temp"
        || rel.schemaname.starts_with("pg_temp_")
}

/// Whether EXPLAIN's options include ANALYZE (on): `ANALYZE`, `(ANALYZE)`, `(ANALYZE true)`,
/// `(ANALYZE on)`, `(ANALYZE 1)`; not `(ANALYZE false/off/0)`. An unrecognised value counts as
/// on, the conservative reading.
fn explain_analyzes(options: &[pb::Node]) -> bool {
    options.iter().any(|opt| {
        let Some(NodeEnum::DefElem(def)) = &opt.node else {
            return false;
        };
        if def.defname != "analyze" {
            return false;
        }
        match def.arg.as_ref().and_then(|a| a.node.as_ref()) {
            None => true,
            Some(NodeEnum::String(s)) => !matches!(
                s.sval.to_ascii_lowercase().as_str(),
                "false" | "off" | "0" | "no" | "f" | "n"
            ),
            Some(NodeEnum::Integer(i)) => i.ival != 0,
            Some(NodeEnum::Boolean(b)) => b.boolval,
            Some(_) => true,
        }
    })
}

fn txn_control(kind: i32) -> Option<TxnControl> {
    use pb::TransactionStmtKind as K;
    Some(match K::try_from(kind).ok()? {
        K::TransStmtBegin | K::TransStmtStart => TxnControl::Begin,
        K::TransStmtCommit => TxnControl::Commit,
        K::TransStmtRollback => TxnControl::Rollback,
        K::TransStmtSavepoint => TxnControl::Savepoint,
        K::TransStmtRelease => TxnControl::ReleaseSavepoint,
        K::TransStmtRollbackTo => TxnControl::RollbackToSavepoint,
        K::TransStmtPrepare => TxnControl::PrepareTransaction,
        K::TransStmtCommitPrepared => TxnControl::CommitPrepared,
        K::TransStmtRollbackPrepared => TxnControl::RollbackPrepared,
        K::Undefined => return None,
    })
}

/// The SQL-standard value functions (`CURRENT_TIMESTAMP`, `CURRENT_USER`, …) parse to their
/// own node; each is a reason a value may differ between two servers (clock, role, database).
fn sql_value_function_name(op: i32) -> Option<&'static str> {
    use pb::SqlValueFunctionOp as Op;
    Some(match Op::try_from(op).ok()? {
        Op::SvfopCurrentDate => "current_date",
        Op::SvfopCurrentTime | Op::SvfopCurrentTimeN => "current_time",
        Op::SvfopCurrentTimestamp | Op::SvfopCurrentTimestampN => "current_timestamp",
        Op::SvfopLocaltime | Op::SvfopLocaltimeN => "localtime",
        Op::SvfopLocaltimestamp | Op::SvfopLocaltimestampN => "localtimestamp",
        Op::SvfopCurrentRole => "current_role",
        Op::SvfopCurrentUser => "current_user",
        Op::SvfopUser => "user",
        Op::SvfopSessionUser => "session_user",
        Op::SvfopCurrentCatalog => "current_catalog",
        Op::SvfopCurrentSchema => "current_schema",
        Op::SqlvalueFunctionOpUndefined => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Functions: which are side-effect free, which are volatile.
// ---------------------------------------------------------------------------------------------

/// A called function's name as the parser folded it: `name` or `schema.name`.
struct FuncName {
    schema: Option<String>,
    name: String,
}

impl FuncName {
    /// `None` if the name list is not made of strings (not something the grammar produces).
    fn of(parts: &[pb::Node]) -> Option<FuncName> {
        let mut strings = Vec::with_capacity(parts.len());
        for part in parts {
            match &part.node {
                Some(NodeEnum::String(s)) => strings.push(s.sval.as_str()),
                _ => return None,
            }
        }
        let (name, qualifiers) = strings.split_last()?;
        Some(FuncName {
            schema: qualifiers.last().map(|s| (*s).to_owned()),
            name: (*name).to_owned(),
        })
    }

    /// Built-in resolution applies to unqualified names and to `pg_catalog.` names.
    fn is_builtin_namespace(&self) -> bool {
        self.schema.as_deref().is_none_or(|s| s == "pg_catalog")
    }

    fn display(&self) -> String {
        match &self.schema {
            Some(schema) if schema != "pg_catalog" => format!("{schema}.{}()", self.name),
            _ => format!("{}()", self.name),
        }
    }

    fn is_read_only(&self, configured: &[String]) -> bool {
        let configured_match = configured.iter().any(|entry| match entry.split_once('.') {
            Some((schema, name)) => {
                self.schema
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(schema))
                    && self.name.eq_ignore_ascii_case(name)
            }
            None => self.name.eq_ignore_ascii_case(entry),
        });
        configured_match || (self.is_builtin_namespace() && is_read_only_builtin(&self.name))
    }

    /// Why a call of this function may give different results on two servers.
    fn volatile_reason(&self, nargs: usize) -> Option<String> {
        let name = self.name.as_str();
        let volatile = VOLATILE_FUNCTIONS.binary_search(&name).is_ok()
            || name.starts_with("uuid_generate_")
            // age(ts) measures from current_date; age(a, b) is a pure difference.
            || (name == "age" && nargs == 1);
        volatile.then(|| self.display())
    }
}

fn is_read_only_builtin(name: &str) -> bool {
    READ_ONLY_BUILTINS.binary_search(&name).is_ok()
        || READ_ONLY_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Built-in functions known to have no side effect on data or on other sessions (sorted; a
/// test checks). Deliberately absent, so that calling them is a write: `nextval`, `setval`,
/// `set_config`, `pg_advisory_*` locks, `pg_notify`, `lo_*`, `pg_terminate_backend`,
/// `pg_cancel_backend`, `pg_reload_conf`, `pg_switch_wal`, `dblink*`, `setseed`,
/// `pg_logical_emit_message`, replication-slot and `pg_stat_reset*` functions, file access.
#[rustfmt::skip]
const READ_ONLY_BUILTINS: &[&str] = &[
    "abs", "acos", "acosd", "acosh", "age", "any_value", "area", "ascii", "asin", "asind", "asinh",
    "atan", "atan2", "atan2d", "atand", "atanh", "avg", "bit_and", "bit_count", "bit_length",
    "bit_or", "bit_xor", "bool", "bool_and", "bool_or", "box", "btrim", "cardinality", "casefold",
    "cbrt", "ceil", "ceiling", "center", "char_length", "character_length", "chr", "circle",
    "clock_timestamp", "col_description", "concat", "concat_ws", "convert", "convert_from",
    "convert_to", "corr", "cos", "cosd", "cosh", "cot", "cotd", "count", "covar_pop", "covar_samp",
    "crc32", "crc32c", "crypt", "cume_dist", "current_database", "current_query", "current_schema",
    "current_schemas", "current_setting", "currval", "daterange", "decode", "degrees",
    "dense_rank", "diameter", "difference", "digest", "div", "dmetaphone", "dmetaphone_alt",
    "encode", "enum_first", "enum_last", "enum_range", "erf", "erfc", "every", "exp", "extract",
    "factorial", "family", "first_value", "float4", "float8", "floor", "format", "format_type",
    "gamma", "gcd", "gen_random_bytes", "gen_random_uuid", "gen_salt", "generate_series",
    "generate_subscripts", "get_bit", "get_byte", "get_current_ts_config", "height", "hmac",
    "host", "hostmask", "inet_client_addr", "inet_client_port", "inet_merge", "inet_same_family",
    "inet_server_addr", "inet_server_port", "initcap", "int2", "int4", "int4range", "int8",
    "int8range", "is_normalized", "isempty", "isfinite", "justify_days", "justify_hours",
    "justify_interval", "lag", "last_value", "lastval", "lcm", "lead", "left", "length",
    "levenshtein", "levenshtein_less_equal", "lgamma", "like_escape", "ln", "localtime",
    "localtimestamp", "log", "log10", "lower", "lower_inc", "lower_inf", "lpad", "ltrim",
    "make_date", "make_interval", "make_time", "make_timestamp", "make_timestamptz", "masklen",
    "max", "md5", "metaphone", "min", "min_scale", "mod", "mode", "multirange", "netmask",
    "network", "normalize", "now", "nth_value", "ntile", "num_nonnulls", "num_nulls", "numeric",
    "numrange", "obj_description", "octet_length", "overlaps", "overlay", "parse_ident",
    "percent_rank", "percentile_cont", "percentile_disc", "pg_backend_pid", "pg_blocking_pids",
    "pg_client_encoding", "pg_collation_for", "pg_column_compression", "pg_column_size",
    "pg_conf_load_time", "pg_current_snapshot", "pg_current_wal_flush_lsn",
    "pg_current_wal_insert_lsn", "pg_current_wal_lsn", "pg_current_xact_id",
    "pg_current_xact_id_if_assigned", "pg_database_size", "pg_encoding_to_char",
    "pg_function_is_visible", "pg_has_role", "pg_index_column_has_property",
    "pg_index_has_property", "pg_indexam_has_property", "pg_indexes_size", "pg_input_error_info",
    "pg_input_is_valid", "pg_jit_available", "pg_last_xact_replay_timestamp",
    "pg_listening_channels", "pg_my_temp_schema", "pg_notification_queue_usage",
    "pg_opclass_is_visible", "pg_operator_is_visible", "pg_postmaster_start_time",
    "pg_relation_filenode", "pg_relation_filepath", "pg_relation_size",
    "pg_safe_snapshot_blocking_pids", "pg_sleep", "pg_sleep_for", "pg_sleep_until",
    "pg_snapshot_xip", "pg_snapshot_xmax", "pg_snapshot_xmin", "pg_table_is_visible",
    "pg_table_size", "pg_tablespace_size", "pg_total_relation_size", "pg_trigger_depth",
    "pg_type_is_visible", "pg_typeof", "pg_visible_in_snapshot", "pg_wal_lsn_diff",
    "pg_xact_status", "pi", "plainto_tsquery", "point", "position", "power", "quote_ident",
    "quote_literal", "quote_nullable", "radians", "random", "random_normal", "rank", "regr_avgx",
    "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy",
    "regr_syy", "repeat", "replace", "reverse", "right", "round", "row_number", "row_to_json",
    "rpad", "rtrim", "scale", "session_user", "set_bit", "set_byte", "set_masklen", "sha224",
    "sha256", "sha384", "sha512", "shobj_description", "sign", "similar_escape",
    "similar_to_escape", "similarity", "sin", "sind", "sinh", "soundex", "split_part", "sqrt",
    "starts_with", "statement_timestamp", "stddev", "stddev_pop", "stddev_samp", "strpos",
    "substr", "substring", "sum", "system_user", "tan", "tand", "tanh", "text", "timeofday",
    "timezone", "transaction_timestamp", "translate", "trim_array", "trim_scale", "trunc",
    "tsrange", "tstzrange", "txid_current", "txid_current_if_assigned", "txid_current_snapshot",
    "txid_snapshot_xip", "txid_snapshot_xmax", "txid_snapshot_xmin", "txid_status",
    "txid_visible_in_snapshot", "unaccent", "unistr", "unnest", "upper", "upper_inc", "upper_inf",
    "uuid_extract_timestamp", "uuid_extract_version", "uuidv4", "uuidv7", "var_pop", "var_samp",
    "varchar", "variance", "version", "websearch_to_tsquery", "width", "width_bucket",
    "word_similarity", "xmlagg", "xmlcomment", "xmlconcat", "xmlexists", "xpath", "xpath_exists",
];

/// Families of side-effect-free built-ins, by prefix.
#[rustfmt::skip]
const READ_ONLY_PREFIXES: &[&str] = &[
    "array_", "date_", "has_", "json_", "jsonb_", "pg_get_", "pg_is_", "pg_size_", "pg_stat_get_",
    "range_", "regexp_", "string_", "to_", "ts_", "uuid_generate_",
];

/// Functions whose result depends on the server, the clock, a sequence or chance (sorted).
#[rustfmt::skip]
const VOLATILE_FUNCTIONS: &[&str] = &[
    "clock_timestamp", "current_database", "current_setting", "currval", "gen_random_bytes",
    "gen_random_uuid", "gen_salt", "inet_client_addr", "inet_client_port", "inet_server_addr",
    "inet_server_port", "lastval", "nextval", "now", "pg_backend_pid", "pg_conf_load_time",
    "pg_current_snapshot", "pg_current_wal_flush_lsn", "pg_current_wal_insert_lsn",
    "pg_current_wal_lsn", "pg_current_xact_id", "pg_current_xact_id_if_assigned",
    "pg_my_temp_schema", "pg_postmaster_start_time", "random", "random_normal", "setval",
    "statement_timestamp", "timeofday", "transaction_timestamp", "txid_current",
    "txid_current_if_assigned", "txid_current_snapshot", "uuidv4", "uuidv7", "version",
];

#[cfg(test)]
mod tests {

    /// Statements that differ only in constants share a shape; identifiers, quoted
    /// identifiers, parameters and keywords are kept, so different statements do not.
    #[test]
    fn shapes_blank_constants_only() {
        let same = [
            "UPDATE pgbench_accounts SET abalance = abalance + 42 WHERE aid = 7;",
            "UPDATE pgbench_accounts SET abalance = abalance + 3 WHERE aid = 123456;",
            "UPDATE pgbench_accounts SET abalance = abalance + 1.5e-3 WHERE aid = .5;",
        ];
        let k = shape(same[0]);
        for s in &same[1..] {
            assert_eq!(shape(s), k, "{s}");
        }
        assert_eq!(
            shape("select 'it''s', E'a\\'b', $q$x$y$q$, x'1F', t1.c2, \"Col 9\", $1 -- 5\n"),
            "select '?', '?', '?', '?', t1.c2, \"Col 9\", $1 -- 5\n"
        );
        assert_ne!(shape("select * from t1"), shape("select * from t2"));
        assert_ne!(shape("select 1"), shape("delete from t"));
        assert_ne!(shape("select $1"), shape("select $2"));
        assert_eq!(shape("select 'unterminated"), "select '?'");
    }

    /// The cache is keyed by shape: literal variants share one classification, and a
    /// different statement still gets its own.
    #[test]
    fn the_cache_is_shared_by_literal_variants() {
        let c = Classifier::new(100, Vec::new());
        let a = c.classify("insert into t values (1, 'a')");
        let b = c.classify("insert into t values (2, 'bb')");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(c.len(), 1);
        let r = c.classify("select * from t where id = 3");
        assert_eq!(r.kind, Kind::Read);
        assert_eq!(a.kind, Kind::Write);
        assert_eq!(c.len(), 2);
    }
    use super::*;

    /// One row of the classification table: the SQL, its kind, and — where the row is about
    /// them — its transaction control, ordering and volatile reasons.
    struct Case {
        sql: &'static str,
        kind: Kind,
        txn: Option<TxnControl>,
        ordered: Option<bool>,
        volatile: Option<&'static [&'static str]>,
    }

    fn case(sql: &'static str, kind: Kind) -> Case {
        Case {
            sql,
            kind,
            txn: None,
            ordered: None,
            volatile: None,
        }
    }

    impl Case {
        fn txn(mut self, txn: TxnControl) -> Self {
            self.txn = Some(txn);
            self
        }
        fn ordered(mut self, ordered: bool) -> Self {
            self.ordered = Some(ordered);
            self
        }
        fn volatile(mut self, reasons: &'static [&'static str]) -> Self {
            self.volatile = Some(reasons);
            self
        }
    }

    fn read_only() -> Vec<String> {
        vec!["app.safe_lookup".to_owned(), "pure_fn".to_owned()]
    }

    use Kind::{Read, Session, Transaction, Write};
    use TxnControl as T;

    #[rustfmt::skip]
    fn cases() -> Vec<Case> {
        vec![
            // Plain reads.
            case("SELECT 1", Read).ordered(false).volatile(&[]),
            case("select * from users where id = 42", Read).ordered(false),
            case("SELECT id, name FROM users ORDER BY name", Read).ordered(true),
            case("SELECT * FROM (SELECT * FROM t ORDER BY a) s", Read).ordered(false),
            case("SELECT * FROM t WHERE id IN (SELECT id FROM u ORDER BY id LIMIT 5)", Read).ordered(false),
            case("(SELECT a FROM t) UNION ALL (SELECT a FROM u) ORDER BY a", Read).ordered(true),
            case("SELECT a FROM t UNION SELECT a FROM u", Read).ordered(false),
            case("(SELECT a FROM t ORDER BY a) UNION SELECT a FROM u", Read).ordered(false),
            case("VALUES (1, 'a'), (2, 'b') ORDER BY 1", Read).ordered(true),
            case("TABLE users", Read).ordered(false),
            case("SELECT count(*), max(created_at) FROM orders GROUP BY customer_id HAVING count(*) > 1", Read),
            case("WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT * FROM recent", Read).volatile(&["now()"]),
            case("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT n FROM r", Read),
            case("SELECT u.*, o.total FROM users u JOIN orders o ON o.user_id = u.id LEFT JOIN x ON true", Read),
            case("SELECT coalesce(nickname, lower(name)), upper(email), length(bio) FROM users", Read),
            case("SELECT date_trunc('day', created_at), to_char(created_at, 'YYYY') FROM t", Read),
            case("SELECT data->>'name', jsonb_extract_path(data, 'a'), jsonb_array_length(tags) FROM docs", Read),
            case("SELECT array_agg(id ORDER BY id), string_agg(name, ',') FROM t", Read).ordered(false),
            case("SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", Read).ordered(false),
            case("SELECT * FROM generate_series(1, 10) g", Read),
            case("SELECT now(), current_timestamp, random()", Read).volatile(&["now()", "current_timestamp", "random()"]),
            case("SELECT gen_random_uuid()", Read).volatile(&["gen_random_uuid()"]),
            case("SELECT pg_sleep(0.1)", Read),
            case("SELECT version(), current_setting('server_version'), pg_backend_pid()", Read).volatile(&["version()", "current_setting()", "pg_backend_pid()"]),
            case("SELECT pg_catalog.now()", Read).volatile(&["now()"]),
            case("SELECT greatest(a, b), least(a, b), abs(c), round(d, 2) FROM t", Read),
            case("SELECT EXISTS (SELECT 1 FROM t WHERE a = $1)", Read),
            case("SELECT * FROM users WHERE id = $1 AND email = $2", Read),
            case("SELECT CASE WHEN a > 0 THEN 'pos' ELSE 'neg' END FROM t", Read),
            case("SELECT extract(epoch FROM created_at), created_at AT TIME ZONE 'UTC' FROM t", Read),
            case("SELECT substring(name FROM 1 FOR 3), trim(both ' ' from name), position('a' in name) FROM t", Read),
            case("SELECT * FROM t WHERE id = ANY($1) AND x ILIKE $2 AND y SIMILAR TO 'a' AND z IS NORMALIZED", Read),
            case("SELECT currval('s'), txid_current()", Read).volatile(&["currval()", "txid_current()"]),
            case("SELECT * FROM t TABLESAMPLE SYSTEM (10)", Read),
            case("SELECT x FROM t WHERE x::text LIKE 'a%' COLLATE \"C\"", Read),
            case("SHOW search_path", Read),
            case("SHOW ALL", Read),
            case("SELECT current_user, session_user", Read).volatile(&["current_user", "session_user"]),
            case("SELECT * FROM json_to_recordset('[{\"a\":1}]') AS x(a int)", Read),
            case("SELECT * FROM JSON_TABLE('[1,2]'::jsonb, '$[*]' COLUMNS (v int PATH '$'))", Read),
            case("SELECT JSON_OBJECT('a': 1), JSON_ARRAYAGG(x ORDER BY x) FROM t", Read),
            case("SELECT JSON_VALUE(j, '$.a' RETURNING int DEFAULT random()::int ON ERROR) FROM t", Read).volatile(&["random()"]),
            case("SELECT xmlelement(name a, 'x'), XMLSERIALIZE(CONTENT x AS text) FROM t", Read),
            case("select * from xmltable('/a' passing x columns b int path 'b' default 1) as xt", Read),
            case("select grouping(a), count(*) from t group by rollup(a), cube(b), grouping sets ((a), (b))", Read),
            case("select (a).b[1], (select max(x) from u)[2:3], row(1, 2) = row(3, 4), a is distinct from b, a between 1 and 2, a is not true, b is null, array[1, 2] from t", Read),
            // Reads that are writes: functions with side effects.
            case("SELECT nextval('users_id_seq')", Write).volatile(&["nextval()"]),
            case("SELECT setval('users_id_seq', 100)", Write).volatile(&["setval()"]),
            case("SELECT pg_advisory_lock(42)", Write),
            case("SELECT pg_try_advisory_xact_lock(1, 2)", Write),
            case("SELECT set_config('app.user', 'x', false)", Write),
            case("SELECT pg_notify('chan', 'payload')", Write),
            case("SELECT lo_create(0)", Write),
            case("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'x'", Write),
            case("SELECT * FROM t WHERE id = (SELECT nextval('s'))", Write),
            case("SELECT id FROM t ORDER BY id LIMIT nextval('s')", Write),
            case("SELECT coalesce(max(x), 0) + nextval('s')::int FROM t", Write),
            case("SELECT my_func(1)", Write),
            case("SELECT f(x => 1)", Write),
            case("SELECT pure_fn(1)", Read),
            case("SELECT PURE_FN(1), lower(pure_fn(2))", Read),
            case("SELECT app.safe_lookup(2)", Read),
            case("SELECT other.safe_lookup(2)", Write),
            case("SELECT safe_lookup(2)", Write),
            case("SELECT * FROM my_srf()", Write),
            case("SELECT public.lower('x')", Write),
            case("SELECT * FROM dblink('dbname=x', 'delete from t') AS t(a int)", Write),
            // Row locks, SELECT INTO, data-modifying CTEs.
            case("SELECT * FROM t FOR UPDATE", Write),
            case("SELECT * FROM t FOR SHARE SKIP LOCKED", Write),
            case("SELECT * FROM t FOR NO KEY UPDATE NOWAIT", Write),
            case("SELECT * FROM t FOR KEY SHARE", Write),
            case("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", Write),
            case("SELECT * INTO archive FROM t", Write),
            case("SELECT * INTO TEMP scratch FROM t", Session),
            case("WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d", Write),
            case("WITH i AS (INSERT INTO log(msg) VALUES ('x') RETURNING id) SELECT id FROM i", Write),
            case("WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u", Write),
            case("WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING t.*) SELECT * FROM m", Write),
            // DML.
            case("INSERT INTO users (name) VALUES ('a')", Write).volatile(&[]),
            case("INSERT INTO users (name) VALUES ($1) RETURNING id", Write),
            case("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b, updated_at = now()", Write).volatile(&["now()"]),
            case("INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING", Write),
            case("INSERT INTO t SELECT * FROM u", Write),
            case("UPDATE users SET name = 'b' WHERE id = 1", Write),
            case("UPDATE t SET x = u.x FROM u WHERE t.id = u.id RETURNING t.*", Write),
            case("UPDATE t SET (a, b) = (SELECT 1, now()) WHERE CURRENT OF c", Write).volatile(&["now()"]),
            case("DELETE FROM users WHERE id = 1", Write),
            case("DELETE FROM t USING u WHERE t.id = u.id", Write),
            case("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)", Write),
            case("INSERT INTO events (id, at) VALUES (gen_random_uuid(), clock_timestamp())", Write).volatile(&["gen_random_uuid()", "clock_timestamp()"]),
            case("UPDATE t SET token = md5(random()::text), seen = CURRENT_DATE", Write).volatile(&["random()", "current_date"]),
            // COPY.
            case("COPY users FROM STDIN", Write),
            case("COPY users (id, name) FROM STDIN WITH (FORMAT csv)", Write),
            case("COPY users TO STDOUT", Read).ordered(false),
            case("COPY (SELECT * FROM users ORDER BY id) TO STDOUT WITH CSV HEADER", Read).ordered(true),
            case("COPY (SELECT * FROM users) TO STDOUT", Read).ordered(false),
            case("COPY (DELETE FROM t RETURNING *) TO STDOUT", Write),
            case("COPY (SELECT nextval('s')) TO STDOUT", Write),
            case("COPY users TO '/tmp/users.csv'", Write),
            case("COPY users FROM PROGRAM 'cat x'", Write),
            // EXPLAIN.
            case("EXPLAIN SELECT * FROM t", Read).ordered(true).volatile(&["EXPLAIN"]),
            case("EXPLAIN ANALYZE SELECT * FROM t", Read).ordered(true),
            case("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", Read),
            case("EXPLAIN DELETE FROM t", Read),
            case("EXPLAIN ANALYZE DELETE FROM t", Write),
            case("EXPLAIN (ANALYZE true, FORMAT json) UPDATE t SET a = 1", Write),
            case("EXPLAIN (ANALYZE false) INSERT INTO t VALUES (1)", Read),
            case("EXPLAIN (ANALYZE off) DELETE FROM t", Read),
            case("EXPLAIN ANALYZE SELECT nextval('s')", Write).volatile(&["EXPLAIN", "nextval()"]),
            case("EXPLAIN SELECT nextval('s')", Read).volatile(&["EXPLAIN"]),
            // Transaction control (fast path and parser).
            case("BEGIN", Transaction).txn(T::Begin),
            case("begin;", Transaction).txn(T::Begin),
            case("BEGIN ISOLATION LEVEL SERIALIZABLE", Transaction).txn(T::Begin),
            case("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE", Transaction).txn(T::Begin),
            case("START TRANSACTION READ ONLY", Transaction).txn(T::Begin),
            case("start transaction isolation level read committed read write", Transaction).txn(T::Begin),
            case("/* app=web */ BEGIN", Transaction).txn(T::Begin),
            case("-- leading comment\nBEGIN", Transaction).txn(T::Begin),
            case("BEGIN READ WRITE -- trailing comment", Transaction).txn(T::Begin),
            case("COMMIT", Transaction).txn(T::Commit),
            case("commit work", Transaction).txn(T::Commit),
            case("END", Transaction).txn(T::Commit),
            case("COMMIT AND CHAIN", Transaction).txn(T::Commit),
            case("ROLLBACK", Transaction).txn(T::Rollback),
            case("ABORT", Transaction).txn(T::Rollback),
            case("rollback transaction and no chain", Transaction).txn(T::Rollback),
            case("SAVEPOINT sp1", Transaction).txn(T::Savepoint),
            case("SAVEPOINT \"Quoted Name\"", Transaction).txn(T::Savepoint),
            case("RELEASE SAVEPOINT sp1", Transaction).txn(T::ReleaseSavepoint),
            case("RELEASE sp1", Transaction).txn(T::ReleaseSavepoint),
            case("ROLLBACK TO SAVEPOINT sp1", Transaction).txn(T::RollbackToSavepoint),
            case("ROLLBACK TO sp1", Transaction).txn(T::RollbackToSavepoint),
            case("PREPARE TRANSACTION 'tx1'", Transaction).txn(T::PrepareTransaction),
            case("COMMIT PREPARED 'tx1'", Transaction).txn(T::CommitPrepared),
            case("ROLLBACK PREPARED 'tx1'", Transaction).txn(T::RollbackPrepared),
            case("BEGIN; COMMIT", Transaction).txn(T::Commit),
            // Session state.
            case("SET search_path TO app, public", Session),
            case("SET statement_timeout = 5000", Session),
            case("set local lock_timeout = '1s'", Session),
            case("SET SESSION timezone = 'UTC'", Session),
            case("SET TIME ZONE 'UTC'", Session),
            case("SET ROLE admin", Session),
            case("SET SESSION AUTHORIZATION 'bob'", Session),
            case("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Session),
            case("SET CONSTRAINTS ALL DEFERRED", Session),
            case("SET app.user_id = '42'", Session),
            case("RESET search_path", Session),
            case("RESET ALL", Session),
            case("RESET ROLE", Session),
            case("DISCARD ALL", Session),
            case("DISCARD TEMP", Session),
            case("PREPARE get_user (int) AS SELECT * FROM users WHERE id = $1", Session),
            case("PREPARE del (int) AS DELETE FROM users WHERE id = $1", Session),
            case("EXECUTE get_user(1)", Write),
            case("DEALLOCATE get_user", Session),
            case("DEALLOCATE ALL", Session),
            case("LISTEN jobs", Session),
            case("UNLISTEN *", Session),
            case("NOTIFY jobs, 'payload'", Write),
            case("LOAD 'auto_explain'", Session),
            case("CREATE TEMP TABLE scratch (id int)", Session),
            case("CREATE TEMPORARY TABLE IF NOT EXISTS s2 (id int) ON COMMIT DROP", Session),
            case("CREATE TABLE pg_temp.scratch3 (id int)", Session),
            case("CREATE TEMP TABLE t2 AS SELECT * FROM users", Session),
            case("CREATE TEMP TABLE t3 AS SELECT nextval('s')", Write),
            case("CREATE TEMP VIEW v AS SELECT 1", Session),
            case("CREATE TEMP SEQUENCE s1", Session),
            case("DECLARE c CURSOR FOR SELECT * FROM t", Session),
            case("DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", Write),
            case("FETCH 10 FROM c", Session),
            case("MOVE NEXT IN c", Session),
            case("CLOSE c", Session),
            // Multi-statement strings.
            case("SET x = 1; SELECT 1", Session),
            case("BEGIN; SELECT 1; COMMIT", Session).txn(T::Commit),
            case("BEGIN; INSERT INTO t VALUES (1); COMMIT", Write).txn(T::Commit),
            case("SELECT 1; SELECT 2", Read),
            case("SELECT 1; DELETE FROM t", Write),
            case("SELECT * FROM t ORDER BY a; SELECT * FROM u ORDER BY b", Read).ordered(true),
            case("SELECT * FROM t ORDER BY a; SELECT * FROM u", Read).ordered(false),
            case("SHOW x; SELECT * FROM t ORDER BY a", Read).ordered(true),
            // DDL and maintenance.
            case("CREATE TABLE users (id bigserial primary key, name text)", Write),
            case("CREATE UNLOGGED TABLE u (a int)", Write),
            case("CREATE TABLE archive AS SELECT * FROM users", Write),
            case("ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()", Write).volatile(&["gen_random_uuid()"]),
            case("ALTER TABLE users ALTER COLUMN created SET DEFAULT now()", Write).volatile(&[]),
            case("DROP TABLE users", Write),
            case("CREATE INDEX CONCURRENTLY idx ON users (lower(email))", Write),
            case("CREATE VIEW v AS SELECT * FROM users", Write),
            case("CREATE MATERIALIZED VIEW mv AS SELECT 1", Write),
            case("REFRESH MATERIALIZED VIEW CONCURRENTLY mv", Write),
            case("TRUNCATE users RESTART IDENTITY CASCADE", Write),
            case("LOCK TABLE users IN ACCESS EXCLUSIVE MODE", Write),
            case("VACUUM (ANALYZE) users", Write),
            case("ANALYZE users", Write),
            case("CLUSTER users USING users_pkey", Write),
            case("REINDEX TABLE users", Write),
            case("GRANT SELECT ON users TO reader", Write),
            case("REVOKE ALL ON users FROM public", Write),
            case("COMMENT ON TABLE users IS 'people'", Write),
            case("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", Write),
            case("DO $$ BEGIN PERFORM 1; END $$", Write),
            case("DO $body$ BEGIN; COMMIT; SELECT 1; $body$", Write),
            case("CALL do_work(1)", Write),
            case("CHECKPOINT", Write),
            case("CREATE EXTENSION IF NOT EXISTS pgcrypto", Write),
            case("ALTER SYSTEM SET work_mem = '64MB'", Write),
            case("CREATE SCHEMA app", Write),
            // Quoting and comments that hide keywords and semicolons.
            case("SELECT $$ BEGIN; DELETE FROM t; COMMIT $$ AS text", Read),
            case("SELECT $tag$ ; insert into t values (1); $tag$", Read),
            case("SELECT 'a;b', \"weird;name\" FROM t", Read),
            case("SELECT E'it\\'s; DELETE FROM t'", Read),
            case("/* leading */ SELECT 1", Read),
            case("SELECT 1 -- trailing; DELETE FROM t", Read),
            case("/* outer /* nested; DELETE FROM t */ still comment */ SELECT 1", Read),
            case("SET x = 1 -- ; DELETE FROM t", Session),
            case("SET x = 'a;b'", Session),
            case("SET x = 1; DELETE FROM t", Write),
            case("BEGIN; DELETE FROM t", Write).txn(T::Begin),
            // Empty and comment-only strings: nothing happens, so a read.
            case("", Read).ordered(false),
            case("   \n\t ", Read),
            case("-- only a comment", Read),
            case("/* only */ /* comments */", Read),
            case(";", Read),
            // Strings the parser rejects.
            case("SELEC 1", Write),
            case("SELECT * FROM", Write),
            case("INSERT INTO t VALUES (1", Write),
            case("BEGIN; SELEC 1; COMMIT", Write),
            case("SELECT 'unterminated", Write),
            case("/* unterminated comment SELECT 1", Write),
            case("SELECT $$ unterminated dollar", Write),
            case("DROP", Write),
            case("garbage ((( ))", Write),
            case("UPDATE SET x = 1", Write),
            case("SELECT 1\0", Write),
            case("SET x", Write),
            case("BEGIN ISOLATION LEVEL SOMETHING", Write),
            case("SAVEPOINT", Write),
            case("\u{a0}BEGIN", Write),
        ]
    }

    #[test]
    fn every_statement_in_the_table_gets_its_expected_kind_order_and_volatility() {
        let ro = read_only();
        let mut failures = Vec::new();
        let all = cases();
        for c in &all {
            let got = classify(c.sql, &ro);
            let mut problems = Vec::new();
            if got.kind != c.kind {
                problems.push(format!("kind {:?}, want {:?}", got.kind, c.kind));
            }
            if c.txn.is_some() && got.txn != c.txn {
                problems.push(format!("txn {:?}, want {:?}", got.txn, c.txn));
            }
            if c.kind == Transaction && got.txn.is_none() {
                problems.push("transaction without txn".to_owned());
            }
            if let Some(ordered) = c.ordered {
                if got.ordered != ordered {
                    problems.push(format!("ordered {}, want {ordered}", got.ordered));
                }
            }
            if let Some(volatile) = c.volatile {
                if got.volatile != volatile {
                    problems.push(format!("volatile {:?}, want {volatile:?}", got.volatile));
                }
            }
            if !problems.is_empty() {
                failures.push(format!("{:?}: {}", c.sql, problems.join("; ")));
            }
        }
        assert!(all.len() >= 120, "only {} cases", all.len());
        assert!(
            failures.is_empty(),
            "{} of {} cases wrong:\n{}",
            failures.len(),
            all.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn the_fast_path_agrees_with_the_parser_on_every_statement_it_accepts() {
        let mut accepted = 0;
        for c in cases() {
            let Some(fast) = fast_path(c.sql) else {
                continue;
            };
            accepted += 1;
            let parsed = classify_parsed(c.sql, &[]).expect("fast-path statements parse");
            assert_eq!(
                (fast.kind, fast.txn),
                (parsed.kind, parsed.txn),
                "{:?}",
                c.sql
            );
            assert_eq!(fast.statements, parsed.statements, "{:?}", c.sql);
        }
        assert!(accepted >= 25, "fast path took only {accepted} statements");
    }

    #[test]
    fn the_fast_path_declines_what_only_the_parser_can_judge() {
        for sql in [
            "BEGIN; DELETE FROM t",
            "SET x = 1; DELETE FROM t",
            "SET x = 'a;b'",
            "SET x = 1 -- comment",
            "BEGIN /* c */",
            "SAVEPOINT \"Quoted\"",
            "SET \"x\" = 1",
            "SET ROLE admin",
            "SET SESSION AUTHORIZATION bob",
            "SET TRANSACTION READ ONLY",
            "SET TIME ZONE 'UTC'",
            "SET x",
            "PREPARE TRANSACTION 'g'",
            "BEGIN ISOLATION LEVEL SOMETHING",
            "/* unterminated BEGIN",
            "SELECT 1",
            "",
        ] {
            assert!(fast_path(sql).is_none(), "fast path took {sql:?}");
        }
    }

    #[test]
    fn fast_path_statements_carry_a_stable_fingerprint_and_hide_set_values() {
        let a = classify("BEGIN", &[]);
        let b = classify("  begin ;", &[]);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert!(a.fingerprint.starts_with("fast:"));
        assert_ne!(a.fingerprint, classify("COMMIT", &[]).fingerprint);
        assert_eq!(
            classify("SAVEPOINT s1", &[]).fingerprint,
            classify("SAVEPOINT s2", &[]).fingerprint,
            "generated savepoint names must not multiply fingerprints"
        );

        let secret = classify("SET app.api_key = 'hunter2'", &[]);
        assert_eq!(secret.normalized, "SET app.api_key = $1");
        assert_eq!(
            secret.fingerprint,
            classify("set APP.API_KEY to 'other'", &[]).fingerprint
        );
        assert_ne!(
            secret.fingerprint,
            classify("SET statement_timeout = 1", &[]).fingerprint
        );
    }

    #[test]
    fn insert_values_report_each_volatile_function_once_in_order() {
        let c = classify(
            "INSERT INTO events (at, r, id, again) VALUES (now(), random(), gen_random_uuid(), NOW())",
            &[],
        );
        assert_eq!(c.kind, Write);
        assert_eq!(c.volatile, ["now()", "random()", "gen_random_uuid()"]);
        assert_eq!(c.inserts_into, ["events"]);
    }

    #[test]
    fn volatile_sql_value_functions_and_sequences_are_reported_inside_writes() {
        let c = classify(
            "UPDATE t SET at = CURRENT_TIMESTAMP(3), d = current_date, id = nextval('s'), by = current_user, u = public.uuid_generate_v4()",
            &[],
        );
        assert_eq!(
            c.volatile,
            [
                "current_timestamp",
                "current_date",
                "nextval()",
                "current_user",
                "public.uuid_generate_v4()"
            ]
        );
    }

    #[test]
    fn fingerprint_ignores_constants_but_not_the_table() {
        let one = classify("select * from t where id = 1", &[]);
        let two = classify("SELECT *\n  FROM t WHERE id = 2", &[]);
        let other = classify("select * from u where id = 1", &[]);
        let other_schema = classify("select * from s.t where id = 1", &[]);
        assert_eq!(one.fingerprint, two.fingerprint);
        assert_ne!(one.fingerprint, other.fingerprint);
        assert_ne!(one.fingerprint, other_schema.fingerprint);
        assert_ne!(
            classify("select * from a x", &[]).fingerprint,
            classify("select * from b x", &[]).fingerprint,
            "an alias must not stand in for the relation"
        );
        assert!(one.fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(one.normalized, "select * from t where id = $1");
    }

    #[test]
    fn unparsed_strings_keep_their_text_and_a_whitespace_insensitive_fingerprint() {
        let a = classify("SELEC 1  FROM\n t", &[]);
        let b = classify("SELEC 1 FROM t", &[]);
        assert_eq!(a.kind, Write);
        assert_eq!(a.normalized, "SELEC 1  FROM\n t");
        assert!(a.fingerprint.starts_with("unparsed:"));
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, classify("SELEC 2 FROM t", &[]).fingerprint);
        assert_eq!(classify("SELECT 1; SELEC 2; SELECT 3", &[]).statements, 3);
    }

    #[test]
    fn empty_and_comment_only_strings_are_reads_of_zero_statements() {
        for sql in ["", "  ", "-- c", "/* a */ /* b */", ";"] {
            let c = classify(sql, &[]);
            assert_eq!((c.kind, c.statements, c.txn), (Read, 0, None), "{sql:?}");
        }
    }

    #[test]
    fn statements_counts_every_statement_of_a_multi_statement_string() {
        assert_eq!(classify("BEGIN", &[]).statements, 1);
        assert_eq!(classify("select 1; select 2; select 3;", &[]).statements, 3);
        assert_eq!(classify("SELECT ';'; SELECT $$;$$", &[]).statements, 2);
    }

    #[test]
    fn inserts_into_lists_insert_copy_from_merge_and_cte_targets() {
        let targets = |sql| classify(sql, &[]).inserts_into;
        assert_eq!(
            targets("INSERT INTO app.users (id) VALUES (1)"),
            ["app.users"]
        );
        assert_eq!(targets("COPY orders FROM STDIN"), ["orders"]);
        assert_eq!(
            targets("COPY sales.orders (id) FROM STDIN WITH (FORMAT binary)"),
            ["sales.orders"]
        );
        assert_eq!(
            targets("WITH a AS (INSERT INTO log VALUES (1) RETURNING *) INSERT INTO log2 SELECT * FROM a"),
            ["log2", "log"]
        );
        assert_eq!(
            targets(
                "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)"
            ),
            ["t"]
        );
        assert!(targets("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE").is_empty());
        assert!(targets("COPY orders TO STDOUT").is_empty());
        assert!(targets("UPDATE t SET a = 1").is_empty());
        assert_eq!(
            targets("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)"),
            ["t"]
        );
        assert!(
            targets("EXPLAIN INSERT INTO t VALUES (1)").is_empty(),
            "not executed"
        );
    }

    #[test]
    fn hostile_nesting_is_a_write_not_a_crash() {
        // libpg_query 6 aborted the process on the first of these. 2 MiB: a tokio worker.
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                for n in [50, 1_000, 100_000] {
                    for sql in [
                        format!("SELECT 1{}", "+1".repeat(n)),
                        format!("SELECT 1{}", "::int".repeat(n)),
                        format!("SELECT * FROM t{}", " JOIN t ON true".repeat(n)),
                        format!(
                            "SELECT * FROM {}t{}",
                            "(SELECT * FROM ".repeat(n),
                            ") s".repeat(n)
                        ),
                    ] {
                        let c = classify(&sql, &[]);
                        assert_eq!(c.kind, Write, "{}…", &sql[..40]);
                        assert!(c.fingerprint.starts_with("unparsed:"));
                    }
                }
                // Redundant parentheses collapse in the grammar until its own stack gives up.
                let parens = |n| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
                assert_eq!(classify(&parens(1_000), &[]).kind, Read);
                assert_eq!(classify(&parens(100_000), &[]).kind, Write);
                // Set operations nest one message per arm: 50 arms are an ordinary read.
                let unions = |n| format!("SELECT 1{}", " UNION SELECT 1".repeat(n));
                assert_eq!(classify(&unions(50), &[]).kind, Read);
                assert_eq!(classify(&unions(100_000), &[]).kind, Write);
            })
            .expect("spawn");
        handle
            .join()
            .expect("classification of deep nesting must not panic");
    }

    #[test]
    fn classifier_returns_the_same_arc_for_the_same_text() {
        let classifier = Classifier::new(16, read_only());
        let a = classifier.classify("SELECT pure_fn(1)");
        let b = classifier.classify("SELECT pure_fn(1)");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.kind, Read, "the configured read-only list is used");
        assert!(!Arc::ptr_eq(&a, &classifier.classify("SELECT other_fn(1)")));
        assert_eq!(classifier.len(), 2);
    }

    #[test]
    fn classifier_never_holds_more_than_its_capacity() {
        let classifier = Classifier::new(10, Vec::new());
        for i in 0..100 {
            // Distinct shapes (a different table each time), so each is a new entry.
            classifier.classify(&format!("SELECT c FROM t{i}"));
            assert!(classifier.len() <= 10, "len {} after {i}", classifier.len());
        }
        assert!(!classifier.is_empty());
        // Evicted texts are classified again, correctly.
        assert_eq!(classifier.classify("SELECT c FROM t0").kind, Read);
    }

    #[test]
    fn classifier_with_zero_capacity_or_huge_text_classifies_without_caching() {
        let none = Classifier::new(0, Vec::new());
        assert_eq!(none.classify("DELETE FROM t").kind, Write);
        assert!(none.is_empty());

        let classifier = Classifier::new(10, Vec::new());
        let bulk = format!(
            "INSERT INTO t VALUES {}",
            vec!["(1, 'x')"; Classifier::MAX_CACHED_TEXT / 8].join(", ")
        );
        assert_eq!(classifier.classify(&bulk).kind, Write);
        assert!(classifier.is_empty());
    }

    #[test]
    fn classifier_is_shareable_across_threads() {
        let classifier = Arc::new(Classifier::new(64, Vec::new()));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let classifier = Arc::clone(&classifier);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let sql = format!("SELECT {}", i % 8);
                        assert_eq!(classifier.classify(&sql).kind, Read, "thread {t}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let a = classifier.classify("SELECT 3");
        assert!(Arc::ptr_eq(&a, &classifier.classify("SELECT 3")));
    }

    #[test]
    fn function_allowlists_are_sorted_for_binary_search() {
        for list in [READ_ONLY_BUILTINS, VOLATILE_FUNCTIONS] {
            for pair in list.windows(2) {
                assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
            }
        }
    }

    #[test]
    fn functions_with_side_effects_are_never_on_the_allowlist() {
        for name in [
            "nextval",
            "setval",
            "set_config",
            "setseed",
            "pg_advisory_lock",
            "pg_advisory_xact_lock",
            "pg_try_advisory_lock",
            "pg_advisory_unlock_all",
            "pg_notify",
            "lo_create",
            "lo_unlink",
            "lo_import",
            "lo_put",
            "pg_terminate_backend",
            "pg_cancel_backend",
            "pg_reload_conf",
            "pg_switch_wal",
            "pg_create_logical_replication_slot",
            "pg_drop_replication_slot",
            "pg_logical_emit_message",
            "pg_stat_reset",
            "pg_read_file",
            "dblink",
            "dblink_exec",
        ] {
            assert!(
                !is_read_only_builtin(name),
                "{name} is not side-effect free"
            );
        }
    }

    #[test]
    fn kinds_have_lowercase_names_for_metrics() {
        let names: Vec<_> = [Read, Write, Transaction, Session]
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(names, ["read", "write", "transaction", "session"]);
    }
}
