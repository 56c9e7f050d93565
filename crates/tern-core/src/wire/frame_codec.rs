//! Encoding of single frames (decoding: `frame_decode.rs`). Pure functions over bytes: no I/O,
//! no panics on any input, every length bounded before use.

use bytes::{BufMut, Bytes};

use super::codes::ty;
use super::error::EncodeError;
use super::fields::{bytes_len, check, put_bytes};
use super::frame::*;
use super::limits::*;
use super::varint;

impl Frame {
    /// Checks every bounded field, so that what we send is what a peer accepts.
    pub fn validate(&self) -> Result<(), EncodeError> {
        match self {
            Frame::Login(l) => check("token", l.token.len(), MAX_TOKEN),
            Frame::Retry(c) | Frame::Cookie(c) => check("cookie", c.len(), MAX_COOKIE),
            Frame::AddressToken(t) => check("address_token", t.len(), MAX_COOKIE),
            Frame::Handshake(m) | Frame::HandshakeReply(m) => {
                check("handshake", m.len(), MAX_HANDSHAKE)
            }
            Frame::Send(s) => check("payload", s.payload.len(), MAX_PAYLOAD),
            Frame::Deliver(Deliver {
                body: EntryBody::Message { payload, .. },
                ..
            }) => check("payload", payload.len(), MAX_PAYLOAD),
            Frame::Ack(a) => {
                check("ack ranges", a.ranges.len(), MAX_ACK_RANGES)?;
                // The first range may touch `cumulative` (received, not released);
                // later ranges must leave a gap after the previous one.
                let mut min_start = a.cumulative.saturating_add(1);
                for &(start, end) in &a.ranges {
                    if start < min_start || end < start || end > varint::MAX {
                        return Err(EncodeError::BadAckRanges);
                    }
                    min_start = end.saturating_add(2);
                }
                Ok(())
            }
            Frame::Summary(s) => {
                check("previews", s.previews.len(), MAX_PREVIEWS)?;
                for p in &s.previews {
                    check("preview", p.head.len(), MAX_PREVIEW)?;
                }
                Ok(())
            }
            Frame::Error(e) => check("reason", e.reason.len(), MAX_REASON),
            Frame::Extension { body, .. } => check("extension", body.len(), MAX_EXTENSION),
            Frame::Post(p) => p.validate(),
            Frame::Entry(e) => e.validate(),
            Frame::ListItem(i) => i.validate(),
            Frame::Record(r) => r.validate(),
            Frame::GroupOp(g) => g.validate(),
            Frame::ReadCounts(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// Number of bytes [`Frame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let v = varint::len;
        1 + match self {
            Frame::Padding(n) => n.saturating_sub(1),
            Frame::Login(l) => bytes_len(&l.token) + v(l.epoch) + v(l.checkpoint),
            Frame::LoginOk(o) => {
                v(o.user)
                    + v(o.device.into())
                    + v(o.epoch)
                    + v(o.head)
                    + v(o.checkpoint)
                    + v(o.next_send_seq)
                    + v(o.heartbeat_ms)
                    + v(o.idle_timeout_ms)
                    + v(o.server_time_ms)
            }
            Frame::Heartbeat(n) | Frame::HeartbeatAck(n) => v(*n),
            Frame::Retry(c) | Frame::Cookie(c) | Frame::AddressToken(c) => bytes_len(c),
            Frame::Handshake(m) | Frame::HandshakeReply(m) => bytes_len(m),
            Frame::Send(s) => {
                v(s.seq) + v(s.to) + v(s.conv) + v(s.msg_type) + bytes_len(&s.payload)
            }
            Frame::Deliver(d) => {
                v(d.seq)
                    + v(d.conv)
                    + v(d.from_user)
                    + v(d.from_device.into())
                    + v(d.from_seq)
                    + v(d.time_ms)
                    + 1
                    + match &d.body {
                        EntryBody::Message { msg_type, payload } => {
                            v(*msg_type) + bytes_len(payload)
                        }
                        EntryBody::Receipt {
                            target_device,
                            target_seq,
                            ..
                        } => 1 + v((*target_device).into()) + v(*target_seq),
                        EntryBody::Recall {
                            target_device,
                            target_seq,
                        } => v((*target_device).into()) + v(*target_seq),
                    }
            }
            Frame::Ack(a) => {
                let mut n = 1 + v(a.cumulative) + v(a.delay_us) + v(a.ranges.len() as u64);
                let mut prev_end = a.cumulative;
                for &(start, end) in &a.ranges {
                    n += v(start.saturating_sub(prev_end.saturating_add(1)))
                        + v(end.saturating_sub(start));
                    prev_end = end;
                }
                n
            }
            Frame::Read(r) => {
                v(r.seq) + v(r.conv) + v(r.peer) + v(r.target_device.into()) + v(r.target_seq)
            }
            Frame::Recall(r) => v(r.seq) + v(r.to) + v(r.conv) + v(r.target_seq),
            Frame::Pull(p) => v(p.request_id) + v(p.after) + v(p.max_entries),
            Frame::PageEnd(p) => v(p.request_id) + v(p.last) + 1 + v(p.head),
            Frame::SummaryRequest(s) => v(s.request_id) + v(s.cursor) + v(s.max_convs),
            Frame::Summary(s) => {
                v(s.request_id)
                    + v(s.conv)
                    + v(s.unread)
                    + v(s.first_unread_seq)
                    + v(s.first_unread_time_ms)
                    + v(s.last_seq)
                    + 1
                    + s.previews
                        .iter()
                        .map(|p| {
                            v(p.seq)
                                + v(p.from_user)
                                + v(p.time_ms)
                                + v(p.msg_type)
                                + bytes_len(&p.head)
                        })
                        .sum::<usize>()
            }
            Frame::SummaryEnd(s) => {
                v(s.request_id) + v(s.next_cursor) + v(s.conv_count) + v(s.total_unread) + v(s.head)
            }
            Frame::Kick(r) | Frame::Notify(r) => v(*r),
            Frame::Error(e) => v(e.code) + 1 + v(e.seq) + bytes_len(e.reason.as_bytes()),
            Frame::Logout => 0,
            Frame::Extension { body, .. } => bytes_len(body),
            Frame::Post(f) => f.encoded_len(),
            Frame::MarkRead(f) => f.encoded_len(),
            Frame::Retract(f) => f.encoded_len(),
            Frame::Delete(f) => f.encoded_len(),
            Frame::Entry(f) => f.encoded_len(),
            Frame::List(f) => f.encoded_len(),
            Frame::ListItem(f) => f.encoded_len(),
            Frame::ListEnd(f) => f.encoded_len(),
            Frame::History(f) => f.encoded_len(),
            Frame::Record(f) => f.encoded_len(),
            Frame::HistoryEnd(f) => f.encoded_len(),
            Frame::GroupOp(f) => f.encoded_len(),
            Frame::Members(f) => f.encoded_len(),
            Frame::Member(f) => f.encoded_len(),
            Frame::MembersEnd(f) => f.encoded_len(),
            Frame::ReadCountsRequest(f) => f.encoded_len(),
            Frame::ReadCounts(f) => f.encoded_len(),
        }
    }

    /// Appends the frame. Call [`Frame::validate`] first for frames built from
    /// untrusted sizes; lengths beyond the limits are written but a peer rejects them.
    pub fn encode(&self, out: &mut impl BufMut) {
        let p = |out: &mut _, x: u64| varint::put(out, x);
        match self {
            Frame::Padding(n) => out.put_bytes(ty::PADDING, (*n).max(1)),
            Frame::Login(l) => {
                out.put_u8(ty::LOGIN);
                put_bytes(out, &l.token);
                p(out, l.epoch);
                p(out, l.checkpoint);
            }
            Frame::LoginOk(o) => {
                out.put_u8(ty::LOGIN_OK);
                for x in [
                    o.user,
                    o.device.into(),
                    o.epoch,
                    o.head,
                    o.checkpoint,
                    o.next_send_seq,
                    o.heartbeat_ms,
                    o.idle_timeout_ms,
                    o.server_time_ms,
                ] {
                    p(out, x);
                }
            }
            Frame::Heartbeat(n) => {
                out.put_u8(ty::HEARTBEAT);
                p(out, *n);
            }
            Frame::HeartbeatAck(n) => {
                out.put_u8(ty::HEARTBEAT_ACK);
                p(out, *n);
            }
            Frame::Retry(c) => {
                out.put_u8(ty::RETRY);
                put_bytes(out, c);
            }
            Frame::Cookie(c) => {
                out.put_u8(ty::COOKIE);
                put_bytes(out, c);
            }
            Frame::AddressToken(t) => {
                out.put_u8(ty::ADDRESS_TOKEN);
                put_bytes(out, t);
            }
            Frame::Handshake(m) => {
                out.put_u8(ty::HANDSHAKE);
                put_bytes(out, m);
            }
            Frame::HandshakeReply(m) => {
                out.put_u8(ty::HANDSHAKE_REPLY);
                put_bytes(out, m);
            }
            Frame::Send(s) => {
                out.put_u8(ty::SEND);
                for x in [s.seq, s.to, s.conv, s.msg_type] {
                    p(out, x);
                }
                put_bytes(out, &s.payload);
            }
            Frame::Deliver(d) => {
                out.put_u8(ty::DELIVER);
                for x in [
                    d.seq,
                    d.conv,
                    d.from_user,
                    d.from_device.into(),
                    d.from_seq,
                    d.time_ms,
                ] {
                    p(out, x);
                }
                match &d.body {
                    EntryBody::Message { msg_type, payload } => {
                        out.put_u8(0);
                        p(out, *msg_type);
                        put_bytes(out, payload);
                    }
                    EntryBody::Receipt {
                        status,
                        target_device,
                        target_seq,
                    } => {
                        out.put_u8(1);
                        out.put_u8(*status as u8);
                        p(out, (*target_device).into());
                        p(out, *target_seq);
                    }
                    EntryBody::Recall {
                        target_device,
                        target_seq,
                    } => {
                        out.put_u8(2);
                        p(out, (*target_device).into());
                        p(out, *target_seq);
                    }
                }
            }
            Frame::Ack(a) => {
                out.put_u8(ty::ACK);
                out.put_u8(u8::from(a.receiver_online));
                p(out, a.cumulative);
                p(out, a.delay_us);
                p(out, a.ranges.len() as u64);
                let mut prev_end = a.cumulative;
                for &(start, end) in &a.ranges {
                    p(out, start.saturating_sub(prev_end.saturating_add(1)));
                    p(out, end.saturating_sub(start));
                    prev_end = end;
                }
            }
            Frame::Read(r) => {
                out.put_u8(ty::READ);
                for x in [r.seq, r.conv, r.peer, r.target_device.into(), r.target_seq] {
                    p(out, x);
                }
            }
            Frame::Recall(r) => {
                out.put_u8(ty::RECALL);
                for x in [r.seq, r.to, r.conv, r.target_seq] {
                    p(out, x);
                }
            }
            Frame::Pull(q) => {
                out.put_u8(ty::PULL);
                for x in [q.request_id, q.after, q.max_entries] {
                    p(out, x);
                }
            }
            Frame::PageEnd(e) => {
                out.put_u8(ty::PAGE_END);
                p(out, e.request_id);
                p(out, e.last);
                out.put_u8(u8::from(e.end));
                p(out, e.head);
            }
            Frame::SummaryRequest(s) => {
                out.put_u8(ty::SUMMARY_REQUEST);
                for x in [s.request_id, s.cursor, s.max_convs] {
                    p(out, x);
                }
            }
            Frame::Summary(s) => {
                out.put_u8(ty::SUMMARY);
                for x in [
                    s.request_id,
                    s.conv,
                    s.unread,
                    s.first_unread_seq,
                    s.first_unread_time_ms,
                    s.last_seq,
                ] {
                    p(out, x);
                }
                out.put_u8(s.previews.len().min(255) as u8);
                for pv in &s.previews {
                    for x in [pv.seq, pv.from_user, pv.time_ms, pv.msg_type] {
                        p(out, x);
                    }
                    put_bytes(out, &pv.head);
                }
            }
            Frame::SummaryEnd(s) => {
                out.put_u8(ty::SUMMARY_END);
                for x in [
                    s.request_id,
                    s.next_cursor,
                    s.conv_count,
                    s.total_unread,
                    s.head,
                ] {
                    p(out, x);
                }
            }
            Frame::Kick(r) => {
                out.put_u8(ty::KICK);
                p(out, *r);
            }
            Frame::Notify(head) => {
                out.put_u8(ty::NOTIFY);
                p(out, *head);
            }
            Frame::Error(e) => {
                out.put_u8(ty::ERROR);
                p(out, e.code);
                out.put_u8(e.frame_type);
                p(out, e.seq);
                put_bytes(out, e.reason.as_bytes());
            }
            Frame::Logout => out.put_u8(ty::LOGOUT),
            Frame::Post(f) => {
                out.put_u8(ty::POST);
                f.encode(out);
            }
            Frame::MarkRead(f) => {
                out.put_u8(ty::MARK_READ);
                f.encode(out);
            }
            Frame::Retract(f) => {
                out.put_u8(ty::RETRACT);
                f.encode(out);
            }
            Frame::Delete(f) => {
                out.put_u8(ty::DELETE);
                f.encode(out);
            }
            Frame::Entry(f) => {
                out.put_u8(ty::ENTRY);
                f.encode(out);
            }
            Frame::List(f) => {
                out.put_u8(ty::LIST);
                f.encode(out);
            }
            Frame::ListItem(f) => {
                out.put_u8(ty::LIST_ITEM);
                f.encode(out);
            }
            Frame::ListEnd(f) => {
                out.put_u8(ty::LIST_END);
                f.encode(out);
            }
            Frame::History(f) => {
                out.put_u8(ty::HISTORY);
                f.encode(out);
            }
            Frame::Record(f) => {
                out.put_u8(ty::RECORD);
                f.encode(out);
            }
            Frame::HistoryEnd(f) => {
                out.put_u8(ty::HISTORY_END);
                f.encode(out);
            }
            Frame::GroupOp(f) => {
                out.put_u8(ty::GROUP_OP);
                f.encode(out);
            }
            Frame::Members(f) => {
                out.put_u8(ty::MEMBERS);
                f.encode(out);
            }
            Frame::Member(f) => {
                out.put_u8(ty::MEMBER);
                f.encode(out);
            }
            Frame::MembersEnd(f) => {
                out.put_u8(ty::MEMBERS_END);
                f.encode(out);
            }
            Frame::ReadCountsRequest(f) => {
                out.put_u8(ty::READ_COUNTS);
                f.encode(out);
            }
            Frame::ReadCounts(f) => {
                out.put_u8(ty::READ_COUNTS_ANSWER);
                f.encode(out);
            }
            Frame::Extension { ty, body } => {
                out.put_u8(*ty);
                put_bytes(out, body);
            }
        }
    }
}

/// Convenience for tests and tools: the encoded bytes of one frame.
pub fn encode_to_bytes(f: &Frame) -> Bytes {
    let mut v = Vec::with_capacity(f.encoded_len());
    f.encode(&mut v);
    Bytes::from(v)
}
