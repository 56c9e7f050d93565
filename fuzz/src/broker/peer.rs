//! The target's peers, as a client library would be: the login dance
//! (LOGIN or Noise message 1, RETRY, the cookie echoed), the session each
//! one holds, and the datagrams it sends. Session packets are built with
//! the session's own keys, so mutated frames reach the broker's frame
//! handlers behind a valid CRC trailer or Poly1305 tag.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use tern_core::broker::Peer;
use tern_core::seal::{Channel, Initiator, SEAL_OVERHEAD};
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::{Frame, Header, PacketBuilder, TRAILER, VERSION};

use super::input::PEERS;

/// A session the peer holds.
pub struct Session {
    /// Its id.
    pub sid: u64,
    /// Sealed: its packets go through the channel kept under `sid`.
    pub sealed: bool,
    /// The next uplink sequence to use.
    pub next_seq: u64,
    /// Highest inbox sequence handed up in order.
    pub delivered: u64,
    /// Highest uplink sequence the broker acknowledged.
    pub acked: u64,
}

/// A login under way.
pub enum Pending {
    /// A clear LOGIN: waiting for LOGIN_OK.
    Clear,
    /// A HANDSHAKE: waiting for HANDSHAKE_REPLY.
    Sealed(Box<Initiator>),
}

/// One source address and what it holds.
pub struct PeerState {
    /// Where its datagrams come from.
    pub peer: Peer,
    /// The last RETRY cookie the broker gave this address.
    pub cookie: Option<Bytes>,
    /// Packet numbers, monotonic over the peer's life (logins and sessions).
    pub next_pn: u64,
    /// Its session, once LOGIN_OK arrived.
    pub session: Option<Session>,
    /// The login it waits on.
    pub pending: Option<Pending>,
    /// ERROR 12 (StorageFailure) frames received.
    pub storage_errors: u64,
}

impl PeerState {
    /// The peers of the target: four IPv4 sources (separate rate-limit
    /// buckets), one IPv6 source and one QUIC connection.
    pub fn all() -> Vec<PeerState> {
        (0..PEERS)
            .map(|i| {
                let peer = match i {
                    4 => Peer::udp(SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 4], 4000))),
                    5 => Peer::quic(SocketAddr::from(([10, 9, 9, 9], 5000))),
                    _ => Peer::udp(SocketAddr::from((
                        [192, 0, 2, 1 + i as u8],
                        3000 + i as u16,
                    ))),
                };
                PeerState {
                    peer,
                    cookie: None,
                    next_pn: 1,
                    session: None,
                    pending: None,
                    storage_errors: 0,
                }
            })
            .collect()
    }

    /// The next packet number.
    pub fn pn(&mut self) -> u64 {
        let pn = self.next_pn;
        self.next_pn += 1;
        pn
    }

    /// A packet with session id 0 holding `frames` (COOKIE first when the
    /// peer has one and `with_cookie`), padded to `pad_to` bytes.
    pub fn prelogin(&mut self, frames: &[Frame], with_cookie: bool, pad_to: usize) -> Bytes {
        let header = Header {
            version: VERSION,
            session_id: 0,
            packet_number: self.pn(),
        };
        let mut pb = PacketBuilder::new(header, MAX_DATAGRAM);
        if let (true, Some(c)) = (with_cookie, &self.cookie) {
            let _ = pb.push(&Frame::Cookie(c.clone()));
        }
        for f in frames {
            if pb.push(f).is_err() {
                break;
            }
        }
        pb.pad_to(pad_to);
        pb.finish()
    }

    /// A session packet holding `frames`, sealed with `channel` when the
    /// session is sealed. `None` without a session.
    pub fn session_packet(&mut self, frames: &[Frame], channel: Option<&Channel>) -> Option<Bytes> {
        let sid = self.session.as_ref()?.sid;
        let header = Header {
            version: VERSION,
            session_id: sid,
            packet_number: self.pn(),
        };
        let room = match channel {
            Some(_) => MAX_DATAGRAM - SEAL_OVERHEAD,
            None => MAX_DATAGRAM,
        };
        let mut pb = PacketBuilder::new(header, room);
        for f in frames {
            if pb.push(f).is_err() {
                break;
            }
        }
        let clear = pb.finish();
        Some(match channel {
            Some(ch) => ch.seal(&clear),
            None => clear,
        })
    }

    /// A session packet whose frame bytes are `body`, whatever they are,
    /// behind a correct CRC trailer, or sealed with `channel`.
    pub fn mutated_packet(&mut self, body: &[u8], channel: Option<&Channel>) -> Option<Bytes> {
        let sid = self.session.as_ref()?.sid;
        let header = Header {
            version: VERSION,
            session_id: sid,
            packet_number: self.pn(),
        };
        let mut clear = BytesMut::with_capacity(header.len() + body.len() + TRAILER);
        header.encode(&mut clear);
        clear.extend_from_slice(body);
        Some(match channel {
            // `seal` replaces the last TRAILER bytes with the tag.
            Some(ch) => {
                clear.put_bytes(0, TRAILER);
                ch.seal(&clear)
            }
            None => crate::with_trailer(&clear),
        })
    }
}
