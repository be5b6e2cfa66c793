//! The mirror's journal: what could not reach the secondary live is kept on disk, and
//! `switchyard journal replay` applies it later, in the order the primary acknowledged it,
//! exactly once, against a real PostgreSQL server. These tests drive the journal API the
//! secondary workers use and the replay an operator runs, with entries built from the same
//! protocol messages a client sends.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use bytes::{BufMut, Bytes, BytesMut};
use switchyard::journal::{
    self, EntryKind, Journal, JournalEntry, JournalOptions, ReplayError, ReplayOptions,
    ReplayReport, StopReason,
};
use switchyard_config::Config;
use switchyard_tests::TwoDbs;

// ---------------------------------------------------------------------------------------
// Protocol messages, as a client sends them
// ---------------------------------------------------------------------------------------

fn message(tag: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.put_u8(tag);
    out.put_i32(body.len() as i32 + 4);
    out.put_slice(body);
    out.freeze()
}

fn cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

fn query(sql: &str) -> Bytes {
    let mut body = BytesMut::new();
    cstr(&mut body, sql);
    message(b'Q', &body)
}

/// Parse of a named statement, parameter types left to the server.
fn parse(name: &str, sql: &str) -> Bytes {
    let mut body = BytesMut::new();
    cstr(&mut body, name);
    cstr(&mut body, sql);
    body.put_i16(0);
    message(b'P', &body)
}

/// Bind of the unnamed portal to statement `name` with text parameters.
fn bind(name: &str, params: &[&str]) -> Bytes {
    let mut body = BytesMut::new();
    cstr(&mut body, "");
    cstr(&mut body, name);
    body.put_i16(0);
    body.put_i16(params.len() as i16);
    for p in params {
        body.put_i32(p.len() as i32);
        body.put_slice(p.as_bytes());
    }
    body.put_i16(0);
    message(b'B', &body)
}

fn execute() -> Bytes {
    let mut body = BytesMut::new();
    cstr(&mut body, "");
    body.put_i32(0);
    message(b'E', &body)
}

fn sync() -> Bytes {
    message(b'S', &[])
}

fn copy_data(data: &str) -> Bytes {
    message(b'd', data.as_bytes())
}

fn copy_done() -> Bytes {
    message(b'c', &[])
}

// ---------------------------------------------------------------------------------------
// Entries, config, replay
// ---------------------------------------------------------------------------------------

/// A unit for `green`, as user `app` in database `app`.
fn unit(seq: u64, session: u64, frames: Vec<Bytes>, tags: &[&str], summary: &str) -> JournalEntry {
    JournalEntry {
        seq,
        session,
        target: "green".into(),
        database: "app".into(),
        user: "app".into(),
        params: vec![("application_name".into(), format!("session-{session}"))],
        txn: None,
        kind: EntryKind::Unit,
        frames,
        primary_tags: tags.iter().map(|t| t.to_string()).collect(),
        summary: summary.into(),
        at_unix_ms: 1_700_000_000_000 + seq,
    }
}

fn sql_unit(seq: u64, session: u64, sql: &str, tag: &str) -> JournalEntry {
    unit(seq, session, vec![query(sql)], &[tag], sql)
}

fn in_txn(mut entry: JournalEntry, txn: u64) -> JournalEntry {
    entry.txn = Some(txn);
    entry
}

fn prelude(seq: u64, session: u64, frames: Vec<Bytes>, summary: &str) -> JournalEntry {
    JournalEntry {
        kind: EntryKind::Prelude,
        ..unit(seq, session, frames, &[], summary)
    }
}

/// The switchyard configuration of `dbs`, with its journal dir.
fn config(dbs: &TwoDbs) -> Config {
    let text = dbs.config().to_string();
    Config::from_toml_str(&text, dbs.scratch_dir()).expect("the harness config is valid")
}

/// Appends `entries` to a fresh journal in `dir` and closes it (synced).
fn write_journal(dir: &Path, entries: &[JournalEntry]) {
    let journal = Journal::open(dir).expect("open the journal");
    for entry in entries {
        journal.append(entry).expect("append");
    }
    journal.sync().expect("sync");
}

