//! The client's half of the protocol: typed, zero-copy views of the frontend messages
//! switchyard inspects, and builders for the few it sends upstream itself.
//!
//! The session forwards every client frame untouched; it decodes one only when it must act
//! on it — classify a statement, remember a prepared statement's text, capture a Bind's
//! parameters for the mirror and the journal, run its own authentication. Each view borrows
//! from exactly one frame body and is parsed strictly ([`crate::parse`]): a view that exists
//! is well-formed to its last byte, so its accessors cannot fail. Malformed input becomes a
//! [`ParseError`], which the proxy answers with SQLSTATE 08P01 and closes the connection.
//!
//! Tag `p` is shared by PasswordMessage, SASLInitialResponse and SASLResponse; which one it
//! is depends on the authentication exchange in progress, so the caller picks the parser and
//! [`FrontendMessage::parse`] leaves `p` alone.
//!
//! The builders are for switchyard acting as a client of its upstreams (authentication,
//! cancel, its own statements). They produce the same bytes as
//! `postgres_protocol::message::frontend`, which the tests check.

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::put_header;
use crate::parse::{read_array, read_values, Field, Formats, Oids, Reader, Values};
use crate::parse::{ParseError, Problem};
use crate::startup::{CANCEL_REQUEST_CODE, SSL_REQUEST_CODE};

/// Tags of the frontend messages.
pub mod tag {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const EXECUTE: u8 = b'E';
    pub const DESCRIBE: u8 = b'D';
    pub const CLOSE: u8 = b'C';
    pub const SYNC: u8 = b'S';
    pub const FLUSH: u8 = b'H';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    pub const TERMINATE: u8 = b'X';
    /// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse.
    pub const PASSWORD: u8 = b'p';
}

/// A simple-protocol Query: one string that may hold several statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    pub sql: &'a str,
}

impl<'a> Query<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("Query", body);
        let sql = r.cstr(Field::named("query string"))?;
        r.finish()?;
        Ok(Self { sql })
    }
}

/// Parse: creates a prepared statement (the unnamed one when `statement` is empty).
#[derive(Debug, Clone)]
pub struct Parse<'a> {
    pub statement: &'a str,
    pub sql: &'a str,
    param_types: &'a [u8],
}

impl<'a> Parse<'a> {
    // The message is called Parse; `Parse::parse` is the same `parse` as every other view.
    #[allow(clippy::self_named_constructors)]
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("Parse", body);
        let statement = r.cstr(Field::named("statement name"))?;
        let sql = r.cstr(Field::named("query string"))?;
        let param_types = read_array(
            &mut r,
            4,
            Field::named("parameter type count"),
            Field::named("parameter types"),
        )?;
        r.finish()?;
        Ok(Self {
            statement,
            sql,
            param_types,
        })
    }

    /// The parameter type OIDs the client specified (0 = let the server infer); there may be
    /// fewer than the statement has parameters.
    pub fn param_types(&self) -> Oids<'a> {
        Oids::new(self.param_types)
    }
}

/// Bind: creates a portal from a prepared statement and parameter values.
#[derive(Debug, Clone)]
pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    param_formats: &'a [u8],
    param_count: usize,
    params: &'a [u8],
    result_formats: &'a [u8],
}

impl<'a> Bind<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("Bind", body);
        let portal = r.cstr(Field::named("portal name"))?;
        let statement = r.cstr(Field::named("statement name"))?;
        let param_formats = read_array(
            &mut r,
            2,
            Field::named("parameter format count"),
            Field::named("parameter format codes"),
        )?;
        let param_count = usize::from(r.u16(Field::named("parameter count"))?);
        let params = read_values(&mut r, param_count, "parameter")?;
        let result_formats = read_array(
            &mut r,
            2,
            Field::named("result format count"),
            Field::named("result format codes"),
        )?;
        r.finish()?;
        Ok(Self {
            portal,
            statement,
            param_formats,
            param_count,
            params,
            result_formats,
        })
    }

    /// The parameter format codes as sent: none (all text), one (applies to all), or one per
    /// parameter.
    pub fn param_formats(&self) -> Formats<'a> {
        Formats::new(self.param_formats)
    }

    /// The format of parameter `index` (0-based) after applying the none/one/each rule, or
    /// `None` when there is no such parameter or the codes do not cover it (the server
    /// rejects such a Bind).
    pub fn param_format(&self, index: usize) -> Option<i16> {
        if index >= self.param_count {
            return None;
        }
        let mut formats = self.param_formats();
        match formats.len() {
            0 => Some(0),
            1 => formats.next(),
            _ => formats.nth(index),
        }
    }

    /// The parameter values; `None` is SQL NULL.
    pub fn params(&self) -> Values<'a> {
        Values::new(self.params, self.param_count)
    }

    pub fn param_count(&self) -> usize {
        self.param_count
    }

    /// The result-column format codes: none (all text), one (all), or one per column.
    pub fn result_formats(&self) -> Formats<'a> {
        Formats::new(self.result_formats)
    }
}

