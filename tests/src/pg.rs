//! A throwaway PostgreSQL cluster per test: [`PgCluster`].
//!
//! Each cluster lives in its own temp dir (`data/` = PGDATA, `postgres.log`, the unix
//! socket) and listens on 127.0.0.1 on a free port. Tests break it on purpose — stop,
//! crash (`kill`), freeze (`pause`) — and start it again on the same port with the same data.
//!
//! It is tuned for tests: `fsync=off` and no full-page writes, which only matter if the
//! *machine* crashes. `synchronous_commit` stays `on`, deliberately: [`PgCluster::kill`] is a
//! server crash, and tests assert that what PostgreSQL acknowledged survives one ("nothing
//! the primary acknowledged is lost"). With `fsync=off` a synchronous commit costs one
//! write(2); with `synchronous_commit=off` a crash would lose the last ~0.6 s of
//! acknowledged commits (they sit in shared WAL buffers).
//!
//! Authentication is real, because switchyard's upstream authentication is under test:
//! TCP connections use SCRAM-SHA-256 (md5 for the role `md5user`, trust for `trustuser`);
//! the unix socket trusts everyone, so the harness itself ([`PgCluster::psql`]) needs no
//! password. The superuser is `postgres` with password `postgres`.
//!
//! Lifetime: the postmaster is started directly (not through `pg_ctl start`) as a child tied
//! to the test process ([`crate::child::spawn_tied`]), so a test process that dies without
//! unwinding takes its servers with it. `Drop` stops the server with
//! `pg_ctl stop -m immediate` (falling back to SIGKILL) and removes the directory, also when
//! the test panicked. When running as root, everything server-side runs as the `postgres` OS
//! user ([`crate::server_user`]).

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::child::{process_tree, spawn_tied, wait_gone};
use crate::client::{self, run_psql};
use crate::port::free_port;
use crate::server_user::ServerUser;
use crate::tls::ServerTls;

/// How long a starting server may take to accept connections (2 cores, parallel builds).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The superuser's name and password.
pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "postgres";

/// How a cluster differs from the default one.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Serve TLS with these files (copied into the cluster dir, owned by the server user).
    pub ssl: Option<ServerTls>,
    /// `password_encryption`: "scram-sha-256" (default) or "md5". With "md5", TCP
    /// connections of other roles authenticate with md5 too.
    pub password_encryption: &'static str,
    /// Extra `pg_hba.conf` lines, placed before the default ones (first match wins).
    pub hba: Vec<String>,
    /// Extra `postgresql.conf` lines, placed after the harness's settings (last one wins).
    pub extra_conf: Vec<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            ssl: None,
            password_encryption: "scram-sha-256",
            hba: Vec::new(),
            extra_conf: Vec::new(),
        }
    }
}

/// A running (or deliberately stopped) throwaway PostgreSQL server. See the module docs.
pub struct PgCluster {
    name: String,
    user: ServerUser,
    port: u16,
    data: PathBuf,
    log_path: PathBuf,
    postmaster: Option<Child>,
    paused: bool,
    /// Declared last: removed only after `Drop::drop` has stopped the server.
    dir: TempDir,
}

impl PgCluster {
    /// Starts a default cluster; `name` appears in its directory name and in messages.
    pub fn start(name: &str) -> PgCluster {
        PgCluster::start_with(name, PgOptions::default())
    }

