//! The harness itself works: clusters start, answer real clients, can be crashed, frozen and
//! restarted, clean up after themselves, and die with a test process that is killed; the
//! switchyard launcher reports a process that refuses to start and drives one that listens.
//!
//! These tests do not need the switchyard binary: a stand-in plays its part.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use switchyard_tests::child::{is_alive, process_tree, wait_gone};
use switchyard_tests::{client, free_port, PgCluster, PgOptions, Switchyard, TestCa, TwoDbs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Set in the environment of this test binary when it is re-run as a helper process.
const HELPER_ENV: &str = "SWITCHYARD_TESTS_HELPER";

#[tokio::test]
async fn a_cluster_answers_real_clients_as_app_md5user_trustuser_and_postgres() {
    let pg = PgCluster::start("answers");
    pg.create_app();
    pg.create_app(); // idempotent

    let app = client::connect(&pg.connstr("app", "app-secret", "app")).await;
    let one: i32 = app
        .query_one("select 1", &[])
        .await
        .expect("select 1 over tokio-postgres")
        .get(0);
    assert_eq!(one, 1);

    assert_eq!(
        client::psql(&pg.connstr("app", "app-secret", "app"), "select 1"),
        Ok("1".to_string())
    );
    assert_eq!(
        client::psql(&pg.url("app", "app-secret", "app"), "select current_user"),
        Ok("app".to_string())
    );
    assert_eq!(
        client::psql(
            &pg.connstr("md5user", "md5-secret", "app"),
            "select current_user"
        ),
        Ok("md5user".to_string())
    );
    assert_eq!(
        client::psql(&pg.connstr("trustuser", "", "app"), "select current_user"),
        Ok("trustuser".to_string())
    );
    assert_eq!(pg.psql("select current_user"), "postgres");

    // Authentication is real: the stored hashes are what the roles say, wrong passwords fail.
    assert_eq!(
        pg.psql(
            "select rolname, case when rolpassword like 'md5%' then 'md5' \
             else split_part(rolpassword, '$', 1) end from pg_authid \
             where rolname in ('app', 'md5user') order by 1"
        ),
        "app|SCRAM-SHA-256\nmd5user|md5"
    );
    let wrong = client::psql(&pg.connstr("app", "wrong", "app"), "select 1");
    assert!(
        wrong
            .as_ref()
            .is_err_and(|e| e.contains("password authentication failed")),
        "{wrong:?}"
    );
}

#[tokio::test]
async fn a_killed_cluster_restarts_on_the_same_port_with_its_committed_data() {
    let mut pg = PgCluster::start("crash");
    pg.create_app();
    let connstr = pg.connstr("app", "app-secret", "app");
    assert_eq!(
        client::psql(
            &connstr,
            "create table t (x int); insert into t values (1), (2);"
        ),
        Ok(String::new())
    );
    let session = client::connect(&connstr).await;
    let backend: i32 = session
        .query_one("select pg_backend_pid()", &[])
        .await
        .expect("backend pid")
        .get(0);
    let postmaster = pg.postmaster_pid();
    let port = pg.port();

    pg.kill();

    assert!(!is_alive(postmaster), "the postmaster survived kill()");
    assert!(!is_alive(backend as u32), "a backend survived kill()");
    assert!(!pg.is_running());
    assert!(session.query_one("select 1", &[]).await.is_err());
    assert!(client::psql(&connstr, "select 1").is_err());

    pg.start_again();

    assert_eq!(pg.port(), port);
    assert_ne!(pg.postmaster_pid(), postmaster);
    assert_eq!(pg.psql_in("app", "select sum(x) from t"), "3");
    assert!(
        pg.log().contains("not properly shut down"),
        "no crash recovery in the log:\n{}",
        pg.log()
    );
}

#[test]
fn a_stopped_cluster_starts_again_on_the_same_port_with_its_data() {
    let mut pg = PgCluster::start("stop");
    pg.psql("create table kept (x int); insert into kept values (42);");
    let port = pg.port();

    pg.stop();
    assert!(!pg.is_running());
    assert!(pg.try_psql("select 1").is_err());

    pg.start_again();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("select x from kept"), "42");
}

#[tokio::test]
async fn a_paused_cluster_times_out_connection_attempts_until_resumed() {
    let mut pg = PgCluster::start("pause");
    pg.create_app();
    let connstr = pg.connstr("app", "app-secret", "app");

    pg.pause();

    let attempt = tokio::time::timeout(Duration::from_secs(2), client::try_connect(&connstr)).await;
    assert!(
        attempt.is_err(),
        "tokio-postgres connected to a frozen server"
    );
    let started = Instant::now();
    let refused = client::psql(&format!("{connstr} connect_timeout=2"), "select 1");
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("timeout")),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));

    pg.resume();

    let app = client::connect(&connstr).await;
    let one: i32 = app
        .query_one("select 1", &[])
        .await
        .expect("select 1 after resume")
        .get(0);
    assert_eq!(one, 1);
}

