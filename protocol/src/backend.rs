//! The server's half of the protocol: builders for the messages switchyard itself sends to
//! clients, and typed, zero-copy views of the upstream messages it inspects.
//!
//! Builders: switchyard is the server its clients authenticate against, and it reports its
//! own errors (malformed input, an unknown user, a cutover that timed out). These messages
//! are encoded with `pgwire`'s message types, so their layout is not ours to get wrong. They
//! return `Bytes` and cannot fail: the text arguments are switchyard's own, and a PostgreSQL
//! string cannot hold a NUL, so a text is cut at its first NUL (which is where any C client
//! would stop reading it anyway) rather than producing a malformed message.
//!
//! Views: the session forwards every upstream frame untouched, but it has to read a few: the
//! authentication exchange with the upstream, BackendKeyData (for cancel mapping),
//! ParameterStatus, ReadyForQuery (transaction boundaries drive cutover), CommandComplete
//! and ErrorResponse (the mirror's outcome comparison), RowDescription and DataRow (the
//! shadow-read digest). Each view borrows one frame body, is parsed strictly
//! ([`crate::parse`]), and copies nothing: DataRow values are slices of the frame.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{
    Authentication as PgAuthentication, BackendKeyData as PgBackendKeyData,
    NegotiateProtocolVersion, ParameterStatus as PgParameterStatus, SecretKey,
};
use pgwire::messages::Message;

use crate::parse::{Field, ParseError, Problem, Reader, Values};

/// Tags of the backend messages.
pub mod tag {
    pub const AUTHENTICATION: u8 = b'R';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const ROW_DESCRIPTION: u8 = b'T';
    pub const DATA_ROW: u8 = b'D';
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    pub const PARSE_COMPLETE: u8 = b'1';
    pub const BIND_COMPLETE: u8 = b'2';
    pub const CLOSE_COMPLETE: u8 = b'3';
    pub const NO_DATA: u8 = b'n';
    pub const PORTAL_SUSPENDED: u8 = b's';
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}

/// Transaction status bytes of ReadyForQuery.
pub const STATUS_IDLE: u8 = b'I';
pub const STATUS_IN_TRANSACTION: u8 = b'T';
pub const STATUS_FAILED_TRANSACTION: u8 = b'E';

// ---------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------

/// Encodes a pgwire message. It writes the header itself and calls `encode_body` instead of
/// `Message::encode`, because `encode` also enforces libpq's 30000-byte cap on short
/// message types as an error, and these builders do not fail (their inputs are small).
fn encode<M: Message>(msg: &M) -> Bytes {
    let len = msg.message_length();
    let mut buf = BytesMut::with_capacity(len + 1);
    if let Some(tag) = M::message_type() {
        buf.put_u8(tag);
    }
    buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    // `encode_body` fails only for protocol-3.2 byte-string secret keys, never built here.
    let encoded = msg.encode_body(&mut buf);
    debug_assert!(encoded.is_ok(), "pgwire failed to encode a message");
    buf.freeze()
}

/// A text field for an outgoing message: cut at the first NUL (see the module docs).
fn text(s: &str) -> String {
    s.split('\0').next().unwrap_or_default().to_owned()
}

/// ErrorResponse with severity (`S` and the non-localized `V`), SQLSTATE (`C`) and message
/// (`M`), e.g. `error_response("FATAL", "08P01", "invalid message format")`.
pub fn error_response(severity: &str, code: &str, message: &str) -> Bytes {
    error_response_detail(severity, code, message, None, None)
}

/// ErrorResponse with optional detail (`D`) and hint (`H`) lines.
pub fn error_response_detail(
    severity: &str,
    code: &str,
    message: &str,
    detail: Option<&str>,
    hint: Option<&str>,
) -> Bytes {
    let mut fields = vec![
        (b'S', text(severity)),
        (b'V', text(severity)),
        (b'C', text(code)),
        (b'M', text(message)),
    ];
    if let Some(detail) = detail {
        fields.push((b'D', text(detail)));
    }
    if let Some(hint) = hint {
        fields.push((b'H', text(hint)));
    }
    encode(&ErrorResponse::new(fields))
}

/// NoticeResponse with severity NOTICE.
pub fn notice_response(code: &str, message: &str) -> Bytes {
    encode(&NoticeResponse::new(vec![
        (b'S', "NOTICE".to_owned()),
        (b'V', "NOTICE".to_owned()),
        (b'C', text(code)),
        (b'M', text(message)),
    ]))
}

