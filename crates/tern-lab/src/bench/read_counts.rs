//! `tern-bench read-counts`: the cost of "read by N" in a large group, the
//! data structure the broker keeps per group (`tern_core::conv::ReadCounts`,
//! a Fenwick tree over the members' read cursors), against the plain way
//! of answering the same questions in the same run: a scan of every
//! member's cursor per count.
//!
//! Members move their cursors forward at random over a timeline of
//! `records` records; after every `query_every` moves the counts of 64
//! records are asked. Both sides answer the same questions and must agree.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tern_core::conv::ReadCounts;

use super::{BenchError, Result};

/// Options of `tern-bench read-counts`.
#[derive(Debug, Clone)]
pub struct ReadCountsOpts {
    /// Members of the group.
    pub members: u64,
    /// Records of its timeline.
    pub records: u64,
    /// Cursor moves (reads) measured.
    pub reads: u64,
    /// A count of 64 records after this many reads.
    pub query_every: u64,
    /// Seed of the moves.
    pub seed: u64,
}

/// Runs the benchmark and prints its report.
pub fn run(o: &ReadCountsOpts) -> Result<()> {
    println!(
        "tern-bench read-counts: {} members, {} records, {} reads, 64 counts every {} reads (seed {})",
        o.members, o.records, o.reads, o.query_every, o.seed
    );
    let mut rng = rand::rngs::SmallRng::seed_from_u64(o.seed);
    let moves: Vec<(u64, u64)> = (0..o.reads)
        .map(|_| (rng.gen_range(0..o.members), rng.gen_range(1..=o.records)))
        .collect();
    let queries: Vec<u64> = (0..o.reads / o.query_every.max(1))
        .map(|_| rng.gen_range(1..=o.records.saturating_sub(63).max(1)))
        .collect();

    // Baseline: a cursor per member, every count a scan of all of them.
    let mut plain = vec![0u64; o.members as usize];
    let (mut plain_moves, mut plain_counts) = (Duration::ZERO, Duration::ZERO);
    let mut plain_answers = Vec::new();
    let mut qi = 0;
    for (i, &(user, pos)) in moves.iter().enumerate() {
        let t = Instant::now();
        let c = &mut plain[user as usize];
        *c = (*c).max(pos);
        plain_moves += t.elapsed();
        if (i as u64 + 1).is_multiple_of(o.query_every.max(1)) {
            let low = queries[qi];
            qi += 1;
            let t = Instant::now();
            for s in low..low + 64 {
                plain_answers.push(plain.iter().filter(|c| **c >= s).count() as u64);
            }
            plain_counts += t.elapsed();
        }
    }

    // The broker's structure.
    let mut tree = ReadCounts::default();
    let mut cursor = vec![0u64; o.members as usize];
    for u in 0..o.members {
        tree.set(u, 0);
    }
    let (mut tree_moves, mut tree_counts) = (Duration::ZERO, Duration::ZERO);
    let mut tree_answers = Vec::new();
    let mut qi = 0;
    for (i, &(user, pos)) in moves.iter().enumerate() {
        let t = Instant::now();
        let c = &mut cursor[user as usize];
        if pos > *c {
            *c = pos;
            tree.set(user, pos);
        }
        tree_moves += t.elapsed();
        if (i as u64 + 1).is_multiple_of(o.query_every.max(1)) {
            let low = queries[qi];
            qi += 1;
            let t = Instant::now();
            for s in low..low + 64 {
                tree_answers.push(tree.at_or_past(s));
            }
            tree_counts += t.elapsed();
        }
    }
    if tree_answers != plain_answers {
        return Err(BenchError::Failed(
            "the tree and the scan disagree on a count".into(),
        ));
    }
    let per = |d: Duration, n: u64| d.as_nanos() as f64 / n.max(1) as f64;
    let counts = plain_answers.len() as u64;
    let (pm, tm) = (per(plain_moves, o.reads), per(tree_moves, o.reads));
    let (pc, tc) = (per(plain_counts, counts), per(tree_counts, counts));
    println!("  baseline (a scan of every cursor per count): read {pm:.0} ns, count {pc:.0} ns per record");
    println!(
        "  Fenwick tree over the cursors:               read {tm:.0} ns, count {tc:.0} ns per record",
    );
    println!(
        "  per read: {:.1}x the baseline's; per count: {:.5}x the baseline's ({} counts, all equal)",
        tm / pm.max(0.001),
        tc / pc.max(0.001),
        counts
    );
    Ok(())
}
