//! Group commit: many small [`WriteBatch`]es, one fsync.
//!
//! A [`GroupCommitter`] owns a dedicated OS thread. Callers
//! [`submit`](GroupCommitter::submit) batches into a bounded queue. The thread
//! takes the first queued batch, then every other batch queued at that
//! moment (up to [`GroupCommitConfig::max_group`]), concatenates their ops in
//! submission order into one [`WriteBatch`], commits it with a single
//! [`Store::commit`] (for [`RocksStore`](super::RocksStore): one WAL write and
//! one fsync) and completes every batch of the group with the same result.
//!
//! While one group's fsync is in flight, new batches accumulate in the queue
//! and form the next group, so the fsync rate adapts to the load: one fsync
//! per batch when idle, one per hundreds of batches under heavy load.
//!
//! Because groups are committed in order by one thread, a batch's completion
//! implies every batch submitted before it (by any thread, in queue order) is
//! durable too. A merged group is atomic as a whole: on failure, none of its
//! batches is applied and all of them get the same error.
//!
//! # Backpressure
//!
//! The queue holds at most [`GroupCommitConfig::queue_capacity`] batches.
//! [`submit`](GroupCommitter::submit) and
//! [`submit_with`](GroupCommitter::submit_with) **block** the calling thread
//! while the queue is full. Async drivers, which must not block, use
//! [`try_submit`](GroupCommitter::try_submit) /
//! [`try_submit_with`](GroupCommitter::try_submit_with), which return
//! [`TrySubmitError::Busy`] (handing the batch back) instead.
//!
//! # Shutdown
//!
//! Dropping the committer (or calling [`shutdown`](GroupCommitter::shutdown))
//! closes the queue, lets the thread commit everything already queued, and
//! joins it.
//!
//! # Failure
//!
//! A store error is reported to every batch of the failed group, and the
//! committer **fences**: every batch queued after the failed group fails
//! with the same error, unwritten, until the submitter calls
//! [`resume`](GroupCommitter::resume). A submitter that pipelines (submits
//! a batch built on the in-memory effects of one not yet durable) needs
//! this: the later batch must never land without the earlier one. It rolls
//! back when it hears of the failure, then resumes; batches submitted after
//! that are written again. If `Store::commit` *panics*, the store's state is
//! unknown: the committer fails stop. The batches of that group and every
//! later one are dropped without completion (handles report
//! [`CommitError::Closed`]; callbacks are dropped unrun, so a tokio oneshot
//! receiver sees its sender dropped) and submits return `Closed`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, TrySendError};
use tern_core::store::{Store, WriteBatch};

use super::commit_queue::{self, QueueRx, QueueTx};

/// What a completion callback receives: the group's commit result.
pub type CommitResult<E> = Result<(), Arc<E>>;

/// A completion callback, run on the committer thread once the batch's group
/// is committed (or failed). It must be quick and must not block: e.g. send
/// on a tokio oneshot channel.
pub type Completion<E> = Box<dyn FnOnce(CommitResult<E>) + Send + 'static>;

/// Configuration of a [`GroupCommitter`].
#[derive(Debug, Clone)]
pub struct GroupCommitConfig {
    /// Most batches waiting in the queue; submitters block (or get `Busy`)
    /// beyond it.
    pub queue_capacity: usize,
    /// Most batches merged into one commit. Bounds the size of one write and
    /// the latency the first batch of a group waits for the others.
    pub max_group: usize,
    /// Name of the committer thread.
    pub thread_name: String,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            queue_capacity: 4096,
            max_group: 1024,
            thread_name: "tern-group-commit".into(),
        }
    }
}

/// Counters of a [`GroupCommitter`] (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Batches completed successfully.
    pub batches: u64,
    /// Ops in those batches.
    pub ops: u64,
    /// Calls to `Store::commit` (one fsync each for a syncing store),
    /// successful or not. Groups with no ops at all skip the commit.
    pub fsyncs: u64,
    /// Most batches merged into one commit so far.
    pub largest_group: u64,
    /// Batches completed with an error.
    pub failed_batches: u64,
}

