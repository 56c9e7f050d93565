//! Decoding of single frames: the inverse of `frame_codec.rs`. No panic on
//! any input; every length and count is checked against its limit and
//! against the bytes that remain before anything is allocated for it.

use super::codes::ty;
use super::conversation::*;
use super::error::DecodeError;
use super::frame::*;
use super::group::*;
use super::limits::*;
use super::reader::Reader;
use super::varint;

impl Frame {
    /// Decodes one frame from the front of `r`.
    #[allow(clippy::match_overlapping_arm)] // ADDRESS_TOKEN is an extension type
    pub fn decode(r: &mut Reader) -> Result<Frame, DecodeError> {
        let t = r.u8()?;
        Ok(match t {
            ty::PADDING => {
                let mut n = 1;
                while r.peek_u8() == Some(ty::PADDING) {
                    r.u8()?;
                    n += 1;
                }
                Frame::Padding(n)
            }
            ty::LOGIN => Frame::Login(Login {
                token: r.bytes("token", MAX_TOKEN)?,
                epoch: r.varint()?,
                checkpoint: r.varint()?,
            }),
            ty::LOGIN_OK => Frame::LoginOk(LoginOk {
                user: r.varint()?,
                device: r.varint_u32("device")?,
                epoch: r.varint()?,
                head: r.varint()?,
                checkpoint: r.varint()?,
                next_send_seq: r.nonzero("next_send_seq")?,
                heartbeat_ms: r.varint()?,
                idle_timeout_ms: r.varint()?,
                server_time_ms: r.varint()?,
            }),
            ty::HEARTBEAT => Frame::Heartbeat(r.varint()?),
            ty::HEARTBEAT_ACK => Frame::HeartbeatAck(r.varint()?),
            ty::RETRY => Frame::Retry(r.bytes("cookie", MAX_COOKIE)?),
            ty::COOKIE => Frame::Cookie(r.bytes("cookie", MAX_COOKIE)?),
            ty::HANDSHAKE => Frame::Handshake(r.bytes("handshake", MAX_HANDSHAKE)?),
            ty::HANDSHAKE_REPLY => Frame::HandshakeReply(r.bytes("handshake", MAX_HANDSHAKE)?),
            ty::SEND => Frame::Send(Send {
                seq: r.nonzero("seq")?,
                to: r.varint()?,
                conv: r.varint()?,
                msg_type: r.varint()?,
                payload: r.bytes("payload", MAX_PAYLOAD)?,
            }),
            ty::DELIVER => Frame::Deliver(decode_deliver(r)?),
            ty::ACK => Frame::Ack(decode_ack(r)?),
            ty::READ => Frame::Read(Read {
                seq: r.nonzero("seq")?,
                conv: r.varint()?,
                peer: r.varint()?,
                target_device: r.varint_u32("target_device")?,
                target_seq: r.nonzero("target_seq")?,
            }),
            ty::RECALL => Frame::Recall(Recall {
                seq: r.nonzero("seq")?,
                to: r.varint()?,
                conv: r.varint()?,
                target_seq: r.nonzero("target_seq")?,
            }),
            ty::PULL => Frame::Pull(Pull {
                request_id: r.varint()?,
                after: r.varint()?,
                max_entries: r.varint()?,
            }),
            ty::PAGE_END => Frame::PageEnd(PageEnd {
                request_id: r.varint()?,
                last: r.varint()?,
                end: r.flag("end")?,
                head: r.varint()?,
            }),
            ty::SUMMARY_REQUEST => Frame::SummaryRequest(SummaryRequest {
                request_id: r.varint()?,
                cursor: r.varint()?,
                max_convs: r.varint()?,
            }),
            ty::SUMMARY => Frame::Summary(decode_summary(r)?),
            ty::SUMMARY_END => Frame::SummaryEnd(SummaryEnd {
                request_id: r.varint()?,
                next_cursor: r.varint()?,
                conv_count: r.varint()?,
                total_unread: r.varint()?,
                head: r.varint()?,
            }),
            ty::KICK => Frame::Kick(r.varint()?),
            ty::NOTIFY => Frame::Notify(r.varint()?),
            ty::ERROR => Frame::Error(ErrorFrame {
                code: r.varint()?,
                frame_type: r.u8()?,
                seq: r.varint()?,
                reason: r.text("reason", MAX_REASON)?,
            }),
            ty::LOGOUT => Frame::Logout,
            ty::POST => Frame::Post(Post::decode(r)?),
            ty::MARK_READ => Frame::MarkRead(MarkRead::decode(r)?),
            ty::RETRACT => Frame::Retract(Retract::decode(r)?),
            ty::DELETE => Frame::Delete(Delete::decode(r)?),
            ty::ENTRY => Frame::Entry(Entry::decode(r)?),
            ty::LIST => Frame::List(ListRequest::decode(r)?),
            ty::LIST_ITEM => Frame::ListItem(ListItem::decode(r)?),
            ty::LIST_END => Frame::ListEnd(ListEnd::decode(r)?),
            ty::HISTORY => Frame::History(HistoryRequest::decode(r)?),
            ty::RECORD => Frame::Record(Record::decode(r)?),
            ty::HISTORY_END => Frame::HistoryEnd(HistoryEnd::decode(r)?),
            ty::GROUP_OP => Frame::GroupOp(GroupOp::decode(r)?),
            ty::MEMBERS => Frame::Members(MembersRequest::decode(r)?),
            ty::MEMBER => Frame::Member(Member::decode(r)?),
            ty::MEMBERS_END => Frame::MembersEnd(MembersEnd::decode(r)?),
            ty::READ_COUNTS => Frame::ReadCountsRequest(ReadCountsRequest::decode(r)?),
            ty::READ_COUNTS_ANSWER => Frame::ReadCounts(ReadCounts::decode(r)?),
            // An extension frame this version knows: held to its own bound.
            // It lies inside the extension range, and this arm comes first.
            ty::ADDRESS_TOKEN => Frame::AddressToken(r.bytes("address_token", MAX_COOKIE)?),
            ty::EXTENSION_FIRST..=ty::EXTENSION_LAST => Frame::Extension {
                ty: t,
                body: r.bytes("extension", MAX_EXTENSION)?,
            },
            other => return Err(DecodeError::UnknownFrame(other)),
        })
    }
}

