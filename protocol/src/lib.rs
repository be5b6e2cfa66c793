//! PostgreSQL v3 wire format for switchyard.
//!
//! Pure bytes-and-messages code, no I/O and no policy (the shape of `postgres-protocol`
//! under `tokio-postgres`); the proxy crate owns sockets, tasks and decisions.
//!
//! - [`frame`]: raw framing of the message stream (tag + length), for forwarding frames
//!   untouched.
//! - [`startup`]: the untagged startup-phase packets (SSLRequest, GSSENCRequest,
//!   CancelRequest, StartupMessage).
//! - [`frontend`]: typed views of the client messages switchyard inspects, and builders for
//!   what it sends upstream as a client.
//! - [`backend`]: builders for the messages switchyard sends its clients as a server, and
//!   typed views of the upstream messages it inspects.
//! - [`auth`]: server-side SCRAM-SHA-256 and md5.
//! - [`parse`]: the strict cursor behind every view, and [`ParseError`].
//!
//! Every parser returns a `Result` and never reads past a message's declared length: a view
//! is handed exactly one frame body and checks every read against it, so hostile bytes
//! produce an error, never a panic (`tests/fuzz.rs` holds the property-based fuzzing,
//! `fuzz/` the libFuzzer targets for longer runs).

pub mod auth;
pub mod backend;
pub mod frame;
pub mod frontend;
pub mod parse;
pub mod startup;

pub use auth::AuthError;
pub use frame::{Frame, FrameError, FrameScan, HEADER_LEN};
pub use parse::{ParseError, Problem};
pub use startup::{StartupError, StartupMessage, StartupPacket};