/// Why a batch could not be queued.
#[derive(Debug)]
pub enum TrySubmitError<T> {
    /// The queue is full; try again later. Holds what was submitted.
    Busy(T),
    /// The committer has stopped (its store panicked). Holds what was submitted.
    Closed(T),
}

impl<T> TrySubmitError<T> {
    /// What was submitted, handed back.
    pub fn into_inner(self) -> T {
        match self {
            TrySubmitError::Busy(t) | TrySubmitError::Closed(t) => t,
        }
    }
}

impl<T> std::fmt::Display for TrySubmitError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrySubmitError::Busy(_) => f.write_str("group commit queue is full"),
            TrySubmitError::Closed(_) => f.write_str("group committer has stopped"),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for TrySubmitError<T> {}

/// The committer has stopped (its store panicked); the batch was not queued.
#[derive(Debug)]
pub struct Closed(pub WriteBatch);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("group committer has stopped")
    }
}

impl std::error::Error for Closed {}

/// Why a submitted batch did not commit.
#[derive(Debug)]
pub enum CommitError<E> {
    /// The store failed the commit of the batch's group; nothing of the group
    /// was applied.
    Store(Arc<E>),
    /// The committer stopped before completing the batch (its store
    /// panicked); whether the batch is durable is unknown.
    Closed,
}

impl<E> Clone for CommitError<E> {
    fn clone(&self) -> Self {
        match self {
            CommitError::Store(e) => CommitError::Store(e.clone()),
            CommitError::Closed => CommitError::Closed,
        }
    }
}

impl<E: std::fmt::Display> std::fmt::Display for CommitError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::Store(e) => write!(f, "commit failed: {e}"),
            CommitError::Closed => f.write_str("group committer stopped before completing"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CommitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CommitError::Store(e) => Some(&**e),
            CommitError::Closed => None,
        }
    }
}

/// Completion handle of a batch submitted with
/// [`submit`](GroupCommitter::submit).
#[derive(Debug)]
#[must_use = "a batch is durable only once its handle reports Ok"]
pub struct CommitHandle<E> {
    rx: Receiver<CommitResult<E>>,
}

impl<E> CommitHandle<E> {
    /// Blocks until the batch is committed (durable) or failed.
    pub fn wait(self) -> Result<(), CommitError<E>> {
        match self.rx.recv() {
            Ok(r) => r.map_err(CommitError::Store),
            Err(_) => Err(CommitError::Closed),
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (then `None`).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<(), CommitError<E>>> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Some(r.map_err(CommitError::Store)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Some(Err(CommitError::Closed))
            }
        }
    }

    /// The result if the batch is already complete.
    pub fn try_wait(&self) -> Option<Result<(), CommitError<E>>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r.map_err(CommitError::Store)),
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Some(Err(CommitError::Closed)),
        }
    }
}

struct Job<E> {
    batch: WriteBatch,
    done: Completion<E>,
}

/// What the queue carries.
enum Item<E> {
    Batch(Job<E>),
    /// Lift the fence of a failed group (see the module docs).
    Resume,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    ops: AtomicU64,
    fsyncs: AtomicU64,
    largest_group: AtomicU64,
    failed_batches: AtomicU64,
    dead: AtomicBool,
}

