//! `switchyard verify`: an operator proves the two databases hold the same data before a
//! cutover, and every kind of drift is found and named down to its row, while writes go on.
//!
//! Each test seeds `blue` and `green` through psql (as the role `app`, which verify logs in
//! as) and runs the real binary: `switchyard verify --config FILE --database app --user app`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use switchyard_tests::child::spawn_tied;
use switchyard_tests::{switchyard_bin, PgOptions, TestCa, TwoDbs};
use tempfile::TempDir;
use toml_edit::DocumentMut;

/// Runs `sql` on both clusters, in database `app`, as the role `app`.
fn on_both(dbs: &TwoDbs, sql: &str) {
    on(dbs, "blue", sql);
    on(dbs, "green", sql);
}

/// Runs `sql` on one cluster, in database `app`, as the role `app`.
fn on(dbs: &TwoDbs, cluster: &str, sql: &str) -> String {
    dbs.cluster(cluster)
        .psql_in("app", &format!("SET ROLE app;\n{sql}"))
}

/// A finished verify run.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    /// Peak resident set size of the verify process, in bytes (`wait4`'s `ru_maxrss`).
    max_rss: u64,
    elapsed: Duration,
}

impl Outcome {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", self.stdout))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A verify process running in the background, its stderr readable line by line.
struct Running {
    child: Child,
    started: Instant,
    stdout: thread::JoinHandle<String>,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    _config_dir: TempDir,
}

impl Running {
    /// Starts `switchyard verify --config <config> --database app --user app <args>`.
    fn start(config: &DocumentMut, args: &[&str]) -> Running {
        let dir = tempfile::tempdir().expect("a temp dir for the config");
        let path: PathBuf = dir.path().join("switchyard.toml");
        std::fs::write(&path, config.to_string()).expect("write the config");
        let mut command = Command::new(switchyard_bin());
        command
            .arg("verify")
            .arg("--config")
            .arg(&path)
            .args(["--database", "app", "--user", "app"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = spawn_tied(command).expect("start switchyard verify");
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        let err = child.stderr.take().expect("piped stderr");
        let (tx, stderr_lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            started,
            stdout,
            stderr_lines,
            stderr_seen: Vec::new(),
            _config_dir: dir,
        }
    }

    /// Waits for a stderr line containing `needle`; panics after a minute.
    fn wait_for_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "verify printed no line with {needle:?} on stderr; it printed:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to exit and collects its output and peak memory.
    fn finish(mut self) -> Outcome {
        let pid = self.child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value, and wait4 only writes to the two
        // out-parameters it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
        let elapsed = self.started.elapsed();
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        };
        let stdout = self.stdout.join().expect("the stdout reader");
        self.stderr_seen.extend(self.stderr_lines.iter());
        Outcome {
            code,
            stdout,
            stderr: self.stderr_seen.join("\n"),
            max_rss: usage.ru_maxrss as u64 * 1024,
            elapsed,
        }
    }
}

/// Runs verify to completion.
fn verify(config: &DocumentMut, args: &[&str]) -> Outcome {
    Running::start(config, args).finish()
}

/// Tables with composite keys, NULLs and the types whose text forms need care.
const VARIED_TABLES: &str = "
CREATE TABLE accounts (
    id int PRIMARY KEY,
    name text,
    balance numeric(12, 2),
    meta jsonb,
    photo bytea,
    opened timestamptz,
    note text
);
INSERT INTO accounts
SELECT i, 'name ' || i, i * 1.5,
       jsonb_build_object('b', i, 'a', 'x', 'nested', jsonb_build_array(i, null)),
       decode(md5(i::text), 'hex'),
       timestamptz '2024-03-01 12:00:00+02' + i * interval '1 minute 7 seconds',
       CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'a, \"quoted\" (value)' END
FROM generate_series(1, 2500) AS i;

CREATE TABLE order_lines (
    order_id int,
    line smallint,
    sku text,
    qty int,
    price numeric,
    PRIMARY KEY (order_id, line)
);
INSERT INTO order_lines
SELECT o, l, 'sku-' || (o * l), CASE WHEN l = 3 THEN NULL ELSE l END, o / 3.0
FROM generate_series(1, 400) AS o, generate_series(1, 5) AS l;

CREATE TABLE tenants_users (
    tenant text,
    email text,
    joined date,
    PRIMARY KEY (tenant, email)
);
INSERT INTO tenants_users
SELECT 'tenant ' || (i % 13), 'user' || i || '@example.com', date '2020-01-01' + i
FROM generate_series(1, 900) AS i;
";

#[test]
fn identical_databases_with_composite_keys_nulls_and_varied_types_are_consistent() {
    let dbs = TwoDbs::start();
    on_both(&dbs, VARIED_TABLES);
    // Different session time zones when writing must not matter: the instants are equal.
    on(
        &dbs,
        "blue",
        "SET TimeZone = 'America/New_York'; CREATE TABLE ev (id int PRIMARY KEY, at timestamptz);
         INSERT INTO ev VALUES (1, '2024-06-01 10:00:00+00');",
    );
    on(
        &dbs,
        "green",
        "SET TimeZone = 'Asia/Tokyo'; CREATE TABLE ev (id int PRIMARY KEY, at timestamptz);
         INSERT INTO ev VALUES (1, '2024-06-01 19:00:00+09');",
    );

    let out = verify(&dbs.config(), &["--chunk-rows", "300"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("4 tables, 5,401 rows, consistent"),
        "{out}"
    );

    let out = verify(&dbs.config(), &["--chunk-rows", "300", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    let json = out.json();
    assert_eq!(json["consistent"], true, "{out}");
    assert_eq!(json["summary"]["rows"], 5401, "{out}");
    let lines = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.order_lines")
        .expect("order_lines in the report");
    assert_eq!(lines["key"], serde_json::json!(["order_id", "line"]));
    assert_eq!(lines["chunks"], 7, "2,000 rows in chunks of 300");
}

#[test]
fn each_seeded_difference_is_found_and_named_with_its_key() {
    let dbs = TwoDbs::start();
    on_both(
        &dbs,
        &format!("{VARIED_TABLES}\nCREATE TABLE retired (id int PRIMARY KEY);\nCREATE TABLE typed (id int PRIMARY KEY, amount int);\nINSERT INTO typed VALUES (1, 10);"),
    );
    on(
        &dbs,
        "green",
        "DELETE FROM accounts WHERE id = 1234;                          -- a missing row
         INSERT INTO accounts (id, name) VALUES (9001, 'only on green'); -- an extra row
         UPDATE accounts SET balance = 0.01 WHERE id = 7;                -- a changed value
         UPDATE accounts SET note = NULL WHERE id = 1;                   -- '' became NULL
         UPDATE order_lines SET qty = 0 WHERE order_id = 17 AND line = 3; -- NULL became 0
         DROP TABLE retired;                                            -- a missing table
         ALTER TABLE typed ALTER COLUMN amount TYPE bigint;             -- another type",
    );

    let out = verify(
        &dbs.config(),
        &["--chunk-rows", "500", "--recheck-after-ms", "100"],
    );
    assert_eq!(out.code, 1, "{out}");
    for expected in [
        "missing on green: (id)=(1234)",
        "extra on green: (id)=(9001)",
        "different: (id)=(7)  balance: blue '10.50', green '0.01'",
        "different: (id)=(1)  note: blue '', green NULL",
        "different: (order_id, line)=(17, 3)  qty: blue NULL, green '0'",
        "column amount type: blue integer, green bigint",
    ] {
        assert!(out.stdout.contains(expected), "no {expected:?} in\n{out}");
    }
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("public.retired") && l.ends_with("missing on green")),
        "{out}"
    );
    // A missing and an extra row, three different ones, a missing table, a column type.
    assert!(out.stdout.contains("7 differences in 4 tables"), "{out}");
    // The unchanged table is reported consistent among the differences.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("public.tenants_users") && l.ends_with("consistent")),
        "{out}"
    );

    let out = verify(
        &dbs.config(),
        &["--chunk-rows", "500", "--recheck-after-ms", "100", "--json"],
    );
    assert_eq!(out.code, 1, "{out}");
    let json = out.json();
    assert_eq!(json["consistent"], false);
    let table = |name: &str| {
        json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} in {json:#}"))
            .clone()
    };
    let accounts = table("public.accounts");
    assert_eq!(accounts["status"], "different");
    assert_eq!(
        accounts["row_differences"],
        serde_json::json!({"missing": 1, "extra": 1, "different": 2, "unlisted_buckets": 0})
    );
    let listed = accounts["rows_listed"].as_array().unwrap();
    assert!(listed.contains(&serde_json::json!({
        "kind": "missing", "on": "green", "key": {"id": "1234"}
    })));
    assert!(listed.contains(&serde_json::json!({
        "kind": "different", "key": {"id": "7"},
        "columns": [{"column": "balance", "values": {"blue": "10.50", "green": "0.01"}}]
    })));
    assert_eq!(table("public.retired")["status"], "missing");
    assert_eq!(table("public.retired")["missing_on"], "green");
    assert_eq!(
        table("public.typed")["schema_differences"],
        serde_json::json!([{"kind": "column_type", "column": "amount",
                             "types": {"blue": "integer", "green": "bigint"}}])
    );
}

#[test]
fn a_table_without_primary_key_is_compared_as_a_multiset_of_rows() {
    let dbs = TwoDbs::start();
    // The same rows, written in opposite orders: another physical order on each side.
    on(
        &dbs,
        "blue",
        "CREATE TABLE events (kind text, payload jsonb, at timestamptz);
         INSERT INTO events SELECT 'k' || (i % 7), jsonb_build_object('n', i),
                                   timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour'
         FROM generate_series(1, 3000) AS i ORDER BY i;",
    );
    on(
        &dbs,
        "green",
        "CREATE TABLE events (kind text, payload jsonb, at timestamptz);
         INSERT INTO events SELECT 'k' || (i % 7), jsonb_build_object('n', i),
                                   timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour'
         FROM generate_series(1, 3000) AS i ORDER BY i DESC;",
    );
    let first_blue = on(&dbs, "blue", "SELECT payload->>'n' FROM events LIMIT 1");
    let first_green = on(&dbs, "green", "SELECT payload->>'n' FROM events LIMIT 1");
    assert_ne!(first_blue, first_green, "the physical orders differ");

    let out = verify(&dbs.config(), &["--chunk-rows", "500"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("compared as a multiset"), "{out}");
    assert!(
        out.stdout
            .contains("warning: public.events has no primary key"),
        "{out}"
    );

    // A duplicated row is a difference, though every distinct row is on both sides.
    on(
        &dbs,
        "green",
        "INSERT INTO events SELECT * FROM events WHERE payload->>'n' = '42';",
    );
    let out = verify(
        &dbs.config(),
        &["--chunk-rows", "500", "--recheck-after-ms", "100"],
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains(
            "extra on green: (k0,\"{\"\"n\"\": 42}\",\"2024-01-02 18:00:00+00\") (1 copy on blue, 2 copies on green)"
        ),
        "{out}"
    );
}

#[test]
fn ignored_columns_make_a_table_whose_only_difference_is_there_consistent() {
    let dbs = TwoDbs::start();
    on_both(
        &dbs,
        "CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
         INSERT INTO pgbench_history SELECT i % 10, 1, i, i * 3, NULL, NULL FROM generate_series(1, 1000) AS i;",
    );
    // The mtime of a replayed write is the replay's time on the secondary.
    on(
        &dbs,
        "blue",
        "UPDATE pgbench_history SET mtime = '2024-01-01 10:00:00';",
    );
    on(
        &dbs,
        "green",
        "UPDATE pgbench_history SET mtime = '2024-01-01 10:00:03';",
    );

    let out = verify(&dbs.config(), &["--recheck-after-ms", "100"]);
    assert_eq!(out.code, 1, "{out}");

    let out = verify(
        &dbs.config(),
        &["--ignore-columns", "pgbench_history.mtime"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("1 table, 1,000 rows, consistent"),
        "{out}"
    );
}

#[test]
fn rows_only_the_other_side_has_are_all_counted_however_many_there_are() {
    let dbs = TwoDbs::start();
    on_both(
        &dbs,
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 1000) AS i;",
    );
    // After the reference's last key, green has 130 times --chunk-rows rows: the last chunk
    // (unbounded above) must be cut along green's keys to be narrowed.
    on(
        &dbs,
        "green",
        "INSERT INTO t SELECT i, 'new' FROM generate_series(100001, 125000) AS i;
         UPDATE t SET id = id * 10 WHERE id BETWEEN 401 AND 500;
         INSERT INTO t SELECT i, 'between' FROM generate_series(4001, 4999) AS i WHERE i % 10 <> 0;",
    );
    let out = verify(
        &dbs.config(),
        &["--chunk-rows", "200", "--recheck-after-ms", "100", "--json"],
    );
    assert_eq!(out.code, 1, "{out}");
    let json = out.json();
    let t = &json["tables"][0];
    // Missing: ids 401..=500 (moved). Extra: 25,000 new, the 100 moved ones (4010, 4020,
    // …, 5000) and 900 others between 4001 and 4999.
    assert_eq!(
        t["row_differences"],
        serde_json::json!({"missing": 100, "extra": 26000, "different": 0, "unlisted_buckets": 0}),
        "{out}"
    );
    assert_eq!(
        t["rows"],
        serde_json::json!({"blue": 1000, "green": 26900}),
        "{out}"
    );
}

#[test]
fn a_million_row_table_verifies_in_memory_far_below_its_size() {
    let dbs = TwoDbs::start();
    let seed = "CREATE TABLE big (id bigint PRIMARY KEY, account int NOT NULL, label text NOT NULL,
                                  amount numeric(12, 2), created timestamptz NOT NULL);
                INSERT INTO big SELECT i, i % 1000, repeat(md5(i::text), 2), i / 7.0,
                                       timestamptz '2024-01-01' + i * interval '1 second'
                FROM generate_series(1, 1000000) AS i;
                ANALYZE big;";
    thread::scope(|s| {
        s.spawn(|| on(&dbs, "blue", seed));
        s.spawn(|| on(&dbs, "green", seed));
    });
    let table_bytes: u64 = on(&dbs, "blue", "SELECT pg_total_relation_size('big')")
        .parse()
        .expect("a size");

    let out = verify(&dbs.config(), &[]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("1 table, 1,000,000 rows, consistent"),
        "{out}"
    );
    eprintln!(
        "switchyard verify of 1,000,000 rows ({} MiB on disk per side): {:.1} s, peak RSS {} MiB",
        table_bytes >> 20,
        out.elapsed.as_secs_f64(),
        out.max_rss >> 20
    );
    assert!(
        out.max_rss < table_bytes / 4,
        "peak RSS {} bytes is not well under the table's {} bytes",
        out.max_rss,
        table_bytes
    );
}

#[test]
fn a_chunk_that_differs_only_until_the_recheck_is_not_reported() {
    let dbs = TwoDbs::start();
    on_both(
        &dbs,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int);
         INSERT INTO accounts SELECT i, 100 FROM generate_series(1, 2000) AS i;",
    );
    // A mirrored write that has reached blue and not yet green.
    on(
        &dbs,
        "blue",
        "UPDATE accounts SET balance = 90 WHERE id = 1500;",
    );

