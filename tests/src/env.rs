//! The standard test environment: two upstreams, `blue` (in use today) and `green` (the
//! migration target), and a switchyard configuration that points at both: [`TwoDbs`].
//!
//! Both clusters are started in parallel and get [`PgCluster::create_app`]. Starting from
//! short-lived threads is safe: servers are forked by the harness's long-lived spawner
//! thread, so their parent-death signal fires only when the test process dies
//! (see [`crate::child`]).
//!
//! [`TwoDbs::config`] returns a complete, valid configuration as an editable TOML document;
//! a test changes what its story is about and starts switchyard with it:
//!
//! ```no_run
//! # use switchyard_tests::{Switchyard, TwoDbs};
//! let dbs = TwoDbs::start();
//! let mut config = dbs.config();
//! config["routing"]["canary_percent"] = toml_edit::value(10);
//! let proxy = Switchyard::start(&config.to_string());
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use tempfile::TempDir;
use toml_edit::DocumentMut;

use crate::pg::{PgCluster, PgOptions};
use crate::port::free_port;

/// Two PostgreSQL clusters with the `app` database, and a scratch dir for switchyard's files.
pub struct TwoDbs {
    pub blue: PgCluster,
    pub green: PgCluster,
    scratch: TempDir,
    configs_made: AtomicUsize,
}

impl TwoDbs {
    /// Starts `blue` and `green` (default options) in parallel, each with `create_app()`.
    pub fn start() -> TwoDbs {
        TwoDbs::start_with(PgOptions::default(), PgOptions::default())
    }

    /// Starts `blue` and `green` with their own options, in parallel.
    pub fn start_with(blue: PgOptions, green: PgOptions) -> TwoDbs {
        let start = |name: &'static str, options: PgOptions| {
            move || {
                let cluster = PgCluster::start_with(name, options);
                cluster.create_app();
                cluster
            }
        };
        let (blue, green) = thread::scope(|scope| {
            let blue = scope.spawn(start("blue", blue));
            let green = scope.spawn(start("green", green));
            // Join both before re-raising, so a failure of one does not leak the other.
            let (blue, green) = (blue.join(), green.join());
            match (blue, green) {
                (Ok(blue), Ok(green)) => (blue, green),
                (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
            }
        });
        TwoDbs {
            blue,
            green,
            scratch: tempfile::Builder::new()
                .prefix("switchyard-run-")
                .tempdir()
                .expect("create a scratch dir for switchyard's journal and logs"),
            configs_made: AtomicUsize::new(0),
        }
    }

    /// The cluster named `name` ("blue" or "green").
    pub fn cluster(&self, name: &str) -> &PgCluster {
        match name {
            "blue" => &self.blue,
            "green" => &self.green,
            other => panic!("no upstream named {other:?}: there are \"blue\" and \"green\""),
        }
    }

    /// [`TwoDbs::cluster`], mutably (to stop, kill or pause it).
    pub fn cluster_mut(&mut self, name: &str) -> &mut PgCluster {
        match name {
            "blue" => &mut self.blue,
            "green" => &mut self.green,
            other => panic!("no upstream named {other:?}: there are \"blue\" and \"green\""),
        }
    }

    /// The scratch dir holding each config's journal and mismatch log.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// A complete switchyard configuration for these two clusters: fresh listen and admin
    /// ports, users `app` (SCRAM, `app-secret`), `md5user` (md5, `md5-secret`) and
    /// `trustuser` (trust), upstreams without credentials (so each session authenticates
    /// upstream as its own client user with its own password), primary `blue`, no canary,
    /// mirroring and shadow reads off, and a journal dir and mismatch log of its own
    /// (`<scratch>/run-N/`), so several switchyards of one test do not share files.
    pub fn config(&self) -> DocumentMut {
        let run = self.configs_made.fetch_add(1, Ordering::Relaxed) + 1;
        let run_dir = self.scratch.path().join(format!("run-{run}"));
        let journal_dir = run_dir.join("journal");
        std::fs::create_dir_all(&journal_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", journal_dir.display()));
        let mismatch_log = run_dir.join("mismatches.jsonl");
        let text = format!(
            r#"[listen]
address = "127.0.0.1:{listen_port}"
tls = "disable"

[admin]
address = "127.0.0.1:{admin_port}"

[[users]]
name = "app"
password = "app-secret"
auth = "scram-sha-256"

[[users]]
name = "md5user"
password = "md5-secret"
auth = "md5"

[[users]]
name = "trustuser"
auth = "trust"

[upstreams.blue]
host = "127.0.0.1"
port = {blue_port}

[upstreams.green]
host = "127.0.0.1"
port = {green_port}

[routing]
primary = "blue"
canary_percent = 0
sticky = "session"
cutover_timeout_ms = 5000

[mirror]
enabled = false
queue_capacity = 1000
journal_dir = {journal_dir}

[shadow_reads]
percent = 0
recheck_after_ms = 500
ignore_columns = []
float_tolerance = 0.0
mismatch_log = {mismatch_log}

[guard]
enabled = false
"#,
            listen_port = free_port(),
            admin_port = free_port(),
            blue_port = self.blue.port(),
            green_port = self.green.port(),
            journal_dir = toml_string(&journal_dir),
            mismatch_log = toml_string(&mismatch_log),
        );
        text.parse()
            .unwrap_or_else(|e| panic!("the harness's own config is not TOML: {e}\n{text}"))
    }
}

/// A TOML basic string holding `path`.
fn toml_string(path: &Path) -> String {
    toml_edit::Value::from(path.to_string_lossy().as_ref()).to_string()
}