/// Commits [`WriteBatch`]es to a [`Store`] in groups, one commit per group.
/// See the [module documentation](self).
///
/// `GroupCommitter` is `Send + Sync`: share it (e.g. in an `Arc`) among
/// submitting threads.
pub struct GroupCommitter<S: Store> {
    store: Arc<S>,
    tx: Option<QueueTx<Item<S::Error>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl<S: Store> std::fmt::Debug for GroupCommitter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<S: Store> GroupCommitter<S> {
    /// Starts a committer over `store` with the default configuration.
    pub fn new(store: Arc<S>) -> std::io::Result<Self> {
        Self::with_config(store, GroupCommitConfig::default())
    }

    /// Starts a committer over `store`.
    pub fn with_config(store: Arc<S>, config: GroupCommitConfig) -> std::io::Result<Self> {
        let (tx, rx) = commit_queue::bounded(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let thread = {
            let store = store.clone();
            let counters = counters.clone();
            let max_group = config.max_group.max(1);
            std::thread::Builder::new()
                .name(config.thread_name)
                .spawn(move || run(&*store, &rx, &counters, max_group))?
        };
        Ok(GroupCommitter {
            store,
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// The store, for reads.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Queues `batch`, blocking while the queue is full. Wait on the returned
    /// handle for durability.
    pub fn submit(&self, batch: WriteBatch) -> Result<CommitHandle<S::Error>, Closed> {
        let (done, handle) = channel_completion();
        self.submit_with(batch, done).map_err(|(b, _)| b)?;
        Ok(handle)
    }

    /// Queues `batch` with a completion callback, blocking while the queue is
    /// full. On `Err` the callback is handed back unrun.
    #[allow(clippy::type_complexity)]
    pub fn submit_with(
        &self,
        batch: WriteBatch,
        done: Completion<S::Error>,
    ) -> Result<(), (Closed, Completion<S::Error>)> {
        let job = Job { batch, done };
        let Some(tx) = self.tx.as_ref().filter(|_| !self.is_dead()) else {
            return Err((Closed(job.batch), job.done));
        };
        tx.send(Item::Batch(job)).map_err(|item| match item {
            Item::Batch(job) => (Closed(job.batch), job.done),
            Item::Resume => unreachable!("a batch was sent"),
        })
    }

    /// Lifts the fence a failed group left: batches submitted from now on
    /// are written again. Call it once per failure heard of, after rolling
    /// back whatever the failed batches had assumed. Blocks while the queue
    /// is full; a stopped committer ignores it.
    pub fn resume(&self) {
        if let Some(tx) = self.tx.as_ref() {
            let _ = tx.send(Item::Resume);
        }
    }

    /// Queues `batch` if there is room, without blocking.
    pub fn try_submit(
        &self,
        batch: WriteBatch,
    ) -> Result<CommitHandle<S::Error>, TrySubmitError<WriteBatch>> {
        let (done, handle) = channel_completion();
        match self.try_submit_with(batch, done) {
            Ok(()) => Ok(handle),
            Err(TrySubmitError::Busy((b, _))) => Err(TrySubmitError::Busy(b)),
            Err(TrySubmitError::Closed((b, _))) => Err(TrySubmitError::Closed(b)),
        }
    }

    /// Queues `batch` with a completion callback if there is room, without
    /// blocking; on `Err` both are handed back.
    #[allow(clippy::type_complexity)]
    pub fn try_submit_with(
        &self,
        batch: WriteBatch,
        done: Completion<S::Error>,
    ) -> Result<(), TrySubmitError<(WriteBatch, Completion<S::Error>)>> {
        let job = Job { batch, done };
        let Some(tx) = self.tx.as_ref().filter(|_| !self.is_dead()) else {
            return Err(TrySubmitError::Closed((job.batch, job.done)));
        };
        tx.try_send(Item::Batch(job)).map_err(|e| match e {
            TrySendError::Full(Item::Batch(j)) => TrySubmitError::Busy((j.batch, j.done)),
            TrySendError::Disconnected(Item::Batch(j)) => TrySubmitError::Closed((j.batch, j.done)),
            _ => unreachable!("a batch was sent"),
        })
    }

    /// Submits `batch` and waits for it: a synchronous commit that shares its
    /// fsync with concurrent submitters.
    pub fn commit(&self, batch: WriteBatch) -> Result<(), CommitError<S::Error>> {
        match self.submit(batch) {
            Ok(h) => h.wait(),
            Err(Closed(_)) => Err(CommitError::Closed),
        }
    }

    /// Batches waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.as_ref().map_or(0, QueueTx::len)
    }

    /// True once the committer has failed stop (its store panicked).
    pub fn is_dead(&self) -> bool {
        self.counters.dead.load(Ordering::Acquire)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> GroupCommitStats {
        let c = &self.counters;
        GroupCommitStats {
            batches: c.batches.load(Ordering::Relaxed),
            ops: c.ops.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            largest_group: c.largest_group.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
        }
    }

    /// Commits everything queued, stops the thread and returns the final
    /// counters. Dropping the committer does the same.
    pub fn shutdown(mut self) -> GroupCommitStats {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        // Closing the queue ends the thread's loop once it is drained.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("group commit thread panicked");
            }
        }
    }
}

impl<S: Store> Drop for GroupCommitter<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

fn channel_completion<E: Send + Sync + 'static>() -> (Completion<E>, CommitHandle<E>) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let done: Completion<E> = Box::new(move |r| {
        // The handle may have been dropped: nobody is waiting, that is fine.
        let _ = tx.send(r);
    });
    (done, CommitHandle { rx })
}

