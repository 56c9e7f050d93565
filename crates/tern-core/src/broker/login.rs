//! Before a session exists: a LOGIN (clear) or HANDSHAKE (sealed) goes
//! through the seal policy, the RETRY cookie, the handshake and the token
//! check, is recognised as a repeat or replay, and otherwise opens a session
//! (`lifecycle.rs`). Each step either lets the login through or answers it
//! (or drops it) and stops.

use bytes::Bytes;

use super::{Broker, BrokerEvent, Peer};
use crate::auth::TokenError;
use crate::seal::{Hello, Responder};
use crate::store::Store;
use crate::time::Time;
use crate::wire::{ty, ErrorCode, Frame, Header, Login, Packet, PacketBuilder};

/// What a pre-login packet asks for.
struct Request {
    /// Its packet number: a newer clear LOGIN is told by it.
    pn: u64,
    /// Its protocol version: the session speaks it.
    version: u8,
    login: Option<Login>,
    handshake: Option<Bytes>,
    cookie: Option<Bytes>,
}

/// Where and how a login arrived: what tells a repeat from a new login.
struct Arrival {
    from: Peer,
    /// Size of its datagram: no answer before a session may be larger.
    len: usize,
    /// Its packet number.
    pn: u64,
    /// The cookie it echoed, if any.
    cookie: Option<Bytes>,
}

/// A login whose token checked out, ready to open a session.
pub(super) struct Admitted {
    /// Packet number of the LOGIN.
    pub pn: u64,
    /// Protocol version of the LOGIN.
    pub version: u8,
    /// The LOGIN, clear or opened from the handshake.
    pub login: Login,
    /// User the token names.
    pub user: u64,
    /// Device the token names.
    pub device: u32,
    /// For a sealed login: the handshake, to answer with message 2.
    pub sealed: Option<(Responder, Hello)>,
    /// The round trip from our RETRY to the login that echoed its cookie:
    /// the downlink's first RTT sample (`proto-spec/timers.md`).
    pub rtt: Option<std::time::Duration>,
}

impl<S: Store> Broker<S> {
    /// A packet without a session: only a LOGIN or HANDSHAKE (with a cookie
    /// and padding) is looked at.
    pub(super) fn handle_prelogin(&mut self, now: Time, from: Peer, packet: Packet, len: usize) {
        let Some(req) = self.read_request(from, packet, len) else {
            return;
        };
        if !self.seal_policy_admits(from, len, &req) {
            return;
        }
        if !self.address_proven(now, from, len, req.cookie.as_ref()) {
            return;
        }
        if self.answer_spare_handshake(&req) {
            return;
        }
        let (pn, version) = (req.pn, req.version);
        let arrival = Arrival {
            from,
            len,
            pn,
            cookie: req.cookie.clone(),
        };
        let Some((login, sealed)) = self.open_request(req) else {
            return;
        };
        let Some((user, device)) = self.verify_token(now, from, len, &login) else {
            return;
        };
        let repeat = match &sealed {
            Some((_, hello)) => self.is_repeated_handshake(now, &arrival, user, device, hello),
            None => self.is_repeated_login(now, &arrival, user, device),
        };
        if repeat || !self.has_room_for(from, len, user, device) {
            return;
        }
        let rtt = self.cookie_round_trip(now, &arrival);
        let admitted = Admitted {
            pn,
            version,
            login,
            user,
            device,
            sealed,
            rtt,
        };
        self.open_session(now, from, len, admitted);
    }

