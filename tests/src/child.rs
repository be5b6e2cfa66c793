//! Child processes that cannot outlive the test process that started them.
//!
//! A test that panics still runs `Drop`, which stops its servers cleanly. A test process that
//! is killed outright (SIGKILL from a timeout, Ctrl-C on `cargo test`, a crash) runs nothing,
//! and a PostgreSQL server left behind would hold its port and temp dir forever. So every
//! long-lived child (postmaster, switchyard) is started with `PR_SET_PDEATHSIG = SIGKILL`.
//!
//! Two details make that robust:
//!
//! * Linux sends the parent-death signal when the *thread* that forked the child exits, not
//!   the process. Tests start servers from short-lived threads (parallel startup,
//!   `spawn_blocking`, tokio workers), so children are never forked from the caller's thread:
//!   they are forked by one dedicated spawner thread that lives as long as the process.
//! * The kernel clears the setting when the child changes its credentials, so it is set in
//!   `pre_exec`, which `std` runs *after* the `setgid`/`setuid` requested with
//!   [`CommandExt::uid`]. The child then checks that its parent is still the test process,
//!   closing the race where the parent died before `prctl` took effect.
//!
//! PostgreSQL backends are children of the postmaster, not of the test; they exit by
//! themselves when they notice that the postmaster is gone.
//!
//! This module also walks `/proc` to find a process's children (to pause or kill a whole
//! cluster) and to wait until processes are really gone.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

type SpawnJob = (Command, mpsc::SyncSender<io::Result<Child>>);

/// The spawner thread's inbox. The thread is never joined and never exits before the process.
static SPAWNER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();

fn spawner() -> &'static mpsc::Sender<SpawnJob> {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("switchyard-tests-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    // The requester may have given up (panicked); the child is then dropped
                    // here, still tied to this thread and so still killed at process exit.
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the child-spawner thread");
        tx
    })
}

/// Spawns `command` so that the child receives SIGKILL when the test process dies.
///
/// Use [`CommandExt::uid`]/[`CommandExt::gid`] on `command` to drop privileges; they are
/// applied before the parent-death signal is armed.
pub fn spawn_tied(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only calls the
    // async-signal-safe functions prctl(2) and getppid(2); it does not allocate.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                // The test process died between fork and prctl: do not start orphaned.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    spawner()
        .send((command, reply_tx))
        .expect("the child-spawner thread is alive for the whole process");
    reply_rx
        .recv()
        .expect("the child-spawner thread answers every request")
}

/// The direct children of `pid`, read from `/proc/*/stat`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| proc_stat(candidate).is_some_and(|stat| stat.ppid == pid))
        .collect()
}

/// `pid` and all its descendants, parents before children.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() {
        let children = children_of(tree[next]);
        tree.extend(children);
        next += 1;
    }
    tree
}

/// Whether `pid` is a running (not yet exited) process. A zombie counts as gone: it holds no
/// memory, sockets or shared memory attachments any more.
pub fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|stat| stat.state != 'Z' && stat.state != 'X')
}

/// Waits until none of `pids` is alive; false if some still are after `timeout`.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pids.iter().any(|&pid| is_alive(pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

struct ProcStat {
    state: char,
    ppid: u32,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(ProcStat { state, ppid })
}
