//! The two directions of a session's byte stream, pumped concurrently: client → primary and
//! primary → client. Frames are never decoded to be forwarded: each read is scanned for
//! frame boundaries and the few tags the session tracks, and the complete frames are written
//! on as one slice of the original bytes. Neither direction waits for the other, so a server
//! message (an error in the middle of a long COPY, a NOTIFY) reaches the client while the
//! client is still sending, exactly as with a direct connection.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

use bytes::{Buf, BytesMut};
use switchyard_protocol::frame::{frame_len, FrameError, FrameScan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stream::{ReadHalf, WriteHalf};
use crate::track::Tracker;

/// Bytes asked for per read when no partial frame says how much more is coming.
const READ_CHUNK: usize = 8 * 1024;

/// What the two directions tell each other about the session, without locks.
#[derive(Debug)]
pub struct Flow {
    /// Requests (Query, Sync, FunctionCall) sent whose ReadyForQuery has not come back.
    pub in_flight: AtomicU32,
    /// Transaction status of the last ReadyForQuery: b'I', b'T' or b'E'.
    pub tx_status: AtomicU8,
    /// The primary sent a FATAL/PANIC error (so it reported its own disconnection).
    pub server_sent_fatal: AtomicBool,
    /// A pump holds bytes it has read and not yet written on: the session must not be
    /// rearranged under it.
    pub client_busy: AtomicBool,
    pub server_busy: AtomicBool,
    /// Woken whenever the session may have reached a transaction boundary.
    pub idle: tokio::sync::Notify,
    /// Times busy periods as `other` for a session without a tracker (which times units).
    pub untracked: Option<crate::latency::SessionTimer>,
}

impl Flow {
    /// Nothing in flight, outside any transaction, and neither pump in the middle of a
    /// write: the primary can be swapped without the client noticing.
    pub fn at_boundary(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.tx_status.load(Ordering::Relaxed) == b'I'
            && !self.client_busy.load(Ordering::Relaxed)
            && !self.server_busy.load(Ordering::Relaxed)
    }
}

impl Default for Flow {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            tx_status: AtomicU8::new(b'I'),
            server_sent_fatal: AtomicBool::new(false),
            client_busy: AtomicBool::new(false),
            server_busy: AtomicBool::new(false),
            idle: tokio::sync::Notify::new(),
            untracked: None,
        }
    }
}

/// How the client → primary direction ended.
#[derive(Debug)]
pub enum ClientEnd {
    /// The client sent Terminate (forwarded to the primary).
    Terminate,
    /// The client closed its connection without Terminate.
    Eof,
    /// The client closed its connection in the middle of a message.
    Truncated,
    Read(std::io::Error),
    /// The client sent a frame header that cannot be valid.
    Malformed(FrameError),
    /// Writing to the primary failed.
    ServerWrite(std::io::Error),
}

/// How the primary → client direction ended.
#[derive(Debug)]
pub enum ServerEnd {
    Eof,
    Read(std::io::Error),
    Malformed(FrameError),
    ClientWrite(std::io::Error),
}

/// Makes room for the next read: all of a partially received frame when its length is
/// known (so a large message arrives in as few reads as possible), at least `READ_CHUNK`.
fn reserve(buf: &mut BytesMut, max: usize) {
    let need = match frame_len(buf, max) {
        Ok(Some(total)) if total > buf.len() => total - buf.len(),
        _ => 0,
    };
    buf.reserve(need.max(READ_CHUNK));
}