/// Execute: runs a portal, returning at most `max_rows` rows (0 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    pub portal: &'a str,
    pub max_rows: i32,
}

impl<'a> Execute<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("Execute", body);
        let portal = r.cstr(Field::named("portal name"))?;
        let max_rows = r.i32(Field::named("row limit"))?;
        r.finish()?;
        Ok(Self { portal, max_rows })
    }
}

/// `b'S'`: a prepared statement; `b'P'`: a portal.
pub const KIND_STATEMENT: u8 = b'S';
pub const KIND_PORTAL: u8 = b'P';

fn kind_and_name<'a>(message: &'static str, body: &'a [u8]) -> Result<(u8, &'a str), ParseError> {
    let mut r = Reader::new(message, body);
    let kind_field = Field::named("kind");
    let kind = r.u8(kind_field)?;
    if kind != KIND_STATEMENT && kind != KIND_PORTAL {
        return Err(r.error(Problem::Invalid {
            field: kind_field,
            value: i64::from(kind),
        }));
    }
    let name = r.cstr(Field::named("name"))?;
    r.finish()?;
    Ok((kind, name))
}

/// Describe: asks for the description of a statement (`kind == b'S'`) or portal (`b'P'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Describe<'a> {
    pub kind: u8,
    pub name: &'a str,
}

impl<'a> Describe<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let (kind, name) = kind_and_name("Describe", body)?;
        Ok(Self { kind, name })
    }
}

/// Close: closes a statement (`kind == b'S'`) or portal (`b'P'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    pub kind: u8,
    pub name: &'a str,
}

impl<'a> Close<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let (kind, name) = kind_and_name("Close", body)?;
        Ok(Self { kind, name })
    }
}

/// FunctionCall: the legacy fast-path call of a function by OID (libpq's `PQfn`, used by
/// the large-object API). It can write, so the proxy has to see it.
#[derive(Debug, Clone)]
pub struct FunctionCall<'a> {
    pub oid: u32,
    arg_formats: &'a [u8],
    arg_count: usize,
    args: &'a [u8],
    pub result_format: i16,
}

impl<'a> FunctionCall<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("FunctionCall", body);
        let oid = r.u32(Field::named("function OID"))?;
        let arg_formats = read_array(
            &mut r,
            2,
            Field::named("argument format count"),
            Field::named("argument format codes"),
        )?;
        let arg_count = usize::from(r.u16(Field::named("argument count"))?);
        let args = read_values(&mut r, arg_count, "argument")?;
        let result_format = r.i16(Field::named("result format"))?;
        r.finish()?;
        Ok(Self {
            oid,
            arg_formats,
            arg_count,
            args,
            result_format,
        })
    }

    pub fn arg_formats(&self) -> Formats<'a> {
        Formats::new(self.arg_formats)
    }

    /// The arguments; `None` is SQL NULL.
    pub fn args(&self) -> Values<'a> {
        Values::new(self.args, self.arg_count)
    }

    pub fn arg_count(&self) -> usize {
        self.arg_count
    }
}

/// CopyFail: the client aborts a COPY FROM STDIN, with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFail<'a> {
    pub message: &'a str,
}

impl<'a> CopyFail<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("CopyFail", body);
        let message = r.cstr(Field::named("error message"))?;
        r.finish()?;
        Ok(Self { message })
    }
}

/// PasswordMessage: a cleartext password or an md5 response (`"md5" + 32 hex digits`).
/// Kept as bytes: a password is not necessarily UTF-8. Never log it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PasswordMessage<'a> {
    pub password: &'a [u8],
}

impl<'a> PasswordMessage<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("PasswordMessage", body);
        let password = r.cstr_bytes(Field::named("password"))?;
        r.finish()?;
        Ok(Self { password })
    }
}

impl std::fmt::Debug for PasswordMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordMessage")
            .field("password", &"<redacted>")
            .finish()
    }
}

