//! The guard: when the upstream that traffic was moved to starts failing, routing goes
//! back to the last known-good primary on its own. The clients' own errors do not count.

use std::time::{Duration, Instant};

use switchyard_tests::{client, http, Switchyard, TwoDbs};

async fn port_of(c: &tokio_postgres::Client) -> i32 {
    c.query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0)
}

/// A 50% canary on green with the guard on: a burst of syntax errors on green (the
/// client's fault) trips nothing; stopping green (its sessions lose their connection, new
/// ones cannot connect) trips it: the canary goes to 0% in memory and in the file, the
/// reason is in `/status`, the metric counts it, and every new session is served by blue.
#[tokio::test(flavor = "multi_thread")]
async fn the_guard_turns_the_canary_off_when_the_canary_upstream_fails() {
    let mut dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    doc["routing"]["canary_percent"] = toml_edit::value(50);
    doc["guard"]["enabled"] = toml_edit::value(true);
    doc["guard"]["max_error_rate"] = toml_edit::value(0.02);
    doc["guard"]["min_statements"] = toml_edit::value(20);
    doc["guard"]["window_s"] = toml_edit::value(120);
    let sy = Switchyard::start(&doc.to_string());
    let connstr = sy.connstr("app", "app-secret", "app");
    let (blue, green) = (dbs.blue.port() as i32, dbs.green.port() as i32);

    let mut on_green = Vec::new();
    for _ in 0..24 {
        let c = client::connect(&connstr).await;
        if port_of(&c).await == green {
            on_green.push(c);
        }
    }
    assert!(
        on_green.len() >= 3,
        "about half the sessions are on the canary"
    );
    for c in &on_green {
        for _ in 0..10 {
            c.simple_query("select 1").await.unwrap();
            assert!(c.simple_query("selec 1").await.is_err());
        }
    }
    let s = http::get(sy.admin_port(), "/status").json();
    assert_eq!(
        s["guard"]["trips"], 0,
        "syntax errors are the client's: {s}"
    );
    assert_eq!(s["guard"]["windows"]["green"]["server_failures"], 0, "{s}");
    assert!(
        s["guard"]["windows"]["green"]["statements"]
            .as_u64()
            .unwrap()
            >= 60,
        "{s}"
    );

    dbs.green.stop();
    for c in &on_green {
        // Each loses its connection, unless the guard has already tripped and the session,
        // idle, moved to blue before it noticed green go: then it carries on there.
        if let Ok(rows) = c.query_one("select inet_server_port()", &[]).await {
            let port: i32 = rows.get(0);
            assert_eq!(
                port, blue,
                "a session still working after green stopped is on blue"
            );
        }
    }
    // New sessions: those routed to green fail until the guard acts.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = client::try_connect(&connstr).await;
        let s = http::get(sy.admin_port(), "/status").json();
        if s["guard"]["last_trip"]["applied"] == true {
            assert_eq!(s["routing"]["canary_percent"], 0, "{s}");
            assert_eq!(s["guard"]["last_trip"]["upstream"], "green", "{s}");
            assert_eq!(
                s["guard"]["last_trip"]["action"], "canary_percent = 0",
                "{s}"
            );
            assert!(
                s["guard"]["last_trip"]["error_rate"].as_f64().unwrap() > 0.02,
                "{s}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the guard never tripped: {s}");
    }
    for _ in 0..20 {
        let c = client::connect(&connstr).await;
        assert_eq!(
            port_of(&c).await,
            blue,
            "every new session is served by blue"
        );
    }
    // Per-upstream health in /status and /metrics says which one is down.
    let s = http::get(sy.admin_port(), "/status").json();
    assert_eq!(s["upstreams"]["green"]["health"]["ok"], false, "{s}");
    assert!(
        s["upstreams"]["green"]["health"]["failures"]
            .as_u64()
            .unwrap()
            > 0,
        "{s}"
    );
    assert!(
        s["upstreams"]["green"]["health"]["last_error"].is_string(),
        "{s}"
    );
    assert_eq!(s["upstreams"]["blue"]["health"]["ok"], true, "{s}");
    assert_eq!(s["upstreams"]["blue"]["role"], "primary", "{s}");
    let file = std::fs::read_to_string(sy.config_path()).unwrap();
    let written: toml_edit::DocumentMut = file.parse().unwrap();
    assert_eq!(
        written["routing"]["canary_percent"].as_integer(),
        Some(0),
        "{file}"
    );
    let metrics = http::get(sy.admin_port(), "/metrics").body;
    assert!(
        metrics.contains("switchyard_guard_trips_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_upstream_up{upstream=\"green\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_upstream_up{upstream=\"blue\"} 1"),
        "{metrics}"
    );
    assert!(sy.logs().contains("guard: the upstream fails too often"));
}

/// After a cutover to green, green fails (it is stopped): the guard sends routing back to
/// blue, the last known-good primary, and new sessions are served by blue again.
#[tokio::test(flavor = "multi_thread")]
async fn the_guard_flips_back_to_the_last_good_primary_after_a_cutover() {
    let mut dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    doc["guard"]["enabled"] = toml_edit::value(true);
    doc["guard"]["min_statements"] = toml_edit::value(20);
    let sy = Switchyard::start(&doc.to_string());
    let connstr = sy.connstr("app", "app-secret", "app");
    let r = http::request(
        sy.admin_port(),
        "POST",
        "/routing",
        &[],
        r#"{"primary": "green"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c = client::connect(&connstr).await;
    assert_eq!(port_of(&c).await, dbs.green.port() as i32);
    let s = http::get(sy.admin_port(), "/status").json();
    assert_eq!(s["guard"]["last_known_good_primary"], "blue", "{s}");

    dbs.green.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = client::try_connect(&connstr).await;
        let s = http::get(sy.admin_port(), "/status").json();
        if s["guard"]["last_trip"]["applied"] == true {
            assert_eq!(s["routing"]["primary"], "blue", "{s}");
            assert_eq!(s["guard"]["last_trip"]["upstream"], "green", "{s}");
            assert!(
                s["guard"]["last_known_good_primary"].is_null(),
                "the failed upstream is not a known-good one: {s}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the guard never tripped: {s}");
    }
    let c = client::connect(&connstr).await;
    assert_eq!(
        port_of(&c).await,
        dbs.blue.port() as i32,
        "new sessions are served by blue"
    );
}
