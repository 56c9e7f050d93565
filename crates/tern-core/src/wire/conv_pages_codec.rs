//! Encoding and decoding of the version 2 requests and answers: the
//! conversation list (LIST, LIST_ITEM, LIST_END) and history pages
//! (HISTORY, RECORD, HISTORY_END).

use bytes::BufMut;

use super::conv_ops_codec::{put, v};
use super::conversation::*;
use super::error::{DecodeError, EncodeError};
use super::fields::{bytes_len, check, put_bytes};
use super::limits::{MAX_PAYLOAD, MAX_PREVIEW};
use super::reader::Reader;

impl ListRequest {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id) + v(self.since) + v(self.max_items) + 1
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.request_id);
        put(out, self.since);
        put(out, self.max_items);
        out.put_u8(self.preview_len);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<ListRequest, DecodeError> {
        Ok(ListRequest {
            request_id: r.varint()?,
            since: r.varint()?,
            max_items: r.varint()?,
            preview_len: r.u8()?,
        })
    }
}

const LIST_HIDDEN: u8 = 0x01;
const LIST_PREVIEW: u8 = 0x02;
const LIST_RECALLED: u8 = 0x04;

impl ListItem {
    pub(super) fn validate(&self) -> Result<(), EncodeError> {
        match &self.preview {
            Some(p) => check("preview", p.head.len(), MAX_PREVIEW),
            None => Ok(()),
        }
    }

    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id)
            + self.conv.encoded_len()
            + v(self.version)
            + 1
            + v(self.last_seq)
            + v(self.read_seq)
            + v(self.unread)
            + v(self.cleared_to)
            + self.preview.as_ref().map_or(0, |p| {
                v(p.from_user) + v(p.age_s) + v(p.msg_type) + bytes_len(&p.head)
            })
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.request_id);
        self.conv.encode(out);
        put(out, self.version);
        let mut flags = 0;
        if self.hidden {
            flags |= LIST_HIDDEN;
        }
        if let Some(p) = &self.preview {
            flags |= LIST_PREVIEW;
            if p.recalled {
                flags |= LIST_RECALLED;
            }
        }
        out.put_u8(flags);
        for x in [self.last_seq, self.read_seq, self.unread, self.cleared_to] {
            put(out, x);
        }
        if let Some(p) = &self.preview {
            put(out, p.from_user);
            put(out, p.age_s);
            put(out, p.msg_type);
            put_bytes(out, &p.head);
        }
    }

    pub(super) fn decode(r: &mut Reader) -> Result<ListItem, DecodeError> {
        let request_id = r.varint()?;
        let conv = ConvRef::decode(r)?;
        let version = r.varint()?;
        let flags = r.u8()?;
        let preview_flags = LIST_PREVIEW | LIST_RECALLED;
        if flags & !(LIST_HIDDEN | preview_flags) != 0 || flags & preview_flags == LIST_RECALLED {
            return Err(DecodeError::InvalidValue {
                field: "list flags",
            });
        }
        let (last_seq, read_seq, unread, cleared_to) =
            (r.varint()?, r.varint()?, r.varint()?, r.varint()?);
        let preview = if flags & LIST_PREVIEW != 0 {
            Some(ListPreview {
                from_user: r.varint()?,
                age_s: r.varint()?,
                msg_type: r.varint()?,
                recalled: flags & LIST_RECALLED != 0,
                head: r.bytes("preview", MAX_PREVIEW)?,
            })
        } else {
            None
        };
        Ok(ListItem {
            request_id,
            conv,
            version,
            hidden: flags & LIST_HIDDEN != 0,
            last_seq,
            read_seq,
            unread,
            cleared_to,
            preview,
        })
    }
}

