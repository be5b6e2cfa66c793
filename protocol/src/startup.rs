//! The packets a client may send before the regular message stream: SSLRequest,
//! GSSENCRequest, CancelRequest and StartupMessage. They have no tag byte: an `i32` length
//! (counting itself) and an `i32` code. Parsing is strict: every string must be
//! NUL-terminated inside the packet and the parameter list must end with an empty name.

use bytes::{BufMut, BytesMut};

/// Code of an SSLRequest.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Code of a GSSENCRequest.
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// Code of a CancelRequest.
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Protocol 3.0 as sent in a StartupMessage.
pub const PROTOCOL_3_0: i32 = 3 << 16;
/// PostgreSQL's own cap on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: usize = 10_000;

/// Why a startup packet was rejected. The display text is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    #[error("invalid length of startup packet: {0}")]
    BadLength(i64),
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("invalid startup packet layout: {0}")]
    Malformed(&'static str),
    #[error("no PostgreSQL user name specified in startup packet")]
    NoUser,
}

/// A decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel { process_id: i32, secret_key: i32 },
    Startup(StartupMessage),
}

/// A StartupMessage: the protocol version and the parameters, in the client's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    pub major: u16,
    pub minor: u16,
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    /// The value of a parameter, if the client sent it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `user` parameter (required by the protocol).
    pub fn user(&self) -> &str {
        self.get("user").unwrap_or("")
    }

    /// The database, which defaults to the user name as in PostgreSQL.
    pub fn database(&self) -> &str {
        self.get("database").unwrap_or_else(|| self.user())
    }

    /// Protocol extension options (`_pq_.*`) that the client asked for; a server that does
    /// not know them lists them in NegotiateProtocolVersion.
    pub fn protocol_options(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("_pq_."))
    }

    /// Encodes this message for an upstream, with protocol 3.0 and the given parameters.
    pub fn encode(params: &[(&str, &str)]) -> BytesMut {
        let mut body = BytesMut::new();
        body.put_i32(PROTOCOL_3_0);
        for (k, v) in params {
            body.put_slice(k.as_bytes());
            body.put_u8(0);
            body.put_slice(v.as_bytes());
            body.put_u8(0);
        }
        body.put_u8(0);
        let mut out = BytesMut::with_capacity(body.len() + 4);
        out.put_i32((body.len() + 4) as i32);
        out.put_slice(&body);
        out
    }
}

/// Returns the total length of the startup packet at the start of `buf` once its length
/// word is there (`Ok(None)` before), rejecting impossible lengths before anything is
/// buffered.
pub fn startup_len(buf: &[u8]) -> Result<Option<usize>, StartupError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > MAX_STARTUP_LEN {
        return Err(StartupError::BadLength(i64::from(len)));
    }
    Ok(Some(len as usize))
}

/// Decodes one whole startup packet (length word included), as delimited by
/// [`startup_len`].
pub fn parse_startup(packet: &[u8]) -> Result<StartupPacket, StartupError> {
    let len = match startup_len(packet)? {
        Some(len) if len == packet.len() => len,
        _ => return Err(StartupError::BadLength(packet.len() as i64)),
    };
    let code = i32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    let body = &packet[8..len];
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
            if !body.is_empty() {
                return Err(StartupError::BadLength(len as i64));
            }
            Ok(if code == SSL_REQUEST_CODE {
                StartupPacket::SslRequest
            } else {
                StartupPacket::GssEncRequest
            })
        }
        CANCEL_REQUEST_CODE => {
            if body.len() != 8 {
                return Err(StartupError::BadLength(len as i64));
            }
            Ok(StartupPacket::Cancel {
                process_id: i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                secret_key: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            })
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(StartupError::UnsupportedVersion { major, minor });
            }
            let params = parse_params(body)?;
            let msg = StartupMessage {
                major,
                minor,
                params,
            };
            if msg.get("user").is_none_or(str::is_empty) {
                return Err(StartupError::NoUser);
            }
            Ok(StartupPacket::Startup(msg))
        }
    }
}

fn parse_params(mut body: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let mut params = Vec::new();
    loop {
        let (name, rest) = take_cstr(body)?;
        if name.is_empty() {
            if !rest.is_empty() {
                return Err(StartupError::Malformed("bytes after the parameter list"));
            }
            return Ok(params);
        }
        let (value, rest) = take_cstr(rest)?;
        params.push((name.to_owned(), value.to_owned()));
        body = rest;
    }
}

fn take_cstr(buf: &[u8]) -> Result<(&str, &[u8]), StartupError> {
    let nul = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(StartupError::Malformed("missing terminator"))?;
    let s = std::str::from_utf8(&buf[..nul])
        .map_err(|_| StartupError::Malformed("parameter is not valid UTF-8"))?;
    Ok((s, &buf[nul + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as i32).to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn decodes_each_kind_of_packet() {
        assert_eq!(
            parse_startup(&packet(SSL_REQUEST_CODE, b"")),
            Ok(StartupPacket::SslRequest)
        );
        assert_eq!(
            parse_startup(&packet(GSSENC_REQUEST_CODE, b"")),
            Ok(StartupPacket::GssEncRequest)
        );
        let mut cancel = 42i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&(-7i32).to_be_bytes());
        assert_eq!(
            parse_startup(&packet(CANCEL_REQUEST_CODE, &cancel)),
            Ok(StartupPacket::Cancel {
                process_id: 42,
                secret_key: -7
            })
        );
        let encoded = StartupMessage::encode(&[("user", "app"), ("application_name", "x")]);
        let StartupPacket::Startup(m) = parse_startup(&encoded).unwrap() else {
            panic!("not a startup message")
        };
        assert_eq!((m.major, m.minor), (3, 0));
        assert_eq!(m.user(), "app");
        assert_eq!(m.database(), "app", "database defaults to the user");
        assert_eq!(m.get("application_name"), Some("x"));
    }

    #[test]
    fn rejects_bad_lengths_versions_and_layouts() {
        assert_eq!(startup_len(&[0, 0, 0, 7]), Err(StartupError::BadLength(7)));
        assert_eq!(
            startup_len(&[0, 1, 0, 0]),
            Err(StartupError::BadLength(65536))
        );
        assert_eq!(
            parse_startup(&packet(2 << 16, b"user\0x\0\0")),
            Err(StartupError::UnsupportedVersion { major: 2, minor: 0 })
        );
        assert_eq!(
            parse_startup(&packet(PROTOCOL_3_0, b"user\0x")),
            Err(StartupError::Malformed("missing terminator"))
        );
        assert_eq!(
            parse_startup(&packet(PROTOCOL_3_0, b"database\0x\0\0")),
            Err(StartupError::NoUser)
        );
        assert_eq!(
            parse_startup(&packet(PROTOCOL_3_0, b"user\0x\0\0junk")),
            Err(StartupError::Malformed("bytes after the parameter list"))
        );
    }
}
