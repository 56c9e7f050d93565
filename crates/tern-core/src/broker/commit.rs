//! The commit cycle: writes are staged as frames are handled, handed out
//! as batches ([`Broker::poll_commit`]), and acted on only once the driver
//! reports them durable ([`Broker::handle_committed`]): uplink ACKs
//! released, entries pushed. Up to `max_commits_in_flight` batches are out
//! at once, so the driver can write the next while one syncs; they
//! complete in the order they were handed out. A failed commit rolls back
//! every in-memory assumption, and with it every later batch still out:
//! the driver must never apply a batch handed out before that failure was
//! reported to the broker (the daemon's committer fences them, the
//! simulator drops them).

use std::sync::Arc;

use super::convs::StagedConvs;
use super::session::Out;
use super::users::Dev;
use super::{Broker, BrokerEvent};
use crate::conv::ConvKey;
use crate::store::{ConvRecord, DeviceState, Store, StoredEntry, WriteBatch, WriteOp};
use crate::time::Time;
use crate::wire::{ErrorCode, ErrorFrame, Frame, KickReason};

/// A write batch handed to the driver, to commit durably.
#[derive(Debug)]
pub struct Commit {
    /// Pass back to [`Broker::handle_committed`].
    pub id: u64,
    /// The writes.
    pub batch: WriteBatch,
}

/// Writes staged since the last batch was handed out.
#[derive(Default)]
pub(super) struct Staged {
    pub appends: Vec<(u64, StoredEntry)>,
    pub trims: Vec<(u64, u64)>,
    pub dirty_users: Vec<u64>,
    pub dirty_devices: Vec<(u64, u32)>,
    pub convs: StagedConvs,
    /// Something staged must be durable soon: more than checkpoints and
    /// receipts.
    pub urgent: bool,
}

impl Staged {
    fn is_empty(&self) -> bool {
        self.appends.is_empty()
            && self.trims.is_empty()
            && self.dirty_users.is_empty()
            && self.dirty_devices.is_empty()
            && self.convs.is_empty()
    }

    /// Only writes nothing waits for are staged (delivery checkpoints, the
    /// trims they allow, DELIVERED receipts): they may wait for company
    /// (`checkpoint_delay`, `receipt_delay` in [`BrokerConfig`]).
    ///
    /// [`BrokerConfig`]: super::BrokerConfig
    fn deferrable(&self) -> bool {
        !self.urgent && self.convs.is_empty()
    }
}

/// The batch out for commit, and what to act on once it is durable.
pub(super) struct InFlight {
    id: u64,
    appends: Vec<(u64, StoredEntry)>,
    devices: Vec<(u64, u32, DeviceState)>,
    records: Vec<(ConvKey, Arc<ConvRecord>)>,
}

impl<S: Store> Broker<S> {
    /// True while a batch is out for commit.
    pub fn commit_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The next batch to commit, if writes are staged and fewer than
    /// `max_commits_in_flight` batches are out. Writes nothing waits for
    /// (delivery checkpoints, DELIVERED receipts) wait up to their delay
    /// for a batch that must be durable (`docs/design.md`, "Writes nothing
    /// waits for").
    pub fn poll_commit(&mut self) -> Option<Commit> {
        if self.in_flight.len() >= self.cfg.max_commits_in_flight.max(1)
            || self.staged.is_empty()
            || self.staged.deferrable()
        {
            return None;
        }
        let id = self.next_commit;
        let staged = std::mem::take(&mut self.staged);
        self.deferred_due = None;
        let mut batch = WriteBatch::default();
        for (user, entry) in &staged.appends {
            batch.ops.push(WriteOp::Append {
                user: *user,
                entry: entry.clone(),
            });
        }
        for user in &staged.dirty_users {
            if let Some(u) = self.users.get_mut(user) {
                u.meta_dirty = false;
                batch.ops.push(WriteOp::Meta {
                    user: *user,
                    meta: u.meta,
                });
            }
        }
        let mut devices = Vec::new();
        for (user, device) in &staged.dirty_devices {
            if let Some(d) = self
                .users
                .get_mut(user)
                .and_then(|u| u.devices.get_mut(device))
            {
                d.dirty = false;
                batch.ops.push(WriteOp::Device {
                    user: *user,
                    device: *device,
                    state: d.staged.clone(),
                });
                devices.push((*user, *device, d.staged.clone()));
            }
        }
        for (user, up_to) in &staged.trims {
            batch.ops.push(WriteOp::Trim {
                user: *user,
                up_to: *up_to,
            });
        }
        self.batch_convs(id, &staged.convs, &mut batch);
        self.next_commit += 1;
        self.in_flight.push_back(InFlight {
            id,
            appends: staged.appends,
            devices,
            records: staged.convs.records,
        });
        Some(Commit { id, batch })
    }

