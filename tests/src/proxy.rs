//! The switchyard process under test: [`Switchyard`].
//!
//! A test hands over a complete TOML configuration (usually [`crate::TwoDbs::config`],
//! tweaked). The harness writes it to `switchyard.toml` in a temp dir that is also the
//! process's working directory (so relative paths in the config land there), runs the real
//! binary as `switchyard serve --config FILE` with stdout and stderr in `switchyard.log`,
//! and waits until the `[listen]` and `[admin]` ports accept TCP connections.
//!
//! The binary is not built by the tests: `./scripts/test.sh` runs
//! `cargo build --workspace --bins` first; after changing `proxy/`, run
//! `cargo build -p switchyard` before `cargo test -p switchyard-tests`.
//!
//! The process is tied to the test process ([`crate::child::spawn_tied`]) and killed on
//! `Drop`; when the test is panicking, `Drop` prints the tail of switchyard's log first.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::child::spawn_tied;
use crate::client;
/// Re-exported here because tests that start switchyard pick its ports with it.
pub use crate::port::free_port;

/// How long switchyard may take to listen.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the log `Drop` prints when the test failed.
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// A running switchyard process. See the module docs.
pub struct Switchyard {
    child: Option<Child>,
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    config_path: PathBuf,
    log_path: PathBuf,
    /// Declared last: removed after the process has been killed.
    dir: TempDir,
}

impl Switchyard {
    /// Starts switchyard with `config_toml`; panics, with its log, if it does not come up.
    pub fn start(config_toml: &str) -> Switchyard {
        Switchyard::try_start(config_toml).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Starts switchyard with `config_toml`. `Err` carries the exit status and the log when
    /// the process exits (or does not listen in time) — the outcome a refused config must
    /// have. Panics only when the binary is missing.
    pub fn try_start(config_toml: &str) -> Result<Switchyard, String> {
        Switchyard::try_start_bin(&switchyard_bin(), config_toml)
    }

    /// [`Switchyard::try_start`] with another executable in place of the binary (for tests
    /// of the harness itself). It is run as `BIN serve --config FILE`.
    pub fn try_start_bin(bin: &Path, config_toml: &str) -> Result<Switchyard, String> {
        // A config the harness cannot read (broken TOML, no listen address) is still given
        // to the process: it must refuse it, and the harness then waits for it to exit.
        let probe = addresses(config_toml);
        let (listen, admin) = match &probe {
            Ok((listen, admin)) => (*listen, *admin),
            Err(_) => (SocketAddr::from(([127, 0, 0, 1], 0)), None),
        };
        let dir = tempfile::Builder::new()
            .prefix("switchyard-proxy-")
            .tempdir()
            .expect("create a temp dir for switchyard");
        let config_path = dir.path().join("switchyard.toml");
        let log_path = dir.path().join("switchyard.log");
        fs::write(&config_path, config_toml)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let stderr = log.try_clone().expect("clone the log file handle");
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = spawn_tied(command).unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut switchyard = Switchyard {
            child: Some(child),
            listen,
            admin,
            config_path,
            log_path,
            dir,
        };
        let started = match &probe {
            Ok(_) => switchyard.wait_listening(),
            Err(why) => Err(match switchyard.wait_exit(STARTUP_TIMEOUT) {
                Some(status) => format!("the process exited ({status})"),
                None => format!(
                    "{why}, so the harness cannot tell when it listens, and the process is \
                     still running after {}s",
                    STARTUP_TIMEOUT.as_secs()
                ),
            }),
        };
        match started {
            Ok(()) => Ok(switchyard),
            Err(err) => {
                // Kill first so the log is complete.
                switchyard.kill();
                Err(format!(
                    "switchyard did not start: {err}\n--- {} ---\n{}\n--- config ---\n{config_toml}",
                    switchyard.log_path.display(),
                    switchyard.logs()
                ))
            }
        }
    }

    /// The client port (`[listen] address`).
    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    /// The admin HTTP port (`[admin] address`). Panics if the config had none.
    pub fn admin_port(&self) -> u16 {
        self.admin
            .expect("the config given to Switchyard::start has no [admin] address")
            .port()
    }

    /// `http://127.0.0.1:<admin port>`, for `switchyard ctl --admin` and HTTP requests.
    pub fn admin_url(&self) -> String {
        format!(
            "http://{}",
            self.admin.expect("no [admin] address configured")
        )
    }

    /// The config file the process was started with (rewrite it to test reloads).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Replaces the config file atomically (write + rename), as an operator's editor or
    /// config management would. Does not signal the process.
    pub fn write_config(&self, config_toml: &str) {
        let tmp = self.dir.path().join("switchyard.toml.tmp");
        fs::write(&tmp, config_toml).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        fs::rename(&tmp, &self.config_path)
            .unwrap_or_else(|e| panic!("rename onto {}: {e}", self.config_path.display()));
    }

    /// The process's working directory (where relative paths of the config resolve).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything switchyard has written to stdout and stderr so far.
    pub fn logs(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The process ID. Panics if the process has been stopped.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("switchyard has been stopped")
            .id()
    }

    /// Sends `signal` (SIGHUP to reload, SIGTERM to shut down, SIGSTOP to freeze, …).
    pub fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal)
            .unwrap_or_else(|e| panic!("send {signal} to switchyard ({pid}): {e}"));
    }

    /// Runs `switchyard ctl ARGS… --admin <this process's admin URL>` (e.g. `["canary", "10"]`)
    /// and returns its output; the caller checks the status.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(switchyard_bin())
            .arg("ctl")
            .args(args)
            .arg("--admin")
            .arg(self.admin_url())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run switchyard ctl {args:?}: {e}"))
    }

    /// A libpq key=value connection string to switchyard's listen port.
    pub fn connstr(&self, user: &str, password: &str, dbname: &str) -> String {
        client::connstr("127.0.0.1", self.port(), user, password, dbname)
    }

    /// A `postgresql://` URL to switchyard's listen port.
    pub fn url(&self, user: &str, password: &str, dbname: &str) -> String {
        client::url("127.0.0.1", self.port(), user, password, dbname)
    }

    /// Whether the process has exited (without reaping it for good: `stop` still works).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().expect("poll switchyard"))
    }

    /// Waits up to `timeout` for the process to exit by itself; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful shutdown: SIGTERM, then SIGKILL if the process is still there after 10 s.
    /// Returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if self.try_wait().is_none() {
            self.signal(Signal::SIGTERM);
        }
        if let Some(status) = self.wait_exit(Duration::from_secs(10)) {
            self.child = None;
            return status;
        }
        eprintln!("switchyard ignored SIGTERM for 10s; killing it");
        let mut child = self.child.take().expect("switchyard process");
        let _ = child.kill();
        child.wait().expect("wait for switchyard")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut pending: Vec<SocketAddr> = std::iter::once(self.listen).chain(self.admin).collect();
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!("the process exited ({status})"));
            }
            pending.retain(|address| {
                TcpStream::connect_timeout(address, Duration::from_millis(500)).is_err()
            });
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not listening on {pending:?} after {}s",
                    STARTUP_TIMEOUT.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Switchyard {
    fn drop(&mut self) {
        if thread::panicking() {
            let logs = self.logs();
            let start = logs.len().saturating_sub(LOG_TAIL_BYTES);
            let start = (start..logs.len())
                .find(|&i| logs.is_char_boundary(i))
                .unwrap_or(logs.len());
            eprintln!(
                "--- switchyard log ({}, last {} bytes) ---\n{}",
                self.log_path.display(),
                logs.len() - start,
                &logs[start..]
            );
        }
        self.kill();
    }
}