pub fn authentication_ok() -> Bytes {
    encode(&PgAuthentication::Ok)
}

pub fn authentication_cleartext() -> Bytes {
    encode(&PgAuthentication::CleartextPassword)
}

pub fn authentication_md5(salt: [u8; 4]) -> Bytes {
    encode(&PgAuthentication::MD5Password(salt.to_vec()))
}

/// AuthenticationSASL listing the mechanisms offered, e.g. `&["SCRAM-SHA-256"]`.
pub fn authentication_sasl(mechanisms: &[&str]) -> Bytes {
    encode(&PgAuthentication::SASL(
        mechanisms.iter().map(|m| text(m)).collect(),
    ))
}

/// AuthenticationSASLContinue carrying a server-first-message.
pub fn authentication_sasl_continue(data: &[u8]) -> Bytes {
    encode(&PgAuthentication::SASLContinue(Bytes::copy_from_slice(
        data,
    )))
}

/// AuthenticationSASLFinal carrying a server-final-message.
pub fn authentication_sasl_final(data: &[u8]) -> Bytes {
    encode(&PgAuthentication::SASLFinal(Bytes::copy_from_slice(data)))
}

pub fn parameter_status(name: &str, value: &str) -> Bytes {
    encode(&PgParameterStatus::new(text(name), text(value)))
}

/// BackendKeyData with a protocol-3.0 (4-byte) secret key.
pub fn backend_key_data(pid: i32, secret: i32) -> Bytes {
    encode(&PgBackendKeyData::new(pid, SecretKey::I32(secret)))
}

/// ReadyForQuery with transaction status `I`, `T` or `E`. Any other byte is encoded as
/// given (pgwire cannot represent it), so a proxy relaying an upstream's status never
/// invents one.
pub fn ready_for_query(status: u8) -> Bytes {
    match TransactionStatus::try_from(status) {
        Ok(status) => encode(&ReadyForQuery::new(status)),
        Err(_) => Bytes::copy_from_slice(&[tag::READY_FOR_QUERY, 0, 0, 0, 5, status]),
    }
}

/// NegotiateProtocolVersion: the newest minor version supported for the client's major
/// version, and the protocol options (`_pq_.*`) the server did not recognise.
pub fn negotiate_protocol_version(newest_minor: i32, unrecognized_options: &[&str]) -> Bytes {
    encode(&NegotiateProtocolVersion::new(
        newest_minor,
        unrecognized_options.iter().map(|o| text(o)).collect(),
    ))
}

// ---------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------

/// The fields of an ErrorResponse or NoticeResponse (same layout). The protocol says
/// severity, code and message are always present, so their absence is an error; fields of
/// unknown type are skipped, as the protocol asks of frontends; a repeated field keeps its
/// last value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    /// `S`: ERROR, FATAL, PANIC, WARNING, NOTICE, ... possibly localized.
    pub severity: &'a str,
    /// `V`: the severity, never localized (PostgreSQL 9.6+).
    pub severity_nonlocalized: Option<&'a str>,
    /// `C`: the SQLSTATE.
    pub code: &'a str,
    /// `M`: the primary message.
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub hint: Option<&'a str>,
    pub position: Option<&'a str>,
    pub internal_position: Option<&'a str>,
    pub internal_query: Option<&'a str>,
    pub where_: Option<&'a str>,
    pub schema: Option<&'a str>,
    pub table: Option<&'a str>,
    pub column: Option<&'a str>,
    pub data_type: Option<&'a str>,
    pub constraint: Option<&'a str>,
    pub file: Option<&'a str>,
    pub line: Option<&'a str>,
    pub routine: Option<&'a str>,
}