/// SASLInitialResponse: the mechanism the client chose and its first message (`None` when
/// the length is -1, "no initial response").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    pub mechanism: &'a str,
    pub data: Option<&'a [u8]>,
}

impl<'a> SaslInitialResponse<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("SASLInitialResponse", body);
        let mechanism = r.cstr(Field::named("mechanism"))?;
        let data = r.nullable(Field::named("initial response"))?;
        r.finish()?;
        Ok(Self { mechanism, data })
    }
}

/// SASLResponse: the rest of the body is the mechanism's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslResponse<'a> {
    pub data: &'a [u8],
}

impl<'a> SaslResponse<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        Ok(Self { data: body })
    }
}

/// Any frontend message after startup, decoded by tag: the views for the messages the proxy
/// inspects, [`FrontendMessage::Other`] for the rest (Sync, Flush, CopyData, CopyDone,
/// Terminate, and `p`, whose meaning depends on the authentication state).
#[derive(Debug, Clone)]
pub enum FrontendMessage<'a> {
    Query(Query<'a>),
    Parse(Parse<'a>),
    Bind(Bind<'a>),
    Execute(Execute<'a>),
    Describe(Describe<'a>),
    Close(Close<'a>),
    FunctionCall(FunctionCall<'a>),
    CopyFail(CopyFail<'a>),
    Other(u8),
}

impl<'a> FrontendMessage<'a> {
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<Self, ParseError> {
        Ok(match tag {
            tag::QUERY => Self::Query(Query::parse(body)?),
            tag::PARSE => Self::Parse(Parse::parse(body)?),
            tag::BIND => Self::Bind(Bind::parse(body)?),
            tag::EXECUTE => Self::Execute(Execute::parse(body)?),
            tag::DESCRIBE => Self::Describe(Describe::parse(body)?),
            tag::CLOSE => Self::Close(Close::parse(body)?),
            tag::FUNCTION_CALL => Self::FunctionCall(FunctionCall::parse(body)?),
            tag::COPY_FAIL => Self::CopyFail(CopyFail::parse(body)?),
            other => Self::Other(other),
        })
    }
}

/// Why a builder could not encode its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// PostgreSQL strings are NUL-terminated and cannot contain NUL. Refusing is safer than
    /// truncating: a cut-short statement would silently mean something else.
    #[error("{0} contains a NUL byte")]
    InteriorNul(&'static str),
    #[error("{0} is too long for one protocol message")]
    TooLong(&'static str),
}

fn check_cstr(s: &[u8], what: &'static str) -> Result<(), BuildError> {
    if s.contains(&0) {
        Err(BuildError::InteriorNul(what))
    } else {
        Ok(())
    }
}

/// A regular message from a body length and a closure that writes the body.
fn message(
    tag: u8,
    body_len: usize,
    what: &'static str,
    write: impl FnOnce(&mut BytesMut),
) -> Result<Bytes, BuildError> {
    if body_len > i32::MAX as usize - 4 {
        return Err(BuildError::TooLong(what));
    }
    let mut out = BytesMut::with_capacity(body_len + 5);
    put_header(&mut out, tag, body_len);
    write(&mut out);
    Ok(out.freeze())
}

/// PasswordMessage carrying a cleartext password or an md5 response.
pub fn password_message(password: &[u8]) -> Result<Bytes, BuildError> {
    check_cstr(password, "password")?;
    message(tag::PASSWORD, password.len() + 1, "password", |out| {
        out.put_slice(password);
        out.put_u8(0);
    })
}

/// SASLInitialResponse with the chosen mechanism and the client-first-message.
pub fn sasl_initial_response(mechanism: &str, data: &[u8]) -> Result<Bytes, BuildError> {
    check_cstr(mechanism.as_bytes(), "SASL mechanism name")?;
    let body_len = mechanism.len() + 1 + 4 + data.len();
    message(tag::PASSWORD, body_len, "SASL initial response", |out| {
        out.put_slice(mechanism.as_bytes());
        out.put_u8(0);
        // `message` checked that the whole body fits in an i32.
        out.put_i32(data.len() as i32);
        out.put_slice(data);
    })
}

/// SASLResponse carrying a client-final-message.
pub fn sasl_response(data: &[u8]) -> Result<Bytes, BuildError> {
    message(tag::PASSWORD, data.len(), "SASL response", |out| {
        out.put_slice(data)
    })
}

/// A simple-protocol Query.
pub fn query(sql: &str) -> Result<Bytes, BuildError> {
    check_cstr(sql.as_bytes(), "query string")?;
    message(tag::QUERY, sql.len() + 1, "query string", |out| {
        out.put_slice(sql.as_bytes());
        out.put_u8(0);
    })
}

/// Terminate.
pub fn terminate() -> Bytes {
    Bytes::from_static(&[tag::TERMINATE, 0, 0, 0, 4])
}

/// A CancelRequest packet (16 bytes, no tag), sent on a fresh connection.
pub fn cancel_request(process_id: i32, secret_key: i32) -> Bytes {
    let mut out = BytesMut::with_capacity(16);
    out.put_i32(16);
    out.put_i32(CANCEL_REQUEST_CODE);
    out.put_i32(process_id);
    out.put_i32(secret_key);
    out.freeze()
}

/// An SSLRequest packet (8 bytes, no tag).
pub fn ssl_request() -> Bytes {
    let mut out = BytesMut::with_capacity(8);
    out.put_i32(8);
    out.put_i32(SSL_REQUEST_CODE);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::frontend as pp;
    use postgres_protocol::IsNull;

    fn body(msg: &[u8]) -> &[u8] {
        &msg[crate::HEADER_LEN..]
    }

    #[test]
    fn builders_match_postgres_protocol_byte_for_byte() {
        let mut b = BytesMut::new();
        pp::query("select 1", &mut b).unwrap();
        assert_eq!(query("select 1").unwrap(), b.split().freeze());
        pp::password_message(b"md5abc", &mut b).unwrap();
        assert_eq!(password_message(b"md5abc").unwrap(), b.split().freeze());
        pp::sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=x", &mut b).unwrap();
        assert_eq!(
            sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=x").unwrap(),
            b.split().freeze()
        );
        pp::sasl_response(b"c=biws", &mut b).unwrap();
        assert_eq!(sasl_response(b"c=biws").unwrap(), b.split().freeze());
        pp::terminate(&mut b);
        assert_eq!(terminate(), b.split().freeze());
        pp::cancel_request(42, -9, &mut b);
        assert_eq!(cancel_request(42, -9), b.split().freeze());
        pp::ssl_request(&mut b);
        assert_eq!(ssl_request(), b.split().freeze());
    }

    #[test]
    fn builders_refuse_interior_nul_instead_of_truncating() {
        assert_eq!(
            query("delete from t where id = 1\0 or true"),
            Err(BuildError::InteriorNul("query string"))
        );
        assert_eq!(
            password_message(b"a\0b"),
            Err(BuildError::InteriorNul("password"))
        );
        assert!(sasl_initial_response("SCRAM\0", b"").is_err());
    }

    #[test]
    fn cancel_and_ssl_packets_parse_as_startup_packets() {
        use crate::startup::{parse_startup, StartupPacket};
        assert_eq!(
            parse_startup(&cancel_request(7, 8)),
            Ok(StartupPacket::Cancel {
                process_id: 7,
                secret_key: 8
            })
        );
        assert_eq!(parse_startup(&ssl_request()), Ok(StartupPacket::SslRequest));
    }

    #[test]
    fn parse_view_reads_postgres_protocol_encoding() {
        let mut b = BytesMut::new();
        pp::parse("s1", "select $1, $2", [23, 25], &mut b).unwrap();
        let p = Parse::parse(body(&b)).unwrap();
        assert_eq!((p.statement, p.sql), ("s1", "select $1, $2"));
        assert_eq!(p.param_types().collect::<Vec<_>>(), [23, 25]);
    }

    #[test]
    fn bind_view_reads_nulls_formats_and_values() {
        let mut b = BytesMut::new();
        let values: [Option<&[u8]>; 3] = [Some(b"1"), None, Some(b"")];
        pp::bind(
            "p1",
            "s1",
            [1],
            values,
            |v, buf| match v {
                Some(v) => {
                    buf.put_slice(v);
                    Ok(IsNull::No)
                }
                None => Ok(IsNull::Yes),
            },
            [0, 1],
            &mut b,
        )
        .map_err(|_| "bind encoding failed")
        .unwrap();
        let bind = Bind::parse(body(&b)).unwrap();
        assert_eq!((bind.portal, bind.statement), ("p1", "s1"));
        assert_eq!(bind.params().collect::<Vec<_>>(), values);
        assert_eq!(bind.params().len(), 3);
        assert_eq!(bind.param_formats().collect::<Vec<_>>(), [1]);
        assert_eq!(
            (
                bind.param_format(0),
                bind.param_format(2),
                bind.param_format(3)
            ),
            (Some(1), Some(1), None),
            "one format code applies to every parameter"
        );
        assert_eq!(bind.result_formats().collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn bind_rejects_a_parameter_longer_than_the_message() {
        // portal "", statement "", 0 formats, 3 params: two of length 1, then one claiming 200.
        let mut b = vec![0, 0, 0, 0, 0, 3];
        for _ in 0..2 {
            b.extend_from_slice(&1i32.to_be_bytes());
            b.push(b'x');
        }
        b.extend_from_slice(&200i32.to_be_bytes());
        b.extend_from_slice(&[0; 12]);
        assert_eq!(
            Bind::parse(&b).unwrap_err().to_string(),
            "Bind: parameter 3 length 200 exceeds message (12 bytes left)"
        );
    }

    #[test]
    fn execute_describe_close_copyfail_read_their_fields() {
        let mut b = BytesMut::new();
        pp::execute("p", 10, &mut b).unwrap();
        assert_eq!(
            Execute::parse(body(&b.split())).unwrap(),
            Execute {
                portal: "p",
                max_rows: 10
            }
        );
        pp::describe(b'S', "s", &mut b).unwrap();
        assert_eq!(
            Describe::parse(body(&b.split())).unwrap(),
            Describe {
                kind: b'S',
                name: "s"
            }
        );
        pp::close(b'P', "", &mut b).unwrap();
        assert_eq!(
            Close::parse(body(&b.split())).unwrap(),
            Close {
                kind: b'P',
                name: ""
            }
        );
        pp::copy_fail("nope", &mut b).unwrap();
        assert_eq!(CopyFail::parse(body(&b.split())).unwrap().message, "nope");
    }

    #[test]
    fn describe_rejects_unknown_kind() {
        assert_eq!(
            Describe::parse(b"Xs\0").unwrap_err().problem,
            Problem::Invalid {
                field: Field::named("kind"),
                value: i64::from(b'X')
            }
        );
    }

    #[test]
    fn function_call_reads_args_and_result_format() {
        let mut b = 764u32.to_be_bytes().to_vec(); // lo_open
        b.extend_from_slice(&[0, 1, 0, 1]); // one format: binary
        b.extend_from_slice(&[0, 2]); // two args
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&1234u32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        let f = FunctionCall::parse(&b).unwrap();
        assert_eq!(f.oid, 764);
        assert_eq!(f.arg_formats().collect::<Vec<_>>(), [1]);
        assert_eq!(
            f.args().collect::<Vec<_>>(),
            [Some(&1234u32.to_be_bytes()[..]), None]
        );
        assert_eq!(f.result_format, 1);
        b.push(0);
        assert_eq!(
            FunctionCall::parse(&b).unwrap_err().problem,
            Problem::Trailing { count: 1 }
        );
    }

    #[test]
    fn sasl_initial_response_minus_one_length_means_no_data() {
        let mut b = b"SCRAM-SHA-256\0".to_vec();
        b.extend_from_slice(&(-1i32).to_be_bytes());
        let m = SaslInitialResponse::parse(&b).unwrap();
        assert_eq!((m.mechanism, m.data), ("SCRAM-SHA-256", None));
        let built = sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc").unwrap();
        let m = SaslInitialResponse::parse(body(&built)).unwrap();
        assert_eq!(m.data, Some(&b"n,,n=,r=abc"[..]));
    }

    #[test]
    fn password_message_debug_does_not_show_the_password() {
        let built = password_message(b"hunter2").unwrap();
        let m = PasswordMessage::parse(body(&built)).unwrap();
        assert_eq!(m.password, b"hunter2");
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn query_requires_terminator_and_nothing_after_it() {
        assert!(Query::parse(b"select 1").is_err());
        assert!(Query::parse(b"select 1\0x").is_err());
        assert!(Query::parse(b"select 1\0").is_ok());
        assert!(matches!(
            Query::parse(b"select \xff\0").unwrap_err().problem,
            Problem::NotUtf8 { .. }
        ));
    }

    #[test]
    fn dispatcher_routes_by_tag_and_leaves_password_family_alone() {
        assert!(matches!(
            FrontendMessage::parse(b'Q', b"select 1\0"),
            Ok(FrontendMessage::Query(Query { sql: "select 1" }))
        ));
        assert!(matches!(
            FrontendMessage::parse(b'p', b"whatever"),
            Ok(FrontendMessage::Other(b'p'))
        ));
        assert!(FrontendMessage::parse(b'E', b"").is_err());
    }
}
