//! One catalogue of hostile and broken datagrams: what a peer that has not
//! logged in (a scanner, a spoofer, a flooder, a broken client) can send to
//! `ternd`'s UDP port, each with a name. Used by the hostile-input
//! integration test (`tests/hostile_input.rs`, which states the answer each
//! must get), the `flood` and `amplification` benchmarks of `tern-lab`, and
//! the fuzz crate (`fuzz/src/samples.rs`: the well-formed packets they are
//! mutations of seed `decode_packet`).
//!
//! Datagrams are put together by hand where the codec would refuse (bad
//! versions, flags, checksums, lengths), with an independent CRC-32, so that
//! a codec bug cannot hide on both sides.
//!
//! - Building blocks: [`packet`], [`padded`], [`header_bytes`],
//!   [`with_trailer`], [`reseal`], [`login`], [`send_frame`].
//! - Fixed families: [`forbidden_headers`], [`OTHER_VERSIONS`] with
//!   [`other_version`] and [`with_version`], [`unknown_frame`] and
//!   [`UNKNOWN_FRAME_TYPES`], [`frames_before_login`], [`with_bad_trailer`],
//!   [`BadTokens`].
//! - Random kinds (a flood's pools): [`garbage`], [`random_session_packet`],
//!   [`login_without_cookie`], [`handshake_without_cookie`], [`sealed_junk`].
//! - [`probes`]: every pre-login kind the amplification benchmark measures.
//! - [`well_formed`]: valid packets of every frame type.

pub mod probes;
pub mod well_formed;

use bytes::{BufMut, Bytes, BytesMut};
use rand::{Rng, RngCore};
use tern_core::auth::{Claims, TokenKeys};
use tern_core::wire::{
    varint, Ack, ErrorCode, Frame, Header, Login, Packet, Pull, Send, FLAG_SEALED, VERSION,
};

pub use probes::{prelogin_probes, Probe};

/// A datagram and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// What it is, for messages and tables.
    pub name: String,
    /// The bytes on the wire.
    pub bytes: Vec<u8>,
}

impl Named {
    fn new(name: impl Into<String>, bytes: Vec<u8>) -> Named {
        Named {
            name: name.into(),
            bytes,
        }
    }
}

/// IEEE CRC-32 (the packet trailer's), bit by bit: written independently
/// of the codec's implementation.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// `body` followed by its CRC-32 trailer.
pub fn with_trailer(mut body: Vec<u8>) -> Vec<u8> {
    let c = crc32(&body);
    body.extend_from_slice(&c.to_be_bytes());
    body
}

/// Recomputes the trailer of an edited datagram (its last four bytes).
pub fn reseal(mut datagram: Vec<u8>) -> Vec<u8> {
    let n = datagram.len();
    if n >= 4 {
        let crc = crc32(&datagram[..n - 4]);
        datagram[n - 4..].copy_from_slice(&crc.to_be_bytes());
    }
    datagram
}

/// The same datagram with a damaged trailer.
pub fn with_bad_trailer(datagram: &[u8]) -> Vec<u8> {
    let mut v = datagram.to_vec();
    if let Some(last) = v.last_mut() {
        *last ^= 0x5a;
    }
    v
}

/// A version-1 header with no flags, written by hand (so packet number 0
/// can be written too).
pub fn header_bytes(session_id: u64, packet_number: u64) -> Vec<u8> {
    let mut v = BytesMut::new();
    v.put_u8(VERSION);
    v.put_u8(0);
    v.put_u64(session_id);
    varint::put(&mut v, packet_number);
    v.to_vec()
}

/// A well-formed packet of `frames`.
pub fn packet(session_id: u64, packet_number: u64, frames: Vec<Frame>) -> Vec<u8> {
    Packet {
        header: Header {
            session_id,
            packet_number,
            version: tern_core::wire::VERSION,
        },
        frames,
    }
    .encode()
    .to_vec()
}

/// As [`packet`], padded at the end (as clients pad) to exactly `len`
/// bytes, which must be more than the unpadded packet.
pub fn padded(session_id: u64, packet_number: u64, mut frames: Vec<Frame>, len: usize) -> Vec<u8> {
    let bare = packet(session_id, packet_number, frames.clone()).len();
    assert!(len > bare, "padding needs room: {len} <= {bare}");
    frames.push(Frame::Padding(len - bare));
    let p = packet(session_id, packet_number, frames);
    assert_eq!(p.len(), len);
    p
}

/// A LOGIN frame with `token` (epoch and checkpoint 0).
pub fn login(token: &[u8]) -> Frame {
    Frame::Login(Login {
        token: Bytes::copy_from_slice(token),
        epoch: 0,
        checkpoint: 0,
    })
}

/// A SEND (sequence 1, to user 2, conversation 1) of `payload`.
pub fn send_frame(payload: &[u8]) -> Frame {
    Frame::Send(Send {
        seq: 1,
        to: 2,
        conv: 1,
        msg_type: 0,
        payload: Bytes::copy_from_slice(payload),
    })
}