/// The committer thread.
fn run<S: Store>(store: &S, rx: &QueueRx<Item<S::Error>>, c: &Counters, max_group: usize) {
    let mut group: Vec<Job<S::Error>> = Vec::new();
    let mut merged = WriteBatch::default();
    let mut dones: Vec<Completion<S::Error>> = Vec::new();
    // The error of the last failed group, until a resume.
    let mut fence: Option<Arc<S::Error>> = None;
    // `recv` keeps returning queued jobs after the queue is closed, so a
    // shutdown commits everything submitted before it.
    while let Some(item) = rx.recv() {
        let first = match item {
            Item::Resume => {
                fence = None;
                continue;
            }
            Item::Batch(job) => job,
        };
        if let Some(e) = &fence {
            c.failed_batches.fetch_add(1, Ordering::Relaxed);
            complete(first.done, Err(e.clone()));
            continue;
        }
        group.push(first);
        while group.len() < max_group {
            match rx.try_recv() {
                Some(Item::Batch(j)) => group.push(j),
                // Not fenced: nothing to lift.
                Some(Item::Resume) => {}
                None => break,
            }
        }

        let n = group.len() as u64;
        let ops: usize = group.iter().map(|j| j.batch.ops.len()).sum();
        // Merge in submission order. A lone batch is committed as is.
        let to_commit = if group.len() == 1 {
            let j = group.pop().expect("one job");
            dones.push(j.done);
            j.batch
        } else {
            merged.ops.reserve(ops);
            for mut j in group.drain(..) {
                merged.ops.append(&mut j.batch.ops);
                dones.push(j.done);
            }
            std::mem::take(&mut merged)
        };

        let result = if to_commit.is_empty() {
            // Nothing to write: everything before is already durable.
            Ok(())
        } else {
            c.fsyncs.fetch_add(1, Ordering::Relaxed);
            match catch_unwind(AssertUnwindSafe(|| store.commit(&to_commit))) {
                Ok(r) => r.map_err(Arc::new),
                Err(_) => {
                    fail_stop(c, rx, &mut dones);
                    return;
                }
            }
        };

        match &result {
            Ok(()) => {
                c.batches.fetch_add(n, Ordering::Relaxed);
                c.ops.fetch_add(ops as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, batches = n, ops, "group commit failed");
                c.failed_batches.fetch_add(n, Ordering::Relaxed);
                fence = Some(e.clone());
            }
        }
        c.largest_group.fetch_max(n, Ordering::Relaxed);

        for done in dones.drain(..) {
            complete(done, result.clone());
        }

        // Reuse the allocation of the merged op list for the next group.
        if merged.ops.capacity() == 0 {
            let mut v = to_commit.ops;
            v.clear();
            // Do not hold on to a huge buffer after a burst.
            if v.capacity() <= 1 << 16 {
                merged.ops = v;
            }
        }
    }
}

fn complete<E>(done: Completion<E>, r: CommitResult<E>) {
    if catch_unwind(AssertUnwindSafe(move || done(r))).is_err() {
        tracing::error!("group commit completion callback panicked");
    }
}

/// The store panicked mid-commit: its state is unknown. Drop every pending
/// completion unrun (waiters see `Closed`) until the committer is dropped.
fn fail_stop<E>(c: &Counters, rx: &QueueRx<Item<E>>, dones: &mut Vec<Completion<E>>) {
    tracing::error!("store panicked during group commit; the committer stops");
    c.dead.store(true, Ordering::Release);
    dones.clear();
    while let Some(job) = rx.recv() {
        drop(job);
    }
}

#[cfg(test)]
#[path = "group_commit_tests.rs"]
mod tests;
