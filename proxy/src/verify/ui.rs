//! What the operator sees while verify runs, and how fast it may go.
//!
//! [`Progress`]: a progress bar on stderr when stderr is a terminal (nothing otherwise, so
//! logs and CI output stay clean), measured in reference-side rows against the tables'
//! `reltuples` estimates, plus *notes*: one line on stderr whenever a chunk differs at first
//! sight and is queued for its re-check (the first [`MAX_NOTES`] of them), so an operator —
//! or a test — can see that a difference is being confirmed.
//!
//! [`Throttle`]: `--max-rate`, as a pace: after each chunk, verify sleeps until the rows
//! read so far fit the rate since the start.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Notes printed before they are summarised as "more notes suppressed".
pub const MAX_NOTES: u32 = 20;

pub struct Progress {
    bar: ProgressBar,
    notes: Cell<u32>,
}

impl Progress {
    /// A bar for `estimated_rows` (0 if unknown: it then grows as rows are read).
    pub fn new(estimated_rows: u64) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                Some(estimated_rows),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} rows, \
                 {per_sec:0}, eta {eta}  {msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            notes: Cell::new(0),
        }
    }

    /// Names the table being compared.
    pub fn table(&self, name: &str) {
        self.bar.set_message(name.to_owned());
    }

    /// Counts `rows` more rows read; the total grows if the estimate was short.
    pub fn advance(&self, rows: u64) {
        self.bar.inc(rows);
        if let Some(len) = self.bar.length() {
            if self.bar.position() > len {
                self.bar.set_length(self.bar.position());
            }
        }
    }

    /// Prints `message` on stderr above the bar (see the module docs).
    pub fn note(&self, message: &str) {
        let n = self.notes.get();
        self.notes.set(n + 1);
        if n < MAX_NOTES {
            self.bar.suspend(|| eprintln!("note: {message}"));
        } else if n == MAX_NOTES {
            self.bar
                .suspend(|| eprintln!("note: further re-check notes suppressed"));
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `--max-rate`: rows per second, on average since the start. See the module docs.
pub struct Throttle {
    rows_per_s: Option<u64>,
    start: Instant,
    rows: u64,
}

impl Throttle {
    pub fn new(rows_per_s: Option<u64>) -> Throttle {
        Throttle {
            rows_per_s,
            start: Instant::now(),
            rows: 0,
        }
    }

    /// Accounts `rows` and sleeps until they fit the rate.
    pub async fn pace(&mut self, rows: u64) {
        self.rows += rows;
        if let Some(rate) = self.rows_per_s.filter(|r| *r > 0) {
            let due = self.start + Duration::from_secs_f64(self.rows as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
    }
}