    /// A copy of a message 1 whose session is open and still keeps its
    /// answer (login copies, a retransmission): the answer goes out again
    /// to the session's own address, with no X25519 operation. The client's
    /// ephemeral key is the first 32 bytes of message 1, in the clear; a
    /// forged one only makes the server resend an answer its client
    /// already has.
    fn answer_spare_handshake(&mut self, req: &Request) -> bool {
        let Some(e) = req
            .handshake
            .as_ref()
            .and_then(|m| m.get(..crate::seal::KEY_LEN))
        else {
            return false;
        };
        let Some(&sid) = self.answering.get(e) else {
            return false;
        };
        let Some(seal) = self.sessions.get_mut(&sid).and_then(|s| s.seal.as_mut()) else {
            return false;
        };
        if seal.reply.is_none() {
            return false;
        }
        seal.reply_due = true;
        self.stats.handshake_copies += 1;
        self.touch(sid);
        true
    }

    /// The LOGIN or HANDSHAKE of a pre-login packet, with its cookie. Any
    /// other frame is refused with NOT_ALLOWED; a packet with neither is
    /// ignored.
    fn read_request(&mut self, from: Peer, packet: Packet, len: usize) -> Option<Request> {
        let mut req = Request {
            pn: packet.header.packet_number,
            version: packet.header.version,
            login: None,
            handshake: None,
            cookie: None,
        };
        for f in packet.frames {
            let first = req.login.is_none() && req.handshake.is_none();
            match f {
                Frame::Login(l) if first => req.login = Some(l),
                Frame::Handshake(m) if first => req.handshake = Some(m),
                Frame::Cookie(c) if req.cookie.is_none() => req.cookie = Some(c),
                Frame::Padding(_) => {}
                _ => {
                    self.reply_error(from, 0, len, ErrorCode::NotAllowed, 0, "log in first");
                    return None;
                }
            }
        }
        (req.login.is_some() || req.handshake.is_some()).then_some(req)
    }

    /// A HANDSHAKE needs a server key; a clear LOGIN over raw UDP is refused
    /// when sealing is required. QUIC peers are encrypted by TLS already.
    fn seal_policy_admits(&mut self, from: Peer, len: usize, req: &Request) -> bool {
        if req.handshake.is_some() && self.cfg.seal_key.is_none() {
            self.stats.handshake_failed += 1;
            self.reply_error(
                from,
                0,
                len,
                ErrorCode::NotAllowed,
                ty::HANDSHAKE,
                "sealing is not enabled on this server",
            );
            return false;
        }
        if req.login.is_some()
            && !from.is_quic()
            && self.cfg.seal_policy == super::SealPolicy::Required
        {
            self.stats.seal_required += 1;
            self.refuse_login(
                from,
                len,
                ErrorCode::SealRequired,
                "seal the session: HANDSHAKE with the server key",
            );
            return false;
        }
        true
    }

    /// Whether the source proved its address with a cookie from us, or with
    /// an address token we gave it after an earlier login from the same IP
    /// address. If not, it is sent a cookie (RETRY) and nothing else: no
    /// state, and never more bytes than the packet that asked. QUIC
    /// validated its addresses itself.
    fn address_proven(
        &mut self,
        now: Time,
        from: Peer,
        len: usize,
        cookie: Option<&Bytes>,
    ) -> bool {
        if !self.cfg.validate_addresses || from.is_quic() {
            return true;
        }
        let wall_us = self.wall_us(now);
        if cookie.is_some_and(|c| self.admission.issued(wall_us, from.addr, c).is_some()) {
            return true;
        }
        let lifetime_us = self.cfg.address_token_lifetime.as_micros() as u64;
        if lifetime_us > 0
            && cookie.is_some_and(|c| {
                self.admission
                    .token_valid(wall_us, from.addr.ip(), c, lifetime_us)
            })
        {
            self.stats.address_tokens_accepted += 1;
            return true;
        }
        if cookie.is_some() {
            self.stats.bad_cookies += 1;
        }
        self.send_retry(now, from, len);
        false
    }

