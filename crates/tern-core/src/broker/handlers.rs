//! What the broker does with each frame.

use std::net::SocketAddr;

use bytes::Bytes;

use super::session::{DownItem, Downlink, Origin, Out, Session};
use super::users::Dev;
use super::{Broker, BrokerEvent};
use crate::auth::TokenError;
use crate::reliability::{AckCoalescer, Arrival, Receiver, Sender, SenderEvent};
use crate::store::{DeviceState, InboxMeta, Store, StoredEntry};
use crate::time::Time;
use crate::wire::limits::PUSH_BACKLOG_LIMIT;
use crate::wire::{
    encode_to_bytes, Ack, Deliver, EntryBody, ErrorCode, ErrorFrame, Frame, Header, KickReason,
    LoginOk, Packet, PageEnd, Reader, ReceiptStatus,
};

impl<S: Store> Broker<S> {
    pub(super) fn handle_prelogin(
        &mut self,
        now: Time,
        from: SocketAddr,
        packet: Packet,
        len: usize,
    ) {
        let pn = packet.header.packet_number;
        let mut login = None;
        let mut cookie = None;
        let mut handshake = None;
        for f in packet.frames {
            match f {
                Frame::Login(l) if login.is_none() && handshake.is_none() => login = Some(l),
                Frame::Handshake(m) if login.is_none() && handshake.is_none() => {
                    handshake = Some(m)
                }
                Frame::Cookie(c) if cookie.is_none() => cookie = Some(c),
                Frame::Padding(_) => {}
                _ => {
                    self.reply_error(from, 0, len, ErrorCode::NotAllowed, 0, "log in first");
                    return;
                }
            }
        }
        if login.is_none() && handshake.is_none() {
            return;
        }
        let quic = super::is_quic_peer(&from);
        if handshake.is_some() && self.cfg.seal_key.is_none() {
            self.stats.handshake_failed += 1;
            self.reply_error(
                from,
                0,
                len,
                ErrorCode::NotAllowed,
                crate::wire::ty::HANDSHAKE,
                "sealing is not enabled on this server",
            );
            return;
        }
        if login.is_some() && !quic && self.cfg.seal_policy == super::SealPolicy::Required {
            self.stats.seal_required += 1;
            self.stats.login_refused += 1;
            self.events.push_back(BrokerEvent::LoginRefused {
                addr: from,
                code: ErrorCode::SealRequired,
            });
            self.reply_error(
                from,
                0,
                len,
                ErrorCode::SealRequired,
                crate::wire::ty::LOGIN,
                "seal the session: HANDSHAKE with the server key",
            );
            return;
        }
        // QUIC validated the address itself: no RETRY round trip there.
        if self.cfg.validate_addresses && !quic {
            let wall_secs = self.wall_ms(now) / 1000;
            let proven = cookie
                .as_ref()
                .is_some_and(|c| self.admission.check(wall_secs, from, c));
            if !proven {
                if cookie.is_some() {
                    self.stats.bad_cookies += 1;
                }
                // Stateless: a cookie bound to this address, never more bytes
                // than the LOGIN that asked.
                let mut pb = crate::wire::PacketBuilder::new(
                    Header {
                        session_id: 0,
                        packet_number: 1,
                    },
                    len,
                );
                if pb
                    .push(&Frame::Retry(self.admission.cookie(wall_secs, from)))
                    .is_ok()
                {
                    self.stats.retries_sent += 1;
                    self.stats.datagrams_out += 1;
                    self.transmits.push_back((from, pb.finish()));
                }
                return;
            }
        }
        // A sealed login: open message 1 (one X25519 operation, only for
        // sources that proved their address above).
        let mut responder = None;
        let login = match (login, handshake) {
            (Some(l), _) => l,
            (None, Some(msg1)) => {
                let Some(key) = self.cfg.seal_key.as_ref() else {
                    return;
                };
                match crate::seal::Responder::accept(
                    &mut self.entropy,
                    key,
                    cookie.as_deref(),
                    &msg1,
                ) {
                    Ok((r, hello)) => {
                        let login = hello.login.clone();
                        responder = Some((r, hello));
                        login
                    }
                    Err(_) => {
                        self.stats.handshake_failed += 1;
                        return;
                    }
                }
            }
            (None, None) => return,
        };
        let now_secs = self.wall_ms(now) / 1000;
        let claims = match self.keys.verify(&login.token, now_secs) {
            Ok(c) => c,
            Err(e) => {
                let code = match e {
                    TokenError::Expired { .. } => ErrorCode::TokenExpired,
                    _ => ErrorCode::BadToken,
                };
                self.stats.login_refused += 1;
                self.events
                    .push_back(BrokerEvent::LoginRefused { addr: from, code });
                self.reply_error(from, 0, len, code, crate::wire::ty::LOGIN, &e.to_string());
                return;
            }
        };
        let (user, device) = (claims.user, claims.device);
        // Clients number packets monotonically for their whole life, across
        // sessions. So from the address of the device's live session:
        // - before the session heard anything else, a LOGIN is a retransmission
        //   (LOGIN_OK lost or late): answer it again;
        // - after, a LOGIN numbered below what the session has seen is a late
        //   or duplicated copy and must not replace the session it created.
        if let (Some(sid), Some((_, hello))) = (self.device_session(user, device), &responder) {
            // Sealed: a handshake is identified by the client's ephemeral
            // key, and only a newer one replaces the live session.
            if let Some(seal) = self.sessions.get_mut(&sid).and_then(|s| s.seal.as_mut()) {
                if seal.ephemeral == hello.ephemeral {
                    if seal.reply.is_some() {
                        seal.reply_due = true;
                        self.touch(sid);
                    }
                    return;
                }
                if hello.client_time_ms <= seal.client_time_ms {
                    self.stats.handshake_replayed += 1;
                    return;
                }
            }
        } else if let Some(sid) = self.device_session(user, device) {
            if let Some(s) = self
                .sessions
                .get(&sid)
                .filter(|s| s.addr == from && s.seal.is_none())
            {
                if s.highest_pn == 0 {
                    self.queue_login_ok(now, sid, None);
                    self.touch(sid);
                    return;
                }
                if pn <= s.highest_pn.max(s.login_pn) {
                    return;
                }
            }
        }
        if self.sessions.len() >= self.cfg.max_sessions
            && self.device_session(user, device).is_none()
        {
            self.stats.login_refused += 1;
            self.events.push_back(BrokerEvent::LoginRefused {
                addr: from,
                code: ErrorCode::ServerBusy,
            });
            self.reply_error(
                from,
                0,
                len,
                ErrorCode::ServerBusy,
                crate::wire::ty::LOGIN,
                "too many sessions",
            );
            return;
        }
        if let Some(old) = self.device_session(user, device) {
            self.stats.replaced += 1;
            self.close_session(old, KickReason::Replaced, true);
        }
        let epoch_seed: u64 = rand::Rng::gen_range(&mut self.rng, 1..=crate::wire::varint::MAX);
        let wall = self.wall_ms(now);
        let sid = self.new_id();
        if self.user_mut(user).is_ok() {
            self.retention_sweep(now, user);
        }
        let Ok(u) = self.user_mut(user) else {
            self.reply_error(
                from,
                0,
                len,
                ErrorCode::StorageFailure,
                crate::wire::ty::LOGIN,
                "store unavailable",
            );
            return;
        };
        let mut created = false;
        if !u.exists {
            u.exists = true;
            u.meta = InboxMeta {
                epoch: epoch_seed,
                head: 0,
                trimmed: 0,
            };
            created = true;
        }
        let (epoch, trimmed, committed_head) = (u.meta.epoch, u.meta.trimmed, u.committed_head);
        let client_cp = if login.epoch == epoch {
            login.checkpoint.min(committed_head)
        } else {
            0
        };
        let start = client_cp.max(trimmed);
        let dev = u
            .devices
            .entry(device)
            .or_insert_with(|| Dev::new(DeviceState::default()));
        dev.staged.last_login_ms = wall;
        // The device restarts from where it says it is (it may have lost data).
        dev.staged.checkpoint = start;
        let applied = dev.staged.applied;
        dev.session = Some(sid);
        if created {
            self.mark_user_dirty(user);
        }
        self.mark_device_dirty(user, device);
        let backlog = committed_head - start;
        let down = if backlog <= PUSH_BACKLOG_LIMIT {
            Downlink::Push(Box::new(self.new_downlink(start + 1)))
        } else {
            Downlink::Pull
        };
        let session = Session {
            id: sid,
            user,
            device,
            addr: from,
            highest_pn: 0,
            next_pn: 1,
            last_heard: now,
            uplink: Receiver::new(self.cfg.uplink.clone(), applied),
            acks: AckCoalescer::new(&self.cfg.uplink),
            down,
            unreachable: false,
            out: Default::default(),
            notify: None,
            last_page: Vec::new(),
            scheduled: None,
            login_pn: pn,
            bucket: super::admission::Bucket::full(self.cfg.session_burst, now),
            seal: None,
        };
        self.sessions.insert(sid, session);
        self.stats.logins += 1;
        self.events.push_back(BrokerEvent::LoggedIn {
            session: sid,
            user,
            device,
            addr: from,
        });
        self.queue_login_ok(now, sid, responder);
        self.refill(now, sid);
        self.touch(sid);
    }

