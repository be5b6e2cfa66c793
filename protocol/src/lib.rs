//! PostgreSQL v3 wire format for switchyard.
//!
//! Pure bytes-and-messages code, no I/O and no policy (the shape of `postgres-protocol`
//! under `tokio-postgres`): raw framing ([`frame`]), the startup-phase packets
//! ([`startup`]). Every parser returns a `Result` and never reads past a message's
//! declared length.

pub mod frame;
pub mod startup;

pub use frame::{Frame, FrameError, FrameScan, HEADER_LEN};
pub use startup::{StartupError, StartupMessage, StartupPacket};