/// The switchyard binary: `$SWITCHYARD_BIN`, else `switchyard` in the target directory the
/// running test was built into (`…/target/debug/deps/harness-… → …/target/debug/switchyard`).
pub fn switchyard_bin() -> PathBuf {
    let bin = match std::env::var_os("SWITCHYARD_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => {
            let exe = std::env::current_exe().expect("path of the running test binary");
            let profile_dir = exe
                .parent()
                .and_then(|deps| {
                    if deps.ends_with("deps") {
                        deps.parent()
                    } else {
                        Some(deps)
                    }
                })
                .expect("the test binary lives in a target directory");
            profile_dir.join("switchyard")
        }
    };
    assert!(
        bin.is_file(),
        "switchyard binary not found at {}: build it first: cargo build -p switchyard \
         (or set SWITCHYARD_BIN)",
        bin.display()
    );
    bin
}

/// `[listen] address` and `[admin] address` of a config. The listen address must be a
/// literal `ip:port` the harness can probe.
fn addresses(config_toml: &str) -> Result<(SocketAddr, Option<SocketAddr>), String> {
    let doc: toml_edit::DocumentMut = config_toml
        .parse()
        .map_err(|e| format!("the config is not valid TOML ({e})"))?;
    let address = |table: &str| -> Result<Option<SocketAddr>, String> {
        let Some(text) = doc
            .get(table)
            .and_then(|t| t.get("address"))
            .and_then(|a| a.as_str())
        else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|e| {
            format!("[{table}] address = {text:?} is not an ip:port the harness can probe ({e})")
        })
    };
    let listen = address("listen")?
        .ok_or_else(|| "the config has no [listen] address = \"ip:port\"".to_string())?;
    Ok((listen, address("admin")?))
}
