//! `[routing]` and the routing function: which upstream answers a session.
//!
//! A session's sticky key (see [`Sticky`]) is hashed once into a bucket `0..100` with
//! [`bucket`]; the session's primary is the *other* upstream when `bucket < canary_percent`
//! and `routing.primary` otherwise ([`Routing::primary_for`]). Because the comparison is
//! against a fixed bucket, raising the percentage only ever moves sessions onto the canary
//! and lowering it only moves them back: no session flaps between upstreams as an operator
//! walks the canary from 1 to 100.

use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::check::{self, Result};
use crate::error::{quote, ConfigError};
use crate::upstreams::Upstreams;

/// Default bound on a cutover barrier before it is abandoned.
pub const DEFAULT_CUTOVER_TIMEOUT_MS: u64 = 5000;

/// Who answers whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// Name of the upstream that answers every session outside the canary.
    pub primary: String,
    /// Share of sessions (by bucket) answered by the other upstream, `0..=100`.
    pub canary_percent: u8,
    pub sticky: Sticky,
    /// How long a cutover (a change of `primary`) may wait for every session to reach a
    /// transaction boundary and drain its mirror queue before it is abandoned. Positive.
    pub cutover_timeout_ms: u64,
}

impl Routing {
    /// The upstream that answers a session whose routing key falls in `bucket` (from
    /// [`bucket`], so `0..100`): the other upstream when `bucket < canary_percent`, else
    /// `primary`. `canary_percent = 0` keeps every session on `primary`, `100` moves every
    /// session to the other upstream.
    pub fn primary_for<'a>(&'a self, bucket: u8, upstreams: &'a Upstreams) -> &'a str {
        if bucket < self.canary_percent {
            upstreams.other(&self.primary)
        } else {
            &self.primary
        }
    }

    /// [`primary_for`](Self::primary_for) of the bucket of `key`.
    pub fn primary_for_key<'a>(&'a self, key: &str, upstreams: &'a Upstreams) -> &'a str {
        self.primary_for(bucket(key), upstreams)
    }
}

/// What a session's routing key is, i.e. which sessions always land together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sticky {
    /// Each client connection on its own (keyed by switchyard's id for the connection): the
    /// canary is a share of connections.
    #[default]
    Session,
    /// The client's IP address (without port): every connection from one application host
    /// lands on the same upstream.
    ClientAddr,
    /// The `user` startup parameter: a role is migrated as a whole.
    User,
    /// The `application_name` startup parameter (empty when the client sends none): one
    /// service at a time.
    ApplicationName,
}

impl Sticky {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Sticky::Session => "session",
            Sticky::ClientAddr => "client_addr",
            Sticky::User => "user",
            Sticky::ApplicationName => "application_name",
        }
    }
}

impl fmt::Display for Sticky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The routing bucket of a sticky key, in `0..100`.
///
/// Algorithm (a contract: changing it would move sessions between upstreams on upgrade):
/// SHA-256 of the key's UTF-8 bytes; the first 8 bytes of the digest read as a big-endian
/// `u64`; that number modulo 100. The same key gives the same bucket on every machine,
/// process and version, which `DefaultHasher` (randomly seeded, unspecified algorithm)
/// would not. The modulo bias is 16 / 2^64 per bucket, i.e. none that matters.
///
/// A cryptographic hash is deliberate: keys such as client addresses or sequential session
/// ids are highly structured, and the canary share must hold for any such population.
/// It is computed once per session, so its cost is irrelevant.
pub fn bucket(key: &str) -> u8 {
    let digest = Sha256::digest(key.as_bytes());
    let head: [u8; 8] = digest[..8]
        .try_into()
        .expect("SHA-256 digests are 32 bytes");
    u8::try_from(u64::from_be_bytes(head) % 100).expect("a value below 100 fits in u8")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouting {
    primary: Option<String>,
    canary_percent: Option<i64>,
    sticky: Option<Sticky>,
    cutover_timeout_ms: Option<i64>,
}

impl RawRouting {
    pub(crate) fn build(self, upstreams: &Upstreams) -> Result<Routing> {
        let [a, b] = upstreams.names();
        let expected = format!("the name of an upstream ({a} or {b})");
        let primary = match self.primary {
            None => return Err(ConfigError::missing("routing.primary", expected)),
            Some(name) if upstreams.get(&name).is_none() => {
                return Err(ConfigError::invalid(
                    "routing.primary",
                    quote(&name),
                    expected,
                ))
            }
            Some(name) => name,
        };
        Ok(Routing {
            primary,
            canary_percent: check::percent("routing.canary_percent", self.canary_percent, 0)?,
            sticky: self.sticky.unwrap_or_default(),
            cutover_timeout_ms: check::positive(
                "routing.cutover_timeout_ms",
                self.cutover_timeout_ms,
                DEFAULT_CUTOVER_TIMEOUT_MS,
                "milliseconds",
            )?,
        })
    }
}
