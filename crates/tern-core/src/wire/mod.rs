//! Wire protocol, versions 1 and 2: a pure codec. No I/O, no async, no clocks.
//!
//! A datagram is a [`Header`] followed by [`Frame`]s. The normative description
//! is `proto-spec/`; this module is checked against its test vectors.

#[cfg(feature = "arbitrary")]
pub mod arb;
mod codes;
mod conv_ops_codec;
mod conv_pages_codec;
mod conversation;
mod error;
mod fields;
mod frame;
mod frame_codec;
mod frame_decode;
mod group;
mod group_codec;
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
pub use group::*;
pub use header::{
    is_supported_version, Header, FLAG_SEALED, VERSION, VERSION_2, VERSION_NEGOTIATION,
};
pub use packet::{decode_frames, Packet, PacketBuilder, TRAILER};
pub use reader::Reader;
