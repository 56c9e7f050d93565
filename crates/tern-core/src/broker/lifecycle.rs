//! A session's start and end: an admitted login opens a session (the
//! inbox created if new, the device's checkpoint and login recorded), which
//! is answered with LOGIN_OK (inside the handshake reply when sealed); a
//! session ends with a KICK.

use bytes::Bytes;
use rand::Rng;

use super::login::Admitted;
use super::session::{Downlink, Out, Session};
use super::users::Dev;
use super::{Broker, BrokerEvent, Peer};
use crate::store::{DeviceState, InboxMeta, Store};
use crate::time::Time;
use crate::wire::limits::PUSH_BACKLOG_LIMIT;
use crate::wire::{ty, ErrorCode, ErrorFrame, Frame, Header, KickReason, Login, LoginOk};

/// Where a logging-in device starts.
struct Start {
    /// Its downlink resumes after this inbox sequence.
    checkpoint: u64,
    /// Its uplink resumes after this sequence.
    applied: u64,
    /// Committed entries past `checkpoint`.
    backlog: u64,
    /// Entries the device says it has, past what the server had heard it
    /// acknowledge (its ACK was lost, or a crash lost its checkpoint):
    /// their DELIVERED receipts are owed.
    acked: Option<(u64, u64)>,
}

impl<S: Store> Broker<S> {
    /// Opens a session for an admitted login, replacing the device's old
    /// one, and queues LOGIN_OK and the first pushes.
    pub(super) fn open_session(&mut self, now: Time, from: Peer, len: usize, a: Admitted) {
        let (user, device) = (a.user, a.device);
        if let Some(old) = self.device_session(user, device) {
            self.stats.replaced += 1;
            self.close_session(old, KickReason::Replaced, true);
        }
        let epoch_seed: u64 = self.rng.gen_range(1..=crate::wire::varint::MAX);
        let sid = self.new_id();
        let Some(start) =
            self.attach_device(now, sid, user, device, &a.login, a.version, epoch_seed)
        else {
            self.reply_error(
                from,
                0,
                len,
                ErrorCode::StorageFailure,
                ty::LOGIN,
                "store unavailable",
            );
            return;
        };
        let down = if start.backlog <= PUSH_BACKLOG_LIMIT {
            Downlink::Push(self.new_downlink(start.checkpoint + 1, a.rtt))
        } else {
            Downlink::Pull
        };
        let session = Session {
            id: sid,
            user,
            device,
            peer: from,
            highest_pn: 0,
            gaps: Default::default(),
            next_pn: 1,
            opened: now,
            last_heard: now,
            uplink: super::lazy_uplink::LazyUplink::new(start.applied),
            down,
            unreachable: false,
            out: Default::default(),
            notify: None,
            last_page: Vec::new(),
            scheduled: None,
            login_pn: a.pn,
            version: a.version,
            bucket: super::admission::Bucket::full(self.cfg.session_burst, now),
            seal: None,
        };
        self.sessions.insert(sid, Box::new(session));
        if let Some((after, up_to)) = start.acked {
            self.receipts_on_login(now, sid, after, up_to);
        }
        if a.version >= crate::wire::VERSION_2 {
            // Groups in read fan-out left this user's states behind while
            // it was away: caught up now, before its device asks for the
            // list (which waits for them to be durable).
            self.catch_up_groups(user);
        }
        self.stats.logins += 1;
        self.events.push_back(BrokerEvent::LoggedIn {
            session: sid,
            user,
            device,
            peer: from,
        });
        self.queue_login_ok(now, sid, a.sealed);
        self.refill(now, sid);
        self.touch(sid);
    }