    fn new_downlink(&mut self, first_seq: u64) -> Sender<DownItem> {
        let seed = rand::Rng::gen(&mut self.rng);
        Sender::new(self.cfg.downlink.clone(), first_seq, seed)
    }

    fn device_session(&self, user: u64, device: u32) -> Option<u64> {
        self.users.get(&user)?.devices.get(&device)?.session
    }

    /// Queues the login answer: refusals the client may not have heard of,
    /// then LOGIN_OK. For a sealed login they travel inside the handshake's
    /// message 2, and the session gets its keys.
    fn queue_login_ok(
        &mut self,
        now: Time,
        sid: u64,
        responder: Option<(crate::seal::Responder, crate::seal::Hello)>,
    ) {
        let wall = self.wall_ms(now);
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let Some(u) = self.users.get(&s.user) else {
            return;
        };
        let Some(d) = u.devices.get(&s.device) else {
            return;
        };
        let mut ok = LoginOk {
            user: s.user,
            device: s.device,
            epoch: u.meta.epoch,
            head: u.committed_head,
            checkpoint: d.staged.checkpoint,
            next_send_seq: d.durable.applied + 1,
            heartbeat_ms: self.cfg.heartbeat.as_millis() as u64,
            idle_timeout_ms: self.cfg.idle_timeout.as_millis() as u64,
            server_time_ms: wall,
        };
        // Refusals the client may not have heard of go first, in the same
        // datagram: LOGIN_OK's next_send_seq releases those operations, and
        // they must not be mistaken for stored. If they do not all fit,
        // LOGIN_OK admits less, and the client resends the rest (duplicates,
        // which are answered with their refusal again).
        let handshake_overhead = if responder.is_some() {
            // HANDSHAKE_REPLY frame header, ephemeral key, tag, session id.
            1 + 2 + crate::seal::handshake::OVERHEAD + 8
        } else {
            0
        };
        let mut budget = self.cfg.max_datagram.saturating_sub(
            Header {
                session_id: sid,
                packet_number: 1,
            }
            .len()
                + crate::wire::TRAILER
                + handshake_overhead
                + Frame::LoginOk(ok.clone()).encoded_len(),
        );
        let mut refusals = Vec::new();
        for &(seq, code) in &d.durable.rejected {
            let f = Frame::Error(ErrorFrame {
                code,
                frame_type: 0,
                seq,
                reason: String::new(),
            });
            if f.encoded_len() > budget {
                ok.next_send_seq = ok.next_send_seq.min(seq);
                break;
            }
            budget -= f.encoded_len();
            refusals.push(f);
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some((responder, hello)) = responder else {
            s.out.extend(refusals.into_iter().map(Out::Frame));
            s.out.push_back(Out::Frame(Frame::LoginOk(ok)));
            return;
        };
        let mut answer = bytes::BytesMut::new();
        for f in refusals.iter().chain(std::iter::once(&Frame::LoginOk(ok))) {
            f.encode(&mut answer);
        }
        let Ok((msg2, channel)) = responder.reply(sid, &answer) else {
            return; // cannot happen within the budget above; the client retries
        };
        let header = Header {
            session_id: sid,
            packet_number: s.next_pn,
        };
        s.next_pn += 1;
        let mut pb =
            crate::wire::PacketBuilder::new(header, crate::wire::limits::MAX_RECV_DATAGRAM);
        if pb.push(&Frame::HandshakeReply(msg2)).is_err() {
            return;
        }
        s.seal = Some(Box::new(super::session::SessionSeal {
            channel,
            client_time_ms: hello.client_time_ms,
            ephemeral: hello.ephemeral,
            reply: Some(pb.finish()),
            reply_due: true,
        }));
    }

    /// Ends a session. `notify` sends the device a KICK.
    pub(super) fn close_session(&mut self, sid: u64, reason: KickReason, notify: bool) {
        let Some(mut s) = self.sessions.remove(&sid) else {
            return;
        };
        if let Some(d) = self
            .users
            .get_mut(&s.user)
            .and_then(|u| u.devices.get_mut(&s.device))
        {
            if d.session == Some(sid) {
                d.session = None;
            }
        }
        if notify {
            s.out.clear();
            s.out.push_back(Out::Frame(Frame::Kick(reason as u64)));
            s.down = Downlink::Pull;
            s.notify = None;
            s.build(
                Time::ZERO,
                Vec::new(),
                self.cfg.max_datagram,
                &mut self.transmits,
            );
        }
        self.events.push_back(BrokerEvent::Closed {
            session: sid,
            user: s.user,
            device: s.device,
            reason: reason as u64,
        });
    }

    pub(super) fn handle_frame(&mut self, now: Time, sid: u64, frame: Frame) {
        match frame {
            Frame::Padding(_) | Frame::Extension { .. } => {}
            Frame::Heartbeat(nonce) => {
                let Some(s) = self.sessions.get_mut(&sid) else {
                    return;
                };
                s.out.push_back(Out::Frame(Frame::HeartbeatAck(nonce)));
                if s.unreachable {
                    s.unreachable = false;
                    if let Downlink::Push(sender) = &mut s.down {
                        sender.revive(now);
                    }
                }
            }
            Frame::HeartbeatAck(_) => {}
            Frame::Send(ref f) => self.on_uplink(now, sid, f.seq, frame.clone()),
            Frame::Read(ref f) => self.on_uplink(now, sid, f.seq, frame.clone()),
            Frame::Recall(ref f) => self.on_uplink(now, sid, f.seq, frame.clone()),
            Frame::Ack(ack) => self.on_downlink_ack(now, sid, ack),
            Frame::Pull(p) => self.on_pull(now, sid, p.request_id, p.after, p.max_entries),
            Frame::SummaryRequest(r) => self.on_summary_request(sid, r),
            Frame::Logout => self.close_session(sid, KickReason::LoggedOut, true),
            Frame::Error(_) => {}
            // Server-to-client frames and a second LOGIN are not allowed here.
            other => {
                let ty = encode_to_bytes(&other).first().copied().unwrap_or(0);
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.out.push_back(Out::Frame(Frame::Error(ErrorFrame {
                        code: ErrorCode::NotAllowed as u64,
                        frame_type: ty,
                        seq: 0,
                        reason: "frame not allowed from a client".into(),
                    })));
                }
            }
        }
    }

