//! Shadow reads: sampled reads run on the secondary too, through the session's ordered
//! worker, and their results are compared with what the primary returned. These tests
//! check that identical databases give no mismatch (both protocols, binary results,
//! inside transactions), that each kind of seeded difference is found and reported with the
//! rows that differ, that row order only matters under ORDER BY, that a race with a write
//! in flight is dismissed by the re-check, and that a stalled secondary never holds up a
//! client's read.

use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::{client, http, Switchyard, TwoDbs};

/// Mirror on, every read sampled with a fixed seed, and the given re-check delay.
fn shadowed(
    dbs: &TwoDbs,
    recheck_ms: i64,
    edit: impl FnOnce(&mut toml_edit::DocumentMut),
) -> Switchyard {
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    doc["shadow_reads"]["percent"] = toml_edit::value(100);
    doc["shadow_reads"]["seed"] = toml_edit::value(7);
    doc["shadow_reads"]["recheck_after_ms"] = toml_edit::value(recheck_ms);
    edit(&mut doc);
    Switchyard::start(&doc.to_string())
}

fn shadow_status(sy: &Switchyard) -> Value {
    http::get(sy.admin_port(), "/status").json()["shadow_reads"].clone()
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Waits until every sampled read has been dealt with by its worker, and every mismatch
/// has been settled by its re-check; returns the counters.
fn settled(sy: &Switchyard) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = shadow_status(sy);
        let done = n(&s, "completed") == n(&s, "sampled")
            && n(&s, "confirmed") + n(&s, "vanished") + n(&s, "unverified") == n(&s, "mismatched");
        if done {
            return s;
        }
        assert!(Instant::now() < deadline, "shadow reads never settled: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn setup_items(c: &tokio_postgres::Client) {
    c.batch_execute(
        "create table items (id int primary key, name text, price float8, grp int);
         insert into items select g, 'item ' || g, g * 1.5, g % 3 from generate_series(1, 200) g;",
    )
    .await
    .unwrap();
}

/// Waits until the mirrored `table` is the same on both sides (the mirror is asynchronous:
/// on green it may not even exist yet).
fn converged(dbs: &TwoDbs, table: &str) {
    let q = format!("select count(*) || ':' || coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from {table} t");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Ok(dbs.blue.psql_in("app", &q)) != dbs.green.try_psql_in("app", &q) {
        assert!(Instant::now() < deadline, "{table} never converged");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Identical databases, a read workload sampled at 100% over the simple protocol, the
/// extended protocol with binary results (tokio-postgres), prepared statements reused, and
/// reads inside a transaction between writes: every read is compared and none differs.
/// It also proves the sample rate is live: at 0% nothing is sampled, after a reload to 100%
/// everything is.
#[tokio::test(flavor = "multi_thread")]
async fn identical_databases_give_no_mismatch() {
    let dbs = TwoDbs::start();
    let sy = shadowed(&dbs, 200, |doc| {
        doc["shadow_reads"]["percent"] = toml_edit::value(0);
    });
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    setup_items(&c).await;
    c.simple_query("select * from items").await.unwrap();
    assert_eq!(n(&settled(&sy), "sampled"), 0, "0% samples nothing");

    // Reload: 100%.
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(sy.config_path())
        .unwrap()
        .parse()
        .unwrap();
    doc["shadow_reads"]["percent"] = toml_edit::value(100);
    sy.write_config(&doc.to_string());
    let r = http::request(sy.admin_port(), "POST", "/reload", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    converged(&dbs, "items");

    let mut reads = 0u64;
    // Simple protocol: multiset, ordered, aggregates, several statements in one Query.
    for sql in [
        "select * from items",
        "select * from items order by id",
        "select grp, count(*), sum(price) from items group by grp order by grp",
        "select name from items where id < 10; select count(*) from items",
        "select 1 where false",
    ] {
        c.simple_query(sql).await.unwrap();
        reads += 1;
    }
    // Extended protocol, binary results, parameters; the prepared statement is reused.
    let stmt = c
        .prepare("select id, name, price from items where grp = $1 order by id")
        .await
        .unwrap();
    for g in 0..3 {
        let rows = c.query(&stmt, &[&g]).await.unwrap();
        assert!(!rows.is_empty());
        reads += 1;
    }
    let one = c
        .query_one("select count(*) from items where price > $1", &[&10.0f64])
        .await
        .unwrap();
    assert!(one.get::<_, i64>(0) > 0);
    reads += 1;
    // Reads inside a transaction, after its own writes: the secondary sees them too.
    c.batch_execute("begin").await.unwrap();
    c.execute("insert into items values (1001, 'new', 1.0, 9)", &[])
        .await
        .unwrap();
    let rows = c
        .query("select * from items where grp = 9", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    reads += 1;
    c.simple_query("select count(*) from items").await.unwrap();
    reads += 1;
    c.batch_execute("commit").await.unwrap();
    converged(&dbs, "items");

    let s = settled(&sy);
    // A read finds the worker still busy with MAX_PENDING earlier ones now and then: it
    // is skipped (counted), never queued without bound.
    assert_eq!(
        n(&s, "matched") + n(&s, "skipped"),
        reads,
        "every read was compared or skipped: {s}"
    );
    assert!(
        n(&s, "matched") >= reads / 2,
        "most reads were compared: {s}"
    );
    assert_eq!(
        n(&s, "mismatched"),
        0,
        "identical databases: {s}\n{}",
        http::get(sy.admin_port(), "/mismatches").body
    );
    assert_eq!(n(&s, "errors"), 0, "{s}");
    // The mirrored transaction was not disturbed by the reads run inside it.
    let divergences = http::get(sy.admin_port(), "/divergences").json();
    assert_eq!(divergences["total"], 0, "{divergences}");
}

/// Returns the mismatch whose statement contains `needle`, once settled.
fn mismatch_for(sy: &Switchyard, needle: &str) -> Value {
    let all = http::get(sy.admin_port(), "/mismatches").json();
    all["recent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["statement"].as_str().unwrap_or("").contains(needle))
        .cloned()
        .unwrap_or_else(|| panic!("no mismatch for {needle:?} in {all}"))
}

fn rows_text(v: &Value) -> String {
    v.to_string()
}

/// Each seeded difference on the secondary is detected, confirmed by the re-check, and
/// reported with the rows that differ: a changed value, a missing row, an extra row, a
/// column of another type, and an error on one side only. The report is in the admin API
/// and in the JSON-lines mismatch log, without parameters (not enabled).
#[tokio::test(flavor = "multi_thread")]
async fn seeded_differences_are_reported_with_their_rows() {
    let dbs = TwoDbs::start();
    let sy = shadowed(&dbs, 100, |_| {});
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.batch_execute(
        "create table changed (id int primary key, name text);
         insert into changed select g, 'name ' || g from generate_series(1, 20) g;
         create table missing (id int primary key);
         insert into missing select generate_series(1, 20);
         create table extra (id int primary key);
         insert into extra select generate_series(1, 20);
         create table typed (id int, v int);
         insert into typed values (1, 1);",
    )
    .await
    .unwrap();
    for t in ["changed", "missing", "extra", "typed"] {
        converged(&dbs, t);
    }
    // Seed the differences on the secondary (green) behind switchyard's back.
    dbs.green.psql_in(
        "app",
        "update changed set name = 'CHANGED' where id = 7;
         delete from missing where id = 13;
         insert into extra values (99);
         alter table typed alter column v type bigint;",
    );
    // And a table only the primary has.
    dbs.blue.psql_in("app", "create table only_blue (id int); grant all on only_blue to app; insert into only_blue values (1);");

    c.simple_query("select * from changed").await.unwrap();
    c.query("select id from missing where id > $1", &[&10i32])
        .await
        .unwrap();
    c.simple_query("select * from extra").await.unwrap();
    c.simple_query("select v from typed").await.unwrap();
    c.simple_query("select * from only_blue").await.unwrap();

    let s = settled(&sy);
    assert_eq!(n(&s, "mismatched"), 5, "{s}");
    assert_eq!(
        n(&s, "confirmed"),
        5,
        "persisting differences are confirmed: {s}"
    );

    let changed = mismatch_for(&sy, "changed");
    assert_eq!(changed["status"], "confirmed");
    assert_eq!(changed["difference"]["kind"], "rows");
    assert_eq!(
        changed["difference"]["primary_rows"][0][1], "name 7",
        "{changed}"
    );
    assert_eq!(
        changed["difference"]["secondary_rows"][0][1], "CHANGED",
        "{changed}"
    );

    let missing = mismatch_for(&sy, "missing");
    assert_eq!(missing["difference"]["kind"], "row_count", "{missing}");
    // Binary results (tokio-postgres), decoded for the report: int4 13.
    assert_eq!(
        rows_text(&missing["difference"]["primary_rows"]),
        "[[\"13\"]]",
        "{missing}"
    );
    assert_eq!(rows_text(&missing["difference"]["secondary_rows"]), "[]");

    let extra = mismatch_for(&sy, "extra");
    assert_eq!(extra["difference"]["kind"], "row_count");
    assert_eq!(
        rows_text(&extra["difference"]["secondary_rows"]),
        "[[\"99\"]]",
        "{extra}"
    );

    let typed = mismatch_for(&sy, "typed");
    assert_eq!(typed["difference"]["kind"], "columns", "{typed}");
    assert!(
        typed["difference"]["detail"]
            .as_str()
            .unwrap()
            .contains("type 20"),
        "{typed}"
    );

    let only = mismatch_for(&sy, "only_blue");
    assert_eq!(only["difference"]["kind"], "error", "{only}");
    assert!(
        only["difference"]["detail"]
            .as_str()
            .unwrap()
            .contains("42P01"),
        "{only}"
    );

    let by_fp = http::get(sy.admin_port(), "/mismatches").json()["by_fingerprint"].clone();
    assert_eq!(by_fp.as_array().unwrap().len(), 5, "{by_fp}");

    let configured: toml_edit::DocumentMut = std::fs::read_to_string(sy.config_path())
        .unwrap()
        .parse()
        .unwrap();
    let log_path = std::path::PathBuf::from(
        configured["shadow_reads"]["mismatch_log"]
            .as_str()
            .expect("the harness sets mismatch_log"),
    );
    let log = std::fs::read_to_string(&log_path)
        .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "confirmed" && l.get("parameters").is_none()),
        "{log}"
    );
    let metrics = http::get(sy.admin_port(), "/metrics").body;
    assert!(
        metrics.contains("switchyard_shadow_reads_total{result=\"mismatch\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_shadow_mismatches_settled_total{status=\"confirmed\"} 5"),
        "{metrics}"
    );
}

/// The same rows in a different physical order are no mismatch without ORDER BY; with an
/// ORDER BY whose ties come out in another order on the secondary, they are.
#[tokio::test(flavor = "multi_thread")]
async fn row_order_matters_only_under_order_by() {
    let dbs = TwoDbs::start();
    let sy = shadowed(&dbs, 100, |_| {});
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.batch_execute(
        "create table heap (id int, grp int);
         insert into heap select g, g % 2 from generate_series(1, 50) g;",
    )
    .await
    .unwrap();
    converged(&dbs, "heap");
    // Rewrite green's table in reverse physical order.
    dbs.green.psql_in(
        "app",
        "begin; create temp table t as select * from heap; delete from heap;
         insert into heap select * from t order by id desc; commit;",
    );
    let blue_first = dbs.blue.psql_in("app", "select id from heap limit 1");
    let green_first = dbs.green.psql_in("app", "select id from heap limit 1");
    assert_ne!(blue_first, green_first, "the physical orders differ");

    c.simple_query("select id, grp from heap").await.unwrap();
    c.simple_query("select id, grp from heap order by id")
        .await
        .unwrap();
    let s = settled(&sy);
    assert_eq!(n(&s, "matched"), 2, "{s}");
    assert_eq!(n(&s, "mismatched"), 0, "{s}");

    // Ties of grp come out in physical order: different on each side.
    c.simple_query("select id, grp from heap order by grp")
        .await
        .unwrap();
    let s = settled(&sy);
    assert_eq!(n(&s, "mismatched"), 1, "{s}");
    let m = mismatch_for(&sy, "order by grp");
    assert_eq!(m["difference"]["kind"], "order", "{m}");
    assert_eq!(m["status"], "confirmed", "{m}");
}

/// A read that races with another session's write still in flight to the secondary
/// differs at first; the re-check after `recheck_after_ms` finds both sides equal, so the
/// mismatch vanishes and is not confirmed, and the noise rate says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_race_with_an_in_flight_write_vanishes_on_recheck() {
    let dbs = TwoDbs::start();
    let sy = shadowed(&dbs, 1500, |_| {});
    let writer = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    let reader = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    writer
        .batch_execute("create table r (id int)")
        .await
        .unwrap();
    converged(&dbs, "r");
    // Hold up writes to r on the secondary (reads still pass).
    let green = client::connect(&dbs.green.connstr("app", "app-secret", "app")).await;
    green
        .batch_execute("begin; lock table r in exclusive mode")
        .await
        .unwrap();
    writer
        .execute("insert into r values (1)", &[])
        .await
        .unwrap();
    let rows = reader.simple_query("select count(*) from r").await.unwrap();
    assert!(!rows.is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    while n(&shadow_status(&sy), "mismatched") == 0 {
        assert!(Instant::now() < deadline, "the race was not seen");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the write through before the re-check.
    green.batch_execute("commit").await.unwrap();
    let s = settled(&sy);
    assert_eq!(n(&s, "vanished"), 1, "{s}");
    assert_eq!(n(&s, "confirmed"), 0, "{s}");
    assert_eq!(s["noise_rate"], 1.0, "{s}");
    assert_eq!(mismatch_for(&sy, "count")["status"], "vanished");
}

/// With the secondary stopped (SIGSTOP) and every read sampled, the client's reads are
/// answered all the same: the worker is stuck, so further reads are skipped instead of
/// queued; once the secondary resumes, what was queued is compared and matches.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_secondary_does_not_hold_up_reads() {
    let mut dbs = TwoDbs::start();
    // Long enough that the time stopped does not count as a timeout of the queued reads.
    let sy = shadowed(&dbs, 100, |doc| {
        doc["shadow_reads"]["statement_timeout_ms"] = toml_edit::value(60_000);
    });
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    setup_items(&c).await;
    converged(&dbs, "items");
    dbs.green.pause();
    let reads = async {
        for i in 0..200 {
            let rows = c
                .query("select name from items where id = $1", &[&(i % 200 + 1)])
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
        }
    };
    // A liveness bound, not a timing assertion: without it a regression would hang.
    let answered = tokio::time::timeout(Duration::from_secs(60), reads).await;
    let during = shadow_status(&sy);
    dbs.green.resume();
    answered.expect("reads were held up by the stalled secondary");
    assert!(
        during["skipped_by_reason"]["secondary behind"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{during}"
    );
    let s = settled(&sy);
    assert_eq!(n(&s, "mismatched"), 0, "{s}");
    assert!(
        n(&s, "matched") >= 1,
        "the queued reads ran once it resumed: {s}"
    );
}

/// pgbench's tpcb-like transactions (each reads the balance it just updated) and
/// select-only reads over the extended protocol, every read shadowed, on identical
/// databases: the mirrored transactions are undisturbed by the reads run inside them (no
/// divergence, identical tables), and no mismatch is confirmed. Races between sessions'
/// writes in flight may show up as mismatches first; the re-check dismisses all of them.
#[test]
fn pgbench_with_every_read_shadowed_confirms_nothing() {
    use switchyard_tests::tools::{failed_transactions, pgbench};
    let dbs = TwoDbs::start();
    let sy = shadowed(&dbs, 300, |_| {});
    pgbench(sy.port(), &["-i", "-s", "1", "-q"]);
    converged(&dbs, "pgbench_accounts");
    for args in [
        ["-c", "4", "-j", "2", "-T", "4", "-M", "prepared"],
        ["-c", "4", "-j", "2", "-T", "4", "-M", "simple"],
        ["-c", "4", "-j", "2", "-T", "4", "-M", "extended"],
    ] {
        let args = if args[7] == "extended" {
            [&args[..], &["-S"]].concat()
        } else {
            args.to_vec()
        };
        let out = pgbench(sy.port(), &args);
        assert_eq!(failed_transactions(&out), 0, "{args:?}:\n{out}");
    }
    let s = settled(&sy);
    assert!(n(&s, "matched") > 100, "{s}");
    assert_eq!(
        n(&s, "confirmed"),
        0,
        "{s}\n{}",
        http::get(sy.admin_port(), "/mismatches").body
    );
    assert_eq!(n(&s, "errors"), 0, "{s}");
    for t in ["pgbench_accounts", "pgbench_branches", "pgbench_tellers"] {
        converged(&dbs, t);
    }
    let divergences = http::get(sy.admin_port(), "/divergences").json();
    assert_eq!(divergences["total"], 0, "{divergences}");
}

/// Noise control against real servers: a table-qualified ignored column (its table name
/// looked up on the secondary) and a float tolerance hide differences they name and no
/// others; with `log_parameters` on, a mismatch report carries the Bind parameters.
#[tokio::test(flavor = "multi_thread")]
async fn ignored_columns_float_tolerance_and_parameters() {
    let dbs = TwoDbs::start();
    let sy = shadowed(&dbs, 100, |doc| {
        let mut ignore = toml_edit::Array::new();
        ignore.push("noisy.updated_at");
        doc["shadow_reads"]["ignore_columns"] = toml_edit::value(ignore);
        doc["shadow_reads"]["float_tolerance"] = toml_edit::value(0.01);
        doc["shadow_reads"]["log_parameters"] = toml_edit::value(true);
    });
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.batch_execute(
        "create table noisy (id int primary key, updated_at text, score float8, note text);
         insert into noisy select g, 'blue', g / 3.0, 'same' from generate_series(1, 30) g;
         create table other (id int primary key, updated_at text);
         insert into other values (1, 'blue');",
    )
    .await
    .unwrap();
    converged(&dbs, "noisy");
    converged(&dbs, "other");
    dbs.green.psql_in(
        "app",
        "update noisy set updated_at = 'green', score = score + 0.001;
         update other set updated_at = 'green';",
    );
    // Hidden by the rules: over both protocols.
    c.simple_query("select * from noisy").await.unwrap();
    c.query("select * from noisy where id > $1", &[&5i32])
        .await
        .unwrap();
    let s = settled(&sy);
    assert_eq!(
        n(&s, "matched"),
        2,
        "{s}\n{}",
        http::get(sy.admin_port(), "/mismatches").body
    );
    assert_eq!(n(&s, "mismatched"), 0, "{s}");
    // Not hidden: the pattern names noisy's column only; a float beyond the tolerance.
    c.query("select * from other where id = $1", &[&1i32])
        .await
        .unwrap();
    dbs.green
        .psql_in("app", "update noisy set score = score + 1 where id = 3");
    c.simple_query("select id, score from noisy").await.unwrap();
    let s = settled(&sy);
    assert_eq!(n(&s, "confirmed"), 2, "{s}");
    let other = mismatch_for(&sy, "from other");
    assert_eq!(
        other["parameters"],
        serde_json::json!(["\\x00000001"]),
        "{other}"
    );
    let score = mismatch_for(&sy, "id, score");
    assert_eq!(score["difference"]["primary_rows"][0][0], "3", "{score}");
}

/// When green really differs, every sampled read shows it, and re-checks must not pile
/// up: at most 64 wait or run; past that a mismatch is settled at once as unverified ("too
/// many re-checks waiting") instead of queuing one more task. With re-checks delayed by a
/// minute, every mismatch after the 64th is settled unverified right away and the first
/// 64 are still pending.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_mismatches_keeps_a_bounded_recheck_queue() {
    let dbs = TwoDbs::start();
    let sy = shadowed(&dbs, 60_000, |_| {});
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.batch_execute("create table flood (id int primary key); insert into flood values (1);")
        .await
        .unwrap();
    converged(&dbs, "flood");
    dbs.green.psql_in("app", "update flood set id = 2");
    for _ in 0..150 {
        c.simple_query("select id from flood").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = shadow_status(&sy);
        if n(&s, "completed") == n(&s, "sampled") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "shadow reads never completed: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mismatched = n(&s, "mismatched");
    assert!(
        mismatched > 64,
        "too few reads compared to fill the queue: {s}"
    );
    assert_eq!(n(&s, "unverified"), mismatched - 64, "{s}");
    assert_eq!(n(&s, "confirmed") + n(&s, "vanished"), 0, "{s}");
}
