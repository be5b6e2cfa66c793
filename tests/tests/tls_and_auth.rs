//! TLS on both sides and client authentication: what an operator configures in
//! `[listen]`, `[[users]]` and `[upstreams.*]` works with real clients and real servers.

use switchyard_tests::{client, PgOptions, Switchyard, TestCa, TwoDbs};

#[test]
fn client_with_sslmode_verify_full_against_the_test_ca_is_served_over_tls() {
    let dbs = TwoDbs::start();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(ca_dir.path());
    let tls = ca.server_tls();
    let mut doc = dbs.config();
    doc["listen"]["tls"] = toml_edit::value("require");
    doc["listen"]["tls_cert"] = toml_edit::value(tls.cert.display().to_string());
    doc["listen"]["tls_key"] = toml_edit::value(tls.key.display().to_string());
    let sy = Switchyard::start(&doc.to_string());
    let connstr = format!(
        "host=localhost port={} user=app password=app-secret dbname=app sslmode=verify-full sslrootcert={}",
        sy.port(),
        ca.ca_cert_path().display()
    );
    let out = client::psql(&connstr, "\\conninfo\nselect 'over tls';").expect("psql verify-full");
    assert!(out.contains("SSL connection"), "{out}");
    assert!(out.contains("over tls"), "{out}");

    // A client that trusts another CA refuses switchyard's certificate.
    let other_dir = tempfile::tempdir().unwrap();
    let other = TestCa::new(other_dir.path());
    let bad = format!(
        "host=localhost port={} user=app password=app-secret dbname=app sslmode=verify-full sslrootcert={}",
        sy.port(),
        other.ca_cert_path().display()
    );
    let err = client::psql(&bad, "select 1").expect_err("wrong CA refused by the client");
    // Both test CAs share a subject name, so OpenSSL reports the failed signature check
    // ("EVP lib") rather than a missing issuer; either way the handshake is refused.
    assert!(
        err.contains("certificate verify failed") || err.contains("SSL error"),
        "{err}"
    );
}

/// A cluster that serves TLS with the test CA's certificate and refuses `app` without it.
fn tls_only(ca: &TestCa) -> PgOptions {
    PgOptions {
        ssl: Some(ca.server_tls()),
        hba: vec![
            "hostnossl all app 127.0.0.1/32 reject".to_owned(),
            "hostssl all all 127.0.0.1/32 scram-sha-256".to_owned(),
        ],
        ..PgOptions::default()
    }
}

#[test]
fn upstream_tls_verify_full_connects_and_a_wrong_ca_is_refused() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(ca_dir.path());
    let dbs = TwoDbs::start_with(tls_only(&ca), tls_only(&ca));
    let mut doc = dbs.config();
    for up in ["blue", "green"] {
        doc["upstreams"][up]["host"] = toml_edit::value("localhost");
        doc["upstreams"][up]["tls"] = toml_edit::value("verify-full");
        doc["upstreams"][up]["ca_file"] = toml_edit::value(ca.ca_cert_path().display().to_string());
    }
    let sy = Switchyard::start(&doc.to_string());
    let out = client::psql(
        &sy.connstr("app", "app-secret", "app"),
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    )
    .expect("served over a verified TLS upstream");
    assert_eq!(out, "t", "the upstream connection is encrypted");
    drop(sy);

    let other_dir = tempfile::tempdir().unwrap();
    let other = TestCa::new(other_dir.path());
    for up in ["blue", "green"] {
        doc["upstreams"][up]["ca_file"] =
            toml_edit::value(other.ca_cert_path().display().to_string());
    }
    let sy = Switchyard::start(&doc.to_string());
    let err = client::psql(&sy.connstr("app", "app-secret", "app"), "select 1")
        .expect_err("an upstream whose certificate is not from ca_file is refused");
    assert!(
        err.contains("TLS") && err.contains("upstream blue"),
        "{err}"
    );

    // require: encrypted without verification, like libpq's sslmode=require.
    for up in ["blue", "green"] {
        doc["upstreams"][up]["tls"] = toml_edit::value("require");
    }
    drop(sy);
    let sy = Switchyard::start(&doc.to_string());
    let out = client::psql(
        &sy.connstr("app", "app-secret", "app"),
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    )
    .expect("served over an unverified TLS upstream");
    assert_eq!(out, "t");
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_md5_and_trust_users_each_log_in() {
    let dbs = TwoDbs::start();
    let sy = Switchyard::start(&dbs.config().to_string());
    for (user, password) in [
        ("app", "app-secret"),
        ("md5user", "md5-secret"),
        ("trustuser", ""),
    ] {
        let c = client::connect(&sy.connstr(user, password, "app")).await;
        let who: String = c
            .query_one("select current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(who, user);
    }
    // psql too (libpq's SCRAM and md5 implementations, not only tokio-postgres').
    for (user, password) in [("app", "app-secret"), ("md5user", "md5-secret")] {
        let out = client::psql(&sy.connstr(user, password, "app"), "select current_user")
            .expect("psql logs in");
        assert_eq!(out, user);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scram_verifier_in_the_config_authenticates_clients() {
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    // The verifier PostgreSQL itself stored for app's password: switchyard verifies the
    // client with it, and the upstream password comes from the upstream's own setting.
    let verifier = dbs
        .blue
        .psql("select rolpassword from pg_authid where rolname = 'app'");
    assert!(verifier.starts_with("SCRAM-SHA-256$"), "{verifier}");
    let users = doc["users"].as_array_of_tables_mut().unwrap();
    for u in users.iter_mut() {
        if u["name"].as_str() == Some("app") {
            u.remove("password");
            u["scram"] = toml_edit::value(verifier.clone());
        }
    }
    for up in ["blue", "green"] {
        doc["upstreams"][up]["password"] = toml_edit::value("app-secret");
    }
    let sy = Switchyard::start(&doc.to_string());
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    assert_eq!(
        c.query_one("select 5", &[]).await.unwrap().get::<_, i32>(0),
        5
    );
    let wrong = client::try_connect(&sy.connstr("app", "nope", "app"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code().map(|c| c.code()), Some("28P01"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_asks_for_a_cleartext_password_gets_one() {
    // hba `password`: the server asks for the password in clear (AuthenticationCleartextPassword).
    let cleartext = || PgOptions {
        hba: vec!["host all app 127.0.0.1/32 password".to_owned()],
        ..PgOptions::default()
    };
    let dbs = TwoDbs::start_with(cleartext(), cleartext());
    let sy = Switchyard::start(&dbs.config().to_string());
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    let who: String = c
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "app");
    // And with a wrong upstream password the upstream's own refusal reaches the client.
    let mut doc = dbs.config();
    doc["upstreams"]["blue"]["password"] = toml_edit::value("not-the-upstream-password");
    let sy = Switchyard::start(&doc.to_string());
    let err = client::try_connect(&sy.connstr("app", "app-secret", "app"))
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{err}");
}
