//! Frames as a buggy caller might hand them to the encoder.
//!
//! tern-core's `arbitrary` feature generates only frames a peer accepts. The
//! `encode_unclamped` target also needs the others, so an [`Unchecked`] is
//! such a valid frame bent by a few [`Bend`]s: lengths and counts past the
//! protocol limits, zero where the decoder wants non-zero, ACK ranges out of
//! order, touching, overlapping or at the top of the varint range, any type
//! byte on an extension frame, an empty padding run. Numbers stay within the
//! varint range: `varint::put` debug-asserts that (a caller bug, not input).
//!
//! [`expected_valid`] states independently what `Frame::validate` must accept.

use arbitrary::Arbitrary;
use bytes::Bytes;
use tern_core::wire::limits::*;
use tern_core::wire::{varint, Deliver, EntryBody, Frame};

/// One way to bend a valid frame. A bend that does not apply to the frame
/// (an ACK bend on a SEND, say) leaves it as it is.
#[derive(Arbitrary, Debug, Clone)]
pub enum Bend {
    /// Zero in every field the decoder requires to be non-zero (`validate()`
    /// leaves that to the decoder).
    ZeroSequences,
    /// The frame's length-bounded field (token, cookie, handshake, payload,
    /// first preview head, reason, extension body) made `1 + extra` bytes
    /// longer than its limit.
    Overlong { extra: u16 },
    /// A SUMMARY with `1 + extra` previews more than the limit.
    TooManyPreviews { extra: u8 },
    /// ACK ranges replaced: a pair whose first number has its top bit set is
    /// taken as (start, end) verbatim; any other is placed as a valid range
    /// would be (gap, length), saturating at the varint maximum. No count
    /// limit.
    AckRanges(Vec<(u64, u64)>),
    /// An extension frame with any type byte, including known frame types.
    ExtensionType(u8),
    /// A padding frame of any length, zero included.
    PaddingLength(u16),
}

/// A valid frame and the bends applied to it, in order.
#[derive(Arbitrary, Debug, Clone)]
pub struct Unchecked {
    /// The frame before bending: within every limit.
    pub frame: Frame,
    /// Applied one after the other.
    pub bends: Vec<Bend>,
}

impl Unchecked {
    /// The bent frame.
    pub fn frame(&self) -> Frame {
        let mut f = self.frame.clone();
        for b in &self.bends {
            bend(&mut f, b);
        }
        f
    }
}

fn overlong(b: &mut Bytes, max: usize, extra: u16) {
    *b = Bytes::from(vec![0xa5; max + 1 + usize::from(extra)]);
}

