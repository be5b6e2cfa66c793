//! Client authentication, which is switchyard's own (the client never authenticates to an
//! upstream directly): SCRAM-SHA-256 (the default), md5 or trust, per `[[users]]` entry.
//!
//! An unknown user goes through a mock SCRAM exchange and fails exactly like a wrong
//! password, as PostgreSQL does, so the answer does not reveal which user names exist.

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use switchyard_config::{AuthMethod, User, UserSecret};
use switchyard_protocol::auth::md5::md5_verify;
use switchyard_protocol::auth::scram::{ScramServer, ScramVerifier};
use switchyard_protocol::backend;
use switchyard_protocol::frame::split_frame;
use switchyard_protocol::frontend::{PasswordMessage, SaslInitialResponse, SaslResponse};
use switchyard_protocol::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sqlstate;
use crate::stream::Stream;

/// PostgreSQL's own bound on an authentication message.
const MAX_AUTH_MESSAGE: usize = 16 * 1024;
/// Iterations for verifiers switchyard derives from configured plain passwords
/// (PostgreSQL's default `scram_iterations`).
const SCRAM_ITERATIONS: u32 = 4096;

/// Why a client was not let in. `reply` is the ErrorResponse to send.
#[derive(Debug)]
pub struct AuthFailure {
    pub log: String,
    pub reply: Bytes,
}

impl AuthFailure {
    fn password(user: &str, log: impl Into<String>) -> Self {
        Self {
            log: log.into(),
            reply: backend::error_response(
                "FATAL",
                sqlstate::INVALID_PASSWORD,
                &format!("password authentication failed for user \"{user}\""),
            ),
        }
    }

    fn protocol(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            reply: backend::error_response("FATAL", sqlstate::PROTOCOL_VIOLATION, &message),
            log: message,
        }
    }

    fn io(e: std::io::Error) -> Self {
        Self {
            log: format!("connection lost during authentication: {e}"),
            reply: Bytes::new(),
        }
    }
}

/// SCRAM verifiers derived from plain passwords, computed once per user and password
/// (PBKDF2 is deliberately slow; paying it on every connection would cap the accept rate).
#[derive(Default)]
pub struct VerifierCache {
    by_user: DashMap<String, (String, std::sync::Arc<ScramVerifier>)>,
}

impl VerifierCache {
    /// Forgets every derived verifier (passwords may have changed in a reload).
    pub fn clear(&self) {
        self.by_user.clear();
    }

    fn verifier(&self, user: &str, password: &str) -> std::sync::Arc<ScramVerifier> {
        if let Some(entry) = self.by_user.get(user) {
            if entry.0 == password {
                return entry.1.clone();
            }
        }
        let salt: [u8; 16] = rand::random();
        let v = std::sync::Arc::new(ScramVerifier::from_password(
            password,
            &salt,
            SCRAM_ITERATIONS,
        ));
        self.by_user
            .insert(user.to_owned(), (password.to_owned(), v.clone()));
        v
    }
}

/// Authenticates the client named `user_name` (whose entry is `user`, if configured).
/// On success nothing has been sent yet for AuthenticationOk: the caller sends it together
/// with the rest of the startup replies.
pub async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user_name: &str,
    user: Option<&User>,
    cache: &VerifierCache,
) -> Result<(), AuthFailure> {
    let Some(user) = user else {
        let server = ScramServer::new_mock(user_name);
        scram_exchange(stream, buf, server).await?;
        return Err(AuthFailure::password(
            user_name,
            format!("no [[users]] entry for \"{user_name}\""),
        ));
    };
    match (&user.auth, &user.secret) {
        (AuthMethod::Trust, _) => Ok(()),
        (AuthMethod::ScramSha256, Some(secret)) => {
            let verifier = match secret {
                UserSecret::Password(p) => (*cache.verifier(&user.name, p)).clone(),
                UserSecret::ScramVerifier(s) => ScramVerifier::parse(s).map_err(|e| {
                    AuthFailure::password(user_name, format!("bad SCRAM verifier: {e}"))
                })?,
            };
            if scram_exchange(stream, buf, ScramServer::new(verifier)).await? {
                Ok(())
            } else {
                Err(AuthFailure::password(
                    user_name,
                    "wrong password (SCRAM proof)",
                ))
            }
        }
        (AuthMethod::Md5, Some(UserSecret::Password(password))) => {
            let salt: [u8; 4] = rand::random();
            send(stream, &backend::authentication_md5(salt)).await?;
            let frame = read_message(stream, buf).await?;
            let response = password_bytes(&frame)?;
            if md5_verify(&user.name, password, salt, response) {
                Ok(())
            } else {
                Err(AuthFailure::password(user_name, "wrong md5 password"))
            }
        }
        _ => Err(AuthFailure::password(
            user_name,
            "user has no usable secret for its auth method",
        )),
    }
}

