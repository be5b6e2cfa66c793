//! Connections from switchyard to an upstream PostgreSQL server: TCP, the TLS negotiation of
//! `upstreams.*.tls`, the StartupMessage carrying the client's parameters, upstream
//! authentication (SCRAM-SHA-256, md5, cleartext) with the upstream's credentials, and the
//! startup replies up to the first ReadyForQuery.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use switchyard_config::{Upstream, UpstreamTls};
use switchyard_protocol::frame::split_frame;
use switchyard_protocol::StartupMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stream::Stream;
use crate::tls;

/// Upstream messages during startup are small; anything bigger is a broken server.
const MAX_STARTUP_REPLY: usize = 1 << 20;

/// Why an upstream connection could not be established.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to upstream {name} at {addr}: {source}")]
    Connect {
        name: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to upstream {name} at {addr}")]
    Timeout { name: String, addr: String },
    #[error("upstream {name} refused TLS but its tls setting requires it")]
    TlsRefused { name: String },
    #[error("TLS with upstream {name} failed: {detail}")]
    Tls { name: String, detail: String },
    #[error("upstream {name} asked for a password but none is configured for user {user:?}")]
    NoPassword { name: String, user: String },
    #[error("upstream {name} asked for an unsupported authentication method ({method})")]
    UnsupportedAuth { name: String, method: String },
    #[error("SCRAM authentication with upstream {name} failed: {detail}")]
    Scram { name: String, detail: String },
    /// The upstream answered with an ErrorResponse: the frame, to forward to the client as is.
    #[error("upstream {name} refused the connection: {message}")]
    Refused {
        name: String,
        message: String,
        frame: Bytes,
    },
    #[error("upstream {name} broke the protocol: {detail}")]
    Protocol { name: String, detail: String },
    #[error("connection to upstream {name} lost during startup: {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

/// An authenticated upstream connection, ready for queries.
pub struct UpstreamConn {
    pub stream: Stream,
    /// ParameterStatus and NoticeResponse frames received during startup, in order, to relay.
    pub startup_frames: Vec<Bytes>,
    /// The backend's process ID and secret key, for cancel requests.
    pub backend_pid: i32,
    pub backend_secret: i32,
    /// Bytes read after the first ReadyForQuery (normally none).
    pub leftover: BytesMut,
}

/// What to log in as on an upstream.
pub struct Login<'a> {
    pub user: &'a str,
    pub password: Option<&'a str>,
    /// Parameters of the client's StartupMessage (user and database are replaced).
    pub params: &'a [(String, String)],
    pub database: &'a str,
}

impl<'a> Login<'a> {
    /// The password, for an upstream (`name`) that asked for one.
    fn password(&self, name: &str) -> Result<&'a str, UpstreamError> {
        self.password.ok_or_else(|| UpstreamError::NoPassword {
            name: name.to_owned(),
            user: self.user.to_owned(),
        })
    }

    fn startup_message(&self, up: &Upstream) -> BytesMut {
        let database = up.database.as_deref().unwrap_or(self.database);
        let mut params: Vec<(&str, &str)> = vec![("user", self.user), ("database", database)];
        for (k, v) in self.params {
            // Protocol options were negotiated with the client by switchyard itself.
            if k != "user" && k != "database" && !k.starts_with("_pq_.") {
                params.push((k, v));
            }
        }
        StartupMessage::encode(&params)
    }
}

/// Opens, secures and authenticates a connection to `up`.
pub async fn connect(up: &Upstream, login: &Login<'_>) -> Result<UpstreamConn, UpstreamError> {
    let addr = format!("{}:{}", up.host, up.port);
    let timeout = Duration::from_millis(up.connect_timeout_ms);
    tokio::time::timeout(timeout, connect_inner(up, login, &addr))
        .await
        .map_err(|_| UpstreamError::Timeout {
            name: up.name.clone(),
            addr: addr.clone(),
        })?
}

