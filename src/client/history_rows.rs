//! Rows of the local history (`history_store.rs`) and where they live: the
//! state folder's RocksDB, or memory for a client without one.
//!
//! Layout in the state folder (`state.rs` opens the column families):
//!
//! | column family | key | value |
//! |---|---|---|
//! | `conv_records` | `kind u8, conv id u64 BE, conv_seq u64 BE` | `0` + a RECORD frame, or `1` (hidden: deleted for this user) |
//! | `conv_state` | `kind u8, conv id u64 BE, b'h'` | held ranges: `floor, last_seq, (low, high)*`, each u64 BE |
//! | `conv_state` | `kind u8, conv id u64 BE, b'l'` | the conversation's last list item, a LIST_ITEM frame |
//! | `conv_state` | `0x00 "list_version"` | the list version last completed, u64 BE |
//!
//! Records and list items are stored as the wire frames they arrived in, so
//! decoding a row applies the wire's own limits (payload length, kinds).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{WriteBatch, DB};
use tern_core::client::Held;
use tern_core::conv::RangeSet;
use tern_core::wire::{encode_to_bytes, ConvKind, ConvRef, Frame, ListItem, Reader, Record};

use super::outbox::OutboxError;
use super::state::{CF_CONVS, CF_RECORDS};

/// One `conv_seq` of a conversation, as this device has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Slot {
    /// A message or a recall marker.
    Record(Record),
    /// Deleted for this user: left out of pages, never stored again.
    Hidden,
}

/// Key of the list version in `conv_state`.
const LIST_VERSION: &[u8] = b"\x00list_version";
/// Most ranges one held row may list (far more than a real device holds).
const MAX_RANGES: usize = 1 << 20;

fn conv_prefix(conv: ConvRef) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = conv.kind as u8;
    k[1..].copy_from_slice(&conv.id.to_be_bytes());
    k
}

fn record_key(conv: ConvRef, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..9].copy_from_slice(&conv_prefix(conv));
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn state_key(conv: ConvRef, tag: u8) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..9].copy_from_slice(&conv_prefix(conv));
    k[9] = tag;
    k
}

fn be(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

fn parse_conv(k: &[u8]) -> Option<ConvRef> {
    Some(ConvRef {
        kind: ConvKind::from_u8(*k.first()?)?,
        id: be(k.get(1..9)?)?,
    })
}

fn encode_slot(s: &Slot) -> Vec<u8> {
    match s {
        Slot::Record(r) => {
            let mut v = vec![0u8];
            v.extend_from_slice(&encode_to_bytes(&Frame::Record(r.clone())));
            v
        }
        Slot::Hidden => vec![1u8],
    }
}

fn decode_slot(v: &[u8]) -> Option<Slot> {
    match v.split_first()? {
        (0, rest) => match Frame::decode(&mut Reader::new(Bytes::copy_from_slice(rest))).ok()? {
            Frame::Record(r) => Some(Slot::Record(r)),
            _ => None,
        },
        (1, []) => Some(Slot::Hidden),
        _ => None,
    }
}

fn encode_held(h: &Held) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + 16 * h.ranges.ranges().len());
    v.extend_from_slice(&h.floor.to_be_bytes());
    v.extend_from_slice(&h.last_seq.to_be_bytes());
    for (a, b) in h.ranges.ranges() {
        v.extend_from_slice(&a.to_be_bytes());
        v.extend_from_slice(&b.to_be_bytes());
    }
    v
}

fn decode_held(v: &[u8]) -> Option<Held> {
    if v.len() < 16 || !(v.len() - 16).is_multiple_of(16) || (v.len() - 16) / 16 > MAX_RANGES {
        return None;
    }
    let pairs = v[16..]
        .chunks_exact(16)
        .map(|c| Some((be(&c[..8])?, be(&c[8..])?)))
        .collect::<Option<Vec<_>>>()?;
    Some(Held {
        floor: be(&v[..8])?,
        last_seq: be(&v[8..16])?,
        ranges: RangeSet::from_ranges(pairs),
    })
}