/// Pumps client frames to the primary until the client leaves or misbehaves.
pub async fn client_to_server(
    client: &mut ReadHalf,
    buf: &mut BytesMut,
    server: &mut WriteHalf,
    max: usize,
    flow: &Flow,
    tracker: Option<&Tracker>,
) -> ClientEnd {
    loop {
        // Whatever is left in `buf` is an incomplete frame: read the rest.
        {
            reserve(buf, max);
            match client.read_buf(buf).await {
                Ok(0) if buf.is_empty() => return ClientEnd::Eof,
                Ok(0) => return ClientEnd::Truncated,
                Ok(_) => {}
                Err(e) => return ClientEnd::Read(e),
            }
        }
        let mut scan = FrameScan::new(buf, max);
        let mut requests = 0;
        let mut terminate = false;
        for (tag, _) in scan.by_ref() {
            match tag {
                b'Q' | b'S' | b'F' => requests += 1,
                b'X' => {
                    terminate = true;
                    break;
                }
                _ => {}
            }
        }
        let consumed = scan.consumed();
        let error = scan.error().cloned();
        if requests > 0 && flow.in_flight.fetch_add(requests, Ordering::Relaxed) == 0 {
            if let Some(timer) = &flow.untracked {
                timer.busy();
            }
        }
        if consumed > 0 {
            // Only a session with a mirror can move, so only it keeps boundary bookkeeping.
            if let Some(tracker) = tracker {
                flow.client_busy.store(true, Ordering::Relaxed);
                // The tracker keeps the frames it mirrors: it needs them as shared `Bytes`.
                let chunk = buf.split_to(consumed).freeze();
                // Registered before the primary can answer, so answers find their unit.
                tracker.on_client_chunk(&chunk, max);
                if let Err(e) = write(server, &chunk).await {
                    return ClientEnd::ServerWrite(e);
                }
                flow.client_busy.store(false, Ordering::Relaxed);
                flow.idle.notify_waiters();
            } else {
                // Passthrough: written straight from the read buffer, then dropped from it
                // (no split, no shared-buffer promotion and reference counting per chunk).
                if let Err(e) = write(server, &buf[..consumed]).await {
                    return ClientEnd::ServerWrite(e);
                }
                buf.advance(consumed);
            }
        }
        if terminate {
            return ClientEnd::Terminate;
        }
        if let Some(e) = error {
            return ClientEnd::Malformed(e);
        }
    }
}

/// Pumps primary frames to the client until either side goes away.
pub async fn server_to_client(
    server: &mut ReadHalf,
    buf: &mut BytesMut,
    client: &mut WriteHalf,
    max: usize,
    flow: &Flow,
    tracker: Option<&Tracker>,
) -> ServerEnd {
    loop {
        // Whatever is left in `buf` is an incomplete frame: read the rest.
        {
            reserve(buf, max);
            match server.read_buf(buf).await {
                Ok(0) => return ServerEnd::Eof,
                Ok(_) => {}
                Err(e) => return ServerEnd::Read(e),
            }
        }
        let mut scan = FrameScan::new(buf, max);
        for (tag, frame) in scan.by_ref() {
            if let Some(tracker) = tracker {
                tracker.on_server_frame(tag, frame);
            }
            match tag {
                b'Z' => {
                    let was =
                        flow.in_flight
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            });
                    if was == Ok(1) {
                        if let Some(timer) = &flow.untracked {
                            timer.idle();
                        }
                    }
                    if let Some(&status) = frame.get(5) {
                        flow.tx_status.store(status, Ordering::Relaxed);
                    }
                }
                b'E' => {
                    let body = &frame[5..];
                    if body.starts_with(b"SFATAL\0") || body.starts_with(b"SPANIC\0") {
                        flow.server_sent_fatal.store(true, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
        let consumed = scan.consumed();
        let error = scan.error().cloned();
        if consumed > 0 {
            let movable = tracker.is_some();
            if movable {
                flow.server_busy.store(true, Ordering::Relaxed);
            }
            // Written straight from the read buffer, then dropped from it. A move waits for
            // `server_busy` to clear, so nothing observes the buffer in between.
            if let Err(e) = write(client, &buf[..consumed]).await {
                return ServerEnd::ClientWrite(e);
            }
            buf.advance(consumed);
            if movable {
                flow.server_busy.store(false, Ordering::Relaxed);
                flow.idle.notify_waiters();
            }
        }
        if let Some(e) = error {
            return ServerEnd::Malformed(e);
        }
    }
}

async fn write(w: &mut WriteHalf, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}
