//! What the target checks on everything the broker sends, read as the
//! receiving client would read it (sealed packets opened with the session's
//! keys):
//! - every datagram decodes, and every sealed one opens under its session's keys;
//! - an uplink ACK never releases an operation the store does not hold
//!   durably (its cumulative point is at most the device's durable
//!   `applied`), and neither does LOGIN_OK's `next_send_seq`;
//! - every DELIVER (pushed or pulled) is an entry that was committed, byte
//!   for byte.
//!
//! Reading also moves the peers along: RETRY cookies, LOGIN_OK and
//! HANDSHAKE_REPLY open sessions, KICK and UNKNOWN_SESSION close them.

use bytes::Bytes;
use tern_core::wire::{ErrorCode, Frame, Header, Packet, FLAG_SEALED};

use super::peer::{Pending, Session};
use super::World;

impl World {
    /// A datagram the broker sent to peer `to`.
    pub(super) fn receive(&mut self, to: usize, data: Bytes) {
        if data.get(1) == Some(&FLAG_SEALED) {
            let Some((_, sid)) = Header::peek(&data) else {
                panic!("sealed datagram without a header: {}", crate::hex(&data));
            };
            // Sessions opened by a replayed handshake: the target has no keys.
            let Some(channel) = self.keys.get_mut(&sid) else {
                return;
            };
            let packet = channel.open(&data).unwrap_or_else(|e| {
                panic!(
                    "the broker's sealed packet does not open: {e:?}: {}",
                    crate::hex(&data)
                )
            });
            self.read_frames(to, sid, packet.frames, false);
            return;
        }
        let packet = Packet::decode(data.clone()).unwrap_or_else(|e| {
            panic!(
                "the broker sent a datagram that does not decode: {e}: {}",
                crate::hex(&data)
            )
        });
        let sid = packet.header.session_id;
        for f in &packet.frames {
            if matches!(f, Frame::LoginOk(_)) {
                self.clear_sids.insert(sid);
            }
        }
        self.read_frames(to, sid, packet.frames, false);
    }

    /// `welcome`: the frames came inside a HANDSHAKE_REPLY answering this
    /// peer's pending handshake.
    fn read_frames(&mut self, to: usize, sid: u64, frames: Vec<Frame>, welcome: bool) {
        for f in frames {
            match f {
                Frame::LoginOk(ok) => {
                    self.owners.insert(sid, (ok.user, ok.device));
                    let durable = self.store.applied(ok.user, ok.device);
                    assert!(
                        ok.next_send_seq.saturating_sub(1) <= durable,
                        "LOGIN_OK releases uplink operations up to {} but only {durable} are durable",
                        ok.next_send_seq - 1
                    );
                    let p = &mut self.peers[to];
                    if welcome || matches!(p.pending, Some(Pending::Clear)) {
                        p.pending = None;
                        p.session = Some(Session {
                            sid,
                            sealed: welcome,
                            next_seq: ok.next_send_seq,
                            delivered: ok.checkpoint,
                            acked: ok.next_send_seq - 1,
                        });
                    }
                }
                Frame::HandshakeReply(msg2) => self.on_handshake_reply(to, msg2),
                Frame::Retry(cookie) => self.peers[to].cookie = Some(cookie),
                // Bound to this peer's IP address: its next login echoing it
                // proves the address as a cookie does.
                Frame::AddressToken(token) => self.peers[to].cookie = Some(token),
                Frame::Ack(ack) => {
                    if let Some(&(user, device)) = self.owners.get(&sid) {
                        let durable = self.store.applied(user, device);
                        assert!(
                            ack.cumulative <= durable,
                            "uplink ACK releases up to {} but only {durable} are durable \
                             (user {user}, device {device})",
                            ack.cumulative
                        );
                    }
                    if let Some(s) = self.session_of(to, sid) {
                        s.acked = s.acked.max(ack.cumulative);
                    }
                }
                Frame::Deliver(d) => {
                    let Some(&(user, _)) = self.owners.get(&sid) else {
                        continue;
                    };
                    let stored = self
                        .durable
                        .get(user, d.seq)
                        .map(|e| (e.topic, e.from_user, e.from_device, e.from_seq, e.time_ms));
                    assert_eq!(
                        stored,
                        Some((d.conv, d.from_user, d.from_device, d.from_seq, d.time_ms)),
                        "delivered entry {} of user {user} is not the committed one",
                        d.seq
                    );
                    if let Some(s) = self.session_of(to, sid) {
                        if d.seq == s.delivered + 1 {
                            s.delivered = d.seq;
                        }
                    }
                }
                Frame::Kick(_) => self.forget_session(to, sid),
                Frame::Error(e) if e.code == ErrorCode::UnknownSession as u64 => {
                    self.forget_session(to, sid)
                }
                // What was not acknowledged was dropped: number from there again.
                Frame::Error(e) if e.code == ErrorCode::StorageFailure as u64 => {
                    self.peers[to].storage_errors += 1;
                    if let Some(s) = self.session_of(to, sid) {
                        s.next_seq = s.acked + 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn on_handshake_reply(&mut self, to: usize, msg2: Bytes) {
        let p = &mut self.peers[to];
        let Some(Pending::Sealed(init)) = p.pending.take() else {
            return;
        };
        // An answer to an older handshake does not verify; the next Login
        // step starts over.
        if let Ok((welcome, channel)) = init.finish(&msg2) {
            self.keys.insert(welcome.session_id, channel);
            self.read_frames(to, welcome.session_id, welcome.frames, true);
        }
    }

    fn session_of(&mut self, to: usize, sid: u64) -> Option<&mut Session> {
        self.peers[to].session.as_mut().filter(|s| s.sid == sid)
    }

    fn forget_session(&mut self, to: usize, sid: u64) {
        if sid != 0 && self.session_of(to, sid).is_some() {
            self.peers[to].session = None;
        }
    }
}
