//! `Arbitrary` mirrors of the wire frames. tern-core does not derive
//! `Arbitrary` (it must not depend on fuzzing crates), so the fuzz crate owns
//! these and converts them.
//!
//! Two conversions:
//! - [`FrameM::clamped`]: every value brought inside the protocol's limits
//!   (varints <= 2^62-1, non-zero where the decoder demands it, lengths within
//!   `wire::limits`, ACK ranges valid: the first starts at `cumulative + 1` or
//!   later, each later one at least two past the previous end, all ends
//!   <= 2^62-1). Such a frame must pass
//!   `validate()` and survive encode -> decode unchanged.
//! - [`FrameM::raw`]: values as the fuzzer gave them, except that numbers
//!   stay within the varint range (`varint::put` debug-asserts it: a value
//!   above 2^62-1 is a caller bug). Lengths may exceed the limits, sequences
//!   may be zero, ACK ranges may be anything. `validate()` must accept exactly
//!   the frames [`expected_valid`] accepts, and `encoded_len()` / `encode()`
//!   must not panic on any of them.

use arbitrary::Arbitrary;
use bytes::Bytes;
use tern_core::wire::limits::*;
use tern_core::wire::{self, varint, EntryBody, Frame, ReceiptStatus};

/// Largest padding run a clamped mirror produces. Kept small: decoding
/// padding costs a comparison per byte, and the targets decode many prefixes
/// (longer runs still come from `PacketBuilder::pad_to`).
pub const MAX_PADDING_RUN: usize = 200;

/// A preview inside a summary.
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)]
pub struct PreviewM {
    pub seq: u64,
    pub from_user: u64,
    pub time_ms: u64,
    pub msg_type: u64,
    pub head: Vec<u8>,
}

/// The body of a DELIVER frame.
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)]
pub enum BodyM {
    Message { msg_type: u64, payload: Vec<u8> },
    Receipt { read: bool, target_device: u32, target_seq: u64 },
    Recall { target_device: u32, target_seq: u64 },
}

/// One frame, field for field.
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)]
pub enum FrameM {
    Padding(u16),
    Login {
        token: Vec<u8>,
        epoch: u64,
        checkpoint: u64,
    },
    LoginOk {
        user: u64,
        device: u32,
        epoch: u64,
        head: u64,
        checkpoint: u64,
        next_send_seq: u64,
        heartbeat_ms: u64,
        idle_timeout_ms: u64,
        server_time_ms: u64,
    },
    Heartbeat(u64),
    HeartbeatAck(u64),
    Send {
        seq: u64,
        to: u64,
        conv: u64,
        msg_type: u64,
        payload: Vec<u8>,
    },
    Deliver {
        seq: u64,
        conv: u64,
        from_user: u64,
        from_device: u32,
        from_seq: u64,
        time_ms: u64,
        body: BodyM,
    },
    Ack {
        receiver_online: bool,
        cumulative: u64,
        delay_us: u64,
        /// (gap, length) pairs. Clamped: the first range starts `gap + 1` past
        /// `cumulative`, each later one `gap + 2` past the previous end, and
        /// spans `length + 1` sequences.
        ranges: Vec<(u64, u64)>,
    },
    Read {
        seq: u64,
        conv: u64,
        peer: u64,
        target_device: u32,
        target_seq: u64,
    },
    Recall {
        seq: u64,
        to: u64,
        conv: u64,
        target_seq: u64,
    },
    Pull {
        request_id: u64,
        after: u64,
        max_entries: u64,
    },
    PageEnd {
        request_id: u64,
        last: u64,
        end: bool,
        head: u64,
    },
    SummaryRequest {
        request_id: u64,
        cursor: u64,
        max_convs: u64,
    },
    Summary {
        request_id: u64,
        conv: u64,
        unread: u64,
        first_unread_seq: u64,
        first_unread_time_ms: u64,
        last_seq: u64,
        previews: Vec<PreviewM>,
    },
    SummaryEnd {
        request_id: u64,
        next_cursor: u64,
        conv_count: u64,
        total_unread: u64,
        head: u64,
    },
    Notify(u64),
    Kick(u64),
    Error {
        code: u64,
        frame_type: u8,
        seq: u64,
        reason: String,
    },
    Logout,
    Extension {
        ty: u8,
        body: Vec<u8>,
    },
}