impl<'a> ErrorFields<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("ErrorResponse", body);
        let mut f = ErrorFields::default();
        let (mut severity, mut code, mut message) = (None, None, None);
        let mut index = 0;
        loop {
            index += 1;
            let field_type = r.u8(Field::nth("field type", index))?;
            if field_type == 0 {
                break;
            }
            let value = r.cstr(Field::nth("field", index))?;
            match field_type {
                b'S' => severity = Some(value),
                b'V' => f.severity_nonlocalized = Some(value),
                b'C' => code = Some(value),
                b'M' => message = Some(value),
                b'D' => f.detail = Some(value),
                b'H' => f.hint = Some(value),
                b'P' => f.position = Some(value),
                b'p' => f.internal_position = Some(value),
                b'q' => f.internal_query = Some(value),
                b'W' => f.where_ = Some(value),
                b's' => f.schema = Some(value),
                b't' => f.table = Some(value),
                b'c' => f.column = Some(value),
                b'd' => f.data_type = Some(value),
                b'n' => f.constraint = Some(value),
                b'F' => f.file = Some(value),
                b'L' => f.line = Some(value),
                b'R' => f.routine = Some(value),
                _ => {}
            }
        }
        let missing = |name| {
            r.error(Problem::Missing {
                field: Field::named(name),
            })
        };
        f.severity = severity.ok_or_else(|| missing("severity (S)"))?;
        f.code = code.ok_or_else(|| missing("code (C)"))?;
        f.message = message.ok_or_else(|| missing("message (M)"))?;
        r.finish()?;
        Ok(f)
    }
}

/// The command tag of a CommandComplete ("INSERT 0 5", "UPDATE 3", "BEGIN").
pub fn command_tag(body: &[u8]) -> Result<&str, ParseError> {
    let mut r = Reader::new("CommandComplete", body);
    let tag = r.cstr(Field::named("command tag"))?;
    r.finish()?;
    Ok(tag)
}

/// The row count a command tag reports: `INSERT oid n`, and `UPDATE`, `DELETE`, `SELECT`,
/// `MERGE`, `FETCH`, `MOVE`, `COPY` followed by `n`. `None` for tags without a count
/// (`BEGIN`, `CREATE TABLE`, a pre-8.2 bare `COPY`) and for anything malformed.
pub fn rows_from_tag(tag: &str) -> Option<u64> {
    fn count(word: &str) -> Option<u64> {
        // `u64::from_str` would accept a leading '+'; a command tag never has one.
        if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        word.parse().ok()
    }
    let mut words = tag.split(' ');
    let rows = match words.next()? {
        "INSERT" => {
            count(words.next()?)?; // the OID, always 0 since PostgreSQL 12
            words.next()?
        }
        "UPDATE" | "DELETE" | "SELECT" | "MERGE" | "FETCH" | "MOVE" | "COPY" => words.next()?,
        _ => return None,
    };
    if words.next().is_some() {
        return None;
    }
    count(rows)
}

/// The transaction status of a ReadyForQuery: [`STATUS_IDLE`], [`STATUS_IN_TRANSACTION`]
/// or [`STATUS_FAILED_TRANSACTION`].
pub fn ready_status(body: &[u8]) -> Result<u8, ParseError> {
    let mut r = Reader::new("ReadyForQuery", body);
    let field = Field::named("transaction status");
    let status = r.u8(field)?;
    r.finish()?;
    match status {
        STATUS_IDLE | STATUS_IN_TRANSACTION | STATUS_FAILED_TRANSACTION => Ok(status),
        other => Err(ParseError {
            message: "ReadyForQuery",
            problem: Problem::Invalid {
                field,
                value: i64::from(other),
            },
        }),
    }
}

/// BackendKeyData as protocol 3.0 sends it (switchyard speaks 3.0 to its upstreams): a
/// process ID and a 4-byte secret key. The longer keys of protocol 3.2 are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKeyData {
    pub process_id: i32,
    pub secret_key: i32,
}

impl BackendKeyData {
    pub fn parse(body: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("BackendKeyData", body);
        let process_id = r.i32(Field::named("process ID"))?;
        let secret_key = r.i32(Field::named("secret key"))?;
        r.finish()?;
        Ok(Self {
            process_id,
            secret_key,
        })
    }
}

/// ParameterStatus (`server_version`, `client_encoding`, `TimeZone`, ...): the server tells
/// the client about a setting it needs to know. The message is just a name and a value, so
/// the parser returns the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterStatus;

impl ParameterStatus {
    /// `(name, value)`.
    pub fn parse(body: &[u8]) -> Result<(&str, &str), ParseError> {
        let mut r = Reader::new("ParameterStatus", body);
        let name = r.cstr(Field::named("parameter name"))?;
        let value = r.cstr(Field::named("parameter value"))?;
        r.finish()?;
        Ok((name, value))
    }
}

