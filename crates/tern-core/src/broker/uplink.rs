//! The uplink (client → server): operations processed in order and exactly
//! once, each handed to its flow (`post.rs`, `read_state.rs`, `recall.rs`),
//! refusals remembered, entries appended to sync timelines, and the ACKs
//! that release operations once durable.

use super::session::Out;
use super::Broker;
use crate::reliability::Arrival;
use crate::store::{Store, StoredEntry, SyncEntry};
use crate::time::Time;
use crate::wire::{ConvRef, ErrorCode, ErrorFrame, Frame, Header};

/// The uplink operation being applied.
#[derive(Debug, Clone, Copy)]
pub(super) struct Op {
    /// Its user.
    pub user: u64,
    /// Its device.
    pub device: u32,
    /// Its uplink sequence.
    pub seq: u64,
}

/// What applying an uplink operation came to.
pub(super) enum Applied {
    /// Carried out; `online`: the user it addressed had a device online.
    Done {
        /// For the ACK's `receiver_online` hint.
        online: bool,
    },
    /// Refused for good, with this code.
    Refused(ErrorCode),
    /// Not applied now (the store could not be read); the retransmit retries.
    Retry,
}

impl<S: Store> Broker<S> {
    pub(super) fn on_uplink(&mut self, now: Time, sid: u64, seq: u64, frame: Frame) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let arrival = s.uplink.on_receive(&self.cfg.uplink, seq, frame);
        let (user, device) = (s.user, s.device);
        match arrival {
            Arrival::InOrder | Arrival::FilledGap => {
                // The ACK is owed once the operation is durable, not before;
                // but while a gap is still open the client needs the news
                // (what is received, in the ranges) at once.
                if s.uplink.buffered() > 0 {
                    s.uplink.on_ack_eliciting(&self.cfg.uplink, now, true);
                }
                while let Some((seq, f)) = self
                    .sessions
                    .get_mut(&sid)
                    .and_then(|s| s.uplink.poll_deliver())
                {
                    self.apply_uplink(now, sid, user, device, seq, f);
                }
            }
            Arrival::Buffered => s.uplink.on_ack_eliciting(&self.cfg.uplink, now, true),
            Arrival::Duplicate => {
                self.stats.uplink_duplicates += 1;
                // A copy of an operation already released means our ACK
                // was lost: again at once (when none is owed). One not yet
                // durable is usually a spare copy sent on purpose, covered
                // by the ACK its commit owes; if the commit is slow, an ACK
                // showing it received still goes after the usual delay.
                let durable = self
                    .users
                    .get(&user)
                    .and_then(|u| u.devices.get(&device))
                    .map_or(0, |d| d.durable.applied);
                let Some(s) = self.sessions.get_mut(&sid) else {
                    return;
                };
                if seq <= durable {
                    s.uplink.on_duplicate(&self.cfg.uplink, now);
                } else {
                    let gap = s.uplink.buffered() > 0;
                    s.uplink.on_ack_eliciting(&self.cfg.uplink, now, gap);
                }
            }
            Arrival::OutOfWindow => {}
        }
    }

    /// Stages one in-order uplink operation. Its ACK goes out once durable.
    pub(super) fn apply_uplink(
        &mut self,
        now: Time,
        sid: u64,
        user: u64,
        device: u32,
        seq: u64,
        frame: Frame,
    ) {
        let op = Op { user, device, seq };
        let outcome = match frame {
            Frame::Send(f) => self.post(
                now,
                op,
                ConvRef::direct(f.to),
                f.conv,
                f.msg_type,
                f.payload,
            ),
            Frame::Post(f) => self.post(now, op, f.conv, f.topic, f.msg_type, f.payload),
            Frame::Read(f) => self.read_v1(now, op, f),
            Frame::MarkRead(f) => self.mark_read(now, op, f),
            Frame::Recall(f) => self.recall_v1(now, op, f),
            Frame::Retract(f) => self.retract(now, op, f.conv, f.target),
            Frame::Delete(f) => self.delete_for_me(now, op, f),
            Frame::GroupOp(f) => self.group_op(now, op, f),
            _ => return,
        };
        match outcome {
            Applied::Done { online } => {
                if let Some(d) = self
                    .users
                    .get_mut(&user)
                    .and_then(|u| u.devices.get_mut(&device))
                {
                    d.staged.applied = seq;
                    d.log_release(seq, online);
                }
                self.mark_device_dirty(user, device);
            }
            Applied::Refused(code) => self.reject(sid, user, device, seq, code),
            Applied::Retry => {
                // The store could not be read: forget the operation, so that
                // its retransmit is applied later.
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.uplink.reset(seq - 1);
                }
            }
        }
    }

    /// Whether `user` may be written to: it exists, or unknown recipients
    /// are accepted (`None`: the store could not tell).
    pub(super) fn may_address(&mut self, user: u64) -> Option<bool> {
        let u = self.user_mut(user).ok()?;
        Some(u.exists || !u.devices.is_empty() || self.cfg.accept_unknown_recipients)
    }

    pub(super) fn reject(&mut self, sid: u64, user: u64, device: u32, seq: u64, code: ErrorCode) {
        self.stats.rejected += 1;
        if let Some(d) = self
            .users
            .get_mut(&user)
            .and_then(|u| u.devices.get_mut(&device))
        {
            d.staged.applied = seq;
            d.reject(seq, code as u64);
        }
        self.mark_device_dirty(user, device);
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.out.push_back(Out::Frame(Frame::Error(ErrorFrame {
                code: code as u64,
                frame_type: 0,
                seq,
                reason: String::new(),
            })));
        }
    }

    /// Stages entry `entry` at the end of `to`'s sync timeline; returns
    /// whether `to` has a device online.
    pub(super) fn append(&mut self, now: Time, to: u64, entry: SyncEntry) -> bool {
        if self.user_mut(to).is_ok() {
            self.retention_sweep(now, to);
        }
        let Ok(u) = self.inbox_mut(to) else {
            return false;
        };
        u.meta.head += 1;
        let seq = u.meta.head;
        if !entry.shared {
            u.meta.last_private = seq;
        }
        let online = u.online();
        self.mark_user_dirty(to);
        self.staged.appends.push((to, StoredEntry { seq, entry }));
        online
    }

    /// The ACK (and sticky ERROR) frames owed to a session for its uplink.
    pub(super) fn uplink_ack_frames(&mut self, now: Time, sid: u64) -> Vec<Frame> {
        let Some(s) = self.sessions.get(&sid) else {
            return Vec::new();
        };
        if !s.uplink.should_send(now) {
            return Vec::new();
        }
        let Some(dev) = self
            .users
            .get(&s.user)
            .and_then(|u| u.devices.get(&s.device))
        else {
            return Vec::new();
        };
        let mut cumulative = dev.durable.applied;
        let mut ranges = Vec::new();
        if dev.staged.applied > cumulative {
            ranges.push((cumulative + 1, dev.staged.applied));
        }
        for r in s.uplink.buffered_ranges() {
            if ranges.len() == crate::wire::limits::MAX_ACK_RANGES {
                break;
            }
            ranges.push(r);
        }
        let mut ack = crate::wire::Ack {
            receiver_online: dev.online_at(cumulative),
            cumulative,
            delay_us: s.uplink.delay(now).as_micros() as u64,
            ranges,
        };
        // Refusals ride ahead of every ACK that may release them, in the same
        // datagram, so a client never mistakes a refused operation for
        // stored. If they do not all fit, the ACK releases less.
        let mut budget = self.cfg.max_datagram.saturating_sub(
            Header {
                session_id: 0,
                packet_number: u64::from(u32::MAX),
                version: crate::wire::VERSION,
            }
            .len()
                + crate::wire::TRAILER
                + Frame::Ack(ack.clone()).encoded_len(),
        );
        let window = self.cfg.downlink.window as u64;
        let mut frames = Vec::new();
        for &(seq, code) in &dev.durable.rejected {
            if seq + window <= cumulative || seq > cumulative {
                continue;
            }
            let f = Frame::Error(ErrorFrame {
                code,
                frame_type: 0,
                seq,
                reason: String::new(),
            });
            let len = f.encoded_len();
            if len > budget {
                cumulative = seq - 1;
                break;
            }
            budget -= len;
            frames.push(f);
        }
        ack.cumulative = cumulative;
        ack.ranges.retain(|&(start, _)| start > cumulative);
        frames.push(Frame::Ack(ack));
        frames
    }
}