fn bend(f: &mut Frame, b: &Bend) {
    match (f, b) {
        (f, Bend::ZeroSequences) => zero_sequences(f),
        (Frame::Login(l), Bend::Overlong { extra }) => overlong(&mut l.token, MAX_TOKEN, *extra),
        (Frame::Retry(c) | Frame::Cookie(c) | Frame::AddressToken(c), Bend::Overlong { extra }) => {
            overlong(c, MAX_COOKIE, *extra)
        }
        (Frame::Handshake(m) | Frame::HandshakeReply(m), Bend::Overlong { extra }) => {
            overlong(m, MAX_HANDSHAKE, *extra)
        }
        (Frame::Send(s), Bend::Overlong { extra }) => overlong(&mut s.payload, MAX_PAYLOAD, *extra),
        (
            Frame::Deliver(Deliver {
                body: EntryBody::Message { payload, .. },
                ..
            }),
            Bend::Overlong { extra },
        ) => overlong(payload, MAX_PAYLOAD, *extra),
        (Frame::Summary(s), Bend::Overlong { extra }) => {
            if let Some(p) = s.previews.first_mut() {
                overlong(&mut p.head, MAX_PREVIEW, *extra);
            }
        }
        (Frame::Error(e), Bend::Overlong { extra }) => {
            e.reason = "é".repeat(MAX_REASON / 2) + &"x".repeat(1 + usize::from(*extra));
        }
        (Frame::Extension { body, .. }, Bend::Overlong { extra }) => {
            overlong(body, MAX_EXTENSION, *extra)
        }
        (Frame::Summary(s), Bend::TooManyPreviews { extra }) => {
            let p = s
                .previews
                .first()
                .cloned()
                .unwrap_or(tern_core::wire::Preview {
                    seq: 1,
                    from_user: 2,
                    time_ms: 3,
                    msg_type: 0,
                    head: Bytes::new(),
                });
            s.previews = vec![p; MAX_PREVIEWS + 1 + usize::from(*extra)];
        }
        (Frame::Ack(a), Bend::AckRanges(pairs)) => {
            a.ranges.clear();
            let mut prev_end = a.cumulative;
            for (i, &(x, y)) in pairs.iter().enumerate() {
                let (start, end) = if x >> 63 == 1 {
                    (x & varint::MAX, y & varint::MAX)
                } else {
                    let min_gap = if i == 0 { 1 } else { 2 };
                    let start = prev_end
                        .saturating_add(min_gap)
                        .saturating_add(x)
                        .min(varint::MAX);
                    (start, start.saturating_add(y).min(varint::MAX))
                };
                a.ranges.push((start, end));
                prev_end = end;
            }
        }
        (Frame::Extension { ty, .. }, Bend::ExtensionType(t)) => *ty = *t,
        (Frame::Padding(n), Bend::PaddingLength(len)) => *n = usize::from(*len),
        _ => {}
    }
}

fn zero_sequences(f: &mut Frame) {
    match f {
        Frame::LoginOk(o) => o.next_send_seq = 0,
        Frame::Send(s) => s.seq = 0,
        Frame::Deliver(d) => {
            d.seq = 0;
            match &mut d.body {
                EntryBody::Receipt { target_seq, .. } | EntryBody::Recall { target_seq, .. } => {
                    *target_seq = 0
                }
                EntryBody::Message { .. } => {}
            }
        }
        Frame::Read(r) => (r.seq, r.target_seq) = (0, 0),
        Frame::Recall(r) => (r.seq, r.target_seq) = (0, 0),
        _ => {}
    }
}

/// Independent statement of what `Frame::validate` must accept: every bounded
/// length within its limit; ACK ranges with `end >= start`, `end <= 2^62-1`,
/// the first starting at `cumulative + 1` or later and every later one at
/// `previous end + 2` or later (computed without wrapping or saturating).
pub fn expected_valid(f: &Frame) -> bool {
    match f {
        Frame::Login(l) => l.token.len() <= MAX_TOKEN,
        Frame::Retry(c) | Frame::Cookie(c) | Frame::AddressToken(c) => c.len() <= MAX_COOKIE,
        Frame::Handshake(m) | Frame::HandshakeReply(m) => m.len() <= MAX_HANDSHAKE,
        Frame::Send(s) => s.payload.len() <= MAX_PAYLOAD,
        Frame::Deliver(Deliver {
            body: EntryBody::Message { payload, .. },
            ..
        }) => payload.len() <= MAX_PAYLOAD,
        Frame::Ack(a) => {
            if a.ranges.len() > MAX_ACK_RANGES {
                return false;
            }
            // In u128 so that nothing saturates or wraps.
            let mut min_start = u128::from(a.cumulative) + 1;
            for &(start, end) in &a.ranges {
                let (start, end) = (u128::from(start), u128::from(end));
                if start < min_start || end < start || end > u128::from(varint::MAX) {
                    return false;
                }
                min_start = end + 2;
            }
            true
        }
        Frame::Summary(s) => {
            s.previews.len() <= MAX_PREVIEWS
                && s.previews.iter().all(|p| p.head.len() <= MAX_PREVIEW)
        }
        Frame::Error(e) => e.reason.len() <= MAX_REASON,
        Frame::Extension { body, .. } => body.len() <= MAX_EXTENSION,
        _ => true,
    }
}
