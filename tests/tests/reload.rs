//! Configuration reload: SIGHUP, a change of the file on disk and `POST /reload` each load
//! the file again; a valid one takes effect for new sessions without breaking open ones, an
//! invalid one is rejected whole and the running configuration stays.

use std::time::{Duration, Instant};

use switchyard_tests::{client, http, Switchyard, TwoDbs};

/// The PostgreSQL port that answers a new session through switchyard: which upstream it is.
async fn served_by(sy: &Switchyard) -> i32 {
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0)
}

fn status(sy: &Switchyard) -> serde_json::Value {
    http::get(sy.admin_port(), "/status").json()
}

fn wait_status(
    sy: &Switchyard,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(sy);
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_file_moves_new_sessions_to_the_canary_and_sighup_reloads_too() {
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    let sy = Switchyard::start(&doc.to_string());
    let blue = dbs.blue.port() as i32;
    let green = dbs.green.port() as i32;
    assert_eq!(served_by(&sy).await, blue);
    let open = client::connect(&sy.connstr("app", "app-secret", "app")).await;

    doc["routing"]["canary_percent"] = toml_edit::value(100);
    sy.write_config(&doc.to_string());
    let s = wait_status(&sy, "the file reload", |s| {
        s["routing"]["canary_percent"] == 100
    });
    assert_eq!(s["reloads"]["last"]["source"], "file", "{s}");
    assert_eq!(s["routing"]["generation"], 1, "{s}");
    assert_eq!(
        served_by(&sy).await,
        green,
        "a new session goes to the canary"
    );
    // The open session was not broken and still talks to its primary.
    let port: i32 = open
        .query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(port, blue);

    sy.signal(nix::sys::signal::Signal::SIGHUP);
    let s = wait_status(&sy, "the SIGHUP reload", |s| {
        s["reloads"]["last"]["source"] == "signal"
    });
    assert_eq!(s["reloads"]["last"]["ok"], true, "{s}");
    assert_eq!(s["reloads"]["ok"], 2, "{s}");
    let metrics = http::get(sy.admin_port(), "/metrics").body;
    assert!(
        metrics.contains("switchyard_reloads_total{result=\"ok\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_config_written_to_disk_is_rejected_and_the_old_routing_stays() {
    let dbs = TwoDbs::start();
    let doc = dbs.config();
    let sy = Switchyard::start(&doc.to_string());
    let broken = doc
        .to_string()
        .replace("[routing]", "[routing]\ncanary_pct = 50");
    sy.write_config(&broken);
    let s = wait_status(&sy, "the rejected reload", |s| s["reloads"]["failed"] == 1);
    let err = s["reloads"]["last"]["error"].as_str().unwrap_or("");
    assert!(err.contains("canary_pct"), "the error names the key: {s}");
    assert_eq!(s["reloads"]["last"]["ok"], false);
    assert_eq!(s["routing"]["canary_percent"], 0);
    assert_eq!(served_by(&sy).await, dbs.blue.port() as i32);
    assert!(sy.logs().contains("reload rejected"), "logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn post_reload_needs_the_admin_token_and_reports_settings_that_need_a_restart() {
    std::env::set_var("SWITCHYARD_TEST_ADMIN_TOKEN", "s3cret-token");
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["admin"]["token_env"] = toml_edit::value("SWITCHYARD_TEST_ADMIN_TOKEN");
    let sy = Switchyard::start(&doc.to_string());
    let port = sy.admin_port();

    let missing = http::request(port, "POST", "/reload", &[], "");
    assert_eq!(missing.status, 401, "{missing:?}");
    assert!(missing.json()["error"]
        .as_str()
        .unwrap_or("")
        .contains("Bearer"));
    let wrong = http::request(
        port,
        "POST",
        "/reload",
        &[("Authorization", "Bearer nope")],
        "",
    );
    assert_eq!(wrong.status, 403, "{wrong:?}");
    assert_eq!(
        status(&sy)["reloads"]["ok"],
        0,
        "refused requests change nothing"
    );

    // A new listen address cannot take effect while running: reported, old one kept.
    let old_listen = doc["listen"]["address"].as_str().unwrap().to_owned();
    doc["listen"]["address"] =
        toml_edit::value(format!("127.0.0.1:{}", switchyard_tests::free_port()));
    sy.write_config(&doc.to_string());
    let ok = http::request(
        port,
        "POST",
        "/reload",
        &[("Authorization", "Bearer s3cret-token")],
        "",
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    let s = wait_status(&sy, "the reload", |s| {
        s["reloads"]["ok"].as_u64() >= Some(1)
    });
    let restart = s["reloads"]["last"]["restart_required"].to_string();
    assert!(restart.contains("listen.address"), "{s}");
    assert!(old_listen.ends_with(&sy.port().to_string()));
    // Still served on the old address.
    let out = client::psql(&sy.connstr("app", "app-secret", "app"), "select 1").unwrap();
    assert_eq!(out, "1");
}