    /// Answers with RETRY and a cookie issued now, never larger than the
    /// `len` bytes that asked; no state is kept.
    fn send_retry(&mut self, now: Time, from: Peer, len: usize) {
        let rate = self.cfg.stateless_reply_rate;
        if !self.retries.take(now, rate, rate) {
            // Over the global budget: dropped unanswered, as a lost RETRY
            // would be (the client's login timer sends again).
            self.stats.replies_suppressed += 1;
            return;
        }
        let cookie = self.admission.cookie(self.wall_us(now), from.addr);
        let header = Header {
            session_id: 0,
            packet_number: 1,
            version: self.in_version,
        };
        let mut pb = PacketBuilder::new(header, len);
        if pb.push(&Frame::Retry(cookie)).is_ok() {
            self.stats.retries_sent += 1;
            self.stats.datagrams_out += 1;
            self.transmits.push_back((from, pb.finish()));
        }
    }

    /// A fresh address token for the client of a session just opened at
    /// `from`, if tokens are in use there: raw UDP with address validation.
    pub(super) fn address_token_for(&mut self, now: Time, from: Peer) -> Option<Bytes> {
        if !self.cfg.validate_addresses
            || from.is_quic()
            || self.cfg.address_token_lifetime.is_zero()
        {
            return None;
        }
        self.stats.address_tokens_issued += 1;
        Some(
            self.admission
                .address_token(self.wall_us(now), from.addr.ip()),
        )
    }

    /// Unix time in microseconds at `now`: what cookies carry.
    pub(super) fn wall_us(&self, now: Time) -> u64 {
        self.wall_origin_ms * 1000 + now.as_micros()
    }

    /// The time since we issued the cookie the login echoed: one round trip
    /// (RETRY out, LOGIN back), or more if the client's first echo was lost.
    fn cookie_round_trip(&self, now: Time, a: &Arrival) -> Option<std::time::Duration> {
        let wall_us = self.wall_us(now);
        let issued = self
            .admission
            .issued(wall_us, a.from.addr, a.cookie.as_ref()?)?;
        Some(std::time::Duration::from_micros(wall_us - issued))
    }

    /// Whether the login echoed a cookie we issued to its source after the
    /// session was opened: then it cannot be a late copy of a LOGIN or
    /// HANDSHAKE sent before that session existed.
    fn cookie_after(&self, now: Time, a: &Arrival, opened: Time) -> bool {
        let opened_us = self.wall_us(opened);
        let Some(c) = a.cookie.as_ref() else {
            return false;
        };
        let wall_us = self.wall_us(now);
        if let Some(issued) = self.admission.issued(wall_us, a.from.addr, c) {
            // A RETRY's cookie must be younger than the session.
            return issued > opened_us;
        }
        // An address token is issued with a LOGIN_OK, so one issued the
        // moment the session opened came from that session's answer: a
        // copy of the LOGIN that opened it cannot hold it.
        let lifetime_us = self.cfg.address_token_lifetime.as_micros() as u64;
        lifetime_us > 0
            && self
                .admission
                .token_issued(wall_us, a.from.addr.ip(), c, lifetime_us)
                .is_some_and(|issued| issued >= opened_us)
    }

    /// The LOGIN itself, or opened from the handshake's message 1 (one
    /// X25519 operation, only for sources that proved their address).
    fn open_request(&mut self, req: Request) -> Option<(Login, Option<(Responder, Hello)>)> {
        if let Some(login) = req.login {
            return Some((login, None));
        }
        let msg1 = req.handshake?;
        let key = self.cfg.seal_key.as_ref()?;
        match Responder::accept(
            &mut self.entropy,
            key,
            req.cookie.as_deref(),
            &msg1,
            req.version,
        ) {
            Ok((responder, hello)) => Some((hello.login.clone(), Some((responder, hello)))),
            Err(_) => {
                self.stats.handshake_failed += 1;
                None
            }
        }
    }

