//! Typed decode errors. "Incomplete" (more bytes would help) is kept apart from
//! "malformed" (no number of extra bytes can make this valid).

use thiserror::Error;

/// Why a packet or frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ends before the item does; `needed` more bytes at least.
    #[error("incomplete: at least {needed} more byte(s) needed")]
    Incomplete {
        /// Minimum number of further bytes required.
        needed: usize,
    },
    /// The CRC-32 trailer does not match: the datagram was damaged in transit.
    #[error("checksum mismatch: datagram damaged in transit")]
    Checksum,
    /// The packet's version byte names a version this implementation does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// A frame type outside the skippable extension range that we do not know.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrame(u8),
    /// A length field is above the protocol's bound for that field.
    #[error("{field}: length {len} exceeds the limit of {max}")]
    TooLong {
        /// The field whose length was read.
        field: &'static str,
        /// The length the peer claimed.
        len: u64,
        /// The largest length the protocol allows.
        max: usize,
    },
    /// A field holds a value the protocol forbids (zero sequence, reserved bits…).
    #[error("invalid value in {field}")]
    InvalidValue {
        /// The offending field.
        field: &'static str,
    },
    /// The packet is sealed (flags `FLAG_SEALED`): only the session's keys
    /// can open it (`crate::seal::Channel::open`).
    #[error("sealed packet: it needs the session keys")]
    Sealed,
    /// A text field is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The offending field.
        field: &'static str,
    },
}

impl DecodeError {
    /// True when the input was cut short rather than wrong. On a datagram
    /// transport this still means the packet is unusable (it was truncated).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, DecodeError::Incomplete { .. })
    }
}

/// Why a frame could not be encoded into the space offered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The frame does not fit into the bytes that remain in the datagram.
    #[error("frame of {needed} bytes does not fit in the {remaining} bytes left")]
    NoRoom {
        /// Encoded size of the frame.
        needed: usize,
        /// Bytes left in the packet.
        remaining: usize,
    },
    /// ACK ranges are not ascending, disjoint and separated by gaps.
    #[error("ack ranges are not ascending with gaps between them")]
    BadAckRanges,
    /// A field is longer than the protocol allows for it.
    #[error("{field}: length {len} exceeds the limit of {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The protocol bound.
        max: usize,
    },
    /// The frame does not exist in the packet's protocol version.
    #[error("frame needs protocol version {needed}, the packet is version {version}")]
    WrongVersion {
        /// Version that defines the frame.
        needed: u8,
        /// Version of the packet.
        version: u8,
    },
}
