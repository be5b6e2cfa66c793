//! `switchyard verify`: proves, table by table, that the two upstreams hold the same data —
//! or names every difference, down to the row and column.
//!
//! It runs online, next to live traffic and the mirror, and reads only: one connection per
//! upstream, one short autocommit statement at a time, data hashed inside each database so
//! that only counts, checksums and (for differing chunks) keys and row hashes cross the
//! network. Memory stays bounded by the chunk size, whatever the table size.
//!
//! The steps, each in its own module:
//!
//! * [`connect`]: log in to both upstreams (the config's credentials, TLS) and pin the
//!   settings that make every value print the same on both sides;
//! * [`catalog`]: list both sides' tables, columns and primary keys, pair them and name
//!   the schema differences;
//! * [`chunk`]: tables with a primary key, compared by key ranges with checksums, and
//!   differing ranges narrowed to rows and re-checked before they are reported;
//! * [`multiset`]: tables without one, compared as multisets of row hashes;
//! * [`sql`]: the queries, the row's canonical text and the checksum (documented there);
//! * [`report`]: the human summary and `--json`; [`ui`]: the progress bar and `--max-rate`.
//!
//! The *reference* side is `routing.primary` (the database in use): chunk boundaries come
//! from it, and "missing"/"extra" are said of the other side.
//!
//! What counts as equal: two values are equal when their text forms are, under the same
//! pinned session settings ([`connect::SESSION_SETTINGS`]). So `timestamptz` compares the
//! instant (printed in UTC), whatever zone it was written in; `jsonb` compares canonically
//! (its text is normalised: key order, whitespace), while `json` compares verbatim;
//! `numeric` keeps its scale (`1.0` ≠ `1.00`: an application would print them
//! differently); floats print the shortest text that round-trips (`extra_float_digits =
//! 1`, exact on PostgreSQL ≥ 12); `bytea` prints as hex; NULL differs from every value,
//! including `''`. A column whose type differs on the two sides is reported, and its
//! values are still compared by text.
//!
//! Exit codes: 0 consistent, 1 different, 2 could not verify (bad config, connection
//! refused, a query failed) — 2 also when some tables differed but others could not be
//! verified, because the run is incomplete.

pub mod catalog;
pub mod chunk;
pub mod connect;
pub mod multiset;
pub mod report;
pub mod sql;
pub mod ui;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use switchyard_config::Config;

use catalog::{Entry, IgnoreColumns};
use connect::{Conn, Target};
use report::{Mode, Report, TableReport};
use ui::{Progress, Throttle};

/// A primary-key value: each key column's text form.
pub type Key = Vec<String>;

/// `switchyard verify`: prove that the two upstreams hold the same data, table by table.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The configuration file (its two upstreams are compared).
    #[arg(long, short, env = "SWITCHYARD_CONFIG")]
    pub config: PathBuf,
    /// Only these tables: `table` (in any schema) or `schema.table`, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "T1,T2")]
    pub tables: Vec<String>,
    /// Only tables in these schemas, comma-separated (default: every non-system schema).
    #[arg(long = "schema", value_delimiter = ',', value_name = "S")]
    pub schemas: Vec<String>,
    /// Rows per chunk: the unit that is checksummed, and narrowed to rows when it differs.
    #[arg(long, default_value_t = 10_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub chunk_rows: u64,
    /// Read at most this many rows per second from each upstream, on average.
    #[arg(long, value_name = "ROWS_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rate: Option<u64>,
    /// Columns left out of the comparison: `table.col`, `schema.table.col`, `*.col` or
    /// `col`, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "TABLE.COL,...")]
    pub ignore_columns: Vec<String>,
    /// How long a difference must persist before it is reported (in-flight mirrored writes
    /// settle in this time).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub recheck_after_ms: u64,
    /// Print the report as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Log in as this user (default: each upstream's `user`); the password comes from the
    /// upstream or from this user's `[[users]]` entry.
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// The database to compare (default: each upstream's `database`).
    #[arg(long, value_name = "D")]
    pub database: Option<String>,
    /// Differing rows listed per table; more are counted, not listed.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_reported_rows: usize,
}

/// The knobs the comparison modules read.
#[derive(Debug, Clone)]
pub struct Options {
    pub chunk_rows: u64,
    pub recheck: Duration,
}

/// What a table comparison works with: both connections (reference first), the options,
/// the progress bar and the rate limit.
pub struct Ctx<'a> {
    pub conns: &'a mut [Conn; 2],
    pub opts: &'a Options,
    pub progress: &'a Progress,
    pub throttle: &'a mut Throttle,
}