    /// The conversation writes of a batch: records, timeline metadata, user
    /// states (moving their list-index rows), hidden records, trims.
    fn batch_convs(&mut self, id: u64, staged: &StagedConvs, batch: &mut WriteBatch) {
        for (conv, record) in &staged.records {
            batch.ops.push(WriteOp::PutRecord {
                conv: *conv,
                record: (**record).clone(),
            });
        }
        for conv in &staged.dirty_timelines {
            if let Some(t) = self.convs.timelines.get_mut(conv) {
                t.dirty = false;
                t.written = id;
                batch.ops.push(WriteOp::ConvMeta {
                    conv: *conv,
                    meta: t.meta,
                });
            }
        }
        for (user, conv) in &staged.dirty_user_convs {
            if let Some(slot) = self.convs.user_convs.get_mut(&(*user, *conv)) {
                slot.dirty = false;
                slot.written = id;
                batch.ops.push(WriteOp::UserConv {
                    user: *user,
                    conv: *conv,
                    state: slot.state,
                    prev_version: slot.written_version,
                });
                slot.written_version = slot.state.version;
            }
        }
        for (user, conv, conv_seq) in &staged.hides {
            batch.ops.push(WriteOp::Hide {
                user: *user,
                conv: *conv,
                conv_seq: *conv_seq,
            });
        }
        for (conv, up_to) in &staged.trims {
            batch.ops.push(WriteOp::TrimConv {
                conv: *conv,
                up_to: *up_to,
            });
        }
        for (group, user) in &staged.members {
            if let Some(g) = self.convs.groups.get_mut(group) {
                g.dirty.retain(|u| u != user);
                g.written = id;
                if let Some(member) = g.rows.get(user) {
                    batch.ops.push(WriteOp::GroupMember {
                        group: *group,
                        user: *user,
                        member: *member,
                    });
                }
            }
        }
    }

    /// The driver's report on a batch from [`Broker::poll_commit`]. Reports
    /// come in the order the batches were handed out; a report on a batch
    /// no longer out (dropped by an earlier failure) is ignored.
    pub fn handle_committed(&mut self, now: Time, id: u64, result: Result<(), String>) {
        if self.in_flight.front().is_none_or(|f| f.id != id) {
            return;
        }
        let done = self.in_flight.pop_front().expect("checked above");
        match result {
            Ok(()) => {
                self.stats.commits += 1;
                self.durable_commit = id;
                self.on_durable(now, done);
                self.release_lists(now, Some(id));
                self.evict_conv_caches();
            }
            Err(error) => {
                self.stats.commit_failures += 1;
                self.events.push_back(BrokerEvent::CommitFailed { error });
                self.roll_back();
                self.release_lists(now, None);
            }
        }
        self.flush_touched(now);
    }