/// `n` random bytes.
pub fn random_bytes(rng: &mut impl RngCore, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// Headers with a valid trailer that no version-1 peer may send: flags set,
/// packet number 0, and an extension frame claiming 2,000 bytes. Each must
/// be refused as malformed.
pub fn forbidden_headers() -> Vec<Named> {
    let mut flags = header_bytes(0, 1);
    flags[1] = 0x80;
    flags.resize(40, 0);
    let mut pn0 = header_bytes(0, 0);
    pn0.resize(40, 0);
    let mut ext = header_bytes(0, 1);
    ext.extend_from_slice(&[0x45, 0x47, 0xd0]); // type 0x45, varint 2000
    ext.resize(60, 0);
    vec![
        Named::new("flags set", with_trailer(flags)),
        Named::new("packet number 0", with_trailer(pn0)),
        Named::new("oversized extension length", with_trailer(ext)),
    ]
}

/// Version bytes no server speaks (it speaks 1 and 2; 0 is version
/// negotiation).
pub const OTHER_VERSIONS: [u8; 5] = [0, 3, 4, 0x7f, 0xff];

/// `len` bytes starting with version byte `v`, random after it.
pub fn other_version(v: u8, len: usize, rng: &mut impl RngCore) -> Vec<u8> {
    let mut data = random_bytes(rng, len.max(1));
    data[0] = v;
    data
}

/// `datagram` (a valid packet) with version byte `v`, trailer recomputed.
pub fn with_version(datagram: &[u8], v: u8) -> Vec<u8> {
    let mut d = datagram.to_vec();
    d[0] = v;
    reseal(d)
}

/// Frame types outside the extension range that version 1 does not define.
pub const UNKNOWN_FRAME_TYPES: [u8; 6] = [0x0f, 0x2f, 0x3f, 0x80, 0xc3, 0xff];

/// A session-0 packet of `padding` padding bytes, then frame type `ty`,
/// with a valid trailer.
pub fn unknown_frame(packet_number: u64, padding: usize, ty: u8) -> Vec<u8> {
    let mut body = header_bytes(0, packet_number);
    body.resize(body.len() + padding, 0);
    body.push(ty);
    with_trailer(body)
}

/// Frames that are not allowed before login (anything but LOGIN, COOKIE,
/// HANDSHAKE and PADDING, and a LOGIN after another frame), by name.
pub fn frames_before_login(token: &[u8]) -> Vec<(&'static str, Vec<Frame>)> {
    let send = send_frame(b"sneaky");
    vec![
        ("SEND", vec![send.clone()]),
        ("HEARTBEAT", vec![Frame::Heartbeat(9)]),
        (
            "PULL",
            vec![Frame::Pull(Pull {
                request_id: 1,
                after: 0,
                max_entries: 10,
            })],
        ),
        (
            "ACK",
            vec![Frame::Ack(Ack {
                receiver_online: false,
                cumulative: 3,
                delay_us: 0,
                ranges: vec![],
            })],
        ),
        ("LOGOUT", vec![Frame::Logout]),
        (
            "extension",
            vec![Frame::Extension {
                ty: 0x50,
                body: Bytes::from_static(b"ext"),
            }],
        ),
        ("SEND then LOGIN", vec![send, login(token)]),
    ]
}

/// Tokens a LOGIN can carry that must be refused, made from a valid one.
#[derive(Debug, Clone)]
pub struct BadTokens {
    /// The MAC's last byte flipped.
    pub forged_mac: Vec<u8>,
    /// Another user under the same MAC.
    pub changed_user: Vec<u8>,
    /// Signed with the right secret, expired a minute ago.
    pub expired: Vec<u8>,
    /// Signed with another secret.
    pub wrong_secret: Vec<u8>,
    /// Cut to 52 bytes.
    pub short: Vec<u8>,
    /// Token version 2.
    pub version_2: Vec<u8>,
}

impl BadTokens {
    /// The bad tokens for device 1 of `user`: `valid` is a valid token of
    /// it, `keys` the server's, `now_secs` the Unix time.
    pub fn new(keys: &TokenKeys, valid: &[u8], user: u64, now_secs: u64) -> BadTokens {
        let mut forged_mac = valid.to_vec();
        *forged_mac.last_mut().expect("a token") ^= 0x01;
        let mut changed_user = valid.to_vec();
        changed_user[8] ^= 0x01;
        let claims = |expires| Claims {
            user,
            device: 1,
            expires,
        };
        let mut version_2 = valid.to_vec();
        version_2[0] = 2;
        BadTokens {
            forged_mac,
            changed_user,
            expired: keys.sign(claims(now_secs - 60)),
            wrong_secret: TokenKeys::new(vec![0x42; 32], vec![]).sign(claims(now_secs + 3600)),
            short: valid[..52].to_vec(),
            version_2,
        }
    }

    /// Every bad token (the empty one too), its name and the error code a
    /// LOGIN with it must get.
    pub fn all(&self) -> Vec<(&'static str, &[u8], ErrorCode)> {
        vec![
            ("forged MAC", &self.forged_mac[..], ErrorCode::BadToken),
            ("changed user", &self.changed_user, ErrorCode::BadToken),
            ("expired token", &self.expired, ErrorCode::TokenExpired),
            ("wrong secret", &self.wrong_secret, ErrorCode::BadToken),
            ("short token", &self.short, ErrorCode::BadToken),
            ("token version 2", &self.version_2, ErrorCode::BadToken),
            ("empty token", &[], ErrorCode::BadToken),
        ]
    }
}

/// Random bytes of mixed sizes: many small, some mid, some near the MTU.
pub fn garbage(r: &mut impl RngCore) -> Vec<u8> {
    let len = match r.gen_range(0..10) {
        0..=4 => r.gen_range(1..64),
        5..=7 => r.gen_range(64..400),
        _ => r.gen_range(400..1400),
    };
    random_bytes(r, len)
}

/// A well-formed packet (valid frames and trailer) for a random session
/// id: a HEARTBEAT, an ACK or a SEND with a random payload.
pub fn random_session_packet(r: &mut impl RngCore) -> Vec<u8> {
    let f = match r.gen_range(0..3) {
        0 => Frame::Heartbeat(r.gen_range(0..=varint::MAX)),
        1 => Frame::Ack(Ack {
            receiver_online: false,
            cumulative: r.gen_range(1..10_000),
            delay_us: 500,
            ranges: vec![],
        }),
        _ => {
            let len = r.gen_range(16..256);
            Frame::Send(Send {
                seq: r.gen_range(1..10_000),
                to: r.gen_range(1..1_000_000),
                conv: r.gen_range(1..1_000),
                msg_type: 0,
                payload: Bytes::from(random_bytes(r, len)),
            })
        }
    };
    packet(r.gen_range(1..=u64::MAX), r.gen_range(1..1 << 20), vec![f])
}

/// A LOGIN without a cookie: a random 64-byte token, padded to 1,200
/// bytes, to 300, or not at all.
pub fn login_without_cookie(r: &mut impl RngCore) -> Vec<u8> {
    let token = random_bytes(r, 64);
    let pn = r.gen_range(1..1 << 20);
    match r.gen_range(0..4) {
        0 => padded(0, pn, vec![login(&token)], 1200),
        1 => padded(0, pn, vec![login(&token)], 300),
        _ => packet(0, pn, vec![login(&token)]),
    }
}

/// A sealed-UDP HANDSHAKE without a cookie: a random 96-byte message 1,
/// padded to 256 bytes as clients send it.
pub fn handshake_without_cookie(r: &mut impl RngCore) -> Vec<u8> {
    let msg = random_bytes(r, 96);
    padded(
        0,
        r.gen_range(1..1 << 20),
        vec![Frame::Handshake(Bytes::from(msg))],
        256,
    )
}

/// A datagram shaped like a sealed packet (flags [`FLAG_SEALED`]) of
/// `session_id`, packet number byte `1 + copy`, then random bytes standing
/// for ciphertext and tag, `len` bytes in all.
pub fn sealed_junk(r: &mut impl RngCore, session_id: u64, copy: usize, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.push(VERSION);
    v.push(FLAG_SEALED);
    v.extend_from_slice(&session_id.to_be_bytes());
    v.push((1 + copy as u8) & 0x3f);
    while v.len() < len {
        v.push(r.gen());
    }
    v
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn built_packets_decode_and_broken_ones_do_not() {
        let p = padded(7, 3, vec![Frame::Heartbeat(1)], 60);
        let back = Packet::decode(Bytes::from(p.clone())).expect("decodes");
        assert_eq!(back.header.session_id, 7);
        assert_eq!(with_trailer(p[..p.len() - 4].to_vec()), p, "same trailer");
        assert!(Packet::decode(Bytes::from(with_bad_trailer(&p))).is_err());
        assert!(Packet::decode(Bytes::from(with_version(&p, 3))).is_err());
        assert_eq!(header_bytes(7, 3), p[..11].to_vec());
        for h in forbidden_headers() {
            assert!(Packet::decode(Bytes::from(h.bytes)).is_err(), "{}", h.name);
        }
        for t in UNKNOWN_FRAME_TYPES {
            assert!(Packet::decode(Bytes::from(unknown_frame(1, 24, t))).is_err());
        }
    }

    #[test]
    fn random_kinds_have_their_shape() {
        let mut r = rand::rngs::SmallRng::seed_from_u64(1);
        for _ in 0..50 {
            assert!(Packet::decode(Bytes::from(random_session_packet(&mut r))).is_ok());
            let l = login_without_cookie(&mut r);
            assert!(Packet::decode(Bytes::from(l)).is_ok());
            assert_eq!(handshake_without_cookie(&mut r).len(), 256);
            let g = garbage(&mut r);
            assert!((1..1400).contains(&g.len()));
        }
        assert_eq!(sealed_junk(&mut r, 9, 0, 48).len(), 48);
    }
}
