//! Startup packets: `startup_len` and `parse_startup` never panic; a parsed StartupMessage
//! re-encodes to a packet that parses to the same parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_protocol::startup::{parse_startup, startup_len, StartupMessage, StartupPacket};

fuzz_target!(|data: &[u8]| {
    let _ = startup_len(data);
    if let Ok(StartupPacket::Startup(m)) = parse_startup(data) {
        if m.minor == 0 {
            let params: Vec<(&str, &str)> =
                m.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let again = StartupMessage::encode(&params);
            match parse_startup(&again) {
                Ok(StartupPacket::Startup(m2)) => assert_eq!(m2.params, m.params),
                other => panic!("re-encoded startup message did not parse: {other:?}"),
            }
        }
    }
});
