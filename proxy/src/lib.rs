//! switchyard: a PostgreSQL wire-protocol proxy for zero-downtime database migrations.
//!
//! Data flows one way: [`listener`] → [`session`] (on one of the [`threads`]) (startup in [`startup`], client auth in
//! [`auth`], the primary's connection in [`upstream`]) → [`relay`]. Shared state lives in
//! [`state`]; cancel requests are routed by [`cancel`].

pub mod admin;
pub mod auth;
pub mod cancel;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod ctl;
pub mod cutover;
pub mod diff;
pub mod divergence;
pub mod guard;
pub mod health;
pub mod journal;
pub mod latency;
pub mod listener;
pub mod metrics;
pub mod mirror;
pub mod mismatch;
pub mod order;
pub mod relay;
pub mod reload;
pub mod session;
pub mod shadow;
pub mod sqlstate;
pub mod startup;
pub mod state;
pub mod stream;
pub mod threads;
pub mod tls;
pub mod track;
pub mod upstream;
pub mod verify;
