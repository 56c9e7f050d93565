//! Unit tests of the RocksDB store: bounds, batch order, typed corruption errors, reopening.

use super::*;

use bytes::Bytes;

use super::super::entry_values::encode_entry;

fn entry(seq: u64, s: &str) -> StoredEntry {
    StoredEntry::inline(seq, 1, Bytes::copy_from_slice(s.as_bytes()))
}

fn append(user: u64, seq: u64) -> WriteOp {
    WriteOp::Append {
        user,
        entry: entry(seq, &format!("{user}/{seq}")),
    }
}

#[test]
fn send_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RocksStore>();
    assert_send_sync::<StoreError>();
}

#[test]
fn basic_roundtrip_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open_default(dir.path().join("db")).unwrap();
    assert_eq!(s.inbox_meta(1).unwrap(), None);
    assert!(s.devices(1).unwrap().is_empty());
    assert!(s.read_inbox(1, 0, 10).unwrap().is_empty());

    let meta = InboxMeta {
        epoch: 42,
        head: 3,
        ..InboxMeta::default()
    };
    let dev = DeviceState {
        checkpoint: 1,
        applied: 2,
        rejected: vec![(2, 9)],
        last_login_ms: 5,
        version: 2,
    };
    let mut ops = vec![WriteOp::Meta { user: 1, meta }];
    for u in [0, 1, 2, u64::MAX] {
        for q in [1, 2, 3, u64::MAX] {
            ops.push(append(u, q));
        }
    }
    ops.push(WriteOp::Device {
        user: 1,
        device: u32::MAX,
        state: dev.clone(),
    });
    ops.push(WriteOp::Device {
        user: 1,
        device: 0,
        state: DeviceState::default(),
    });
    ops.push(WriteOp::Device {
        user: 2,
        device: 0,
        state: DeviceState::default(),
    });
    s.commit(&WriteBatch { ops }).unwrap();
    assert_eq!(s.commits(), 1);

    assert_eq!(s.inbox_meta(1).unwrap(), Some(meta));
    assert_eq!(
        s.devices(1).unwrap(),
        vec![(0, DeviceState::default()), (u32::MAX, dev)]
    );
    let seqs = |u, after, max| -> Vec<u64> {
        s.read_inbox(u, after, max)
            .unwrap()
            .into_iter()
            .map(|e| e.seq)
            .collect()
    };
    assert_eq!(seqs(1, 0, 10), vec![1, 2, 3, u64::MAX]);
    assert_eq!(seqs(1, 1, 2), vec![2, 3]);
    assert_eq!(seqs(1, 3, 10), vec![u64::MAX]);
    assert_eq!(seqs(1, u64::MAX, 10), Vec::<u64>::new());
    assert_eq!(seqs(1, 0, 0), Vec::<u64>::new());
    assert_eq!(seqs(u64::MAX, 0, usize::MAX), vec![1, 2, 3, u64::MAX]);
    assert_eq!(
        s.read_inbox(2, 1, 1).unwrap(),
        vec![entry(2, "2/2")],
        "frames are kept"
    );

    // Trim, including the u64::MAX edge, leaves other users alone.
    s.commit(&WriteBatch {
        ops: vec![
            WriteOp::Trim { user: 1, up_to: 2 },
            WriteOp::Trim {
                user: u64::MAX,
                up_to: u64::MAX,
            },
            WriteOp::Trim {
                user: 0,
                up_to: u64::MAX,
            },
        ],
    })
    .unwrap();
    assert_eq!(seqs(1, 0, 10), vec![3, u64::MAX]);
    assert_eq!(seqs(u64::MAX, 0, 10), Vec::<u64>::new());
    assert_eq!(seqs(0, 0, 10), Vec::<u64>::new());
    assert_eq!(seqs(2, 0, 10), vec![1, 2, 3, u64::MAX]);
}