fn replay(config: &Config) -> Result<ReplayReport, ReplayError> {
    let options = ReplayOptions {
        checkpoint_interval: std::time::Duration::ZERO,
        ..ReplayOptions::default()
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(journal::replay(
            &config.mirror.journal_dir,
            config,
            &options,
        ))
}

fn replay_ok(config: &Config) -> ReplayReport {
    let report = replay(config).expect("replay");
    assert!(report.is_complete(), "replay did not complete: {report:#?}");
    report
}

/// Runs `sql` in database `app` of green as the superuser; the tuples-only output.
fn green(dbs: &TwoDbs, sql: &str) -> String {
    dbs.green.psql_in("app", sql)
}

/// Creates tables owned by `app` on green.
fn green_schema(dbs: &TwoDbs, ddl: &str) {
    green(dbs, &format!("SET ROLE app; {ddl}"));
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list the journal dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------
// Stories
// ---------------------------------------------------------------------------------------

#[test]
fn entries_appended_out_of_order_by_several_threads_replay_in_seq_order() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    green_schema(&dbs, "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)");

    // Row k is inserted by session 2k+1 (seq 10k+1), then updated by session 2k+2
    // (seq 10k+2): applied the other way round, the UPDATE would find nothing.
    const ROWS: u64 = 40;
    let mut entries = Vec::new();
    for k in 0..ROWS {
        entries.push(sql_unit(
            10 * k + 1,
            2 * k + 1,
            &format!("INSERT INTO t VALUES ({k}, 'inserted')"),
            "INSERT 0 1",
        ));
        entries.push(sql_unit(
            10 * k + 2,
            2 * k + 2,
            &format!("UPDATE t SET v = 'updated by ' || current_setting('application_name') WHERE id = {k}"),
            "UPDATE 1",
        ));
    }
    // Four threads each append a quarter of the entries, latest seq first.
    entries.reverse();
    let journal = Journal::open(&config.mirror.journal_dir).expect("open");
    thread::scope(|scope| {
        for chunk in entries.chunks(entries.len() / 4) {
            let journal = Arc::clone(&journal);
            scope.spawn(move || {
                for entry in chunk {
                    journal.append(entry).expect("append");
                }
            });
        }
    });
    journal.sync().expect("sync");
    assert_eq!(journal.entries_written(), 2 * ROWS);
    assert!(journal.bytes_written() > 0);
    drop(journal);

    let report = replay_ok(&config);
    assert_eq!(report.applied, 2 * ROWS);
    assert_eq!(report.sessions, 2 * ROWS);
    assert_eq!(report.targets, ["green"]);
    assert_eq!(report.divergence_count, 0, "{:#?}", report.divergences);
    assert_eq!(
        green(
            &dbs,
            "SELECT count(*), count(*) FILTER (WHERE v LIKE 'updated by session-%') FROM t"
        ),
        format!("{ROWS}|{ROWS}")
    );
    assert_eq!(
        green(&dbs, "SELECT v FROM t WHERE id = 7"),
        "updated by session-16",
        "each session's startup parameters reach the target"
    );
}

#[test]
fn a_prelude_reestablishes_set_prepare_and_named_parse_for_the_units_that_use_them() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    green_schema(
        &dbs,
        "CREATE SCHEMA shop; CREATE TABLE shop.orders (id int PRIMARY KEY, item text, note text)",
    );

    let entries = vec![
        prelude(
            5,
            1,
            vec![query("SET search_path = shop, public")],
            "SET search_path = shop, public",
        ),
        prelude(
            6,
            1,
            vec![query(
                "PREPARE add_order(int, text) AS INSERT INTO orders VALUES ($1, $2, 'prepared')",
            )],
            "PREPARE add_order(int, text) AS INSERT INTO orders VALUES ($1, $2, 'prepared')",
        ),
        prelude(
            7,
            1,
            vec![
                parse(
                    "rename",
                    "UPDATE orders SET item = $2, note = 'parsed' WHERE id = $1",
                ),
                sync(),
            ],
            "UPDATE orders SET item = $2, note = 'parsed' WHERE id = $1",
        ),
        sql_unit(10, 1, "EXECUTE add_order(1, 'apple')", "INSERT 0 1"),
        sql_unit(11, 1, "EXECUTE add_order(2, 'pear')", "INSERT 0 1"),
        unit(
            12,
            1,
            vec![bind("rename", &["2", "plum"]), execute(), sync()],
            &["UPDATE 1"],
            "UPDATE orders SET item = $2, note = 'parsed' WHERE id = $1",
        ),
    ];
    write_journal(&config.mirror.journal_dir, &entries);

    let report = replay_ok(&config);
    assert_eq!(report.applied, 6);
    assert_eq!(report.sessions, 1);
    assert_eq!(report.divergence_count, 0, "{:#?}", report.divergences);
    assert_eq!(
        green(
            &dbs,
            "SELECT string_agg(id || ':' || item || ':' || note, ',' ORDER BY id) FROM shop.orders"
        ),
        "1:apple:prepared,2:plum:parsed"
    );
}