fn decode_item(v: &[u8]) -> Option<ListItem> {
    match Frame::decode(&mut Reader::new(Bytes::copy_from_slice(v))).ok()? {
        Frame::ListItem(i) => Some(i),
        _ => None,
    }
}

/// One change; a [`Batch`] of them is written atomically.
pub(super) enum Op {
    Put(ConvRef, u64, Slot),
    /// Removes the conversation's records at or below the floor.
    ClearThrough(ConvRef, u64),
    /// Forgets the conversation's records in `low..=high` (memory bound).
    Drop(ConvRef, u64, u64),
    Held(ConvRef, Held),
    Item(ListItem),
    ListVersion(u64),
}

/// Changes written together.
pub(super) type Batch = Vec<Op>;

/// What a state folder held when it was opened.
#[derive(Default)]
pub(super) struct Loaded {
    pub held: HashMap<ConvRef, Held>,
    pub items: HashMap<ConvRef, ListItem>,
    pub list_version: u64,
}

/// Where the records are kept. The held ranges, list items and list
/// version are also kept in memory by the store; only a state folder
/// persists them.
pub(super) enum Rows {
    Rocks(Arc<DB>),
    /// `conv_seq` rows per conversation.
    Memory(BTreeMap<(ConvRef, u64), Slot>),
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, OutboxError> {
    db.cf_handle(name).ok_or(OutboxError::Corrupt)
}

impl Rows {
    /// Everything of `conv_state`, decoded.
    pub fn load(db: &DB) -> Result<Loaded, OutboxError> {
        let mut out = Loaded::default();
        for item in db.iterator_cf(cf(db, CF_CONVS)?, rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            if k.as_ref() == LIST_VERSION {
                out.list_version = be(&v).ok_or(OutboxError::Corrupt)?;
                continue;
            }
            let conv = parse_conv(&k).ok_or(OutboxError::Corrupt)?;
            match k.get(9..) {
                Some([b'h']) => {
                    out.held
                        .insert(conv, decode_held(&v).ok_or(OutboxError::Corrupt)?);
                }
                Some([b'l']) => {
                    out.items
                        .insert(conv, decode_item(&v).ok_or(OutboxError::Corrupt)?);
                }
                _ => return Err(OutboxError::Corrupt),
            }
        }
        Ok(out)
    }

    pub fn get(&self, conv: ConvRef, seq: u64) -> Result<Option<Slot>, OutboxError> {
        match self {
            Rows::Memory(m) => Ok(m.get(&(conv, seq)).cloned()),
            Rows::Rocks(db) => match db.get_cf(cf(db, CF_RECORDS)?, record_key(conv, seq))? {
                Some(v) => Ok(Some(decode_slot(&v).ok_or(OutboxError::Corrupt)?)),
                None => Ok(None),
            },
        }
    }

    /// The rows of `conv` in `low..=high`, ascending.
    pub fn range(
        &self,
        conv: ConvRef,
        low: u64,
        high: u64,
    ) -> Result<Vec<(u64, Slot)>, OutboxError> {
        if low > high {
            return Ok(Vec::new());
        }
        match self {
            Rows::Memory(m) => Ok(m
                .range((conv, low)..=(conv, high))
                .map(|((_, s), v)| (*s, v.clone()))
                .collect()),
            Rows::Rocks(db) => {
                let mut ro = rocksdb::ReadOptions::default();
                ro.set_iterate_upper_bound(record_key(conv, high.saturating_add(1)).to_vec());
                let from = record_key(conv, low);
                let mode = rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward);
                let mut out = Vec::new();
                for item in db.iterator_cf_opt(cf(db, CF_RECORDS)?, ro, mode) {
                    let (k, v) = item?;
                    let seq = k.get(9..).and_then(be).ok_or(OutboxError::Corrupt)?;
                    if seq > high {
                        break;
                    }
                    out.push((seq, decode_slot(&v).ok_or(OutboxError::Corrupt)?));
                }
                Ok(out)
            }
        }
    }

