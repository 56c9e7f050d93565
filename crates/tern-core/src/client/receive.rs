//! What comes from the server: opening sealed packets, accepting a packet
//! for the current session, and acting on each frame (login, KICK, ERROR,
//! and dispatch to the uplink, downlink and summary paging).

use std::time::Duration;

use bytes::Bytes;

use crate::time::Time;
use crate::wire::limits::PUSH_BACKLOG_LIMIT;
use crate::wire::{ErrorCode, ErrorFrame, Frame, KickReason, LoginOk, Packet};

use super::delivery::LoginChange;

/// The shortest login retry interval a measured round trip may set.
const MIN_LOGIN_INTERVAL: Duration = Duration::from_millis(100);
use super::{ClientConn, ClientEvent, State};

impl ClientConn {
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
        if packet.header.version == crate::wire::VERSION_2 {
            self.heard_v2 = true;
        }
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
        if self.state == State::Active && sid == self.session_id {
            self.inbound.on_packet(packet.header.packet_number);
            if let (Some(loss), Some(up)) = (self.inbound.loss(), self.uplink.as_mut()) {
                up.path_loss_hint(loss);
            }
        }
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

    pub(super) fn on_handshake_reply(&mut self, now: Time, msg2: Bytes) {
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

    pub(super) fn handle_frame(&mut self, now: Time, sid: u64, frame: Frame) {
        match frame {
            Frame::LoginOk(ok) => self.on_login_ok(now, sid, ok),
            Frame::HandshakeReply(m) if self.is_sealed() => self.on_handshake_reply(now, m),
            Frame::Retry(cookie) => {
                // Prove our address: log in again at once, echoing the cookie.
                let echoed = self.retry_guard.is_some_and(|until| now < until);
                if let (State::LoggingIn { interval, .. }, false) = (self.state, echoed) {
                    self.cookie = Some(cookie);
                    self.retries_echoed = self.retries_echoed.saturating_add(1);
                    // The handshake binds the cookie: start a new one.
                    self.initiator = None;
                    self.login_echo = None;
                    // The RETRY measured the path: the next exchange is
                    // timed from that round trip (3 RTTs, as a first RTO
                    // is), not from the blind interval already doubled.
                    // Only from a LOGIN sent once (Karn): an answer to a
                    // retransmission could be to either copy.
                    let rtt = match self.login_sent.take() {
                        Some((at, 1)) => Some(now.saturating_since(at)),
                        _ => None,
                    };
                    let interval = rtt.map_or(interval, |rtt| {
                        (rtt * 3).clamp(MIN_LOGIN_INTERVAL, self.cfg.login_initial)
                    });
                    let copies = u32::from(self.cfg.login_copies.max(1));
                    self.retry_guard =
                        Some(now + rtt.unwrap_or(self.cfg.login_copy_gap * copies * 2));
                    self.state = State::LoggingIn {
                        next: now,
                        interval,
                    };
                }
            }
            Frame::AddressToken(token) if self.state == State::Active => {
                self.cookie = Some(token.clone());
                self.events.push_back(ClientEvent::AddressToken(token));
            }
            Frame::Ack(ack) => self.on_ack(now, sid, ack),
            Frame::Deliver(d) if self.state == State::Active => {
                self.on_entry(now, crate::wire::Entry::from_v1(d))
            }
            Frame::Entry(e) if self.state == State::Active => self.on_entry(now, e),
            Frame::ListItem(item) => self.convs.on_list_item(item),
            Frame::ListEnd(end) => {
                let id = self.request_id();
                let out = self.convs.on_list_end(now, end, id);
                self.take_conv_output(out);
            }
            Frame::Record(r) => self.convs.on_record(r),
            Frame::Member(m) => self.on_member(m),
            Frame::MembersEnd(end) => self.on_members_end(now, end),
            Frame::ReadCounts(c) => self.on_read_counts(c),
            Frame::HistoryEnd(end) => {
                let id = self.request_id();
                let out = self.convs.on_history_end(now, end, id);
                self.take_conv_output(out);
            }
            Frame::PageEnd(p) => self.on_page_end(now, p),
            Frame::Summary(s) => self.summaries.on_summary(s),
            Frame::SummaryEnd(end) => match self.summaries.on_end(end) {
                Some(Ok(cursor)) => self.ask_summary_page(now, cursor),
                Some(Err(all)) => self.events.push_back(ClientEvent::Summaries(all)),
                None => {}
            },
            // A NOTIFY while logging in is the old session's (the server has
            // not noticed it is gone): a PULL it started would carry that
            // session's point into the next one.
            Frame::Notify(head) if self.state == State::Active => {
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
                    // Replaced by a LOGIN of our own that this session did
                    // not answer: not another instance of this device.
                    Some(KickReason::Replaced) if self.own_login_in_flight => self.relogin(now),
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

    pub(super) fn on_login_ok(&mut self, now: Time, sid: u64, ok: LoginOk) {
        if !matches!(self.state, State::LoggingIn { .. }) || sid == 0 {
            return;
        }
        // The session we just left, answered again: the server's answer to
        // this login when that session never heard from us, or a late copy
        // of its first answer, which our LOGIN in flight may yet replace.
        // So may the echo of a second RETRY, if this session answered the
        // first: its younger cookie makes it a new login. (A retransmitted
        // LOGIN carries the same cookie and cannot.)
        self.own_login_in_flight = sid == self.left_session || self.retries_echoed > 1;
        self.retries_echoed = 0;
        let sent = self.login_sent.take();
        // The login round trip is the first RTT sample, unless LOGIN was
        // sent more than once (Karn: the answer could be to either).
        let login_rtt = match sent {
            Some((at, 1)) => Some(now.saturating_since(at)),
            _ => None,
        };
        self.state = State::Active;
        self.login_echo = None;
        self.session_id = sid;
        self.inbound = crate::reliability::InboundGaps::default();
        self.me = (ok.user, ok.device);
        // Packet numbers keep counting across sessions: the server tells a
        // late copy of this LOGIN from a new one by them.
        self.heartbeat = Duration::from_millis(ok.heartbeat_ms.max(1000));
        self.idle_timeout = Duration::from_millis(ok.idle_timeout_ms.max(3000));
        self.reconcile_uplink(now, ok.next_send_seq, login_rtt);
        let change = self
            .delivery
            .on_login(self.login_point, ok.epoch, ok.checkpoint);
        if change != LoginChange::None {
            self.events.push_back(ClientEvent::Resync {
                epoch: ok.epoch,
                checkpoint: ok.checkpoint,
                new_epoch: change == LoginChange::NewEpoch,
            });
        }
        self.base = ok.checkpoint;
        self.acked = ok.checkpoint;
        self.downlink.reset(ok.checkpoint);
        // A PULL still queued from before this login names a point of the
        // old session: sent in this one, it would acknowledge entries the
        // server is about to send again, and the pages would never meet
        // what the client expects. This session's pull starts below.
        self.control.retain(|f| !matches!(f, Frame::Pull(_)));
        self.pull = None;
        self.pull_held = false;
        // The server forgot the requests of the lost session.
        if let Some(cursor) = self.summaries.resend_cursor(now, None) {
            self.ask_summary_page(now, cursor);
        }
        self.resend_conv_requests(now, None);
        self.resend_group_queries(now, None);
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

    pub(super) fn on_error(&mut self, now: Time, sid: u64, e: ErrorFrame) {
        let code = ErrorCode::from_code(e.code);
        if e.seq != 0 {
            self.rejected.insert(e.seq, (e.code, sid));
            return;
        }
        match code {
            // A version 1 server: log in with version 1 (no answer to a
            // version 2 datagram means anything else). Not on the first such
            // answer, nor ever once the server spoke version 2: a version 2
            // server says the same to a datagram whose version byte was
            // corrupted on the way, and anyone can forge a clear ERROR.
            Some(ErrorCode::UnsupportedVersion)
                if matches!(self.state, State::LoggingIn { .. })
                    && self.version != crate::wire::VERSION
                    && !self.heard_v2 =>
            {
                self.version_errors = self.version_errors.saturating_add(1);
                if self.version_errors >= 2 {
                    self.downgrade(now);
                }
            }
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
            _ => {
                self.on_group_query_refused(e.frame_type);
                self.convs.on_refused(e.frame_type);
                self.events.push_back(ClientEvent::ServerError(e))
            }
        }
    }

    /// Requests and results of the conversation machine.
    fn take_conv_output(&mut self, out: super::conversations::Output) {
        self.control.extend(out.requests);
        if let Some(list) = out.list {
            self.events.push_back(ClientEvent::ConvList(list));
        }
        for page in out.pages {
            self.events.push_back(ClientEvent::History(page));
        }
    }

    /// The server speaks only version 1: log in again with it. Version 2
    /// operations not yet numbered are refused (a numbered one travels as
    /// its version 1 equivalent or a no-op, see `Outgoing::frame_for`).
    fn downgrade(&mut self, now: Time) {
        self.version = crate::wire::VERSION;
        self.initiator = None;
        self.cookie = None;
        self.login_echo = None;
        self.state = State::LoggingIn {
            next: now,
            interval: self.cfg.login_initial,
        };
        let waiting = std::mem::take(&mut self.waiting);
        for (op, o) in waiting {
            if o.in_version_1() {
                self.waiting.push_back((op, o));
            } else {
                self.events.push_back(ClientEvent::Rejected {
                    op,
                    seq: 0,
                    code: ErrorCode::NotAllowed as u64,
                });
            }
        }
        self.events.push_back(ClientEvent::Downgraded);
    }
}
