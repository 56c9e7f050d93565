//! The events a [`Client`](super::Client) holds for its application.
//!
//! The driver queues events here without ever waiting, so a session never
//! stalls because the application does not call `recv` (a send-only app).
//! Memory stays bounded without dropping anything the app cannot recover:
//! - inbox entries are acknowledged only once `recv` has returned them
//!   ([`EventQueue::taken`]), so unread entries stay unacknowledged on the
//!   server, whose push window (256) and pull pages then hold back the rest;
//! - status events are coalesced: consecutive NOTIFYs keep the highest head,
//!   consecutive page ends the latest, and a session lost again before the
//!   application saw the previous reconnection keeps one `Disconnected`
//!   (the next `Connected` describes the new session).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::Event;

pub(super) struct EventQueue {
    state: Mutex<State>,
    /// Wakes `Client::recv`.
    readable: Notify,
    /// Wakes the driver: the application took an entry, or stopped.
    taken: Notify,
}

struct State {
    /// Events with the inbox generation they belong to.
    events: VecDeque<(u64, Event)>,
    /// Bumped when the inbox epoch changes: entries of an older inbox no
    /// longer move the checkpoint.
    generation: u64,
    /// Highest inbox sequence of the current generation returned by `recv`.
    taken: u64,
    /// The driver has stopped: `recv` returns `None` once empty.
    closed: bool,
}

impl State {
    /// Start of the trailing run of status events (after the last entry).
    fn status_run(&self) -> usize {
        self.events
            .iter()
            .rposition(|(_, e)| matches!(e, Event::Entry(_)))
            .map_or(0, |i| i + 1)
    }

    fn push(&mut self, e: Event) {
        // One storage notice per run of status events is enough: a
        // send-only application that never reads must not grow the queue.
        if matches!(e, Event::StorageUnavailable { .. })
            && self
                .events
                .iter()
                .skip(self.status_run())
                .any(|(_, q)| matches!(q, Event::StorageUnavailable { .. }))
        {
            return;
        }
        match (&e, self.events.back_mut()) {
            (Event::Notify { head }, Some((_, Event::Notify { head: queued }))) => {
                *queued = (*queued).max(*head);
                return;
            }
            (Event::PageEnd { last, end }, Some((_, Event::PageEnd { last: ql, end: qe })))
                if *ql <= *last =>
            {
                (*ql, *qe) = (*last, *end);
                return;
            }
            (Event::Disconnected, _) => {
                let run = self.status_run();
                if let Some(i) = self
                    .events
                    .iter()
                    .skip(run)
                    .position(|(_, e)| matches!(e, Event::Disconnected))
                {
                    // The application has not seen that earlier loss yet:
                    // what followed it (a session now lost too) is stale.
                    self.events.truncate(run + i + 1);
                    return;
                }
            }
            _ => {}
        }
        let generation = self.generation;
        self.events.push_back((generation, e));
    }
}

impl EventQueue {
    /// An empty queue; entries up to `checkpoint` count as taken.
    pub(super) fn new(checkpoint: u64) -> EventQueue {
        EventQueue {
            state: Mutex::new(State {
                events: VecDeque::new(),
                generation: 0,
                taken: checkpoint,
                closed: false,
            }),
            readable: Notify::new(),
            taken: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event; never waits.
    pub(super) fn push(&self, e: Event) {
        self.lock().push(e);
        self.readable.notify_one();
    }

    /// The driver stopped: `recv` drains what is left, then returns `None`.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_one();
    }

    /// A new inbox epoch starting after `checkpoint`: entries still queued
    /// belong to the old inbox and no longer count as taken when read.
    pub(super) fn new_epoch(&self, checkpoint: u64) {
        let mut s = self.lock();
        s.generation += 1;
        s.taken = checkpoint;
    }

    /// Highest inbox sequence the application has taken with `recv`.
    pub(super) fn taken(&self) -> u64 {
        self.lock().taken
    }

    /// Resolves after `recv` took an entry (at once if one was taken since
    /// the last call).
    pub(super) async fn wait_taken(&self) {
        self.taken.notified().await
    }

    /// Queued events (for tests and diagnostics).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// The next event, waiting for one; `None` once the driver stopped and
    /// everything queued was taken. Cancel-safe.
    pub(super) async fn recv(&self) -> Option<Event> {
        loop {
            let readable = self.readable.notified();
            {
                let mut s = self.lock();
                if let Some((generation, e)) = s.events.pop_front() {
                    let took = match &e {
                        Event::Entry(d) if generation == s.generation && d.seq > s.taken => {
                            s.taken = d.seq;
                            true
                        }
                        _ => false,
                    };
                    drop(s);
                    if took {
                        self.taken.notify_one();
                    }
                    return Some(e);
                }
                if s.closed {
                    return None;
                }
            }
            readable.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ConvRef, Entry, SyncBody};

    fn entry(seq: u64) -> Event {
        Event::Entry(Entry {
            seq,
            conv: ConvRef::direct(1),
            conv_seq: seq,
            topic: 1,
            from_user: 1,
            from_device: 1,
            from_seq: seq,
            time_ms: 0,
            body: SyncBody::Message {
                msg_type: 0,
                payload: bytes::Bytes::new(),
            },
        })
    }

    fn connected(head: u64) -> Event {
        Event::Connected {
            user: 1,
            device: 1,
            head,
            checkpoint: 0,
            pull_mode: false,
        }
    }

    async fn drain(q: &EventQueue) -> Vec<Event> {
        q.close();
        let mut out = Vec::new();
        while let Some(e) = q.recv().await {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn status_events_nobody_reads_stay_bounded() {
        let q = EventQueue::new(0);
        q.push(connected(0));
        q.push(entry(1));
        for i in 0..10_000 {
            q.push(Event::Notify { head: i });
            q.push(Event::Disconnected);
            q.push(connected(i));
            q.push(Event::Notify { head: i + 1 });
            q.push(Event::PageEnd {
                last: i,
                end: false,
            });
        }
        assert!(q.len() <= 8, "{} events queued", q.len());
        let got = drain(&q).await;
        assert_eq!(
            got,
            vec![
                connected(0),
                entry(1),
                Event::Notify { head: 0 },
                Event::Disconnected,
                connected(9_999),
                Event::Notify { head: 10_000 },
                Event::PageEnd {
                    last: 9_999,
                    end: false
                },
            ]
        );
    }

    #[tokio::test]
    async fn storage_notices_nobody_reads_stay_bounded() {
        let q = EventQueue::new(0);
        let notice = || Event::StorageUnavailable {
            reason: "disk full".into(),
        };
        for _ in 0..1_000 {
            q.push(notice());
        }
        q.push(entry(1));
        for _ in 0..1_000 {
            q.push(notice());
        }
        assert_eq!(drain(&q).await, vec![notice(), entry(1), notice()]);
    }

    #[tokio::test]
    async fn entries_count_as_taken_only_when_received() {
        let q = EventQueue::new(3);
        for seq in 4..=6 {
            q.push(entry(seq));
        }
        assert_eq!(q.taken(), 3, "queued is not taken");
        assert_eq!(q.recv().await, Some(entry(4)));
        assert_eq!(q.taken(), 4);
        // A new inbox: the entries left are from the old one.
        q.new_epoch(0);
        q.push(entry(1));
        assert_eq!(q.recv().await, Some(entry(5)));
        assert_eq!(q.taken(), 0, "an old-epoch entry moves nothing");
        let _ = q.recv().await;
        assert_eq!(q.recv().await, Some(entry(1)));
        assert_eq!(q.taken(), 1);
    }
}
