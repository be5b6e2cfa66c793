//! Applying one journal entry on an upstream connection: send its frames, read the answers
//! up to ReadyForQuery.
//!
//! The frames are written while the answers are read (not one after the other), so a unit
//! whose results are large cannot deadlock against its own input. PostgreSQL buffers what
//! follows a COPY's Query until it asks for it with CopyInResponse, so a unit's CopyData and
//! CopyDone go out right behind its Query. A COPY FROM STDIN whose data end is missing from
//! the entry is answered with CopyFail, never left waiting.

use bytes::{Bytes, BytesMut};
use switchyard_config::Upstream;
use switchyard_protocol::backend::{self, tag, ErrorFields};
use switchyard_protocol::frame::split_frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stream::{ReadHalf, WriteHalf};
use crate::upstream::{self, Login, UpstreamError};

/// Largest backend message accepted while replaying (rows of a unit's results are read and
/// dropped, but must fit).
const MAX_MESSAGE: usize = 1 << 30;
const SYNC: &[u8] = &[b'S', 0, 0, 0, 4];
const TERMINATE: &[u8] = &[b'X', 0, 0, 0, 4];

/// An ErrorResponse, owned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerError {
    pub severity: String,
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// What the upstream answered to one entry.
#[derive(Debug, Clone)]
pub struct Answer {
    /// CommandComplete tags, in order.
    pub tags: Vec<String>,
    /// The first ErrorResponse, if any.
    pub error: Option<ServerError>,
    /// The transaction status of the last ReadyForQuery: `I`, `T` or `E`.
    pub status: u8,
}

/// Why an entry's outcome is unknown: the connection failed under it.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    // No `#[from]`: another `From<io::Error>` in the crate would make `?` ambiguous in
    // closures elsewhere that rely on inference.
    #[error("connection lost: {0}")]
    Io(std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// One replay connection: a session's, on its target upstream.
pub struct ReplayConn {
    read: ReadHalf,
    write: WriteHalf,
    buf: BytesMut,
}

impl ReplayConn {
    /// Opens and authenticates a connection to `up` as `login`.
    pub async fn open(up: &Upstream, login: &Login<'_>) -> Result<ReplayConn, UpstreamError> {
        let conn = upstream::connect(up, login).await?;
        let (read, write) = conn.stream.split();
        Ok(ReplayConn {
            read,
            write,
            buf: conn.leftover,
        })
    }

    /// Sends `frames` and reads the answers up to the last ReadyForQuery they produce.
    pub async fn apply(&mut self, frames: &[Bytes]) -> Result<Answer, ApplyError> {
        let mut out = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum::<usize>() + 5);
        for frame in frames {
            out.extend_from_slice(frame);
        }
        // Sync, Query and FunctionCall each end with a ReadyForQuery.
        let ends_batch = |f: &Bytes| matches!(f[0], b'S' | b'Q' | b'F');
        let mut expected = frames.iter().filter(|f| ends_batch(f)).count();
        // An extended-protocol tail without its Sync would leave the server waiting.
        let last_sync = frames.iter().rposition(ends_batch);
        let unsynced = frames[last_sync.map_or(0, |i| i + 1)..]
            .iter()
            .any(|f| matches!(f[0], b'P' | b'B' | b'E' | b'D' | b'C' | b'H'));
        if unsynced || expected == 0 {
            out.extend_from_slice(SYNC);
            expected += 1;
        }
        let has_copy_end = frames.iter().any(|f| f[0] == b'c' || f[0] == b'f');

        let mut answer = Answer {
            tags: Vec::new(),
            error: None,
            status: backend::STATUS_IDLE,
        };
        let mut written = 0;
        let mut flushed = false;
        while expected > 0 {
            // Answers already buffered first.
            while let Some(frame) = split_frame(&mut self.buf, MAX_MESSAGE)
                .map_err(|e| ApplyError::Protocol(e.to_string()))?
            {
                match frame.tag {
                    tag::ERROR_RESPONSE => {
                        let fields = ErrorFields::parse(frame.body())
                            .map_err(|e| ApplyError::Protocol(e.to_string()))?;
                        answer.error.get_or_insert_with(|| ServerError {
                            severity: fields.severity.to_owned(),
                            sqlstate: fields.code.to_owned(),
                            message: fields.message.to_owned(),
                            detail: fields.detail.map(str::to_owned),
                            hint: fields.hint.map(str::to_owned),
                        });
                    }
                    tag::COMMAND_COMPLETE => {
                        let t = backend::command_tag(frame.body())
                            .map_err(|e| ApplyError::Protocol(e.to_string()))?;
                        answer.tags.push(t.to_owned());
                    }
                    tag::READY_FOR_QUERY => {
                        answer.status = backend::ready_status(frame.body())
                            .map_err(|e| ApplyError::Protocol(e.to_string()))?;
                        expected -= 1;
                        if expected == 0 {
                            break;
                        }
                    }
                    tag::COPY_IN_RESPONSE if !has_copy_end => {
                        out.extend_from_slice(&copy_fail(
                            "switchyard journal replay: the journal entry has no COPY data end",
                        ));
                        flushed = false;
                    }
                    tag::COPY_BOTH_RESPONSE => {
                        return Err(ApplyError::Protocol(
                            "the server started a CopyBoth exchange (replication), which replay cannot do"
                                .into(),
                        ))
                    }
                    // Rows, descriptions, notices, notifications, parameter changes,
                    // COPY TO data: nothing to act on.
                    _ => {}
                }
            }
            if expected == 0 {
                break;
            }
            let pending_out = &out[written..];
            let send = async {
                if pending_out.is_empty() {
                    self.write.flush().await.map(|()| 0)
                } else {
                    self.write.write(pending_out).await
                }
            };
            tokio::select! {
                n = send, if written < out.len() || !flushed => {
                    let n = n.map_err(ApplyError::Io)?;
                    if written < out.len() {
                        if n == 0 {
                            return Err(ApplyError::Io(std::io::ErrorKind::WriteZero.into()));
                        }
                        written += n;
                    } else {
                        flushed = true;
                    }
                }
                n = self.read.read_buf(&mut self.buf) => {
                    if n.map_err(ApplyError::Io)? == 0 {
                        return Err(ApplyError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
        Ok(answer)
    }

    /// Ends the session politely (an open transaction is rolled back by the server).
    pub async fn close(mut self) {
        let _ = self.write.write_all(TERMINATE).await;
        let _ = self.write.shutdown().await;
    }
}

fn copy_fail(message: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.extend_from_slice(b"f");
    out.extend_from_slice(&((message.len() + 5) as i32).to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&[0]);
    out.freeze()
}
