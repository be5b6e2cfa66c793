//! The operator's controls: `POST /routing` (validated, written back to the config file with
//! its comments, reloaded) and `switchyard ctl` over the admin API, with their errors.

use switchyard_tests::{client, http, Switchyard, TwoDbs};

const TOKEN: &str = "an-admin-token";

fn start() -> (TwoDbs, Switchyard) {
    std::env::set_var("SWITCHYARD_TEST_ADMIN_TOKEN", TOKEN);
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["admin"]["token_env"] = toml_edit::value("SWITCHYARD_TEST_ADMIN_TOKEN");
    doc["mirror"]["enabled"] = toml_edit::value(true);
    // A comment the write-back must keep.
    let text = doc
        .to_string()
        .replace("[routing]", "# who answers: keep this comment\n[routing]");
    let sy = Switchyard::start(&text);
    (dbs, sy)
}

fn post_routing(sy: &Switchyard, token: Option<&str>, body: &str) -> http::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a), ("Content-Type", "application/json")])
        .unwrap_or_else(|| vec![("Content-Type", "application/json")]);
    http::request(sy.admin_port(), "POST", "/routing", &headers, body)
}

#[test]
fn post_routing_changes_routing_and_the_file_on_disk_keeping_its_comments() {
    let (_dbs, sy) = start();
    let ok = post_routing(&sy, Some(TOKEN), r#"{"canary_percent": 25}"#);
    assert_eq!(ok.status, 200, "{ok:?}");
    let status = http::get(sy.admin_port(), "/status").json();
    assert_eq!(status["routing"]["canary_percent"], 25, "{status}");
    let on_disk = std::fs::read_to_string(sy.config_path()).unwrap();
    assert!(on_disk.contains("canary_percent = 25"), "{on_disk}");
    assert!(
        on_disk.contains("# who answers: keep this comment"),
        "{on_disk}"
    );
}

#[test]
fn bad_routing_requests_get_a_json_error_and_change_nothing() {
    let (_dbs, sy) = start();
    let before = std::fs::read_to_string(sy.config_path()).unwrap();
    let cases: [(Option<&str>, &str, u16, &str); 6] = [
        (None, r#"{"canary_percent": 5}"#, 401, "Bearer"),
        (
            Some("wrong"),
            r#"{"canary_percent": 5}"#,
            403,
            "wrong admin token",
        ),
        (Some(TOKEN), "not json", 400, "invalid body"),
        (Some(TOKEN), r#"{"canary": 5}"#, 400, "unknown field"),
        (
            Some(TOKEN),
            r#"{"canary_percent": 101}"#,
            400,
            "canary_percent",
        ),
        (Some(TOKEN), r#"{"primary": "purple"}"#, 400, "purple"),
    ];
    for (token, body, status, says) in cases {
        let r = post_routing(&sy, token, body);
        assert_eq!(r.status, status, "{body}: {r:?}");
        let err = r.json()["error"].as_str().unwrap_or("").to_owned();
        assert!(err.contains(says), "{body}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(sy.config_path()).unwrap(),
        before,
        "file untouched"
    );
    let status = http::get(sy.admin_port(), "/status").json();
    assert_eq!(status["reloads"]["ok"], 0, "{status}");
    assert_eq!(status["routing"]["canary_percent"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_reports_status_sets_the_canary_and_cuts_over_and_back() {
    let (dbs, sy) = start();
    let ctl = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token", TOKEN]);
        sy.ctl(&all)
    };
    let out = ctl(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("routing: primary blue, canary 0%"), "{text}");

    let out = ctl(&["canary", "10", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["changed"], true, "{answer}");

    let out = ctl(&["canary", "0"]);
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&["cutover"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("primary green"),
        "{out:?}"
    );
    let c = client::connect(&sy.connstr("app", "app-secret", "app")).await;
    let port: i32 = c
        .query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        port,
        dbs.green.port() as i32,
        "after the cutover new sessions are on green"
    );
    assert!(std::fs::read_to_string(sy.config_path())
        .unwrap()
        .contains("primary = \"green\""));

    let out = ctl(&["flip-back"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("primary blue"),
        "{out:?}"
    );
    let out = ctl(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("last cutover: green -> blue completed"),
        "status shows the last cutover: {text}"
    );
    assert!(text.contains("shadow reads: 0%"), "{text}");

    // Refusals have exit code 1, an unreachable admin API exit code 2.
    let refused = sy.ctl(&["canary", "5"]);
    assert_eq!(refused.status.code(), Some(1), "no token: {refused:?}");
    let unreachable = std::process::Command::new(switchyard_tests::switchyard_bin())
        .args([
            "ctl",
            "status",
            "--admin",
            &format!("http://127.0.0.1:{}", switchyard_tests::free_port()),
        ])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(2), "{unreachable:?}");
}
