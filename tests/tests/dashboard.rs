//! The operator's dashboard at `GET /`, in a real headless Chromium: it shows live numbers
//! that move with the traffic, and its controls (admin token, canary slider, cutover with its
//! confirmation) really change switchyard's routing and the config file on disk.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`./scripts/test.sh` installs them and
//! sets `SWITCHYARD_REQUIRE_BROWSER=1`). Without them, and without that variable, the test
//! prints why and passes without running. With `SWITCHYARD_SAVE_SCREENSHOT=1` it lets the
//! charts fill for a minute and also writes `docs/dashboard.png`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use switchyard_tests::browser::{browser_required, REQUIRE_BROWSER};
use switchyard_tests::{client, http, Browser, Switchyard, TwoDbs};

const TOKEN: &str = "dashboard-admin-token";
const WAIT: Duration = Duration::from_secs(30);

fn save_screenshot_to_docs() -> bool {
    std::env::var_os("SWITCHYARD_SAVE_SCREENSHOT").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A small application through switchyard until `stop`: inserts, reads and transactions,
/// on two sessions, a few dozen statements a second.
fn start_workload(connstr: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the workload");
        runtime.block_on(async move {
            let writer = client::connect(&connstr).await;
            let reader = client::connect(&connstr).await;
            let mut done = 0u64;
            let mut i = 0i32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                writer
                    .execute(
                        "insert into dash_items (id, note) values ($1, 'from the workload')",
                        &[&i],
                    )
                    .await
                    .expect("insert through switchyard");
                reader
                    .query_one("select count(*) from dash_items", &[])
                    .await
                    .expect("read through switchyard");
                if i % 5 == 0 {
                    writer
                        .batch_execute(
                            "begin; update dash_items set note = 'touched' where id = 1; commit",
                        )
                        .await
                        .expect("transaction through switchyard");
                }
                done += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            done
        })
    })
}

fn status(sy: &Switchyard) -> Value {
    http::get(sy.admin_port(), "/status").json()
}

