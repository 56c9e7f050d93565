//! Before a session exists: a LOGIN (clear) or HANDSHAKE (sealed) goes
//! through the seal policy, the RETRY cookie, the handshake and the token
//! check, is recognised as a repeat or replay, and otherwise opens a
//! session.

use std::net::SocketAddr;

use super::session::{Downlink, Session};
use super::users::Dev;
use super::{Broker, BrokerEvent};
use crate::auth::TokenError;
use crate::reliability::{AckCoalescer, Receiver};
use crate::store::{DeviceState, InboxMeta, Store};
use crate::time::Time;
use crate::wire::limits::PUSH_BACKLOG_LIMIT;
use crate::wire::{ErrorCode, Frame, Header, KickReason, Packet};

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
}
