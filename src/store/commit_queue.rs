//! The group committer's queue: a bounded crossbeam channel whose one
//! receiver sleeps without spinning.
//!
//! A blocking `crossbeam_channel::Receiver::recv` spins, then calls
//! `sched_yield` four times, before it sleeps. The committer waits on its
//! queue once per group, so at a chat rate (one message every few
//! milliseconds, one group each) it yielded four times per message: 6,399
//! `sched_yield` calls and 8,000 context switches in 8 s at 200 messages/s,
//! all of them on a core the event loop wanted. Here the receiver only polls
//! the queue and parks its thread when it is empty; a sender unparks it, and
//! only when it is actually asleep, so a busy committer costs its submitters
//! one atomic swap and no system call.
//!
//! Lost wake-ups are ruled out the usual way: the receiver announces that it
//! will sleep, then looks at the queue once more; a sender pushes, then looks
//! at the announcement. A full fence on each side orders the two, so at least
//! one of them sees the other. `Thread::unpark` before `park` is not lost
//! either: the next `park` returns at once.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

struct Sleeper {
    /// The thread that last went to sleep on the queue (the receiver may
    /// move between threads between waits).
    thread: Mutex<Option<Thread>>,
    /// Set by the receiver before it parks; taken by the sender that wakes it.
    asleep: AtomicBool,
}

impl Sleeper {
    /// Called by a sender after every push and on disconnect.
    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::AcqRel) {
            let sleeping = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(t) = sleeping.as_ref() {
                t.unpark();
            }
        }
    }
}

/// A bounded queue with one sending and one receiving side.
pub(super) fn bounded<T>(capacity: usize) -> (QueueTx<T>, QueueRx<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let sleeper = Arc::new(Sleeper {
        thread: Mutex::new(None),
        asleep: AtomicBool::new(false),
    });
    (
        QueueTx {
            tx: Some(tx),
            sleeper: sleeper.clone(),
        },
        QueueRx {
            rx,
            sleeper,
            one_thread: PhantomData,
        },
    )
}

/// The sending side. Dropping it disconnects the queue: the receiver gets
/// what is still queued, then `None`.
pub(super) struct QueueTx<T> {
    tx: Option<Sender<T>>,
    sleeper: Arc<Sleeper>,
}

impl<T> QueueTx<T> {
    /// Queues `item`, blocking while the queue is full. `Err` hands it back
    /// when the receiver is gone.
    pub(super) fn send(&self, item: T) -> Result<(), T> {
        let tx = self.tx.as_ref().expect("sender is present until drop");
        tx.send(item).map_err(|e| e.into_inner())?;
        self.sleeper.wake();
        Ok(())
    }

    /// Queues `item` if there is room.
    pub(super) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let tx = self.tx.as_ref().expect("sender is present until drop");
        tx.try_send(item)?;
        self.sleeper.wake();
        Ok(())
    }

    /// Items waiting.
    pub(super) fn len(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.sleeper.wake();
    }
}

/// The receiving side. It may move between threads, but it is not `Sync`:
/// one thread at a time waits on it, and that is the thread a sender
/// unparks.
pub(super) struct QueueRx<T> {
    rx: Receiver<T>,
    sleeper: Arc<Sleeper>,
    one_thread: PhantomData<Cell<()>>,
}

impl<T> QueueRx<T> {
    /// The next item, sleeping while the queue is empty; `None` once the
    /// sender is gone and everything it queued has been taken.
    pub(super) fn recv(&self) -> Option<T> {
        loop {
            match self.rx.try_recv() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            // Name the thread to wake before announcing the sleep: a sender
            // that sees the announcement finds it.
            *self
                .sleeper
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
            self.sleeper.asleep.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            match self.rx.try_recv() {
                Ok(item) => {
                    self.sleeper.asleep.store(false, Ordering::Relaxed);
                    return Some(item);
                }
                Err(TryRecvError::Disconnected) => return None,
                // A wake-up that finds the queue still empty (a spurious
                // one) just goes round again.
                Err(TryRecvError::Empty) => std::thread::park(),
            }
        }
    }

    /// The next item if one is queued now.
    pub(super) fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// How long a test waits for the other thread before it fails: a
    /// bound on a wait, never a sleep.
    const LIMIT: Duration = Duration::from_secs(30);

    /// Waits until the receiver has announced that it parks.
    fn until_asleep(s: &Sleeper) {
        let deadline = Instant::now() + LIMIT;
        while !s.asleep.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the receiver never went to sleep"
            );
            std::thread::yield_now();
        }
    }

    /// Runs `f` on a thread of its own; the returned function waits for its
    /// result, and fails the test instead of hanging on a lost wake-up.
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> impl FnOnce() -> T {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(f());
        });
        move || {
            result
                .recv_timeout(LIMIT)
                .expect("the receiving thread never finished: a lost wake-up")
        }
    }

    #[test]
    fn items_arrive_in_order_then_none_after_the_sender_is_dropped() {
        let (tx, rx) = bounded(4);
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(
            (rx.recv(), rx.recv(), rx.recv()),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn a_sleeping_receiver_wakes_for_every_item_of_a_long_stream() {
        let (tx, rx) = bounded(2);
        let sleeper = tx.sleeper.clone();
        let n = 50_000u32;
        let consumer = on_thread(move || {
            let mut next = 0;
            while let Some(i) = rx.recv() {
                assert_eq!(i, next, "in order");
                next += 1;
            }
            next
        });
        for i in 0..n {
            tx.send(i).unwrap();
            if i % 1000 == 0 {
                // Let the receiver fall asleep now and then.
                until_asleep(&sleeper);
            }
        }
        drop(tx);
        assert_eq!(consumer(), n);
    }

    #[test]
    fn dropping_the_sender_wakes_a_sleeping_receiver() {
        let (tx, rx) = bounded::<u8>(1);
        let sleeper = tx.sleeper.clone();
        let consumer = on_thread(move || rx.recv());
        until_asleep(&sleeper);
        drop(tx);
        assert_eq!(consumer(), None);
    }

    #[test]
    fn a_receiver_moved_to_another_thread_is_woken_there() {
        let (tx, rx) = bounded(1);
        let sleeper = tx.sleeper.clone();
        // One thread sleeps on the queue, takes an item, and hands the
        // receiver on; the next sleep is another thread's.
        let first = on_thread(move || (rx.recv(), rx));
        until_asleep(&sleeper);
        tx.send(1).unwrap();
        let (got, rx) = first();
        assert_eq!(got, Some(1));
        let second = on_thread(move || rx.recv());
        until_asleep(&sleeper);
        tx.send(2).unwrap();
        assert_eq!(second(), Some(2));
    }

    #[test]
    fn try_send_reports_a_full_queue_and_hands_the_item_back() {
        let (tx, rx) = bounded(1);
        tx.try_send(1).unwrap();
        assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
        assert_eq!(tx.len(), 1);
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn sends_fail_once_the_receiver_is_gone() {
        let (tx, rx) = bounded(1);
        drop(rx);
        assert_eq!(tx.send(7), Err(7));
        assert!(matches!(tx.try_send(8), Err(TrySendError::Disconnected(8))));
    }
}