#[test]
fn ops_apply_in_batch_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open_default(dir.path()).unwrap();
    s.commit(&WriteBatch {
        ops: vec![
            append(5, 1),
            append(5, 2),
            WriteOp::Trim { user: 5, up_to: 2 },
            append(5, 2),
            append(5, 3),
        ],
    })
    .unwrap();
    let got: Vec<u64> = s
        .read_inbox(5, 0, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, vec![2, 3]);
}

#[test]
fn corrupt_values_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open_default(dir.path()).unwrap();
    let db = s.raw();
    db.put_cf(
        db.cf_handle(CF_META).unwrap(),
        keys::meta_key(7),
        [9u8, 1, 2],
    )
    .unwrap();
    db.put_cf(
        db.cf_handle(CF_DEVICE).unwrap(),
        keys::device_key(7, 1),
        [1u8; 3],
    )
    .unwrap();
    db.put_cf(
        db.cf_handle(CF_INBOX).unwrap(),
        [0u8, 0, 0, 0, 0, 0, 0, 7, 1],
        b"x",
    )
    .unwrap();
    assert!(matches!(
        s.inbox_meta(7),
        Err(StoreError::Corrupt {
            cf: CF_META,
            source: DecodeError::UnknownVersion(9),
            ..
        })
    ));
    assert!(matches!(
        s.devices(7),
        Err(StoreError::Corrupt { cf: CF_DEVICE, .. })
    ));
    assert!(matches!(
        s.read_inbox(7, 0, 10),
        Err(StoreError::Corrupt { cf: CF_INBOX, .. })
    ));
    // Other users are unaffected.
    assert_eq!(s.inbox_meta(8).unwrap(), None);
}

#[test]
fn message_entries_read_back_with_their_record_as_it_is_now() {
    use std::sync::Arc;
    use tern_core::conv::ConvKey;
    use tern_core::store::{ConvRecord, SyncEntry, SyncItem};
    let conv = ConvKey::Direct { lo: 1, hi: 2 };
    let record = ConvRecord {
        conv_seq: 1,
        from_user: 2,
        from_device: 3,
        from_seq: 9,
        time_ms: 1_700_000_000_000,
        topic: 4,
        msg_type: 0,
        payload: Bytes::from_static(b"hi"),
        recalled: false,
        event: None,
    };
    let written = StoredEntry {
        seq: 1,
        entry: SyncEntry {
            conv,
            conv_seq: 1,
            topic: 4,
            from_user: 2,
            from_device: 3,
            from_seq: 9,
            time_ms: 1_700_000_000_000,
            shared: true,
            item: SyncItem::Message(Arc::new(record.clone())),
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open_default(dir.path()).unwrap();
    s.commit(&WriteBatch {
        ops: vec![
            WriteOp::PutRecord {
                conv,
                record: record.clone(),
            },
            WriteOp::Append {
                user: 1,
                entry: written.clone(),
            },
        ],
    })
    .unwrap();
    assert_eq!(s.read_inbox(1, 0, 10).unwrap(), vec![written.clone()]);
    // A recall reaches the entry: it names the record, it does not copy it.
    s.commit(&WriteBatch {
        ops: vec![WriteOp::PutRecord {
            conv,
            record: record.recalled(),
        }],
    })
    .unwrap();
    let read = s.read_inbox(1, 0, 10).unwrap();
    let SyncItem::Message(r) = &read[0].entry.item else {
        panic!("a message");
    };
    assert!(r.recalled && r.payload.is_empty());
    assert_eq!(read[0].entry.origin().map(|o| o.from_seq), Some(9));
}

#[test]
fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RocksStore::open_default(dir.path()).unwrap();
        s.commit(&WriteBatch {
            ops: vec![append(1, 1), append(1, 2)],
        })
        .unwrap();
    }
    let s = RocksStore::open_default(dir.path()).unwrap();
    assert_eq!(s.read_inbox(1, 0, 10).unwrap().len(), 2);
}

