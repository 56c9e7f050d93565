//! Unit tests of the group committer: merging, bounds, callbacks, back-pressure,
//! errors, a panicking store, draining on drop.

use super::*;
use std::sync::{Condvar, Mutex};

use bytes::Bytes;
use tern_core::conv::{ConvKey, ConvState};
use tern_core::store::{ConvRecord, MemStore, StoredEntry, UserConv, WriteOp};

fn append(user: u64, seq: u64) -> WriteBatch {
    WriteBatch {
        ops: vec![WriteOp::Append {
            user,
            entry: StoredEntry::inline(seq, user, Bytes::from(format!("{user}/{seq}"))),
        }],
    }
}

/// A store whose commits wait until the test opens a gate, and that
/// fails or panics on demand.
#[derive(Default)]
struct GateStore {
    inner: MemStore,
    open: Mutex<bool>,
    cv: Condvar,
    commits: Mutex<Vec<usize>>,
    fail: AtomicBool,
    panic: AtomicBool,
    entered: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("injected failure")]
struct Injected;

impl GateStore {
    fn set_open(&self, v: bool) {
        *self.open.lock().unwrap() = v;
        self.cv.notify_all();
    }

    /// Waits until `n` commits have started (the committer thread has
    /// taken its group and is blocked at the gate).
    fn wait_entered(&self, n: u64) {
        while self.entered.load(Ordering::SeqCst) < n {
            std::thread::yield_now();
        }
    }
}

impl Store for GateStore {
    type Error = Injected;
    fn inbox_meta(&self, user: u64) -> Result<Option<tern_core::store::InboxMeta>, Injected> {
        Ok(self.inner.inbox_meta(user).unwrap())
    }
    fn devices(&self, user: u64) -> Result<Vec<(u32, tern_core::store::DeviceState)>, Injected> {
        Ok(self.inner.devices(user).unwrap())
    }
    fn read_inbox(&self, user: u64, after: u64, max: usize) -> Result<Vec<StoredEntry>, Injected> {
        Ok(self.inner.read_inbox(user, after, max).unwrap())
    }
    fn conv_meta(&self, c: &ConvKey) -> Result<Option<tern_core::store::ConvMeta>, Injected> {
        Ok(self.inner.conv_meta(c).unwrap())
    }
    fn convs_after(
        &self,
        after: Option<&ConvKey>,
        max: usize,
    ) -> Result<Vec<(ConvKey, tern_core::store::ConvMeta)>, Injected> {
        Ok(self.inner.convs_after(after, max).unwrap())
    }
    fn read_conv(&self, c: &ConvKey, before: u64, max: usize) -> Result<Vec<ConvRecord>, Injected> {
        Ok(self.inner.read_conv(c, before, max).unwrap())
    }
    fn user_conv(&self, user: u64, c: &ConvKey) -> Result<Option<ConvState>, Injected> {
        Ok(self.inner.user_conv(user, c).unwrap())
    }
    fn user_convs_since(
        &self,
        user: u64,
        since: u64,
        max: usize,
    ) -> Result<Vec<UserConv>, Injected> {
        Ok(self.inner.user_convs_since(user, since, max).unwrap())
    }
    fn hidden(&self, user: u64, c: &ConvKey, low: u64, high: u64) -> Result<Vec<u64>, Injected> {
        Ok(self.inner.hidden(user, c, low, high).unwrap())
    }
    fn group_members(
        &self,
        group: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, tern_core::store::GroupMember)>, Injected> {
        Ok(self.inner.group_members(group, after, max).unwrap())
    }
    fn user_groups(&self, user: u64, after: u64, max: usize) -> Result<Vec<u64>, Injected> {
        Ok(self.inner.user_groups(user, after, max).unwrap())
    }
    fn commit(&self, batch: &WriteBatch) -> Result<(), Injected> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut g = self.open.lock().unwrap();
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
        drop(g);
        if self.panic.load(Ordering::SeqCst) {
            panic!("injected panic");
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(Injected);
        }
        self.commits.lock().unwrap().push(batch.ops.len());
        self.inner.commit(batch).unwrap();
        Ok(())
    }
}

fn seqs<S: Store>(s: &S, user: u64) -> Vec<u64> {
    s.read_inbox(user, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect()
}

#[test]
fn send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GroupCommitter<MemStore>>();
    assert_send_sync::<GroupCommitter<crate::store::RocksStore>>();
}

