//! One verification connection per upstream: who to log in as, TLS, and the session
//! settings that make every value's text form the same on both servers.
//!
//! Checksums are computed from each column's text form (`col::text`), so anything that
//! changes how a value prints must be pinned, or two identical databases would look
//! different: [`SESSION_SETTINGS`] fixes the time zone, date and interval styles, float
//! digits and bytea output on both connections. `search_path = pg_catalog` makes
//! `format_type` schema-qualify every user type the same way on both sides, and stops a
//! user-defined `md5` or cast from shadowing the built-in one.
//!
//! TLS follows `upstreams.*.tls` (libpq's `sslmode`) with the proxy's own rustls connectors
//! ([`crate::tls`]): `prefer`/`require` encrypt without checking the certificate,
//! `verify-full` checks the chain against `ca_file` and the host name.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use rustls::pki_types::ServerName;
use switchyard_config::{Config, Upstream, UpstreamTls, UserSecret};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, RowStream, Socket, Statement};

use crate::tls;

/// Applied to both connections right after they open. See the module docs.
pub const SESSION_SETTINGS: &str = "SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
SET standard_conforming_strings = on;
SET search_path = pg_catalog;
SET default_transaction_read_only = on;";

/// Where and as whom to log in to one upstream.
pub struct Target {
    /// The upstream's name in the config (`blue`, `green`, …).
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub tls: UpstreamTls,
    pub ca_file: Option<std::path::PathBuf>,
    pub connect_timeout: Duration,
}

impl Target {
    /// Resolves the login for `upstream`:
    ///
    /// * database: `--database`, else `upstreams.X.database`, else an error;
    /// * user: `--user`, else `upstreams.X.user`, else an error;
    /// * password: `upstreams.X.password` when that upstream's credentials belong to this
    ///   user (it names no user, or this one), else the plain password of the `[[users]]`
    ///   entry of that name — the same password the proxy would use for a client logging in
    ///   as this user. None (trust) when neither exists.
    pub fn resolve(
        config: &Config,
        upstream: &Upstream,
        user: Option<&str>,
        database: Option<&str>,
    ) -> anyhow::Result<Target> {
        let name = &upstream.name;
        let database = database
            .or(upstream.database.as_deref())
            .ok_or_else(|| {
                anyhow!(
                    "no database for upstream {name}: pass --database or set upstreams.{name}.database"
                )
            })?
            .to_owned();
        let user = user
            .or(upstream.user.as_deref())
            .ok_or_else(|| {
                anyhow!("no user for upstream {name}: pass --user or set upstreams.{name}.user")
            })?
            .to_owned();
        let upstream_password = match &upstream.user {
            Some(configured) if *configured != user => None,
            _ => upstream.password.clone(),
        };
        let password = upstream_password.or_else(|| {
            config.user(&user).and_then(|u| match &u.secret {
                Some(UserSecret::Password(p)) => Some(p.clone()),
                _ => None,
            })
        });
        Ok(Target {
            name: name.clone(),
            host: upstream.host.clone(),
            port: upstream.port,
            user,
            password,
            database,
            tls: upstream.tls,
            ca_file: upstream.ca_file.clone(),
            connect_timeout: Duration::from_millis(upstream.connect_timeout_ms),
        })
    }

    /// `blue (127.0.0.1:5432/app)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}:{}/{})",
            self.name, self.host, self.port, self.database
        )
    }

    /// Opens the connection, spawns its I/O task on the current runtime and applies
    /// [`SESSION_SETTINGS`].
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name("switchyard verify")
            .connect_timeout(self.connect_timeout);
        if let Some(password) = &self.password {
            pg.password(password);
        }
        let what = || format!("cannot connect to upstream {}", self.describe());
        let client = match self.tls {
            UpstreamTls::Disable => {
                pg.ssl_mode(SslMode::Disable);
                let (client, connection) = pg.connect(NoTls).await.with_context(what)?;
                tokio::spawn(connection);
                client
            }
            mode => {
                let connector = match (mode, &self.ca_file) {
                    (UpstreamTls::VerifyFull, Some(ca)) => tls::verifying_connector(ca),
                    (UpstreamTls::VerifyFull, None) => {
                        bail!(
                            "upstreams.{}.tls = \"verify-full\" needs ca_file",
                            self.name
                        )
                    }
                    _ => tls::unverified_connector(),
                }
                .with_context(what)?;
                pg.ssl_mode(if mode == UpstreamTls::Prefer {
                    SslMode::Prefer
                } else {
                    SslMode::Require
                });
                let (client, connection) =
                    pg.connect(MakeRustls(connector)).await.with_context(what)?;
                tokio::spawn(connection);
                client
            }
        };
        client
            .batch_execute(SESSION_SETTINGS)
            .await
            .with_context(|| format!("cannot set up the session on {}", self.describe()))?;
        Ok(client)
    }
}

/// tokio-postgres's TLS hook over a tokio-rustls connector.
#[derive(Clone)]
struct MakeRustls(tokio_rustls::TlsConnector);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            connector: self.0.clone(),
            name,
        })
    }
}

struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn connect(self, stream: Socket) -> ConnectFuture {
        Box::pin(async move {
            let stream = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// The encrypted stream. No channel binding is offered: SCRAM then runs as plain
/// SCRAM-SHA-256, which every server accepts.
struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// A verification connection to one upstream, with its prepared statements.
///
/// Each statement runs on its own (autocommit): every chunk sees a fresh snapshot, so a
/// long verification never holds one snapshot open (which would hold back VACUUM on a busy
/// server) and never takes more than ACCESS SHARE locks.
pub struct Conn {
    pub name: String,
    client: Client,
    statements: HashMap<String, Statement>,
}

/// Parameters of a query.
pub type Params<'a> = [&'a (dyn ToSql + Sync)];

impl Conn {
    pub fn new(name: String, client: Client) -> Conn {
        Conn {
            name,
            client,
            statements: HashMap::new(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn prepared(&mut self, sql: &str) -> anyhow::Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .prepare(sql)
            .await
            .with_context(|| format!("on {}: cannot prepare {sql}", self.name))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs `sql` (prepared once per connection) and collects its rows.
    pub async fn query(&mut self, sql: &str, params: &Params<'_>) -> anyhow::Result<Vec<Row>> {
        let statement = self.prepared(sql).await?;
        self.client
            .query(&statement, params)
            .await
            .with_context(|| format!("on {}: query failed: {sql}", self.name))
    }

    /// Runs `sql` and streams its rows, for results that are not held in memory whole.
    pub async fn stream(&mut self, sql: &str, params: &Params<'_>) -> anyhow::Result<RowStream> {
        let statement = self.prepared(sql).await?;
        self.client
            .query_raw(&statement, params.iter().copied())
            .await
            .with_context(|| format!("on {}: query failed: {sql}", self.name))
    }

    /// Drops the prepared statements (after each table: they are per table).
    pub fn forget_statements(&mut self) {
        self.statements.clear();
    }
}

/// `&[&str]` as query parameters.
pub fn text_params<'a>(values: &'a [&'a str]) -> Vec<&'a (dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}