/// How field values are turned into frame values.
trait Conv {
    /// Any varint field.
    fn v(&self, x: u64) -> u64;
    /// A varint field the decoder requires to be non-zero.
    fn nz(&self, x: u64) -> u64;
    /// A length-bounded byte field.
    fn b(&self, x: &[u8], max: usize) -> Bytes;
    /// A list bounded to `max` entries.
    fn cap(&self, len: usize, max: usize) -> usize;
    /// ACK ranges from (gap, length) pairs above `cumulative`.
    fn ranges(&self, cumulative: u64, pairs: &[(u64, u64)]) -> Vec<(u64, u64)>;
    /// The type byte of an extension frame.
    fn ext_ty(&self, ty: u8) -> u8;
    /// Padding run length.
    fn pad(&self, n: u16) -> usize;
    /// Reason text.
    fn text(&self, s: &str) -> String;
}

struct Clamp;
struct Raw;

impl Conv for Clamp {
    fn v(&self, x: u64) -> u64 {
        // Masking (not min) keeps every varint size class equally reachable.
        x & varint::MAX
    }
    fn nz(&self, x: u64) -> u64 {
        (x & varint::MAX).max(1)
    }
    fn b(&self, x: &[u8], max: usize) -> Bytes {
        Bytes::copy_from_slice(&x[..x.len().min(max)])
    }
    fn cap(&self, len: usize, max: usize) -> usize {
        len.min(max)
    }
    fn ranges(&self, cumulative: u64, pairs: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut prev_end = cumulative;
        for (i, &(gap, len)) in pairs.iter().take(MAX_ACK_RANGES).enumerate() {
            // Small gaps and lengths are the interesting ones; big ones still
            // appear through the high bits.
            let gap = if gap >> 63 == 1 { gap & varint::MAX } else { gap & 0xffff };
            let len = if len >> 63 == 1 { len & varint::MAX } else { len & 0xffff };
            // The first range may touch `cumulative`; later ones need a gap.
            let min_gap = if i == 0 { 1 } else { 2 };
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
            out.push((start, end));
            prev_end = end;
        }
        out
    }
    fn ext_ty(&self, ty: u8) -> u8 {
        wire::ty::EXTENSION_FIRST + ty % (wire::ty::EXTENSION_LAST - wire::ty::EXTENSION_FIRST + 1)
    }
    fn pad(&self, n: u16) -> usize {
        1 + usize::from(n) % MAX_PADDING_RUN
    }
    fn text(&self, s: &str) -> String {
        let mut end = s.len().min(MAX_REASON);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    }
}

impl Conv for Raw {
    fn v(&self, x: u64) -> u64 {
        x & varint::MAX
    }
    fn nz(&self, x: u64) -> u64 {
        // Zero allowed: `validate()` does not check it, the decoder does.
        x & varint::MAX
    }
    fn b(&self, x: &[u8], _max: usize) -> Bytes {
        Bytes::copy_from_slice(x)
    }
    fn cap(&self, len: usize, _max: usize) -> usize {
        len
    }
    fn ranges(&self, cumulative: u64, pairs: &[(u64, u64)]) -> Vec<(u64, u64)> {
        // The top bit of the gap selects a "hostile" pair taken as
        // (start, end) verbatim (out of order, overlapping, touching...);
        // otherwise the pair is placed as a valid range would be, saturating
        // at the varint maximum, leaving `validate()` the count and the
        // ceiling to judge.
        let mut out = Vec::new();
        let mut prev_end = cumulative;
        for (i, &(gap, len)) in pairs.iter().enumerate() {
            let (start, end) = if gap >> 63 == 1 {
                (gap & varint::MAX, len & varint::MAX)
            } else {
                let min_gap = if i == 0 { 1 } else { 2 };
                let start = prev_end.saturating_add(min_gap).saturating_add(gap).min(varint::MAX);
                (start, start.saturating_add(len).min(varint::MAX))
            };
            out.push((start, end));
            prev_end = end;
        }
        out
    }
    fn ext_ty(&self, ty: u8) -> u8 {
        // Any type byte: only 0x40..=0x7f are extensions on the wire.
        ty
    }
    fn pad(&self, n: u16) -> usize {
        n.into()
    }
    fn text(&self, s: &str) -> String {
        s.to_owned()
    }
}