#[test]
fn merges_queued_batches_in_order() {
    let store = Arc::new(GateStore::default());
    let gc = GroupCommitter::new(store.clone()).unwrap();
    // The first batch blocks in commit; the rest pile up behind it.
    let first = gc.submit(append(1, 1)).unwrap();
    store.wait_entered(1);
    let rest: Vec<_> = (2..=50).map(|q| gc.submit(append(1, q)).unwrap()).collect();
    assert!(first.try_wait().is_none());
    store.set_open(true);
    first.wait().unwrap();
    for h in rest {
        h.wait().unwrap();
    }
    assert_eq!(seqs(&*store, 1), (1..=50).collect::<Vec<_>>());
    assert_eq!(*store.commits.lock().unwrap(), vec![1, 49]);
    let st = gc.shutdown();
    assert_eq!(
        st,
        GroupCommitStats {
            batches: 50,
            ops: 50,
            fsyncs: 2,
            largest_group: 49,
            failed_batches: 0,
        }
    );
}

#[test]
fn max_group_bounds_merging() {
    let store = Arc::new(GateStore::default());
    let gc = GroupCommitter::with_config(
        store.clone(),
        GroupCommitConfig {
            max_group: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let first = gc.submit(append(1, 1)).unwrap();
    store.wait_entered(1);
    let rest: Vec<_> = (2..=31).map(|q| gc.submit(append(1, q)).unwrap()).collect();
    store.set_open(true);
    first.wait().unwrap();
    rest.into_iter().for_each(|h| h.wait().unwrap());
    assert_eq!(*store.commits.lock().unwrap(), vec![1, 10, 10, 10]);
}

#[test]
fn concurrent_submitters_all_complete() {
    let store = Arc::new(MemStore::new());
    let gc = Arc::new(
        GroupCommitter::with_config(
            store.clone(),
            GroupCommitConfig {
                queue_capacity: 8,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let gc = gc.clone();
            std::thread::spawn(move || {
                for q in 1..=200 {
                    gc.commit(append(t, q)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for t in 0..8 {
        assert_eq!(seqs(&*store, t), (1..=200).collect::<Vec<_>>());
    }
    let st = gc.stats();
    assert_eq!(st.batches, 1600);
    assert_eq!(st.ops, 1600);
    assert!(st.fsyncs <= 1600 && st.fsyncs >= 1);
    assert_eq!(store.commits(), st.fsyncs);
}

#[test]
fn callbacks_and_empty_batches() {
    let store = Arc::new(MemStore::new());
    let gc = GroupCommitter::new(store.clone()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for q in 1..=5 {
        let tx = tx.clone();
        gc.submit_with(
            append(9, q),
            Box::new(move |r| tx.send((q, r.is_ok())).unwrap()),
        )
        .map_err(|_| ())
        .unwrap();
    }
    let got: Vec<_> = (0..5).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(got, (1..=5).map(|q| (q, true)).collect::<Vec<_>>());
    // An empty batch completes without touching the store.
    let before = store.commits();
    gc.commit(WriteBatch::default()).unwrap();
    assert_eq!(store.commits(), before);
    // A panicking callback does not kill the committer.
    gc.submit_with(append(9, 6), Box::new(|_| panic!("callback panic")))
        .map_err(|_| ())
        .unwrap();
    gc.commit(append(9, 7)).unwrap();
    assert_eq!(seqs(&*store, 9), (1..=7).collect::<Vec<_>>());
}

#[test]
fn try_submit_reports_busy() {
    let store = Arc::new(GateStore::default());
    let gc = GroupCommitter::with_config(
        store.clone(),
        GroupCommitConfig {
            queue_capacity: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let first = gc.submit(append(1, 1)).unwrap();
    store.wait_entered(1);
    let a = gc.try_submit(append(1, 2)).unwrap();
    let b = gc.try_submit(append(1, 3)).unwrap();
    match gc.try_submit(append(1, 4)) {
        Err(TrySubmitError::Busy(batch)) => assert_eq!(batch, append(1, 4)),
        other => panic!("expected Busy, got {other:?}"),
    }
    store.set_open(true);
    for h in [first, a, b] {
        h.wait().unwrap();
    }
    assert_eq!(seqs(&*store, 1), vec![1, 2, 3]);
}

#[test]
fn errors_reach_the_whole_group() {
    let store = Arc::new(GateStore::default());
    let gc = GroupCommitter::new(store.clone()).unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let first = gc.submit(append(1, 1)).unwrap();
    store.wait_entered(1);
    let rest: Vec<_> = (2..=4).map(|q| gc.submit(append(1, q)).unwrap()).collect();
    store.set_open(true);
    assert!(matches!(first.wait(), Err(CommitError::Store(_))));
    let errs: Vec<_> = rest.into_iter().map(|h| h.wait().unwrap_err()).collect();
    // One failed commit, one shared error.
    match (&errs[0], &errs[2]) {
        (CommitError::Store(a), CommitError::Store(b)) => assert!(Arc::ptr_eq(a, b)),
        _ => panic!("expected store errors"),
    }
    assert!(seqs(&*store, 1).is_empty());
    // The committer keeps going once the store recovers and the submitter
    // has resumed.
    store.fail.store(false, Ordering::SeqCst);
    gc.resume();
    gc.commit(append(1, 5)).unwrap();
    assert_eq!(seqs(&*store, 1), vec![5]);
    let st = gc.stats();
    // The batches queued behind the failed one were fenced: never tried.
    assert_eq!((st.batches, st.failed_batches, st.fsyncs), (1, 4, 2));
}

/// A pipelining submitter's later batch assumes the earlier one landed: it
/// must not be written after that one failed, even once the store works
/// again, until the submitter has heard of the failure and resumed.
#[test]
fn batches_behind_a_failed_one_are_fenced_until_resume() {
    let store = Arc::new(GateStore::default());
    let gc = GroupCommitter::new(store.clone()).unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let first = gc.submit(append(1, 1)).unwrap();
    store.wait_entered(1);
    store.set_open(true);
    assert!(matches!(first.wait(), Err(CommitError::Store(_))));
    // The disk is back, but the submitter has not rolled back yet.
    store.fail.store(false, Ordering::SeqCst);
    let built_on_first = gc.submit(append(1, 2)).unwrap();
    assert!(matches!(built_on_first.wait(), Err(CommitError::Store(_))));
    assert!(
        seqs(&*store, 1).is_empty(),
        "nothing written past the failure"
    );
    gc.resume();
    gc.commit(append(1, 1)).unwrap();
    gc.commit(append(1, 2)).unwrap();
    assert_eq!(seqs(&*store, 1), vec![1, 2]);
    let st = gc.stats();
    assert_eq!((st.batches, st.failed_batches, st.fsyncs), (2, 2, 3));
}

/// A resume with no failure to lift changes nothing.
#[test]
fn a_resume_without_a_failure_is_harmless() {
    let store = Arc::new(GateStore::default());
    store.set_open(true);
    let gc = GroupCommitter::new(store.clone()).unwrap();
    gc.resume();
    gc.commit(append(1, 1)).unwrap();
    gc.resume();
    gc.commit(append(1, 2)).unwrap();
    assert_eq!(seqs(&*store, 1), vec![1, 2]);
}

#[test]
fn store_panic_fails_stop() {
    let store = Arc::new(GateStore::default());
    store.set_open(true);
    store.panic.store(true, Ordering::SeqCst);
    let gc = GroupCommitter::new(store.clone()).unwrap();
    assert!(matches!(gc.commit(append(1, 1)), Err(CommitError::Closed)));
    while !gc.is_dead() {
        std::thread::yield_now();
    }
    assert!(matches!(gc.commit(append(1, 2)), Err(CommitError::Closed)));
    assert!(matches!(
        gc.try_submit(append(1, 3)),
        Err(TrySubmitError::Closed(_))
    ));
    drop(gc); // joins without hanging
}

#[test]
fn drop_drains_the_queue() {
    let store = Arc::new(GateStore::default());
    let gc = GroupCommitter::new(store.clone()).unwrap();
    let handles: Vec<_> = (1..=20).map(|q| gc.submit(append(3, q)).unwrap()).collect();
    let opener = {
        let store = store.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            store.set_open(true);
        })
    };
    drop(gc);
    opener.join().unwrap();
    for h in handles {
        h.wait().unwrap();
    }
    assert_eq!(seqs(&*store, 3), (1..=20).collect::<Vec<_>>());
}