/// Polls `/status` until `check` holds.
fn wait_status(sy: &Switchyard, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = status(sy);
        if check(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; last status: {s}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A number the page shows (its `data-value`), once it has one.
fn shown_number(browser: &Browser, id: &str) -> Option<f64> {
    let v = browser.execute(
        "const e = document.getElementById(arguments[0]); return e ? e.dataset.value : null;",
        &[Value::from(id)],
    );
    v.as_str().and_then(|s| s.parse().ok())
}

fn text_of(browser: &Browser, selector: &str) -> String {
    browser
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            &[Value::from(selector)],
        )
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The dashboard is live and in control: its statement counts and rates come from the
/// traffic and keep changing while the page is open; a divergence appears with both
/// outcomes; after the operator pastes the admin token, moving the canary slider changes
/// `routing.canary_percent` in `/status` and in the config file, and the cutover button,
/// once its confirmation dialog is accepted, makes green the primary.
#[test]
fn the_dashboard_shows_live_traffic_and_its_controls_change_routing() {
    let browser = match Browser::start(1440, 1650) {
        Ok(b) => b,
        Err(reason) if !browser_required() => {
            println!(
                "SKIPPED: no headless browser: {reason}. Set {REQUIRE_BROWSER}=1 to fail instead."
            );
            return;
        }
        Err(reason) => panic!("{REQUIRE_BROWSER} is set but there is no browser: {reason}"),
    };
    std::env::set_var("SWITCHYARD_TEST_DASHBOARD_TOKEN", TOKEN);
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["admin"]["token_env"] = toml_edit::value("SWITCHYARD_TEST_DASHBOARD_TOKEN");
    doc["mirror"]["enabled"] = toml_edit::value(true);
    let sy = Switchyard::start(&doc.to_string());
    let connstr = sy.connstr("app", "app-secret", "app");
    client::psql(
        &connstr,
        "create table dash_items (id int primary key, note text)",
    )
    .expect("create the table through switchyard (mirrored to green)");
    let deadline = std::time::Instant::now() + WAIT;
    while dbs
        .green
        .psql_in("app", "select to_regclass('dash_items') is not null")
        != "t"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the table never reached green"
        );
        thread::sleep(Duration::from_millis(100));
    }
    // A row only green has: the same insert through switchyard succeeds on blue and fails
    // on green, a divergence for the page to show.
    dbs.green
        .psql_in("app", "insert into dash_items values (-1, 'green only')");
    client::psql(&connstr, "insert into dash_items values (-1, 'both?')").expect("insert on blue");

    let stop = Arc::new(AtomicBool::new(false));
    let workload = start_workload(connstr.clone(), stop.clone());

    browser.goto(&sy.admin_url());
    // Live numbers: a statement count, then a larger one a little later.
    let first = browser.wait_for("a statement count on the page", WAIT, |b| {
        shown_number(b, "stmt-total").filter(|&n| n > 0.0)
    });
    let later = browser.wait_for("the statement count to grow", WAIT, |b| {
        shown_number(b, "stmt-total").filter(|&n| n > first)
    });
    assert!(later > first);
    browser.wait_for("a statements/s rate", WAIT, |b| {
        shown_number(b, "stmt-rate").filter(|&r| r > 0.0)
    });
    let blue_rate = text_of(&browser, "#rate-blue");
    assert!(
        blue_rate.chars().any(|c| c.is_ascii_digit()),
        "blue's statements/s: {blue_rate:?}"
    );
    assert!(
        text_of(&browser, "#latency-rows").contains("secondary"),
        "the latency table lists green's mirrored statements: {}",
        text_of(&browser, "#latency-rows")
    );
    let divergence = browser.wait_for("the divergence on the page", WAIT, |b| {
        let text = text_of(b, "#divergences");
        text.contains("dash_items").then_some(text)
    });
    assert!(divergence.contains("error 23505"), "{divergence}");
    assert_eq!(text_of(&browser, "#primary"), "blue");

    // The token is required: the page says so, then the operator pastes it.
    let hint_shown = browser.execute(
        "return getComputedStyle(document.getElementById('auth-hint')).display !== 'none';",
        &[],
    );
    assert_eq!(hint_shown, true, "the page asks for the admin token");
    browser.click("#token-toggle");
    browser.type_into("#token-input", TOKEN);
    browser.click("#token-save");

    // The canary slider, moved to 30 as a user's drag ends.
    browser.execute(
        "const s = document.getElementById('canary'); s.value = '30';
         s.dispatchEvent(new Event('input', { bubbles: true }));
         s.dispatchEvent(new Event('change', { bubbles: true }));",
        &[],
    );
    let after = wait_status(&sy, "canary_percent 30", |s| {
        s["routing"]["canary_percent"] == 30
    });
    assert_eq!(after["routing"]["primary"], "blue");
    let on_disk = std::fs::read_to_string(sy.config_path()).expect("read the config file");
    assert!(on_disk.contains("canary_percent = 30"), "{on_disk}");
    browser.wait_for("the page to show the canary", WAIT, |b| {
        (text_of(b, "#canary-now") == "30").then_some(())
    });

    // Cutover: the button asks first; accepting makes green the primary.
    browser.click("#cutover");
    let question = browser.wait_for("the confirmation dialog", WAIT, |b| b.dialog_text());
    assert!(question.contains("make green the primary"), "{question}");
    browser.accept_dialog();
    wait_status(&sy, "green as primary", |s| {
        s["routing"]["primary"] == "green"
    });
    let on_disk = std::fs::read_to_string(sy.config_path()).expect("read the config file");
    assert!(on_disk.contains("primary = \"green\""), "{on_disk}");
    browser.wait_for("the page to show green as primary", WAIT, |b| {
        (text_of(b, "#primary") == "green").then_some(())
    });
    // Once a session has moved, green answers statements.
    browser.wait_for("green to answer statements", WAIT, |b| {
        let rate = text_of(b, "#rate-green");
        (rate.chars().any(|c| c.is_ascii_digit()) && rate != "0.00").then_some(())
    });

    if save_screenshot_to_docs() {
        // Let the charts fill (slots are 10 s) before the picture.
        thread::sleep(Duration::from_secs(60));
    } else {
        thread::sleep(Duration::from_secs(2));
    }
    let shot = sy.dir().join("dashboard.png");
    browser.save_screenshot(&shot);
    println!("screenshot: {}", shot.display());
    if save_screenshot_to_docs() {
        let docs_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
        std::fs::create_dir_all(&docs_dir).expect("create docs/");
        let docs = docs_dir.join("dashboard.png");
        std::fs::copy(&shot, &docs).unwrap_or_else(|e| panic!("copy to {}: {e}", docs.display()));
        println!("saved {}", docs.display());
    }

    stop.store(true, Ordering::Relaxed);
    let done = workload.join().expect("the workload ran without errors");
    assert!(done > 0);
    let s = status(&sy);
    assert_eq!(s["mirror"]["units_lost"], 0, "{s}");
}

/// The page is served without the admin token (read-only, like `/status`), with a content
/// security policy that allows nothing from elsewhere, and `/status` tells it whether its
/// POSTs will need the token.
#[test]
fn the_dashboard_is_served_without_a_token_and_loads_nothing_from_elsewhere() {
    std::env::set_var("SWITCHYARD_TEST_DASHBOARD_TOKEN", TOKEN);
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["admin"]["token_env"] = toml_edit::value("SWITCHYARD_TEST_DASHBOARD_TOKEN");
    let sy = Switchyard::start(&doc.to_string());

    let page = http::get(sy.admin_port(), "/");
    assert_eq!(page.status, 200, "{page:?}");
    let headers = page.headers.to_ascii_lowercase();
    assert!(headers.contains("content-type: text/html"), "{headers}");
    assert!(
        headers.contains("content-security-policy: default-src 'none'"),
        "{headers}"
    );
    assert!(page.body.contains("<title>switchyard</title>"));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "no external resources"
    );
    assert_eq!(status(&sy)["admin"]["token_required"], true);
}
