//! Routing changes move open sessions: at its next transaction boundary a session's mirror
//! catches up, then its primary and secondary trade places. The client sees no error, its
//! session state (prepared statements, SET, temp tables, LISTEN) works on the new primary,
//! and it reads its own writes.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use switchyard_tests::{client, http, Switchyard, TwoDbs};

fn mirrored(dbs: &TwoDbs) -> (Switchyard, toml_edit::DocumentMut) {
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    (Switchyard::start(&doc.to_string()), doc)
}

/// Rewrites the config with `canary_percent` and waits until switchyard runs it.
fn set_canary(sy: &Switchyard, doc: &mut toml_edit::DocumentMut, percent: i64) {
    doc["routing"]["canary_percent"] = toml_edit::value(percent);
    sy.write_config(&doc.to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = http::get(sy.admin_port(), "/status").json();
        if s["routing"]["canary_percent"] == percent {
            return;
        }
        assert!(Instant::now() < deadline, "reload not seen: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn port_of(c: &tokio_postgres::Client) -> i32 {
    c.query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_session_moves_at_its_next_boundary_and_keeps_its_session_state() {
    let dbs = TwoDbs::start();
    let (sy, mut doc) = mirrored(&dbs);
    let (blue, green) = (dbs.blue.port() as i32, dbs.green.port() as i32);
    let connstr = sy.connstr("app", "app-secret", "app");

    let (c, mut connection) = tokio_postgres::connect(&connstr, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    c.batch_execute(
        "create schema inventory; create table inventory.items (id int primary key, name text);
         set search_path = inventory, public;
         create temp table scratch (n int); insert into scratch values (1), (2), (3);
         listen moves",
    )
    .await
    .unwrap();
    let insert = c
        .prepare("insert into items values ($1, $2)")
        .await
        .unwrap();
    c.execute(&insert, &[&1i32, &"before"]).await.unwrap();
    assert_eq!(port_of(&c).await, blue);

    // A transaction in progress when routing changes finishes where it started.
    c.batch_execute("begin").await.unwrap();
    c.execute(&insert, &[&2i32, &"in the transaction"])
        .await
        .unwrap();
    set_canary(&sy, &mut doc, 100);
    assert_eq!(port_of(&c).await, blue, "no move inside a transaction");
    c.batch_execute("commit").await.unwrap();

    // At the boundary the session moved: same prepared statement, search_path, temp table.
    assert_eq!(port_of(&c).await, green, "moved at the boundary");
    c.execute(&insert, &[&3i32, &"after"]).await.unwrap();
    let rows: i64 = c
        .query_one("select count(*) from items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rows, 3,
        "its own writes, including the last transaction, are there"
    );
    let path: String = c.query_one("show search_path", &[]).await.unwrap().get(0);
    assert_eq!(path, "inventory, public");
    let scratch: i64 = c
        .query_one("select sum(n) from scratch", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(scratch, 6);
    // LISTEN came along: a NOTIFY on the new primary reaches it.
    let other = client::connect(&connstr).await;
    assert_eq!(port_of(&other).await, green);
    other
        .batch_execute("notify moves, 'hello from green'")
        .await
        .unwrap();
    c.batch_execute("select 1").await.unwrap();
    let note = tokio::time::timeout(Duration::from_secs(10), notes.recv())
        .await
        .expect("notified");
    assert_eq!(note.as_deref(), Some("hello from green"));
    // Both databases hold the same rows (the mirror now runs green → blue).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q = "select string_agg(id || ':' || name, ',' order by id) from inventory.items";
        let (b, g) = (dbs.blue.psql_in("app", q), dbs.green.psql_in("app", q));
        if b == g {
            assert_eq!(b, "1:before,2:in the transaction,3:after");
            break;
        }
        assert!(Instant::now() < deadline, "blue {b} vs green {g}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = http::get(sy.admin_port(), "/status").json();
    assert_eq!(metrics["sessions_by_primary"]["green"], 2, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_clients_read_their_own_write_right_after_a_move() {
    let dbs = TwoDbs::start();
    let (sy, mut doc) = mirrored(&dbs);
    let connstr = sy.connstr("app", "app-secret", "app");
    let setup = client::connect(&connstr).await;
    setup
        .batch_execute("create table notes (client int primary key, body text)")
        .await
        .unwrap();
    let mut clients = Vec::new();
    for i in 0..20i32 {
        let c = client::connect(&connstr).await;
        c.execute("insert into notes values ($1, 'first')", &[&i])
            .await
            .unwrap();
        clients.push(c);
    }
    // Each writes again, and the canary flips while they do.
    let writes = clients.iter().enumerate().map(|(i, c)| async move {
        for round in 0..20 {
            c.execute(
                "update notes set body = $2 where client = $1",
                &[&(i as i32), &format!("round {round}")],
            )
            .await
            .expect("no client error during the move");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let flip = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tokio::task::block_in_place(|| set_canary(&sy, &mut doc, 100));
    };
    tokio::join!(futures_util::future::join_all(writes), flip);
    for (i, c) in clients.iter().enumerate() {
        let body: String = c
            .query_one("select body from notes where client = $1", &[&(i as i32)])
            .await
            .unwrap()
            .get(0);
        assert_eq!(body, "round 19", "client {i} reads its own last write");
        assert_eq!(
            port_of(c).await,
            dbs.green.port() as i32,
            "client {i} moved"
        );
    }
}