async fn connect_inner(
    up: &Upstream,
    login: &Login<'_>,
    addr: &str,
) -> Result<UpstreamConn, UpstreamError> {
    let name = || up.name.clone();
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| UpstreamError::Connect {
            name: name(),
            addr: addr.to_owned(),
            source,
        })?;
    // Latency matters more than packet count for a query proxy.
    let _ = tcp.set_nodelay(true);
    let mut stream = negotiate_tls(up, tcp).await?;
    let io = |source| UpstreamError::Io {
        name: name(),
        source,
    };
    stream
        .write_all(&login.startup_message(up))
        .await
        .map_err(io)?;

    let mut buf = BytesMut::with_capacity(1024);
    let mut startup_frames = Vec::new();
    let mut key = (0, 0);
    let mut scram: Option<ScramSha256> = None;
    loop {
        let frame = loop {
            match split_frame(&mut buf, MAX_STARTUP_REPLY) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {
                    if stream.read_buf(&mut buf).await.map_err(io)? == 0 {
                        return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                Err(e) => {
                    return Err(UpstreamError::Protocol {
                        name: name(),
                        detail: e.to_string(),
                    })
                }
            }
        };
        let tag = frame.tag;
        let raw = frame.bytes.clone();
        let parsed = Message::parse(&mut BytesMut::from(&frame.bytes[..]))
            .map_err(|e| UpstreamError::Protocol {
                name: name(),
                detail: e.to_string(),
            })?
            .ok_or_else(|| UpstreamError::Protocol {
                name: name(),
                detail: format!("incomplete message of type {:?}", tag as char),
            })?;
        match parsed {
            Message::AuthenticationOk => {}
            Message::AuthenticationCleartextPassword => {
                let password = login.password(&up.name)?;
                send_password(&mut stream, password.as_bytes())
                    .await
                    .map_err(io)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let password = login.password(&up.name)?;
                let hash = postgres_protocol::authentication::md5_hash(
                    login.user.as_bytes(),
                    password.as_bytes(),
                    body.salt(),
                );
                send_password(&mut stream, hash.as_bytes())
                    .await
                    .map_err(io)?;
            }
            Message::AuthenticationSasl(body) => {
                let password = login.password(&up.name)?;
                let mut offers_scram = false;
                let mut mechanisms = body.mechanisms();
                while let Some(m) = fallible_iterator::FallibleIterator::next(&mut mechanisms)
                    .map_err(|e| UpstreamError::Protocol {
                        name: name(),
                        detail: e.to_string(),
                    })?
                {
                    offers_scram |= m == SCRAM_SHA_256;
                }
                if !offers_scram {
                    return Err(UpstreamError::UnsupportedAuth {
                        name: name(),
                        method: "SASL without SCRAM-SHA-256".into(),
                    });
                }
                // Channel binding is not used: 'n' is valid whether or not the server
                // offers SCRAM-SHA-256-PLUS.
                let client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                let mut out = BytesMut::new();
                frontend::sasl_initial_response(SCRAM_SHA_256, client.message(), &mut out)
                    .map_err(io)?;
                stream.write_all(&out).await.map_err(io)?;
                scram = Some(client);
            }
            Message::AuthenticationSaslContinue(body) => {
                let client = scram.as_mut().ok_or_else(|| UpstreamError::Protocol {
                    name: name(),
                    detail: "SASLContinue without a SASL exchange".into(),
                })?;
                client
                    .update(body.data())
                    .map_err(|e| UpstreamError::Scram {
                        name: name(),
                        detail: e.to_string(),
                    })?;
                let mut out = BytesMut::new();
                frontend::sasl_response(client.message(), &mut out).map_err(io)?;
                stream.write_all(&out).await.map_err(io)?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let client = scram.as_mut().ok_or_else(|| UpstreamError::Protocol {
                    name: name(),
                    detail: "SASLFinal without a SASL exchange".into(),
                })?;
                client
                    .finish(body.data())
                    .map_err(|e| UpstreamError::Scram {
                        name: name(),
                        detail: e.to_string(),
                    })?;
            }
            Message::AuthenticationKerberosV5
            | Message::AuthenticationScmCredential
            | Message::AuthenticationGss
            | Message::AuthenticationSspi
            | Message::AuthenticationGssContinue(_) => {
                return Err(UpstreamError::UnsupportedAuth {
                    name: name(),
                    method: format!("authentication request {tag:?}"),
                })
            }
            Message::ParameterStatus(_) | Message::NoticeResponse(_) => startup_frames.push(raw),
            Message::BackendKeyData(body) => key = (body.process_id(), body.secret_key()),
            Message::ErrorResponse(body) => {
                let mut message = String::new();
                let mut fields = body.fields();
                while let Ok(Some(f)) = fallible_iterator::FallibleIterator::next(&mut fields) {
                    if f.type_() == b'M' {
                        message = String::from_utf8_lossy(f.value_bytes()).into_owned();
                    }
                }
                return Err(UpstreamError::Refused {
                    name: name(),
                    message,
                    frame: raw,
                });
            }
            Message::ReadyForQuery(_) => {
                return Ok(UpstreamConn {
                    stream,
                    startup_frames,
                    backend_pid: key.0,
                    backend_secret: key.1,
                    leftover: buf,
                })
            }
            _ => {
                return Err(UpstreamError::Protocol {
                    name: name(),
                    detail: format!("unexpected message {:?} during startup", tag as char),
                })
            }
        }
    }
}

