//! Transparent passthrough: an application pointed at switchyard cannot tell it from
//! PostgreSQL. Each test drives a real client library (tokio-postgres, psql, pgbench)
//! through the real `switchyard` binary in front of real PostgreSQL servers.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use switchyard_tests::raw::{query, RawClient};
use switchyard_tests::tools::{failed_transactions, pgbench, processed_transactions};
use switchyard_tests::{client, connect, Switchyard, TwoDbs};

fn start() -> (TwoDbs, Switchyard) {
    let dbs = TwoDbs::start();
    let sy = Switchyard::start(&dbs.config().to_string());
    (dbs, sy)
}

fn app(sy: &Switchyard) -> String {
    sy.connstr("app", "app-secret", "app")
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_and_extended_queries_with_binary_values_and_prepared_statements() {
    let (_dbs, sy) = start();
    let c = connect(&app(&sy)).await;

    // Simple protocol: text results, several statements in one Query.
    let msgs = c
        .simple_query("select 1 as one, 'x' as letter; select 2")
        .await
        .expect("simple query");
    let rows: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        })
        .collect();
    assert_eq!(rows, vec![Some("1".to_owned()), Some("2".to_owned())]);

    // Extended protocol with binary parameters and results (tokio-postgres' default).
    let row = c
        .query_one(
            "select $1::int4 + 1, $2::text || '!', $3::bytea, $4::float8 * 2, $5::bool",
            &[&41i32, &"hi", &vec![0u8, 255, 7], &1.25f64, &true],
        )
        .await
        .expect("extended query");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(row.get::<_, String>(1), "hi!");
    assert_eq!(row.get::<_, Vec<u8>>(2), vec![0u8, 255, 7]);
    assert_eq!(row.get::<_, f64>(3), 2.5);
    assert!(row.get::<_, bool>(4));

    // A named prepared statement, used many times, and an unnamed one.
    let stmt = c.prepare("select $1::bigint * 2").await.expect("prepare");
    for i in 0..50i64 {
        let r = c.query_one(&stmt, &[&i]).await.expect("execute named");
        assert_eq!(r.get::<_, i64>(0), i * 2);
    }
    let typed = c
        .query_typed(
            "select $1::text",
            &[(&"unnamed", tokio_postgres::types::Type::TEXT)],
        )
        .await
        .expect("unnamed statement");
    assert_eq!(typed[0].get::<_, String>(0), "unnamed");
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_queries_come_back_complete_and_in_order() {
    let (_dbs, sy) = start();
    let c = connect(&app(&sy)).await;
    let stmt = c
        .prepare("select $1::int4, repeat('y', $1::int4)")
        .await
        .unwrap();
    // tokio-postgres pipelines requests whose futures are polled together.
    let futures = (0..200i32).map(|i| {
        let c = &c;
        let stmt = &stmt;
        async move { c.query_one(stmt, &[&i]).await }
    });
    let results = futures_util::future::join_all(futures).await;
    for (i, r) in results.into_iter().enumerate() {
        let row = r.expect("pipelined query");
        assert_eq!(row.get::<_, i32>(0), i as i32);
        assert_eq!(row.get::<_, String>(1).len(), i);
    }
}

