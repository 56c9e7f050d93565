//! Variable-length integers, QUIC style (RFC 9000 §16).
//!
//! The two most significant bits of the first byte give the length:
//! `00` → 1 byte (6-bit value), `01` → 2 bytes (14-bit), `10` → 4 bytes (30-bit),
//! `11` → 8 bytes (62-bit). The rest is the value, big-endian.

use bytes::BufMut;

/// Largest value a varint can carry (2^62 - 1).
pub const MAX: u64 = (1 << 62) - 1;

/// Number of bytes `v` takes when encoded.
pub fn len(v: u64) -> usize {
    if v < 1 << 6 {
        1
    } else if v < 1 << 14 {
        2
    } else if v < 1 << 30 {
        4
    } else {
        8
    }
}

/// Appends `v` to `out`. Values above [`MAX`] are clamped to `MAX`; every field
/// that can reach such values is bounded by the protocol long before that.
pub fn put(out: &mut impl BufMut, v: u64) {
    debug_assert!(v <= MAX, "varint value {v} above 2^62-1");
    let v = v.min(MAX);
    match len(v) {
        1 => out.put_u8(v as u8),
        2 => out.put_u16(0x4000 | v as u16),
        4 => out.put_u32(0x8000_0000 | v as u32),
        _ => out.put_u64(0xC000_0000_0000_0000 | v),
    }
}

/// Result of reading a varint from the front of a slice.
pub enum Read {
    /// The value and how many bytes it used.
    Value(u64, usize),
    /// The slice ends inside the varint; this many bytes are needed in total.
    Incomplete(usize),
}

/// Reads a varint from the front of `buf` without consuming it.
pub fn peek(buf: &[u8]) -> Read {
    let Some(&first) = buf.first() else {
        return Read::Incomplete(1);
    };
    let n = 1usize << (first >> 6);
    if buf.len() < n {
        return Read::Incomplete(n);
    }
    let mut v = u64::from(first & 0x3f);
    for b in &buf[1..n] {
        v = (v << 8) | u64::from(*b);
    }
    Read::Value(v, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: u64) -> (u64, usize) {
        let mut out = Vec::new();
        put(&mut out, v);
        assert_eq!(out.len(), len(v));
        match peek(&out) {
            Read::Value(got, n) => (got, n),
            Read::Incomplete(_) => panic!("complete varint reported incomplete"),
        }
    }

    #[test]
    fn boundaries_round_trip() {
        for v in [0, 63, 64, 16383, 16384, (1 << 30) - 1, 1 << 30, MAX] {
            assert_eq!(roundtrip(v), (v, len(v)));
        }
    }

    #[test]
    fn rfc9000_examples() {
        assert!(matches!(peek(&[0x25]), Read::Value(37, 1)));
        assert!(matches!(peek(&[0x7b, 0xbd]), Read::Value(15293, 2)));
        assert!(matches!(
            peek(&[0x9d, 0x7f, 0x3e, 0x7d]),
            Read::Value(494878333, 4)
        ));
        assert!(matches!(
            peek(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]),
            Read::Value(151288809941952652, 8)
        ));
    }

    #[test]
    fn truncated_is_incomplete() {
        assert!(matches!(peek(&[]), Read::Incomplete(1)));
        assert!(matches!(peek(&[0x40]), Read::Incomplete(2)));
        assert!(matches!(peek(&[0xc0, 0, 0]), Read::Incomplete(8)));
    }
}
