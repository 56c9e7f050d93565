//! Keyed operations: an application's own record kept in the client's
//! durable outbox, in the same atomic write as the operation itself.
//!
//! An application that has its own notion of "accepted" (the sidecar's
//! idempotency keys) cannot keep that in a second store: a crash between
//! the two writes either loses the operation or sends it twice. So the
//! record (an opaque `tag`) is written with the operation row, and when the
//! server settles the operation the row is replaced, again atomically, by a
//! settled row holding the tag and the outcome. Settled rows stay until the
//! application forgets them ([`ClientHandle::forget_keyed`]); so after any
//! crash the application finds every accepted operation either pending or
//! settled, never neither.
//!
//! [`ClientHandle::forget_keyed`]: super::ClientHandle::forget_keyed

use bytes::Bytes;
use rocksdb::WriteBatch;
use tern_core::client::Outgoing;

use super::outbox::{encode_row, sync, Outbox, OutboxError};

/// Longest tag accepted, in bytes.
pub const MAX_TAG: usize = 4096;

const TAG: &[u8] = b"\xfet";
const SETTLED: &[u8] = b"\xfes";

fn tag_key(key: u64) -> Vec<u8> {
    [TAG, &key.to_be_bytes()].concat()
}

fn settled_key(key: u64) -> Vec<u8> {
    [SETTLED, &key.to_be_bytes()].concat()
}

/// How the server settled a keyed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Stored durably under uplink sequence `seq`.
    Stored {
        /// Its uplink sequence.
        seq: u64,
        /// A device of the receiver was online (hint; not kept across restarts).
        receiver_online: bool,
    },
    /// Refused for good with a protocol error code.
    Rejected {
        /// Its uplink sequence.
        seq: u64,
        /// The error code.
        code: u64,
    },
}

/// Where a keyed operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedState {
    /// In the durable outbox, not settled yet; `seq` is 0 until numbered.
    Pending {
        /// Its uplink sequence (0: not numbered yet).
        seq: u64,
    },
    /// Settled by the server.
    Settled(Settled),
}

/// A keyed operation as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRecord {
    /// The library's key for it, increasing with submission order.
    pub id: u64,
    /// The application's record.
    pub tag: Bytes,
    /// Where it stands.
    pub state: KeyedState,
}

/// A keyed operation the server just settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedOutcome {
    /// The library's key for it.
    pub id: u64,
    /// The application's record.
    pub tag: Bytes,
    /// The outcome.
    pub settled: Settled,
}

fn encode_settled(s: &Settled, tag: &[u8]) -> Vec<u8> {
    let (kind, seq, x) = match *s {
        Settled::Stored {
            seq,
            receiver_online,
        } => (1u8, seq, receiver_online as u64),
        Settled::Rejected { seq, code } => (2u8, seq, code),
    };
    let mut v = vec![kind];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&x.to_be_bytes());
    v.extend_from_slice(tag);
    v
}

fn decode_settled(raw: &[u8]) -> Option<(Settled, Bytes)> {
    let seq = u64::from_be_bytes(raw.get(1..9)?.try_into().ok()?);
    let x = u64::from_be_bytes(raw.get(9..17)?.try_into().ok()?);
    let s = match raw.first()? {
        1 => Settled::Stored {
            seq,
            receiver_online: x == 1,
        },
        2 => Settled::Rejected { seq, code: x },
        _ => return None,
    };
    Some((s, Bytes::copy_from_slice(&raw[17..])))
}

fn key_of(raw: &[u8], prefix: &[u8]) -> Result<u64, OutboxError> {
    raw.get(prefix.len()..)
        .and_then(|k| k.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(OutboxError::Corrupt)
}

impl Outbox {
    /// Stores an operation and its tag in one synced write.
    pub(super) fn put_keyed(
        &self,
        key: u64,
        seq: u64,
        op: &Outgoing,
        tag: &[u8],
    ) -> Result<(), OutboxError> {
        let mut b = WriteBatch::default();
        b.put(key.to_be_bytes(), encode_row(seq, op));
        b.put(tag_key(key), tag);
        Ok(self.db.write_opt(b, &sync())?)
    }

    /// Removes a keyed operation that could not be queued (both rows).
    pub(super) fn remove_keyed(&self, key: u64) -> Result<(), OutboxError> {
        let mut b = WriteBatch::default();
        b.delete(key.to_be_bytes());
        b.delete(tag_key(key));
        Ok(self.db.write_opt(b, &sync())?)
    }

    /// Replaces a keyed operation by its settled row in one synced write.
    pub(super) fn settle_keyed(
        &self,
        key: u64,
        settled: &Settled,
        tag: &[u8],
    ) -> Result<(), OutboxError> {
        let mut b = WriteBatch::default();
        b.delete(key.to_be_bytes());
        b.delete(tag_key(key));
        b.put(settled_key(key), encode_settled(settled, tag));
        Ok(self.db.write_opt(b, &sync())?)
    }

    /// Tags of pending operations, by key.
    pub(super) fn tags(&self) -> Result<Vec<(u64, Bytes)>, OutboxError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator(TAG) {
            let (k, v) = item?;
            if !k.starts_with(TAG) {
                break;
            }
            out.push((key_of(&k, TAG)?, Bytes::copy_from_slice(&v)));
        }
        Ok(out)
    }

    /// Settled rows, oldest first.
    pub(super) fn settled(&self) -> Result<Vec<(u64, Settled, Bytes)>, OutboxError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator(SETTLED) {
            let (k, v) = item?;
            if !k.starts_with(SETTLED) {
                break;
            }
            let (s, tag) = decode_settled(&v).ok_or(OutboxError::Corrupt)?;
            out.push((key_of(&k, SETTLED)?, s, tag));
        }
        Ok(out)
    }

    /// Deletes settled rows. Not synced: a deletion lost in a crash only
    /// brings a settled row back.
    pub(super) fn forget_settled(&self, keys: &[u64]) -> Result<(), OutboxError> {
        let mut b = WriteBatch::default();
        for k in keys {
            b.delete(settled_key(*k));
        }
        Ok(self.db.write(b)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_rows_round_trip_and_replace_the_operation() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path()).unwrap();
        let op = Outgoing::Send {
            to: 2,
            conv: 1,
            msg_type: 0,
            payload: Bytes::from_static(b"x"),
        };
        o.put_keyed(7, 0, &op, b"tag-7").unwrap();
        o.put_keyed(8, 3, &op, b"tag-8").unwrap();
        assert_eq!(o.rows().unwrap().len(), 2, "tags are not operation rows");
        assert_eq!(o.tags().unwrap()[0], (7, Bytes::from_static(b"tag-7")));
        let s = Settled::Rejected { seq: 3, code: 9 };
        o.settle_keyed(8, &s, b"tag-8").unwrap();
        assert_eq!(o.rows().unwrap().len(), 1);
        assert_eq!(o.tags().unwrap().len(), 1);
        assert_eq!(
            o.settled().unwrap(),
            vec![(8, s, Bytes::from_static(b"tag-8"))]
        );
        o.forget_settled(&[8]).unwrap();
        assert!(o.settled().unwrap().is_empty());
        assert_eq!(o.checkpoint().unwrap(), (0, 0));
    }
}
