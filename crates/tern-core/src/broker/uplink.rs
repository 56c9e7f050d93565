//! The uplink (client → server): SEND, READ and RECALL processed in
//! order and exactly once, refusals remembered, entries appended to the
//! receiver's inbox, and the ACKs that release operations once durable.

use super::session::Out;
use super::Broker;
use crate::reliability::Arrival;
use crate::store::{EntryMeta, Store, StoredEntry};
use crate::time::Time;
use crate::wire::{
    encode_to_bytes, Deliver, EntryBody, ErrorCode, ErrorFrame, Frame, Header, ReceiptStatus,
};

impl<S: Store> Broker<S> {
    pub(super) fn on_uplink(&mut self, now: Time, sid: u64, seq: u64, frame: Frame) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let arrival = s.uplink.on_receive(seq, frame);
        let (user, device) = (s.user, s.device);
        match arrival {
            Arrival::InOrder | Arrival::FilledGap => {
                // The ACK is owed once the operation is durable, not before.
                while let Some((seq, f)) = self
                    .sessions
                    .get_mut(&sid)
                    .and_then(|s| s.uplink.poll_deliver())
                {
                    self.apply_uplink(now, sid, user, device, seq, f);
                }
            }
            Arrival::Buffered => s.acks.on_ack_eliciting(now, true),
            Arrival::Duplicate => {
                self.stats.uplink_duplicates += 1;
                s.acks.on_ack_eliciting(now, true);
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
        let (target, conv, body, from_seq) = match &frame {
            Frame::Send(f) => {
                if f.payload.len() > self.cfg.max_payload {
                    return self.reject(sid, user, device, seq, ErrorCode::PayloadTooLarge);
                }
                (
                    f.to,
                    f.conv,
                    EntryBody::Message {
                        msg_type: f.msg_type,
                        payload: f.payload.clone(),
                    },
                    f.seq,
                )
            }
            Frame::Read(f) => (
                f.peer,
                f.conv,
                EntryBody::Receipt {
                    status: ReceiptStatus::Read,
                    target_device: f.target_device,
                    target_seq: f.target_seq,
                },
                f.seq,
            ),
            Frame::Recall(f) => {
                if f.target_seq >= f.seq {
                    return self.reject(sid, user, device, seq, ErrorCode::NoSuchMessage);
                }
                (
                    f.to,
                    f.conv,
                    EntryBody::Recall {
                        target_device: device,
                        target_seq: f.target_seq,
                    },
                    f.seq,
                )
            }
            _ => return,
        };
        let known = match self.user_mut(target) {
            Ok(u) => u.exists || !u.devices.is_empty(),
            Err(_) => {
                // Cannot tell now: forget the operation so its retransmit is retried.
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.uplink.reset(seq - 1);
                }
                return;
            }
        };
        if !known && !self.cfg.accept_unknown_recipients {
            return self.reject(sid, user, device, seq, ErrorCode::UnknownRecipient);
        }
        let online = self.append(now, target, conv, user, device, from_seq, body);
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

    /// Stages an inbox entry for `to`; returns whether `to` has a device online.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append(
        &mut self,
        now: Time,
        to: u64,
        conv: u64,
        from_user: u64,
        from_device: u32,
        from_seq: u64,
        body: EntryBody,
    ) -> bool {
        let wall = self.wall_ms(now);
        let epoch_seed: u64 = rand::Rng::gen_range(&mut self.rng, 1..=crate::wire::varint::MAX);
        if self.user_mut(to).is_ok() {
            self.retention_sweep(now, to);
        }
        let Ok(u) = self.user_mut(to) else {
            return false;
        };
        if !u.exists {
            u.exists = true;
            u.meta.epoch = epoch_seed;
        }
        u.meta.head += 1;
        let seq = u.meta.head;
        let online = u.online();
        let deliver = Deliver {
            seq,
            conv,
            from_user,
            from_device,
            from_seq,
            time_ms: wall,
            body,
        };
        let meta = EntryMeta::of_deliver(&deliver);
        let frame = encode_to_bytes(&Frame::Deliver(deliver));
        // What the store's read path will decode from the frame: MemStore
        // keeps `meta` as given, RocksStore decodes it, and both must agree.
        debug_assert_eq!(meta, EntryMeta::of_frame(&frame));
        self.mark_user_dirty(to);
        let entry = StoredEntry { seq, frame, meta };
        self.staged.appends.push((to, entry));
        online
    }

    /// The ACK (and sticky ERROR) frames owed to a session for its uplink.
    pub(super) fn uplink_ack_frames(&mut self, now: Time, sid: u64) -> Vec<Frame> {
        let Some(s) = self.sessions.get(&sid) else {
            return Vec::new();
        };
        if !s.acks.should_send(now) {
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
            delay_us: s.acks.delay(now).as_micros() as u64,
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
