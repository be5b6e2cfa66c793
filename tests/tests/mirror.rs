//! Dual-write: while applications run against the old database, the new one receives the
//! same writes in the same order and transactions; switchyard says when the two disagree,
//! and nothing the primary acknowledged is lost when the secondary fails.

use std::time::{Duration, Instant};

use switchyard_tests::tools::{failed_transactions, pgbench};
use switchyard_tests::{client, http, PgCluster, Switchyard, TwoDbs};

fn mirrored(dbs: &TwoDbs, edit: impl FnOnce(&mut toml_edit::DocumentMut)) -> Switchyard {
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    edit(&mut doc);
    Switchyard::start(&doc.to_string())
}

/// An order-independent digest of a table's rows (selected columns, ordered by `order`).
fn digest(db: &PgCluster, table: &str, columns: &str, order: &str) -> String {
    db.psql_in(
        "app",
        &format!(
            "select count(*) || ':' || coalesce(md5(string_agg(r::text, '|' order by {order})), '') \
             from (select {columns} from {table}) r"
        ),
    )
}

/// Waits until `table` has the same digest on both sides (the mirror is asynchronous),
/// then returns it; panics with both digests if they never agree.
fn converge(dbs: &TwoDbs, table: &str, columns: &str, order: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (b, g) = (
            digest(&dbs.blue, table, columns, order),
            digest(&dbs.green, table, columns, order),
        );
        if b == g {
            return b;
        }
        if Instant::now() > deadline {
            let dump = |db: &PgCluster| {
                db.psql_in(
                    "app",
                    &format!("select {columns} from {table} order by {order} limit 40"),
                )
            };
            panic!(
                "{table} differs: blue {b}, green {g}\n--- blue ---\n{}\n--- green ---\n{}",
                dump(&dbs.blue),
                dump(&dbs.green)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of an unlabelled metric in switchyard's Prometheus exposition.
fn metric(sy: &Switchyard, name: &str) -> f64 {
    let text = http::get(sy.admin_port(), "/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

fn assert_pgbench_tables_identical(dbs: &TwoDbs) {
    converge(dbs, "pgbench_branches", "*", "bid");
    converge(dbs, "pgbench_tellers", "*", "tid");
    converge(dbs, "pgbench_accounts", "*", "aid");
    // Each side fills mtime with its own now(): everything else must match.
    converge(
        dbs,
        "pgbench_history",
        "tid, bid, aid, delta",
        "tid, bid, aid, delta",
    );
}

#[test]
fn pgbench_through_the_mirror_leaves_identical_tables_except_history_mtime() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, |_| {});
    pgbench(sy.port(), &["-i", "-s", "1", "-q"]);
    converge(&dbs, "pgbench_accounts", "*", "aid");
    for mode in ["simple", "prepared"] {
        let out = pgbench(sy.port(), &["-c", "8", "-j", "2", "-T", "5", "-M", mode]);
        assert_eq!(failed_transactions(&out), 0, "{mode}:\n{out}");
    }
    assert_pgbench_tables_identical(&dbs);
    let mtimes_differ = dbs.blue.psql_in("app", "select md5(string_agg(mtime::text, ',' order by tid, bid, aid, delta)) from pgbench_history")
        != dbs.green.psql_in("app", "select md5(string_agg(mtime::text, ',' order by tid, bid, aid, delta)) from pgbench_history");
    assert!(mtimes_differ, "now() ran on each side, so mtime differs");
    let logs = sy.logs();
    assert!(
        logs.contains("non-deterministic write") && logs.contains("pgbench_history"),
        "the history INSERT is flagged as non-deterministic:\n{logs}"
    );
    let divergences = http::get(sy.admin_port(), "/divergences").json();
    assert_eq!(divergences["total"], 0, "{divergences}");
    eprintln!(
        "mirror: {}",
        http::get(sy.admin_port(), "/status").json()["mirror"]
    );
    assert!(metric(&sy, "switchyard_mirror_units_applied_total") > 1000.0);
    assert_eq!(metric(&sy, "switchyard_mirror_units_lost_total"), 0.0);
    assert_eq!(metric(&sy, "switchyard_divergences_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn session_state_transactions_errors_and_copy_are_mirrored_exactly() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, |_| {});
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.batch_execute(
        "create table items (id int primary key, name text, qty int default 0);
         create table big (id int primary key, payload text)",
    )
    .await
    .unwrap();
    // Prepared statements, DEALLOCATE and DISCARD ALL.
    c.batch_execute("prepare ins(int, text) as insert into items values ($1, $2)")
        .await
        .unwrap();
    c.batch_execute("execute ins(1, 'one'); execute ins(2, 'two')")
        .await
        .unwrap();
    c.batch_execute("deallocate ins").await.unwrap();
    let stmt = c
        .prepare("insert into items (id, name, qty) values ($1, $2, $3)")
        .await
        .unwrap();
    for i in 3..20i32 {
        c.execute(&stmt, &[&i, &format!("item {i}"), &(i * 10)])
            .await
            .unwrap();
    }
    // SET/RESET and a temp table whose rows feed a real table.
    c.batch_execute(
        "set search_path = public; set application_name = 'mirror-test'; reset application_name",
    )
    .await
    .unwrap();
    c.batch_execute("create temp table staging (id int, name text)")
        .await
        .unwrap();
    c.batch_execute("insert into staging values (100, 'staged'), (101, 'staged too')")
        .await
        .unwrap();
    c.batch_execute("insert into items (id, name) select id, name from staging")
        .await
        .unwrap();
    // Savepoints with ROLLBACK TO, and an error inside a transaction followed by ROLLBACK.
    c.batch_execute("begin; update items set qty = qty + 1 where id < 10; savepoint a; delete from items where id = 3; rollback to savepoint a; update items set name = 'kept' where id = 4; commit").await.unwrap();
    c.batch_execute("begin").await.unwrap();
    c.batch_execute("insert into items values (500, 'doomed')")
        .await
        .unwrap();
    assert!(c
        .batch_execute("insert into items values (1, 'duplicate')")
        .await
        .is_err());
    c.batch_execute("rollback").await.unwrap();
    // COMMIT of a failed transaction is a ROLLBACK on both sides.
    c.batch_execute("begin; insert into items values (600, 'also doomed')")
        .await
        .unwrap();
    assert!(c.batch_execute("select 1/0").await.is_err());
    c.batch_execute("commit").await.unwrap();
    // Multi-statement simple queries.
    c.batch_execute("update items set qty = 7 where id = 5; delete from items where id = 6; insert into items values (700, 'multi')").await.unwrap();
    c.batch_execute("discard all").await.unwrap();
    // COPY FROM STDIN of 1,000,000 rows, streamed.
    {
        use futures_util::SinkExt;
        let sink = c.copy_in("copy big from stdin").await.unwrap();
        futures_util::pin_mut!(sink);
        let mut chunk = String::new();
        for i in 0..1_000_000 {
            chunk.push_str(&format!("{i}\tpayload-{i}\n"));
            if chunk.len() > 1 << 20 {
                sink.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                    .await
                    .unwrap();
            }
        }
        sink.send(bytes::Bytes::from(chunk)).await.unwrap();
        assert_eq!(sink.finish().await.unwrap(), 1_000_000);
    }
    // What could not be applied live (on this busy machine green may fall behind the
    // COPY) is in the journal: settle as an operator would, then compare.
    let divergences = http::get(sy.admin_port(), "/divergences").json();
    assert_eq!(divergences["total"], 0, "{divergences}");
    let mut sy = sy;
    sy.stop();
    sy.replay_pending_journal();
    let items = converge(&dbs, "items", "*", "id");
    assert!(items.starts_with("21:"), "{items}");
    let big = converge(&dbs, "big", "*", "id");
    assert!(big.starts_with("1000000:"), "{big}");
    assert_eq!(
        dbs.green
            .psql_in("app", "select count(*) from items where id in (500, 600)"),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_missing_on_the_secondary_makes_the_update_counts_diverge() {
    let dbs = TwoDbs::start();
    for db in [&dbs.blue, &dbs.green] {
        db.psql_in("app", "create table accounts (id int primary key, balance int); insert into accounts select g, 100 from generate_series(1, 3) g; grant all on accounts to app");
    }
    dbs.green
        .psql_in("app", "delete from accounts where id = 2");
    let sy = mirrored(&dbs, |_| {});
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    let n = c
        .execute("update accounts set balance = balance + 1", &[])
        .await
        .unwrap();
    assert_eq!(n, 3, "the client sees the primary's count");
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let d = http::get(sy.admin_port(), "/divergences").json();
        if d["total"].as_u64() == Some(1) {
            break d;
        }
        assert!(Instant::now() < deadline, "no divergence reported: {d}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let recent = &found["recent"][0];
    assert_eq!(recent["primary"]["tags"][0], "UPDATE 3", "{found}");
    assert_eq!(
        recent["secondary_outcome"]["tags"][0], "UPDATE 2",
        "{found}"
    );
    assert!(
        recent["statement"]
            .as_str()
            .unwrap_or("")
            .contains("accounts"),
        "{found}"
    );
}

/// Runs pgbench through switchyard while `fault` breaks the secondary, then `heal`s it,
/// replays the journal, and checks that both databases hold the same data.
fn secondary_fault_loses_nothing(
    queue_capacity: i64,
    fault: impl FnOnce(&mut PgCluster),
    heal: impl FnOnce(&mut PgCluster),
) {
    let mut dbs = TwoDbs::start();
    let mut sy = mirrored(&dbs, |doc| {
        doc["mirror"]["queue_capacity"] = toml_edit::value(queue_capacity);
    });
    pgbench(sy.port(), &["-i", "-s", "1", "-q"]);
    converge(&dbs, "pgbench_accounts", "*", "aid");
    let port = sy.port();
    let run = std::thread::spawn(move || {
        pgbench(port, &["-c", "8", "-j", "2", "-T", "8", "-M", "prepared"])
    });
    std::thread::sleep(Duration::from_secs(3));
    fault(&mut dbs.green);
    let out = run.join().expect("pgbench thread");
    assert_eq!(failed_transactions(&out), 0, "clients saw no error:\n{out}");
    heal(&mut dbs.green);
    // Sessions are over; let their workers settle, then stop switchyard so the journal is
    // complete and synced.
    std::thread::sleep(Duration::from_secs(2));
    assert!(metric(&sy, "switchyard_mirror_journal_fallbacks_total") > 0.0);
    assert!(metric(&sy, "switchyard_mirror_units_journaled_total") > 0.0);
    assert_eq!(metric(&sy, "switchyard_mirror_units_lost_total"), 0.0);
    sy.stop();
    let status = sy.journal_status();
    assert!(
        status["pending"].as_u64().unwrap_or(0) > 0,
        "the missed writes are in the journal: {status}"
    );
    sy.journal_replay();
    assert_pgbench_tables_identical(&dbs);
    let after = sy.journal_status();
    assert_eq!(after["pending"], 0, "{after}");
}

#[test]
fn killing_the_secondary_mid_pgbench_loses_nothing_once_the_journal_is_replayed() {
    secondary_fault_loses_nothing(1000, |green| green.kill(), |green| green.start_again());
}

#[test]
fn a_sigstopped_secondary_that_outlasts_the_queue_loses_nothing_once_replayed() {
    secondary_fault_loses_nothing(1000, |green| green.pause(), |green| green.resume());
}

#[tokio::test(flavor = "multi_thread")]
async fn inserts_relying_on_volatile_column_defaults_are_named_non_deterministic() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, |_| {});
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.batch_execute("create table events (id serial primary key, kind text, at timestamptz default clock_timestamp())")
        .await
        .unwrap();
    c.batch_execute("insert into events (kind) values ('signup')")
        .await
        .unwrap();
    c.execute("insert into events (kind) values ($1)", &[&"login"])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let flagged = loop {
        let d = http::get(sy.admin_port(), "/divergences").json();
        let reasons = d["non_deterministic"].to_string();
        if reasons.contains("default of events.id") && reasons.contains("clock_timestamp") {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the volatile defaults are not named: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        flagged["non_deterministic"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{flagged}"
    );
    assert!(
        sy.logs().contains("non-deterministic write"),
        "logged once with its reason"
    );
}

/// Causal order across sessions: a row written on one connection and, once that write was
/// answered, referenced from another connection (a pooled application's two requests)
/// reaches the secondary in that order, although each session has its own worker. The
/// parent's INSERT takes half a second to run (on both sides), so without the cross-session
/// order the child's INSERT would reach the secondary first and fail its foreign key there.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_answered_before_another_session_sends_its_own_reaches_the_secondary_first() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, |_| {});
    let connstr = sy.connstr("app", "app-secret", "app");
    let a = client::connect(&connstr).await;
    let b = client::connect(&connstr).await;
    a.batch_execute(
        "create table parent (id int primary key);
         create table child (id int primary key, parent int not null references parent)",
    )
    .await
    .unwrap();
    converge(&dbs, "child", "*", "id");
    for id in 1..=3i32 {
        a.execute(
            "insert into parent (id) select $1 from pg_sleep(0.5)",
            &[&id],
        )
        .await
        .unwrap();
        b.execute("insert into child values ($1, $1)", &[&id])
            .await
            .unwrap();
    }
    converge(&dbs, "child", "*", "id");
    let divergences = http::get(sy.admin_port(), "/divergences").json();
    assert_eq!(divergences["total"], 0, "{divergences}");
    let status = http::get(sy.admin_port(), "/status").json();
    assert!(
        status["mirror"]["order_waits"].as_u64().unwrap() >= 3,
        "each child waited for its parent: {status}"
    );
}

/// The mirror's counters in `/status`.
fn mirror_status(sy: &Switchyard) -> serde_json::Value {
    let r = http::get(sy.admin_port(), "/status");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["mirror"].clone()
}

fn counter(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// A transaction sent statement by statement (each its own round trip, so each its own
/// unit) reaches the secondary grouped: the worker holds a batch that ends inside a
/// transaction for the transaction's next unit, so the twelve units go to green in far
/// fewer writes than one each (without the hold, a secondary that keeps up gets one write
/// per unit). And the transaction is applied whole: green has every row.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_reaches_the_secondary_in_few_pipelined_writes() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, |_| {});
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.simple_query("create table grouped (id int primary key, v text)")
        .await
        .unwrap();
    converge(&dbs, "grouped", "*", "id");
    let before = mirror_status(&sy);

    c.simple_query("begin").await.unwrap();
    for i in 0..10 {
        c.simple_query(&format!("insert into grouped values ({i}, 'row {i}')"))
            .await
            .unwrap();
    }
    c.simple_query("commit").await.unwrap();
    let digest = converge(&dbs, "grouped", "*", "id");
    assert!(digest.starts_with("10:"), "{digest}");

    let after = mirror_status(&sy);
    let units = counter(&after, "units_applied") - counter(&before, "units_applied");
    let batches = counter(&after, "batches") - counter(&before, "batches");
    assert_eq!(units, 12, "begin, 10 inserts and commit are 12 units");
    assert!(
        batches * 2 <= units,
        "12 units in {batches} writes: the transaction was not grouped"
    );
}

/// The hold is short: a transaction left open by its client still reaches the secondary.
/// After `BEGIN; INSERT` and nothing more, green's mirror connection holds, within
/// seconds, the INSERT's lock in a transaction left open ("idle in transaction"), and the
/// COMMIT that comes much later commits it there.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_transaction_is_applied_on_the_secondary_without_waiting_for_its_end() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, |_| {});
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.simple_query("create table held (id int primary key)")
        .await
        .unwrap();
    converge(&dbs, "held", "*", "id");
    c.simple_query("begin").await.unwrap();
    c.simple_query("insert into held values (42)")
        .await
        .unwrap();

    // The INSERT's lock, held by an open transaction on green (the worker may have run a
    // catalog query since, so the backend's last query text is not the INSERT).
    let probe = "select a.state from pg_locks l join pg_class c on c.oid = l.relation \
                 join pg_stat_activity a on a.pid = l.pid \
                 where c.relname = 'held' and l.mode = 'RowExclusiveLock'";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = dbs.green.psql_in("app", probe);
        if seen == "idle in transaction" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the open transaction's INSERT never reached green: {seen:?}\n{}",
            dbs.green.psql_in(
                "app",
                "select usename, state, query from pg_stat_activity where backend_type = 'client backend'"
            )
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Not committed on green either, until the client commits.
    assert_eq!(dbs.green.psql_in("app", "select count(*) from held"), "0");
    c.simple_query("commit").await.unwrap();
    assert_eq!(
        converge(&dbs, "held", "*", "id"),
        digest(&dbs.blue, "held", "*", "id")
    );
    assert!(digest(&dbs.green, "held", "*", "id").starts_with("1:"));
}

/// A statement prepared while the secondary is stalled: its Parse is in flight on the
/// mirror connection when the queue overflows, and is answered only after the session has
/// switched to the journal. The journaled executions of that statement need it on the
/// replay's fresh connection, so the journal's prelude must carry it; the replay then
/// applies every row. (Found by the benchmark: a canary run's replay stopped at
/// `prepared statement "P_0" does not exist`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_prepared_in_flight_at_an_overflow_replays_from_the_journal() {
    let mut dbs = TwoDbs::start();
    let mut sy = mirrored(&dbs, |doc| {
        doc["mirror"]["queue_capacity"] = toml_edit::value(4);
    });
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.simple_query("create table prepared_rows (id int primary key)")
        .await
        .unwrap();
    converge(&dbs, "prepared_rows", "*", "id");

    dbs.green.pause();
    // tokio-postgres names it (Parse "s0" / Describe / Sync): a unit the mirror replays.
    let insert = c
        .prepare("insert into prepared_rows values ($1)")
        .await
        .unwrap();
    for i in 0..20i32 {
        assert_eq!(c.execute(&insert, &[&i]).await.unwrap(), 1);
    }
    assert!(
        metric(&sy, "switchyard_mirror_journal_fallbacks_total") > 0.0,
        "the queue of 4 overflowed"
    );
    dbs.green.resume();
    drop(c);
    // The Parse in flight is answered now; let the worker settle it, then stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&sy, "switchyard_mirror_unsettled_sessions") > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the in-flight units never settled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sy.stop();
    sy.journal_replay();
    let rows = converge(&dbs, "prepared_rows", "*", "id");
    assert!(rows.starts_with("20:"), "{rows}");
    assert_eq!(sy.journal_status()["pending"], 0);
}
