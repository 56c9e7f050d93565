//! What goes to the server: LOGIN (or the sealed handshake) while logging
//! in, then packets that carry the owed ACK, control frames and uplink
//! operations, sealed when the session is.

use bytes::Bytes;

use crate::time::Time;
use crate::wire::{Frame, Header, Login, PacketBuilder};

use super::{ClientConn, State};

/// Client datagrams are padded to at least this size: the smallest ERROR
/// reply fits in it, and a server never answers with more than it received.
const MIN_CLIENT_PACKET: usize = 24;
/// Sealed logins are padded to at least this size, so that the handshake
/// answer (LOGIN_OK inside message 2) is never larger than what asked for it.
const MIN_HANDSHAKE_PACKET: usize = 256;

impl ClientConn {
    fn header(&mut self) -> Header {
        let h = Header {
            session_id: self.session_id,
            packet_number: self.next_pn,
            version: self.version,
        };
        self.next_pn += 1;
        h
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self, now: Time) -> Option<Bytes> {
        match self.state {
            State::Closed => None,
            State::LoggingIn { next, interval } => {
                if let Some((at, d, left)) = self.login_echo.take() {
                    if at <= now {
                        if left > 1 {
                            self.login_echo =
                                Some((now + self.cfg.login_copy_gap, d.clone(), left - 1));
                        }
                        return Some(d);
                    }
                    self.login_echo = Some((at, d, left));
                }
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
                // What is durable: a restart from it must not find entries
                // deleted that it has not processed.
                let point = self.delivery.saved();
                let login = Login {
                    token: self.cfg.token.clone(),
                    epoch: point.epoch,
                    checkpoint: point.seq,
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
                            self.version,
                        );
                        self.initiator = started.ok();
                        self.login_point = point;
                    }
                    let (_, msg1) = self.initiator.as_ref()?;
                    pb.push(&Frame::Handshake(msg1.clone())).ok()?;
                    pb.pad_to(MIN_HANDSHAKE_PACKET);
                } else {
                    pb.push(&Frame::Login(login)).ok()?;
                    // However short the token, the RETRY or ERROR answering
                    // it fits in what we send.
                    pb.pad_to(crate::wire::limits::MIN_LOGIN_DATAGRAM);
                    self.login_point = point;
                }
                self.last_sent = now;
                let count = self.login_sent.map_or(0, |(_, n)| n);
                self.login_sent = Some((now, count + 1));
                let d = pb.finish();
                if self.cfg.login_copies > 1 {
                    self.login_echo = Some((
                        now + self.cfg.login_copy_gap,
                        d.clone(),
                        self.cfg.login_copies - 1,
                    ));
                }
                Some(d)
            }
            State::Active => self.build_active(now),
        }
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
            match pb.push(f) {
                Ok(()) => {}
                // A request of a version this session does not speak.
                Err(crate::wire::EncodeError::WrongVersion { .. }) => {}
                Err(_) => break,
            }
            self.control.pop_front();
        }
        let (version, me) = (self.version, self.me);
        if let Some(s) = &mut self.uplink {
            // Only take an operation off the queue when it fits.
            while let Some((seq, (_, op))) = s.peek_transmit() {
                let frame = op.frame_for(seq, version, me);
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
