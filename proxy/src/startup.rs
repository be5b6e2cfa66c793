//! The client side of connection startup: SSLRequest / GSSENCRequest negotiation, the TLS
//! handshake, CancelRequest, and the StartupMessage, with PostgreSQL's answers and errors.
//!
//! Bytes a client sends after an SSLRequest but before the TLS handshake would be read as
//! if they had been encrypted (the CVE-2021-23214 class of bug): such a client is refused.

use bytes::{Buf, BytesMut};
use switchyard_config::ListenTls;
use switchyard_protocol::backend;
use switchyard_protocol::startup::{parse_startup, startup_len, StartupPacket};
use switchyard_protocol::{StartupError, StartupMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sqlstate;
use crate::stream::Stream;

/// What a connection turned out to be.
pub enum Hello {
    /// A client that wants a session.
    Session {
        stream: Stream,
        startup: StartupMessage,
        /// Bytes the client already sent after its StartupMessage.
        pending: BytesMut,
    },
    /// A cancel request for the session holding this key.
    Cancel { pid: i32, secret: i32 },
}

/// A startup that failed. When `reply` is set it is an ErrorResponse to send before closing.
pub struct StartupFailure {
    pub reason: String,
    pub stream: Option<Stream>,
    pub reply: Option<bytes::Bytes>,
}

impl StartupFailure {
    fn fatal(stream: Stream, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            reply: Some(backend::error_response("FATAL", code, &message)),
            reason: message,
            stream: Some(stream),
        }
    }

    /// Sends the reply (if any) and closes the connection.
    pub async fn close(mut self) {
        if let (Some(stream), Some(reply)) = (self.stream.as_mut(), self.reply.as_ref()) {
            crate::stream::close_with(stream, reply).await;
        }
    }
}

/// Runs the startup phase up to a StartupMessage or CancelRequest.
pub async fn accept(
    tcp: TcpStream,
    tls_mode: ListenTls,
    acceptor: Option<&tokio_rustls::TlsAcceptor>,
) -> Result<Hello, StartupFailure> {
    let mut stream = Stream::Plain(tcp);
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let packet = match read_packet(&mut stream, &mut buf).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(StartupFailure {
                    reason: "client closed the connection during startup".into(),
                    stream: None,
                    reply: None,
                })
            }
            Err(ReadError::Io(e)) => {
                return Err(StartupFailure {
                    reason: format!("read error during startup: {e}"),
                    stream: None,
                    reply: None,
                })
            }
            Err(ReadError::Startup(e)) => {
                let code = match e {
                    StartupError::UnsupportedVersion { .. } => sqlstate::FEATURE_NOT_SUPPORTED,
                    StartupError::NoUser => sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                    _ => sqlstate::PROTOCOL_VIOLATION,
                };
                return Err(StartupFailure::fatal(stream, code, e.to_string()));
            }
        };
        match packet {
            StartupPacket::SslRequest => {
                if stream.is_tls() {
                    return Err(StartupFailure::fatal(
                        stream,
                        sqlstate::PROTOCOL_VIOLATION,
                        "SSLRequest received on an encrypted connection",
                    ));
                }
                if !buf.is_empty() {
                    return Err(StartupFailure::fatal(
                        stream,
                        sqlstate::PROTOCOL_VIOLATION,
                        "received unencrypted data after SSL request",
                    ));
                }
                let Some(acceptor) = acceptor.filter(|_| tls_mode != ListenTls::Disable) else {
                    write_byte(&mut stream, b'N').await?;
                    continue;
                };
                write_byte(&mut stream, b'S').await?;
                let Stream::Plain(tcp) = stream else {
                    unreachable!("checked is_tls above")
                };
                let tls = acceptor.accept(tcp).await.map_err(|e| StartupFailure {
                    reason: format!("TLS handshake with client failed: {e}"),
                    stream: None,
                    reply: None,
                })?;
                stream = Stream::ServerTls(Box::new(tls));
            }
            StartupPacket::GssEncRequest => {
                if !buf.is_empty() {
                    return Err(StartupFailure::fatal(
                        stream,
                        sqlstate::PROTOCOL_VIOLATION,
                        "received unencrypted data after GSSAPI encryption request",
                    ));
                }
                write_byte(&mut stream, b'N').await?;
            }
            StartupPacket::Cancel {
                process_id,
                secret_key,
            } => {
                return Ok(Hello::Cancel {
                    pid: process_id,
                    secret: secret_key,
                })
            }
            StartupPacket::Startup(startup) => {
                if tls_mode == ListenTls::Require && !stream.is_tls() {
                    return Err(StartupFailure::fatal(
                        stream,
                        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                        format!(
                            "switchyard requires TLS (listen.tls = \"require\"): connection for user \"{}\" refused; connect with sslmode=require or stronger",
                            startup.user()
                        ),
                    ));
                }
                if startup.minor > 0 || startup.protocol_options().next().is_some() {
                    let options: Vec<&str> = startup.protocol_options().collect();
                    let msg = backend::negotiate_protocol_version(0, &options);
                    if let Err(e) = stream.write_all(&msg).await {
                        return Err(StartupFailure {
                            reason: format!("write error during startup: {e}"),
                            stream: None,
                            reply: None,
                        });
                    }
                }
                return Ok(Hello::Session {
                    stream,
                    startup,
                    pending: buf,
                });
            }
        }
    }
}

enum ReadError {
    Io(std::io::Error),
    Startup(StartupError),
}

/// Reads one whole startup packet; `Ok(None)` on a clean EOF before any byte of it.
async fn read_packet(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<Option<StartupPacket>, ReadError> {
    loop {
        if let Some(len) = startup_len(buf).map_err(ReadError::Startup)? {
            if buf.len() >= len {
                let packet = parse_startup(&buf[..len]).map_err(ReadError::Startup);
                buf.advance(len);
                return packet.map(Some);
            }
            buf.reserve(len - buf.len());
        }
        let n = stream.read_buf(buf).await.map_err(ReadError::Io)?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(ReadError::Startup(StartupError::Malformed(
                "incomplete startup packet",
            )));
        }
    }
}

async fn write_byte(stream: &mut Stream, byte: u8) -> Result<(), StartupFailure> {
    stream.write_all(&[byte]).await.map_err(|e| StartupFailure {
        reason: format!("write error during startup: {e}"),
        stream: None,
        reply: None,
    })
}
