//! Encoding and decoding of the version 2 conversation operations and the
//! sync-timeline ENTRY (`conversation.rs`). The type byte is written and read
//! by the frame codec; these handle the fields after it, with the same rules:
//! no panic on any input, every length bounded before use.

use bytes::BufMut;

use super::conversation::*;
use super::error::{DecodeError, EncodeError};
use super::fields::{bytes_len, check, put_bytes};
use super::frame::ReceiptStatus;
use super::limits::MAX_PAYLOAD;
use super::reader::Reader;
use super::varint;

pub(super) fn v(x: u64) -> usize {
    varint::len(x)
}

pub(super) fn put(out: &mut impl BufMut, x: u64) {
    varint::put(out, x);
}

impl ConvRef {
    /// Encoded size.
    pub fn encoded_len(&self) -> usize {
        1 + v(self.id)
    }

    /// Appends `kind u8, id varint`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.kind as u8);
        put(out, self.id);
    }

    /// Reads a conversation reference.
    pub fn decode(r: &mut Reader) -> Result<ConvRef, DecodeError> {
        let kind =
            ConvKind::from_u8(r.u8()?).ok_or(DecodeError::InvalidValue { field: "conv kind" })?;
        Ok(ConvRef {
            kind,
            id: r.varint()?,
        })
    }
}

fn scope(r: &mut Reader) -> Result<DeleteScope, DecodeError> {
    match r.u8()? {
        1 => Ok(DeleteScope::Conversation),
        2 => Ok(DeleteScope::Message),
        _ => Err(DecodeError::InvalidValue {
            field: "delete scope",
        }),
    }
}

fn status(r: &mut Reader) -> Result<ReceiptStatus, DecodeError> {
    match r.u8()? {
        1 => Ok(ReceiptStatus::Delivered),
        2 => Ok(ReceiptStatus::Read),
        _ => Err(DecodeError::InvalidValue { field: "status" }),
    }
}

impl Post {
    pub(super) fn validate(&self) -> Result<(), EncodeError> {
        check("payload", self.payload.len(), MAX_PAYLOAD)
    }

    pub(super) fn encoded_len(&self) -> usize {
        v(self.seq)
            + self.conv.encoded_len()
            + v(self.topic)
            + v(self.msg_type)
            + bytes_len(&self.payload)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.seq);
        self.conv.encode(out);
        put(out, self.topic);
        put(out, self.msg_type);
        put_bytes(out, &self.payload);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<Post, DecodeError> {
        Ok(Post {
            seq: r.nonzero("seq")?,
            conv: ConvRef::decode(r)?,
            topic: r.varint()?,
            msg_type: r.varint()?,
            payload: r.bytes("payload", MAX_PAYLOAD)?,
        })
    }
}

impl MarkRead {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.seq)
            + self.conv.encoded_len()
            + v(self.up_to)
            + v(self.receipt_device.into())
            + v(self.receipt_seq)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.seq);
        self.conv.encode(out);
        put(out, self.up_to);
        put(out, self.receipt_device.into());
        put(out, self.receipt_seq);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<MarkRead, DecodeError> {
        Ok(MarkRead {
            seq: r.nonzero("seq")?,
            conv: ConvRef::decode(r)?,
            up_to: r.varint()?,
            receipt_device: r.varint_u32("receipt_device")?,
            receipt_seq: r.varint()?,
        })
    }
}

impl Retract {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.seq) + self.conv.encoded_len() + v(self.target)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.seq);
        self.conv.encode(out);
        put(out, self.target);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<Retract, DecodeError> {
        Ok(Retract {
            seq: r.nonzero("seq")?,
            conv: ConvRef::decode(r)?,
            target: r.nonzero("target")?,
        })
    }
}

impl Delete {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.seq) + self.conv.encoded_len() + 1 + v(self.target)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.seq);
        self.conv.encode(out);
        out.put_u8(self.scope as u8);
        put(out, self.target);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<Delete, DecodeError> {
        Ok(Delete {
            seq: r.nonzero("seq")?,
            conv: ConvRef::decode(r)?,
            scope: scope(r)?,
            target: r.varint()?,
        })
    }
}

impl Entry {
    pub(super) fn validate(&self) -> Result<(), EncodeError> {
        match &self.body {
            SyncBody::Message { payload, .. } => check("payload", payload.len(), MAX_PAYLOAD),
            _ => Ok(()),
        }
    }

    pub(super) fn encoded_len(&self) -> usize {
        v(self.seq)
            + self.conv.encoded_len()
            + v(self.conv_seq)
            + v(self.topic)
            + v(self.from_user)
            + v(self.from_device.into())
            + v(self.from_seq)
            + v(self.time_ms)
            + 1
            + match &self.body {
                SyncBody::Message { msg_type, payload } => v(*msg_type) + bytes_len(payload),
                SyncBody::Receipt {
                    target_device,
                    target_seq,
                    ..
                } => 1 + v((*target_device).into()) + v(*target_seq),
                SyncBody::Recall {
                    target_device,
                    target_seq,
                } => v((*target_device).into()) + v(*target_seq),
                SyncBody::Read => 0,
                SyncBody::Deleted { .. } => 1,
                SyncBody::Member(e) => e.encoded_len(),
            }
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.seq);
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
            SyncBody::Message { msg_type, payload } => {
                out.put_u8(0);
                put(out, *msg_type);
                put_bytes(out, payload);
            }
            SyncBody::Receipt {
                status,
                target_device,
                target_seq,
            } => {
                out.put_u8(1);
                out.put_u8(*status as u8);
                put(out, (*target_device).into());
                put(out, *target_seq);
            }
            SyncBody::Recall {
                target_device,
                target_seq,
            } => {
                out.put_u8(2);
                put(out, (*target_device).into());
                put(out, *target_seq);
            }
            SyncBody::Read => out.put_u8(3),
            SyncBody::Deleted { scope } => {
                out.put_u8(4);
                out.put_u8(*scope as u8);
            }
            SyncBody::Member(e) => {
                out.put_u8(5);
                e.encode(out);
            }
        }
    }

    pub(super) fn decode(r: &mut Reader) -> Result<Entry, DecodeError> {
        let seq = r.nonzero("seq")?;
        let conv = ConvRef::decode(r)?;
        let conv_seq = r.varint()?;
        let topic = r.varint()?;
        let from_user = r.varint()?;
        let from_device = r.varint_u32("from_device")?;
        let from_seq = r.varint()?;
        let time_ms = r.varint()?;
        let body = match r.u8()? {
            0 => SyncBody::Message {
                msg_type: r.varint()?,
                payload: r.bytes("payload", MAX_PAYLOAD)?,
            },
            1 => SyncBody::Receipt {
                status: status(r)?,
                target_device: r.varint_u32("target_device")?,
                target_seq: r.nonzero("target_seq")?,
            },
            2 => SyncBody::Recall {
                target_device: r.varint_u32("target_device")?,
                target_seq: r.nonzero("target_seq")?,
            },
            3 => SyncBody::Read,
            4 => SyncBody::Deleted { scope: scope(r)? },
            5 => SyncBody::Member(super::GroupEvent::decode(r)?),
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "entry kind",
                })
            }
        };
        Ok(Entry {
            seq,
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
