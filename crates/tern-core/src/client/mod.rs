//! The client side of a session as a sans-IO state machine: login, heartbeat,
//! idle detection, the uplink retransmission queue, the downlink reorder
//! window, ACK coalescing and backlog pulling.
//!
//! Call order for a driver, on every wake-up:
//! 1. feed input: [`ClientConn::handle_datagram`], [`ClientConn::handle_timeout`],
//!    [`ClientConn::submit`] and the other requests;
//! 2. drain [`ClientConn::poll_transmit`], sending each datagram to the server;
//! 3. drain [`ClientConn::poll_event`];
//! 4. sleep until [`ClientConn::poll_timeout`] or the next datagram.
//!
//! The driver may send from a new local address at any time (a network
//! switch): the session is found by its id, not by address.

mod config;
mod events;
mod outgoing;

pub use config::ClientConfig;
pub use events::{ClientEvent, OpId};

pub use outgoing::Outgoing;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use crate::reliability::{AckCoalescer, Arrival, QueueFull, Receiver, Sender, SenderEvent};
use crate::time::Time;
use crate::wire::limits::PUSH_BACKLOG_LIMIT;
use crate::wire::{
    Ack, Deliver, ErrorCode, Frame, Header, KickReason, Login, LoginOk, Packet, PacketBuilder,
    Pull, SummaryRequest,
};

/// Client datagrams are padded to at least this size: the smallest ERROR
/// reply fits in it, and a server never answers with more than it received.
const MIN_CLIENT_PACKET: usize = 24;
/// Sealed logins are padded to at least this size, so that the handshake
/// answer (LOGIN_OK inside message 2) is never larger than what asked for it.
const MIN_HANDSHAKE_PACKET: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LoggingIn { next: Time, interval: Duration },
    Active,
    Closed,
}

/// A client's session with a server.
pub struct ClientConn {
    cfg: ClientConfig,
    state: State,
    session_id: u64,
    next_pn: u64,
    last_heard: Time,
    last_sent: Time,
    heartbeat: Duration,
    idle_timeout: Duration,
    /// Operations submitted before the first login gave us a sequence base.
    waiting: VecDeque<(OpId, Outgoing)>,
    uplink: Option<Sender<(OpId, Outgoing)>>,
    rejected: HashMap<u64, u64>,
    downlink: Receiver<Deliver>,
    released: u64,
    epoch: u64,
    acks: AckCoalescer,
    control: VecDeque<Frame>,
    /// An outstanding pull: (request id, after, sent at).
    pull: Option<(u64, u64, Time)>,
    pulling: bool,
    /// The next PULL waits for the application to release every entry
    /// handed up (manual release): a PULL acknowledges up to its `after`, so
    /// sent earlier it would fetch the same page again.
    pull_held: bool,
    next_request: u64,
    next_op: u64,
    heartbeat_nonce: u64,
    events: VecDeque<ClientEvent>,
    seed: u64,
    /// Address-validation cookie from the server's last RETRY.
    cookie: Option<Bytes>,
    /// When the current login attempt's LOGINs were sent: (last, count).
    login_sent: Option<(Time, u32)>,
    /// Handshake randomness (sealed sessions).
    entropy: crate::seal::Entropy,
    /// The handshake of the current sealed login attempt and its message 1,
    /// resent unchanged until answered.
    initiator: Option<(crate::seal::Initiator, Bytes)>,
    /// Keys of the current sealed session.
    channel: Option<crate::seal::Channel>,
    stats: SealStats,
}

/// What a sealed client dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealStats {
    /// Sealed packets that failed authentication (tampered, truncated, forged).
    pub rejected: u64,
    /// Authentic sealed packets received again.
    pub replayed: u64,
    /// Clear packets a sealed session does not accept.
    pub clear_dropped: u64,
    /// Handshake answers that did not verify.
    pub handshake_failed: u64,
}