#[test]
fn dropping_a_cluster_ends_its_processes_and_removes_its_directory() {
    let pg = PgCluster::start("drop");
    let dir = pg.socket_dir().to_path_buf();
    let processes = process_tree(pg.postmaster_pid());
    assert!(processes.len() > 1, "no postmaster children: {processes:?}");
    assert!(dir.join("data").join("PG_VERSION").exists());

    drop(pg);

    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(
        wait_gone(&processes, Duration::from_secs(5)),
        "processes of a dropped cluster survived: {processes:?}"
    );
}

#[test]
fn dropping_a_paused_cluster_still_ends_its_processes_and_removes_its_directory() {
    let mut pg = PgCluster::start("drop-paused");
    let dir = pg.socket_dir().to_path_buf();
    let processes = process_tree(pg.postmaster_pid());
    pg.pause();

    drop(pg);

    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(wait_gone(&processes, Duration::from_secs(5)));
}

#[test]
fn a_cluster_started_from_a_short_lived_thread_outlives_that_thread() {
    let pg = std::thread::spawn(|| PgCluster::start("thread"))
        .join()
        .expect("start a cluster on a thread");
    // A parent-death signal tied to the exited thread would have fired by now.
    std::thread::sleep(Duration::from_millis(300));
    assert!(is_alive(pg.postmaster_pid()));
    assert_eq!(pg.psql("select 1"), "1");
}

