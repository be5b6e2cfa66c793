//! Framing: `frame_len`, `split_frame` and `FrameScan` agree with each other on any buffer,
//! never panic, and never yield a frame that is not exactly what its header declares.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard_protocol::frame::{frame_len, split_frame, FrameScan};

fuzz_target!(|data: &[u8]| {
    for max in [4, 1 << 10, 1 << 20] {
        let _ = frame_len(data, max);
        let mut scan = FrameScan::new(data, max);
        let mut covered = 0;
        for (tag, frame) in scan.by_ref() {
            assert_eq!(frame.first(), Some(&tag));
            assert_eq!(frame_len(frame, max), Ok(Some(frame.len())));
            covered += frame.len();
        }
        assert_eq!(scan.consumed(), covered);
        let mut buf = BytesMut::from(data);
        let mut split = 0;
        while let Ok(Some(f)) = split_frame(&mut buf, max) {
            split += f.bytes.len();
        }
        assert_eq!(split, covered);
    }
});