/// The authentication request code of an Authentication message (0 = ok, 3 = cleartext,
/// 5 = md5, 10/11/12 = SASL ...). Reads only the code; [`Authentication::parse`] checks the
/// rest.
pub fn authentication_code(body: &[u8]) -> Result<i32, ParseError> {
    Reader::new("Authentication", body).i32(Field::named("authentication code"))
}

/// An Authentication message from an upstream, which switchyard answers when it logs in
/// with the upstream's configured credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication<'a> {
    Ok,
    KerberosV5,
    CleartextPassword,
    Md5Password { salt: [u8; 4] },
    ScmCredential,
    Gss,
    GssContinue(&'a [u8]),
    Sspi,
    Sasl(SaslMechanisms<'a>),
    SaslContinue(&'a [u8]),
    SaslFinal(&'a [u8]),
}

impl<'a> Authentication<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("Authentication", body);
        let code_field = Field::named("authentication code");
        let code = r.i32(code_field)?;
        let msg = match code {
            0 => Self::Ok,
            2 => Self::KerberosV5,
            3 => Self::CleartextPassword,
            5 => {
                let salt = r.array::<4>(Field::named("md5 salt"))?;
                Self::Md5Password { salt }
            }
            6 => Self::ScmCredential,
            7 => Self::Gss,
            8 => Self::GssContinue(r.rest()),
            9 => Self::Sspi,
            10 => {
                let mark = r.mark();
                let mut index = 0;
                loop {
                    index += 1;
                    let before = r.mark();
                    if r.cstr(Field::nth("mechanism", index))?.is_empty() {
                        // Keep the list without its terminating empty name.
                        let raw = mark
                            .get(..mark.len().saturating_sub(before.len()))
                            .unwrap_or_default();
                        break Self::Sasl(SaslMechanisms { raw });
                    }
                }
            }
            11 => Self::SaslContinue(r.rest()),
            12 => Self::SaslFinal(r.rest()),
            other => {
                return Err(r.error(Problem::Invalid {
                    field: code_field,
                    value: i64::from(other),
                }))
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

/// The mechanism names of an AuthenticationSASL, validated UTF-8 C strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslMechanisms<'a> {
    raw: &'a [u8],
}

impl<'a> SaslMechanisms<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + Clone + 'a {
        self.raw
            .split(|&b| b == 0)
            .filter(|m| !m.is_empty())
            .filter_map(|m| std::str::from_utf8(m).ok())
    }

    pub fn contains(&self, mechanism: &str) -> bool {
        self.iter().any(|m| m == mechanism)
    }
}

/// One column of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDescription<'a> {
    pub name: &'a str,
    /// The table's OID when the column is a plain table column, else 0.
    pub table_oid: u32,
    /// The column's attribute number in that table, else 0.
    pub column_attnum: i16,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
    /// 0 = text, 1 = binary.
    pub format: i16,
}

fn read_field_description<'a>(
    r: &mut Reader<'a>,
    index: usize,
) -> Result<FieldDescription<'a>, ParseError> {
    let f = |name| Field::nth(name, index);
    Ok(FieldDescription {
        name: r.cstr(f("field name of column"))?,
        table_oid: r.u32(f("table OID of column"))?,
        column_attnum: r.i16(f("attribute number of column"))?,
        type_oid: r.u32(f("type OID of column"))?,
        type_size: r.i16(f("type size of column"))?,
        type_modifier: r.i32(f("type modifier of column"))?,
        format: r.i16(f("format code of column"))?,
    })
}

/// RowDescription: the columns of the rows that follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDescription<'a> {
    count: usize,
    raw: &'a [u8],
}

impl<'a> RowDescription<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("RowDescription", body);
        let count = usize::from(r.u16(Field::named("field count"))?);
        let mark = r.mark();
        for i in 0..count {
            read_field_description(&mut r, i + 1)?;
        }
        let raw = r.since(mark);
        r.finish()?;
        Ok(Self { count, raw })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn fields(&self) -> FieldDescriptions<'a> {
        FieldDescriptions {
            raw: self.raw,
            remaining: self.count,
        }
    }
}

/// Iterator over a validated RowDescription's columns.
#[derive(Debug, Clone)]
pub struct FieldDescriptions<'a> {
    raw: &'a [u8],
    remaining: usize,
}

