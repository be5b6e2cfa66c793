//! Cutover and flip-back (a change of `routing.primary`) run as a barrier: mirrored
//! sessions are held at their next transaction boundary, each drains its mirror and swaps,
//! and traffic resumes once all have moved; if that takes longer than
//! `routing.cutover_timeout_ms`, the cutover is abandoned and traffic stays on the old
//! primary. These tests run real workloads through it.

use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::tools::{failed_transactions, pgbench, processed_transactions};
use switchyard_tests::{client, http, PgCluster, Switchyard, TwoDbs};

fn mirrored(dbs: &TwoDbs, timeout_ms: i64) -> Switchyard {
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    doc["routing"]["cutover_timeout_ms"] = toml_edit::value(timeout_ms);
    Switchyard::start(&doc.to_string())
}

fn set_primary(sy: &Switchyard, primary: &str) -> http::Response {
    http::request(
        sy.admin_port(),
        "POST",
        "/routing",
        &[("content-type", "application/json")],
        &format!("{{\"primary\": \"{primary}\"}}"),
    )
}

fn status(sy: &Switchyard) -> Value {
    http::get(sy.admin_port(), "/status").json()
}

fn digest(db: &PgCluster, table: &str, columns: &str) -> String {
    db.psql_in(
        "app",
        &format!(
            "select count(*) || ':' || coalesce(md5(string_agg(r::text, '|' order by r::text)), '') \
             from (select {columns} from {table}) r"
        ),
    )
}