impl ClientConn {
    /// A connection that starts logging in at `now`.
    pub fn new(mut cfg: ClientConfig, now: Time, seed: u64) -> Self {
        let downlink = Receiver::new(cfg.downlink.clone(), cfg.checkpoint);
        let acks = AckCoalescer::new(&cfg.downlink);
        let resume = std::mem::take(&mut cfg.resume);
        let mut next_op = 1;
        let first = resume.first().map(|(seq, _)| *seq);
        let uplink = first.map(|first| {
            let mut s = Sender::new(cfg.uplink.clone(), first, seed);
            for (_, op) in resume {
                // Capacity was checked when these were first accepted.
                let _ = s.push(now, (OpId(next_op), op));
                next_op += 1;
            }
            s
        });
        ClientConn {
            state: State::LoggingIn {
                next: now,
                interval: cfg.login_initial,
            },
            session_id: 0,
            next_pn: 1,
            last_heard: now,
            last_sent: now,
            heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            waiting: VecDeque::new(),
            uplink,
            rejected: HashMap::new(),
            released: cfg.checkpoint,
            epoch: cfg.epoch,
            downlink,
            acks,
            control: VecDeque::new(),
            pull: None,
            pulling: false,
            pull_held: false,
            next_request: 1,
            next_op,
            heartbeat_nonce: 0,
            events: VecDeque::new(),
            seed,
            cookie: None,
            login_sent: None,
            entropy: match cfg.entropy {
                Some(e) => crate::seal::Entropy::from_seed(e),
                None => crate::seal::Entropy::from_test_seed(seed),
            },
            initiator: None,
            channel: None,
            stats: SealStats::default(),
            cfg,
        }
    }

    /// Whether this connection seals its sessions.
    pub fn is_sealed(&self) -> bool {
        self.cfg.server_key.is_some()
    }

    /// Packets a sealed connection dropped.
    pub fn seal_stats(&self) -> SealStats {
        self.stats
    }

    /// True once logged in and until the session is lost.
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    /// True after a terminal KICK, LOGOUT or login refusal.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The inbox epoch and checkpoint to persist (and pass back in
    /// [`ClientConfig`] on the next start).
    pub fn checkpoint(&self) -> (u64, u64) {
        (self.epoch, self.released)
    }

    /// Uplink operations not yet stored by the server.
    pub fn pending(&self) -> usize {
        self.waiting.len() + self.uplink.as_ref().map_or(0, |s| s.len())
    }

    /// Uplink counters and RTT, once logged in.
    pub fn uplink(&self) -> Option<&Sender<(OpId, Outgoing)>> {
        self.uplink.as_ref()
    }

    /// Downlink counters.
    pub fn downlink(&self) -> &Receiver<Deliver> {
        &self.downlink
    }

    /// Queues an uplink operation. It is sent once logged in and retried
    /// until the server stores it, across re-logins.
    pub fn submit(&mut self, now: Time, op: Outgoing) -> Result<OpId, QueueFull> {
        let id = OpId(self.next_op);
        match &mut self.uplink {
            Some(s) => {
                s.push(now, (id, op))?;
            }
            None => {
                if self.waiting.len() >= self.cfg.uplink.capacity {
                    return Err(QueueFull {
                        capacity: self.cfg.uplink.capacity,
                    });
                }
                self.waiting.push_back((id, op));
            }
        }
        self.next_op += 1;
        Ok(id)
    }

    /// Asks for the conversation counters past the checkpoint.
    pub fn request_summary(&mut self, cursor: u64, max_convs: u64) -> u64 {
        let request_id = self.request_id();
        self.control
            .push_back(Frame::SummaryRequest(SummaryRequest {
                request_id,
                cursor,
                max_convs,
            }));
        request_id
    }

    /// Starts pulling the backlog page by page (done automatically when
    /// `auto_pull` is set and the server asks for it).
    ///
    /// With `auto_release` off, the PULL is held until every entry handed
    /// up so far has been released (see [`ClientConn::release`]).
    pub fn start_pull(&mut self, now: Time) {
        self.pulling = true;
        self.pull_next(now);
    }

