//! Clear datagrams built by hand for the codec tests, and what the decoder
//! must answer for a damaged one.

#![allow(dead_code)]

use bytes::Bytes;
use tern_core::wire::{DecodeError, Header, FLAG_SEALED};

/// Appends the CRC-32 trailer to `body`.
pub fn with_trailer(body: &[u8]) -> Bytes {
    let mut out = body.to_vec();
    out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    Bytes::from(out)
}

/// A clear datagram: `header`, then `body` as frame bytes, then a correct trailer.
pub fn datagram(header: Header, body: &[u8]) -> Bytes {
    let mut out = Vec::new();
    header.encode(&mut out);
    out.extend_from_slice(body);
    with_trailer(&out)
}

/// What `Packet::decode` answers for a datagram of at least 4 bytes whose
/// trailer does not match, by the order of packet.md "Decoding": version,
/// then the sealed flag, then the trailer.
pub fn damage_verdict(datagram: &[u8]) -> DecodeError {
    if !tern_core::wire::is_supported_version(datagram[0]) {
        DecodeError::UnsupportedVersion(datagram[0])
    } else if datagram[1] == FLAG_SEALED {
        DecodeError::Sealed
    } else {
        DecodeError::Checksum
    }
}

pub const H: Header = Header {
    session_id: 0x3f8e_2c91_d4a7_b615,
    packet_number: 1,
    version: tern_core::wire::VERSION,
};