#[test]
fn a_cluster_dies_with_a_test_process_that_is_killed_without_unwinding() {
    let mut helper = Command::new(std::env::current_exe().expect("path of this test binary"))
        .args(["--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .arg("helper_process_that_starts_a_cluster_and_waits")
        .env(HELPER_ENV, "leak")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("re-run this test binary as a helper");
    let stdout = helper.stdout.take().expect("helper stdout is piped");
    let line = BufReader::new(stdout)
        .lines()
        .map(|line| line.expect("read the helper's output"))
        .find_map(|line| {
            // libtest prints "test NAME ... " without a newline before the test's output.
            line.find("postmaster ").map(|at| line[at..].to_string())
        })
        .expect("the helper printed its postmaster");
    let mut words = line.split(' ').skip(1);
    let postmaster: u32 = words.next().and_then(|pid| pid.parse().ok()).expect("pid");
    let dir = PathBuf::from(words.next().expect("cluster dir"));
    assert!(is_alive(postmaster));

    helper.kill().expect("SIGKILL the helper");
    helper.wait().expect("reap the helper");

    let gone = wait_gone(&[postmaster], Duration::from_secs(10));
    // Drop never ran in the killed helper: its directory is ours to remove.
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        gone,
        "postmaster {postmaster} outlived its killed test process"
    );
}

#[test]
#[ignore = "helper: run in a child process by a_cluster_dies_with_a_test_process_that_is_killed_without_unwinding"]
fn helper_process_that_starts_a_cluster_and_waits() {
    if std::env::var(HELPER_ENV).as_deref() != Ok("leak") {
        return;
    }
    let pg = PgCluster::start("leak");
    println!(
        "postmaster {} {}",
        pg.postmaster_pid(),
        pg.socket_dir().display()
    );
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[tokio::test]
async fn a_tls_cluster_serves_a_certificate_that_clients_verify_with_the_test_ca() {
    let certs = tempfile::tempdir().expect("temp dir for certificates");
    let ca = TestCa::new(certs.path());
    let pg = PgCluster::start_with(
        "tls",
        PgOptions {
            ssl: Some(ca.server_tls()),
            hba: vec!["hostnossl all all 127.0.0.1/32 reject".to_string()],
            ..PgOptions::default()
        },
    );
    pg.create_app();
    let verified = format!(
        "host=localhost port={} user=app password=app-secret dbname=app sslmode=verify-full \
         sslrootcert={}",
        pg.port(),
        ca.ca_cert_path().display()
    );
    assert_eq!(
        client::psql(
            &verified,
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
        ),
        Ok("t".to_string())
    );
    let plain = client::psql(
        &format!("{} sslmode=disable", pg.connstr("app", "app-secret", "app")),
        "select 1",
    );
    assert!(
        plain
            .as_ref()
            .is_err_and(|e| e.contains("pg_hba.conf rejects connection")),
        "{plain:?}"
    );

    // The rustls configuration for tests trusts the CA: a raw SSLRequest + handshake.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", pg.port()))
        .await
        .expect("connect");
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .expect("send SSLRequest");
    assert_eq!(tcp.read_u8().await.expect("SSLRequest answer"), b'S');
    let connector = tokio_rustls::TlsConnector::from(Arc::new(ca.rustls_client_config()));
    let server_name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    connector
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake verified with the test CA");
}

#[tokio::test]
async fn two_dbs_start_blue_and_green_and_the_config_points_at_both() {
    let dbs = TwoDbs::start();
    for pg in [&dbs.blue, &dbs.green] {
        let app = client::connect(&pg.connstr("app", "app-secret", "app")).await;
        let name: String = app
            .query_one("select current_database()", &[])
            .await
            .expect("query as app")
            .get(0);
        assert_eq!(name, "app");
    }
    assert_ne!(dbs.blue.port(), dbs.green.port());

    let mut config = dbs.config();
    assert_eq!(
        config["upstreams"]["blue"]["port"].as_integer(),
        Some(i64::from(dbs.blue.port()))
    );
    assert_eq!(
        config["upstreams"]["green"]["port"].as_integer(),
        Some(i64::from(dbs.green.port()))
    );
    assert_eq!(config["routing"]["primary"].as_str(), Some("blue"));
    let users: Vec<(&str, &str)> = config["users"]
        .as_array_of_tables()
        .expect("[[users]]")
        .iter()
        .map(|user| {
            (
                user["name"].as_str().expect("name"),
                user["auth"].as_str().expect("auth"),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("app", "scram-sha-256"),
            ("md5user", "md5"),
            ("trustuser", "trust")
        ]
    );
    let journal = PathBuf::from(
        config["mirror"]["journal_dir"]
            .as_str()
            .expect("journal_dir"),
    );
    assert!(journal.is_dir());

    // Each config has ports and files of its own; tests tweak it in place.
    let other = dbs.config();
    for (table, key) in [
        ("listen", "address"),
        ("admin", "address"),
        ("mirror", "journal_dir"),
    ] {
        assert_ne!(config[table][key].as_str(), other[table][key].as_str());
    }
    config["routing"]["canary_percent"] = toml_edit::value(10);
    assert!(config.to_string().contains("canary_percent = 10"));
}

/// The stand-in for the switchyard binary: a shell script that re-runs this test binary as
/// the helper `helper_process_that_listens_like_switchyard`, or exits with an error.
fn fake_switchyard(dir: &Path, listens: bool) -> PathBuf {
    let script = dir.join(if listens { "listens" } else { "refuses" });
    let body = if listens {
        format!(
            "#!/bin/sh\n{HELPER_ENV}=\"listen:$3\" exec '{}' --exact --ignored --nocapture \
             helper_process_that_listens_like_switchyard\n",
            std::env::current_exe()
                .expect("path of this test binary")
                .display()
        )
    } else {
        "#!/bin/sh\necho \"error: refusing config $3\" >&2\nexit 3\n".to_string()
    };
    std::fs::write(&script, body).expect("write the stand-in script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("make the stand-in executable");
    script
}

#[test]
fn switchyard_try_start_reports_the_exit_status_and_log_of_a_process_that_refuses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!("[listen]\naddress = \"127.0.0.1:{}\"\n", free_port());

    let refused = Switchyard::try_start_bin(&fake_switchyard(dir.path(), false), &config);

    let err = refused.err().expect("a process that exits is an Err");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("error: refusing config"), "{err}");
    assert!(err.contains("switchyard.toml"), "{err}");
}

#[test]
fn switchyard_try_start_reports_broken_toml_that_the_process_refuses() {
    let dir = tempfile::tempdir().expect("temp dir");

    let refused = Switchyard::try_start_bin(&fake_switchyard(dir.path(), false), "[listen");

    let err = refused.err().expect("a process that exits is an Err");
    assert!(err.contains("exit status: 3"), "{err}");
}

#[test]
fn switchyard_start_waits_for_both_ports_and_stop_ends_the_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (listen, admin) = (free_port(), free_port());
    let config = format!(
        "[listen]\naddress = \"127.0.0.1:{listen}\"\n[admin]\naddress = \"127.0.0.1:{admin}\"\n"
    );

    let mut proxy = Switchyard::try_start_bin(&fake_switchyard(dir.path(), true), &config)
        .expect("the stand-in listens");

    assert_eq!((proxy.port(), proxy.admin_port()), (listen, admin));
    assert!(std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok());
    assert!(std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok());
    assert!(
        proxy.logs().contains("stand-in listening"),
        "{}",
        proxy.logs()
    );
    assert_eq!(
        std::fs::read_to_string(proxy.config_path()).expect("config file"),
        config
    );
    let pid = proxy.pid();
    proxy.signal(Signal::SIGSTOP);
    proxy.signal(Signal::SIGCONT);

    let status = proxy.stop();

    assert!(!status.success());
    assert!(!is_alive(pid));
}

#[test]
#[ignore = "helper: run in a child process as a stand-in for the switchyard binary"]
fn helper_process_that_listens_like_switchyard() {
    let Some(config_path) = std::env::var(HELPER_ENV)
        .ok()
        .and_then(|value| value.strip_prefix("listen:").map(str::to_string))
    else {
        return;
    };
    let config: toml_edit::DocumentMut = std::fs::read_to_string(&config_path)
        .expect("read the config")
        .parse()
        .expect("parse the config");
    let listeners: Vec<TcpListener> = ["listen", "admin"]
        .into_iter()
        .map(|table| {
            let address: SocketAddr = config[table]["address"]
                .as_str()
                .expect("an address")
                .parse()
                .expect("ip:port");
            TcpListener::bind(address).expect("bind")
        })
        .collect();
    eprintln!("stand-in listening on {listeners:?}");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