    /// Marks entries up to `seq` as durably processed by the application
    /// (only needed with `auto_release` off). Once everything handed up is
    /// released, a PULL held for it goes out.
    pub fn release(&mut self, now: Time, seq: u64) {
        let seq = seq.min(self.downlink.delivered());
        if seq > self.released {
            self.released = seq;
            self.acks.on_ack_eliciting(now, false);
        }
        if self.pull_held && self.released >= self.downlink.delivered() {
            self.pull_held = false;
            self.send_pull(now);
        }
    }

    /// Sends a HEARTBEAT at once, e.g. after the local address changed, so
    /// that the server follows the new address before it has something to
    /// push. While logging in, the LOGIN is resent at once instead.
    pub fn ping(&mut self, now: Time) {
        match self.state {
            State::Active => self.queue_heartbeat(),
            State::LoggingIn { interval, .. } => {
                self.state = State::LoggingIn {
                    next: now,
                    interval,
                }
            }
            State::Closed => {}
        }
    }

    fn queue_heartbeat(&mut self) {
        self.heartbeat_nonce += 1;
        self.control
            .push_back(Frame::Heartbeat(self.heartbeat_nonce));
    }

    /// Ends the session.
    pub fn logout(&mut self) {
        if self.state == State::Active {
            self.control.push_back(Frame::Logout);
        }
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Pulls the next page, or holds the PULL while entries handed up are
    /// not released yet: its `after` acknowledges only released entries, and
    /// the server answers from there.
    fn pull_next(&mut self, now: Time) {
        if self.released < self.downlink.delivered() {
            self.pull_held = true;
        } else {
            self.pull_held = false;
            self.send_pull(now);
        }
    }

    fn send_pull(&mut self, now: Time) {
        let request_id = self.request_id();
        let after = self.released;
        self.pull = Some((request_id, after, now));
        self.control.push_back(Frame::Pull(Pull {
            request_id,
            after,
            max_entries: self.cfg.page_entries,
        }));
    }

    fn relogin(&mut self, now: Time) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::LoggingIn {
            next: now,
            interval: self.cfg.login_initial,
        };
        self.session_id = 0;
        self.login_sent = None;
        self.initiator = None;
        self.channel = None;
        self.control.clear();
        self.pull = None;
        self.pull_held = false;
        self.events.push_back(ClientEvent::Disconnected);
    }

    /// Processes one datagram from the server.
    pub fn handle_datagram(&mut self, now: Time, data: Bytes) {
        let packet = if data.get(1) == Some(&crate::wire::FLAG_SEALED) {
            let Some(ch) = self.channel.as_mut() else {
                return; // no keys (yet): the peer retransmits
            };
            match ch.open(&data) {
                Ok(p) => p,
                Err(crate::seal::OpenError::Replay(_)) => {
                    self.stats.replayed += 1;
                    return;
                }
                Err(_) => {
                    self.stats.rejected += 1;
                    return;
                }
            }
        } else {
            let Ok(packet) = Packet::decode(data) else {
                return; // corrupted or foreign: ignore, the peer retransmits
            };
            if self.is_sealed() && !self.clear_allowed(&packet) {
                self.stats.clear_dropped += 1;
                return;
            }
            packet
        };
        let sid = packet.header.session_id;
        let accept = match self.state {
            State::Closed => false,
            State::LoggingIn { .. } => true,
            State::Active => sid == self.session_id || sid == 0,
        };
        if !accept {
            return;
        }
        self.last_heard = now;
        for frame in packet.frames {
            self.handle_frame(now, sid, frame);
        }
    }

