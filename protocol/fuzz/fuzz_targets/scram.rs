//! The SCRAM server on arbitrary client messages: never panics, and an arbitrary
//! client-final-message never authenticates. The input is split at the first `\n` into
//! client-first and client-final; when client-first is rejected, a valid one is used so
//! that the final step is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use switchyard_protocol::auth::{AuthError, ScramServer, ScramVerifier};

fn verifier() -> &'static ScramVerifier {
    static V: OnceLock<ScramVerifier> = OnceLock::new();
    V.get_or_init(|| ScramVerifier::from_password("fuzz", b"fuzz-salt", 1))
}

fuzz_target!(|data: &[u8]| {
    let (first, fin) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = ScramVerifier::parse(&String::from_utf8_lossy(data));
    let mut server = ScramServer::new(verifier().clone());
    if server.client_first(first).is_err() {
        server = ScramServer::new(verifier().clone());
        server.client_first(b"n,,n=,r=fuzz").expect("valid client-first");
    }
    let outcome = server.client_final(fin);
    assert!(outcome.is_err(), "a fuzzed proof authenticated");
    assert!(!matches!(outcome, Err(AuthError::OutOfOrder(_))));
    let _ = ScramServer::new_mock(&String::from_utf8_lossy(first)).client_first(first);
});
