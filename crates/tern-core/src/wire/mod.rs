//! Wire protocol v1: a pure codec. No I/O, no async, no clocks.
//!
//! A datagram is a [`Header`] followed by [`Frame`]s. The normative description
//! is `proto-spec/`; this module is checked against its test vectors.

#[cfg(feature = "arbitrary")]
pub mod arb;
mod codes;
mod conversation;
mod conversation_codec;
mod error;
mod frame;
mod frame_codec;
mod header;
pub mod limits;
mod packet;
mod reader;
pub mod varint;

pub use codes::{ty, ErrorCode, KickReason};
pub use conversation::*;
pub use error::{DecodeError, EncodeError};
pub use frame::*;
pub use frame_codec::encode_to_bytes;
pub use header::{Header, FLAG_SEALED, VERSION, VERSION_NEGOTIATION};
pub use packet::{Packet, PacketBuilder, TRAILER};
pub use reader::Reader;
