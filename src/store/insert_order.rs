//! The order in which a [`WriteBatch`]'s operations go into the RocksDB
//! write batch.
//!
//! RocksDB's memtable is a skip list that remembers where its last insert
//! landed: a key just after the previous one is placed with a few
//! comparisons, a key elsewhere costs a search from the top (about
//! `log2(entries)` key comparisons). A commit batch interleaves many users
//! and conversations (entries are staged in the order messages arrive), so
//! nearly every insert was a full search. Inserting each run of
//! conversation records sorted by key turns those searches into short
//! steps. (Sync-timeline entries are grouped into rows per user by
//! `inbox_writer.rs`, already in key order.)
//!
//! Only puts of distinct keys are reordered, and only within a maximal run
//! of record puts: a put never crosses a trim, a deletion or an
//! operation of another kind, so the batch applies exactly as it would in
//! its own order (puts of distinct keys commute; the sort is stable, so
//! two puts of one key would keep their order).

use tern_core::store::WriteOp;

/// Which run an operation may be reordered within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// A conversation record (key: conversation, conv_seq).
    Record,
    /// Anything else: stays exactly where it is.
    Fixed,
}

fn run_of(op: &WriteOp) -> Run {
    match op {
        WriteOp::PutRecord { .. } => Run::Record,
        _ => Run::Fixed,
    }
}

/// The sort key of a reorderable operation: its RocksDB key's order.
fn sort_key(op: &WriteOp) -> (u8, u64, u64, u64) {
    match op {
        WriteOp::PutRecord { conv, record } => {
            let b = conv.to_bytes();
            let a = u64::from_be_bytes(b[1..9].try_into().expect("8 bytes"));
            let c = u64::from_be_bytes(b[9..17].try_into().expect("8 bytes"));
            // Kind byte, then the two ids, then conv_seq: the order of
            // `conv_values::record_key`.
            (b[0], a, c, record.conv_seq)
        }
        _ => (0, 0, 0, 0),
    }
}

/// Indices into `ops` in the order to insert them: every maximal run of
/// records sorted by key; everything else in place.
pub fn insert_order(ops: &[WriteOp]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    let mut start = 0;
    while start < ops.len() {
        let run = run_of(&ops[start]);
        let mut end = start + 1;
        while end < ops.len() && run_of(&ops[end]) == run {
            end += 1;
        }
        if run != Run::Fixed && end - start > 1 {
            order[start..end].sort_by_key(|&i| sort_key(&ops[i]));
        }
        start = end;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conv_values::record_key;
    use crate::store::keys::inbox_key;
    use bytes::Bytes;
    use std::sync::Arc;
    use tern_core::conv::ConvKey;
    use tern_core::store::{ConvRecord, StoredEntry, SyncEntry, SyncItem};

    fn record(conv_seq: u64) -> ConvRecord {
        ConvRecord {
            conv_seq,
            from_user: 1,
            from_device: 1,
            from_seq: conv_seq,
            time_ms: 0,
            topic: 0,
            msg_type: 0,
            payload: Bytes::new(),
            recalled: false,
            event: None,
        }
    }

    fn append(user: u64, seq: u64) -> WriteOp {
        let conv = ConvKey::Direct { lo: 1, hi: user };
        WriteOp::Append {
            user,
            entry: StoredEntry {
                seq,
                entry: SyncEntry {
                    conv,
                    conv_seq: seq,
                    topic: 0,
                    from_user: 1,
                    from_device: 1,
                    from_seq: seq,
                    time_ms: 0,
                    shared: true,
                    item: SyncItem::Message(Arc::new(record(seq))),
                },
            },
        }
    }

    fn put_record(conv: ConvKey, conv_seq: u64) -> WriteOp {
        WriteOp::PutRecord {
            conv,
            record: record(conv_seq),
        }
    }

    fn rocks_key(op: &WriteOp) -> Vec<u8> {
        match op {
            WriteOp::Append { user, entry } => inbox_key(*user, entry.seq).to_vec(),
            WriteOp::PutRecord { conv, record } => record_key(conv, record.conv_seq).to_vec(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn record_order_is_the_order_of_their_rocksdb_keys() {
        let convs = [
            ConvKey::Direct { lo: 2, hi: 9 },
            ConvKey::Group(1),
            ConvKey::Direct { lo: 1, hi: 300 },
            ConvKey::System(4),
            ConvKey::Direct { lo: 1, hi: 2 },
        ];
        let mut ops = Vec::new();
        for seq in [5u64, 1, 256] {
            for c in convs {
                ops.push(put_record(c, seq));
            }
        }
        let order = insert_order(&ops);
        let keys: Vec<Vec<u8>> = order.iter().map(|&i| rocks_key(&ops[i])).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn nothing_moves_across_a_trim_or_another_kind_of_operation() {
        let ops = vec![
            append(9, 5),
            append(2, 5),
            put_record(ConvKey::Group(3), 1),
            put_record(ConvKey::Group(1), 1),
            WriteOp::TrimConv {
                conv: ConvKey::Group(1),
                up_to: 1,
            },
            put_record(ConvKey::Group(2), 1),
            put_record(ConvKey::Group(1), 2),
            append(1, 1),
            put_record(ConvKey::Group(0), 1),
        ];
        assert_eq!(insert_order(&ops), vec![0, 1, 3, 2, 4, 6, 5, 7, 8]);
    }
}