    let mut run = Running::start(
        &dbs.config(),
        &["--chunk-rows", "500", "--recheck-after-ms", "8000"],
    );
    let note = run.wait_for_stderr("re-checking");
    assert!(
        note.contains("public.accounts: 1 row differs where (id) in (1000, 1500]"),
        "{note}"
    );
    // The mirror catches up before the re-check.
    on(
        &dbs,
        "green",
        "UPDATE accounts SET balance = 90 WHERE id = 1500;",
    );
    let out = run.finish();
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("1 table, 2,000 rows, consistent"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("public.accounts: 1 chunk differed at first and matched at the re-check"),
        "{out}"
    );
}

#[test]
fn writes_in_flight_to_the_secondary_are_not_reported_as_drift() {
    let dbs = TwoDbs::start();
    on_both(
        &dbs,
        "CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);
         INSERT INTO counters SELECT i, 0 FROM generate_series(1, 20000) AS i;",
    );
    // Like the mirror: every write lands on blue, then 200 ms later on green. Each touches
    // one row in every chunk of 1,000 keys, and never a row an earlier write touched, so
    // most chunks differ when first checked and none by the time of its re-check.
    let stop = AtomicBool::new(false);
    let out = thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sql = format!("UPDATE counters SET n = n + 1 WHERE id % 1000 = {writes};");
                on(&dbs, "blue", &sql);
                thread::sleep(Duration::from_millis(200));
                on(&dbs, "green", &sql);
                writes += 1;
            }
            writes
        });
        // Slowed down so that the walk overlaps many writes.
        let out = verify(
            &dbs.config(),
            &[
                "--chunk-rows",
                "1000",
                "--max-rate",
                "8000",
                "--recheck-after-ms",
                "1500",
            ],
        );
        stop.store(true, Ordering::Relaxed);
        let writes = writer.join().expect("the writer");
        assert!(writes > 5, "only {writes} writes happened while verify ran");
        out
    });
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("1 table, 20,000 rows, consistent"),
        "{out}"
    );
    // --max-rate is a pace, so this is a lower bound that no slow machine can break.
    assert!(
        out.elapsed >= Duration::from_millis(2500),
        "20,000 rows at --max-rate 8000 took only {:?}",
        out.elapsed
    );
    assert!(
        out.stdout
            .contains("differed at first and matched at the re-check"),
        "no chunk was caught with a write in flight, so this proved nothing:\n{out}"
    );
}

