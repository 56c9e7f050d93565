//! Helpers for store benchmarks (`tern bench store`) and load tests.
//!
//! [`run_load`] drives a [`GroupCommitter`] from several threads, each
//! committing synthetic append batches and waiting for every one (like
//! sessions waiting for durability before acknowledging), and reports
//! throughput, commit latency and how well batches were grouped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tern_core::store::{InboxMeta, Store, StoredEntry, WriteBatch, WriteOp};

use super::group_commit::{CommitError, GroupCommitStats, GroupCommitter};

/// A batch like the broker's for one delivered message: `appends` inbox
/// entries of `frame_len` bytes for `user` starting at `first_seq`, then the
/// inbox's new metadata.
pub fn synthetic_batch(user: u64, first_seq: u64, appends: usize, frame_len: usize) -> WriteBatch {
    let frame = Bytes::from(vec![0xA5u8; frame_len]);
    let mut ops = Vec::with_capacity(appends + 1);
    for i in 0..appends as u64 {
        ops.push(WriteOp::Append {
            user,
            entry: StoredEntry {
                seq: first_seq + i,
                frame: frame.clone(),
            },
        });
    }
    ops.push(WriteOp::Meta {
        user,
        meta: InboxMeta {
            epoch: 1,
            head: first_seq + appends as u64 - 1,
            trimmed: 0,
        },
    });
    WriteBatch { ops }
}

/// The shape of a load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Submitting threads (concurrent writers).
    pub threads: usize,
    /// Batches each thread commits, one at a time.
    pub batches_per_thread: usize,
    /// Inbox appends per batch.
    pub appends_per_batch: usize,
    /// Bytes per inbox entry.
    pub frame_len: usize,
    /// User id of thread 0; thread `t` writes user `first_user + t`.
    pub first_user: u64,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            threads: 16,
            batches_per_thread: 1000,
            appends_per_batch: 1,
            frame_len: 200,
            first_user: 1,
        }
    }
}

/// The outcome of [`run_load`].
#[derive(Debug)]
pub struct LoadReport {
    /// Batches committed.
    pub batches: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of each commit (submit to durable), in microseconds.
    pub latency_us: Histogram<u64>,
    /// Committer counters accumulated during the run.
    pub stats: GroupCommitStats,
}

impl LoadReport {
    /// Batches committed per second.
    pub fn batches_per_sec(&self) -> f64 {
        self.batches as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Mean batches per fsync.
    pub fn batches_per_fsync(&self) -> f64 {
        self.stats.batches as f64 / self.stats.fsyncs.max(1) as f64
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = |p| self.latency_us.value_at_quantile(p);
        write!(
            f,
            "{} batches in {:.2?}: {:.0} batches/s, {} fsyncs ({:.1} batches/fsync, largest group {}), \
             latency us p50 {} p99 {} p99.9 {} max {}",
            self.batches,
            self.elapsed,
            self.batches_per_sec(),
            self.stats.fsyncs,
            self.batches_per_fsync(),
            self.stats.largest_group,
            q(0.5),
            q(0.99),
            q(0.999),
            self.latency_us.max(),
        )
    }
}

/// Runs `spec` against `committer`. Each thread appends to its own user,
/// starting after the sequence its inbox metadata records (so runs can be
/// repeated on one store). Stops at the first failed commit.
pub fn run_load<S: Store>(
    committer: &Arc<GroupCommitter<S>>,
    spec: &LoadSpec,
) -> Result<LoadReport, CommitError<S::Error>> {
    let before = committer.stats();
    let start = Instant::now();
    let threads: Vec<_> = (0..spec.threads)
        .map(|t| {
            let gc = committer.clone();
            let spec = spec.clone();
            std::thread::spawn(move || -> Result<Histogram<u64>, CommitError<S::Error>> {
                let mut hist = new_histogram();
                let user = spec.first_user + t as u64;
                let head = gc
                    .store()
                    .inbox_meta(user)
                    .map_err(|e| CommitError::Store(Arc::new(e)))?
                    .map_or(0, |m| m.head);
                let mut seq = head + 1;
                for _ in 0..spec.batches_per_thread {
                    let batch =
                        synthetic_batch(user, seq, spec.appends_per_batch.max(1), spec.frame_len);
                    seq += spec.appends_per_batch.max(1) as u64;
                    let t0 = Instant::now();
                    gc.commit(batch)?;
                    hist.saturating_record(t0.elapsed().as_micros() as u64);
                }
                Ok(hist)
            })
        })
        .collect();
    let mut latency_us = new_histogram();
    let mut first_err = None;
    for t in threads {
        match t.join() {
            Ok(Ok(h)) => latency_us.add(&h).expect("same histogram bounds"),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    let elapsed = start.elapsed();
    if let Some(e) = first_err {
        return Err(e);
    }
    let after = committer.stats();
    let stats = GroupCommitStats {
        batches: after.batches - before.batches,
        ops: after.ops - before.ops,
        fsyncs: after.fsyncs - before.fsyncs,
        largest_group: after.largest_group,
        failed_batches: after.failed_batches - before.failed_batches,
    };
    Ok(LoadReport {
        batches: latency_us.len(),
        elapsed,
        latency_us,
        stats,
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 us .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::store::MemStore;

    #[test]
    fn load_on_memstore() {
        let gc = Arc::new(GroupCommitter::new(Arc::new(MemStore::new())).unwrap());
        let spec = LoadSpec {
            threads: 4,
            batches_per_thread: 50,
            appends_per_batch: 2,
            ..Default::default()
        };
        let r = run_load(&gc, &spec).unwrap();
        assert_eq!(r.batches, 200);
        assert_eq!(r.stats.batches, 200);
        assert_eq!(r.stats.ops, 600);
        // A second run continues each inbox where the first stopped.
        run_load(&gc, &spec).unwrap();
        let s = gc.store();
        assert_eq!(s.inbox_meta(1).unwrap().unwrap().head, 200);
        assert_eq!(s.read_inbox(1, 0, usize::MAX).unwrap().len(), 200);
        assert!(!r.to_string().is_empty());
    }
}