#[test]
fn the_journal_dir_is_0700_and_its_segments_and_cursor_are_0600() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    green_schema(&dbs, "CREATE TABLE t (id int)");
    // A directory the journal creates itself.
    let dir = dbs.scratch_dir().join("private").join("journal");
    let mut config = config;
    config.mirror.journal_dir = dir.clone();

    write_journal(
        &dir,
        &[sql_unit(1, 1, "INSERT INTO t VALUES (1)", "INSERT 0 1")],
    );
    assert_eq!(mode(&dir), 0o700);
    let files = segments(&dir);
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("journal-000001.jsonl"), "{files:?}");
    assert_eq!(mode(&files[0]), 0o600);

    replay_ok(&config);
    assert_eq!(mode(&dir.join("cursor")), 0o600);
    assert_eq!(green(&dbs, "SELECT count(*) FROM t"), "1");
}

#[test]
fn segments_rotate_at_their_size_limit_and_every_reopen_starts_a_new_run() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let dir = scratch.path().join("journal");
    let options = JournalOptions {
        segment_bytes: 2048,
        ..JournalOptions::default()
    };
    let journal = Journal::open_with(&dir, options.clone()).expect("open");
    for seq in 1..=40 {
        journal
            .append(&sql_unit(seq, 1, "INSERT INTO t VALUES (1)", "INSERT 0 1"))
            .expect("append");
    }
    drop(journal);
    let first_run = segments(&dir);
    assert!(first_run.len() > 3, "{first_run:?}");
    for file in &first_run {
        assert!(
            fs::metadata(file).unwrap().len() <= 2048,
            "{file:?} is over the limit"
        );
    }

    // A second process (the journal reopened) writes new segments of its own.
    let journal = Journal::open_with(&dir, options).expect("reopen");
    journal
        .append(&sql_unit(41, 1, "INSERT INTO t VALUES (1)", "INSERT 0 1"))
        .expect("append");
    assert!(
        journal::status(&dir).unwrap().writer_active,
        "status sees that a journal is open for writing"
    );
    drop(journal);
    assert_eq!(segments(&dir).len(), first_run.len() + 1);

    let status = journal::status(&dir).expect("status");
    assert_eq!(status.entries, 41);
    assert_eq!(status.runs, 2);
    // Session 1 of the first process and session 1 of the second are different sessions.
    assert_eq!(status.sessions, 2);
    assert_eq!(status.pending, 41);
    assert!(!status.writer_active);
}

#[test]
fn an_appended_entry_reaches_its_segment_within_the_fsync_interval_without_an_explicit_sync() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let dir = scratch.path().join("journal");
    let journal = Journal::open(&dir).expect("open");
    journal
        .append(&sql_unit(1, 1, "INSERT INTO t VALUES (1)", "INSERT 0 1"))
        .expect("append");
    // Buffered, not yet written: the flusher writes and fsyncs it within about 20 ms.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = journal::status(&dir).expect("status");
        if status.entries == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the entry never reached the file: {status:#?}"
        );
        thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(journal.entries_written(), 1);
}