    /// The clear packets a sealed connection believes: what a server must
    /// say before it has keys (RETRY, the handshake answer, login refusals)
    /// and UNKNOWN_SESSION naming our session (its id is secret to off-path
    /// attackers). Anything else in the clear is forged.
    fn clear_allowed(&self, packet: &Packet) -> bool {
        let logging_in = matches!(self.state, State::LoggingIn { .. });
        packet.frames.iter().all(|f| match f {
            Frame::Padding(_) => true,
            Frame::Retry(_) | Frame::HandshakeReply(_) => logging_in,
            Frame::Error(e) if logging_in => e.seq == 0,
            Frame::Error(e) => {
                e.code == ErrorCode::UnknownSession as u64
                    && packet.header.session_id == self.session_id
            }
            _ => false,
        })
    }

    fn on_handshake_reply(&mut self, now: Time, msg2: Bytes) {
        if !matches!(self.state, State::LoggingIn { .. }) {
            return;
        }
        let Some((init, _)) = self.initiator.take() else {
            return;
        };
        match init.finish(&msg2) {
            Ok((welcome, channel)) => {
                self.channel = Some(channel);
                for frame in welcome.frames {
                    self.handle_frame(now, welcome.session_id, frame);
                }
                if !matches!(self.state, State::Active) {
                    self.channel = None; // no LOGIN_OK inside: start over
                }
            }
            Err(_) => self.stats.handshake_failed += 1,
        }
    }

    fn handle_frame(&mut self, now: Time, sid: u64, frame: Frame) {
        match frame {
            Frame::LoginOk(ok) => self.on_login_ok(now, sid, ok),
            Frame::HandshakeReply(m) if self.is_sealed() => self.on_handshake_reply(now, m),
            Frame::Retry(cookie) => {
                // Prove our address: log in again at once, echoing the cookie.
                if let State::LoggingIn { interval, .. } = self.state {
                    self.cookie = Some(cookie);
                    // The handshake binds the cookie: start a new one.
                    self.initiator = None;
                    self.state = State::LoggingIn {
                        next: now,
                        interval,
                    };
                }
            }
            Frame::Ack(ack) => self.on_ack(now, ack),
            Frame::Deliver(d) if self.state == State::Active => self.on_deliver(now, d),
            Frame::PageEnd(p) => self.on_page_end(now, p),
            Frame::Summary(s) => self.events.push_back(ClientEvent::Summary(s)),
            Frame::SummaryEnd(s) => self.events.push_back(ClientEvent::SummaryEnd(s)),
            Frame::Notify(head) => {
                self.events.push_back(ClientEvent::Notify { head });
                if self.cfg.auto_pull
                    && self.pull.is_none()
                    && !self.pull_held
                    && head > self.downlink.delivered()
                {
                    self.start_pull(now);
                }
            }
            // A KICK for a session we already left (e.g. the one a new login
            // replaced) is not about us.
            Frame::Kick(_) if self.state != State::Active || sid != self.session_id => {}
            Frame::Kick(code) => {
                let reason = KickReason::from_code(code);
                self.events.push_back(ClientEvent::Kicked { code });
                match reason {
                    Some(KickReason::Replaced | KickReason::LoggedOut) => {
                        self.state = State::Closed
                    }
                    _ => self.relogin(now),
                }
            }
            Frame::Error(e) => self.on_error(now, sid, e),
            _ => {}
        }
    }

