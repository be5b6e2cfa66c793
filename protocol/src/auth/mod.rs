//! Password authentication as PostgreSQL does it, server side: SCRAM-SHA-256 ([`scram`]) and
//! md5 ([`md5`]).
//!
//! Client authentication is switchyard's own (the client never authenticates against an
//! upstream directly), so switchyard has to be a faithful PostgreSQL server here: the same
//! messages, the same verifier format as `pg_authid`, the same behaviour for a user that
//! does not exist (a mock exchange that fails like a wrong password, so user names cannot be
//! probed). This module is pure computation; the proxy drives the message exchange.

pub mod md5;
pub mod scram;

pub use md5::{md5_password_hash, md5_verify};
pub use scram::{ScramServer, ScramVerifier, SCRAM_SHA_256};

/// Why an authentication exchange failed. The texts are safe to log: they never contain a
/// password, a verifier, a proof or any other part of the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The proof (or md5 response) did not match, or the user does not exist. The two are
    /// deliberately indistinguishable here; the caller knows which and may log it.
    #[error("password authentication failed")]
    InvalidPassword,
    /// A SCRAM message that does not follow RFC 5802's grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding (`p=` gs2 flag). switchyard offers only
    /// SCRAM-SHA-256, without channel binding.
    #[error("client requested SCRAM channel binding, which is not supported (only SCRAM-SHA-256 is offered)")]
    ChannelBindingUnsupported,
    /// client-final-message's channel binding does not repeat client-first-message's header.
    #[error("SCRAM channel binding in client-final-message does not match client-first-message")]
    ChannelBindingMismatch,
    /// The client sent an authorization identity (`a=`), which PostgreSQL does not support.
    #[error("client uses a SCRAM authorization identity, which is not supported")]
    AuthzidUnsupported,
    /// The client requires a SCRAM extension (`m=`) we do not know.
    #[error("client requires an unsupported SCRAM extension")]
    UnsupportedExtension,
    /// client-final-message's nonce is not the one the server issued.
    #[error("SCRAM nonce in client-final-message does not match")]
    NonceMismatch,
    /// A step of the exchange was called twice or out of order.
    #[error("SCRAM exchange out of order: {0}")]
    OutOfOrder(&'static str),
    /// A stored SCRAM verifier string (config, `pg_authid` form) is not valid.
    #[error("invalid SCRAM verifier: {0}")]
    InvalidVerifier(&'static str),
    /// SASLInitialResponse named a mechanism other than the ones offered.
    #[error("client selected an invalid SASL authentication mechanism")]
    UnsupportedMechanism,
}

impl AuthError {
    /// The SQLSTATE PostgreSQL reports for this failure: 28P01 (invalid_password) for a
    /// failed password, and for a user whose stored secret is unusable (PostgreSQL fails
    /// those like a wrong password); 08P01 (protocol_violation) for a broken exchange.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AuthError::InvalidPassword | AuthError::InvalidVerifier(_) => "28P01",
            _ => "08P01",
        }
    }
}
