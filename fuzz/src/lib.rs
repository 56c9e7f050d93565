//! Helpers shared by the fuzz targets and the seed generator.
//!
//! The wire values themselves come from tern-core's `arbitrary` feature
//! (`tern_core::wire::arb`): every `Frame`, `Header` and `Packet` it
//! generates is within the protocol's limits.
//!
//! - [`unchecked`]: those frames bent past the limits, for `encode_unclamped`,
//!   and an independent statement of what `validate()` must accept.
//! - [`samples`]: hand-built valid packets, used as seeds for `decode_packet`.
//! - [`normalize`]: the canonical form of a frame list as a decoder returns it.
//! - [`broker`]: the world of the `broker_sessions` target (a broker, its
//!   store, peers playing clients, and the invariants checked after every step).
//! - [`spec_vectors`]: the spec's test vectors, for the raw-datagram seed
//!   corpus and the dictionary.

use tern_core::wire::Frame;

pub mod broker;
pub mod samples;
pub mod spec_vectors;
pub mod unchecked;

/// The frame list a decoder returns for `frames` encoded back to back:
/// adjacent padding runs merge into one (the decoder consumes padding greedily).
pub fn normalize(frames: &[Frame]) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::with_capacity(frames.len());
    for f in frames {
        match (out.last_mut(), f) {
            (Some(Frame::Padding(a)), Frame::Padding(b)) => *a += (*b).max(1),
            (_, Frame::Padding(b)) => out.push(Frame::Padding((*b).max(1))),
            _ => out.push(f.clone()),
        }
    }
    out
}

/// IEEE CRC-32 (reflected, polynomial 0xEDB88320), written here independently
/// of tern-core's `crc32fast` so the packet trailer is checked against a
/// second implementation.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// `body` followed by its CRC-32 trailer: a datagram whose checksum is right.
pub fn with_trailer(body: &[u8]) -> bytes::Bytes {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.extend_from_slice(body);
    v.extend_from_slice(&crc32(body).to_be_bytes());
    v.into()
}

/// Hex dump for crash messages.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
