//! The command line: `switchyard serve`, `switchyard check-config`. This is the binary's
//! edge, where errors become messages and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard_config::{Config, LogFormat};
use tokio::net::TcpListener;

use crate::journal::Journal;
use crate::{admin, listener, state::Shared};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "PostgreSQL proxy for zero-downtime migrations"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The configuration file.
        #[arg(long, short, env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Log as JSON lines (overrides logging.format).
        #[arg(long)]
        json_logs: bool,
    },
    /// Validate a configuration file and print a summary; exit code 1 if it is invalid.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Inspect or replay the mirror's journal (`mirror.journal_dir`).
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Compare the two upstreams table by table.
    Verify(crate::verify::VerifyArgs),
    /// Look at and change a running switchyard through its admin API.
    Ctl(crate::ctl::CtlArgs),
}

#[derive(Subcommand)]
enum JournalAction {
    /// Summarise the journal: entries, sessions, what is still to replay.
    Status {
        #[arg(long, short, env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Apply the journal to its target upstream in commit order (resumable).
    Replay {
        #[arg(long, short, env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// No progress bar even on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => {
                let names = config.upstreams.names();
                println!(
                    "{}: ok — {} user(s), upstreams {} and {}, primary {}, canary {}%",
                    file.display(),
                    config.users.len(),
                    names[0],
                    names[1],
                    config.routing.primary,
                    config.routing.canary_percent
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::from(1)
            }
        },
        Command::Journal { action } => {
            let (path, json) = match &action {
                JournalAction::Status { config, json } => (config, *json),
                JournalAction::Replay { config, json, .. } => (config, *json),
            };
            let config = match Config::load(path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            match action {
                JournalAction::Status { .. } => crate::journal::run_status(&config, json),
                JournalAction::Replay { no_progress, .. } => {
                    crate::journal::run_replay(&config, json, !no_progress)
                }
            }
        }
        Command::Verify(args) => crate::verify::run(args),
        Command::Ctl(args) => crate::ctl::run(args),
        Command::Serve { config, json_logs } => match serve(config, json_logs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchyard: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn serve(path: PathBuf, json_logs: bool) -> anyhow::Result<()> {
    let config =
        Config::load(&path).with_context(|| format!("invalid config {}", path.display()))?;
    init_logging(&config, json_logs);
    // The listener, admin API and reload watchers; the sessions run on their own threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let threads = Arc::new(
        crate::threads::SessionThreads::start(config.listen.threads)
            .context("cannot start the session threads")?,
    );
    tracing::info!(threads = threads.len(), "session threads started");
    runtime.block_on(async move {
        let address = config.listen.address.clone();
        let admin_address = config.admin.address.clone();
        let journal = if config.mirror.enabled {
            let dir = &config.mirror.journal_dir;
            Some(
                Journal::open(dir)
                    .with_context(|| format!("cannot open the journal in {}", dir.display()))?,
            )
        } else {
            None
        };
        let shared = Shared::new(config, journal).context("cannot set up TLS for listen.tls")?;
        let _ = shared.session_threads.set(threads.clone());
        // Before anything is bound: a SIGHUP or an edit of the file from then on is seen.
        let hup = crate::reload::sighup();
        let watch = crate::reload::FileWatch::start(&shared);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let admin_listener = TcpListener::bind(&admin_address)
            .await
            .with_context(|| format!("cannot listen on {admin_address} (admin.address)"))?;
        tokio::spawn(admin::serve(shared.clone(), admin_listener));
        if let Some(hup) = hup {
            tokio::spawn(crate::reload::on_sighup(shared.clone(), hup));
        }
        if let Some(watch) = watch {
            tokio::spawn(watch.run(shared.clone()));
        }
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot install the SIGTERM handler")?;
        tokio::select! {
            () = listener::serve(shared.clone(), listener, threads) => {}
            r = tokio::signal::ctrl_c() => {
                r.context("cannot wait for Ctrl-C")?;
                tracing::info!("interrupted; shutting down");
            }
            _ = terminate.recv() => tracing::info!("SIGTERM; shutting down"),
        }
        let left = crate::mirror::settle_for_shutdown(
            &shared,
            std::time::Duration::from_secs(2),
            std::time::Duration::from_secs(5),
        )
        .await;
        if left > 0 {
            tracing::error!(
                units = left,
                "shutting down with mirrored units neither applied nor journaled"
            );
        }
        if let Some(journal) = &shared.journal {
            journal.sync().context("cannot sync the journal")?;
        }
        Ok(())
    })
}

fn init_logging(config: &Config, json_logs: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.logging.level.clone()));
    use std::io::IsTerminal;
    // Colour only for a person at a terminal: a log file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json_logs || config.logging.format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}