    /// Stages the login in the user's state: the inbox is created if new
    /// (with `epoch_seed`), and the device restarts from the checkpoint it
    /// claims (it may have lost data) within what is stored. `None` when the
    /// store cannot be read.
    #[allow(clippy::too_many_arguments)]
    fn attach_device(
        &mut self,
        now: Time,
        sid: u64,
        user: u64,
        device: u32,
        login: &Login,
        version: u8,
        epoch_seed: u64,
    ) -> Option<Start> {
        let wall = self.wall_ms(now);
        if self.user_mut(user).is_ok() {
            self.retention_sweep(now, user);
        }
        let u = self.user_mut(user).ok()?;
        let created = !u.exists;
        if created {
            u.exists = true;
            u.meta = InboxMeta {
                epoch: epoch_seed,
                ..InboxMeta::default()
            };
        }
        let (epoch, trimmed, committed_head) = (u.meta.epoch, u.meta.trimmed, u.committed_head);
        let client_cp = if login.epoch == epoch {
            login.checkpoint.min(committed_head)
        } else {
            0
        };
        let mut checkpoint = client_cp.max(trimmed);
        if version == crate::wire::VERSION {
            // A version 1 device cannot skip entries only version 2 knows:
            // it never resumes below the last of them (none are appended
            // once it is registered).
            checkpoint = checkpoint.max(u.meta.last_private);
        }
        let dev = u
            .devices
            .get_or_insert_with(device, || Dev::new(DeviceState::default()));
        let acked =
            (client_cp > dev.staged.checkpoint).then_some((dev.staged.checkpoint, client_cp));
        dev.staged.last_login_ms = wall;
        dev.staged.version = version;
        dev.staged.checkpoint = checkpoint;
        let applied = dev.staged.applied;
        dev.session = Some(sid);
        if created {
            self.mark_user_dirty(user);
        }
        self.mark_device_dirty(user, device);
        Some(Start {
            checkpoint,
            applied,
            backlog: committed_head.saturating_sub(checkpoint),
            acked,
        })
    }

    pub(super) fn new_id(&mut self) -> u64 {
        loop {
            let id: u64 = self.rng.gen();
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// A downlink sender, made when it first pushes; `login_rtt`, the round
    /// trip the login's cookie showed, replaces the blind initial RTO with
    /// a measured one.
    pub(super) fn new_downlink(
        &mut self,
        first_seq: u64,
        login_rtt: Option<std::time::Duration>,
    ) -> super::lazy_sender::LazySender {
        super::lazy_sender::LazySender::new(first_seq, login_rtt, self.rng.gen())
    }

    pub(super) fn device_session(&self, user: u64, device: u32) -> Option<u64> {
        self.users.get(&user)?.devices.get(&device)?.session
    }

    /// Queues the login answer: refusals the client may not have heard of,
    /// then LOGIN_OK. For a sealed login they travel inside the handshake's
    /// message 2, and the session gets its keys.
    pub(super) fn queue_login_ok(
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
                version: crate::wire::VERSION,
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
        let peer = s.peer;
        let token = self.address_token_for(now, peer).map(Frame::AddressToken);
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some((responder, hello)) = responder else {
            s.out.extend(refusals.into_iter().map(Out::Frame));
            s.out.push_back(Out::Frame(Frame::LoginOk(ok)));
            // In the same datagram: a client that does not know it skips it.
            s.out.extend(token.map(Out::Frame));
            return;
        };
        // Sealed, in the session's first sealed packet.
        s.out.extend(token.map(Out::Frame));
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
            version: s.version,
        };
        s.next_pn += 1;
        let mut pb =
            crate::wire::PacketBuilder::new(header, crate::wire::limits::MAX_RECV_DATAGRAM);
        if pb.push(&Frame::HandshakeReply(msg2)).is_err() {
            return;
        }
        // Kept until the client's first sealed packet: in an allocation of
        // its own size, not the builder's 1,500 bytes.
        let reply = Bytes::copy_from_slice(&pb.finish());
        s.seal = Some(Box::new(super::session::SessionSeal {
            channel,
            client_time_ms: hello.client_time_ms,
            ephemeral: hello.ephemeral,
            reply: Some(reply),
            reply_due: true,
        }));
        self.answering.insert(hello.ephemeral, sid);
    }

    /// Ends a session. `notify` sends the device a KICK.
    pub(super) fn close_session(&mut self, sid: u64, reason: KickReason, notify: bool) {
        let Some(mut s) = self.sessions.remove(&sid) else {
            return;
        };
        if let Some(seal) = &s.seal {
            if self.answering.get(&seal.ephemeral) == Some(&sid) {
                self.answering.remove(&seal.ephemeral);
            }
        }
        if let Some(d) = self
            .users
            .get_mut(&s.user)
            .and_then(|u| u.devices.get_mut(&s.device))
        {
            if d.session == Some(sid) {
                d.session = None;
            }
        }
        self.user_went_offline(s.user);
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
}
