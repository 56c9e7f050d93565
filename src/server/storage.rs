//! What the daemon does when its store fails a commit.
//!
//! The broker rolls back and acknowledges nothing of the failed batch; its
//! clients are told ERROR 12 (StorageFailure) and resend. What happens next
//! depends on the failure (measured with Debian's librocksdb 7.8, see
//! `docs/operations.md`):
//! - **the disk is full** (`No space left on device`): RocksDB refuses
//!   writes, then resumes by itself once the free space exceeds its reserve
//!   (the largest memtable, 64 MiB by default), checking every few seconds.
//!   The daemon keeps serving, logs the first failure and the recovery, and
//!   every commit in between fails fast (counted in
//!   `tern_commit_failures_total`);
//! - **anything else** (an fsync or write error, a corrupt record, the
//!   commit thread gone): RocksDB keeps refusing writes until the database
//!   is reopened, and `DB::Resume` is not exposed by the `rocksdb` crate. The
//!   daemon says so and stops serving, so that its supervisor restarts it.

use std::time::{Duration, Instant};

use crate::store::StoreError;

/// Why a batch did not commit, as the broker loop acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The disk is full; RocksDB resumes writes once space is freed.
    Full(String),
    /// Any other failure; the store must be reopened (a restart).
    Failed(String),
}

impl Fault {
    /// Classifies a store error.
    pub fn of(e: &StoreError) -> Fault {
        let text = e.to_string();
        if is_no_space(e) {
            Fault::Full(text)
        } else {
            Fault::Failed(text)
        }
    }

    /// The commit thread is gone: whether anything is durable is unknown.
    pub fn committer_stopped() -> Fault {
        Fault::Failed("the commit thread stopped".into())
    }

    /// The error text, for the broker's event.
    pub fn text(&self) -> &str {
        match self {
            Fault::Full(t) | Fault::Failed(t) => t,
        }
    }
}

/// RocksDB reports ENOSPC as an I/O error with sub-code NoSpace, whose text
/// the `rocksdb` crate passes on ("IO error: No space left on device: ...");
/// it exposes no sub-code.
fn is_no_space(e: &StoreError) -> bool {
    matches!(e, StoreError::Rocks(r)
        if r.kind() == rocksdb::ErrorKind::IOError
            && r.to_string().contains("No space left on device"))
}

/// What the loop should do after a commit outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep serving.
    Serve,
    /// Stop serving: the store cannot take writes until it is reopened.
    Stop(String),
}

/// The store's health as the commits report it, and its log lines: one when
/// it starts failing, one when it works again, none in between.
#[derive(Debug, Default)]
pub struct Health {
    /// When the current run of failures started, and how many so far.
    failing: Option<(Instant, u64)>,
}

impl Health {
    /// Accounts for one commit outcome.
    pub fn on_commit(&mut self, outcome: Result<(), &Fault>) -> Verdict {
        match outcome {
            Ok(()) => {
                if let Some((since, failures)) = self.failing.take() {
                    tracing::warn!(
                        failed_commits = failures,
                        after = %humantime::format_duration(round(since.elapsed())),
                        "storage writable again; acknowledging writes"
                    );
                }
                Verdict::Serve
            }
            Err(Fault::Full(text)) => {
                match &mut self.failing {
                    Some((_, n)) => *n += 1,
                    None => {
                        self.failing = Some((Instant::now(), 1));
                        tracing::error!(
                            error = %text,
                            "storage full: writes are refused and clients told to resend \
                             (ERROR 12); RocksDB resumes by itself once more than 64 MiB \
                             are free again in the data folder"
                        );
                    }
                }
                Verdict::Serve
            }
            Err(Fault::Failed(text)) => {
                tracing::error!(
                    error = %text,
                    "storage failed: the store refuses writes until it is reopened; \
                     stopping so that ternd is restarted (nothing unacknowledged was lost: \
                     clients resend it)"
                );
                Verdict::Stop(text.clone())
            }
        }
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_keeps_serving_and_anything_else_stops() {
        let mut h = Health::default();
        let full = Fault::Full("IO error: No space left on device".into());
        assert_eq!(h.on_commit(Err(&full)), Verdict::Serve);
        assert_eq!(h.on_commit(Err(&full)), Verdict::Serve);
        assert_eq!(h.failing.map(|(_, n)| n), Some(2));
        assert_eq!(h.on_commit(Ok(())), Verdict::Serve);
        assert!(h.failing.is_none(), "recovered");
        let eio = Fault::Failed("IO error: Input/output error".into());
        assert_eq!(
            h.on_commit(Err(&eio)),
            Verdict::Stop("IO error: Input/output error".into())
        );
    }

    #[test]
    fn only_rocksdb_no_space_counts_as_full() {
        assert!(matches!(
            Fault::committer_stopped(),
            Fault::Failed(t) if t.contains("commit thread")
        ));
        let corrupt = StoreError::MissingColumnFamily("inbox");
        assert_eq!(
            Fault::of(&corrupt),
            Fault::Failed("column family \"inbox\" is missing".into())
        );
    }
}
