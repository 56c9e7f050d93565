//! The driver's side of groups: the id of a group this device created
//! (read from the "created" entry naming the operation, as the spec says a
//! creating device learns it, or after a restart from that record in the
//! local history), and member pages.

use std::collections::HashMap;

use tern_core::client::MembersPage;
use tern_core::time::Time;
use tern_core::wire::{
    ty, ConvKind, Entry, ErrorFrame, GroupEventKind, ReadCounts, RecordBody, SyncBody,
};
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
    /// entry arrived (in this run, or in an earlier one: then its record
    /// is in the local history).
    pub(super) fn ask_created(&mut self, seq: u64, w: oneshot::Sender<u64>) {
        if !self.group_waiters.created.contains_key(&seq) {
            if let Some(g) = self.created_in_history(seq) {
                self.group_waiters.created.insert(seq, g);
            }
        }
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

    /// The group whose record 1 (`created`) is this device's operation
    /// `seq`, among the groups the local history holds record 1 of (only
    /// the creator is a member at record 1, so only its devices hold it).
    /// Unknown before the first login (the device number is not known).
    fn created_in_history(&self, seq: u64) -> Option<u64> {
        if self.device == 0 {
            return None;
        }
        self.history
            .all_held()
            .into_iter()
            .filter(|(c, h)| c.kind == ConvKind::Group && h.ranges.contains(1))
            .find_map(|(c, _)| {
                let r = self.history.records(c, 1, 1).ok()?.into_iter().next()?;
                let RecordBody::Member(ev) = &r.body else {
                    return None;
                };
                (ev.kind == GroupEventKind::Created
                    && ev.user == r.from_user
                    && r.from_device == self.device
                    && r.from_seq == seq)
                    .then_some(c.id)
            })
    }

    /// After a login (the device number known): creates waited for whose
    /// record is in the local history are answered.
    pub(super) fn created_after_login(&mut self) {
        let waiting: Vec<u64> = self.group_waiters.create_waiters.keys().copied().collect();
        for seq in waiting {
            if let Some(g) = self.created_in_history(seq) {
                self.group_waiters.created.insert(seq, g);
                for tx in self
                    .group_waiters
                    .create_waiters
                    .remove(&seq)
                    .unwrap_or_default()
                {
                    let _ = tx.send(g);
                }
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
        now: Time,
        group: u64,
        low: u64,
        count: u8,
        w: Waiter<ReadCounts>,
    ) {
        match self.conn.request_read_counts(now, group, low, count) {
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