#[test]
fn verify_reads_tls_upstreams_with_verify_full() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(ca_dir.path());
    let tls_only = || PgOptions {
        ssl: Some(ca.server_tls()),
        hba: vec![
            "hostnossl all app 127.0.0.1/32 reject".to_owned(),
            "hostssl all all 127.0.0.1/32 scram-sha-256".to_owned(),
        ],
        ..PgOptions::default()
    };
    let dbs = TwoDbs::start_with(tls_only(), tls_only());
    on_both(
        &dbs,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    );
    let mut doc = dbs.config();
    for up in ["blue", "green"] {
        doc["upstreams"][up]["host"] = toml_edit::value("localhost");
        doc["upstreams"][up]["tls"] = toml_edit::value("verify-full");
        doc["upstreams"][up]["ca_file"] = toml_edit::value(ca.ca_cert_path().display().to_string());
    }
    let out = verify(&doc, &[]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("1 table, 2 rows, consistent"), "{out}");

    // A certificate from another CA is refused: exit code 2, and the upstream is named.
    let other_dir = tempfile::tempdir().unwrap();
    let other = TestCa::new(other_dir.path());
    for up in ["blue", "green"] {
        doc["upstreams"][up]["ca_file"] =
            toml_edit::value(other.ca_cert_path().display().to_string());
    }
    let out = verify(&doc, &[]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("cannot connect to upstream"), "{out}");
}

