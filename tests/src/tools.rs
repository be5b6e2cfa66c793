//! The command-line tools tests drive: pgbench through switchyard, and switchyard's own
//! `journal` subcommands against a running (or stopped) instance's config.

use std::process::Command;

use crate::pg::pg_bin;
use crate::proxy::{switchyard_bin, Switchyard};

/// Runs pgbench as `app` against 127.0.0.1:`port` and returns its output; panics with the
/// output if pgbench fails.
pub fn pgbench(port: u16, args: &[&str]) -> String {
    let out = Command::new(pg_bin("pgbench"))
        .args(args)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "app",
            "app",
        ])
        .env("PGPASSWORD", "app-secret")
        .output()
        .expect("run pgbench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

/// A count from pgbench's summary, e.g. `"number of failed transactions: "`.
fn summary_count(out: &str, prefix: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.split(|c: char| c == '/' || c.is_whitespace()).next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in pgbench's output:\n{out}"))
}

/// "number of failed transactions" in a pgbench run's output.
pub fn failed_transactions(out: &str) -> u64 {
    summary_count(out, "number of failed transactions: ")
}

/// "number of transactions actually processed" in a pgbench run's output.
pub fn processed_transactions(out: &str) -> u64 {
    summary_count(out, "number of transactions actually processed: ")
}

impl Switchyard {
    fn journal_command(&self, args: &[&str]) -> std::process::Output {
        Command::new(switchyard_bin())
            .arg("journal")
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .output()
            .expect("run switchyard journal")
    }

    /// `switchyard journal status --json` for this instance's journal.
    pub fn journal_status(&self) -> serde_json::Value {
        let out = self.journal_command(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "journal status is not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// `switchyard journal replay`; panics with its output if it fails.
    pub fn journal_replay(&self) -> String {
        let out = self.journal_command(&["replay"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "journal replay failed:\n{text}");
        text
    }

    /// What an operator does after a run: replay whatever the journal holds.
    pub fn replay_pending_journal(&self) {
        if self.journal_status()["pending"].as_u64().unwrap_or(0) > 0 {
            eprintln!("the secondary fell behind; replaying the journal");
            self.journal_replay();
        }
    }
}