impl FrameM {
    /// The frame with every field brought inside the protocol's limits.
    pub fn clamped(&self) -> Frame {
        self.convert(&Clamp)
    }

    /// The frame with fields as given (may exceed limits or the varint range).
    pub fn raw(&self) -> Frame {
        self.convert(&Raw)
    }

    fn convert(&self, c: &impl Conv) -> Frame {
        match self {
            FrameM::Padding(n) => Frame::Padding(c.pad(*n)),
            FrameM::Login {
                token,
                epoch,
                checkpoint,
            } => Frame::Login(wire::Login {
                token: c.b(token, MAX_TOKEN),
                epoch: c.v(*epoch),
                checkpoint: c.v(*checkpoint),
            }),
            FrameM::LoginOk {
                user,
                device,
                epoch,
                head,
                checkpoint,
                next_send_seq,
                heartbeat_ms,
                idle_timeout_ms,
                server_time_ms,
            } => Frame::LoginOk(wire::LoginOk {
                user: c.v(*user),
                device: *device,
                epoch: c.v(*epoch),
                head: c.v(*head),
                checkpoint: c.v(*checkpoint),
                next_send_seq: c.nz(*next_send_seq),
                heartbeat_ms: c.v(*heartbeat_ms),
                idle_timeout_ms: c.v(*idle_timeout_ms),
                server_time_ms: c.v(*server_time_ms),
            }),
            FrameM::Heartbeat(n) => Frame::Heartbeat(c.v(*n)),
            FrameM::HeartbeatAck(n) => Frame::HeartbeatAck(c.v(*n)),
            FrameM::Send {
                seq,
                to,
                conv,
                msg_type,
                payload,
            } => Frame::Send(wire::Send {
                seq: c.nz(*seq),
                to: c.v(*to),
                conv: c.v(*conv),
                msg_type: c.v(*msg_type),
                payload: c.b(payload, MAX_PAYLOAD),
            }),
            FrameM::Deliver {
                seq,
                conv,
                from_user,
                from_device,
                from_seq,
                time_ms,
                body,
            } => Frame::Deliver(wire::Deliver {
                seq: c.nz(*seq),
                conv: c.v(*conv),
                from_user: c.v(*from_user),
                from_device: *from_device,
                from_seq: c.v(*from_seq),
                time_ms: c.v(*time_ms),
                body: match body {
                    BodyM::Message { msg_type, payload } => EntryBody::Message {
                        msg_type: c.v(*msg_type),
                        payload: c.b(payload, MAX_PAYLOAD),
                    },
                    BodyM::Receipt {
                        read,
                        target_device,
                        target_seq,
                    } => EntryBody::Receipt {
                        status: if *read {
                            ReceiptStatus::Read
                        } else {
                            ReceiptStatus::Delivered
                        },
                        target_device: *target_device,
                        target_seq: c.nz(*target_seq),
                    },
                    BodyM::Recall {
                        target_device,
                        target_seq,
                    } => EntryBody::Recall {
                        target_device: *target_device,
                        target_seq: c.nz(*target_seq),
                    },
                },
            }),
            FrameM::Ack {
                receiver_online,
                cumulative,
                delay_us,
                ranges,
            } => {
                let cumulative = c.v(*cumulative);
                Frame::Ack(wire::Ack {
                    receiver_online: *receiver_online,
                    cumulative,
                    delay_us: c.v(*delay_us),
                    ranges: c.ranges(cumulative, ranges),
                })
            }
            FrameM::Read {
                seq,
                conv,
                peer,
                target_device,
                target_seq,
            } => Frame::Read(wire::Read {
                seq: c.nz(*seq),
                conv: c.v(*conv),
                peer: c.v(*peer),
                target_device: *target_device,
                target_seq: c.nz(*target_seq),
            }),
            FrameM::Recall {
                seq,
                to,
                conv,
                target_seq,
            } => Frame::Recall(wire::Recall {
                seq: c.nz(*seq),
                to: c.v(*to),
                conv: c.v(*conv),
                target_seq: c.nz(*target_seq),
            }),
            FrameM::Pull {
                request_id,
                after,
                max_entries,
            } => Frame::Pull(wire::Pull {
                request_id: c.v(*request_id),
                after: c.v(*after),
                max_entries: c.v(*max_entries),
            }),
            FrameM::PageEnd {
                request_id,
                last,
                end,
                head,
            } => Frame::PageEnd(wire::PageEnd {
                request_id: c.v(*request_id),
                last: c.v(*last),
                end: *end,
                head: c.v(*head),
            }),
            FrameM::SummaryRequest {
                request_id,
                cursor,
                max_convs,
            } => Frame::SummaryRequest(wire::SummaryRequest {
                request_id: c.v(*request_id),
                cursor: c.v(*cursor),
                max_convs: c.v(*max_convs),
            }),
            FrameM::Summary {
                request_id,
                conv,
                unread,
                first_unread_seq,
                first_unread_time_ms,
                last_seq,
                previews,
            } => Frame::Summary(wire::Summary {
                request_id: c.v(*request_id),
                conv: c.v(*conv),
                unread: c.v(*unread),
                first_unread_seq: c.v(*first_unread_seq),
                first_unread_time_ms: c.v(*first_unread_time_ms),
                last_seq: c.v(*last_seq),
                previews: previews
                    .iter()
                    .take(c.cap(previews.len(), MAX_PREVIEWS))
                    .map(|p| wire::Preview {
                        seq: c.v(p.seq),
                        from_user: c.v(p.from_user),
                        time_ms: c.v(p.time_ms),
                        msg_type: c.v(p.msg_type),
                        head: c.b(&p.head, MAX_PREVIEW),
                    })
                    .collect(),
            }),
            FrameM::SummaryEnd {
                request_id,
                next_cursor,
                conv_count,
                total_unread,
                head,
            } => Frame::SummaryEnd(wire::SummaryEnd {
                request_id: c.v(*request_id),
                next_cursor: c.v(*next_cursor),
                conv_count: c.v(*conv_count),
                total_unread: c.v(*total_unread),
                head: c.v(*head),
            }),
            FrameM::Notify(h) => Frame::Notify(c.v(*h)),
            FrameM::Kick(r) => Frame::Kick(c.v(*r)),
            FrameM::Error {
                code,
                frame_type,
                seq,
                reason,
            } => Frame::Error(wire::ErrorFrame {
                code: c.v(*code),
                frame_type: *frame_type,
                seq: c.v(*seq),
                reason: c.text(reason),
            }),
            FrameM::Logout => Frame::Logout,
            FrameM::Extension { ty, body } => Frame::Extension {
                ty: c.ext_ty(*ty),
                body: c.b(body, MAX_EXTENSION),
            },
        }
    }
}

/// Independent statement of what `Frame::validate` must accept: every bounded
/// length within its limit; ACK ranges with `end >= start`, `end <= 2^62-1`,
/// the first starting at `cumulative + 1` or later and every later one at
/// `previous end + 2` or later (computed without wrapping or saturating).
pub fn expected_valid(f: &Frame) -> bool {
    match f {
        Frame::Login(l) => l.token.len() <= MAX_TOKEN,
        Frame::Send(s) => s.payload.len() <= MAX_PAYLOAD,
        Frame::Deliver(wire::Deliver {
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
            s.previews.len() <= MAX_PREVIEWS && s.previews.iter().all(|p| p.head.len() <= MAX_PREVIEW)
        }
        Frame::Error(e) => e.reason.len() <= MAX_REASON,
        Frame::Extension { body, .. } => body.len() <= MAX_EXTENSION,
        _ => true,
    }
}
