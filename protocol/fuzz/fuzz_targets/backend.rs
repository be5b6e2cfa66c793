//! Every backend view on an arbitrary body (the first input byte picks the tag for the
//! dispatcher): never panics, and a view that parses iterates exactly as many items as it
//! announces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_protocol::backend::{
    authentication_code, command_tag, ready_status, rows_from_tag, Authentication,
    BackendKeyData, BackendMessage, DataRow, ErrorFields, ParameterStatus, RowDescription,
};

fuzz_target!(|data: &[u8]| {
    let Some((&tag, body)) = data.split_first() else {
        return;
    };
    let _ = BackendMessage::parse(tag, body);
    let _ = ErrorFields::parse(body);
    if let Ok(tag) = command_tag(body) {
        let _ = rows_from_tag(tag);
    }
    let _ = rows_from_tag(&String::from_utf8_lossy(body));
    let _ = ready_status(body);
    let _ = BackendKeyData::parse(body);
    let _ = ParameterStatus::parse(body);
    let _ = authentication_code(body);
    if let Ok(Authentication::Sasl(m)) = Authentication::parse(body) {
        let _ = m.iter().count();
    }
    if let Ok(rd) = RowDescription::parse(body) {
        assert_eq!(rd.fields().count(), rd.len());
    }
    if let Ok(row) = DataRow::parse(body) {
        assert_eq!(row.values().count(), row.len());
    }
});