    /// Starts a cluster with `options`. Panics, with the server log, if it does not come up.
    pub fn start_with(name: &str, options: PgOptions) -> PgCluster {
        let user = ServerUser::get();
        let dir = tempfile::Builder::new()
            .prefix(&format!("switchyard-pg-{name}-"))
            .tempdir()
            .expect("create a temp dir for a PostgreSQL cluster");
        user.chown(dir.path());
        let mut cluster = PgCluster {
            name: name.to_string(),
            user,
            port: 0,
            data: dir.path().join("data"),
            log_path: dir.path().join("postgres.log"),
            postmaster: None,
            paused: false,
            dir,
        };
        cluster.initdb();
        cluster.write_hba(&options);
        let ssl = options
            .ssl
            .as_ref()
            .map(|tls| tls.copy_for_postgres(cluster.dir.path()));

        // Another test process may take the port between `free_port` and our bind: then
        // pick another one.
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            cluster.port = free_port();
            cluster.write_conf(&options, ssl.as_ref());
            let log_before = cluster.log().len();
            cluster.spawn_postmaster();
            match cluster.wait_ready() {
                Ok(()) => return cluster,
                Err(err) => {
                    let new_log = cluster.log().get(log_before..).unwrap_or("").to_string();
                    let port_taken = new_log.contains("Address already in use");
                    if port_taken && attempt < ATTEMPTS {
                        cluster.kill_tree();
                        continue;
                    }
                    cluster.fail(&err);
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCP host: always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The cluster's name as given to `start`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// PGDATA.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The directory holding the unix socket (and PGDATA, and the log).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A libpq key=value connection string over TCP.
    pub fn connstr(&self, user: &str, password: &str, dbname: &str) -> String {
        client::connstr(self.host(), self.port, user, password, dbname)
    }

    /// A `postgresql://` URL over TCP.
    pub fn url(&self, user: &str, password: &str, dbname: &str) -> String {
        client::url(self.host(), self.port, user, password, dbname)
    }

    /// Runs `sql` (any number of statements, psql meta-commands allowed) as the superuser
    /// in database `postgres` over the unix socket; returns the unaligned, tuples-only
    /// output. Panics with psql's stderr on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// [`PgCluster::psql`], returning psql's stderr instead of panicking.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.try_psql_in("postgres", sql)
    }

    /// [`PgCluster::psql`] in database `dbname`.
    pub fn psql_in(&self, dbname: &str, sql: &str) -> String {
        self.try_psql_in(dbname, sql).unwrap_or_else(|err| {
            panic!(
                "psql on cluster `{}` (db {dbname}) failed: {err}\n--- sql ---\n{sql}",
                self.name
            )
        })
    }

    /// [`PgCluster::try_psql`] in database `dbname`.
    pub fn try_psql_in(&self, dbname: &str, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        let socket_dir = self.dir.path().to_string_lossy().into_owned();
        let args = [
            "-h",
            socket_dir.as_str(),
            "-p",
            port.as_str(),
            "-U",
            SUPERUSER,
            "-d",
            dbname,
        ];
        run_psql(&args, sql)
    }

    /// Creates (idempotently) the roles and database the tests use:
    /// `app` / `app-secret` (SCRAM) owning database `app`, `md5user` / `md5-secret` (an md5
    /// password hash, authenticated with md5) and `trustuser` (no password, trusted from
    /// 127.0.0.1). All three may create objects in `app`'s public schema.
    pub fn create_app(&self) {
        self.psql(
            "DO $$
             BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN
                 CREATE ROLE app LOGIN;
               END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'md5user') THEN
                 CREATE ROLE md5user LOGIN;
               END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trustuser') THEN
                 CREATE ROLE trustuser LOGIN;
               END IF;
             END $$;
             ALTER ROLE app PASSWORD 'app-secret';
             SET password_encryption = 'md5';
             ALTER ROLE md5user PASSWORD 'md5-secret';
             RESET password_encryption;
             SELECT 'CREATE DATABASE app OWNER app'
               WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app') \\gexec
             \\connect app
             GRANT ALL ON SCHEMA public TO md5user, trustuser;",
        );
    }

    /// Stops the server with `pg_ctl stop -m fast` (clients are disconnected, a clean
    /// shutdown). Does nothing if it is not running.
    pub fn stop(&mut self) {
        if self.postmaster.is_none() {
            return;
        }
        self.resume_if_paused();
        let stopped = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"]);
        if let Err(err) = stopped {
            eprintln!(
                "pg_ctl stop on cluster `{}` failed ({err}); killing it",
                self.name
            );
            self.kill_tree();
        }
        if let Some(mut child) = self.postmaster.take() {
            child.wait().expect("wait for the stopped postmaster");
        }
    }

    /// Crashes the server: SIGKILL to the postmaster and all its backends, as in a power
    /// cut. Returns when every process of the cluster is gone.
    pub fn kill(&mut self) {
        assert!(
            self.postmaster.is_some(),
            "kill(): cluster `{}` is not running",
            self.name
        );
        self.kill_tree();
    }

    /// Starts the server again (after `stop` or `kill`) on the same port with the same data,
    /// running crash recovery if needed. Panics, with the log, if it does not come up.
    pub fn start_again(&mut self) {
        assert!(
            self.postmaster.is_none(),
            "start_again(): cluster `{}` is still running",
            self.name
        );
        self.spawn_postmaster();
        if let Err(err) = self.wait_ready() {
            self.fail(&err);
        }
    }

    /// Freezes every process of the cluster (postmaster first, then its children) with
    /// SIGSTOP. Connections still complete at the TCP level (the kernel queues them) but get
    /// no answer: a hung server.
    pub fn pause(&mut self) {
        let postmaster = self.postmaster_pid();
        // Stop the postmaster first so it forks nothing after we list its children.
        let _ = signal(postmaster, Signal::SIGSTOP);
        for pid in process_tree(postmaster) {
            let _ = signal(pid, Signal::SIGSTOP);
        }
        self.paused = true;
    }

    /// Undoes [`PgCluster::pause`] with SIGCONT.
    pub fn resume(&mut self) {
        let postmaster = self.postmaster_pid();
        for pid in process_tree(postmaster).into_iter().rev() {
            let _ = signal(pid, Signal::SIGCONT);
        }
        self.paused = false;
    }

    /// The postmaster's process ID. Panics if the server is not running.
    pub fn postmaster_pid(&self) -> u32 {
        self.postmaster
            .as_ref()
            .unwrap_or_else(|| panic!("cluster `{}` is not running", self.name))
            .id()
    }

    /// Whether the server has been started and not stopped or killed since.
    pub fn is_running(&self) -> bool {
        self.postmaster.is_some()
    }

    /// The server log so far (everything the postmaster wrote to stderr).
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    fn initdb(&self) {
        let pwfile = self.dir.path().join("pwfile");
        fs::write(&pwfile, format!("{SUPERUSER_PASSWORD}\n")).expect("write the initdb pwfile");
        self.user.chown(&pwfile);
        let output = self
            .user
            .command(&pg_bin("initdb"), self.dir.path())
            .arg("-D")
            .arg(&self.data)
            .args(["-U", SUPERUSER])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", pg_bin("initdb").display()));
        let _ = fs::remove_file(&pwfile);
        assert!(
            output.status.success(),
            "initdb for cluster `{}` failed ({}):\n{}{}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn write_hba(&self, options: &PgOptions) {
        let method = if options.password_encryption == "md5" {
            "md5"
        } else {
            "scram-sha-256"
        };
        let mut hba = String::from("# extra lines from PgOptions::hba\n");
        for line in &options.hba {
            hba.push_str(line);
            hba.push('\n');
        }
        hba.push_str(&format!(
            "# the harness itself, over the unix socket
local all all trust
local replication all trust
# roles made by PgCluster::create_app
host all trustuser 127.0.0.1/32 trust
host all md5user 127.0.0.1/32 md5
host replication trustuser 127.0.0.1/32 trust
host replication md5user 127.0.0.1/32 md5
# everyone else
host all all 127.0.0.1/32 {method}
host replication all 127.0.0.1/32 {method}
"
        ));
        let path = self.data.join("pg_hba.conf");
        fs::write(&path, hba).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Writes the harness's settings to `switchyard-tests.conf`, included from the end of
    /// `postgresql.conf` (rewritten when a new port is picked).
    fn write_conf(&self, options: &PgOptions, ssl: Option<&ServerTls>) {
        let quote = |value: &Path| format!("'{}'", value.display().to_string().replace('\'', "''"));
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = {socket_dir}
fsync = off
synchronous_commit = on
full_page_writes = off
max_connections = 300
shared_buffers = 32MB
password_encryption = '{password_encryption}'
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
",
            port = self.port,
            socket_dir = quote(self.dir.path()),
            password_encryption = options.password_encryption,
        );
        if let Some(ssl) = ssl {
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = {}\nssl_key_file = {}\nssl_ca_file = {}\n",
                quote(&ssl.cert),
                quote(&ssl.key),
                quote(&ssl.ca)
            ));
        }
        for line in &options.extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let path = self.data.join("switchyard-tests.conf");
        fs::write(&path, conf).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));

        let main_conf = self.data.join("postgresql.conf");
        let mut main = fs::read_to_string(&main_conf).expect("read postgresql.conf");
        if !main.contains("include 'switchyard-tests.conf'") {
            main.push_str("\ninclude 'switchyard-tests.conf'\n");
            fs::write(&main_conf, main).expect("write postgresql.conf");
        }
    }

    fn spawn_postmaster(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log_path.display()));
        self.user.chown(&self.log_path);
        let stderr = log.try_clone().expect("clone the log file handle");
        let mut command = self.user.command(&pg_bin("postgres"), self.dir.path());
        command
            .arg("-D")
            .arg(&self.data)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = spawn_tied(command)
            .unwrap_or_else(|e| panic!("start {}: {e}", pg_bin("postgres").display()));
        self.postmaster = Some(child);
        self.paused = false;
    }

    /// Waits until `postmaster.pid` says our postmaster is `ready` and the TCP port accepts.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let child = self.postmaster.as_mut().expect("postmaster spawned");
        let pid = child.id().to_string();
        loop {
            if let Some(status) = child.try_wait().expect("poll the postmaster") {
                return Err(format!("the postmaster exited ({status})"));
            }
            // Lines 1 and 8 of postmaster.pid: the PID and the status. A pid file left by a
            // killed server still says "ready", hence the PID check.
            let pid_file = fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
            let lines: Vec<&str> = pid_file.lines().collect();
            let ready = lines.first() == Some(&pid.as_str())
                && lines.get(7).map(|status| status.trim()) == Some("ready");
            if ready && TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not accepting connections after {}s",
                    STARTUP_TIMEOUT.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    fn fail(&mut self, err: &str) -> ! {
        let log = self.log();
        self.kill_tree();
        panic!(
            "PostgreSQL cluster `{}` did not start on 127.0.0.1:{}: {err}\n--- {} ---\n{log}",
            self.name,
            self.port,
            self.log_path.display()
        );
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let output = self
            .user
            .command(&pg_bin("pg_ctl"), self.dir.path())
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run pg_ctl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {args:?}: {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn resume_if_paused(&mut self) {
        if self.paused && self.postmaster.is_some() {
            self.resume();
        }
    }

    /// SIGKILLs the postmaster and its children, reaps the postmaster and waits until all are
    /// gone. Never panics (it runs from `Drop`).
    fn kill_tree(&mut self) {
        let Some(mut child) = self.postmaster.take() else {
            return;
        };
        let postmaster = child.id();
        // Frozen, the postmaster cannot fork a backend we would miss.
        let _ = signal(postmaster, Signal::SIGSTOP);
        let tree = process_tree(postmaster);
        for &pid in tree.iter().rev() {
            let _ = signal(pid, Signal::SIGKILL);
        }
        let _ = child.wait();
        if !wait_gone(&tree, Duration::from_secs(10)) {
            eprintln!(
                "cluster `{}`: some of {tree:?} still alive 10s after SIGKILL",
                self.name
            );
        }
        self.paused = false;
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let Some(child) = self.postmaster.as_mut() else {
            return;
        };
        let running = matches!(child.try_wait(), Ok(None));
        if running {
            if self.paused {
                self.resume();
            }
            // An immediate shutdown: no checkpoint, nothing to keep.
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "10"]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(child) = self.postmaster.as_mut() {
            match child.try_wait() {
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) | Err(_) => {
                    self.kill_tree();
                    break;
                }
                Ok(Some(_)) => {
                    self.postmaster = None;
                }
            }
        }
        // `self.dir` (a TempDir) is removed when the fields are dropped, after this.
    }
}

/// The directory of PostgreSQL's server binaries: `$PG_BINDIR`, else `pg_config --bindir`
/// if it has `initdb`, else Debian's `/usr/lib/postgresql/15/bin`.
pub fn pg_bindir() -> &'static Path {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("PG_BINDIR") {
            return PathBuf::from(dir);
        }
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
        if let Some(dir) = from_pg_config.filter(|dir| dir.join("initdb").exists()) {
            return dir;
        }
        let debian = PathBuf::from("/usr/lib/postgresql/15/bin");
        assert!(
            debian.join("initdb").exists(),
            "PostgreSQL server binaries not found (no initdb in `pg_config --bindir` nor in {}): \
             install postgresql-15 (./scripts/test.sh does) or set PG_BINDIR",
            debian.display()
        );
        debian
    })
}

/// The path of PostgreSQL program `name` (initdb, postgres, pg_ctl, psql, pgbench, …).
pub fn pg_bin(name: &str) -> PathBuf {
    pg_bindir().join(name)
}

fn signal(pid: u32, signal: Signal) -> nix::Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
}
