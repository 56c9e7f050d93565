//! The fixed packet header.
//!
//! ```text
//!  0        1        2                                  10
//! +--------+--------+----------------------------------+----------------+
//! |version | flags  | session id (u64, big-endian)      | packet number  |
//! | (1, 2) | (=0)   | 0 before login                    | (varint, >= 1) |
//! +--------+--------+----------------------------------+----------------+
//! ```
//! Frames follow the header until the datagram ends.

use bytes::BufMut;

use super::error::DecodeError;
use super::reader::Reader;
use super::varint;

/// Protocol version 1 (`proto-spec/`): the inbox, v1 frames.
pub const VERSION: u8 = 1;
/// Protocol version 2 (`proto-spec/conversations.md`): version 1 plus
/// conversations, history and the conversation list.
pub const VERSION_2: u8 = 2;

/// Whether this implementation speaks protocol version `v`.
pub fn is_supported_version(v: u8) -> bool {
    v == VERSION || v == VERSION_2
}
/// Version value used by version-negotiation packets.
pub const VERSION_NEGOTIATION: u8 = 0;
/// Flags value of a sealed packet (encrypted frames, AEAD tag instead of
/// the CRC trailer; see `proto-spec/sealed.md`). Clear packets have flags 0.
pub const FLAG_SEALED: u8 = 0x01;

/// The header at the front of every datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Header {
    /// Session chosen by the server at login; 0 on packets sent before it.
    /// The server finds a session by this id, not by address, so a client keeps
    /// its session when its address changes.
    pub session_id: u64,
    /// Per-direction packet counter, never reused: a server numbers each
    /// session from 1, a client numbers for its whole life (across sessions).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::arb::seq))]
    pub packet_number: u64,
    /// Protocol version of the packet: [`VERSION`] or [`VERSION_2`]; a
    /// session keeps the version of the LOGIN that opened it.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::arb::version))]
    pub version: u8,
}

impl Header {
    /// Encoded size.
    pub fn len(&self) -> usize {
        10 + varint::len(self.packet_number)
    }

    /// Always false: a header has a fixed minimum size.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the header.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.version);
        out.put_u8(0);
        out.put_u64(self.session_id);
        varint::put(out, self.packet_number);
    }

    /// Reads the header of a clear packet from the front of a datagram.
    pub fn decode(r: &mut Reader) -> Result<Header, DecodeError> {
        Self::decode_flags(r, 0)
    }

    /// Reads the header of a sealed packet (flags [`FLAG_SEALED`]).
    pub fn decode_sealed(r: &mut Reader) -> Result<Header, DecodeError> {
        Self::decode_flags(r, FLAG_SEALED)
    }

    /// The flags byte and session id of a datagram, if it is long enough to
    /// have them (read without decoding anything else).
    pub fn peek(datagram: &[u8]) -> Option<(u8, u64)> {
        let flags = *datagram.get(1)?;
        let sid = u64::from_be_bytes(datagram.get(2..10)?.try_into().ok()?);
        Some((flags, sid))
    }

    fn decode_flags(r: &mut Reader, want: u8) -> Result<Header, DecodeError> {
        let version = r.u8()?;
        if !is_supported_version(version) {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        if r.u8()? != want {
            return Err(DecodeError::InvalidValue { field: "flags" });
        }
        let session_id = r.u64()?;
        let packet_number = r.nonzero("packet_number")?;
        Ok(Header {
            session_id,
            packet_number,
            version,
        })
    }
}
