//! Real PostgreSQL clients for tests: tokio-postgres and the `psql` binary.
//!
//! Everything a test proves about switchyard it proves through a client an application
//! would use, against any connection string: a cluster's ([`crate::PgCluster::connstr`]) or
//! the proxy's ([`crate::Switchyard::connstr`]).

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;

use crate::pg::pg_bin;

/// The `connect_timeout` psql gets unless the connection string says otherwise, in seconds.
pub const PSQL_CONNECT_TIMEOUT_S: u32 = 10;

/// Connects with tokio-postgres (no TLS) and spawns the connection task on the current
/// runtime. Panics with the error if the connection fails.
pub async fn connect(connstr: &str) -> tokio_postgres::Client {
    try_connect(connstr)
        .await
        .unwrap_or_else(|e| panic!("connect to `{}`: {e}", redact(connstr)))
}

/// [`connect`], returning the error (for tests of refused connections).
pub async fn try_connect(connstr: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(connstr, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        // Tests kill servers on purpose; the client's next call reports the error.
        if let Err(e) = connection.await {
            eprintln!("tokio-postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// Runs `sql` with the real `psql` against `connstr` (key=value or URL) with
/// `-X -A -t -q -v ON_ERROR_STOP=1`, the SQL on stdin. Returns the unaligned, tuples-only
/// output without its final newline, or psql's exit status and stderr.
/// The connection attempt gives up after `PGCONNECT_TIMEOUT` ([`PSQL_CONNECT_TIMEOUT_S`]).
pub fn psql(connstr: &str, sql: &str) -> Result<String, String> {
    run_psql(&["-d", connstr], sql)
}

/// Runs psql with connection arguments `conn_args`; see [`psql`].
pub(crate) fn run_psql(conn_args: &[&str], sql: &str) -> Result<String, String> {
    let mut command = Command::new(pg_bin("psql"));
    command
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(conn_args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Only the connection arguments decide where psql connects.
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGSSLMODE",
        "PGOPTIONS",
        "PGTARGETSESSIONATTRS",
    ] {
        command.env_remove(var);
    }
    command.env("PGCONNECT_TIMEOUT", PSQL_CONNECT_TIMEOUT_S.to_string());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", pg_bin("psql").display()));
    let mut stdin = child.stdin.take().expect("psql stdin is piped");
    let sql = sql.to_string();
    // A separate writer: psql may fill its stdout pipe before it has read all the input.
    let writer = thread::spawn(move || {
        // psql may exit early (connection refused); a broken pipe is not the error to show.
        let _ = stdin.write_all(sql.as_bytes());
    });
    let output = child.wait_with_output().expect("wait for psql");
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_string())
    } else {
        Err(format!(
            "psql {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A libpq key=value connection string, values quoted where needed.
pub fn connstr(host: &str, port: u16, user: &str, password: &str, dbname: &str) -> String {
    format!(
        "host={} port={port} user={} password={} dbname={}",
        quote_value(host),
        quote_value(user),
        quote_value(password),
        quote_value(dbname)
    )
}

/// A `postgresql://user:password@host:port/dbname` URL, percent-encoded where needed.
pub fn url(host: &str, port: u16, user: &str, password: &str, dbname: &str) -> String {
    format!(
        "postgresql://{}:{}@{host}:{port}/{}",
        percent_encode(user),
        percent_encode(password),
        percent_encode(dbname)
    )
}

fn quote_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\' || c == '=');
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The connection string with its password replaced, for messages.
fn redact(connstr: &str) -> String {
    connstr
        .split(' ')
        .map(|part| {
            if part.starts_with("password=") {
                "password=***"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connstr_values_with_spaces_and_quotes_are_quoted() {
        assert_eq!(
            connstr("127.0.0.1", 5432, "app", "it's a secret", "app"),
            r"host=127.0.0.1 port=5432 user=app password='it\'s a secret' dbname=app"
        );
    }

    #[test]
    fn url_percent_encodes_the_password() {
        assert_eq!(
            url("127.0.0.1", 6432, "app", "p@ss/w:rd", "app"),
            "postgresql://app:p%40ss%2Fw%3Ard@127.0.0.1:6432/app"
        );
    }
}