#[test]
fn a_format_2_folder_gains_the_group_column_family_and_keeps_its_data() {
    // A format 2 folder: the column families of format 2, its marker, and
    // a record, written with RocksDB directly.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let conv = ConvKey::Direct { lo: 1, hi: 2 };
    let record = ConvRecord {
        conv_seq: 1,
        from_user: 1,
        from_device: 1,
        from_seq: 1,
        time_ms: 5,
        topic: 0,
        msg_type: 0,
        payload: Bytes::from_static(b"old"),
        recalled: false,
        event: None,
    };
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        let format_2: Vec<&str> = COLUMN_FAMILIES
            .iter()
            .copied()
            .filter(|c| *c != super::super::group_values::CF_GROUP_MEMBER)
            .collect();
        assert_eq!(format_2.len(), 8);
        let db = rocksdb::DB::open_cf(&o, &path, &format_2).unwrap();
        db.put(b"tern.format", 2u32.to_be_bytes()).unwrap();
        let cf = db.cf_handle(CF_CONV).unwrap();
        db.put_cf(cf, cv::record_key(&conv, 1), cv::encode_record(&record))
            .unwrap();
    }
    let s = RocksStore::open_default(&path).expect("a format 2 folder opens");
    assert_eq!(s.opened(), Opened::Upgraded { from: 2 });
    assert_eq!(s.read_conv(&conv, 0, 10).unwrap(), vec![record]);
    let member = GroupMember {
        role: tern_core::wire::GroupRole::Owner,
        joined: 1,
        left: 0,
    };
    s.commit(&WriteBatch {
        ops: vec![WriteOp::GroupMember {
            group: 9,
            user: 1,
            member,
        }],
    })
    .unwrap();
    assert_eq!(s.group_members(9, 0, 10).unwrap(), vec![(1, member)]);
    drop(s);
    let s = RocksStore::open_default(&path).unwrap();
    assert_eq!(s.opened(), Opened::Current, "upgraded once");
    assert_eq!(s.group_members(9, 0, 10).unwrap(), vec![(1, member)]);
}

#[test]
fn a_format_3_folder_of_one_entry_per_row_reads_back_and_grows_in_runs() {
    // Format 3 wrote each inbox entry as its own row: write three so, with
    // RocksDB directly, and the format 3 marker.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&o, &path, COLUMN_FAMILIES).unwrap();
        db.put(b"tern.format", 3u32.to_be_bytes()).unwrap();
        let cf = db.cf_handle(CF_INBOX).unwrap();
        for seq in 1..=3 {
            let e = entry(seq, &format!("1/{seq}"));
            db.put_cf(cf, keys::inbox_key(1, seq), encode_entry(&e.entry))
                .unwrap();
        }
    }
    let s = RocksStore::open_default(&path).expect("a format 3 folder opens");
    assert_eq!(s.opened(), Opened::Upgraded { from: 3 });
    let seqs = |s: &RocksStore, after| -> Vec<u64> {
        s.read_inbox(1, after, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    };
    assert_eq!(seqs(&s, 0), vec![1, 2, 3]);
    // New entries go in one row after the old ones; an overwrite of an old
    // one and a trim through the new run keep every other entry.
    s.commit(&WriteBatch {
        ops: (4..=9).map(|q| append(1, q)).collect(),
    })
    .unwrap();
    let rows = {
        let cf = s.cf(CF_INBOX).unwrap();
        let mut it = s.raw().raw_iterator_cf(cf);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        n
    };
    assert_eq!(rows, 4, "three old rows and one run");
    s.commit(&WriteBatch {
        ops: vec![
            WriteOp::Append {
                user: 1,
                entry: entry(2, "new 2"),
            },
            WriteOp::Trim { user: 1, up_to: 6 },
        ],
    })
    .unwrap();
    assert_eq!(seqs(&s, 0), vec![7, 8, 9]);
    assert_eq!(seqs(&s, 7), vec![8, 9]);
    drop(s);
    let s = RocksStore::open_default(&path).unwrap();
    assert_eq!(s.opened(), Opened::Current, "upgraded once");
    assert_eq!(seqs(&s, 0), vec![7, 8, 9]);
}
