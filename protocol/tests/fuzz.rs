//! The bounded-time fuzz run of the test suite: property-based fuzzing with proptest, on
//! stable Rust, sized to finish in well under 20 s in a debug build (the case counts below
//! are the knob). Longer, coverage-guided runs use the libFuzzer targets in `protocol/fuzz/`.
//!
//! What it proves, for every parser in the crate (framing, startup packets, every frontend
//! and backend view, SCRAM):
//! - arbitrary bytes, and valid messages mutated (flipped bytes, truncations, random
//!   declared lengths, inserted bytes), never panic: malformed input is always an `Err`;
//! - a view that parses is internally consistent: its iterators yield exactly as many items
//!   as it says it has;
//! - valid messages round-trip: build (with our builders or `postgres-protocol`'s) → parse
//!   gives back the fields;
//! - parsing is strict: a valid body cut short, or with a byte added, is an error.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use switchyard_protocol::auth::{md5_verify, ScramServer, ScramVerifier};
use switchyard_protocol::backend::{
    self, Authentication, BackendKeyData, BackendMessage, DataRow, ErrorFields, ParameterStatus,
    RowDescription,
};
use switchyard_protocol::frame::{frame_len, split_frame, FrameScan, HEADER_LEN};
use switchyard_protocol::frontend::{
    self, Bind, Close, CopyFail, Describe, Execute, FrontendMessage, FunctionCall, Parse,
    PasswordMessage, Query, SaslInitialResponse, SaslResponse,
};
use switchyard_protocol::startup::{parse_startup, startup_len, StartupMessage, StartupPacket};
use switchyard_protocol::ParseError;

/// Cases per property. Each case is microseconds, so this keeps the file at a few seconds.
const CASES: u32 = 5000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Running every parser
// ---------------------------------------------------------------------------------------

/// The parsers that read a frame body, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    Parse,
    Bind,
    Execute,
    Describe,
    Close,
    FunctionCall,
    CopyFail,
    Password,
    SaslInitial,
    SaslResponse,
    ErrorResponse,
    CommandComplete,
    ReadyForQuery,
    BackendKeyData,
    ParameterStatus,
    Authentication,
    RowDescription,
    DataRow,
}

const ALL_KINDS: [Kind; 19] = [
    Kind::Query,
    Kind::Parse,
    Kind::Bind,
    Kind::Execute,
    Kind::Describe,
    Kind::Close,
    Kind::FunctionCall,
    Kind::CopyFail,
    Kind::Password,
    Kind::SaslInitial,
    Kind::SaslResponse,
    Kind::ErrorResponse,
    Kind::CommandComplete,
    Kind::ReadyForQuery,
    Kind::BackendKeyData,
    Kind::ParameterStatus,
    Kind::Authentication,
    Kind::RowDescription,
    Kind::DataRow,
];

/// Asserts that an iterator yields exactly the number of items it announces.
fn exhaust<I: ExactSizeIterator>(it: I) {
    let announced = it.len();
    assert_eq!(it.count(), announced, "iterator length mismatch");
}

/// Parses `body` as `kind` and walks everything the view exposes.
fn parse_as(kind: Kind, body: &[u8]) -> Result<(), ParseError> {
    match kind {
        Kind::Query => drop(Query::parse(body)?),
        Kind::Parse => exhaust(Parse::parse(body)?.param_types()),
        Kind::Bind => {
            let b = Bind::parse(body)?;
            exhaust(b.param_formats());
            exhaust(b.params());
            exhaust(b.result_formats());
            assert_eq!(b.params().len(), b.param_count());
            for i in 0..=b.param_count() {
                let _ = b.param_format(i);
            }
        }
        Kind::Execute => drop(Execute::parse(body)?),
        Kind::Describe => drop(Describe::parse(body)?),
        Kind::Close => drop(Close::parse(body)?),
        Kind::FunctionCall => {
            let f = FunctionCall::parse(body)?;
            exhaust(f.arg_formats());
            exhaust(f.args());
            assert_eq!(f.args().len(), f.arg_count());
        }
        Kind::CopyFail => drop(CopyFail::parse(body)?),
        Kind::Password => drop(PasswordMessage::parse(body)?),
        Kind::SaslInitial => drop(SaslInitialResponse::parse(body)?),
        Kind::SaslResponse => drop(SaslResponse::parse(body)?),
        Kind::ErrorResponse => drop(ErrorFields::parse(body)?),
        Kind::CommandComplete => {
            let _ = backend::rows_from_tag(backend::command_tag(body)?);
        }
        Kind::ReadyForQuery => drop(backend::ready_status(body)?),
        Kind::BackendKeyData => drop(BackendKeyData::parse(body)?),
        Kind::ParameterStatus => drop(ParameterStatus::parse(body)?),
        Kind::Authentication => {
            let code = backend::authentication_code(body);
            if let Authentication::Sasl(m) = Authentication::parse(body)? {
                let _ = m.iter().count();
            }
            assert!(code.is_ok(), "a parsed Authentication has a code");
        }
        Kind::RowDescription => {
            let rd = RowDescription::parse(body)?;
            exhaust(rd.fields());
            assert_eq!(rd.fields().len(), rd.len());
        }
        Kind::DataRow => {
            let row = DataRow::parse(body)?;
            exhaust(row.values());
            assert_eq!(row.values().len(), row.len());
        }
    }
    Ok(())
}

