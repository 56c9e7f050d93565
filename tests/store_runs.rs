//! Rows of runs (store format 4) against `MemStore`: sync-timeline
//! entries in the inbox, records in the storage timelines.
//!
//! The broker appends consecutive seqs to each user and conversation,
//! which the RocksDB store packs into one row per owner per commit. These
//! batches do that, and also the rarer writes: overwriting inside an
//! earlier run (a recall replaces a record; the store's contract allows any
//! overwrite), trimming through the middle of a run, appending below a
//! trim in the same batch, in batches merged by the group committer, across
//! reopens and memtable flushes. Every read must match `MemStore`: inbox
//! pages with their records attached, and history pages. Set
//! `TERN_EQ_SEED=<n>` to replay one seed.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use support::seeds::for_seeds;
use tern::store::{
    GroupCommitter, MemStore, RocksOptions, RocksStore, Store, StoredEntry, WriteBatch, WriteOp,
};
use tern_core::conv::ConvKey;
use tern_core::store::{ConvRecord, SyncEntry, SyncItem};

const USERS: [u64; 3] = [0, 5, u64::MAX];
const CONVS: [ConvKey; 3] = [
    ConvKey::Direct { lo: 0, hi: 5 },
    ConvKey::Group(7),
    ConvKey::System(u64::MAX >> 2),
];

fn small_opts() -> RocksOptions {
    RocksOptions {
        write_buffer_size: 1 << 20,
        block_cache_bytes: 8 << 20,
        ..RocksOptions::default()
    }
}

/// A batch: runs of appends past each user's head, with now and then an
/// overwrite below it, a trim anywhere, or an append below a trim.
fn batch(rng: &mut SmallRng, heads: &mut [u64; 3], conv_heads: &mut [u64; 3]) -> WriteBatch {
    let mut ops = Vec::new();
    for _ in 0..rng.gen_range(1..4) {
        let c = rng.gen_range(0..CONVS.len());
        let conv = CONVS[c];
        match rng.gen_range(0..10) {
            0..=5 => {
                // Records, each listed in a user's timeline as the broker
                // does (the entry names its record).
                for _ in 0..rng.gen_range(1..40) {
                    conv_heads[c] += 1;
                    let r = record(rng, conv_heads[c], false);
                    let u = rng.gen_range(0..USERS.len());
                    heads[u] += 1;
                    ops.push(WriteOp::PutRecord {
                        conv,
                        record: r.clone(),
                    });
                    ops.push(entry_naming(USERS[u], heads[u], conv, r));
                }
            }
            6 | 7 => {
                // A recall: the record replaced by its marker.
                let seq = rng.gen_range(1..=conv_heads[c].max(1));
                ops.push(WriteOp::PutRecord {
                    conv,
                    record: record(rng, seq, true),
                });
            }
            _ => {
                let up_to = rng.gen_range(0..=conv_heads[c] + 2);
                ops.push(WriteOp::TrimConv { conv, up_to });
            }
        }
    }
    for _ in 0..rng.gen_range(1..6) {
        let u = rng.gen_range(0..USERS.len());
        let user = USERS[u];
        match rng.gen_range(0..10) {
            0..=5 => {
                // A run, sometimes large enough to split into several rows.
                let n = if rng.gen_bool(0.05) {
                    rng.gen_range(250..600)
                } else {
                    rng.gen_range(1..40)
                };
                for _ in 0..n {
                    heads[u] += 1;
                    ops.push(append(rng, user, heads[u]));
                }
            }
            6 | 7 => {
                let seq = rng.gen_range(0..=heads[u]);
                ops.push(append(rng, user, seq));
            }
            _ => {
                let up_to = match rng.gen_range(0..10) {
                    0 => u64::MAX,
                    _ => rng.gen_range(0..=heads[u] + 2),
                };
                ops.push(WriteOp::Trim { user, up_to });
            }
        }
    }
    // Sometimes a gap: the next run starts further on.
    if rng.gen_bool(0.1) {
        let u = rng.gen_range(0..USERS.len());
        heads[u] += rng.gen_range(2..10);
    }
    WriteBatch { ops }
}

fn record(rng: &mut SmallRng, conv_seq: u64, recalled: bool) -> ConvRecord {
    let len = if recalled { 0 } else { rng.gen_range(0..200) };
    ConvRecord {
        conv_seq,
        from_user: 5,
        from_device: 1,
        from_seq: rng.gen(),
        time_ms: rng.gen(),
        topic: rng.gen(),
        msg_type: rng.gen_range(0..4),
        payload: (0..len).map(|_| rng.gen::<u8>()).collect::<Vec<_>>().into(),
        recalled,
        event: None,
    }
}