/// Runs one SCRAM exchange. A wrong proof comes back as `Ok(false)`.
async fn scram_exchange(
    stream: &mut Stream,
    buf: &mut BytesMut,
    mut server: ScramServer,
) -> Result<bool, AuthFailure> {
    send(stream, &backend::authentication_sasl(&["SCRAM-SHA-256"])).await?;
    let frame = read_message(stream, buf).await?;
    let initial = SaslInitialResponse::parse(frame.body())
        .map_err(|e| AuthFailure::protocol(format!("malformed SASL message: {e}")))?;
    if initial.mechanism != "SCRAM-SHA-256" {
        return Err(AuthFailure::protocol(format!(
            "client selected an invalid SASL authentication mechanism: {:?}",
            initial.mechanism
        )));
    }
    let first = initial
        .data
        .ok_or_else(|| AuthFailure::protocol("SASLInitialResponse without data"))?;
    let server_first = server
        .client_first(first)
        .map_err(|e| AuthFailure::protocol(e.to_string()))?;
    send(
        stream,
        &backend::authentication_sasl_continue(&server_first),
    )
    .await?;
    let frame = read_message(stream, buf).await?;
    let response = SaslResponse::parse(frame.body())
        .map_err(|e| AuthFailure::protocol(format!("malformed SASL message: {e}")))?;
    match server.client_final(response.data) {
        Ok(server_final) => {
            send(stream, &backend::authentication_sasl_final(&server_final)).await?;
            Ok(true)
        }
        // A wrong proof (or an unusable verifier) is a failed password...
        Err(e) if e.sqlstate() == sqlstate::INVALID_PASSWORD => Ok(false),
        // ...anything else is a broken exchange.
        Err(e) => Err(AuthFailure::protocol(e.to_string())),
    }
}

fn password_bytes(frame: &Frame) -> Result<&[u8], AuthFailure> {
    PasswordMessage::parse(frame.body())
        .map(|m| m.password)
        .map_err(|e| AuthFailure::protocol(e.to_string()))
}

async fn send(stream: &mut Stream, msg: &[u8]) -> Result<(), AuthFailure> {
    stream.write_all(msg).await.map_err(AuthFailure::io)?;
    stream.flush().await.map_err(AuthFailure::io)
}

/// Reads the client's next message, which must be a password/SASL message ('p').
async fn read_message(stream: &mut Stream, buf: &mut BytesMut) -> Result<Frame, AuthFailure> {
    loop {
        match split_frame(buf, MAX_AUTH_MESSAGE) {
            Ok(Some(frame)) if frame.tag == b'p' => return Ok(frame),
            Ok(Some(frame)) => {
                return Err(AuthFailure::protocol(format!(
                    "expected password response, got message type {:?}",
                    frame.tag as char
                )))
            }
            Ok(None) => {
                if stream.read_buf(buf).await.map_err(AuthFailure::io)? == 0 {
                    return Err(AuthFailure::io(std::io::ErrorKind::UnexpectedEof.into()));
                }
            }
            Err(e) => return Err(AuthFailure::protocol(e.to_string())),
        }
    }
}
