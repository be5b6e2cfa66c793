//! Session lifecycle: what happens when one end goes away. A client that leaves takes its
//! upstream backend (and its running query) with it; an upstream that goes away is reported
//! to its clients as PostgreSQL would, and switchyard goes on serving everyone else.

use std::time::{Duration, Instant};

use switchyard_tests::raw::{query, RawClient};
use switchyard_tests::{client, Switchyard, TwoDbs};

fn login(sy: &Switchyard) -> (RawClient, i32) {
    let mut raw = RawClient::connect(sy.port());
    raw.startup(&[
        ("user", "trustuser"),
        ("database", "app"),
        ("application_name", "lifecycle"),
    ]);
    let msgs = raw.read_until_ready();
    let pid = msgs
        .iter()
        .find(|(t, _)| *t == b'K')
        .map(|(_, b)| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .expect("BackendKeyData");
    (raw, pid)
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gave up waiting for {what}");
}

#[test]
fn a_client_that_disconnects_mid_query_has_its_query_cancelled_and_backend_closed() {
    let dbs = TwoDbs::start();
    let sy = Switchyard::start(&dbs.config().to_string());
    let (mut raw, pid) = login(&sy);
    raw.send(&query("select pg_sleep(600)"));
    let active =
        format!("select count(*) from pg_stat_activity where pid = {pid} and state = 'active'");
    wait_for("the sleep to start", || dbs.blue.psql(&active) == "1");
    drop(raw);
    let exists = format!("select count(*) from pg_stat_activity where pid = {pid}");
    wait_for("the backend to go away", || dbs.blue.psql(&exists) == "0");
}

#[test]
fn a_terminated_backend_reaches_its_client_as_57p01_and_others_keep_working() {
    let dbs = TwoDbs::start();
    let sy = Switchyard::start(&dbs.config().to_string());
    let (mut victim, pid) = login(&sy);
    let (mut bystander, _) = login(&sy);
    dbs.blue
        .psql(&format!("select pg_terminate_backend({pid})"));
    let e = victim.expect_error();
    assert_eq!(
        (e.severity.as_str(), e.code.as_str()),
        ("FATAL", "57P01"),
        "{e:?}"
    );
    assert!(victim.is_closed());
    bystander.send(&query("select 1"));
    let reply = bystander.read_until_ready();
    assert!(reply.iter().any(|(t, _)| *t == b'D'), "{reply:?}");
}

#[test]
fn a_primary_that_dies_gets_08006_to_its_clients_and_service_resumes_when_it_is_back() {
    let mut dbs = TwoDbs::start();
    let sy = Switchyard::start(&dbs.config().to_string());
    let (mut raw, _) = login(&sy);
    dbs.blue.kill();
    raw.send(&query("select 1"));
    let e = raw.expect_error();
    assert_eq!(
        (e.severity.as_str(), e.code.as_str()),
        ("FATAL", "08006"),
        "{e:?}"
    );
    assert!(e.message.contains("upstream blue"), "{e:?}");
    // New clients get a clear error while the primary is down...
    let err = client::psql(&sy.connstr("app", "app-secret", "app"), "select 1").unwrap_err();
    assert!(err.contains("could not connect to upstream blue"), "{err}");
    // ...and are served again once it is back, by the same switchyard process.
    dbs.blue.start_again();
    let out = client::psql(&sy.connstr("app", "app-secret", "app"), "select 'back'").unwrap();
    assert_eq!(out, "back");
}
