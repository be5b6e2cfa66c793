//! Bad input gets a precise error and loses nothing: every malformed or refused connection
//! is answered with an ErrorResponse carrying the SQLSTATE PostgreSQL would use, the
//! connection is closed, and switchyard goes on serving the next client.

use std::io::Write;
use std::net::Shutdown;

use switchyard_tests::raw::{message, query, startup_message, ErrorInfo, RawClient};
use switchyard_tests::{client, Switchyard, TwoDbs};

fn start_with(edit: impl FnOnce(&mut toml_edit::DocumentMut)) -> (TwoDbs, Switchyard) {
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    edit(&mut doc);
    let sy = Switchyard::start(&doc.to_string());
    (dbs, sy)
}

/// After a bad client, a good one still gets served.
fn still_serves(sy: &Switchyard) {
    let out = client::psql(&sy.connstr("app", "app-secret", "app"), "select 40 + 2")
        .expect("a new client is served after the bad one");
    assert_eq!(out, "42");
}

fn assert_error(e: &ErrorInfo, code: &str, message_part: &str) {
    assert_eq!(e.code, code, "{e:?}");
    assert!(e.message.contains(message_part), "{e:?}");
    assert_eq!(e.severity, "FATAL", "{e:?}");
}

/// Logs in as `trustuser` with the raw client and returns it ready for queries.
fn logged_in(sy: &Switchyard) -> RawClient {
    let mut raw = RawClient::connect(sy.port());
    raw.startup(&[("user", "trustuser"), ("database", "app")]);
    let msgs = raw.read_until_ready();
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'), "{msgs:?}");
    raw
}

#[test]
fn garbage_before_startup_gets_08p01_and_the_next_client_is_served() {
    let (_dbs, sy) = start_with(|_| {});
    let mut raw = RawClient::connect(sy.port());
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_error(
        &raw.expect_error(),
        "08P01",
        "invalid length of startup packet",
    );
    assert!(raw.is_closed());
    still_serves(&sy);
}

#[test]
fn startup_length_below_eight_gets_08p01() {
    let (_dbs, sy) = start_with(|_| {});
    let mut raw = RawClient::connect(sy.port());
    raw.send(&[0, 0, 0, 3, 1, 2, 3]);
    assert_error(&raw.expect_error(), "08P01", "invalid length");
    assert!(raw.is_closed());
    still_serves(&sy);
}

#[test]
fn truncated_startup_packet_gets_08p01() {
    let (_dbs, sy) = start_with(|_| {});
    let mut raw = RawClient::connect(sy.port());
    let full = startup_message(3 << 16, &[("user", "app"), ("database", "app")]);
    raw.send(&full[..full.len() - 6]);
    raw.stream.shutdown(Shutdown::Write).unwrap();
    assert_error(&raw.expect_error(), "08P01", "incomplete startup packet");
    still_serves(&sy);
}

#[test]
fn unsupported_protocol_version_gets_0a000() {
    let (_dbs, sy) = start_with(|_| {});
    let mut raw = RawClient::connect(sy.port());
    raw.send(&startup_message(2 << 16, &[("user", "app")]));
    assert_error(
        &raw.expect_error(),
        "0A000",
        "unsupported frontend protocol 2.0",
    );
    assert!(raw.is_closed());
    still_serves(&sy);
}

#[test]
fn message_length_below_four_after_login_gets_08p01() {
    let (_dbs, sy) = start_with(|_| {});
    let mut raw = logged_in(&sy);
    raw.send(&[b'Q', 0, 0, 0, 2]);
    assert_error(&raw.expect_error(), "08P01", "invalid message length");
    assert!(raw.is_closed());
    still_serves(&sy);
}

#[test]
fn message_over_the_size_cap_gets_08p01() {
    let (_dbs, sy) = start_with(|doc| {
        doc["limits"]["max_message_bytes"] = toml_edit::value(65536);
    });
    let mut raw = logged_in(&sy);
    // A Query header announcing 1 MiB: refused before the body is read or buffered.
    raw.send(&[b'Q', 0, 0x10, 0, 0]);
    assert_error(
        &raw.expect_error(),
        "08P01",
        "over the limit of 65536 bytes",
    );
    assert!(raw.is_closed());
    still_serves(&sy);
}

#[test]
fn truncated_message_then_eof_gets_08p01() {
    let (_dbs, sy) = start_with(|_| {});
    let mut raw = logged_in(&sy);
    let q = query("select 1");
    raw.send(&q[..q.len() - 3]);
    raw.stream.shutdown(Shutdown::Write).unwrap();
    assert_error(&raw.expect_error(), "08P01", "incomplete message");
    still_serves(&sy);
}

