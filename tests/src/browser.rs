//! A real headless browser for tests of the dashboard: Debian's Chromium driven by
//! `chromedriver` over the W3C WebDriver protocol (JSON over HTTP/1.1, spoken by a few
//! lines here; no client crate needed).
//!
//! The machine running the tests has no internet: Chromium runs with the flags that keep
//! it from calling home (background networking, component updates, sync, QUIC), in a
//! fresh profile in a temp dir. chromedriver is tied to the test process
//! ([`crate::child::spawn_tied`]); on `Drop` the WebDriver session is closed and the whole
//! process tree (chromedriver, Chromium and its helpers) is killed.
//!
//! [`Browser::start`] returns `Err` with the reason when Chromium or chromedriver is not
//! installed (`./scripts/test.sh` installs both); tests decide whether that is a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::child::{process_tree, spawn_tied, wait_gone};
use crate::port::free_port;

/// Where Debian's packages `chromium` and `chromium-driver` put the programs; overridden by
/// `SWITCHYARD_CHROMIUM` and `SWITCHYARD_CHROMEDRIVER`.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The environment variable that turns a missing browser from a skip into a failure.
pub const REQUIRE_BROWSER: &str = "SWITCHYARD_REQUIRE_BROWSER";

/// Whether the environment demands a browser (CI, via `scripts/test.sh`).
pub fn browser_required() -> bool {
    std::env::var_os(REQUIRE_BROWSER).is_some_and(|v| !v.is_empty() && v != "0")
}

fn program(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// A Chromium session. See the module docs.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    /// The profile and logs; removed after the processes are gone (declared last).
    dir: TempDir,
}

/// A WebDriver element reference.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width`×`height` window. `Err`
    /// (the reason) only when the programs are not installed; any other failure panics.
    pub fn start(width: u32, height: u32) -> Result<Browser, String> {
        let chromium = program("SWITCHYARD_CHROMIUM", CHROMIUM);
        let chromedriver = program("SWITCHYARD_CHROMEDRIVER", CHROMEDRIVER);
        for (path, package) in [(&chromium, "chromium"), (&chromedriver, "chromium-driver")] {
            if !path.exists() {
                return Err(format!(
                    "{} not found (Debian package `{package}`; ./scripts/test.sh installs it)",
                    path.display()
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("switchyard-browser-")
            .tempdir()
            .expect("create a temp dir for the browser profile");
        let port = free_port();
        let log = dir.path().join("chromedriver.log");
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            // Chromium writes crash reports and caches under these, not in the real home.
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver =
            spawn_tied(command).unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            dir,
        };
        browser.wait_ready();
        let profile = browser.dir.path().join("profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", profile.display()),
        ];
        let created = browser.call(
            "POST",
            "/session",
            &json!({
                "capabilities": {
                    "alwaysMatch": {
                        "browserName": "chrome",
                        // Dialogs stay open until the test handles them.
                        "unhandledPromptBehavior": "ignore",
                        "goog:chromeOptions": {
                            "binary": chromium,
                            "args": args,
                        },
                    }
                }
            }),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {created}"))
            .to_owned();
        Ok(browser)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listening = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if listening
                && self
                    .try_call("GET", "/status", &Value::Null)
                    .is_ok_and(|v| v["ready"] == true)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready; its log:\n{}",
                self.driver_log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// chromedriver's log (for failure messages).
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log"))
            .map(|log| {
                let start = log.len().saturating_sub(8 * 1024);
                let start = (start..log.len())
                    .find(|&i| log.is_char_boundary(i))
                    .unwrap_or(0);
                log[start..].to_owned()
            })
            .unwrap_or_default()
    }

    /// One WebDriver command; `Err` with the WebDriver error (`{"error", "message"}`).
    pub fn try_call(&self, method: &str, path: &str, body: &Value) -> Result<Value, Value> {
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, body) = request(self.port, method, path, &body);
        let value = serde_json::from_str::<Value>(&body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: not JSON ({e}): {body}"))
            ["value"]
            .clone();
        if status == 200 {
            Ok(value)
        } else {
            Err(value)
        }
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn session_call(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": args }),
        )
    }

    /// The element matching the CSS `selector`; panics if there is none.
    pub fn find(&self, selector: &str) -> Element {
        let found = self.session_call(
            "POST",
            "/element",
            &json!({ "using": "css selector", "value": selector }),
        );
        // The reference is the value of the one key (the W3C element identifier).
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element reference for {selector}: {found}"));
        Element(id.to_owned())
    }

    /// Clicks the element matching `selector`, as a user would.
    pub fn click(&self, selector: &str) {
        let element = self.find(selector);
        self.session_call("POST", &format!("/element/{}/click", element.0), &json!({}));
    }

    /// Types `text` into the element matching `selector`.
    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector);
        self.session_call(
            "POST",
            &format!("/element/{}/value", element.0),
            &json!({ "text": text }),
        );
    }

    /// The text of the open dialog (alert, confirm, prompt), if one is open.
    pub fn dialog_text(&self) -> Option<String> {
        self.try_call(
            "GET",
            &format!("/session/{}/alert/text", self.session),
            &Value::Null,
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Accepts the open dialog (OK on a confirm).
    pub fn accept_dialog(&self) {
        self.session_call("POST", "/alert/accept", &json!({}));
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let encoded = self.session_call("GET", "/screenshot", &Value::Null);
        let encoded = encoded.as_str().expect("a base64 screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("the screenshot is base64")
    }

    /// Saves a screenshot of the viewport to `path`.
    pub fn save_screenshot(&self, path: &Path) {
        let png = self.screenshot();
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One HTTP/1.1 request to chromedriver, which keeps connections open: the body is read
/// by its Content-Length. Returns the status and the body.
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to chromedriver: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set a read timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .unwrap_or_else(|e| panic!("send {method} {path} to chromedriver: {e}"));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("read chromedriver's answer to {method} {path}: {e}"));
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from chromedriver: {line:?}"));
    let mut length = 0usize;
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read chromedriver's headers: {e}"));
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .unwrap_or_else(|e| panic!("read chromedriver's body ({length} bytes): {e}"));
    (status, String::from_utf8_lossy(&body).into_owned())
}

impl Drop for Browser {
    fn drop(&mut self) {
        // No polite DELETE /session: a request to a driver that is gone would panic inside
        // a drop that may already be unwinding. The profile is a temp dir; kill it all.
        let tree = process_tree(self.driver.id());
        for &pid in tree.iter().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.wait();
        wait_gone(&tree, Duration::from_secs(5));
    }
}