impl ListEnd {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id)
            + v(self.items)
            + v(self.next_since)
            + v(self.list_version)
            + 1
            + v(self.total_unread)
            + v(self.server_time_ms)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        for x in [
            self.request_id,
            self.items,
            self.next_since,
            self.list_version,
        ] {
            put(out, x);
        }
        out.put_u8(u8::from(self.complete));
        put(out, self.total_unread);
        put(out, self.server_time_ms);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<ListEnd, DecodeError> {
        Ok(ListEnd {
            request_id: r.varint()?,
            items: r.varint()?,
            next_since: r.varint()?,
            list_version: r.varint()?,
            complete: r.flag("complete")?,
            total_unread: r.varint()?,
            server_time_ms: r.varint()?,
        })
    }
}

impl HistoryRequest {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id) + self.conv.encoded_len() + v(self.before) + v(self.max)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.request_id);
        self.conv.encode(out);
        put(out, self.before);
        put(out, self.max);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<HistoryRequest, DecodeError> {
        Ok(HistoryRequest {
            request_id: r.varint()?,
            conv: ConvRef::decode(r)?,
            before: r.varint()?,
            max: r.varint()?,
        })
    }
}

impl Record {
    pub(super) fn validate(&self) -> Result<(), EncodeError> {
        match &self.body {
            RecordBody::Message { payload, .. } => check("payload", payload.len(), MAX_PAYLOAD),
            RecordBody::Recalled { .. } | RecordBody::Member(_) => Ok(()),
        }
    }

    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id)
            + self.conv.encoded_len()
            + v(self.conv_seq)
            + v(self.topic)
            + v(self.from_user)
            + v(self.from_device.into())
            + v(self.from_seq)
            + v(self.time_ms)
            + 1
            + match &self.body {
                RecordBody::Message { msg_type, payload } => v(*msg_type) + bytes_len(payload),
                RecordBody::Recalled { msg_type } => v(*msg_type),
                RecordBody::Member(e) => e.encoded_len(),
            }
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.request_id);
        self.conv.encode(out);
        for x in [
            self.conv_seq,
            self.topic,
            self.from_user,
            self.from_device.into(),
            self.from_seq,
            self.time_ms,
        ] {
            put(out, x);
        }
        match &self.body {
            RecordBody::Message { msg_type, payload } => {
                out.put_u8(0);
                put(out, *msg_type);
                put_bytes(out, payload);
            }
            RecordBody::Recalled { msg_type } => {
                out.put_u8(1);
                put(out, *msg_type);
            }
            RecordBody::Member(e) => {
                out.put_u8(2);
                e.encode(out);
            }
        }
    }

    pub(super) fn decode(r: &mut Reader) -> Result<Record, DecodeError> {
        let request_id = r.varint()?;
        let conv = ConvRef::decode(r)?;
        let conv_seq = r.nonzero("conv_seq")?;
        let topic = r.varint()?;
        let from_user = r.varint()?;
        let from_device = r.varint_u32("from_device")?;
        let from_seq = r.varint()?;
        let time_ms = r.varint()?;
        let body = match r.u8()? {
            0 => RecordBody::Message {
                msg_type: r.varint()?,
                payload: r.bytes("payload", MAX_PAYLOAD)?,
            },
            1 => RecordBody::Recalled {
                msg_type: r.varint()?,
            },
            2 => RecordBody::Member(super::GroupEvent::decode(r)?),
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "record kind",
                })
            }
        };
        Ok(Record {
            request_id,
            conv,
            conv_seq,
            topic,
            from_user,
            from_device,
            from_seq,
            time_ms,
            body,
        })
    }
}

impl HistoryEnd {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id)
            + self.conv.encoded_len()
            + v(self.low)
            + v(self.high)
            + v(self.floor)
            + v(self.count)
            + v(self.last_seq)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.request_id);
        self.conv.encode(out);
        for x in [self.low, self.high, self.floor, self.count, self.last_seq] {
            put(out, x);
        }
    }

    pub(super) fn decode(r: &mut Reader) -> Result<HistoryEnd, DecodeError> {
        Ok(HistoryEnd {
            request_id: r.varint()?,
            conv: ConvRef::decode(r)?,
            low: r.varint()?,
            high: r.varint()?,
            floor: r.varint()?,
            count: r.varint()?,
            last_seq: r.varint()?,
        })
    }
}