/// Runs `switchyard verify` and returns its exit code (0 consistent, 1 different, 2 error),
/// having printed the report on stdout and errors on stderr.
pub fn run(args: VerifyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("switchyard verify: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(verify(&args)) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report.json()).unwrap_or_default()
                );
            } else {
                print!("{}", report.human());
            }
            if report.has_errors() {
                ExitCode::from(2)
            } else if report.consistent() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("switchyard verify: {e:#}");
            if args.json {
                // Scripts parse stdout: give them a document that says why there is no report.
                let doc = serde_json::json!({"consistent": false, "error": format!("{e:#}")});
                println!("{doc}");
            }
            ExitCode::from(2)
        }
    }
}

/// Everything but the printing: an `Err` is a failure before any table was compared.
pub async fn verify(args: &VerifyArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let config = Config::load(&args.config)
        .with_context(|| format!("invalid config {}", args.config.display()))?;
    let ignore = IgnoreColumns::parse(&args.ignore_columns)?;
    let reference = config.routing.primary.clone();
    let other = config.other_upstream(&reference).to_owned();
    let mut targets = Vec::with_capacity(2);
    for name in [&reference, &other] {
        let upstream = config
            .upstream(name)
            .with_context(|| format!("no upstream named {name}"))?;
        targets.push(Target::resolve(
            &config,
            upstream,
            args.user.as_deref(),
            args.database.as_deref(),
        )?);
    }
    let (a, b) = tokio::try_join!(targets[0].connect(), targets[1].connect())?;
    let names = [reference, other];
    let descriptions = [
        format!(
            "{}:{}/{}",
            targets[0].host, targets[0].port, targets[0].database
        ),
        format!(
            "{}:{}/{}",
            targets[1].host, targets[1].port, targets[1].database
        ),
    ];
    let mut conns = [
        Conn::new(names[0].clone(), a),
        Conn::new(names[1].clone(), b),
    ];

    let (tables_a, tables_b) = tokio::try_join!(
        async {
            catalog::list(conns[0].client(), &args.schemas)
                .await
                .with_context(|| format!("on {}", names[0]))
        },
        async {
            catalog::list(conns[1].client(), &args.schemas)
                .await
                .with_context(|| format!("on {}", names[1]))
        },
    )?;
    let entries = catalog::select(
        catalog::pair([tables_a, tables_b], &ignore, &names),
        &args.tables,
    )?;

    let mut warnings = Vec::new();
    if entries.is_empty() {
        warnings.push(if args.schemas.is_empty() {
            "no tables on either upstream: nothing to compare".to_owned()
        } else {
            format!(
                "no tables in schema(s) {} on either upstream: nothing to compare",
                args.schemas.join(", ")
            )
        });
    }
    let estimated: f64 = entries
        .iter()
        .map(|e| match e {
            Entry::Both(plan) => plan.estimated_rows.max(0.0),
            Entry::OnlyOn(..) => 0.0,
        })
        .sum();
    let progress = Progress::new(estimated as u64);
    let mut throttle = Throttle::new(args.max_rate);
    let opts = Options {
        chunk_rows: args.chunk_rows,
        recheck: Duration::from_millis(args.recheck_after_ms),
    };

    let mut tables = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut report = TableReport::new(entry.name().clone(), args.max_reported_rows);
        match entry {
            Entry::OnlyOn(_, side) => report.only_on = Some(side),
            Entry::Both(plan) => {
                progress.table(&plan.name.to_string());
                report.schema = plan.schema_differences.clone();
                report.warnings = plan.warnings.clone();
                let mut ctx = Ctx {
                    conns: &mut conns,
                    opts: &opts,
                    progress: &progress,
                    throttle: &mut throttle,
                };
                let outcome = match &plan.key {
                    Some(key) => {
                        report.mode = Some(Mode::Keyed(key.clone()));
                        chunk::compare(&mut ctx, &plan, &mut report).await
                    }
                    None => {
                        report.mode = Some(Mode::Multiset);
                        multiset::compare(&mut ctx, &plan, &mut report).await
                    }
                };
                if let Err(e) = outcome {
                    report.error = Some(format!("{e:#}"));
                }
                for conn in conns.iter_mut() {
                    conn.forget_statements();
                }
            }
        }
        tables.push(report);
    }
    progress.finish();
    Ok(Report {
        names,
        targets: descriptions,
        tables,
        warnings,
        elapsed: started.elapsed(),
    })
}
