//! Durability and equivalence tests of the RocksDB store.
//!
//! - `equivalence_*`: random sequences of batches applied to `MemStore` (the
//!   reference) and `RocksStore` must read back identically through every
//!   read API, across reopens and memtable flushes, and through the group
//!   committer. Set `TERN_EQ_SEED=<n>` to replay one seed.
//! - `reopen_keeps_committed_data`: commit, drop, reopen.
//!
//! A writer SIGKILLed mid-stream is `store_crash.rs`.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use support::seeds::for_seeds;
use tern::store::{
    DeviceState, GroupCommitter, InboxMeta, MemStore, RocksOptions, RocksStore, Store, StoredEntry,
    WriteBatch, WriteOp,
};
use tern_core::conv::{ConvKey, ConvState};
use tern_core::store::{ConvMeta, ConvRecord, GroupMember, SyncEntry, SyncItem};
use tern_core::wire::{GroupEvent, GroupEventKind, GroupRole};

const CONVS: [ConvKey; 5] = [
    ConvKey::Direct { lo: 1, hi: 2 },
    ConvKey::Direct {
        lo: 0,
        hi: u64::MAX,
    },
    ConvKey::Group(7),
    // A user's groups sit between its direct and system conversations.
    ConvKey::Group((1 << 62) - 1),
    ConvKey::System(3),
];

