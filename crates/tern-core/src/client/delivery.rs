//! What the application was handed and released, and the checkpoint to
//! persist: the client's delivery state, which survives re-logins.
//!
//! The downlink receiver restarts at the server's checkpoint after every
//! login; this machine remembers more than the server does:
//! - `handed`: the highest entry handed to the application. With releases
//!   lagging behind, a re-login restarts below it, and those entries are
//!   not handed a second time.
//! - `wanted` / `released`: what the application released, and how much of
//!   that is applied (releases are batched by time and count).
//! - `saved`: the checkpoint the driver last confirmed durable. The server
//!   is never told more than that (so an entry it deletes can never be
//!   needed again after a client crash), and LOGIN reports it.

use crate::time::Time;

use super::config::{Release, ReleaseBatch};

/// An inbox epoch and the highest sequence of it processed durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Inbox epoch (0: none yet).
    pub epoch: u64,
    /// Every entry up to this one is processed.
    pub seq: u64,
}

/// How the checkpoint moved at a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoginChange {
    /// As the LOGIN said.
    None,
    /// Same inbox, another point (entries deleted, or to come again).
    Moved,
    /// Another inbox: nothing of it handed yet.
    NewEpoch,
}

pub(super) struct Delivery {
    batch: Option<ReleaseBatch>,
    persist: bool,
    epoch: u64,
    handed: u64,
    wanted: u64,
    released: u64,
    /// When `wanted` is applied, if it is ahead of `released`.
    due: Option<Time>,
    saved: Checkpoint,
}

impl Delivery {
    pub(super) fn new(release: Release, persist: bool, start: Checkpoint) -> Self {
        Delivery {
            batch: match release {
                Release::OnDelivery => None,
                Release::ByApplication(b) => Some(b),
            },
            persist,
            epoch: start.epoch,
            handed: start.seq,
            wanted: start.seq,
            released: start.seq,
            due: None,
            saved: start,
        }
    }

    /// What a LOGIN reports: what is durable.
    pub(super) fn saved(&self) -> Checkpoint {
        self.saved
    }

    /// The application's released point, applied.
    pub(super) fn released(&self) -> Checkpoint {
        Checkpoint {
            epoch: self.epoch,
            seq: self.released,
        }
    }

    /// LOGIN_OK: the server resumes after `checkpoint` of inbox `epoch`.
    /// `sent` is what the LOGIN reported.
    pub(super) fn on_login(
        &mut self,
        sent: Checkpoint,
        epoch: u64,
        checkpoint: u64,
    ) -> LoginChange {
        let change = if epoch != self.epoch {
            LoginChange::NewEpoch
        } else if (epoch, checkpoint) != (sent.epoch, sent.seq) {
            LoginChange::Moved
        } else {
            LoginChange::None
        };
        if epoch != self.epoch {
            self.epoch = epoch;
            self.handed = checkpoint;
            self.wanted = checkpoint;
            self.released = checkpoint;
            self.due = None;
        } else if checkpoint > self.handed {
            // Deleted past what we had (retention): nothing below is coming.
            self.handed = checkpoint;
            self.wanted = checkpoint;
            self.released = checkpoint;
            self.due = None;
        }
        // Below `handed`, entries come again and are not handed twice.
        self.sync_saved();
        change
    }

    /// An in-order entry from the receiver: true when the application has
    /// not had it yet.
    pub(super) fn hand(&mut self, seq: u64) -> bool {
        if seq <= self.handed {
            return false;
        }
        self.handed = seq;
        if self.batch.is_none() {
            self.wanted = seq;
            self.released = seq;
            self.sync_saved();
        }
        true
    }

    /// The application processed everything up to `seq` (bounded by what it
    /// was handed). Applied at once or when the batch is due.
    pub(super) fn release(&mut self, now: Time, seq: u64) {
        let seq = seq.min(self.handed);
        if seq <= self.wanted {
            return;
        }
        self.wanted = seq;
        let batch = self.batch.unwrap_or(ReleaseBatch::IMMEDIATE);
        if batch.delay.is_zero() || self.wanted - self.released >= batch.max {
            self.apply();
        } else {
            self.due.get_or_insert(now + batch.delay);
        }
    }

    /// Applies a batched release at once (closing).
    pub(super) fn flush(&mut self) {
        if self.wanted > self.released {
            self.apply();
        }
    }

    fn apply(&mut self) {
        self.released = self.wanted;
        self.due = None;
        self.sync_saved();
    }

    /// Without persistence, what is released counts as saved.
    fn sync_saved(&mut self) {
        if !self.persist {
            self.saved = self.released();
        }
    }