fn entry_naming(user: u64, seq: u64, conv: ConvKey, r: ConvRecord) -> WriteOp {
    WriteOp::Append {
        user,
        entry: StoredEntry {
            seq,
            entry: SyncEntry {
                conv,
                conv_seq: r.conv_seq,
                topic: r.topic,
                from_user: r.from_user,
                from_device: r.from_device,
                from_seq: r.from_seq,
                time_ms: r.time_ms,
                shared: true,
                item: SyncItem::Message(Arc::new(r)),
            },
        },
    }
}

fn append(rng: &mut SmallRng, user: u64, seq: u64) -> WriteOp {
    // Up to the protocol's payload bound, often enough that a long run
    // passes the row's byte bound.
    let len = if rng.gen_bool(0.3) {
        rng.gen_range(500..=1024)
    } else {
        rng.gen_range(0..40)
    };
    let payload: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
    WriteOp::Append {
        user,
        entry: StoredEntry::inline(seq, user, Bytes::from(payload)),
    }
}

fn assert_same(
    mem: &MemStore,
    rocks: &RocksStore,
    rng: &mut SmallRng,
    heads: &[u64; 3],
    conv_heads: &[u64; 3],
    ctx: &str,
) {
    for (c, conv) in CONVS.into_iter().enumerate() {
        let mut reads = vec![(0, usize::MAX), (0, 1), (1, 5)];
        for _ in 0..4 {
            reads.push((rng.gen_range(0..=conv_heads[c] + 1), rng.gen_range(0..120)));
        }
        for (before, max) in reads {
            let want = mem.read_conv(&conv, before, max).unwrap();
            let got = rocks.read_conv(&conv, before, max).unwrap();
            assert!(
                want == got,
                "{ctx}: read_conv({conv:?}, {before}, {max}): MemStore has {:?}, RocksStore {:?}",
                want.iter()
                    .map(|r| (r.conv_seq, r.recalled))
                    .collect::<Vec<_>>(),
                got.iter()
                    .map(|r| (r.conv_seq, r.recalled))
                    .collect::<Vec<_>>()
            );
        }
    }
    for (u, user) in USERS.into_iter().enumerate() {
        let mut reads = vec![(0, usize::MAX), (0, 1), (u64::MAX, 3)];
        for _ in 0..4 {
            reads.push((rng.gen_range(0..=heads[u] + 1), rng.gen_range(0..300)));
        }
        for (after, max) in reads {
            let want = mem.read_inbox(user, after, max).unwrap();
            let got = rocks.read_inbox(user, after, max).unwrap();
            assert!(
                want == got,
                "{ctx}: read_inbox({user}, {after}, {max}): MemStore has {:?}, RocksStore {:?}",
                want.iter().map(|e| e.seq).collect::<Vec<_>>(),
                got.iter().map(|e| e.seq).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn runs_read_back_like_one_entry_per_row_through_overwrites_trims_and_reopens() {
    for_seeds("store_runs", &[1, 2, 3, 4, 5, 6], |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mem = MemStore::new();
        let mut rocks = Some(RocksStore::open(dir.path(), small_opts()).unwrap());
        let (mut heads, mut conv_heads) = ([0u64; 3], [0u64; 3]);
        for step in 0..150 {
            let b = batch(&mut rng, &mut heads, &mut conv_heads);
            mem.commit(&b).unwrap();
            rocks.as_ref().unwrap().commit(&b).unwrap();
            let ctx = format!("seed {seed} step {step}");
            assert_same(
                &mem,
                rocks.as_ref().unwrap(),
                &mut rng,
                &heads,
                &conv_heads,
                &ctx,
            );
            match step % 40 {
                // A reopened store knows no user's high seq: it reads them.
                19 => {
                    drop(rocks.take());
                    rocks = Some(RocksStore::open(dir.path(), small_opts()).unwrap());
                }
                39 => rocks.as_ref().unwrap().flush().unwrap(),
                _ => {}
            }
        }
    });
}

#[test]
fn runs_merged_by_the_group_committer_read_back_like_one_entry_per_row() {
    for_seeds("store_runs", &[11, 12, 13], |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mem = MemStore::new();
        let rocks = Arc::new(RocksStore::open(dir.path(), small_opts()).unwrap());
        let gc = GroupCommitter::new(rocks.clone()).unwrap();
        let (mut heads, mut conv_heads) = ([0u64; 3], [0u64; 3]);
        for round in 0..25 {
            let handles: Vec<_> = (0..rng.gen_range(1..20))
                .map(|_| {
                    let b = batch(&mut rng, &mut heads, &mut conv_heads);
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
                &heads,
                &conv_heads,
                &format!("seed {seed} round {round}"),
            );
        }
        gc.shutdown();
    });
}