impl<'a> Iterator for FieldDescriptions<'a> {
    type Item = FieldDescription<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let mut r = Reader::new("RowDescription", self.raw);
        match read_field_description(&mut r, 1) {
            Ok(field) => {
                self.raw = r.rest();
                self.remaining -= 1;
                Some(field)
            }
            Err(_) => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for FieldDescriptions<'_> {}

/// DataRow: one row's column values as slices of the frame (`None` = NULL). Parsing walks
/// the column lengths once without copying; the values are then read from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow<'a> {
    count: usize,
    raw: &'a [u8],
}

impl<'a> DataRow<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new("DataRow", body);
        let count = usize::from(r.u16(Field::named("column count"))?);
        let raw = crate::parse::read_values(&mut r, count, "column")?;
        r.finish()?;
        Ok(Self { count, raw })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn values(&self) -> Values<'a> {
        Values::new(self.raw, self.count)
    }
}

/// Any backend message, decoded by tag: the views for the messages the proxy inspects,
/// [`BackendMessage::Other`] for the rest.
#[derive(Debug, Clone)]
pub enum BackendMessage<'a> {
    Authentication(Authentication<'a>),
    BackendKeyData(BackendKeyData),
    ParameterStatus { name: &'a str, value: &'a str },
    ReadyForQuery(u8),
    CommandComplete(&'a str),
    ErrorResponse(ErrorFields<'a>),
    NoticeResponse(ErrorFields<'a>),
    RowDescription(RowDescription<'a>),
    DataRow(DataRow<'a>),
    Other(u8),
}

impl<'a> BackendMessage<'a> {
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<Self, ParseError> {
        Ok(match tag {
            tag::AUTHENTICATION => Self::Authentication(Authentication::parse(body)?),
            tag::BACKEND_KEY_DATA => Self::BackendKeyData(BackendKeyData::parse(body)?),
            tag::PARAMETER_STATUS => {
                let (name, value) = ParameterStatus::parse(body)?;
                Self::ParameterStatus { name, value }
            }
            tag::READY_FOR_QUERY => Self::ReadyForQuery(ready_status(body)?),
            tag::COMMAND_COMPLETE => Self::CommandComplete(command_tag(body)?),
            tag::ERROR_RESPONSE => Self::ErrorResponse(ErrorFields::parse(body)?),
            tag::NOTICE_RESPONSE => {
                let fields = ErrorFields::parse(body).map_err(|e| ParseError {
                    message: "NoticeResponse",
                    ..e
                })?;
                Self::NoticeResponse(fields)
            }
            tag::ROW_DESCRIPTION => Self::RowDescription(RowDescription::parse(body)?),
            tag::DATA_ROW => Self::DataRow(DataRow::parse(body)?),
            other => Self::Other(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::backend::Message as PpMessage;

    fn body(msg: &[u8]) -> &[u8] {
        &msg[crate::HEADER_LEN..]
    }

    /// Parses a built message with postgres-protocol, an implementation independent of ours.
    fn pp_parse(msg: &Bytes) -> PpMessage {
        let mut buf = BytesMut::from(&msg[..]);
        let parsed = PpMessage::parse(&mut buf).unwrap().unwrap();
        assert!(
            buf.is_empty(),
            "the declared length covers the whole message"
        );
        parsed
    }

    #[test]
    fn error_response_has_severity_code_and_message_fields() {
        let msg = error_response("FATAL", "08P01", "invalid message format");
        assert_eq!(
            &msg[..],
            b"E\0\0\0\x32SFATAL\0VFATAL\0C08P01\0Minvalid message format\0\0"
        );
        assert!(matches!(pp_parse(&msg), PpMessage::ErrorResponse(_)));
        let f = ErrorFields::parse(body(&msg)).unwrap();
        assert_eq!(
            (f.severity, f.severity_nonlocalized, f.code, f.message),
            ("FATAL", Some("FATAL"), "08P01", "invalid message format")
        );
        assert_eq!((f.detail, f.hint), (None, None));
    }

    #[test]
    fn error_response_detail_carries_detail_and_hint() {
        let msg = error_response_detail("ERROR", "57014", "canceled", Some("d"), Some("h"));
        let f = ErrorFields::parse(body(&msg)).unwrap();
        assert_eq!((f.detail, f.hint), (Some("d"), Some("h")));
    }

    #[test]
    fn builder_text_is_cut_at_nul_so_the_message_stays_well_formed() {
        let msg = error_response("ERROR", "XX000", "bad\0 tail");
        let f = ErrorFields::parse(body(&msg)).unwrap();
        assert_eq!(f.message, "bad");
        let status = parameter_status("a\0b", "c");
        let (name, value) = ParameterStatus::parse(body(&status)).unwrap();
        assert_eq!((name, value), ("a", "c"));
    }

    #[test]
    fn notice_response_is_a_notice() {
        let msg = notice_response("01000", "heads up");
        assert_eq!(msg[0], b'N');
        assert!(matches!(pp_parse(&msg), PpMessage::NoticeResponse(_)));
        let f = ErrorFields::parse(body(&msg)).unwrap();
        assert_eq!(
            (f.severity, f.code, f.message),
            ("NOTICE", "01000", "heads up")
        );
    }

    #[test]
    fn authentication_builders_encode_each_request_code() {
        assert_eq!(&authentication_ok()[..], b"R\0\0\0\x08\0\0\0\0");
        assert_eq!(&authentication_cleartext()[..], b"R\0\0\0\x08\0\0\0\x03");
        let md5 = authentication_md5([1, 2, 3, 4]);
        match pp_parse(&md5) {
            PpMessage::AuthenticationMd5Password(b) => assert_eq!(b.salt(), [1, 2, 3, 4]),
            _ => panic!("not an md5 request"),
        }
        assert_eq!(
            Authentication::parse(body(&md5)),
            Ok(Authentication::Md5Password { salt: [1, 2, 3, 4] })
        );
        let sasl = authentication_sasl(&["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]);
        assert_eq!(
            &sasl[..],
            b"R\0\0\0\x2a\0\0\0\x0aSCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0"
        );
        let Ok(Authentication::Sasl(mechs)) = Authentication::parse(body(&sasl)) else {
            panic!("not a SASL request")
        };
        assert_eq!(
            mechs.iter().collect::<Vec<_>>(),
            ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]
        );
        assert!(mechs.contains("SCRAM-SHA-256") && !mechs.contains("SCRAM"));
        let cont = authentication_sasl_continue(b"r=abc,s=c2FsdA==,i=4096");
        match pp_parse(&cont) {
            PpMessage::AuthenticationSaslContinue(b) => {
                assert_eq!(b.data(), b"r=abc,s=c2FsdA==,i=4096")
            }
            _ => panic!("not a SASL continue"),
        }
        let fin = authentication_sasl_final(b"v=xyz");
        assert_eq!(
            Authentication::parse(body(&fin)),
            Ok(Authentication::SaslFinal(b"v=xyz"))
        );
        assert_eq!(authentication_code(body(&fin)), Ok(12));
    }

    #[test]
    fn key_data_status_and_ready_round_trip() {
        let k = backend_key_data(4242, -17);
        match pp_parse(&k) {
            PpMessage::BackendKeyData(b) => {
                assert_eq!((b.process_id(), b.secret_key()), (4242, -17))
            }
            _ => panic!("not BackendKeyData"),
        }
        assert_eq!(
            BackendKeyData::parse(body(&k)),
            Ok(BackendKeyData {
                process_id: 4242,
                secret_key: -17
            })
        );
        let s = parameter_status("TimeZone", "UTC");
        assert_eq!(ParameterStatus::parse(body(&s)), Ok(("TimeZone", "UTC")));
        for status in [
            STATUS_IDLE,
            STATUS_IN_TRANSACTION,
            STATUS_FAILED_TRANSACTION,
        ] {
            let z = ready_for_query(status);
            assert_eq!(&z[..], &[b'Z', 0, 0, 0, 5, status]);
            assert_eq!(ready_status(body(&z)), Ok(status));
        }
        assert!(ready_status(body(&ready_for_query(b'X'))).is_err());
    }

    #[test]
    fn negotiate_protocol_version_lists_unrecognized_options() {
        let v = negotiate_protocol_version(0, &["_pq_.a", "_pq_.b"]);
        let mut expected = b"v\0\0\0\x1a\0\0\0\0\0\0\0\x02".to_vec();
        expected.extend_from_slice(b"_pq_.a\0_pq_.b\0");
        assert_eq!(&v[..], &expected[..]);
    }

    #[test]
    fn rows_from_tag_reads_counts_only_where_there_are_counts() {
        let cases = [
            ("INSERT 0 5", Some(5)),
            ("UPDATE 3", Some(3)),
            ("DELETE 0", Some(0)),
            ("SELECT 7", Some(7)),
            ("MERGE 2", Some(2)),
            ("FETCH 100", Some(100)),
            ("MOVE 1", Some(1)),
            ("COPY 10", Some(10)),
            ("COPY", None),
            ("BEGIN", None),
            ("CREATE TABLE", None),
            ("INSERT 5", None),
            ("UPDATE +3", None),
            ("UPDATE 3 4", None),
            ("SELECT ", None),
            ("", None),
            ("UPDATE 18446744073709551616", None),
        ];
        for (tag, rows) in cases {
            assert_eq!(rows_from_tag(tag), rows, "{tag:?}");
        }
    }

    #[test]
    fn command_tag_is_one_terminated_string() {
        assert_eq!(command_tag(b"INSERT 0 1\0"), Ok("INSERT 0 1"));
        assert!(command_tag(b"INSERT 0 1").is_err());
        assert!(command_tag(b"INSERT\0\0").is_err());
    }

    #[test]
    fn error_fields_require_severity_code_and_message_and_skip_unknown_types() {
        let ok = b"SERROR\0C23505\0Mdup\0Zfuture field\0nt_pkey\0\0";
        let f = ErrorFields::parse(ok).unwrap();
        assert_eq!((f.code, f.constraint), ("23505", Some("t_pkey")));
        let err = ErrorFields::parse(b"SERROR\0Mno code\0\0").unwrap_err();
        assert_eq!(err.to_string(), "ErrorResponse: code (C) is missing");
        assert!(
            ErrorFields::parse(b"SERROR\0C1\0Mm\0").is_err(),
            "no terminator"
        );
        assert!(
            ErrorFields::parse(b"SERROR\0C1\0Mm\0\0x").is_err(),
            "bytes after the terminator"
        );
    }

    fn row_description(cols: &[(&str, u32, i16, u32)]) -> Vec<u8> {
        let mut b = (cols.len() as u16).to_be_bytes().to_vec();
        for (name, table, attnum, ty) in cols {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(&table.to_be_bytes());
            b.extend_from_slice(&attnum.to_be_bytes());
            b.extend_from_slice(&ty.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes());
            b.extend_from_slice(&(-1i32).to_be_bytes());
            b.extend_from_slice(&0i16.to_be_bytes());
        }
        b
    }

    #[test]
    fn row_description_lists_columns_with_their_origin() {
        let b = row_description(&[("id", 16384, 1, 23), ("?column?", 0, 0, 25)]);
        let rd = RowDescription::parse(&b).unwrap();
        assert_eq!(rd.len(), 2);
        let fields: Vec<_> = rd.fields().collect();
        assert_eq!(
            fields[0],
            FieldDescription {
                name: "id",
                table_oid: 16384,
                column_attnum: 1,
                type_oid: 23,
                type_size: -1,
                type_modifier: -1,
                format: 0
            }
        );
        assert_eq!((fields[1].name, fields[1].table_oid), ("?column?", 0));
        assert!(RowDescription::parse(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn data_row_values_are_slices_of_the_frame() {
        let mut b = 3u16.to_be_bytes().to_vec();
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(b"42");
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        let row = DataRow::parse(&b).unwrap();
        let values: Vec<_> = row.values().collect();
        assert_eq!(values, [Some(&b"42"[..]), None, Some(&b""[..])]);
        let v = values[0].unwrap();
        assert!(
            std::ptr::eq(v.as_ptr(), b[6..].as_ptr()),
            "the value points into the frame, not a copy"
        );
        let err = DataRow::parse(&b[..b.len() - 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DataRow: column 3 needs 4 bytes (2 bytes left)"
        );
    }

    #[test]
    fn backend_key_data_rejects_protocol_3_2_long_keys() {
        let mut b = 1i32.to_be_bytes().to_vec();
        b.extend_from_slice(&[7; 32]);
        assert!(BackendKeyData::parse(&b).is_err());
    }

    #[test]
    fn dispatcher_routes_by_tag_and_names_notices() {
        assert!(matches!(
            BackendMessage::parse(b'Z', b"I"),
            Ok(BackendMessage::ReadyForQuery(b'I'))
        ));
        assert!(matches!(
            BackendMessage::parse(b'1', b""),
            Ok(BackendMessage::Other(b'1'))
        ));
        assert_eq!(
            BackendMessage::parse(b'N', b"\0").unwrap_err().message,
            "NoticeResponse"
        );
    }
}
