//! Per-packet sealing of an established session.
//!
//! A sealed packet is the clear packet with its flags byte set to
//! [`FLAG_SEALED`](super::FLAG_SEALED), its frames encrypted with
//! ChaCha20-Poly1305 and its CRC-32 trailer replaced by the 16-byte tag:
//!
//! ```text
//! header (version, flags = 0x01, session id, packet number) | ciphertext | tag
//! ```
//!
//! The header is the associated data, so none of its bytes can be changed;
//! the nonce is 4 zero bytes followed by the packet number (u64,
//! big-endian), which each side never reuses under its key. Each direction
//! has its own key, from the handshake.

use bytes::{Bytes, BytesMut};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use thiserror::Error;

use super::replay::{Replay, ReplayWindow};
use super::TAG_LEN;
use crate::wire::{DecodeError, Header, Packet, Reader, TRAILER};

/// Why a sealed packet was dropped. Every case is counted, none is acted on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    /// The header is not a sealed version 1 header.
    #[error("bad sealed header: {0}")]
    Header(DecodeError),
    /// Shorter than a header and a tag: truncated.
    #[error("sealed packet truncated")]
    TooShort,
    /// The tag does not verify: tampered, truncated, forged, or sealed under
    /// other keys.
    #[error("sealed packet failed authentication")]
    Tag,
    /// Authentic but already received, or too old to tell.
    #[error("replayed packet ({0:?})")]
    Replay(Replay),
    /// Authentic, but its frames do not decode (a faulty peer).
    #[error("sealed packet frames malformed: {0}")]
    Frames(DecodeError),
}

/// The keys and replay window of one sealed session, on either side.
pub struct Channel {
    tx: ChaCha20Poly1305,
    rx: ChaCha20Poly1305,
    window: ReplayWindow,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("highest_received", &self.window.highest())
            .finish_non_exhaustive()
    }
}

fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&pn.to_be_bytes());
    n.into()
}

/// Bytes sealing adds to a clear packet (tag instead of CRC trailer).
pub const SEAL_OVERHEAD: usize = TAG_LEN - TRAILER;

impl Channel {
    /// A channel sending under `tx` and receiving under `rx`.
    pub fn new(tx: [u8; 32], rx: [u8; 32]) -> Channel {
        Channel {
            tx: ChaCha20Poly1305::new(&tx.into()),
            rx: ChaCha20Poly1305::new(&rx.into()),
            window: ReplayWindow::new(),
        }
    }

    /// The highest packet number received so far.
    pub fn highest_received(&self) -> u64 {
        self.window.highest()
    }

    /// Seals a finished clear packet (header, frames, CRC trailer), as
    /// [`PacketBuilder::finish`](crate::wire::PacketBuilder::finish) makes
    /// it. The result is [`SEAL_OVERHEAD`] bytes longer, so build with that
    /// much less room.
    pub fn seal(&self, clear: &[u8]) -> Bytes {
        let mut r = Reader::new(Bytes::copy_from_slice(clear));
        // Our own builder made it: the header always parses.
        let header = Header::decode(&mut r).expect("a packet we built");
        let hlen = header.len();
        let body_end = clear.len().saturating_sub(TRAILER).max(hlen);
        let mut out = BytesMut::with_capacity(body_end + TAG_LEN);
        out.extend_from_slice(&clear[..body_end]);
        out[1] = super::FLAG_SEALED;
        let (aad, body) = out.split_at_mut(hlen);
        // Encryption fails only for a message over 256 GiB.
        let tag = self
            .tx
            .encrypt_in_place_detached(&nonce(header.packet_number), aad, body)
            .expect("packet far below the AEAD size limit");
        out.extend_from_slice(&tag);
        out.freeze()
    }