    pub(super) fn handle_timeout(&mut self, now: Time) {
        if self.due.is_some_and(|t| t <= now) {
            self.apply();
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Time> {
        self.due
    }

    /// The checkpoint to save, while it is ahead of the saved one.
    pub(super) fn poll_persist(&self) -> Option<Checkpoint> {
        let want = self.released();
        (self.persist && want != self.saved).then_some(want)
    }

    /// The driver saved `cp` durably.
    pub(super) fn persisted(&mut self, cp: Checkpoint) {
        if self.persist && cp.epoch == self.epoch && cp.seq <= self.released {
            self.saved = cp;
        }
    }

    /// What the server may be told is processed, for a session that started
    /// at `base` and has received everything up to `delivered`: released,
    /// saved, and received again since the login.
    pub(super) fn ack_point(&self, base: u64, delivered: u64) -> u64 {
        let saved = if self.saved.epoch == self.epoch {
            self.saved.seq
        } else {
            0
        };
        base.max(self.released.min(saved).min(delivered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const BATCH: Release = Release::ByApplication(ReleaseBatch::DURABLE_READS);

    fn at(ms: u64) -> Time {
        Time::ZERO + Duration::from_millis(ms)
    }

    fn cp(epoch: u64, seq: u64) -> Checkpoint {
        Checkpoint { epoch, seq }
    }

    #[test]
    fn releases_are_batched_by_time_and_count() {
        let mut d = Delivery::new(BATCH, false, cp(7, 0));
        for s in 1..=100 {
            assert!(d.hand(s));
        }
        d.release(at(0), 10);
        assert_eq!(d.released().seq, 0, "waits for the batch");
        assert_eq!(d.poll_timeout(), Some(at(5)));
        d.release(at(1), 20);
        assert_eq!(
            d.poll_timeout(),
            Some(at(5)),
            "the first release sets the timer"
        );
        d.handle_timeout(at(5));
        assert_eq!((d.released().seq, d.poll_timeout()), (20, None));
        d.release(at(6), 84);
        assert_eq!(d.released().seq, 84, "64 waiting: at once");
        d.release(at(7), 500);
        d.flush();
        assert_eq!(d.released().seq, 100, "bounded by what was handed");
    }

    #[test]
    fn nothing_is_handed_twice_after_a_relogin_below_it() {
        let mut d = Delivery::new(BATCH, false, cp(7, 0));
        for s in 1..=10 {
            assert!(d.hand(s));
        }
        d.release(at(0), 4);
        d.flush();
        // The new session restarts at the server's checkpoint, 4.
        assert_eq!(d.on_login(d.saved(), 7, 4), LoginChange::None);
        assert!((5..=10).all(|s| !d.hand(s)), "handed already");
        assert!(d.hand(11));
        // A release of what was handed before applies as entries come back.
        d.release(at(1), 11);
        d.flush();
        assert_eq!(d.ack_point(4, 8), 8);
        assert_eq!(d.ack_point(4, 11), 11);
    }

    #[test]
    fn the_server_is_never_told_more_than_was_saved() {
        let mut d = Delivery::new(BATCH, true, cp(7, 2));
        for s in 3..=9 {
            assert!(d.hand(s));
        }
        d.release(at(0), 9);
        d.flush();
        assert_eq!(d.ack_point(2, 9), 2, "not saved yet");
        assert_eq!(d.poll_persist(), Some(cp(7, 9)));
        d.persisted(cp(7, 9));
        assert_eq!(d.poll_persist(), None);
        assert_eq!(d.ack_point(2, 9), 9);
        assert_eq!(d.saved(), cp(7, 9), "the next LOGIN reports it");
    }

    #[test]
    fn a_new_epoch_restarts_everything_and_is_persisted() {
        let mut d = Delivery::new(BATCH, true, cp(7, 50));
        assert_eq!(d.on_login(cp(7, 50), 9, 0), LoginChange::NewEpoch);
        assert!(d.hand(1), "a new inbox starts again at 1");
        assert_eq!(d.poll_persist(), Some(cp(9, 0)));
        assert_eq!(d.ack_point(0, 1), 0);
        d.persisted(cp(9, 0));
        d.release(at(0), 1);
        d.flush();
        assert_eq!(d.poll_persist(), Some(cp(9, 1)));
    }

    #[test]
    fn entries_deleted_by_the_server_move_the_checkpoint() {
        let mut d = Delivery::new(BATCH, true, cp(7, 3));
        assert_eq!(d.on_login(cp(7, 3), 7, 40), LoginChange::Moved);
        assert!(!d.hand(40));
        assert!(d.hand(41));
        assert_eq!(d.poll_persist(), Some(cp(7, 40)));
        assert_eq!(d.ack_point(40, 41), 40, "the server has 40 already");
    }

    #[test]
    fn on_delivery_releases_what_is_handed() {
        let mut d = Delivery::new(Release::OnDelivery, false, cp(0, 0));
        d.on_login(cp(0, 0), 5, 0);
        assert!(d.hand(1) && d.hand(2));
        assert_eq!(d.released(), cp(5, 2));
        assert_eq!(d.ack_point(0, 2), 2);
    }
}