/// The payload of an entry written with `StoredEntry::inline`.
fn payload_of(e: &StoredEntry) -> Bytes {
    match &e.entry.item {
        SyncItem::Message(r) => r.payload.clone(),
        other => panic!("not a message: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// (a) Equivalence with MemStore
// ---------------------------------------------------------------------------

const USERS: [u64; 5] = [0, 1, 2, u64::MAX - 1, u64::MAX];
/// Groups whose membership rows are written (`u64::MAX` borders the key
/// space).
const GROUPS: [u64; 3] = [7, 8, u64::MAX];
/// Read too, never written.
const UNTOUCHED_USER: u64 = 3;
const DEVICES: [u32; 4] = [0, 1, 7, u32::MAX];

fn small_opts() -> RocksOptions {
    RocksOptions {
        write_buffer_size: 1 << 20,
        block_cache_bytes: 8 << 20,
        ..RocksOptions::default()
    }
}

fn pick_seq(rng: &mut SmallRng) -> u64 {
    match rng.gen_range(0..20) {
        0 => 0,
        1 => u64::MAX,
        2 => u64::MAX - 1,
        _ => rng.gen_range(1..=40),
    }
}

fn pick_user(rng: &mut SmallRng) -> u64 {
    USERS[rng.gen_range(0..USERS.len())]
}

fn random_op(rng: &mut SmallRng) -> WriteOp {
    let user = pick_user(rng);
    match rng.gen_range(0..10) {
        0..=2 => {
            let len = rng.gen_range(0..48);
            let frame: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            WriteOp::Append {
                user,
                entry: StoredEntry::inline(pick_seq(rng), user, Bytes::from(frame)),
            }
        }
        3 | 4 => conv_op(rng, user),
        5 => WriteOp::Meta {
            user,
            meta: InboxMeta {
                epoch: rng.gen(),
                head: pick_seq(rng),
                trimmed: pick_seq(rng),
                list_version: pick_seq(rng),
                total_unread: rng.gen(),
                last_private: pick_seq(rng),
            },
        },
        6 | 7 => {
            let n = rng.gen_range(0..6);
            WriteOp::Device {
                user,
                device: DEVICES[rng.gen_range(0..DEVICES.len())],
                state: DeviceState {
                    checkpoint: pick_seq(rng),
                    applied: pick_seq(rng),
                    rejected: (0..n).map(|_| (pick_seq(rng), rng.gen())).collect(),
                    last_login_ms: rng.gen(),
                    version: rng.gen_range(1..=2),
                },
            }
        }
        _ => WriteOp::Trim {
            user,
            up_to: match rng.gen_range(0..8) {
                0 => 0,
                1 => u64::MAX,
                _ => rng.gen_range(1..=40),
            },
        },
    }
}

fn record(rng: &mut SmallRng, conv_seq: u64) -> ConvRecord {
    let len = rng.gen_range(0..48);
    let recalled = rng.gen_bool(0.2);
    if rng.gen_bool(0.15) {
        // A membership event, as the broker writes it.
        return ConvRecord {
            conv_seq,
            from_user: pick_user(rng),
            from_device: rng.gen(),
            from_seq: pick_seq(rng),
            time_ms: rng.gen(),
            topic: rng.gen(),
            msg_type: 0,
            payload: Bytes::new(),
            recalled,
            event: Some(GroupEvent {
                kind: GroupEventKind::from_u8(rng.gen_range(1..=5)).expect("1..=5"),
                user: pick_user(rng),
                role: GroupRole::from_u8(rng.gen_range(1..=3)).expect("1..=3"),
            }),
        };
    }
    ConvRecord {
        conv_seq,
        from_user: pick_user(rng),
        from_device: rng.gen(),
        from_seq: pick_seq(rng),
        time_ms: rng.gen(),
        topic: rng.gen(),
        msg_type: rng.gen(),
        payload: if recalled {
            Bytes::new()
        } else {
            (0..len).map(|_| rng.gen::<u8>()).collect::<Vec<_>>().into()
        },
        recalled,
        event: None,
    }
}

/// A write of the conversation column families, or an inbox entry that
/// names a record.
fn conv_op(rng: &mut SmallRng, user: u64) -> WriteOp {
    let conv = CONVS[rng.gen_range(0..CONVS.len())];
    let conv_seq = pick_seq(rng).max(1);
    match rng.gen_range(0..8) {
        7 => WriteOp::GroupMember {
            group: GROUPS[rng.gen_range(0..GROUPS.len())],
            user,
            member: GroupMember {
                role: GroupRole::from_u8(rng.gen_range(1..=3)).expect("1..=3"),
                joined: pick_seq(rng),
                left: pick_seq(rng),
            },
        },
        0 | 1 => WriteOp::PutRecord {
            conv,
            record: record(rng, conv_seq),
        },
        2 => WriteOp::ConvMeta {
            conv,
            meta: ConvMeta {
                head: pick_seq(rng),
                trimmed: pick_seq(rng),
            },
        },
        3 => WriteOp::TrimConv {
            conv,
            up_to: pick_seq(rng),
        },
        4 => WriteOp::UserConv {
            user,
            conv,
            state: ConvState {
                version: rng.gen_range(1..=30),
                last_seq: pick_seq(rng),
                read_seq: pick_seq(rng),
                unread: rng.gen(),
                cleared_to: pick_seq(rng),
            },
            prev_version: rng.gen_range(0..=30),
        },
        5 => WriteOp::Hide {
            user,
            conv,
            conv_seq,
        },
        _ => {
            // The entry's fields are its record's, as the broker writes them.
            let r = record(rng, conv_seq);
            WriteOp::Append {
                user,
                entry: StoredEntry {
                    seq: pick_seq(rng),
                    entry: SyncEntry {
                        conv,
                        conv_seq,
                        topic: r.topic,
                        from_user: r.from_user,
                        from_device: r.from_device,
                        from_seq: r.from_seq,
                        time_ms: r.time_ms,
                        shared: rng.gen(),
                        item: SyncItem::Message(Arc::new(r)),
                    },
                },
            }
        }
    }
}

/// Every storage timeline, walked `step` at a time as the retention walk
/// does; sorted, since each store walks in its own key order.
fn walk_convs<S: Store>(store: &S, step: usize) -> Vec<(ConvKey, ConvMeta)> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let got = store.convs_after(cursor.as_ref(), step).unwrap();
        let full = got.len() == step;
        cursor = got.last().map(|m| m.0);
        all.extend(got);
        if !full {
            break;
        }
    }
    all.sort_by_key(|m| m.0);
    all
}

fn assert_same_convs(mem: &MemStore, rocks: &RocksStore, rng: &mut SmallRng, ctx: &str) {
    assert_eq!(
        walk_convs(mem, 2),
        walk_convs(rocks, 2),
        "{ctx}: convs_after"
    );
    assert_eq!(
        walk_convs(rocks, 1),
        walk_convs(rocks, 1000),
        "{ctx}: walk step"
    );
    for conv in CONVS {
        assert_eq!(
            mem.conv_meta(&conv).unwrap(),
            rocks.conv_meta(&conv).unwrap(),
            "{ctx}: conv_meta({conv:?})"
        );
        for (before, max) in [
            (0, 100),
            (0, 1),
            (5, 3),
            (u64::MAX, 4),
            (pick_seq(rng), rng.gen_range(0..6)),
        ] {
            assert_eq!(
                mem.read_conv(&conv, before, max).unwrap(),
                rocks.read_conv(&conv, before, max).unwrap(),
                "{ctx}: read_conv({conv:?}, {before}, {max})"
            );
        }
        for user in USERS {
            assert_eq!(
                mem.user_conv(user, &conv).unwrap(),
                rocks.user_conv(user, &conv).unwrap(),
                "{ctx}: user_conv({user}, {conv:?})"
            );
            let (low, high) = (pick_seq(rng), pick_seq(rng));
            assert_eq!(
                mem.hidden(user, &conv, low, high).unwrap(),
                rocks.hidden(user, &conv, low, high).unwrap(),
                "{ctx}: hidden({user}, {conv:?}, {low}, {high})"
            );
        }
    }
    for group in GROUPS {
        for (after, max) in [(0, 100), (0, 1), (1, 2), (u64::MAX - 1, 5), (u64::MAX, 5)] {
            assert_eq!(
                mem.group_members(group, after, max).unwrap(),
                rocks.group_members(group, after, max).unwrap(),
                "{ctx}: group_members({group}, {after}, {max})"
            );
        }
    }
    for user in USERS {
        for (since, max) in [(0, 100), (0, 1), (10, 5), (u64::MAX, 3)] {
            assert_eq!(
                mem.user_convs_since(user, since, max).unwrap(),
                rocks.user_convs_since(user, since, max).unwrap(),
                "{ctx}: user_convs_since({user}, {since}, {max})"
            );
        }
        for (after, max) in [(0, 100), (0, 1), (1, 2), (u64::MAX - 1, 5), (u64::MAX, 5)] {
            assert_eq!(
                mem.user_groups(user, after, max).unwrap(),
                rocks.user_groups(user, after, max).unwrap(),
                "{ctx}: user_groups({user}, {after}, {max})"
            );
        }
    }
}

fn random_batch(rng: &mut SmallRng) -> WriteBatch {
    let n = rng.gen_range(0..8);
    WriteBatch {
        ops: (0..n).map(|_| random_op(rng)).collect(),
    }
}

fn assert_same(mem: &MemStore, rocks: &RocksStore, rng: &mut SmallRng, ctx: &str) {
    for user in USERS.into_iter().chain([UNTOUCHED_USER]) {
        assert_eq!(
            mem.inbox_meta(user).unwrap(),
            rocks.inbox_meta(user).unwrap(),
            "{ctx}: inbox_meta({user})"
        );
        assert_eq!(
            mem.devices(user).unwrap(),
            rocks.devices(user).unwrap(),
            "{ctx}: devices({user})"
        );
        let mut reads = vec![
            (0, usize::MAX),
            (0, 0),
            (0, 1),
            (0, 5),
            (7, 3),
            (u64::MAX - 1, 10),
            (u64::MAX, 10),
        ];
        for _ in 0..3 {
            reads.push((pick_seq(rng), rng.gen_range(0..12)));
        }
        for (after, max) in reads {
            assert_eq!(
                mem.read_inbox(user, after, max).unwrap(),
                rocks.read_inbox(user, after, max).unwrap(),
                "{ctx}: read_inbox({user}, {after}, {max})"
            );
        }
    }
    assert_same_convs(mem, rocks, rng, ctx);
}

#[test]
fn equivalence_direct_commits() {
    for_seeds(
        "store_durability",
        &[1, 2, 3, 0xdead_beef, 42_4242],
        |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            let dir = tempfile::tempdir().unwrap();
            let mem = MemStore::new();
            let mut rocks = Some(RocksStore::open(dir.path(), small_opts()).unwrap());
            for step in 0..200 {
                let batch = random_batch(&mut rng);
                mem.commit(&batch).unwrap();
                rocks.as_ref().unwrap().commit(&batch).unwrap();
                let ctx = format!("seed {seed} step {step}");
                assert_same(&mem, rocks.as_ref().unwrap(), &mut rng, &ctx);
                match step % 50 {
                    // Recover from the WAL alone.
                    24 => {
                        drop(rocks.take());
                        rocks = Some(RocksStore::open(dir.path(), small_opts()).unwrap());
                        assert_same(&mem, rocks.as_ref().unwrap(), &mut rng, &ctx);
                    }
                    // Data and range tombstones in SST files.
                    49 => {
                        rocks.as_ref().unwrap().flush().unwrap();
                        assert_same(&mem, rocks.as_ref().unwrap(), &mut rng, &ctx);
                    }
                    _ => {}
                }
            }
        },
    );
}