    /// Number of rows of `conv` (memory only: a state folder is unbounded).
    pub fn count(&self, conv: ConvRef) -> usize {
        match self {
            Rows::Memory(m) => m.range((conv, 0)..=(conv, u64::MAX)).count(),
            Rows::Rocks(_) => 0,
        }
    }

    /// Applies `batch` atomically: one RocksDB write (not synced: the
    /// next synced write, the checkpoint, makes it durable; a killed
    /// process loses nothing written).
    pub fn write(&mut self, batch: Batch) -> Result<(), OutboxError> {
        match self {
            Rows::Memory(m) => {
                for op in batch {
                    match op {
                        Op::Put(c, s, slot) => {
                            m.insert((c, s), slot);
                        }
                        Op::ClearThrough(c, floor) => {
                            let keep = m.split_off(&(c, floor.saturating_add(1)));
                            m.retain(|(rc, _), _| *rc != c);
                            m.extend(keep);
                        }
                        Op::Drop(c, low, high) => {
                            m.retain(|(rc, s), _| *rc != c || *s < low || *s > high)
                        }
                        Op::Held(..) | Op::Item(_) | Op::ListVersion(_) => {}
                    }
                }
                Ok(())
            }
            Rows::Rocks(db) => {
                let (records, convs) = (cf(db, CF_RECORDS)?, cf(db, CF_CONVS)?);
                let mut wb = WriteBatch::default();
                for op in batch {
                    match op {
                        Op::Put(c, s, slot) => {
                            wb.put_cf(records, record_key(c, s), encode_slot(&slot))
                        }
                        Op::ClearThrough(c, floor) => wb.delete_range_cf(
                            records,
                            record_key(c, 0),
                            record_key(c, floor.saturating_add(1)),
                        ),
                        Op::Drop(c, low, high) => wb.delete_range_cf(
                            records,
                            record_key(c, low),
                            record_key(c, high.saturating_add(1)),
                        ),
                        Op::Held(c, h) => wb.put_cf(convs, state_key(c, b'h'), encode_held(&h)),
                        Op::Item(i) => wb.put_cf(
                            convs,
                            state_key(i.conv, b'l'),
                            encode_to_bytes(&Frame::ListItem(i.clone())),
                        ),
                        Op::ListVersion(v) => wb.put_cf(convs, LIST_VERSION, v.to_be_bytes()),
                    }
                }
                Ok(db.write(wb)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::wire::RecordBody;

    #[test]
    fn rows_round_trip_and_garbage_is_refused() {
        let conv = ConvRef::direct(7);
        let r = Record {
            request_id: 0,
            conv,
            conv_seq: 3,
            topic: 1,
            from_user: 7,
            from_device: 2,
            from_seq: 9,
            time_ms: 1_700_000_000_000,
            body: RecordBody::Message {
                msg_type: 0,
                payload: Bytes::from_static(b"hi"),
            },
        };
        let slot = Slot::Record(r);
        assert_eq!(decode_slot(&encode_slot(&slot)), Some(slot));
        assert_eq!(decode_slot(&encode_slot(&Slot::Hidden)), Some(Slot::Hidden));
        assert_eq!(decode_slot(&[0, 0x2a, 1]), None, "truncated record");
        assert_eq!(decode_slot(&[1, 0]), None);
        assert_eq!(decode_slot(&[]), None);
        let h = Held {
            ranges: RangeSet::from_ranges([(1, 4), (9, 12)]),
            floor: 0,
            last_seq: 20,
        };
        assert_eq!(decode_held(&encode_held(&h)), Some(h));
        assert_eq!(decode_held(&[0; 17]), None);
        assert_eq!(parse_conv(&record_key(conv, 3)), Some(conv));
        assert_eq!(parse_conv(&[9; 9]), None, "unknown conversation kind");
    }
}