#[test]
fn verify_that_cannot_compare_exits_2_with_the_reason() {
    let dbs = TwoDbs::start();
    on_both(&dbs, "CREATE TABLE t (id int PRIMARY KEY);");

    // A table name with a typo must not pass as consistent.
    let out = verify(&dbs.config(), &["--tables", "t,tt"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("--tables names no table on either upstream: tt"),
        "{out}"
    );
    let out = verify(&dbs.config(), &["--tables", "t,tt", "--json"]);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(out.json()["consistent"], false, "{out}");
    assert!(
        out.json()["error"].as_str().unwrap().contains("tt"),
        "{out}"
    );

    // A wrong password.
    let mut doc = dbs.config();
    doc["upstreams"]["green"]["password"] = toml_edit::value("wrong");
    let out = verify(&doc, &[]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("cannot connect to upstream green"),
        "{out}"
    );
}

/// Starts switchyard with the mirror on in front of `dbs`.
fn mirrored_switchyard(dbs: &TwoDbs) -> switchyard_tests::Switchyard {
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    switchyard_tests::Switchyard::start(&doc.to_string())
}

#[test]
fn after_pgbench_through_the_mirror_only_history_mtime_differs_and_ignoring_it_is_consistent() {
    let dbs = TwoDbs::start();
    let mut sy = mirrored_switchyard(&dbs);
    switchyard_tests::tools::pgbench(sy.port(), &["-i", "-s", "1", "-q"]);
    switchyard_tests::tools::pgbench(
        sy.port(),
        &["-c", "4", "-j", "2", "-T", "4", "-M", "prepared"],
    );
    // The sessions are over; stopping switchyard lets every mirrored write land, live or
    // in the journal (on a busy machine green may have fallen behind): settle as an
    // operator would before verifying.
    sy.stop();
    sy.replay_pending_journal();

    let out = verify(&dbs.config(), &["--json", "--recheck-after-ms", "100"]);
    assert_eq!(
        out.code, 1,
        "now() ran on each side, so history differs: {out}"
    );
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON report");
    let tables = report["tables"].as_array().expect("tables in the report");
    assert!(tables.len() >= 4, "{out}");
    for table in tables {
        let name = table["name"].as_str().unwrap_or("");
        let expected = if name == "pgbench_history" {
            "different"
        } else {
            "consistent"
        };
        assert_eq!(table["status"], expected, "{name}: {table}");
    }
    // pgbench_history has no primary key (compared as a multiset of rows): ignoring mtime
    // is what shows it is the only difference.
    let out = verify(
        &dbs.config(),
        &["--ignore-columns", "pgbench_history.mtime"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("consistent"), "{out}");
}

#[test]
fn verify_during_a_mirrored_write_workload_reports_no_false_difference() {
    let dbs = TwoDbs::start();
    on_both(
        &dbs,
        "CREATE TABLE stock (id int PRIMARY KEY, qty bigint NOT NULL);
         INSERT INTO stock SELECT i, 0 FROM generate_series(1, 20000) AS i;
         GRANT ALL ON stock TO app;",
    );
    let sy = mirrored_switchyard(&dbs);
    let connstr = sy.connstr("app", "app-secret", "app");
    let stop = AtomicBool::new(false);
    let out = thread::scope(|s| {
        let writer = s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let c = switchyard_tests::connect(&connstr).await;
                let stmt = c
                    .prepare("UPDATE stock SET qty = qty + 1 WHERE id = $1")
                    .await
                    .expect("prepare");
                let mut writes = 0i32;
                while !stop.load(Ordering::Relaxed) {
                    let id = (writes * 7919) % 20000 + 1;
                    c.execute(&stmt, &[&id])
                        .await
                        .expect("update through switchyard");
                    writes += 1;
                    // A steady application load, which the mirror keeps up with live.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                writes
            })
        });
        let out = verify(
            &dbs.config(),
            &[
                "--chunk-rows",
                "1000",
                "--max-rate",
                "10000",
                "--recheck-after-ms",
                "1000",
            ],
        );
        stop.store(true, Ordering::Relaxed);
        let writes = writer.join().expect("the writer");
        assert!(
            writes > 100,
            "only {writes} writes happened while verify ran"
        );
        out
    });
    assert!(
        !sy.logs().contains("falls back to the journal"),
        "the mirror kept up live, so every write was in flight, not missing"
    );
    assert_eq!(
        out.code, 0,
        "mirrored writes in flight are not drift: {out}"
    );
}