fn converged(dbs: &TwoDbs, table: &str, columns: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (b, g) = (
            digest(&dbs.blue, table, columns),
            digest(&dbs.green, table, columns),
        );
        if b == g {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} differs: blue {b}, green {g}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// pgbench with 16 clients runs through a cutover to green and a flip-back to blue: no
/// transaction fails, every session moves both times, both databases end identical (but
/// for `pgbench_history.mtime`, filled by each side's own now()), and the pause the
/// clients saw is reported in `/status`.
#[test]
fn pgbench_runs_through_a_cutover_and_a_flip_back() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, 20_000);
    pgbench(sy.port(), &["-i", "-s", "2", "-q"]);
    converged(&dbs, "pgbench_accounts", "*");
    let port = sy.port();
    let bench = std::thread::spawn(move || {
        pgbench(port, &["-c", "16", "-j", "2", "-T", "10", "-M", "prepared"])
    });
    // Every pgbench client connected (they connect one after the other), and running.
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&sy)["sessions"] != 16 {
        assert!(
            Instant::now() < deadline,
            "pgbench never opened 16 sessions"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let to_green = set_primary(&sy, "green");
    assert_eq!(to_green.status, 200, "cutover: {}", to_green.body);
    let after_cutover = status(&sy);
    std::thread::sleep(Duration::from_secs(2));
    let to_blue = set_primary(&sy, "blue");
    assert_eq!(to_blue.status, 200, "flip-back: {}", to_blue.body);
    let after_flip = status(&sy);
    let out = bench.join().expect("pgbench thread");
    assert_eq!(failed_transactions(&out), 0, "{out}");
    assert!(processed_transactions(&out) > 100, "{out}");

    for (s, to) in [(&after_cutover, "green"), (&after_flip, "blue")] {
        let last = &s["cutover"]["last"];
        assert_eq!(last["result"], "completed", "{s}");
        assert_eq!(last["to"], to, "{s}");
        assert_eq!(last["sessions"], 16, "every pgbench session took part: {s}");
        assert_eq!(
            s["sessions_by_primary"][to], 16,
            "all 16 moved to {to}: {s}"
        );
        let pauses = &last["pauses"];
        let count = pauses["count"].as_u64().unwrap();
        assert!(count >= 1, "the pauses are reported: {s}");
        assert!(count <= 16, "at most one pause per held session: {s}");
        assert!(pauses["max_ms"].as_f64().unwrap() > 0.0, "{s}");
        eprintln!("cutover to {to}: {last}");
    }
    converged(&dbs, "pgbench_accounts", "*");
    converged(&dbs, "pgbench_branches", "*");
    converged(&dbs, "pgbench_tellers", "*");
    converged(&dbs, "pgbench_history", "tid, bid, aid, delta");
    let divergences = http::get(sy.admin_port(), "/divergences").json();
    assert_eq!(divergences["total"], 0, "{divergences}");
    let metrics = http::get(sy.admin_port(), "/metrics").body;
    assert!(
        metrics.contains("switchyard_cutovers_total{result=\"completed\"} 2"),
        "{metrics}"
    );
}

/// Many clients write and then read their row straight after a cutover: each sees its
/// own write (its mirror drained onto green before it moved), and none gets an error.
#[tokio::test(flavor = "multi_thread")]
async fn clients_read_their_own_writes_straight_after_a_cutover() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, 20_000);
    let connstr = sy.connstr("app", "app-secret", "app");
    let setup = client::connect(&connstr).await;
    setup
        .batch_execute("create table notes (client int primary key, body text)")
        .await
        .unwrap();
    let mut clients = Vec::new();
    for i in 0..24i32 {
        let c = client::connect(&connstr).await;
        c.execute("insert into notes values ($1, 'first')", &[&i])
            .await
            .unwrap();
        clients.push(c);
    }
    let work = clients.iter().enumerate().map(|(i, c)| async move {
        for round in 0..30 {
            let body = format!("round {round}");
            c.execute(
                "update notes set body = $2 where client = $1",
                &[&(i as i32), &body],
            )
            .await
            .expect("no client error during the cutover");
            let seen: String = c
                .query_one("select body from notes where client = $1", &[&(i as i32)])
                .await
                .expect("no client error during the cutover")
                .get(0);
            assert_eq!(seen, body, "client {i} reads its own write");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let cut = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let r = tokio::task::block_in_place(|| set_primary(&sy, "green"));
        assert_eq!(r.status, 200, "{}", r.body);
    };
    tokio::join!(futures_util::future::join_all(work), cut);
    for (i, c) in clients.iter().enumerate() {
        let port: i32 = c
            .query_one("select inet_server_port()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(port, dbs.green.port() as i32, "client {i} is on green");
    }
    let s = status(&sy);
    assert_eq!(s["cutover"]["last"]["result"], "completed", "{s}");
}

/// A transaction kept open past `cutover_timeout_ms` keeps the barrier from being
/// reached: the cutover is abandoned with the reason, the routing (in memory and in the
/// file) stays on blue, the open transaction commits on blue, and new and other sessions
/// work on blue throughout.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_open_past_the_timeout_abandons_the_cutover() {
    let dbs = TwoDbs::start();
    let sy = mirrored(&dbs, 1000);
    let connstr = sy.connstr("app", "app-secret", "app");
    let long = client::connect(&connstr).await;
    let other = client::connect(&connstr).await;
    long.batch_execute("create table t (id int primary key)")
        .await
        .unwrap();
    long.batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();

    let started = Instant::now();
    let r = tokio::task::block_in_place(|| set_primary(&sy, "green"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("cutover abandoned") && r.body.contains("transaction"),
        "{}",
        r.body
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "it waited for the timeout"
    );

    // Everything is on blue, as before.
    let s = status(&sy);
    assert_eq!(s["routing"]["primary"], "blue", "{s}");
    assert_eq!(s["cutover"]["last"]["result"], "abandoned", "{s}");
    assert!(
        s["cutover"]["last"]["reason"]
            .as_str()
            .unwrap()
            .contains("not at a transaction boundary"),
        "{s}"
    );
    assert_eq!(s["sessions_by_primary"]["blue"], 2, "{s}");
    let file = std::fs::read_to_string(sy.config_path()).unwrap();
    let doc: toml_edit::DocumentMut = file.parse().unwrap();
    assert_eq!(
        doc["routing"]["primary"].as_str(),
        Some("blue"),
        "the file says blue again:\n{file}"
    );

    long.batch_execute("insert into t values (2); commit")
        .await
        .expect("the open transaction commits");
    other
        .execute("insert into t values (3)", &[])
        .await
        .expect("other sessions work");
    let fresh = client::connect(&connstr).await;
    let port: i32 = fresh
        .query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(port, dbs.blue.port() as i32, "new sessions go to blue");
    assert_eq!(dbs.blue.psql_in("app", "select count(*) from t"), "3");
    converged(&dbs, "t", "*");

    // With nothing open, the same cutover goes through.
    let r = tokio::task::block_in_place(|| set_primary(&sy, "green"));
    assert_eq!(r.status, 200, "{}", r.body);
    let port: i32 = long
        .query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(port, dbs.green.port() as i32);
}
