//! The driver's side of groups: the id of a group this device created
//! (read from the "created" entry naming the operation, as the spec says a
//! creating device learns it), and member pages.

use std::collections::HashMap;

use tern_core::client::MembersPage;
use tern_core::time::Time;
use tern_core::wire::{ty, ConvKind, Entry, ErrorFrame, GroupEventKind, ReadCounts, SyncBody};
use tokio::sync::oneshot;

use super::driver::Driver;
use super::ClientError;

type Waiter<T> = oneshot::Sender<Result<T, ClientError>>;

/// Who waits for which group answer.
#[derive(Default)]
pub(super) struct GroupWaiters {
    /// Groups this device created: uplink sequence of the create → id.
    created: HashMap<u64, u64>,
    /// Waiting for the group a create (by uplink sequence) made.
    create_waiters: HashMap<u64, Vec<oneshot::Sender<u64>>>,
    /// The member page under way (the core keeps one).
    members: Option<Waiter<MembersPage>>,
    /// Read counts asked for, by request id.
    counts: Option<(u64, Waiter<ReadCounts>)>,
}

impl Driver {
    /// Notes a group this device created, from its "created" entry.
    pub(super) fn on_group_entry(&mut self, e: &Entry) {
        let SyncBody::Member(ev) = &e.body else {
            return;
        };
        if ev.kind != GroupEventKind::Created
            || e.conv.kind != ConvKind::Group
            || e.from_device != self.device
            || ev.user != e.from_user
        {
            return;
        }
        let w = &mut self.group_waiters;
        w.created.insert(e.from_seq, e.conv.id);
        for tx in w.create_waiters.remove(&e.from_seq).unwrap_or_default() {
            let _ = tx.send(e.conv.id);
        }
    }

    /// Answers with the group the create stored under `seq` made, once its
    /// entry arrived.
    pub(super) fn ask_created(&mut self, seq: u64, w: oneshot::Sender<u64>) {
        match self.group_waiters.created.get(&seq) {
            Some(&g) => {
                let _ = w.send(g);
            }
            None => {
                let waiting = self.group_waiters.create_waiters.entry(seq).or_default();
                // Callers that gave up (a bounded wait ran out) are dropped.
                waiting.retain(|w| !w.is_closed());
                waiting.push(w);
            }
        }
    }

    /// A page of members (`read_at` 0), or of those who read record
    /// `read_at`.
    pub(super) fn ask_members(
        &mut self,
        now: Time,
        (group, after, max, read_at): (u64, u64, u64, u64),
        w: Waiter<MembersPage>,
    ) {
        let asked = match read_at {
            0 => self.conn.request_members(now, group, after, max),
            s => self.conn.request_readers(now, group, s, after, max),
        };
        if !asked {
            let _ = w.send(Err(ClientError::NotSupported));
            return;
        }
        // The new request replaces one under way; its waiter gets this
        // answer's fate (nothing: the caller asks again).
        self.group_waiters.members = Some(w);
    }

    pub(super) fn ask_read_counts(
        &mut self,
        group: u64,
        low: u64,
        count: u8,
        w: Waiter<ReadCounts>,
    ) {
        match self.conn.request_read_counts(group, low, count) {
            Some(id) => self.group_waiters.counts = Some((id, w)),
            None => {
                let _ = w.send(Err(ClientError::NotSupported));
            }
        }
    }

    pub(super) fn on_read_counts(&mut self, c: ReadCounts) {
        if self
            .group_waiters
            .counts
            .as_ref()
            .is_some_and(|(id, _)| *id == c.request_id)
        {
            if let Some((_, w)) = self.group_waiters.counts.take() {
                let _ = w.send(Ok(c));
            }
        }
    }

    /// The server refused a member page or read counts (ERROR with that
    /// frame type: `NoSuchConversation` for a group this user is not a
    /// member of): whoever waits for one is told, rather than asking again
    /// until the tries run out.
    pub(super) fn on_group_request_refused(&mut self, e: &ErrorFrame) {
        if e.frame_type == ty::MEMBERS {
            if let Some(w) = self.group_waiters.members.take() {
                let _ = w.send(Err(ClientError::Rejected(e.code)));
            }
        } else if e.frame_type == ty::READ_COUNTS {
            if let Some((_, w)) = self.group_waiters.counts.take() {
                let _ = w.send(Err(ClientError::Rejected(e.code)));
            }
        }
    }

    pub(super) fn on_members(&mut self, page: MembersPage) {
        if let Some(w) = self.group_waiters.members.take() {
            let _ = w.send(Ok(page));
        }
    }
}