fn decode_deliver(r: &mut Reader) -> Result<Deliver, DecodeError> {
    let seq = r.nonzero("seq")?;
    let conv = r.varint()?;
    let from_user = r.varint()?;
    let from_device = r.varint_u32("from_device")?;
    let from_seq = r.varint()?;
    let time_ms = r.varint()?;
    let body = match r.u8()? {
        0 => EntryBody::Message {
            msg_type: r.varint()?,
            payload: r.bytes("payload", MAX_PAYLOAD)?,
        },
        1 => EntryBody::Receipt {
            status: match r.u8()? {
                1 => ReceiptStatus::Delivered,
                2 => ReceiptStatus::Read,
                _ => return Err(DecodeError::InvalidValue { field: "status" }),
            },
            target_device: r.varint_u32("target_device")?,
            target_seq: r.nonzero("target_seq")?,
        },
        2 => EntryBody::Recall {
            target_device: r.varint_u32("target_device")?,
            target_seq: r.nonzero("target_seq")?,
        },
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "entry kind",
            })
        }
    };
    Ok(Deliver {
        seq,
        conv,
        from_user,
        from_device,
        from_seq,
        time_ms,
        body,
    })
}

fn decode_ack(r: &mut Reader) -> Result<Ack, DecodeError> {
    let receiver_online = r.flag("ack flags")?;
    let cumulative = r.varint()?;
    let delay_us = r.varint()?;
    let count = r.varint()?;
    if count > MAX_ACK_RANGES as u64 {
        return Err(DecodeError::TooLong {
            field: "ack ranges",
            len: count,
            max: MAX_ACK_RANGES,
        });
    }
    let mut ranges = Vec::with_capacity(count as usize);
    let mut prev_end = cumulative;
    for i in 0..count {
        let gap = r.varint()?;
        let len = r.varint()?;
        if i > 0 && gap == 0 {
            // Touching ranges must be merged by the encoder.
            return Err(DecodeError::InvalidValue { field: "ack gap" });
        }
        let start = prev_end
            .checked_add(1)
            .and_then(|s| s.checked_add(gap))
            .filter(|s| *s <= varint::MAX)
            .ok_or(DecodeError::InvalidValue { field: "ack gap" })?;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= varint::MAX)
            .ok_or(DecodeError::InvalidValue { field: "ack range" })?;
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

fn decode_summary(r: &mut Reader) -> Result<Summary, DecodeError> {
    let request_id = r.varint()?;
    let conv = r.varint()?;
    let unread = r.varint()?;
    let first_unread_seq = r.varint()?;
    let first_unread_time_ms = r.varint()?;
    let last_seq = r.varint()?;
    let count = r.u8()?;
    if usize::from(count) > MAX_PREVIEWS {
        return Err(DecodeError::TooLong {
            field: "previews",
            len: count.into(),
            max: MAX_PREVIEWS,
        });
    }
    let mut previews = Vec::with_capacity(count.into());
    for _ in 0..count {
        previews.push(Preview {
            seq: r.varint()?,
            from_user: r.varint()?,
            time_ms: r.varint()?,
            msg_type: r.varint()?,
            head: r.bytes("preview", MAX_PREVIEW)?,
        });
    }
    Ok(Summary {
        request_id,
        conv,
        unread,
        first_unread_seq,
        first_unread_time_ms,
        last_seq,
        previews,
    })
}
