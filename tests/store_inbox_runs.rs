//! The inbox's rows of runs (store format 4) against `MemStore`.
//!
//! The broker appends consecutive seqs to each user, which the RocksDB
//! store packs into one row per user per commit. These batches do that,
//! and also what the broker never does but the store's contract allows:
//! overwriting entries inside an earlier run, trimming through the middle
//! of a run, appending below a trim in the same batch, in batches merged by
//! the group committer, across reopens and memtable flushes. Every read
//! must match `MemStore`. Set `TERN_EQ_SEED=<n>` to replay one seed.

use std::sync::Arc;

use bytes::Bytes;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use tern::store::{
    GroupCommitter, MemStore, RocksOptions, RocksStore, Store, StoredEntry, WriteBatch, WriteOp,
};

const USERS: [u64; 3] = [0, 5, u64::MAX];

fn small_opts() -> RocksOptions {
    RocksOptions {
        write_buffer_size: 1 << 20,
        block_cache_bytes: 8 << 20,
        ..RocksOptions::default()
    }
}

/// A batch: runs of appends past each user's head, with now and then an
/// overwrite below it, a trim anywhere, or an append below a trim.
fn batch(rng: &mut SmallRng, heads: &mut [u64; 3]) -> WriteBatch {
    let mut ops = Vec::new();
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
    ctx: &str,
) {
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

fn for_seeds(base: &[u64], f: impl Fn(u64)) {
    let seeds = match std::env::var("TERN_EQ_SEED") {
        Ok(s) => vec![s.parse().expect("TERN_EQ_SEED must be a u64")],
        Err(_) => base.to_vec(),
    };
    for seed in seeds {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed)));
        if let Err(p) = r {
            eprintln!(
                "inbox runs failure with seed {seed}; replay: \
                 TERN_EQ_SEED={seed} cargo test -p tern --test store_inbox_runs"
            );
            std::panic::resume_unwind(p);
        }
    }
}

#[test]
fn runs_read_back_like_one_entry_per_row_through_overwrites_trims_and_reopens() {
    for_seeds(&[1, 2, 3, 4, 5, 6], |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mem = MemStore::new();
        let mut rocks = Some(RocksStore::open(dir.path(), small_opts()).unwrap());
        let mut heads = [0u64; 3];
        for step in 0..150 {
            let b = batch(&mut rng, &mut heads);
            mem.commit(&b).unwrap();
            rocks.as_ref().unwrap().commit(&b).unwrap();
            let ctx = format!("seed {seed} step {step}");
            assert_same(&mem, rocks.as_ref().unwrap(), &mut rng, &heads, &ctx);
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
    for_seeds(&[11, 12, 13], |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let mem = MemStore::new();
        let rocks = Arc::new(RocksStore::open(dir.path(), small_opts()).unwrap());
        let gc = GroupCommitter::new(rocks.clone()).unwrap();
        let mut heads = [0u64; 3];
        for round in 0..25 {
            let handles: Vec<_> = (0..rng.gen_range(1..20))
                .map(|_| {
                    let b = batch(&mut rng, &mut heads);
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
                &format!("seed {seed} round {round}"),
            );
        }
        gc.shutdown();
    });
}