    fn on_uplink(&mut self, now: Time, sid: u64, seq: u64, frame: Frame) {
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
    fn apply_uplink(
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

    fn reject(&mut self, sid: u64, user: u64, device: u32, seq: u64, code: ErrorCode) {
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
    fn append(
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
        let frame = encode_to_bytes(&Frame::Deliver(Deliver {
            seq,
            conv,
            from_user,
            from_device,
            from_seq,
            time_ms: wall,
            body,
        }));
        self.mark_user_dirty(to);
        self.staged.appends.push((to, StoredEntry { seq, frame }));
        online
    }

    /// A committed entry for a session's user: push it if the session pushes.
    pub(super) fn offer_entry(&mut self, now: Time, sid: u64, entry: &StoredEntry) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        match &mut s.down {
            Downlink::Push(sender) => {
                if sender.next_seq() == entry.seq && !sender.is_full() {
                    let item = DownItem {
                        frame: entry.frame.clone(),
                        origin: origin_of(&entry.frame),
                    };
                    let _ = sender.push(now, item);
                }
            }
            Downlink::Pull => s.notify = Some(entry.seq),
        }
        self.touch(sid);
    }

    /// Tops a pushing session's queue up from the store.
    pub(super) fn refill(&mut self, now: Time, sid: u64) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let Downlink::Push(sender) = &s.down else {
            return;
        };
        let Some(u) = self.users.get(&s.user) else {
            return;
        };
        let head = u.committed_head;
        let next = sender.next_seq();
        if next > head || sender.is_full() || sender.is_failed() {
            return;
        }
        let room = (self.cfg.downlink.capacity - sender.len()).min(self.cfg.page_entries as usize);
        let user = s.user;
        let entries = match self.store.read_inbox(user, next - 1, room) {
            Ok(e) => e,
            Err(e) => {
                self.events.push_back(BrokerEvent::StoreReadFailed {
                    error: e.to_string(),
                });
                return;
            }
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Downlink::Push(sender) = &mut s.down else {
            return;
        };
        for e in entries {
            if e.seq != sender.next_seq() || e.seq > head {
                break;
            }
            let origin = origin_of(&e.frame);
            if sender
                .push(
                    now,
                    DownItem {
                        frame: e.frame,
                        origin,
                    },
                )
                .is_err()
            {
                break;
            }
        }
        self.touch(sid);
    }

    pub(super) fn drain_downlink_events(&mut self, now: Time, sid: u64) {
        let mut released = Vec::new();
        let mut failed = false;
        {
            let Some(s) = self.sessions.get_mut(&sid) else {
                return;
            };
            let Downlink::Push(sender) = &mut s.down else {
                return;
            };
            while let Some(ev) = sender.poll_event() {
                match ev {
                    SenderEvent::Acked { seq, item } => {
                        if let Some(o) = item.origin {
                            released.push((seq, o));
                        }
                    }
                    SenderEvent::Failed { .. } => failed = true,
                }
            }
            if failed && !s.unreachable {
                s.unreachable = true;
            } else {
                failed = false;
            }
        }
        if failed {
            self.stats.unreachable += 1;
            if let Some(s) = self.sessions.get(&sid) {
                self.events.push_back(BrokerEvent::Unreachable {
                    user: s.user,
                    device: s.device,
                });
            }
        }
        if !released.is_empty() {
            self.issue_receipts(now, sid, &released);
            self.refill(now, sid);
        }
    }

    fn on_downlink_ack(&mut self, now: Time, sid: u64, ack: Ack) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let (user, device) = (s.user, s.device);
        let head = self.users.get(&user).map_or(0, |u| u.committed_head);
        let cumulative = ack.cumulative.min(head);
        if let Downlink::Push(sender) = &mut s.down {
            let delay = std::time::Duration::from_micros(ack.delay_us);
            sender.handle_ack(now, cumulative, &ack.ranges, delay);
        }
        // Pulled entries acknowledged by ACK rather than by a next PULL: the
        // last page of a backlog, after which the session pushes.
        let page: Vec<_> = s
            .last_page
            .iter()
            .filter(|(q, _)| *q <= cumulative)
            .copied()
            .collect();
        s.last_page.retain(|(q, _)| *q > cumulative);
        self.issue_receipts(now, sid, &page);
        self.advance_checkpoint(user, device, cumulative);
        self.drain_downlink_events(now, sid);
        self.touch(sid);
    }

    /// Deletes entries older than the retention time, even if some device
    /// never read them. Looked at most once a minute per inbox, on activity.
    pub(super) fn retention_sweep(&mut self, now: Time, user: u64) {
        let cutoff = self
            .wall_ms(now)
            .saturating_sub(self.cfg.retention.as_millis() as u64);
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        if u.swept_at
            .is_some_and(|t| now.saturating_since(t) < std::time::Duration::from_secs(60))
        {
            return;
        }
        u.swept_at = Some(now);
        let (mut from, head) = (u.meta.trimmed, u.committed_head);
        let mut up_to = None;
        // Entries are in time order: stop at the first one young enough.
        'scan: for _ in 0..16 {
            if from >= head {
                break;
            }
            let Ok(entries) = self.store.read_inbox(user, from, 256) else {
                return;
            };
            if entries.is_empty() {
                break;
            }
            for e in entries.iter().take_while(|e| e.seq <= head) {
                match Frame::decode(&mut Reader::new(e.frame.clone())) {
                    Ok(Frame::Deliver(d)) if d.time_ms < cutoff => up_to = Some(e.seq),
                    _ => break 'scan,
                }
                from = e.seq;
            }
        }
        if let Some(up_to) = up_to {
            if let Some(u) = self.users.get_mut(&user) {
                u.meta.trimmed = up_to;
            }
            self.mark_user_dirty(user);
            self.staged.trims.push((user, up_to));
        }
    }