#[test]
fn a_torn_last_line_is_skipped_with_a_warning_and_the_rest_replays() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    let dir = &config.mirror.journal_dir;
    green_schema(&dbs, "CREATE TABLE t (id int)");
    write_journal(
        dir,
        &[
            sql_unit(1, 1, "INSERT INTO t VALUES (1)", "INSERT 0 1"),
            sql_unit(2, 1, "INSERT INTO t VALUES (2)", "INSERT 0 1"),
            sql_unit(3, 2, "INSERT INTO t VALUES (3)", "INSERT 0 1"),
        ],
    );
    // A crash in the middle of writing a fourth line: the first half of a real line.
    let other = tempfile::tempdir().expect("temp dir");
    write_journal(
        other.path(),
        &[sql_unit(4, 2, "INSERT INTO t VALUES (4)", "INSERT 0 1")],
    );
    let whole = fs::read(&segments(other.path())[0]).expect("read");
    let segment = &segments(dir)[0];
    fs::OpenOptions::new()
        .append(true)
        .open(segment)
        .expect("open the segment")
        .write_all(&whole[..whole.len() / 2])
        .expect("tear a line");

    let status = journal::status(dir).expect("status");
    assert_eq!(status.entries, 3);
    assert_eq!(status.torn_lines.len(), 1, "{:#?}", status.torn_lines);
    assert_eq!(status.torn_lines[0].line, 4);
    assert_eq!(&status.torn_lines[0].file, segment);
    assert!(status.corrupt_lines.is_empty());

    let report = replay_ok(&config);
    assert_eq!(report.applied, 3);
    assert_eq!(report.torn_lines.len(), 1);
    assert_eq!(report.torn_lines[0].line, 4);
    assert_eq!(
        green(&dbs, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "1,2,3"
    );
}

#[test]
fn a_corrupt_line_followed_by_good_ones_is_reported_by_file_and_line_and_nothing_is_applied() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    let dir = &config.mirror.journal_dir;
    green_schema(&dbs, "CREATE TABLE t (id int)");
    write_journal(
        dir,
        &[
            sql_unit(1, 1, "INSERT INTO t VALUES (1)", "INSERT 0 1"),
            sql_unit(2, 1, "INSERT INTO t VALUES (2)", "INSERT 0 1"),
            sql_unit(3, 1, "INSERT INTO t VALUES (3)", "INSERT 0 1"),
        ],
    );
    // One flipped bit in the second line's summary.
    let segment = segments(dir)[0].clone();
    let mut bytes = fs::read(&segment).expect("read");
    let second_line = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let at = second_line
        + bytes[second_line..]
            .windows(6)
            .position(|w| w == b"VALUES")
            .unwrap();
    bytes[at] ^= 0x20;
    fs::write(&segment, bytes).expect("corrupt the segment");

    let status = journal::status(dir).expect("status");
    assert_eq!(status.corrupt_lines.len(), 1, "{status:#?}");
    assert_eq!(status.corrupt_lines[0].line, 2);
    assert!(
        status.corrupt_lines[0].reason.contains("checksum"),
        "{status:#?}"
    );

    match replay(&config) {
        Err(ReplayError::Corrupt { lines }) => {
            assert_eq!(lines.len(), 1);
            assert_eq!((lines[0].file.clone(), lines[0].line), (segment, 2));
        }
        other => panic!("expected a corrupt-journal error, got {other:?}"),
    }
    assert_eq!(green(&dbs, "SELECT count(*) FROM t"), "0");
}

