//! The client's optional durable state in RocksDB: unsent operations (with
//! their uplink sequence once known) and the inbox checkpoint. An app that
//! restarts loses no unsent message, and replays each under its old
//! sequence, so the server recognises what it had already stored.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{WriteOptions, DB};
use tern_core::client::Outgoing;
use tern_core::wire::{encode_to_bytes, Frame, Reader};

/// Errors of the durable client state.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// RocksDB failed.
    #[error("client state store: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored row does not decode.
    #[error("client state store holds a corrupt row")]
    Corrupt,
}

/// Durable outbox and checkpoint.
pub struct Outbox {
    pub(super) db: Arc<DB>,
}

const CHECKPOINT: &[u8] = b"\xffcheckpoint";
const ADDRESS_TOKEN: &[u8] = b"\xffaddress_token";

pub(super) fn sync() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// One stored operation: its local key, its sequence (0: not yet assigned).
pub struct Row {
    /// Local key, increasing with submission order.
    pub key: u64,
    /// Uplink sequence, 0 until the server gave a base.
    pub seq: u64,
    /// The operation.
    pub op: Outgoing,
}

pub(super) fn encode_row(seq: u64, op: &Outgoing) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.extend_from_slice(&encode_to_bytes(&op.frame(seq.max(1))));
    v
}

fn decode(raw: &[u8]) -> Option<(u64, Outgoing)> {
    let seq = u64::from_be_bytes(raw.get(..8)?.try_into().ok()?);
    let frame = Frame::decode(&mut Reader::new(Bytes::copy_from_slice(raw.get(8..)?))).ok()?;
    let op = match frame {
        Frame::Send(s) => Outgoing::Send {
            to: s.to,
            conv: s.conv,
            msg_type: s.msg_type,
            payload: s.payload,
        },
        Frame::Read(r) => Outgoing::Read {
            conv: r.conv,
            peer: r.peer,
            target_device: r.target_device,
            target_seq: r.target_seq,
        },
        Frame::Recall(r) => Outgoing::Recall {
            to: r.to,
            conv: r.conv,
            target_seq: r.target_seq,
        },
        Frame::Post(p) => Outgoing::Post {
            conv: p.conv,
            topic: p.topic,
            msg_type: p.msg_type,
            payload: p.payload,
        },
        Frame::MarkRead(m) => Outgoing::MarkRead {
            conv: m.conv,
            up_to: m.up_to,
            receipt_device: m.receipt_device,
            receipt_seq: m.receipt_seq,
        },
        Frame::Retract(r) => Outgoing::Retract {
            conv: r.conv,
            target: r.target,
        },
        Frame::Delete(d) => Outgoing::Delete {
            conv: d.conv,
            scope: d.scope,
            target: d.target,
        },
        Frame::GroupOp(g) => Outgoing::Group {
            group: g.group,
            action: g.action,
            users: g.users,
        },
        _ => return None,
    };
    Some((seq, op))
}

impl Outbox {
    /// Opens (or creates) the state under `dir`.
    pub fn open(dir: &Path) -> Result<Outbox, OutboxError> {
        Ok(Outbox {
            db: super::state::open(dir)?,
        })
    }

    /// The database, shared with the local history.
    pub(super) fn db(&self) -> Arc<DB> {
        self.db.clone()
    }

    /// Every stored operation, oldest first.
    pub fn rows(&self) -> Result<Vec<Row>, OutboxError> {
        let mut out = Vec::new();
        for item in self.db.iterator(rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            // Operation rows have 8-byte keys; the checkpoint and the
            // keyed records (`keyed.rs`) have longer ones.
            if k.len() != 8 {
                continue;
            }
            let key = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| OutboxError::Corrupt)?);
            let (seq, op) = decode(&v).ok_or(OutboxError::Corrupt)?;
            out.push(Row { key, seq, op });
        }
        Ok(out)
    }

    /// Stores an operation durably before it is sent.
    pub fn put(&self, key: u64, seq: u64, op: &Outgoing) -> Result<(), OutboxError> {
        Ok(self
            .db
            .put_opt(key.to_be_bytes(), encode_row(seq, op), &sync())?)
    }

    /// Forgets an operation the server has settled.
    pub fn remove(&self, key: u64) -> Result<(), OutboxError> {
        Ok(self.db.delete_opt(key.to_be_bytes(), &sync())?)
    }

    /// The saved (epoch, checkpoint).
    pub fn checkpoint(&self) -> Result<(u64, u64), OutboxError> {
        Ok(match self.db.get(CHECKPOINT)? {
            Some(v) if v.len() == 16 => (
                u64::from_be_bytes(v[..8].try_into().map_err(|_| OutboxError::Corrupt)?),
                u64::from_be_bytes(v[8..].try_into().map_err(|_| OutboxError::Corrupt)?),
            ),
            Some(_) => return Err(OutboxError::Corrupt),
            None => (0, 0),
        })
    }

    /// The address token the server gave last (`proto-spec/address-tokens.md`),
    /// if one is saved and has the length a token may have.
    pub fn address_token(&self) -> Result<Option<Bytes>, OutboxError> {
        Ok(self
            .db
            .get(ADDRESS_TOKEN)?
            .filter(|v| !v.is_empty() && v.len() <= tern_core::wire::limits::MAX_COOKIE)
            .map(Bytes::from))
    }

    /// Keeps the address token for the next start. Not synced: losing it
    /// costs one RETRY round trip at the next login, nothing else.
    pub fn set_address_token(&self, token: &[u8]) -> Result<(), OutboxError> {
        Ok(self.db.put(ADDRESS_TOKEN, token)?)
    }

    /// Saves (epoch, checkpoint) durably.
    pub fn set_checkpoint(&self, epoch: u64, seq: u64) -> Result<(), OutboxError> {
        let mut v = epoch.to_be_bytes().to_vec();
        v.extend_from_slice(&seq.to_be_bytes());
        Ok(self.db.put_opt(CHECKPOINT, v, &sync())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::wire::{ConvRef, DeleteScope};

    /// Every operation a client can queue comes back from the state folder
    /// as it went in: a restart replays version 2 operations too.
    #[test]
    fn every_operation_survives_a_restart() {
        let conv = ConvRef::direct(2);
        let ops = vec![
            Outgoing::Send {
                to: 2,
                conv: 7,
                msg_type: 1,
                payload: Bytes::from_static(b"a"),
            },
            Outgoing::Read {
                conv: 7,
                peer: 2,
                target_device: 1,
                target_seq: 3,
            },
            Outgoing::Recall {
                to: 2,
                conv: 7,
                target_seq: 1,
            },
            Outgoing::Post {
                conv,
                topic: 4,
                msg_type: 0,
                payload: Bytes::from_static(b"b"),
            },
            Outgoing::MarkRead {
                conv,
                up_to: 9,
                receipt_device: 1,
                receipt_seq: 8,
            },
            Outgoing::Retract { conv, target: 5 },
            Outgoing::Delete {
                conv,
                scope: DeleteScope::Conversation,
                target: 0,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        {
            let o = Outbox::open(dir.path()).unwrap();
            for (i, op) in ops.iter().enumerate() {
                o.put(i as u64 + 1, i as u64 * 10, op).unwrap();
            }
            o.set_checkpoint(3, 4).unwrap();
        }
        let o = Outbox::open(dir.path()).unwrap();
        let rows = o.rows().unwrap();
        let back: Vec<_> = rows.iter().map(|r| r.op.clone()).collect();
        assert_eq!(back, ops);
        assert_eq!(rows[4].seq, 40);
        assert_eq!(o.checkpoint().unwrap(), (3, 4));
    }
}
