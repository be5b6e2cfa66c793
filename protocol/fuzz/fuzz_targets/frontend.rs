//! Every frontend view on an arbitrary body (the first input byte picks the tag for the
//! dispatcher): never panics, and a view that parses iterates exactly as many items as it
//! announces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_protocol::frontend::{
    Bind, Close, CopyFail, Describe, Execute, FrontendMessage, FunctionCall, Parse,
    PasswordMessage, Query, SaslInitialResponse, SaslResponse,
};

fuzz_target!(|data: &[u8]| {
    let Some((&tag, body)) = data.split_first() else {
        return;
    };
    let _ = FrontendMessage::parse(tag, body);
    let _ = Query::parse(body);
    if let Ok(p) = Parse::parse(body) {
        assert_eq!(p.param_types().count(), p.param_types().len());
    }
    if let Ok(b) = Bind::parse(body) {
        assert_eq!(b.params().count(), b.param_count());
        assert_eq!(b.param_formats().count(), b.param_formats().len());
        assert_eq!(b.result_formats().count(), b.result_formats().len());
        for i in 0..=b.param_count() {
            let _ = b.param_format(i);
        }
    }
    let _ = Execute::parse(body);
    let _ = Describe::parse(body);
    let _ = Close::parse(body);
    if let Ok(f) = FunctionCall::parse(body) {
        assert_eq!(f.args().count(), f.arg_count());
        assert_eq!(f.arg_formats().count(), f.arg_formats().len());
    }
    let _ = CopyFail::parse(body);
    let _ = PasswordMessage::parse(body);
    let _ = SaslInitialResponse::parse(body);
    let _ = SaslResponse::parse(body);
});
