//! `switchyard-bench`: the latency probe, the idle-session holder and the chart used by
//! `bench/run.sh`.
//!
//! - `latency --url URL --iterations N --warmup N`: one client, one connection, a prepared
//!   `SELECT 1` run N times back to back (after `--warmup` untimed runs); each round trip
//!   (Bind/Execute/Sync → rows/ReadyForQuery) is timed and recorded in an HDR histogram.
//!   Prints one JSON object: `{"p50_us":…,"p99_us":…,"p999_us":…,"mean_us":…,"n":…}`.
//! - `idle --url URL --sessions N --hold-secs S`: opens N sessions (a few at a time), checks
//!   each with one `SELECT 1`, prints `open N` once all are open, then holds them idle for
//!   S seconds (or until killed). `run.sh` reads the proxy's RSS before and after.
//! - `chart --runs runs.tsv --latency latency.tsv --out results.png`: draws the PNG chart
//!   of a run's raw TSVs (see [`chart`]).
//!
//! `URL` is anything `tokio_postgres::Config` parses: `postgresql://user:pw@host:port/db`
//! or `host=… port=… user=… password=… dbname=…`.

mod chart;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio_postgres::{Client, NoTls};

#[derive(Parser)]
#[command(
    name = "switchyard-bench",
    about = "Latency probe, idle-session holder and results chart"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Single-client round trips of a prepared `SELECT 1`; prints percentiles as JSON.
    Latency {
        /// Connection string (URL or key=value).
        #[arg(long)]
        url: String,
        /// Timed round trips.
        #[arg(long, default_value_t = 20_000)]
        iterations: u64,
        /// Untimed round trips first (connection and caches warm up).
        #[arg(long, default_value_t = 2_000)]
        warmup: u64,
    },
    /// Opens N sessions, prints `open N` when all are open, and holds them idle.
    Idle {
        /// Connection string (URL or key=value).
        #[arg(long)]
        url: String,
        /// Sessions to open.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Seconds to hold them after all are open.
        #[arg(long, default_value_t = 30)]
        hold_secs: u64,
        /// Sessions being opened at the same time.
        #[arg(long, default_value_t = 32)]
        parallel: usize,
    },
    /// Draws the PNG chart of a run from its raw TSVs (throughput ratios, latency, CPU).
    Chart {
        /// pgbench runs (bench/raw/runs.tsv).
        #[arg(long)]
        runs: PathBuf,
        /// Latency probe rounds (bench/raw/latency.tsv).
        #[arg(long)]
        latency: PathBuf,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Title line of the chart.
        #[arg(long, default_value = "switchyard benchmarks (bench/run.sh)")]
        title: String,
        #[arg(long, default_value_t = 1600)]
        width: u32,
        #[arg(long, default_value_t = 1100)]
        height: u32,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Latency {
            url,
            iterations,
            warmup,
        } => latency(&url, iterations, warmup).await,
        Command::Idle {
            url,
            sessions,
            hold_secs,
            parallel,
        } => idle(&url, sessions, hold_secs, parallel).await,
        Command::Chart {
            runs,
            latency,
            out,
            title,
            width,
            height,
        } => chart::draw(&runs, &latency, &out, &title, (width, height)),
    }
}

/// Connects and drives the connection on its own task.
async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

async fn latency(url: &str, iterations: u64, warmup: u64) -> Result<()> {
    if iterations == 0 {
        bail!("--iterations must be positive");
    }
    let client = connect(url).await?;
    let stmt = client.prepare("SELECT 1").await?;
    for _ in 0..warmup {
        client.query_one(&stmt, &[]).await?;
    }
    // 1 ns .. 60 s, 3 significant digits; recorded in nanoseconds.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for _ in 0..iterations {
        let start = Instant::now();
        let row = client.query_one(&stmt, &[]).await?;
        let elapsed = start.elapsed();
        let one: i32 = row.get(0);
        if one != 1 {
            bail!("SELECT 1 returned {one}");
        }
        hist.record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1))?;
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "{{\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"mean_us\":{:.1},\"n\":{}}}",
        us(hist.value_at_quantile(0.50)),
        us(hist.value_at_quantile(0.99)),
        us(hist.value_at_quantile(0.999)),
        hist.mean() / 1000.0,
        hist.len()
    );
    Ok(())
}

async fn idle(url: &str, sessions: usize, hold_secs: u64, parallel: usize) -> Result<()> {
    let parallel = parallel.max(1);
    let mut clients = Vec::with_capacity(sessions);
    let mut pending = JoinSet::new();
    let mut next = 0;
    while clients.len() < sessions {
        while next < sessions && pending.len() < parallel {
            let url = url.to_owned();
            pending.spawn(async move {
                let client = connect(&url).await?;
                client.simple_query("SELECT 1").await?;
                anyhow::Ok(client)
            });
            next += 1;
        }
        let opened = pending
            .join_next()
            .await
            .context("no session left to wait for")??
            .with_context(|| format!("opening session {}", clients.len() + 1))?;
        clients.push(opened);
    }
    println!("open {}", clients.len());
    std::io::stdout().flush()?;
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    // Still alive at the end: every session answers.
    for client in &clients {
        client.simple_query("SELECT 1").await?;
    }
    println!("closed {}", clients.len());
    Ok(())
}