#[test]
fn a_malformed_message_body_gets_postgresqls_own_error() {
    let (_dbs, sy) = start_with(|_| {});
    let mut raw = logged_in(&sy);
    // A Query whose string is not NUL-terminated within its declared length: forwarded,
    // and PostgreSQL's verdict reaches the client.
    raw.send(&message(b'Q', b"select 1"));
    let e = raw.expect_error();
    assert_eq!(e.code, "08P01", "{e:?}");
    still_serves(&sy);
}

#[test]
fn plain_text_client_is_refused_when_tls_is_required() {
    let dbs = TwoDbs::start();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = switchyard_tests::TestCa::new(ca_dir.path());
    let tls = ca.server_tls();
    let mut doc = dbs.config();
    doc["listen"]["tls"] = toml_edit::value("require");
    doc["listen"]["tls_cert"] = toml_edit::value(tls.cert.display().to_string());
    doc["listen"]["tls_key"] = toml_edit::value(tls.key.display().to_string());
    let sy = Switchyard::start(&doc.to_string());
    let mut raw = RawClient::connect(sy.port());
    raw.startup(&[("user", "app"), ("database", "app")]);
    assert_error(&raw.expect_error(), "28000", "requires TLS");
    assert!(raw.is_closed());
    let err = client::psql(
        &format!("{} sslmode=disable", sy.connstr("app", "app-secret", "app")),
        "select 1",
    )
    .expect_err("psql without TLS is refused");
    assert!(err.contains("requires TLS"), "{err}");
    let ok = client::psql(
        &format!("{} sslmode=require", sy.connstr("app", "app-secret", "app")),
        "select 1",
    )
    .expect("psql with TLS is served");
    assert_eq!(ok, "1");
}

#[test]
fn bytes_after_ssl_request_before_the_handshake_are_refused() {
    let dbs = TwoDbs::start();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = switchyard_tests::TestCa::new(ca_dir.path());
    let tls = ca.server_tls();
    let mut doc = dbs.config();
    doc["listen"]["tls"] = toml_edit::value("allow");
    doc["listen"]["tls_cert"] = toml_edit::value(tls.cert.display().to_string());
    doc["listen"]["tls_key"] = toml_edit::value(tls.key.display().to_string());
    let sy = Switchyard::start(&doc.to_string());
    let mut raw = RawClient::connect(sy.port());
    let mut bytes = vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    bytes.extend(startup_message(3 << 16, &[("user", "app")]));
    raw.stream.write_all(&bytes).unwrap();
    assert_error(
        &raw.expect_error(),
        "08P01",
        "unencrypted data after SSL request",
    );
    still_serves(&sy);
}

#[test]
fn gssenc_request_is_declined_and_startup_continues() {
    let (_dbs, sy) = start_with(|_| {});
    let mut raw = RawClient::connect(sy.port());
    raw.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
    assert_eq!(raw.read_byte(), Some(b'N'));
    raw.startup(&[("user", "trustuser"), ("database", "app")]);
    let msgs = raw.read_until_ready();
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_unknown_user_get_28p01_and_no_secret_is_logged() {
    let (_dbs, sy) = start_with(|_| {});
    let wrong = client::try_connect(&sy.connstr("app", "not-the-password", "app"))
        .await
        .expect_err("wrong password refused");
    assert_eq!(wrong.code().map(|c| c.code()), Some("28P01"), "{wrong}");
    let unknown = client::try_connect(&sy.connstr("nobody", "whatever-pw", "app"))
        .await
        .expect_err("unknown user refused");
    assert_eq!(unknown.code().map(|c| c.code()), Some("28P01"), "{unknown}");
    let md5_wrong = client::try_connect(&sy.connstr("md5user", "bad-md5-pw", "app"))
        .await
        .expect_err("wrong md5 password refused");
    assert_eq!(
        md5_wrong.code().map(|c| c.code()),
        Some("28P01"),
        "{md5_wrong}"
    );
    still_serves(&sy);
    let logs = sy.logs();
    assert!(
        logs.contains("authentication failed"),
        "failures are logged:\n{logs}"
    );
    for secret in [
        "app-secret",
        "not-the-password",
        "whatever-pw",
        "bad-md5-pw",
        "md5-secret",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} appears in the logs:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_clients_get_53300_and_a_freed_slot_is_reused() {
    let (_dbs, sy) = start_with(|doc| {
        doc["limits"]["max_clients"] = toml_edit::value(2);
    });
    let connstr = sy.connstr("app", "app-secret", "app");
    let a = client::connect(&connstr).await;
    let b = client::connect(&connstr).await;
    let refused = client::try_connect(&connstr)
        .await
        .expect_err("a third client is refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("53300"), "{refused}");
    drop(b);
    // The slot is released when the session ends, which happens just after the drop.
    let mut third = None;
    for _ in 0..50 {
        if let Ok(c) = client::try_connect(&connstr).await {
            third = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let third = third.expect("a freed slot is reused");
    assert_eq!(
        third
            .query_one("select 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    assert_eq!(
        a.query_one("select 2", &[]).await.unwrap().get::<_, i32>(0),
        2
    );
}