    fn on_login_ok(&mut self, now: Time, sid: u64, ok: LoginOk) {
        if !matches!(self.state, State::LoggingIn { .. }) || sid == 0 {
            return;
        }
        // The login round trip is the first RTT sample, unless LOGIN was
        // sent more than once (Karn: the answer could be to either).
        let login_rtt = match self.login_sent.take() {
            Some((at, 1)) => Some(now.saturating_since(at)),
            _ => None,
        };
        self.state = State::Active;
        self.session_id = sid;
        // Packet numbers keep counting across sessions: the server tells a
        // late copy of this LOGIN from a new one by them.
        self.heartbeat = Duration::from_millis(ok.heartbeat_ms.max(1000));
        self.idle_timeout = Duration::from_millis(ok.idle_timeout_ms.max(3000));
        self.reconcile_uplink(now, ok.next_send_seq, login_rtt);
        if ok.epoch != self.epoch || ok.checkpoint != self.released {
            self.events.push_back(ClientEvent::Resync {
                epoch: ok.epoch,
                checkpoint: ok.checkpoint,
            });
        }
        self.epoch = ok.epoch;
        self.released = ok.checkpoint;
        self.downlink.reset(ok.checkpoint);
        let pull_mode = ok.head.saturating_sub(ok.checkpoint) > PUSH_BACKLOG_LIMIT;
        self.events.push_back(ClientEvent::LoggedIn {
            user: ok.user,
            device: ok.device,
            epoch: ok.epoch,
            head: ok.head,
            checkpoint: ok.checkpoint,
            pull_mode,
        });
        if pull_mode && self.cfg.auto_pull {
            self.start_pull(now);
        }
    }

    /// Lines the uplink queue up with what the server has stored.
    fn reconcile_uplink(&mut self, now: Time, next: u64, login_rtt: Option<Duration>) {
        let (mut items, rtt) = match self.uplink.take() {
            Some(mut s) => (s.drain(), Some(s.rtt().clone())),
            None => (Vec::new(), None),
        };
        let seed = self.seed ^ next;
        let mut sender = Sender::new(self.cfg.uplink.clone(), next, seed);
        let mut rtt = rtt.unwrap_or_else(|| sender.rtt().clone());
        if let Some(sample) = login_rtt {
            rtt.on_sample(sample, Duration::ZERO);
        }
        sender = sender.with_rtt(rtt);
        // Everything below `next` was stored (its ACK was lost).
        items.retain(|(seq, (op, _))| {
            if *seq < next {
                let ev = match self.rejected.remove(seq) {
                    Some(code) => ClientEvent::Rejected {
                        op: *op,
                        seq: *seq,
                        code,
                    },
                    None => ClientEvent::Stored {
                        op: *op,
                        seq: *seq,
                        receiver_online: false,
                    },
                };
                self.events.push_back(ev);
                false
            } else {
                true
            }
        });
        for (old_seq, item) in items
            .into_iter()
            .chain(self.waiting.drain(..).map(|i| (0, i)))
        {
            let op = item.0;
            if let Ok(seq) = sender.push(now, item) {
                if old_seq != 0 && old_seq != seq {
                    self.events.push_back(ClientEvent::Resequenced {
                        op,
                        old: old_seq,
                        new: seq,
                    });
                }
                if old_seq == 0 {
                    self.events.push_back(ClientEvent::Sequenced { op, seq });
                }
            }
        }
        self.uplink = Some(sender);
    }

    fn on_ack(&mut self, now: Time, ack: Ack) {
        let Some(s) = &mut self.uplink else { return };
        s.handle_ack(
            now,
            ack.cumulative,
            &ack.ranges,
            Duration::from_micros(ack.delay_us),
        );
        while let Some(ev) = s.poll_event() {
            match ev {
                SenderEvent::Acked { seq, item: (op, _) } => {
                    let ev = match self.rejected.remove(&seq) {
                        Some(code) => ClientEvent::Rejected { op, seq, code },
                        None => ClientEvent::Stored {
                            op,
                            seq,
                            receiver_online: ack.receiver_online,
                        },
                    };
                    self.events.push_back(ev);
                }
                SenderEvent::Failed { seq, .. } => {
                    self.events.push_back(ClientEvent::SendFailed { seq })
                }
            }
        }
    }

    fn on_deliver(&mut self, now: Time, d: Deliver) {
        let arrival = self.downlink.on_receive(d.seq, d);
        self.acks.on_ack_eliciting(now, arrival != Arrival::InOrder);
        while let Some((_, d)) = self.downlink.poll_deliver() {
            self.events.push_back(ClientEvent::Entry(d));
        }
        if self.cfg.auto_release {
            self.released = self.downlink.delivered();
        }
    }

