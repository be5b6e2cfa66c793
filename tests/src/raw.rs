//! A deliberately dumb PostgreSQL client over a blocking socket, for tests that must send
//! exact bytes (malformed packets, odd startup sequences) and read exact replies
//! (ErrorResponse fields, BackendKeyData). Real client libraries refuse to misbehave.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One decoded ErrorResponse / NoticeResponse.
#[derive(Debug, Clone, Default)]
pub struct ErrorInfo {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl ErrorInfo {
    /// Decodes the fields of an ErrorResponse body.
    pub fn parse(body: &[u8]) -> ErrorInfo {
        let mut info = ErrorInfo::default();
        let mut rest = body;
        while let Some((&field, tail)) = rest.split_first() {
            if field == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            let value = String::from_utf8_lossy(&tail[..end]).into_owned();
            match field {
                b'S' => info.severity = value,
                b'C' => info.code = value,
                b'M' => info.message = value,
                _ => {}
            }
            rest = tail.get(end + 1..).unwrap_or(&[]);
        }
        info
    }
}

/// A raw protocol connection.
pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    pub fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to switchyard");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("set timeout");
        RawClient { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send bytes");
    }

    /// Sends a protocol-3.0 StartupMessage.
    pub fn startup(&mut self, params: &[(&str, &str)]) {
        let bytes = startup_message(3 << 16, params);
        self.send(&bytes);
    }

    /// Reads one byte (the answer to SSLRequest / GSSENCRequest).
    pub fn read_byte(&mut self) -> Option<u8> {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    /// Reads one regular message; `None` when the server closed the connection.
    pub fn read_message(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).ok()?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let mut body = vec![0u8; (len as usize).saturating_sub(4)];
        self.stream.read_exact(&mut body).ok()?;
        Some((header[0], body))
    }

    /// Reads messages up to and including ReadyForQuery (or EOF).
    pub fn read_until_ready(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((tag, body)) = self.read_message() {
            out.push((tag, body));
            if tag == b'Z' {
                break;
            }
        }
        out
    }

    /// Reads until an ErrorResponse and returns it; panics if the connection closes first.
    pub fn expect_error(&mut self) -> ErrorInfo {
        while let Some((tag, body)) = self.read_message() {
            if tag == b'E' {
                return ErrorInfo::parse(&body);
            }
        }
        panic!("connection closed without an ErrorResponse");
    }

    /// True when the server has closed the connection (EOF on the next read).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// Encodes a StartupMessage with an explicit protocol code.
pub fn startup_message(code: i32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// Encodes a regular message.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Encodes a simple Query.
pub fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}
