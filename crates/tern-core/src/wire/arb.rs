//! `arbitrary::Arbitrary` for the wire types (feature `arbitrary`), for
//! fuzzers and property tests.
//!
//! The types derive `Arbitrary`; a field the codec bounds names one of the
//! generators below (`#[arbitrary(with = …)]`), so every generated value is
//! one a peer accepts: `validate()` passes and `decode(encode(v)) == v`.
//! [`Ack`] and [`Packet`] are written by hand, because their rules span
//! several fields. What a *hostile* sender could write (over-long fields,
//! zero sequences, bad ACK ranges) is the fuzz crate's business: it bends
//! these values.
//!
//! Generation is biased where bugs live: each varint length class is as
//! likely as the others, and the class boundaries are picked on purpose.

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;

use super::limits::{MAX_ACK_RANGES, MAX_DATAGRAM, MAX_PREVIEWS, MAX_REASON};
use super::{ty, varint, Ack, Frame, Header, Packet, Preview, TRAILER};

/// Longest padding run generated. Longer runs are valid, but add nothing a
/// test needs that a shorter one lacks, and cost a comparison per byte in
/// every decode (`PacketBuilder::pad_to` makes long ones where needed).
pub const MAX_PADDING_RUN: usize = 256;

/// Most frames a generated [`Packet`] is built from (fewer remain when some
/// do not fit, or padding runs merge).
pub const MAX_PACKET_FRAMES: usize = 32;

/// Values at the edges of the varint length classes.
const VARINT_EDGES: [u64; 9] = [
    0,
    1,
    63,
    64,
    16_383,
    16_384,
    (1 << 30) - 1,
    1 << 30,
    varint::MAX,
];

/// Any varint value (0 ..= 2^62 − 1): one of the four encoded lengths, each
/// as likely, then a value in it; or one of the class boundaries.
pub fn varint(u: &mut Unstructured) -> Result<u64> {
    let (lo, hi) = match u.int_in_range(0u8..=4)? {
        0 => (0, 63),
        1 => (64, 16_383),
        2 => (16_384, (1 << 30) - 1),
        3 => (1 << 30, varint::MAX),
        _ => return Ok(*u.choose(&VARINT_EDGES)?),
    };
    u.int_in_range(lo..=hi)
}

/// A protocol version this implementation speaks.
pub fn version(u: &mut Unstructured) -> Result<u8> {
    Ok(*u.choose(&[super::VERSION, super::VERSION_2])?)
}

/// A varint the decoder requires to be non-zero (sequences, packet numbers).
pub fn seq(u: &mut Unstructured) -> Result<u64> {
    Ok(varint(u)?.max(1))
}

/// A length-prefixed byte field of at most `MAX` bytes.
pub fn bytes<const MAX: usize>(u: &mut Unstructured) -> Result<Bytes> {
    let len = u.arbitrary_len::<u8>()?.min(MAX);
    Ok(Bytes::copy_from_slice(u.bytes(len)?))
}

/// An ERROR reason of at most `MAX_REASON` bytes of UTF-8: mostly printable
/// ASCII, as servers write them, with any other character mixed in.
pub fn reason(u: &mut Unstructured) -> Result<String> {
    let mut s = String::new();
    for _ in 0..u.arbitrary_len::<char>()? {
        let c = if u.ratio(3u8, 4u8)? {
            char::from(u.int_in_range(b' '..=b'~')?)
        } else {
            char::arbitrary(u)?
        };
        if s.len() + c.len_utf8() > MAX_REASON {
            break;
        }
        s.push(c);
    }
    Ok(s)
}

/// A padding run of 1 ..= [`MAX_PADDING_RUN`] bytes.
pub fn padding(u: &mut Unstructured) -> Result<usize> {
    u.int_in_range(1..=MAX_PADDING_RUN)
}

/// An extension frame type this implementation does not know:
/// `0x41 ..= 0x7f` (`0x40` is ADDRESS_TOKEN).
pub fn extension_type(u: &mut Unstructured) -> Result<u8> {
    u.int_in_range(ty::ADDRESS_TOKEN + 1..=ty::EXTENSION_LAST)
}

/// At most `MAX_PREVIEWS` previews.
pub fn previews(u: &mut Unstructured) -> Result<Vec<Preview>> {
    let n = u.int_in_range(0..=MAX_PREVIEWS)?;
    (0..n).map(|_| Preview::arbitrary(u)).collect()
}

/// At most `GROUP_OP_MAX_USERS` user ids.
pub fn group_users(u: &mut Unstructured) -> Result<Vec<u64>> {
    let n = u.int_in_range(0..=super::GROUP_OP_MAX_USERS)?;
    (0..n).map(|_| varint(u)).collect()
}

/// At most `READ_COUNTS_MAX` counts.
pub fn read_counts(u: &mut Unstructured) -> Result<Vec<u64>> {
    let n = u.int_in_range(0..=super::READ_COUNTS_MAX)?;
    (0..n).map(|_| varint(u)).collect()
}

/// A gap or length inside an ACK: mostly small (the interesting cases are
/// touching and nearly touching ranges), sometimes any varint.
fn ack_step(u: &mut Unstructured) -> Result<u64> {
    match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(0..=3),
        1 | 2 => u.int_in_range(0..=1000),
        _ => varint(u),
    }
}

/// Up to `MAX_ACK_RANGES` valid ranges: ascending, the first starting at
/// `cumulative + 1` or later, each later one at least two past the previous
/// end, every end within the varint range.
impl<'a> Arbitrary<'a> for Ack {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let receiver_online = bool::arbitrary(u)?;
        let cumulative = varint(u)?;
        let delay_us = varint(u)?;
        let mut ranges = Vec::new();
        let mut prev_end = cumulative;
        for i in 0..u.int_in_range(0..=MAX_ACK_RANGES)? {
            let min_gap = if i == 0 { 1 } else { 2 };
            let (gap, len) = (ack_step(u)?, ack_step(u)?);
            let Some(start) = prev_end
                .checked_add(min_gap)
                .and_then(|s| s.checked_add(gap))
                .filter(|s| *s <= varint::MAX)
            else {
                break;
            };
            let Some(end) = start.checked_add(len).filter(|e| *e <= varint::MAX) else {
                break;
            };
            ranges.push((start, end));
            prev_end = end;
        }
        Ok(Ack {
            receiver_online,
            cumulative,
            delay_us,
            ranges,
        })
    }
}

/// A packet a sender could send: at most `MAX_DATAGRAM` bytes (frames that
/// would not fit are left out), adjacent padding runs merged into one as a
/// decoder returns them, so that `Packet::decode(p.encode()) == Ok(p)`.
impl<'a> Arbitrary<'a> for Packet {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let header = Header::arbitrary(u)?;
        let mut len = header.len() + TRAILER;
        let mut frames: Vec<Frame> = Vec::new();
        for _ in 0..u.int_in_range(0..=MAX_PACKET_FRAMES)? {
            if u.is_empty() {
                break;
            }
            let f = Frame::arbitrary(u)?;
            if len + f.encoded_len() > MAX_DATAGRAM || f.min_version() > header.version {
                continue;
            }
            len += f.encoded_len();
            match (frames.last_mut(), f) {
                (Some(Frame::Padding(a)), Frame::Padding(b)) => *a += b,
                (_, f) => frames.push(f),
            }
        }
        Ok(Packet { header, frames })
    }
}