    fn advance_checkpoint(&mut self, user: u64, device: u32, to: u64) {
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        let Some(d) = u.devices.get_mut(&device) else {
            return;
        };
        if to <= d.staged.checkpoint {
            return;
        }
        d.staged.checkpoint = to;
        let min = u.min_checkpoint();
        let trim = (min > u.meta.trimmed).then(|| {
            u.meta.trimmed = min;
            min
        });
        self.mark_device_dirty(user, device);
        if let Some(up_to) = trim {
            self.mark_user_dirty(user);
            self.staged.trims.push((user, up_to));
        }
    }

    /// DELIVERED receipts for messages a device has acknowledged: one
    /// "up to" receipt per sending device, never repeated across devices.
    fn issue_receipts(&mut self, now: Time, sid: u64, released: &[(u64, Origin)]) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (user, device) = (s.user, s.device);
        let mut best: Vec<Origin> = Vec::new();
        for (_, o) in released {
            if o.from_user == user {
                continue;
            }
            match best
                .iter_mut()
                .find(|b| b.from_user == o.from_user && b.from_device == o.from_device)
            {
                Some(b) if b.from_seq < o.from_seq => *b = *o,
                Some(_) => {}
                None => best.push(*o),
            }
        }
        for o in best {
            let Some(u) = self.users.get_mut(&user) else {
                return;
            };
            let done = u.receipted.entry((o.from_user, o.from_device)).or_insert(0);
            if *done >= o.from_seq {
                continue;
            }
            *done = o.from_seq;
            let body = EntryBody::Receipt {
                status: ReceiptStatus::Delivered,
                target_device: o.from_device,
                target_seq: o.from_seq,
            };
            self.append(now, o.from_user, o.conv, user, device, 0, body);
        }
    }

    fn on_pull(&mut self, now: Time, sid: u64, request_id: u64, after: u64, max: u64) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let (user, device) = (s.user, s.device);
        let Some(u) = self.users.get(&user) else {
            return;
        };
        let head = u.committed_head;
        let after = after.min(head).max(u.meta.trimmed.min(head));
        // Pulling past a page acknowledges it.
        let page: Vec<_> = s
            .last_page
            .iter()
            .filter(|(q, _)| *q <= after)
            .copied()
            .collect();
        s.last_page.retain(|(q, _)| *q > after);
        self.issue_receipts(now, sid, &page);
        self.advance_checkpoint(user, device, after);
        let max = max.clamp(1, self.cfg.page_entries) as usize;
        let entries = match self.store.read_inbox(user, after, max) {
            Ok(e) => e,
            Err(e) => {
                self.events.push_back(BrokerEvent::StoreReadFailed {
                    error: e.to_string(),
                });
                self.queue_error(sid, ErrorCode::StorageFailure, crate::wire::ty::PULL);
                return;
            }
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let mut last = after;
        for e in entries.into_iter().take_while(|e| e.seq <= head) {
            last = e.seq;
            if let Some(o) = origin_of(&e.frame) {
                s.last_page.push((e.seq, o));
            }
            s.out.push_back(Out::Raw(e.frame));
            self.stats.pulled += 1;
        }
        let end = last >= head;
        s.out.push_back(Out::Frame(Frame::PageEnd(PageEnd {
            request_id,
            last,
            end,
            head,
        })));
        if end && matches!(s.down, Downlink::Pull) {
            let seed = rand::Rng::gen(&mut self.rng);
            s.down = Downlink::Push(Box::new(Sender::new(
                self.cfg.downlink.clone(),
                last + 1,
                seed,
            )));
        }
        self.touch(sid);
    }

    pub(super) fn queue_error(&mut self, sid: u64, code: ErrorCode, frame_type: u8) {
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.out.push_back(Out::Frame(Frame::Error(ErrorFrame {
                code: code as u64,
                frame_type,
                seq: 0,
                reason: String::new(),
            })));
        }
    }
}

/// The message id inside an encoded DELIVER frame, if it is a message.
fn origin_of(frame: &Bytes) -> Option<Origin> {
    let mut r = Reader::new(frame.clone());
    match Frame::decode(&mut r) {
        Ok(Frame::Deliver(d)) if matches!(d.body, EntryBody::Message { .. }) => Some(Origin {
            conv: d.conv,
            from_user: d.from_user,
            from_device: d.from_device,
            from_seq: d.from_seq,
        }),
        _ => None,
    }
}