    /// The (user, device) the login's token names, or a refusal.
    fn verify_token(
        &mut self,
        now: Time,
        from: Peer,
        len: usize,
        login: &Login,
    ) -> Option<(u64, u32)> {
        let now_secs = self.wall_ms(now) / 1000;
        match self.keys.verify(&login.token, now_secs) {
            Ok(claims) => Some((claims.user, claims.device)),
            Err(e) => {
                let code = match e {
                    TokenError::Expired { .. } => ErrorCode::TokenExpired,
                    _ => ErrorCode::BadToken,
                };
                self.refuse_login(from, len, code, &e.to_string());
                None
            }
        }
    }

    /// A sealed login is identified by the client's ephemeral key, and only
    /// a newer handshake replaces the device's live sealed session: a
    /// retransmitted message 1 gets the kept answer again (dropped once the
    /// client has sent sealed packets), an older one is a replay. An older
    /// one bound to a cookie issued after the session opened is not a
    /// recording (a client whose clock went back): it is a new login. A
    /// replay is answered with a fresh RETRY, which a client that is still
    /// logging in follows, and a client in its session ignores.
    fn is_repeated_handshake(
        &mut self,
        now: Time,
        a: &Arrival,
        user: u64,
        device: u32,
        hello: &Hello,
    ) -> bool {
        let Some(sid) = self.device_session(user, device) else {
            return false;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return false;
        };
        let opened = s.opened;
        let Some(seal) = s.seal.as_mut() else {
            return false;
        };
        if seal.ephemeral == hello.ephemeral {
            if seal.reply.is_some() {
                seal.reply_due = true;
                self.touch(sid);
            }
            return true;
        }
        if hello.client_time_ms <= seal.client_time_ms && !self.cookie_after(now, a, opened) {
            self.stats.handshake_replayed += 1;
            self.send_retry(now, a.from, a.len);
            return true;
        }
        false
    }

    /// A clear LOGIN for a device with a live clear session:
    /// - from the session's peer before the session heard anything else, it
    ///   is a retransmission (LOGIN_OK lost or late): it is answered again;
    /// - numbered above everything the session has seen (clients number
    ///   their packets once for their whole life, `proto-spec/packet.md`),
    ///   or echoing a cookie issued after the session opened, it is a new
    ///   login;
    /// - otherwise, from any address, it may be a late copy of the LOGIN
    ///   that opened the session (sent before the client moved, or one of
    ///   its login copies), which must not replace it, or a new login from
    ///   a client whose numbers restarted (which must not wait for the
    ///   session to idle out). A RETRY tells them apart: a client in its
    ///   session ignores it, a client logging in echoes the fresh cookie at
    ///   once.
    fn is_repeated_login(&mut self, now: Time, a: &Arrival, user: u64, device: u32) -> bool {
        let Some(sid) = self.device_session(user, device) else {
            return false;
        };
        let Some(s) = self.sessions.get(&sid).filter(|s| s.seal.is_none()) else {
            return false;
        };
        if s.highest_pn == 0 && s.peer == a.from {
            self.queue_login_ok(now, sid, None);
            self.touch(sid);
            return true;
        }
        if a.pn > s.highest_pn.max(s.login_pn) || self.cookie_after(now, a, s.opened) {
            return false;
        }
        self.send_retry(now, a.from, a.len);
        true
    }

    /// A new device needs a free session slot; a device that is logged in
    /// already replaces its own.
    fn has_room_for(&mut self, from: Peer, len: usize, user: u64, device: u32) -> bool {
        if self.sessions.len() < self.cfg.max_sessions
            || self.device_session(user, device).is_some()
        {
            return true;
        }
        self.refuse_login(from, len, ErrorCode::ServerBusy, "too many sessions");
        false
    }

    /// Refuses a login: counted, reported, and answered with an ERROR.
    pub(super) fn refuse_login(&mut self, from: Peer, len: usize, code: ErrorCode, reason: &str) {
        self.stats.login_refused += 1;
        self.events
            .push_back(BrokerEvent::LoginRefused { peer: from, code });
        self.reply_error(from, 0, len, code, ty::LOGIN, reason);
    }
}