/// Runs every body parser and both dispatchers on `body`; none may panic.
fn parse_everything(tag: u8, body: &[u8]) {
    for kind in ALL_KINDS {
        let _ = parse_as(kind, body);
    }
    let _ = FrontendMessage::parse(tag, body);
    let _ = BackendMessage::parse(tag, body);
    let _ = backend::rows_from_tag(&String::from_utf8_lossy(body));
}

/// Runs the framing and startup functions on a raw buffer, checking that what they report
/// is consistent with the buffer; none may panic.
fn frame_everything(buf: &[u8]) {
    for max in [0, 4, 64, 1 << 20] {
        let _ = frame_len(buf, max);
        let mut scan = FrameScan::new(buf, max);
        let mut covered = 0;
        for (tag, frame) in scan.by_ref() {
            assert_eq!(frame.first(), Some(&tag));
            assert_eq!(frame_len(frame, max), Ok(Some(frame.len())));
            assert_eq!(&buf[covered..covered + frame.len()], frame);
            covered += frame.len();
            parse_everything(tag, &frame[HEADER_LEN..]);
        }
        assert_eq!(scan.consumed(), covered);
        let mut bm = BytesMut::from(buf);
        let mut split_total = 0;
        while let Ok(Some(f)) = split_frame(&mut bm, max) {
            split_total += f.bytes.len();
        }
        assert_eq!(split_total, covered, "split_frame and FrameScan agree");
    }
    let _ = startup_len(buf);
    let _ = parse_startup(buf);
    if let Ok(Some(len)) = startup_len(buf) {
        if let Some(packet) = buf.get(..len) {
            let _ = parse_startup(packet);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Valid messages
// ---------------------------------------------------------------------------------------

/// A string PostgreSQL can carry: no NUL.
fn pg_str() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn framed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn values() -> impl Strategy<Value = Vec<Option<Vec<u8>>>> {
    vec(proptest::option::of(vec(any::<u8>(), 0..8)), 0..6)
}

fn put_values(b: &mut Vec<u8>, values: &[Option<Vec<u8>>]) {
    b.extend_from_slice(&(values.len() as u16).to_be_bytes());
    for v in values {
        match v {
            Some(v) => {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v);
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
}

fn bytes_of(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    f(&mut b);
    b.to_vec()
}

fn encode_bind(
    portal: &str,
    statement: &str,
    formats: &[i16],
    params: &[Option<Vec<u8>>],
    result_formats: &[i16],
) -> Vec<u8> {
    bytes_of(|b| {
        postgres_protocol::message::frontend::bind(
            portal,
            statement,
            formats.iter().copied(),
            params.iter(),
            |v, buf| match v {
                Some(v) => {
                    buf.put_slice(v);
                    Ok(postgres_protocol::IsNull::No)
                }
                None => Ok(postgres_protocol::IsNull::Yes),
            },
            result_formats.iter().copied(),
            b,
        )
        .map_err(|_| "bind")
        .unwrap()
    })
}

fn encode_function_call(
    oid: u32,
    formats: &[i16],
    args: &[Option<Vec<u8>>],
    result: i16,
) -> Vec<u8> {
    let mut b = oid.to_be_bytes().to_vec();
    b.extend_from_slice(&(formats.len() as u16).to_be_bytes());
    for f in formats {
        b.extend_from_slice(&f.to_be_bytes());
    }
    put_values(&mut b, args);
    b.extend_from_slice(&result.to_be_bytes());
    framed(b'F', &b)
}

/// name, table OID, attnum, type OID, type size, type modifier, format.
type Column = (String, u32, i16, u32, i16, i32, i16);

fn column() -> impl Strategy<Value = Column> {
    (
        pg_str(),
        any::<u32>(),
        any::<i16>(),
        any::<u32>(),
        any::<i16>(),
        any::<i32>(),
        any::<i16>(),
    )
}

fn encode_row_description(cols: &[Column]) -> Vec<u8> {
    let mut b = (cols.len() as u16).to_be_bytes().to_vec();
    for (name, table, attnum, ty, size, typmod, format) in cols {
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.extend_from_slice(&table.to_be_bytes());
        b.extend_from_slice(&attnum.to_be_bytes());
        b.extend_from_slice(&ty.to_be_bytes());
        b.extend_from_slice(&size.to_be_bytes());
        b.extend_from_slice(&typmod.to_be_bytes());
        b.extend_from_slice(&format.to_be_bytes());
    }
    framed(b'T', &b)
}

/// One valid message of every kind, with random contents, as a whole frame.
fn valid_message() -> impl Strategy<Value = (Kind, Vec<u8>)> {
    use postgres_protocol::message::frontend as pp;
    let s = pg_str;
    prop_oneof![
        s().prop_map(|sql| (Kind::Query, frontend::query(&sql).unwrap().to_vec())),
        (s(), s(), vec(any::<u32>(), 0..5)).prop_map(|(name, sql, types)| {
            (
                Kind::Parse,
                bytes_of(|b| pp::parse(&name, &sql, types, b).unwrap()),
            )
        }),
        (
            s(),
            s(),
            vec(any::<i16>(), 0..4),
            values(),
            vec(any::<i16>(), 0..4)
        )
            .prop_map(|(portal, stmt, f, v, rf)| (
                Kind::Bind,
                encode_bind(&portal, &stmt, &f, &v, &rf)
            )),
        (s(), any::<i32>()).prop_map(|(portal, n)| {
            (
                Kind::Execute,
                bytes_of(|b| pp::execute(&portal, n, b).unwrap()),
            )
        }),
        (prop_oneof![Just(b'S'), Just(b'P')], s()).prop_map(|(k, name)| {
            (
                Kind::Describe,
                bytes_of(|b| pp::describe(k, &name, b).unwrap()),
            )
        }),
        (prop_oneof![Just(b'S'), Just(b'P')], s())
            .prop_map(|(k, name)| { (Kind::Close, bytes_of(|b| pp::close(k, &name, b).unwrap())) }),
        (
            any::<u32>(),
            vec(any::<i16>(), 0..4),
            values(),
            any::<i16>()
        )
            .prop_map(|(oid, f, a, r)| (Kind::FunctionCall, encode_function_call(oid, &f, &a, r))),
        s().prop_map(|m| (Kind::CopyFail, bytes_of(|b| pp::copy_fail(&m, b).unwrap()))),
        s().prop_map(|p| (
            Kind::Password,
            frontend::password_message(p.as_bytes()).unwrap().to_vec()
        )),
        (s(), vec(any::<u8>(), 0..32)).prop_map(|(m, d)| {
            (
                Kind::SaslInitial,
                frontend::sasl_initial_response(&m, &d).unwrap().to_vec(),
            )
        }),
        vec(any::<u8>(), 0..32).prop_map(|d| (
            Kind::SaslResponse,
            frontend::sasl_response(&d).unwrap().to_vec()
        )),
        (
            s(),
            s(),
            s(),
            proptest::option::of(s()),
            proptest::option::of(s())
        )
            .prop_map(|(sev, code, msg, d, h)| {
                let m =
                    backend::error_response_detail(&sev, &code, &msg, d.as_deref(), h.as_deref());
                (Kind::ErrorResponse, m.to_vec())
            }),
        s().prop_map(|tag| {
            let mut body = tag.into_bytes();
            body.push(0);
            (Kind::CommandComplete, framed(b'C', &body))
        }),
        prop_oneof![Just(b'I'), Just(b'T'), Just(b'E')]
            .prop_map(|st| (Kind::ReadyForQuery, backend::ready_for_query(st).to_vec())),
        (any::<i32>(), any::<i32>()).prop_map(|(p, k)| (
            Kind::BackendKeyData,
            backend::backend_key_data(p, k).to_vec()
        )),
        (s(), s()).prop_map(|(n, v)| (
            Kind::ParameterStatus,
            backend::parameter_status(&n, &v).to_vec()
        )),
        prop_oneof![
            Just(backend::authentication_ok()),
            Just(backend::authentication_cleartext()),
            any::<[u8; 4]>().prop_map(backend::authentication_md5),
            vec(s(), 0..3).prop_map(|m| {
                // An empty name would end the list early; PostgreSQL never sends one.
                let m: Vec<String> = m.into_iter().filter(|m| !m.is_empty()).collect();
                let m: Vec<&str> = m.iter().map(String::as_str).collect();
                backend::authentication_sasl(&m)
            }),
            vec(any::<u8>(), 0..32).prop_map(|d| backend::authentication_sasl_continue(&d)),
            vec(any::<u8>(), 0..32).prop_map(|d| backend::authentication_sasl_final(&d)),
        ]
        .prop_map(|m: Bytes| (Kind::Authentication, m.to_vec())),
        vec(column(), 0..4).prop_map(|cols| (Kind::RowDescription, encode_row_description(&cols))),
        values().prop_map(|v| {
            let mut b = Vec::new();
            put_values(&mut b, &v);
            (Kind::DataRow, framed(b'D', &b))
        }),
    ]
}

/// Whether every proper prefix of a valid body of this kind must fail to parse, and the body
/// with a byte appended too. True for every message whose last field is not "the rest of the
/// body".
fn strict(kind: Kind, body: &[u8]) -> bool {
    match kind {
        Kind::SaslResponse => false,
        // SASLContinue / SASLFinal (and GSS continue) carry the rest of the body.
        Kind::Authentication => {
            !matches!(backend::authentication_code(body), Ok(8) | Ok(11) | Ok(12))
        }
        _ => true,
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Truncate(usize),
    SetLength(i32),
    Insert { at: usize, bytes: Vec<u8> },
    SetBodyInt { at: usize, value: i32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(Mutation::Truncate),
        prop_oneof![any::<i32>(), -8..64i32].prop_map(Mutation::SetLength),
        (any::<usize>(), vec(any::<u8>(), 1..6))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        // Counts and lengths are where parsers go wrong: overwrite 4 bytes with an
        // interesting integer.
        (
            any::<usize>(),
            prop_oneof![
                Just(-1),
                Just(-2),
                Just(0),
                Just(i32::MAX),
                Just(i32::MIN),
                0..300i32,
                any::<i32>()
            ]
        )
            .prop_map(|(at, value)| Mutation::SetBodyInt { at, value }),
    ]
}

fn mutate(mut msg: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let len = msg.len();
    match m {
        Mutation::Flip { at, xor } => {
            if len > 0 {
                msg[at % len] ^= xor;
            }
        }
        Mutation::Truncate(n) => msg.truncate(n % (len + 1)),
        Mutation::SetLength(l) => {
            if len >= HEADER_LEN {
                msg[1..5].copy_from_slice(&l.to_be_bytes());
            }
        }
        Mutation::Insert { at, bytes } => {
            let at = at % (len + 1);
            msg.splice(at..at, bytes.iter().copied());
        }
        Mutation::SetBodyInt { at, value } => {
            if len >= HEADER_LEN + 4 {
                let at = HEADER_LEN + at % (len - HEADER_LEN - 3);
                msg[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
        }
    }
    msg
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_any_parser(buf in vec(any::<u8>(), 0..300), tag in any::<u8>()) {
        frame_everything(&buf);
        parse_everything(tag, &buf);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(tag in any::<u8>(), body in vec(any::<u8>(), 0..300)) {
        // Random bodies under a correct header reach the parsers through FrameScan.
        frame_everything(&framed(tag, &body));
    }

    #[test]
    fn mutated_valid_messages_never_panic((kind, msg) in valid_message(), muts in vec(mutation(), 1..4)) {
        let mut m = msg;
        for mu in &muts {
            m = mutate(m, mu);
        }
        frame_everything(&m);
        if let Some(body) = m.get(HEADER_LEN..) {
            let _ = parse_as(kind, body);
            parse_everything(m[0], body);
        }
    }

    #[test]
    fn valid_messages_parse_and_cut_or_padded_bodies_do_not(
        (kind, msg) in valid_message(),
        extra in any::<u8>(),
    ) {
        let mut scan = FrameScan::new(&msg, 1 << 20);
        let (_, frame) = scan.next().expect("one whole frame");
        prop_assert_eq!(frame.len(), msg.len());
        prop_assert!(scan.next().is_none());
        let body = &msg[HEADER_LEN..];
        prop_assert_eq!(parse_as(kind, body), Ok(()));
        if strict(kind, body) {
            for cut in 0..body.len() {
                prop_assert!(parse_as(kind, &body[..cut]).is_err(), "{kind:?} prefix of {cut} bytes parsed");
            }
            let mut padded = body.to_vec();
            padded.push(extra);
            prop_assert!(parse_as(kind, &padded).is_err(), "{kind:?} with a trailing byte parsed");
        }
    }

    #[test]
    fn concatenated_frames_split_exactly_as_built(msgs in vec(valid_message(), 0..6), cut in any::<usize>()) {
        let all: Vec<u8> = msgs.iter().flat_map(|(_, m)| m.clone()).collect();
        let scanned: Vec<&[u8]> = FrameScan::new(&all, 1 << 20).map(|(_, f)| f).collect();
        let built: Vec<&[u8]> = msgs.iter().map(|(_, m)| m.as_slice()).collect();
        prop_assert_eq!(scanned, built);
        // A partial buffer yields the whole frames before the cut and waits for the rest.
        let cut = cut % (all.len() + 1);
        let mut buf = BytesMut::from(&all[..cut]);
        let mut whole = 0;
        while let Some(f) = split_frame(&mut buf, 1 << 20).unwrap() {
            whole += f.bytes.len();
        }
        prop_assert_eq!(whole + buf.len(), cut);
        let last_boundary = msgs
            .iter()
            .scan(0, |end, (_, m)| { *end += m.len(); Some(*end) })
            .take_while(|&end| end <= cut)
            .last()
            .unwrap_or(0);
        prop_assert_eq!(whole, last_boundary);
    }

    // ----- round trips: build, parse, get the fields back -----

    #[test]
    fn query_and_copy_fail_round_trip(sql in pg_str()) {
        let q = frontend::query(&sql).unwrap();
        prop_assert_eq!(Query::parse(&q[HEADER_LEN..]).unwrap().sql, sql.as_str());
        let f = bytes_of(|b| postgres_protocol::message::frontend::copy_fail(&sql, b).unwrap());
        prop_assert_eq!(CopyFail::parse(&f[HEADER_LEN..]).unwrap().message, sql.as_str());
    }

    #[test]
    fn parse_and_bind_round_trip(
        name in pg_str(), sql in pg_str(), types in vec(any::<u32>(), 0..6),
        portal in pg_str(), formats in vec(any::<i16>(), 0..4), params in values(),
        result_formats in vec(any::<i16>(), 0..4),
    ) {
        let p = bytes_of(|b| {
            postgres_protocol::message::frontend::parse(&name, &sql, types.iter().copied(), b)
                .unwrap()
        });
        let view = Parse::parse(&p[HEADER_LEN..]).unwrap();
        prop_assert_eq!((view.statement, view.sql), (name.as_str(), sql.as_str()));
        prop_assert_eq!(view.param_types().collect::<Vec<_>>(), types);

        let b = encode_bind(&portal, &name, &formats, &params, &result_formats);
        let view = Bind::parse(&b[HEADER_LEN..]).unwrap();
        prop_assert_eq!((view.portal, view.statement), (portal.as_str(), name.as_str()));
        prop_assert_eq!(view.param_formats().collect::<Vec<_>>(), formats);
        let got: Vec<Option<Vec<u8>>> = view.params().map(|v| v.map(<[u8]>::to_vec)).collect();
        prop_assert_eq!(got, params);
        prop_assert_eq!(view.result_formats().collect::<Vec<_>>(), result_formats);
    }

    #[test]
    fn execute_describe_close_function_call_round_trip(
        portal in pg_str(), max_rows in any::<i32>(), kind in prop_oneof![Just(b'S'), Just(b'P')],
        oid in any::<u32>(), formats in vec(any::<i16>(), 0..4), args in values(), result in any::<i16>(),
    ) {
        use postgres_protocol::message::frontend as pp;
        let e = bytes_of(|b| pp::execute(&portal, max_rows, b).unwrap());
        prop_assert_eq!(Execute::parse(&e[HEADER_LEN..]).unwrap(), Execute { portal: &portal, max_rows });
        let d = bytes_of(|b| pp::describe(kind, &portal, b).unwrap());
        prop_assert_eq!(Describe::parse(&d[HEADER_LEN..]).unwrap(), Describe { kind, name: &portal });
        let c = bytes_of(|b| pp::close(kind, &portal, b).unwrap());
        prop_assert_eq!(Close::parse(&c[HEADER_LEN..]).unwrap(), Close { kind, name: &portal });
        let f = encode_function_call(oid, &formats, &args, result);
        let view = FunctionCall::parse(&f[HEADER_LEN..]).unwrap();
        prop_assert_eq!((view.oid, view.result_format), (oid, result));
        prop_assert_eq!(view.arg_formats().collect::<Vec<_>>(), formats);
        let got: Vec<Option<Vec<u8>>> = view.args().map(|v| v.map(<[u8]>::to_vec)).collect();
        prop_assert_eq!(got, args);
    }

    #[test]
    fn authentication_messages_round_trip(
        password in pg_str(), mechanism in pg_str(), data in vec(any::<u8>(), 0..64),
        salt in any::<[u8; 4]>(),
    ) {
        let p = frontend::password_message(password.as_bytes()).unwrap();
        prop_assert_eq!(PasswordMessage::parse(&p[HEADER_LEN..]).unwrap().password, password.as_bytes());
        let i = frontend::sasl_initial_response(&mechanism, &data).unwrap();
        prop_assert_eq!(
            SaslInitialResponse::parse(&i[HEADER_LEN..]).unwrap(),
            SaslInitialResponse { mechanism: &mechanism, data: Some(&data) }
        );
        let r = frontend::sasl_response(&data).unwrap();
        prop_assert_eq!(SaslResponse::parse(&r[HEADER_LEN..]).unwrap().data, &data[..]);
        let c = backend::authentication_sasl_continue(&data);
        prop_assert_eq!(Authentication::parse(&c[HEADER_LEN..]).unwrap(), Authentication::SaslContinue(&data));
        let f = backend::authentication_sasl_final(&data);
        prop_assert_eq!(Authentication::parse(&f[HEADER_LEN..]).unwrap(), Authentication::SaslFinal(&data));
        let m = backend::authentication_md5(salt);
        prop_assert_eq!(Authentication::parse(&m[HEADER_LEN..]).unwrap(), Authentication::Md5Password { salt });
        let expected = postgres_protocol::authentication::md5_hash(
            mechanism.as_bytes(),
            password.as_bytes(),
            salt,
        );
        prop_assert!(md5_verify(&mechanism, &password, salt, expected.as_bytes()));
    }

    #[test]
    fn backend_messages_round_trip(
        sev in pg_str(), code in pg_str(), msg in pg_str(),
        detail in proptest::option::of(pg_str()), hint in proptest::option::of(pg_str()),
        pid in any::<i32>(), key in any::<i32>(), status in prop_oneof![Just(b'I'), Just(b'T'), Just(b'E')],
        cols in vec(column(), 0..5),
        row in values(),
    ) {
        let e = backend::error_response_detail(&sev, &code, &msg, detail.as_deref(), hint.as_deref());
        let f = ErrorFields::parse(&e[HEADER_LEN..]).unwrap();
        prop_assert_eq!((f.severity, f.code, f.message), (sev.as_str(), code.as_str(), msg.as_str()));
        prop_assert_eq!((f.detail, f.hint), (detail.as_deref(), hint.as_deref()));
        let s = backend::parameter_status(&code, &msg);
        prop_assert_eq!(ParameterStatus::parse(&s[HEADER_LEN..]).unwrap(), (code.as_str(), msg.as_str()));
        let k = backend::backend_key_data(pid, key);
        prop_assert_eq!(
            BackendKeyData::parse(&k[HEADER_LEN..]).unwrap(),
            BackendKeyData { process_id: pid, secret_key: key }
        );
        let z = backend::ready_for_query(status);
        prop_assert_eq!(backend::ready_status(&z[HEADER_LEN..]).unwrap(), status);

        let t = encode_row_description(&cols);
        let rd = RowDescription::parse(&t[HEADER_LEN..]).unwrap();
        let got: Vec<Column> = rd.fields().map(|f| (
            f.name.to_owned(), f.table_oid, f.column_attnum, f.type_oid, f.type_size, f.type_modifier, f.format,
        )).collect();
        prop_assert_eq!(got, cols);

        let mut d = Vec::new();
        put_values(&mut d, &row);
        let view = DataRow::parse(&d).unwrap();
        let got: Vec<Option<Vec<u8>>> = view.values().map(|v| v.map(<[u8]>::to_vec)).collect();
        prop_assert_eq!(got, row);
    }

    #[test]
    fn command_tags_with_counts_round_trip(
        cmd in proptest::sample::select(&["UPDATE", "DELETE", "SELECT", "MERGE", "FETCH", "MOVE", "COPY"][..]),
        n in any::<u64>(),
    ) {
        let tag = format!("{cmd} {n}");
        let mut body = tag.clone().into_bytes();
        body.push(0);
        prop_assert_eq!(backend::command_tag(&body).unwrap(), tag.as_str());
        prop_assert_eq!(backend::rows_from_tag(&tag), Some(n));
        prop_assert_eq!(backend::rows_from_tag(&format!("INSERT 0 {n}")), Some(n));
    }

    #[test]
    fn startup_messages_round_trip(
        user in "[^\u{0}]{1,12}",
        params in vec(("[^\u{0}]{1,12}", pg_str()), 0..5),
    ) {
        let mut all: Vec<(&str, &str)> = vec![("user", &user)];
        all.extend(params.iter().filter(|(k, _)| k != "user").map(|(k, v)| (k.as_str(), v.as_str())));
        let packet = StartupMessage::encode(&all);
        prop_assume!(packet.len() <= 10_000);
        prop_assert_eq!(startup_len(&packet), Ok(Some(packet.len())));
        let StartupPacket::Startup(m) = parse_startup(&packet).unwrap() else {
            return Err(TestCaseError::fail("not a StartupMessage"));
        };
        let got: Vec<(&str, &str)> = m.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        prop_assert_eq!(got, all);
    }

    #[test]
    fn cancel_requests_round_trip(pid in any::<i32>(), key in any::<i32>()) {
        prop_assert_eq!(
            parse_startup(&frontend::cancel_request(pid, key)),
            Ok(StartupPacket::Cancel { process_id: pid, secret_key: key })
        );
    }

    // ----- SCRAM -----

    #[test]
    fn scram_never_panics_and_random_final_messages_never_authenticate(
        first in vec(any::<u8>(), 0..80),
        fin in vec(any::<u8>(), 0..120),
        nonce in "[!-+\\--~]{1,24}",
        attrs in vec("[a-z]=[!-+\\--~]{0,8}", 0..3),
        proof in any::<[u8; 32]>(),
    ) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let verifier = ScramVerifier::from_password("pw", b"fuzzsalt", 1);
        // Arbitrary client-first.
        let mut s = ScramServer::new(verifier.clone());
        let _ = s.client_first(&first);
        let _ = s.client_final(&fin);
        // A valid client-first, then an arbitrary and a well-formed-but-guessed final.
        let client_first = format!("n,,n=,r={nonce}");
        let mut s = ScramServer::new(verifier.clone());
        let server_first = String::from_utf8(s.client_first(client_first.as_bytes()).unwrap()).unwrap();
        prop_assert!(s.client_final(&fin).is_err());
        let mut s = ScramServer::new(verifier);
        let server_first2 = String::from_utf8(s.client_first(client_first.as_bytes()).unwrap()).unwrap();
        prop_assert_ne!(&server_first, &server_first2, "every exchange gets a fresh nonce");
        let full_nonce = server_first2.split(',').next().unwrap().strip_prefix("r=").unwrap();
        let mut guess = format!("c=biws,r={full_nonce}");
        for a in &attrs {
            guess.push(',');
            guess.push_str(a);
        }
        guess.push_str(&format!(",p={}", b64.encode(proof)));
        prop_assert_eq!(s.client_final(guess.as_bytes()), Err(switchyard_protocol::AuthError::InvalidPassword));
    }
}
