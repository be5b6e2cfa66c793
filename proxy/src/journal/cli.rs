//! `switchyard journal status|replay`: the commands' output (human by default, JSON for
//! scripts) and exit codes — 0 done, 1 replay stopped at an entry (or interrupted), 2 the
//! journal could not be read or replayed at all.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use switchyard_config::Config;

use super::replay::{replay, ReplayOptions, ReplayReport};
use super::status::{format_unix_ms, status, JournalStatus};

const EXIT_STOPPED: u8 = 1;
const EXIT_ERROR: u8 = 2;

/// `switchyard journal status`: prints the summary of `mirror.journal_dir`.
pub fn run_status(config: &Config, json: bool) -> ExitCode {
    let dir = &config.mirror.journal_dir;
    match status(dir) {
        Ok(s) if json => print_json(&s),
        Ok(s) => {
            print_status(&s);
            ExitCode::SUCCESS
        }
        Err(e) => fail(json, &format!("cannot read the journal: {e}")),
    }
}

/// `switchyard journal replay`: applies `mirror.journal_dir` to its target upstream.
/// Ctrl-C (or SIGTERM) stops it after the entry in flight; a second one exits at once.
pub fn run_replay(config: &Config, json: bool, progress: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(json, &format!("cannot start the async runtime: {e}")),
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let options = ReplayOptions {
        progress: progress && !json,
        interrupt: Some(interrupt.clone()),
        ..ReplayOptions::default()
    };
    let result = runtime.block_on(async {
        tokio::spawn(watch_signals(interrupt));
        replay(&config.mirror.journal_dir, config, &options).await
    });
    match result {
        Ok(report) => {
            let code = if report.stopped.is_some() || report.interrupted {
                ExitCode::from(EXIT_STOPPED)
            } else {
                ExitCode::SUCCESS
            };
            if json {
                print_json(&report);
            } else {
                print_replay(&report);
            }
            code
        }
        Err(e) => fail(json, &format!("cannot replay the journal: {e}")),
    }
}

async fn watch_signals(interrupt: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    loop {
        let term_recv = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_err() { return },
            () = term_recv => {}
        }
        if interrupt.swap(true, Ordering::Relaxed) {
            eprintln!("switchyard: interrupted again; exiting now (the cursor is as last saved)");
            std::process::exit(130);
        }
        eprintln!(
            "switchyard: interrupted; stopping after the entry in flight (again to exit at once)"
        );
    }
}

fn print_json<T: Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(false, &format!("cannot encode the output: {e}")),
    }
}

fn fail(json: bool, message: &str) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("switchyard: {message}");
    ExitCode::from(EXIT_ERROR)
}

fn print_status(s: &JournalStatus) {
    println!("journal {}", s.dir.display());
    if s.segments.is_empty() {
        println!("  empty");
    } else {
        println!(
            "  {} segment(s), {} entries, {}, {} session(s) of {} switchyard run(s)",
            s.segments.len(),
            s.entries,
            human_bytes(s.bytes),
            s.sessions,
            s.runs
        );
        if let (Some(oldest), Some(newest)) = (s.oldest_unix_ms, s.newest_unix_ms) {
            println!(
                "  written from {} to {}",
                format_unix_ms(oldest),
                format_unix_ms(newest)
            );
        }
        let per_target: Vec<String> = s
            .targets
            .iter()
            .filter(|t| t.pending > 0)
            .map(|t| format!("{}: {}", t.name, t.pending))
            .collect();
        let per_target = if per_target.is_empty() {
            String::new()
        } else {
            format!(" ({})", per_target.join(", "))
        };
        println!(
            "  replayed {}, pending {} of {} session(s){per_target}",
            s.replayed, s.pending, s.pending_sessions
        );
        if let Some(seq) = s.cursor_seq {
            println!("  cursor at seq {seq}");
        }
    }
    if s.writer_active {
        println!("  a running switchyard has the journal open and may still append to it");
    }
    for torn in &s.torn_lines {
        println!("warning: torn line, ignored by replay: {torn}");
    }
    for corrupt in &s.corrupt_lines {
        println!("error: corrupt line, replay refuses until it is repaired: {corrupt}");
    }
}

fn print_replay(r: &ReplayReport) {
    for torn in &r.torn_lines {
        eprintln!("warning: skipped a torn line: {torn}");
    }
    if r.writer_active {
        eprintln!(
            "warning: a running switchyard has the journal open: entries it appends from now \
             on with a seq below the cursor will not be applied by later replays"
        );
    }
    for d in &r.divergences {
        eprintln!(
            "warning: seq {} (session {}) diverges: the primary said {:?}, the target {:?}: {}",
            d.seq, d.session, d.primary_tags, d.target_tags, d.summary
        );
    }
    if r.divergence_count > r.divergences.len() as u64 {
        eprintln!(
            "warning: {} more divergence(s) not listed",
            r.divergence_count - r.divergences.len() as u64
        );
    }
    for t in &r.rolled_back {
        eprintln!(
            "warning: session {} ends inside a transaction (seq {} to {}, {} entries) with no \
             COMMIT in the journal: rolled back on the target and left pending",
            t.session, t.first_seq, t.last_seq, t.entries
        );
    }
    if r.pending_before == 0 {
        println!(
            "nothing to replay in {}: {} entries, all applied",
            r.dir.display(),
            r.already_applied
        );
        return;
    }
    let targets = match r.targets.as_slice() {
        [] => r
            .stopped
            .as_ref()
            .map(|s| s.target.clone())
            .unwrap_or_else(|| "the target".into()),
        names => names.join(" and "),
    };
    let line = format!(
        "applied {} entries of {} sessions to {} in {:.1} s",
        r.applied,
        r.sessions,
        targets,
        r.elapsed_ms as f64 / 1000.0
    );
    match &r.stopped {
        None if r.interrupted => {
            println!(
                "{line}; interrupted, {} entries still pending",
                r.pending_after
            );
        }
        None => println!("{line}"),
        Some(s) => {
            eprintln!(
                "replay stopped at seq {} ({} of session {}, {} line {}) on {}: {}",
                s.seq,
                s.kind,
                s.session,
                s.file.display(),
                s.line,
                s.target,
                s.reason
            );
            eprintln!("  statement: {}", s.summary);
            let cursor = r.cursor_seq.map_or_else(
                || "before the first entry".to_owned(),
                |c| format!("at seq {c}"),
            );
            eprintln!(
                "  the cursor is {cursor}; {} entries pending. Fix the cause and run \
                 `switchyard journal replay` again: it resumes with this entry.",
                r.pending_after
            );
            println!("{line} before stopping");
        }
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}
