//! Raw framing of the PostgreSQL v3 message stream after startup.
//!
//! Every regular message is a 1-byte tag followed by a big-endian `i32` length that counts
//! itself but not the tag. switchyard never decodes a message in order to forward it: it
//! finds frame boundaries here, inspects the few tags it acts on, and forwards the original
//! bytes. The length is validated before anything is buffered, so a hostile peer cannot make
//! us allocate more than `max` bytes for one message, and nothing here ever reads past the
//! declared end of a frame.

use bytes::{Bytes, BytesMut};

/// Bytes in a regular message header: tag + length.
pub const HEADER_LEN: usize = 5;

/// Why a frame header was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared length is smaller than the length field itself.
    #[error("invalid message length {len} for message type {tag:?} (must be at least 4)")]
    TooShort { tag: char, len: i64 },
    /// The declared length exceeds the configured cap.
    #[error("message of type {tag:?} is {len} bytes, over the limit of {max} bytes")]
    TooLong { tag: char, len: i64, max: usize },
}

/// One complete message: its tag and its whole encoding (header included), ready to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub bytes: Bytes,
}

impl Frame {
    /// The message body: everything after the 5-byte header.
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }
}

/// Looks at the start of `buf` and returns the total length (header included) of the frame
/// that starts there, `Ok(None)` when fewer than 5 bytes are buffered, or an error when the
/// declared length is impossible. It does not say whether the whole frame is buffered yet.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::TooShort {
            tag: tag as char,
            len: i64::from(len),
        });
    }
    // `len` is positive here, so the conversion is exact.
    let len = len as usize;
    if len > max {
        return Err(FrameError::TooLong {
            tag: tag as char,
            len: len as i64,
            max,
        });
    }
    Ok(Some(len + 1))
}

/// Splits the next complete frame off the front of `buf`, or returns `Ok(None)` when it is not
/// all there yet (the caller reads more and calls again).
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    match frame_len(buf, max)? {
        Some(total) if buf.len() >= total => {
            let tag = buf[0];
            let bytes = buf.split_to(total).freeze();
            Ok(Some(Frame { tag, bytes }))
        }
        _ => Ok(None),
    }
}

/// Iterates over the complete frames at the front of a buffer without copying or consuming
/// them, yielding `(tag, frame)` slices. Stops at the first incomplete frame; the number of
/// bytes covered by whole frames is [`FrameScan::consumed`] afterwards.
pub struct FrameScan<'a> {
    buf: &'a [u8],
    pos: usize,
    max: usize,
    error: Option<FrameError>,
}

impl<'a> FrameScan<'a> {
    pub fn new(buf: &'a [u8], max: usize) -> Self {
        Self {
            buf,
            pos: 0,
            max,
            error: None,
        }
    }

    /// Bytes at the front of the buffer that belong to whole frames yielded so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The header error that stopped the scan, if any.
    pub fn error(&self) -> Option<&FrameError> {
        self.error.as_ref()
    }
}

impl<'a> Iterator for FrameScan<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.error.is_some() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        match frame_len(rest, self.max) {
            Ok(Some(total)) if rest.len() >= total => {
                self.pos += total;
                Some((rest[0], &rest[..total]))
            }
            Ok(_) => None,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// Writes a frame header for a message whose body is `body_len` bytes long.
pub fn put_header(out: &mut BytesMut, tag: u8, body_len: usize) {
    use bytes::BufMut;
    out.put_u8(tag);
    out.put_i32((body_len + 4) as i32);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn splits_complete_frames_and_waits_for_partial_ones() {
        let mut all = msg(b'Q', b"select 1\0");
        all.extend(msg(b'S', b""));
        let mut buf = BytesMut::from(&all[..all.len() - 2]);
        let first = split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(first.tag, b'Q');
        assert_eq!(first.body(), b"select 1\0");
        assert_eq!(split_frame(&mut buf, 1024).unwrap(), None, "partial header");
        buf.extend_from_slice(&all[all.len() - 2..]);
        let second = split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!((second.tag, second.body()), (b'S', &b""[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_lengths_below_four_and_above_the_cap() {
        assert_eq!(
            frame_len(&[b'Q', 0, 0, 0, 3], 100),
            Err(FrameError::TooShort { tag: 'Q', len: 3 })
        );
        assert_eq!(
            frame_len(&[b'Q', 0xff, 0xff, 0xff, 0xff], 100),
            Err(FrameError::TooShort { tag: 'Q', len: -1 })
        );
        assert_eq!(
            frame_len(&[b'd', 0, 0, 1, 0], 100),
            Err(FrameError::TooLong {
                tag: 'd',
                len: 256,
                max: 100
            })
        );
    }

    #[test]
    fn scan_stops_at_the_first_incomplete_frame() {
        let mut all = msg(b'P', b"\0select 1\0\0\0");
        all.extend(msg(b'B', b"\0\0\0\0\0\0\0\0"));
        all.extend(&msg(b'E', b"\0\0\0\0\0")[..3]);
        let mut scan = FrameScan::new(&all, 1 << 20);
        let tags: Vec<u8> = scan.by_ref().map(|(t, _)| t).collect();
        assert_eq!(tags, b"PB");
        assert_eq!(scan.consumed(), all.len() - 3);
        assert!(scan.error().is_none());
    }
}