#[test]
fn equivalence_through_group_commit() {
    // Batches submitted back to back get merged; the result must equal
    // applying them one by one.
    for_seeds("store_durability", &[7, 8, 9], |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mem = MemStore::new();
        let rocks = Arc::new(RocksStore::open(dir.path(), small_opts()).unwrap());
        let gc = GroupCommitter::new(rocks.clone()).unwrap();
        for round in 0..20 {
            let n = rng.gen_range(1..40);
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let b = random_batch(&mut rng);
                    mem.commit(&b).unwrap();
                    gc.submit(b).unwrap()
                })
                .collect();
            for h in handles {
                h.wait().unwrap();
            }
            assert_same(
                &mem,
                &rocks,
                &mut rng,
                &format!("seed {seed} round {round}"),
            );
        }
        let stats = gc.shutdown();
        assert!(stats.fsyncs <= stats.batches);
    });
}

// ---------------------------------------------------------------------------
// (b) Reopen
// ---------------------------------------------------------------------------

#[test]
fn reopen_keeps_committed_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/db");
    let meta = InboxMeta {
        epoch: 99,
        head: 10,
        trimmed: 4,
        list_version: 3,
        total_unread: 2,
        last_private: 1,
    };
    let dev = DeviceState {
        checkpoint: 8,
        applied: 3,
        rejected: vec![(2, 17)],
        last_login_ms: 1_234,
        version: 2,
    };
    {
        let store = Arc::new(RocksStore::open(&path, small_opts()).unwrap());
        let gc = GroupCommitter::new(store.clone()).unwrap();
        let mut ops: Vec<WriteOp> = (1..=10)
            .map(|seq| WriteOp::Append {
                user: 5,
                entry: StoredEntry::inline(seq, 5, Bytes::from(format!("frame {seq}"))),
            })
            .collect();
        ops.push(WriteOp::Trim { user: 5, up_to: 4 });
        ops.push(WriteOp::Meta { user: 5, meta });
        gc.commit(WriteBatch { ops }).unwrap();
        gc.commit(WriteBatch {
            ops: vec![WriteOp::Device {
                user: 5,
                device: 2,
                state: dev.clone(),
            }],
        })
        .unwrap();
        drop(gc);
        assert_eq!(Arc::strong_count(&store), 1);
    }
    let store = RocksStore::open(&path, small_opts()).unwrap();
    assert_eq!(store.inbox_meta(5).unwrap(), Some(meta));
    assert_eq!(store.devices(5).unwrap(), vec![(2, dev)]);
    let entries = store.read_inbox(5, 0, 100).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (5..=10).collect::<Vec<_>>()
    );
    assert_eq!(payload_of(&entries[0]), Bytes::from("frame 5"));
}