    pub(super) fn on_durable(&mut self, now: Time, done: InFlight) {
        // Durable records are the store's now, unless a newer version of
        // one (a recall) is still staged.
        for (conv, record) in &done.records {
            self.convs.pending.settle(conv, record);
        }
        for (user, device, state) in done.devices {
            let Some(d) = self
                .users
                .get_mut(&user)
                .and_then(|u| u.devices.get_mut(&device))
            else {
                continue;
            };
            let released = state.applied.saturating_sub(d.durable.applied);
            d.durable = state;
            if let (true, Some(sid)) = (released > 0, d.session) {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    // Coalesced like any ACK: at most `ack_every` ops or
                    // `max_ack_delay` late; the sender's RTO allows for it.
                    for _ in 0..released.min(64) {
                        s.uplink.on_ack_eliciting(&self.cfg.uplink, now, false);
                    }
                    self.touch(sid);
                }
            }
        }
        for (user, entry) in done.appends {
            self.stats.stored += 1;
            let Some(u) = self.users.get_mut(&user) else {
                continue;
            };
            u.committed_head = u.committed_head.max(entry.seq);
            let sids: Vec<u64> = u.sessions().collect();
            for sid in sids {
                self.offer_entry(now, sid, &entry);
            }
        }
    }

    /// A commit failed: forget every in-memory assumption and reload from the
    /// store. Senders retransmit whatever was not acknowledged; sessions
    /// whose operations were dropped are told why (ERROR 12, transient).
    pub(super) fn roll_back(&mut self) {
        self.staged = Staged::default();
        self.deferred_due = None;
        // Later batches built on the failed one's writes: they are void.
        self.in_flight.clear();
        let dropped = self.sessions_with_unstored_uplink();
        self.convs = Default::default();
        let live: Vec<(u64, u64, u32, u8)> = self
            .sessions
            .values()
            .map(|s| (s.id, s.user, s.device, s.version))
            .collect();
        self.users.clear();
        let mut unloadable = Vec::new();
        for (sid, user, device, version) in live {
            let applied = match self.user_mut(user) {
                Ok(u) => {
                    let last_private = u.meta.last_private;
                    let d = u
                        .devices
                        .get_or_insert_with(device, || Dev::new(DeviceState::default()));
                    d.session = Some(sid);
                    // The login that registered this session's protocol
                    // version may have been in the lost batch: without it
                    // a version 1 session would look absent, and entries
                    // only version 2 knows would be appended to its
                    // timeline. Staged again in memory, it is written with
                    // the device's next change (not at once: on a full
                    // disk that would be a commit loop); a restart ends
                    // the session anyway, and its next login registers it.
                    if d.staged.version != version {
                        d.staged.version = version;
                        if version == crate::wire::VERSION {
                            d.staged.checkpoint = d.staged.checkpoint.max(last_private);
                        }
                    }
                    d.durable.applied
                }
                Err(_) => {
                    // Its user cannot be read back: the session could not
                    // be attached again, so it ends and the device logs in
                    // anew (KICK "shutdown": reconnect later).
                    unloadable.push(sid);
                    continue;
                }
            };
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.uplink.reset(applied);
            }
        }
        for sid in unloadable {
            self.close_session(sid, KickReason::Shutdown, true);
        }
        for sid in dropped {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.out.push_back(Out::Frame(Frame::Error(ErrorFrame {
                    code: ErrorCode::StorageFailure as u64,
                    frame_type: 0,
                    seq: 0,
                    reason: "server storage unavailable; resend later".into(),
                })));
                self.touch(sid);
            }
        }
    }

    /// Sessions with uplink operations processed but not yet durable.
    fn sessions_with_unstored_uplink(&self) -> Vec<u64> {
        self.sessions
            .values()
            .filter(|s| {
                self.users
                    .get(&s.user)
                    .and_then(|u| u.devices.get(&s.device))
                    .is_some_and(|d| d.staged.applied > d.durable.applied)
            })
            .map(|s| s.id)
            .collect()
    }

    /// Commits what is staged with the next [`Broker::poll_commit`], even
    /// if only writes nothing waits for are staged: for a driver that
    /// stops.
    pub fn flush_deferred(&mut self) {
        self.staged.urgent = true;
        self.deferred_due = None;
    }

    /// Stages what `stage` writes as writes nothing waits for: they go
    /// with the next batch that must be durable, or `delay` from `now`
    /// (zero: at once, like any write).
    pub(super) fn stage_deferred(
        &mut self,
        now: Time,
        delay: std::time::Duration,
        stage: impl FnOnce(&mut Self),
    ) {
        let urgent = self.staged.urgent;
        stage(self);
        if !delay.is_zero() {
            self.staged.urgent = urgent;
            let due = now + delay;
            self.deferred_due = Some(self.deferred_due.map_or(due, |d| d.min(due)));
        }
    }

    /// Deferred writes waiting since their delay began are due: the next
    /// [`Broker::poll_commit`] hands them out.
    pub(super) fn deferred_timeout(&mut self, now: Time) {
        if self.deferred_due.is_some_and(|t| t <= now) {
            self.flush_deferred();
        }
    }

    pub(super) fn mark_user_dirty(&mut self, user: u64) {
        self.staged.urgent = true;
        if let Some(u) = self.users.get_mut(&user) {
            if !u.meta_dirty {
                u.meta_dirty = true;
                self.staged.dirty_users.push(user);
            }
        }
    }

    pub(super) fn mark_device_dirty(&mut self, user: u64, device: u32) {
        self.staged.urgent = true;
        if let Some(d) = self
            .users
            .get_mut(&user)
            .and_then(|u| u.devices.get_mut(&device))
        {
            if !d.dirty {
                d.dirty = true;
                self.staged.dirty_devices.push((user, device));
            }
        }
    }
}