async fn send_password(stream: &mut Stream, password: &[u8]) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    frontend::password_message(password, &mut out)?;
    stream.write_all(&out).await
}

async fn negotiate_tls(up: &Upstream, mut tcp: TcpStream) -> Result<Stream, UpstreamError> {
    let connector = match up.tls {
        UpstreamTls::Disable => return Ok(Stream::Plain(tcp)),
        UpstreamTls::Prefer | UpstreamTls::Require => tls::unverified_connector(),
        UpstreamTls::VerifyFull => match &up.ca_file {
            Some(ca) => tls::verifying_connector(ca),
            None => {
                return Err(UpstreamError::Tls {
                    name: up.name.clone(),
                    detail: "tls = \"verify-full\" needs ca_file".into(),
                })
            }
        },
    }
    .map_err(|e| UpstreamError::Tls {
        name: up.name.clone(),
        detail: e.to_string(),
    })?;
    let io = |source| UpstreamError::Io {
        name: up.name.clone(),
        source,
    };
    let mut req = BytesMut::new();
    frontend::ssl_request(&mut req);
    tcp.write_all(&req).await.map_err(io)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(io)?;
    match answer[0] {
        b'S' => {}
        b'N' if up.tls == UpstreamTls::Prefer => return Ok(Stream::Plain(tcp)),
        b'N' => {
            return Err(UpstreamError::TlsRefused {
                name: up.name.clone(),
            })
        }
        other => {
            return Err(UpstreamError::Protocol {
                name: up.name.clone(),
                detail: format!("unexpected answer {:?} to SSLRequest", other as char),
            })
        }
    }
    let server_name = rustls::pki_types::ServerName::try_from(up.host.clone()).map_err(|e| {
        UpstreamError::Tls {
            name: up.name.clone(),
            detail: format!("invalid host name {:?}: {e}", up.host),
        }
    })?;
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| UpstreamError::Tls {
            name: up.name.clone(),
            detail: e.to_string(),
        })?;
    Ok(Stream::ClientTls(Box::new(tls)))
}

/// Sends a CancelRequest for `pid`/`secret` to the server at `host:port`, as libpq does:
/// a fresh connection, the 16-byte packet, and close.
pub async fn send_cancel(host: &str, port: u16, pid: i32, secret: i32) -> std::io::Result<()> {
    let mut tcp = TcpStream::connect((host, port)).await?;
    let mut packet = BytesMut::new();
    frontend::cancel_request(pid, secret, &mut packet);
    tcp.write_all(&packet).await?;
    // Wait for the server to close, so the cancel has been delivered when we return.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut sink)).await;
    Ok(())
}