/// Runs the same script of statements directly and through switchyard and compares each
/// statement's outcome (rows or SQLSTATE): errors inside transactions, savepoints, COMMIT
/// of an aborted transaction.
#[tokio::test(flavor = "multi_thread")]
async fn transactions_with_errors_and_savepoints_behave_exactly_as_direct() {
    let (dbs, sy) = start();
    let script = [
        "create table if not exists t (id int primary key, v text)",
        "truncate t",
        "begin",
        "insert into t values (1, 'a')",
        "savepoint s1",
        "insert into t values (1, 'dup')",
        "select 1",
        "rollback to savepoint s1",
        "insert into t values (2, 'b')",
        "release savepoint s1",
        "commit",
        "begin",
        "insert into t values (3, 'c')",
        "select 1/0",
        "insert into t values (4, 'd')",
        "commit",
        "select id, v from t order by id",
        "select no_such_column from t",
        "rollback",
    ];
    async fn outcomes(connstr: &str, script: &[&str]) -> Vec<String> {
        let c = connect(connstr).await;
        let mut out = Vec::new();
        for sql in script {
            out.push(match c.simple_query(sql).await {
                Ok(msgs) => msgs
                    .iter()
                    .map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL").to_owned())
                            .collect::<Vec<_>>()
                            .join(","),
                        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => format!("ok {n}"),
                        _ => String::new(),
                    })
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(";"),
                Err(e) => format!("error {:?}", e.code().map(|c| c.code().to_owned())),
            });
        }
        out
    }
    let direct = outcomes(&dbs.green.connstr("app", "app-secret", "app"), &script).await;
    let proxied = outcomes(&app(&sy), &script).await;
    assert_eq!(proxied, direct);
    assert!(
        direct.iter().any(|o| o.contains("23505")),
        "the script exercises an error: {direct:?}"
    );
    assert_eq!(
        proxied[16], "1,a;2,b;ok 2",
        "only the savepoint-protected work was committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_in_and_out_of_100_mb_round_trips_through_switchyard() {
    let (dbs, sy) = start();
    let c = connect(&app(&sy)).await;
    c.batch_execute("create table big (id int, payload text)")
        .await
        .unwrap();

    const ROWS: usize = 1_000_000;
    let line_payload = "p".repeat(96);
    let sink = c
        .copy_in("copy big from stdin")
        .await
        .expect("COPY FROM STDIN starts");
    futures_util::pin_mut!(sink);
    let mut chunk = String::with_capacity(1 << 20);
    let mut sent_bytes = 0usize;
    for i in 0..ROWS {
        chunk.push_str(&format!("{i}\t{line_payload}\n"));
        if chunk.len() >= 1 << 20 || i == ROWS - 1 {
            sent_bytes += chunk.len();
            sink.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                .await
                .unwrap();
        }
    }
    let copied = sink.finish().await.expect("COPY FROM STDIN completes");
    assert_eq!(copied, ROWS as u64);
    assert!(sent_bytes > 100_000_000, "sent {sent_bytes} bytes");

    // What reached the server, checked directly on it.
    let direct = connect(&dbs.blue.connstr("app", "app-secret", "app")).await;
    let row = direct
        .query_one(
            "select count(*), sum(length(payload)), sum(id) from big",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), ROWS as i64);
    assert_eq!(row.get::<_, i64>(1), (ROWS * 96) as i64);

    // And back out through switchyard.
    let stream = c
        .copy_out("copy big to stdout")
        .await
        .expect("COPY TO STDOUT starts");
    futures_util::pin_mut!(stream);
    let mut received = 0usize;
    let mut lines = 0usize;
    while let Some(data) = stream.next().await {
        let data = data.expect("COPY data");
        received += data.len();
        lines += data.iter().filter(|&&b| b == b'\n').count();
    }
    assert_eq!(lines, ROWS);
    assert_eq!(received, sent_bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_notify_reaches_a_listening_client_through_switchyard() {
    let (_dbs, sy) = start();
    let (listener, mut connection) = tokio_postgres::connect(&app(&sy), tokio_postgres::NoTls)
        .await
        .expect("connect listener");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener.batch_execute("listen jobs").await.unwrap();
    let notifier = connect(&app(&sy)).await;
    notifier
        .batch_execute("notify jobs, 'first'")
        .await
        .unwrap();
    notifier
        .execute("select pg_notify('jobs', $1)", &[&"second"])
        .await
        .unwrap();
    // The listener must read to see notifications; a query makes it read.
    listener.batch_execute("select 1").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("notification arrives")
            .expect("channel open");
        got.push(n);
    }
    assert_eq!(
        got,
        vec![
            ("jobs".to_owned(), "first".to_owned()),
            ("jobs".to_owned(), "second".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_of_pg_sleep_returns_57014() {
    let (_dbs, sy) = start();
    let c = connect(&app(&sy)).await;
    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let started = Instant::now();
    let err = c
        .simple_query("select pg_sleep(30)")
        .await
        .expect_err("the sleep is cancelled");
    canceller.await.unwrap().expect("cancel request sent");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    // Functional, not a timing assertion: the query ended because of the cancel, long
    // before its 30 s were up.
    assert!(started.elapsed() < Duration::from_secs(20));
    // The session survives its cancelled query.
    let r = c.query_one("select 7", &[]).await.unwrap();
    assert_eq!(r.get::<_, i32>(0), 7);
}

#[test]
fn backend_key_data_carries_the_primary_backend_pid() {
    let (_dbs, sy) = start();
    let mut raw = RawClient::connect(sy.port());
    raw.startup(&[("user", "trustuser"), ("database", "app")]);
    let startup = raw.read_until_ready();
    let key = startup
        .iter()
        .find(|(t, _)| *t == b'K')
        .map(|(_, b)| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .expect("BackendKeyData");
    raw.send(&query("select pg_backend_pid()"));
    let reply = raw.read_until_ready();
    let (_, row) = reply.iter().find(|(t, _)| *t == b'D').expect("a row");
    // DataRow: i16 column count, i32 length, text.
    let pid: i32 = std::str::from_utf8(&row[6..]).unwrap().parse().unwrap();
    assert_eq!(key, pid, "BackendKeyData pid is the real backend's");
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_row_result_streams_while_switchyard_memory_stays_bounded() {
    let (_dbs, sy) = start();
    let c = connect(&app(&sy)).await;
    c.query_one("select 1", &[]).await.unwrap();
    let before = vm_hwm_kib(sy.pid());
    let rows = c
        .query_raw(
            "select g, repeat('z', 100) from generate_series(1, 1000000) g",
            std::iter::empty::<i32>(),
        )
        .await
        .unwrap();
    futures_util::pin_mut!(rows);
    let mut n = 0u64;
    let mut bytes = 0u64;
    while let Some(row) = rows.try_next().await.unwrap() {
        n += 1;
        bytes += row.get::<_, &str>(1).len() as u64;
    }
    assert_eq!(n, 1_000_000);
    assert_eq!(bytes, 100_000_000, "the result carried 100 MB of text");
    let grown_kib = vm_hwm_kib(sy.pid()).saturating_sub(before);
    // Peak resident memory may grow by buffers, never by the result (~110 MB).
    assert!(
        grown_kib < 32 * 1024,
        "switchyard's peak RSS grew by {grown_kib} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_clients_each_run_transactions() {
    let (dbs, sy) = start();
    let setup = connect(&app(&sy)).await;
    setup
        .batch_execute("create table counters (client int primary key, n int not null)")
        .await
        .unwrap();
    let connstr = app(&sy);
    let tasks = (0..200).map(|i| {
        let connstr = connstr.clone();
        tokio::spawn(async move {
            let mut c = client::try_connect(&connstr).await?;
            for round in 0..5 {
                let tx = c.transaction().await?;
                if round == 0 {
                    tx.execute("insert into counters values ($1, 0)", &[&i])
                        .await?;
                }
                tx.execute("update counters set n = n + 1 where client = $1", &[&i])
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        })
    });
    for r in futures_util::future::join_all(tasks).await {
        r.expect("task")
            .expect("every client's transactions succeed");
    }
    let direct = connect(&dbs.blue.connstr("app", "app-secret", "app")).await;
    let row = direct
        .query_one("select count(*), sum(n) from counters", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 200);
    assert_eq!(row.get::<_, i64>(1), 1000);
}

#[test]
fn psql_runs_a_script_with_the_same_output_as_direct() {
    let (dbs, sy) = start();
    let script = "create table notes (id serial primary key, body text);\n\
                  insert into notes (body) values ('one'), ('two'), (null);\n\
                  \\copy notes (body) from program 'printf \"three\\nfour\\n\"'\n\
                  select id, coalesce(body, '<null>') from notes order by id;\n\
                  select count(*) from notes;\n";
    let through = client::psql(&app(&sy), script).expect("psql through switchyard");
    let direct =
        client::psql(&dbs.green.connstr("app", "app-secret", "app"), script).expect("psql direct");
    assert_eq!(through, direct);
    assert!(through.contains("5|four"), "{through}");
}

#[test]
fn pgbench_in_simple_extended_and_prepared_modes_has_no_failed_transaction() {
    let (_dbs, sy) = start();
    pgbench(sy.port(), &["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench(sy.port(), &["-c", "8", "-j", "2", "-T", "10", "-M", mode]);
        let processed = processed_transactions(&out);
        assert!(processed > 0, "{mode}: nothing processed:\n{out}");
        let failed = failed_transactions(&out);
        assert_eq!(failed, 0, "{mode}: failed transactions:\n{out}");
    }
}

/// A FunctionCall message ('F', the fast-path interface) of `int4pl(a, b)`, binary
/// arguments and result.
fn function_call_int4pl(a: i32, b: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&177i32.to_be_bytes()); // pg_proc oid of int4pl
    body.extend_from_slice(&1i16.to_be_bytes()); // one format code for all arguments...
    body.extend_from_slice(&1i16.to_be_bytes()); // ...binary
    body.extend_from_slice(&2i16.to_be_bytes());
    for v in [a, b] {
        body.extend_from_slice(&4i32.to_be_bytes());
        body.extend_from_slice(&v.to_be_bytes());
    }
    body.extend_from_slice(&1i16.to_be_bytes()); // binary result
    switchyard_tests::raw::message(b'F', &body)
}

#[test]
fn a_function_call_message_is_answered_as_directly() {
    let (_dbs, sy) = start();
    let mut raw = RawClient::connect(sy.port());
    raw.startup(&[("user", "trustuser"), ("database", "app")]);
    raw.read_until_ready();
    raw.send(&function_call_int4pl(40, 2));
    let reply = raw.read_until_ready();
    let (_, v) = reply
        .iter()
        .find(|(t, _)| *t == b'V')
        .unwrap_or_else(|| panic!("no FunctionCallResponse in {reply:?}"));
    assert_eq!(&v[..4], &4i32.to_be_bytes(), "a 4-byte result");
    assert_eq!(i32::from_be_bytes([v[4], v[5], v[6], v[7]]), 42);
    assert_eq!(reply.last().map(|m| m.0), Some(b'Z'));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line_with_the_session_span() {
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["logging"]["format"] = toml_edit::value("json");
    let sy = Switchyard::start(&doc.to_string());
    let c = connect(&app(&sy)).await;
    c.query_one("select 1", &[]).await.unwrap();
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = sy.logs();
        let lines: Vec<serde_json::Value> = logs
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let started = lines
            .iter()
            .find(|l| l["fields"]["message"] == "session started");
        if let Some(line) = started {
            assert_eq!(line["span"]["user"], "app", "{line}");
            assert_eq!(line["span"]["primary"], "blue", "{line}");
            assert!(!logs.contains("app-secret"), "no password in the logs");
            return;
        }
        assert!(Instant::now() < deadline, "no session line in:\n{logs}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sessions run on `listen.threads` session threads and each new client goes to the one
/// with the fewest: six clients on three threads are two per thread (`/status` counts them),
/// and the sessions answer queries on all three. When three clients leave, the next three
/// fill the threads they left.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_spread_evenly_over_the_session_threads() {
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["listen"]["threads"] = toml_edit::value(3);
    let sy = Switchyard::start(&doc.to_string());
    let threads = || -> Vec<u64> {
        let r = switchyard_tests::http::get(sy.admin_port(), "/status");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["session_threads"]
            .as_array()
            .unwrap_or_else(|| panic!("no session_threads in {v}"))
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    // The harness's readiness probe (a connection opened and closed) may still be counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads() != [0, 0, 0] {
        assert!(
            Instant::now() < deadline,
            "idle proxy counts sessions: {:?}",
            threads()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut clients = Vec::new();
    for i in 0..6 {
        let c = connect(&app(&sy)).await;
        let row = c.query_one("select $1::int + 1", &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i + 1);
        clients.push(c);
    }
    assert_eq!(threads(), [2, 2, 2]);

    // Clients 0, 1 and 2 went to threads 0, 1 and 2: their departure frees one slot each.
    clients.drain(..3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads() != [1, 1, 1] {
        assert!(
            Instant::now() < deadline,
            "sessions not counted out: {:?}",
            threads()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..3 {
        let c = connect(&app(&sy)).await;
        let row = c.query_one("select $1::int * 10", &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i * 10);
        clients.push(c);
    }
    assert_eq!(threads(), [2, 2, 2]);
}
