//! Datagram intake: sealed packets are opened, session packets are
//! rate limited and dispatched frame by frame, pre-login packets go to
//! `login.rs`, and everything else gets a small stateless ERROR (within
//! the global reply budget) or nothing.

use bytes::Bytes;

use super::session::{Downlink, Out};
use super::{Broker, Peer};
use crate::store::Store;
use crate::time::Time;
use crate::wire::{
    encode_to_bytes, ErrorCode, ErrorFrame, Frame, Header, KickReason, Packet, PacketBuilder,
};

impl<S: Store> Broker<S> {
    /// Processes one received datagram from `from`: a [`Peer`] tagged with
    /// the transport it arrived on, or a bare `SocketAddr` for raw UDP.
    pub fn handle_datagram(&mut self, now: Time, from: impl Into<Peer>, data: Bytes) {
        let from = from.into();
        self.stats.datagrams_in += 1;
        if data.len() > crate::wire::limits::MAX_RECV_DATAGRAM {
            // Dropped unread, unanswered (proto-spec/packet.md, "Decoding"):
            // a driver's buffer may have cut it, so not even its size is known.
            self.stats.malformed += 1;
            return;
        }
        self.last_now = now;
        // Stateless answers speak the version they answer, when we speak it.
        self.in_version = data
            .first()
            .copied()
            .filter(|v| crate::wire::is_supported_version(*v))
            .unwrap_or(crate::wire::VERSION);
        let len = data.len();
        if data.get(1) == Some(&crate::wire::FLAG_SEALED)
            && data
                .first()
                .is_some_and(|v| crate::wire::is_supported_version(*v))
            && len <= crate::wire::limits::MAX_RECV_DATAGRAM
        {
            self.handle_sealed(now, from, data);
            self.flush_touched(now);
            return;
        }
        // Sessionless packets are rate limited per source before any parsing.
        let sessionless = data.get(2..10).is_some_and(|id| id.iter().all(|b| *b == 0));
        if sessionless && !self.admission.allow(now, &from) {
            self.stats.rate_limited += 1;
            return;
        }
        let packet = match Packet::decode(data) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                let code = match e {
                    crate::wire::DecodeError::UnsupportedVersion(_) => {
                        ErrorCode::UnsupportedVersion
                    }
                    crate::wire::DecodeError::UnknownFrame(_) => ErrorCode::UnknownFrame,
                    _ => ErrorCode::Malformed,
                };
                self.reply_error(from, 0, len, code, 0, &e.to_string());
                return;
            }
        };
        let sid = packet.header.session_id;
        if sid == 0 {
            self.handle_prelogin(now, from, packet, len);
        } else if self.sessions.contains_key(&sid) {
            self.handle_session_packet(now, from, packet);
        } else if !self.admission.allow(now, &from) {
            self.stats.rate_limited += 1;
        } else {
            self.stats.unknown_session += 1;
            self.reply_error(
                from,
                0,
                len,
                ErrorCode::UnknownSession,
                0,
                "unknown session: log in again",
            );
        }
        self.flush_touched(now);
    }

    /// A sealed packet: found by session id, rate limited, then opened. Only
    /// an authentic, fresh packet is acted on; everything else is counted.
    pub(super) fn handle_sealed(&mut self, now: Time, from: Peer, data: Bytes) {
        let sid = crate::wire::Header::peek(&data).map_or(0, |(_, sid)| sid);
        if !self.session_packet_allowed(now, sid, &from) {
            self.stats.rate_limited += 1;
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            self.stats.unknown_session += 1;
            // Echo the session id: a sealed client only believes an
            // UNKNOWN_SESSION naming its own (secret to off-path attackers).
            self.reply_error(
                from,
                sid,
                data.len(),
                ErrorCode::UnknownSession,
                0,
                "unknown session: log in again",
            );
            return;
        };
        let Some(seal) = s.seal.as_mut() else {
            self.stats.seal_mismatch += 1;
            return;
        };
        let packet = match seal.channel.open(&data) {
            Ok(p) => p,
            Err(crate::seal::OpenError::Replay(_)) => {
                self.stats.sealed_replayed += 1;
                return;
            }
            Err(crate::seal::OpenError::Frames(_)) => {
                self.stats.malformed += 1;
                return;
            }
            Err(_) => {
                self.stats.sealed_rejected += 1;
                return;
            }
        };
        // The client has the keys: the handshake answer arrived.
        if seal.reply.take().is_some() && self.answering.get(&seal.ephemeral) == Some(&sid) {
            self.answering.remove(&seal.ephemeral);
        }
        seal.reply_due = false;
        self.process_session_packet(now, from, packet);
    }

    pub(super) fn handle_session_packet(&mut self, now: Time, from: Peer, packet: Packet) {
        let sid = packet.header.session_id;
        if !self.session_packet_allowed(now, sid, &from) {
            self.stats.rate_limited += 1;
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.seal.is_some() {
            // Only sealed packets speak for a sealed session.
            self.stats.seal_mismatch += 1;
            return;
        }
        self.process_session_packet(now, from, packet);
    }

    /// The rate limit of a packet naming session `sid`. From the session's
    /// own address it draws on the session's bucket; from anywhere else (a
    /// client that moved, or anyone copying the session id from a clear
    /// header) on that source's pre-login bucket, before any cryptography.
    /// So a flood naming a victim's session, from other addresses, never
    /// drains the victim's own budget, and one naming unknown sessions is
    /// limited per source before it is answered.
    fn session_packet_allowed(&mut self, now: Time, sid: u64, from: &Peer) -> bool {
        match self.sessions.get_mut(&sid) {
            Some(s) if s.peer == *from => {
                s.bucket
                    .take(now, self.cfg.session_rate, self.cfg.session_burst)
            }
            _ => self.admission.allow(now, from),
        }
    }

    pub(super) fn process_session_packet(&mut self, now: Time, from: Peer, packet: Packet) {
        let sid = packet.header.session_id;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.gaps.on_packet(packet.header.packet_number);
        if let (Some(loss), Downlink::Push(sender)) = (s.gaps.loss(), &mut s.down) {
            sender.path_loss_hint(loss);
        }
        if packet.header.packet_number > s.highest_pn {
            s.highest_pn = packet.header.packet_number;
            let moved = s.peer != from;
            if moved {
                // NAT rebinding or a network switch: follow the newest packet.
                s.peer = from;
                self.stats.migrations += 1;
            }
            // A downlink that gave up (its retry budget ran out) starts
            // again on any fresh packet of its client, not only a
            // HEARTBEAT: a client busy asking for lists and history pages
            // is never silent long enough to send one. So does one whose
            // client moved: what it sent since went to the old address,
            // and its timer backed off while nothing could arrive (the
            // chaos run saw a device wait out a 12 s backoff while it
            // was asking for lists from its new address).
            if s.unreachable || moved {
                s.unreachable = false;
                if let Downlink::Push(sender) = &mut s.down {
                    sender.revive(now);
                }
            }
        }
        s.last_heard = now;
        self.touch(sid);
        for frame in packet.frames {
            if !self.sessions.contains_key(&sid) {
                break; // logged out by an earlier frame
            }
            self.handle_frame(now, sid, frame);
        }
    }

    /// Sends a small ERROR to an address with no session, never larger than
    /// what was received from it (no amplification).
    pub(super) fn reply_error(
        &mut self,
        to: Peer,
        sid: u64,
        received: usize,
        code: ErrorCode,
        frame_type: u8,
        reason: &str,
    ) {
        let header = Header {
            session_id: sid,
            packet_number: 1,
            version: self.in_version,
        };
        let base = header.len()
            + 1
            + crate::wire::varint::len(code as u64)
            + 1
            + 1
            + 1
            + crate::wire::TRAILER;
        if received < base {
            return;
        }
        let rate = self.cfg.stateless_reply_rate;
        if !self.replies.take(self.last_now, rate, rate) {
            self.stats.replies_suppressed += 1;
            return;
        }
        let room = (received - base)
            .min(crate::wire::limits::MAX_REASON)
            .min(60);
        let mut reason = reason.to_string();
        while reason.len() > room {
            reason.pop();
        }
        let mut pb = PacketBuilder::new(header, received);
        let frame = Frame::Error(ErrorFrame {
            code: code as u64,
            frame_type,
            seq: 0,
            reason,
        });
        if pb.push(&frame).is_ok() {
            self.stats.datagrams_out += 1;
            self.transmits.push_back((to, pb.finish()));
        }
    }

    pub(super) fn handle_frame(&mut self, now: Time, sid: u64, frame: Frame) {
        match frame {
            // Extension frames are skipped; ADDRESS_TOKEN is one, and only
            // servers send it.
            Frame::Padding(_) | Frame::Extension { .. } | Frame::AddressToken(_) => {}
            Frame::Heartbeat(nonce) => {
                let Some(s) = self.sessions.get_mut(&sid) else {
                    return;
                };
                s.out.push_back(Out::Frame(Frame::HeartbeatAck(nonce)));
                if s.unreachable {
                    // An old HEARTBEAT (numbered below the newest packet)
                    // still revives a downlink, as it always did.
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
            Frame::Post(ref f) => self.on_uplink(now, sid, f.seq, frame.clone()),
            Frame::MarkRead(ref f) => self.on_uplink(now, sid, f.seq, frame.clone()),
            Frame::Retract(ref f) => self.on_uplink(now, sid, f.seq, frame.clone()),
            Frame::Delete(ref f) => self.on_uplink(now, sid, f.seq, frame.clone()),
            Frame::GroupOp(ref f) => self.on_uplink(now, sid, f.seq, frame.clone()),
            Frame::Members(r) => self.on_members(now, sid, r),
            Frame::ReadCountsRequest(r) => self.on_read_counts(sid, r),
            Frame::List(r) => self.on_list(now, sid, r),
            Frame::History(r) => self.on_history(now, sid, r),
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
}