#[test]
fn replay_stops_at_the_first_failing_entry_and_resumes_there_exactly_once_after_the_fix() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    let dir = &config.mirror.journal_dir;
    green_schema(&dbs, "CREATE TABLE t (id int PRIMARY KEY)");
    let entries = vec![
        prelude(
            1,
            1,
            vec![query("PREPARE ins(int) AS INSERT INTO t VALUES ($1)")],
            "PREPARE ins(int) AS INSERT INTO t VALUES ($1)",
        ),
        sql_unit(2, 1, "EXECUTE ins(1)", "INSERT 0 1"),
        // Green lacks this table: the migration forgot it.
        sql_unit(3, 2, "INSERT INTO audit VALUES ('one')", "INSERT 0 1"),
        // Session 1 again: its prepared statement must exist on the resumed connection.
        sql_unit(4, 1, "EXECUTE ins(2)", "INSERT 0 1"),
        sql_unit(5, 2, "INSERT INTO t VALUES (3)", "INSERT 0 1"),
    ];
    write_journal(dir, &entries);
    assert_eq!(journal::status(dir).unwrap().pending, 5);

    let report = replay(&config).expect("replay runs");
    let stopped = report.stopped.as_ref().expect("replay stopped");
    assert_eq!((stopped.seq, stopped.session), (3, 2));
    assert_eq!(stopped.summary, "INSERT INTO audit VALUES ('one')");
    assert!(stopped.file.ends_with("journal-000001.jsonl"));
    assert_eq!(stopped.line, 3);
    match &stopped.reason {
        StopReason::ServerError(e) => {
            assert_eq!(e.sqlstate, "42P01");
            assert!(e.message.contains("audit"), "{e:?}");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert_eq!(report.applied, 2);
    assert_eq!(
        report.cursor_seq,
        Some(2),
        "the cursor stays at the entry before"
    );
    assert_eq!(report.pending_after, 3);
    assert!(!report.is_complete());
    assert_eq!(
        green(&dbs, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "1"
    );
    let status = journal::status(dir).unwrap();
    assert_eq!(
        (status.replayed, status.pending, status.cursor_seq),
        (2, 3, Some(2))
    );

    // The command line says so with exit code 1 and changes nothing more.
    assert_eq!(
        journal::run_replay(&config, false, false),
        ExitCode::from(1)
    );
    assert_eq!(journal::run_replay(&config, true, false), ExitCode::from(1));
    assert_eq!(green(&dbs, "SELECT count(*) FROM t"), "1");

    green_schema(&dbs, "CREATE TABLE audit (what text)");
    let report = replay_ok(&config);
    assert_eq!(report.applied, 3);
    assert_eq!(report.already_applied, 2);
    assert_eq!(
        green(&dbs, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "1,2,3"
    );
    assert_eq!(green(&dbs, "SELECT count(*) FROM audit"), "1");

    // Nothing is left: another replay applies nothing and exits 0.
    let report = replay_ok(&config);
    assert_eq!((report.applied, report.pending_before), (0, 0));
    assert_eq!(journal::run_replay(&config, true, false), ExitCode::SUCCESS);
    assert_eq!(green(&dbs, "SELECT count(*) FROM t"), "3");
    assert_eq!(green(&dbs, "SELECT count(*) FROM audit"), "1");
}

#[test]
fn a_transaction_cut_off_by_a_failure_is_replayed_from_its_begin_and_others_writes_only_once() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    let dir = &config.mirror.journal_dir;
    green_schema(&dbs, "CREATE TABLE t (id int PRIMARY KEY)");
    let entries = vec![
        in_txn(sql_unit(1, 1, "BEGIN", "BEGIN"), 1),
        in_txn(sql_unit(2, 1, "INSERT INTO t VALUES (1)", "INSERT 0 1"), 1),
        // Autocommit in another session while session 1's transaction is open.
        sql_unit(3, 2, "INSERT INTO t VALUES (100)", "INSERT 0 1"),
        sql_unit(4, 3, "INSERT INTO missing VALUES (1)", "INSERT 0 1"),
        in_txn(sql_unit(5, 1, "INSERT INTO t VALUES (2)", "INSERT 0 1"), 1),
        in_txn(sql_unit(6, 1, "COMMIT", "COMMIT"), 1),
    ];
    write_journal(dir, &entries);

    let report = replay(&config).expect("replay runs");
    assert_eq!(report.stopped.as_ref().map(|s| s.seq), Some(4));
    // Session 1's transaction was open when the replay stopped: rolled back, still pending.
    assert_eq!(
        green(&dbs, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "100"
    );
    assert_eq!(report.applied, 1);
    assert_eq!(report.cursor_seq, None);
    let status = journal::status(dir).unwrap();
    assert_eq!((status.replayed, status.pending), (1, 5));

    green_schema(&dbs, "CREATE TABLE missing (id int)");
    let report = replay_ok(&config);
    assert_eq!(report.applied, 5);
    assert_eq!(
        green(&dbs, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "1,2,100"
    );
    assert_eq!(green(&dbs, "SELECT count(*) FROM missing"), "1");
    assert_eq!(journal::status(dir).unwrap().pending, 0);
}

#[test]
fn status_counts_sessions_targets_and_pending_entries_before_and_after_replay() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    let dir = &config.mirror.journal_dir;
    green_schema(&dbs, "CREATE TABLE t (id int)");

    let empty = journal::status(dir).expect("status of an empty journal");
    assert_eq!(
        (empty.entries, empty.pending, empty.segments.len()),
        (0, 0, 0)
    );
    assert_eq!(journal::run_status(&config, true), ExitCode::SUCCESS);

    write_journal(
        dir,
        &[
            sql_unit(7, 1, "INSERT INTO t VALUES (1)", "INSERT 0 1"),
            sql_unit(8, 2, "INSERT INTO t VALUES (2)", "INSERT 0 1"),
            sql_unit(9, 1, "INSERT INTO t VALUES (3)", "INSERT 0 1"),
        ],
    );
    let before = journal::status(dir).expect("status");
    assert_eq!(before.segments.len(), 1);
    assert_eq!(before.entries, 3);
    assert!(before.bytes > 0);
    assert_eq!((before.sessions, before.runs), (2, 1));
    assert_eq!(
        (before.replayed, before.pending, before.pending_sessions),
        (0, 3, 2)
    );
    assert_eq!(before.oldest_unix_ms, Some(1_700_000_000_007));
    assert_eq!(before.newest_unix_ms, Some(1_700_000_000_009));
    assert_eq!(before.targets.len(), 1);
    assert_eq!(
        (
            before.targets[0].name.as_str(),
            before.targets[0].entries,
            before.targets[0].pending
        ),
        ("green", 3, 3)
    );
    assert_eq!(before.cursor_seq, None);

    let report = replay_ok(&config);
    assert_eq!(report.pending_before, 3);
    assert_eq!(report.pending_after, 0);

    let after = journal::status(dir).expect("status");
    assert_eq!(
        (after.replayed, after.pending, after.pending_sessions),
        (3, 0, 0)
    );
    assert_eq!(after.targets[0].pending, 0);
    assert_eq!(after.cursor_seq, Some(9));
    assert_eq!(journal::run_status(&config, false), ExitCode::SUCCESS);
}

#[test]
fn a_copy_from_stdin_unit_replays_with_its_data_frames() {
    let dbs = TwoDbs::start();
    let config = config(&dbs);
    green_schema(&dbs, "CREATE TABLE items (id int, name text)");
    write_journal(
        &config.mirror.journal_dir,
        &[
            unit(
                1,
                1,
                vec![
                    query("COPY items FROM STDIN"),
                    copy_data("1\tone\n2\ttwo\n"),
                    copy_data("3\tthree\n"),
                    copy_done(),
                ],
                &["COPY 3"],
                "COPY items FROM STDIN",
            ),
            sql_unit(
                2,
                1,
                "UPDATE items SET name = upper(name) WHERE id = 2",
                "UPDATE 1",
            ),
        ],
    );

    let report = replay_ok(&config);
    assert_eq!(report.applied, 2);
    assert_eq!(report.divergence_count, 0, "{:#?}", report.divergences);
    assert_eq!(
        green(
            &dbs,
            "SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM items"
        ),
        "1=one,2=TWO,3=three"
    );
}
