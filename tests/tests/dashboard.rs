//! The operator's dashboard at `GET /`, in a real headless Chromium: it shows live numbers
//! that move with the traffic, a confirmed shadow-read mismatch with the differing rows of
//! both sides, the guard, and the last cutover; its controls (admin token, canary slider,
//! cutover with its confirmation) really change switchyard's routing and the config file on
//! disk, and a refused cutover is shown to the operator.
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
/// on two sessions, a few dozen statements a second. Its reads do not race with its writes
/// in a way a shadow read's re-check would confirm (a `count(*)` of a table that another
/// session keeps inserting into would be).
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
                // The row the other session inserted last: its shadow read may race with
                // that insert on its way to green (a mismatch that vanishes on re-check).
                reader
                    .query_opt("select id, note from dash_items where id = $1", &[&(i - 1)])
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

/// Waits until `table` exists on green (the mirror has applied its creation).
fn wait_on_green(dbs: &TwoDbs, table: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while dbs
        .green
        .psql_in("app", &format!("select to_regclass('{table}') is not null"))
        != "t"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{table} never reached green"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the browser, or says why the test is skipped (`None`).
fn browser(width: u32, height: u32) -> Option<Browser> {
    match Browser::start(width, height) {
        Ok(b) => Some(b),
        Err(reason) if !browser_required() => {
            println!(
                "SKIPPED: no headless browser: {reason}. Set {REQUIRE_BROWSER}=1 to fail instead."
            );
            None
        }
        Err(reason) => panic!("{REQUIRE_BROWSER} is set but there is no browser: {reason}"),
    }
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
/// outcomes; a shadow read that differs on green shows up as a confirmed mismatch with the
/// differing value of each side (also with "confirmed only" on); the guard shows as on with
/// each upstream's window; after the operator pastes the admin token, moving the canary
/// slider changes `routing.canary_percent` in `/status` and in the config file, and the
/// cutover button, once its confirmation dialog is accepted, makes green the primary, after
/// which the last-cutover panel says "completed" and the way back is "Flip back to blue".
#[test]
fn the_dashboard_shows_live_traffic_and_its_controls_change_routing() {
    let Some(browser) = browser(1440, 2350) else {
        return;
    };
    std::env::set_var("SWITCHYARD_TEST_DASHBOARD_TOKEN", TOKEN);
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["admin"]["token_env"] = toml_edit::value("SWITCHYARD_TEST_DASHBOARD_TOKEN");
    doc["mirror"]["enabled"] = toml_edit::value(true);
    doc["shadow_reads"]["percent"] = toml_edit::value(100);
    doc["shadow_reads"]["seed"] = toml_edit::value(1);
    doc["shadow_reads"]["recheck_after_ms"] = toml_edit::value(100);
    doc["guard"]["enabled"] = toml_edit::value(true);
    let sy = Switchyard::start(&doc.to_string());
    let connstr = sy.connstr("app", "app-secret", "app");
    client::psql(
        &connstr,
        "create table dash_items (id int primary key, note text);
         create table dash_prices (id int primary key, item text, price numeric);
         insert into dash_prices values (1, 'anvil', 120.00), (2, 'rope', 9.50), (3, 'lamp', 31.25)",
    )
    .expect("create the tables through switchyard (mirrored to green)");
    wait_on_green(&dbs, "dash_items");
    wait_on_green(&dbs, "dash_prices");
    // A price that differs on green, behind switchyard's back, and a read of it through
    // switchyard: a shadow-read mismatch that its re-check confirms.
    let deadline = std::time::Instant::now() + WAIT;
    while dbs.green.psql_in("app", "select count(*) from dash_prices") != "3" {
        assert!(
            std::time::Instant::now() < deadline,
            "rows never reached green"
        );
        thread::sleep(Duration::from_millis(100));
    }
    dbs.green
        .psql_in("app", "update dash_prices set price = 8.75 where id = 2");
    client::psql(
        &connstr,
        "select id, item, price from dash_prices where id = 2",
    )
    .expect("read through switchyard");
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

    // The seeded mismatch: confirmed, with blue's price on one side and green's on the
    // other, the differing cell marked; also with "confirmed only" on.
    browser.click("#confirmed-only");
    let id = browser.wait_for("the confirmed mismatch on the page", WAIT, |b| {
        b.execute(
            "const m = [...document.querySelectorAll('#mismatches .mm[data-status=confirmed]')]
               .find((e) => e.querySelector('.sql').textContent.includes('dash_prices'));
             return m ? m.dataset.id : null;",
            &[],
        )
        .as_str()
        .map(str::to_owned)
    });
    let confirmed = format!("#mismatches .mm[data-id=\"{id}\"]");
    let mismatch = text_of(&browser, &confirmed);
    assert!(
        mismatch.contains("rows"),
        "the kind of difference: {mismatch}"
    );
    let blue_side = text_of(&browser, &format!("{confirmed} .side.primary"));
    let green_side = text_of(&browser, &format!("{confirmed} .side.secondary"));
    assert!(
        blue_side.contains("blue") && blue_side.contains("price") && blue_side.contains("9.50"),
        "blue's row: {blue_side}"
    );
    assert!(
        green_side.contains("green") && green_side.contains("8.75"),
        "green's row: {green_side}"
    );
    assert_eq!(
        text_of(&browser, &format!("{confirmed} .side.secondary td.differs")),
        "8.75",
        "only the price differs"
    );
    let unconfirmed = browser.execute(
        "return document.querySelectorAll('#mismatches .mm:not([data-status=confirmed])').length;",
        &[],
    );
    assert_eq!(
        unconfirmed, 0,
        "\"confirmed only\" shows only confirmed ones"
    );
    browser.click("#confirmed-only");
    assert!(shown_number(&browser, "shadow-confirmed").is_some_and(|n| n >= 1.0));
    assert_eq!(text_of(&browser, "#guard-enabled"), "on");
    assert!(
        text_of(&browser, "#guard-rows").contains("blue"),
        "blue's guard window: {}",
        text_of(&browser, "#guard-rows")
    );
    assert!(
        text_of(&browser, "#cutover-last").contains("no cutover"),
        "{}",
        text_of(&browser, "#cutover-last")
    );

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
    let last = browser.wait_for("the last cutover on the page", WAIT, |b| {
        let text = text_of(b, "#cutover-last");
        (text_of(b, "#cutover-result") == "completed").then_some(text)
    });
    assert!(last.contains("blue") && last.contains("green"), "{last}");
    // The way back comes from switchyard (the last known-good primary), not this browser.
    browser.wait_for("the flip-back button", WAIT, |b| {
        let enabled = b.execute("return !document.getElementById('flipback').disabled;", &[]);
        (enabled == true && text_of(b, "#flipback").contains("Flip back to blue")).then_some(())
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

/// When things go wrong the page says so: a cutover that cannot reach its barrier (a
/// transaction held open through switchyard) shows HOLDING while it waits, then its 409
/// reason in the routing card and "abandoned" with the reason in the last-cutover panel; a
/// cutover made elsewhere (the API) still offers "Flip back to blue" (switchyard's last
/// known-good primary, not this browser's memory); and when green then fails, the guard's
/// trip appears as a banner naming the upstream, its error rate and the applied action.
#[test]
fn the_dashboard_shows_an_abandoned_cutover_and_a_guard_trip() {
    let Some(browser) = browser(1440, 1300) else {
        return;
    };
    let mut dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["mirror"]["enabled"] = toml_edit::value(true);
    doc["routing"]["cutover_timeout_ms"] = toml_edit::value(4000);
    doc["guard"]["enabled"] = toml_edit::value(true);
    doc["guard"]["min_statements"] = toml_edit::value(20);
    let sy = Switchyard::start(&doc.to_string());
    let connstr = sy.connstr("app", "app-secret", "app");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the client");
    let open = runtime.block_on(client::connect(&connstr));
    runtime
        .block_on(open.batch_execute(
            "create table held (id int primary key); begin; insert into held values (1)",
        ))
        .expect("a transaction left open through switchyard");

    browser.goto(&sy.admin_url());
    browser.wait_for("the page to show blue as primary", WAIT, |b| {
        (text_of(b, "#primary") == "blue").then_some(())
    });
    browser.click("#cutover");
    browser.wait_for("the confirmation dialog", WAIT, |b| b.dialog_text());
    browser.accept_dialog();
    browser.wait_for("HOLDING while the barrier waits", WAIT, |b| {
        let shown = b.execute(
            "return !document.getElementById('holding-pill').hidden;",
            &[],
        );
        (shown == true).then_some(())
    });
    let refused = browser.wait_for("the refusal in the routing card", WAIT, |b| {
        let text = text_of(b, "#routing-error");
        text.contains("Cutover abandoned").then_some(text)
    });
    assert!(
        refused.contains("not at a transaction boundary"),
        "{refused}"
    );
    let reason = browser.wait_for("the abandoned cutover in its panel", WAIT, |b| {
        (text_of(b, "#cutover-result") == "abandoned").then(|| text_of(b, "#cutover-reason"))
    });
    assert!(reason.contains("transaction"), "{reason}");
    assert_eq!(text_of(&browser, "#primary"), "blue");

    // The transaction ends; a cutover through the API (not this page) now completes.
    runtime
        .block_on(open.batch_execute("commit"))
        .expect("commit on blue");
    let r = http::request(
        sy.admin_port(),
        "POST",
        "/routing",
        &[("content-type", "application/json")],
        r#"{"primary": "green"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    browser.wait_for("Flip back to blue", WAIT, |b| {
        let enabled = b.execute("return !document.getElementById('flipback').disabled;", &[]);
        (enabled == true
            && text_of(b, "#flipback").contains("Flip back to blue")
            && text_of(b, "#cutover-result") == "completed")
            .then_some(())
    });
    let error_shown = browser.execute(
        "return !document.getElementById('routing-error').hidden;",
        &[],
    );
    assert_eq!(
        error_shown, false,
        "the refusal is gone once green is primary"
    );

    // Green fails; the guard flips back and the page raises its banner.
    dbs.green.stop();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let _ = runtime.block_on(client::try_connect(&connstr));
        if status(&sy)["guard"]["last_trip"]["applied"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the guard never tripped: {}",
            status(&sy)
        );
    }
    let banner = browser.wait_for("the guard banner", WAIT, |b| {
        let shown = b.execute(
            "return !document.getElementById('guard-banner').hidden;",
            &[],
        );
        (shown == true).then(|| text_of(b, "#guard-banner"))
    });
    assert!(
        banner.contains("green failed") && banner.contains("applied"),
        "{banner}"
    );
    browser.wait_for("blue as primary again", WAIT, |b| {
        (text_of(b, "#primary") == "blue").then_some(())
    });
    browser.click("#guard-banner-dismiss");
    let hidden = browser.execute(
        "return document.getElementById('guard-banner').hidden;",
        &[],
    );
    assert_eq!(hidden, true, "the operator can dismiss the banner");
    drop(open);
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
