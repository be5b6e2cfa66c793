//! The end-to-end test harness of switchyard.
//!
//! Tests in `tests/tests/` tell an operator's story against real things: throwaway
//! PostgreSQL clusters ([`PgCluster`], two of them in [`TwoDbs`]), the real `switchyard`
//! binary ([`Switchyard`]) and real clients ([`client`]: tokio-postgres and psql). Failures
//! are injected for real: a cluster can be stopped, crashed, or frozen with SIGSTOP.
//!
//! Everything here is blocking unless it talks to a database through tokio-postgres:
//! start clusters and switchyard at the top of a test (also fine inside
//! `#[tokio::test]`), then run the async client code.
//!
//! Every process the harness starts dies with the test process, even when the test process
//! is killed without unwinding ([`child`]), and every temp dir is removed on `Drop`.
//!
//! Requirements: PostgreSQL 15 server binaries (see [`pg::pg_bindir`]), and when running as
//! root the `postgres` OS user; `./scripts/test.sh` installs both.

pub mod browser;
pub mod child;
pub mod client;
pub mod env;
pub mod http;
pub mod pg;
pub mod port;
pub mod proxy;
pub mod raw;
pub mod server_user;
pub mod tls;
pub mod tools;

pub use browser::Browser;
pub use client::{connect, psql};
pub use env::TwoDbs;
pub use pg::{PgCluster, PgOptions};
pub use port::free_port;
pub use proxy::{switchyard_bin, Switchyard};
pub use tls::{ServerTls, TestCa};