    fn on_page_end(&mut self, now: Time, p: crate::wire::PageEnd) {
        let ours = self.pull.is_some_and(|(id, _, _)| id == p.request_id);
        self.events.push_back(ClientEvent::PageEnd(p.clone()));
        if !ours {
            return;
        }
        self.pull = None;
        let complete = self.downlink.delivered() >= p.last;
        if p.end && complete {
            self.pulling = false;
        } else if self.pulling {
            // Next page; it acknowledges this one, so with manual release it
            // waits until the application has released this one. A hole
            // (lost datagram) makes it start from the contiguous point
            // instead.
            self.pull_next(now);
        }
    }

    fn on_error(&mut self, now: Time, sid: u64, e: crate::wire::ErrorFrame) {
        let code = ErrorCode::from_code(e.code);
        if e.seq != 0 {
            self.rejected.insert(e.seq, e.code);
            return;
        }
        match code {
            Some(ErrorCode::UnknownSession)
                if self.state == State::Active
                    && (sid == 0 || (self.is_sealed() && sid == self.session_id)) =>
            {
                self.relogin(now)
            }
            // A clear client told to seal cannot succeed by retrying.
            Some(ErrorCode::SealRequired)
                if matches!(self.state, State::LoggingIn { .. }) && !self.is_sealed() =>
            {
                self.state = State::Closed;
                self.events
                    .push_back(ClientEvent::LoginRefused { code: e.code });
            }
            Some(ErrorCode::BadToken | ErrorCode::TokenExpired)
                if matches!(self.state, State::LoggingIn { .. }) =>
            {
                self.state = State::Closed;
                self.events
                    .push_back(ClientEvent::LoginRefused { code: e.code });
            }
            _ => self.events.push_back(ClientEvent::ServerError(e)),
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        match self.state {
            State::Closed => {}
            State::LoggingIn { .. } => {}
            State::Active => {
                if now.saturating_since(self.last_heard) >= self.idle_timeout {
                    self.relogin(now);
                    return;
                }
                if let Some(s) = &mut self.uplink {
                    s.handle_timeout(now);
                    while let Some(ev) = s.poll_event() {
                        if let SenderEvent::Failed { seq, .. } = ev {
                            self.events.push_back(ClientEvent::SendFailed { seq });
                            // The path looks dead: start over with a new login.
                            self.relogin(now);
                            return;
                        }
                    }
                }
                if let Some((_, _, at)) = self.pull {
                    let rto = self
                        .uplink
                        .as_ref()
                        .map_or(self.cfg.login_initial, |s| s.rtt().rto());
                    if now.saturating_since(at) >= rto * 2 {
                        self.send_pull(now);
                    }
                }
                if now.saturating_since(self.last_sent) >= self.heartbeat {
                    self.queue_heartbeat();
                }
            }
        }
    }

    /// When [`ClientConn::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.state {
            State::Closed => None,
            State::LoggingIn { next, .. } => Some(next),
            State::Active => {
                let mut t =
                    (self.last_heard + self.idle_timeout).min(self.last_sent + self.heartbeat);
                if let Some(d) = self.uplink.as_ref().and_then(|s| s.poll_timeout()) {
                    t = t.min(d);
                }
                if let Some(a) = self.acks.poll_timeout() {
                    t = t.min(a);
                }
                if let Some((_, _, at)) = self.pull {
                    let rto = self
                        .uplink
                        .as_ref()
                        .map_or(self.cfg.login_initial, |s| s.rtt().rto());
                    t = t.min(at + rto * 2);
                }
                Some(t)
            }
        }
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn header(&mut self) -> Header {
        let h = Header {
            session_id: self.session_id,
            packet_number: self.next_pn,
        };
        self.next_pn += 1;
        h
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self, now: Time) -> Option<Bytes> {
        match self.state {
            State::Closed => None,
            State::LoggingIn { next, interval } => {
                if now < next {
                    return None;
                }
                self.state = State::LoggingIn {
                    next: now + interval,
                    interval: (interval * 2).min(self.cfg.login_max),
                };
                let mut pb = PacketBuilder::new(self.header(), self.cfg.max_datagram);
                if let Some(c) = &self.cookie {
                    pb.push(&Frame::Cookie(c.clone())).ok()?;
                }
                let login = Login {
                    token: self.cfg.token.clone(),
                    epoch: self.epoch,
                    checkpoint: self.released,
                };
                if let Some(key) = self.cfg.server_key {
                    if self.initiator.is_none() {
                        let time = self.cfg.wall_origin_ms + now.as_micros() / 1000;
                        let cookie = self.cookie.as_deref();
                        let started = crate::seal::Initiator::start(
                            &mut self.entropy,
                            &key,
                            cookie,
                            time,
                            &login,
                        );
                        self.initiator = started.ok();
                    }
                    let (_, msg1) = self.initiator.as_ref()?;
                    pb.push(&Frame::Handshake(msg1.clone())).ok()?;
                    pb.pad_to(MIN_HANDSHAKE_PACKET);
                } else {
                    pb.push(&Frame::Login(login)).ok()?;
                }
                self.last_sent = now;
                let count = self.login_sent.map_or(0, |(_, n)| n);
                self.login_sent = Some((now, count + 1));
                Some(pb.finish())
            }
            State::Active => self.build_active(now),
        }
    }

