//! Statement latencies, as an operator reads them: per upstream, role (primary answering the
//! client, secondary replaying the mirror) and kind, in `/status`, `/history` and as the
//! Prometheus histogram `switchyard_statement_duration_seconds`.

use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::{client, http, Switchyard, TwoDbs};

/// The `/status` latency entry for one key, once its count reaches `at_least`.
fn wait_for_key(sy: &Switchyard, upstream: &str, role: &str, kind: &str, at_least: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = http::get(sy.admin_port(), "/status").json();
        let found = status["latency"].as_array().and_then(|keys| {
            keys.iter()
                .find(|k| k["upstream"] == upstream && k["role"] == role && k["kind"] == kind)
                .filter(|k| k["count"].as_u64() >= Some(at_least))
                .cloned()
        });
        if let Some(key) = found {
            return key;
        }
        assert!(
            Instant::now() < deadline,
            "no {upstream}/{role}/{kind} latency with {at_least}+ statements: {}",
            status["latency"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bucket_line(metrics: &str, labels: &str, le: &str) -> Option<u64> {
    let key = format!("switchyard_statement_duration_seconds_bucket{{{labels},le=\"{le}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|n| n.parse().ok())
}

/// With the mirror on, blue's answers are timed as primary by statement kind, and green's
/// replays of the same writes as secondary; the Prometheus histogram is cumulative and
/// its `+Inf` bucket, `_count` and `switchyard_statements_total` agree.
#[tokio::test(flavor = "multi_thread")]
async fn writes_are_timed_on_the_primary_and_on_the_secondary_that_replays_them() {
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    let sy = Switchyard::start(&doc.to_string());
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    c.batch_execute("create table timed (id int primary key)")
        .await
        .expect("create");
    for i in 0..20 {
        c.batch_execute(&format!("insert into timed values ({i})"))
            .await
            .expect("insert");
        c.batch_execute("select count(*) from timed")
            .await
            .expect("select");
    }
    let primary_writes = wait_for_key(&sy, "blue", "primary", "write", 21);
    wait_for_key(&sy, "blue", "primary", "read", 20);
    let replayed = wait_for_key(&sy, "green", "secondary", "write", 21);
    for key in [&primary_writes, &replayed] {
        let (p50, p99, max) = (
            key["p50_us"].as_u64().unwrap_or(0),
            key["p99_us"].as_u64().unwrap_or(0),
            key["max_us"].as_u64().unwrap_or(0),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{key}");
        assert!(key["recent"]["per_second"].as_f64() > Some(0.0), "{key}");
    }

    let metrics = http::get(sy.admin_port(), "/metrics").body;
    assert!(
        metrics.contains("# TYPE switchyard_statement_duration_seconds histogram"),
        "{metrics}"
    );
    let labels = r#"upstream="green",role="secondary",kind="write""#;
    let buckets: Vec<u64> = ["0.00005", "0.0005", "0.005", "0.05", "1", "+Inf"]
        .iter()
        .map(|le| bucket_line(&metrics, labels, le).unwrap_or_else(|| panic!("no le={le}")))
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let count = buckets[buckets.len() - 1];
    assert!(count >= 21, "{metrics}");
    assert!(
        metrics.contains(&format!(
            "switchyard_statement_duration_seconds_count{{{labels}}} {count}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("switchyard_statements_total{{{labels}}} {count}")),
        "{metrics}"
    );

    let history = http::get(sy.admin_port(), "/history").json();
    assert_eq!(history["slot_seconds"], 10, "{history}");
    let series = history["series"].as_array().expect("series");
    let green = series
        .iter()
        .find(|s| s["upstream"] == "green" && s["role"] == "secondary")
        .unwrap_or_else(|| panic!("no green secondary series: {history}"));
    let replayed_in_window: u64 = green["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["count"].as_u64())
        .sum();
    assert!(replayed_in_window >= 21, "{history}");
}

/// Without the mirror a session has no statement tracker: its requests are still timed,
/// on its primary, as kind `other`.
#[test]
fn sessions_without_the_mirror_are_timed_as_other() {
    let dbs = TwoDbs::start();
    let sy = Switchyard::start(&dbs.config().to_string());
    for _ in 0..3 {
        client::psql(&sy.connstr("app", "app-secret", "app"), "select 1").expect("a query");
    }
    let key = wait_for_key(&sy, "blue", "primary", "other", 3);
    assert!(key["p50_us"].as_u64() > Some(0), "{key}");
    let status = http::get(sy.admin_port(), "/status").json();
    assert!(
        status["latency"]
            .as_array()
            .is_some_and(|keys| keys.iter().all(|k| k["upstream"] == "blue")),
        "nothing is mirrored to green: {}",
        status["latency"]
    );
}