    /// Checks, decrypts and decodes a sealed packet. The replay window is
    /// consulted before any decryption and updated only once the tag verified.
    pub fn open(&mut self, datagram: &[u8]) -> Result<Packet, OpenError> {
        // `proto-spec/sealed.md`, receiving, step 1: the same bound as a
        // clear datagram, before any copy or decryption.
        if datagram.len() > crate::wire::limits::MAX_RECV_DATAGRAM {
            return Err(OpenError::Header(DecodeError::TooLong {
                field: "datagram",
                len: datagram.len() as u64,
                max: crate::wire::limits::MAX_RECV_DATAGRAM,
            }));
        }
        let mut r = Reader::new(Bytes::copy_from_slice(datagram));
        let header = Header::decode_sealed(&mut r).map_err(OpenError::Header)?;
        let hlen = header.len();
        if datagram.len() < hlen + TAG_LEN {
            return Err(OpenError::TooShort);
        }
        self.window
            .check(header.packet_number)
            .map_err(OpenError::Replay)?;
        let tag_at = datagram.len() - TAG_LEN;
        let mut body = datagram[hlen..tag_at].to_vec();
        let tag = Tag::from_slice(&datagram[tag_at..]);
        self.rx
            .decrypt_in_place_detached(
                &nonce(header.packet_number),
                &datagram[..hlen],
                &mut body,
                tag,
            )
            .map_err(|_| OpenError::Tag)?;
        self.window.accept(header.packet_number);
        let mut r = Reader::new(Bytes::from(body));
        let frames =
            crate::wire::decode_frames(&mut r, header.version).map_err(OpenError::Frames)?;
        Ok(Packet { header, frames })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Frame, PacketBuilder};

    fn pair() -> (Channel, Channel) {
        (
            Channel::new([1; 32], [2; 32]),
            Channel::new([2; 32], [1; 32]),
        )
    }

    fn clear(pn: u64) -> Bytes {
        let mut pb = PacketBuilder::new(
            Header {
                session_id: 9,
                packet_number: pn,
                version: crate::wire::VERSION,
            },
            1200,
        );
        pb.push(&Frame::Heartbeat(pn)).unwrap();
        pb.finish()
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let (a, mut b) = pair();
        let sealed = a.seal(&clear(5));
        assert_eq!(sealed.len(), clear(5).len() + SEAL_OVERHEAD);
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.to_vec();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(b.open(&bad).is_err(), "bit {i} flipped was accepted");
        }
        for n in 0..sealed.len() {
            assert!(b.open(&sealed[..n]).is_err(), "cut to {n} was accepted");
        }
        // Nothing above consumed the packet number: the real one still opens.
        assert_eq!(b.open(&sealed).unwrap(), Packet::decode(clear(5)).unwrap());
    }

    #[test]
    fn an_authentic_packet_over_the_datagram_limit_is_refused_unopened() {
        let (a, mut b) = pair();
        let mut pb = PacketBuilder::new(
            Header {
                session_id: 9,
                packet_number: 1,
                version: crate::wire::VERSION,
            },
            crate::wire::limits::MAX_RECV_DATAGRAM,
        );
        pb.push(&Frame::Heartbeat(1)).unwrap();
        pb.pad_to(crate::wire::limits::MAX_RECV_DATAGRAM);
        let clear = pb.finish();
        assert_eq!(clear.len(), crate::wire::limits::MAX_RECV_DATAGRAM);
        let sealed = a.seal(&clear);
        assert!(sealed.len() > crate::wire::limits::MAX_RECV_DATAGRAM);
        assert!(matches!(
            b.open(&sealed),
            Err(OpenError::Header(DecodeError::TooLong {
                field: "datagram",
                ..
            }))
        ));
    }

    #[test]
    fn a_copy_is_refused_and_reordering_is_not() {
        let (a, mut b) = pair();
        let (p1, p2, p3) = (a.seal(&clear(1)), a.seal(&clear(2)), a.seal(&clear(3)));
        b.open(&p3).unwrap();
        b.open(&p1).unwrap();
        assert_eq!(b.open(&p1), Err(OpenError::Replay(Replay::Duplicate)));
        b.open(&p2).unwrap();
        assert_eq!(b.open(&p3), Err(OpenError::Replay(Replay::Duplicate)));
    }

    #[test]
    fn a_packet_sealed_for_the_other_direction_or_session_is_refused() {
        let (a, mut b) = pair();
        let sealed = a.seal(&clear(1));
        let mut a2 = Channel::new([1; 32], [2; 32]);
        assert_eq!(
            a2.open(&sealed),
            Err(OpenError::Tag),
            "reflected to its sender"
        );
        let (_, mut other) = (
            Channel::new([3; 32], [4; 32]),
            Channel::new([4; 32], [3; 32]),
        );
        assert_eq!(other.open(&sealed), Err(OpenError::Tag));
        assert!(b.open(&sealed).is_ok());
        // A clear packet is not a sealed one.
        assert!(matches!(b.open(&clear(7)), Err(OpenError::Header(_))));
    }
}