    fn ack_frame(&self, now: Time) -> Frame {
        let mut ranges = Vec::new();
        let delivered = self.downlink.delivered();
        if delivered > self.released {
            ranges.push((self.released + 1, delivered));
        }
        for r in self.downlink.buffered_ranges() {
            if ranges.len() == crate::wire::limits::MAX_ACK_RANGES {
                break;
            }
            ranges.push(r);
        }
        Frame::Ack(Ack {
            receiver_online: false,
            cumulative: self.released,
            delay_us: self.acks.delay(now).as_micros() as u64,
            ranges,
        })
    }

    fn build_active(&mut self, now: Time) -> Option<Bytes> {
        let has_uplink = self.uplink.as_ref().is_some_and(|s| s.has_transmit());
        let ack_due = self.acks.should_send(now);
        if self.control.is_empty() && !has_uplink && !ack_due {
            return None;
        }
        let max = match self.channel {
            Some(_) => self.cfg.max_datagram - crate::seal::SEAL_OVERHEAD,
            None => self.cfg.max_datagram,
        };
        let mut pb = PacketBuilder::new(self.header(), max);
        if self.acks.is_owed() {
            let ack = self.ack_frame(now);
            if pb.push(&ack).is_ok() {
                self.acks.on_ack_sent();
            }
        }
        while let Some(f) = self.control.front() {
            if pb.push(f).is_err() {
                break;
            }
            self.control.pop_front();
        }
        if let Some(s) = &mut self.uplink {
            // Only take an operation off the queue when it fits.
            while let Some((seq, (_, op))) = s.peek_transmit() {
                let frame = op.frame(seq);
                if frame.encoded_len() > pb.remaining() && !pb.is_empty() {
                    break;
                }
                s.poll_transmit(now);
                if pb.push(&frame).is_err() {
                    break; // cannot fit even alone: it will time out and fail visibly
                }
            }
        }
        if pb.is_empty() {
            self.next_pn -= 1;
            return None;
        }
        // Tiny packets (a lone HEARTBEAT) are padded so that the server may
        // answer UNKNOWN_SESSION without sending more than it received.
        pb.pad_to(MIN_CLIENT_PACKET);
        self.last_sent = now;
        match &self.channel {
            Some(ch) => Some(ch.seal(&pb.finish())),
            None => Some(pb.finish()),
        }
    }
}
