//! The byte streams a session talks over: plain TCP or TLS (either side), and their
//! read/write halves. An enum rather than a boxed trait object keeps the relay's hot path
//! free of dynamic dispatch, and plain TCP splits without a lock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

type ServerTls = tokio_rustls::server::TlsStream<TcpStream>;
type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;

/// A connection, before it is split into halves.
pub enum Stream {
    Plain(TcpStream),
    /// A client connection on which switchyard is the TLS server.
    ServerTls(Box<ServerTls>),
    /// An upstream connection on which switchyard is the TLS client.
    ClientTls(Box<ClientTls>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// Splits the stream so that reading and writing can proceed independently.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::ServerTls(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::ServerTls(r), WriteHalf::ServerTls(w))
            }
            Stream::ClientTls(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::ClientTls(r), WriteHalf::ClientTls(w))
            }
        }
    }
}

/// Sends a last message (an ErrorResponse, or nothing when `reply` is empty), then closes
/// the writing side. Errors are ignored: the peer may already be gone.
pub async fn close_with<W: AsyncWrite + Unpin>(w: &mut W, reply: &[u8]) {
    use tokio::io::AsyncWriteExt;
    if !reply.is_empty() {
        let _ = w.write_all(reply).await;
        let _ = w.flush().await;
    }
    let _ = w.shutdown().await;
}

/// Puts the two halves of one stream back together (`None` if they are not from the same
/// kind of stream, which callers never do).
pub fn unsplit(read: ReadHalf, write: WriteHalf) -> Option<Stream> {
    match (read, write) {
        (ReadHalf::Plain(r), WriteHalf::Plain(w)) => r.reunite(w).ok().map(Stream::Plain),
        (ReadHalf::ServerTls(r), WriteHalf::ServerTls(w)) => {
            Some(Stream::ServerTls(Box::new(r.unsplit(w))))
        }
        (ReadHalf::ClientTls(r), WriteHalf::ClientTls(w)) => {
            Some(Stream::ClientTls(Box::new(r.unsplit(w))))
        }
        _ => None,
    }
}

/// The reading half of a [`Stream`].
pub enum ReadHalf {
    Plain(OwnedReadHalf),
    ServerTls(tokio::io::ReadHalf<ServerTls>),
    ClientTls(tokio::io::ReadHalf<ClientTls>),
}

/// The writing half of a [`Stream`].
pub enum WriteHalf {
    Plain(OwnedWriteHalf),
    ServerTls(tokio::io::WriteHalf<ServerTls>),
    ClientTls(tokio::io::WriteHalf<ClientTls>),
}

macro_rules! delegate_read {
    ($ty:ty, $($variant:ident),+) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($ty:ty, $($variant:ident),+) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}

delegate_read!(Stream, Plain, ServerTls, ClientTls);
delegate_write!(Stream, Plain, ServerTls, ClientTls);
delegate_read!(ReadHalf, Plain, ServerTls, ClientTls);
delegate_write!(WriteHalf, Plain, ServerTls, ClientTls);
