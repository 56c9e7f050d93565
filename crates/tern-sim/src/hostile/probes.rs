//! Every kind of datagram a source the daemon has not validated can send,
//! as generators of copies: what `tern-bench amplification` sends to count
//! the bytes answered per byte received (each must stay at most 1).

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;
use tern_core::wire::{varint, Ack, Frame};

use super::{
    login, other_version, packet, padded, random_bytes, sealed_junk, send_frame, unknown_frame,
    with_bad_trailer, with_trailer, with_version,
};

/// Makes copy `i` of a probe (random parts differ between copies).
type Make = Box<dyn Fn(&mut StdRng, usize) -> Vec<u8>>;

/// One kind of probe: a name and a generator of its datagrams.
pub struct Probe {
    /// What is sent.
    pub name: String,
    make: Make,
}

impl Probe {
    fn new(name: impl Into<String>, make: Make) -> Probe {
        Probe {
            name: name.into(),
            make,
        }
    }

    /// Copy `copy` of this probe.
    pub fn datagram(&self, rng: &mut StdRng, copy: usize) -> Vec<u8> {
        (self.make)(rng, copy)
    }
}

/// A session-0 packet, packet number `1 + copy`, padded to `pad` (0: not padded).
fn first(copy: usize, frames: Vec<Frame>, pad: usize) -> Vec<u8> {
    let pn = 1 + copy as u64;
    if pad == 0 {
        packet(0, pn, frames)
    } else {
        padded(0, pn, frames, pad)
    }
}

/// A packet of a random (unknown) session, packet number `1 + copy`.
fn stranger(r: &mut StdRng, copy: usize, frames: Vec<Frame>, pad: usize) -> Vec<u8> {
    let sid = r.gen_range(1..=u64::MAX);
    let pn = 1 + copy as u64;
    if pad == 0 {
        packet(sid, pn, frames)
    } else {
        padded(sid, pn, frames, pad)
    }
}

fn cookie(c: &[u8]) -> Frame {
    Frame::Cookie(Bytes::copy_from_slice(c))
}

fn handshake(msg: Vec<u8>) -> Frame {
    Frame::Handshake(Bytes::from(msg))
}

/// LOGINs with and without (bad) cookies; `token` is a valid token,
/// `stolen_cookie` a real cookie the daemon gave another address.
fn logins(k: &mut Vec<Probe>, token: &[u8], stolen_cookie: &[u8]) {
    // Without a cookie: answered by RETRY, capped at the LOGIN's size.
    for pad in [0usize, 120, 300, 600, 1200] {
        let t = token.to_vec();
        let name = if pad == 0 {
            "LOGIN, no cookie, valid token, unpadded".to_string()
        } else {
            format!("LOGIN, no cookie, padded to {pad} B")
        };
        k.push(Probe::new(
            name,
            Box::new(move |_, i| first(i, vec![login(&t)], pad)),
        ));
    }
    k.push(Probe::new(
        "LOGIN, no cookie, 1-byte token (smallest LOGIN)",
        Box::new(|_, i| first(i, vec![login(&[7])], 0)),
    ));
    k.push(Probe::new(
        "LOGIN, no cookie, random 64-byte token",
        Box::new(|r, i| first(i, vec![login(&random_bytes(r, 64))], 0)),
    ));
    let t = token.to_vec();
    k.push(Probe::new(
        "LOGIN + forged cookie (24 random bytes)",
        Box::new(move |r, i| first(i, vec![cookie(&random_bytes(r, 24)), login(&t)], 0)),
    ));
    let (t, c) = (token.to_vec(), stolen_cookie.to_vec());
    k.push(Probe::new(
        "LOGIN + real cookie of another address",
        Box::new(move |_, i| first(i, vec![cookie(&c), login(&t)], 0)),
    ));
    let t = token.to_vec();
    k.push(Probe::new(
        "LOGIN + 64-byte junk cookie",
        Box::new(move |r, i| first(i, vec![cookie(&random_bytes(r, 64)), login(&t)], 0)),
    ));
}

/// Sealed raw UDP: HANDSHAKE (Noise NK message 1) instead of a LOGIN, and
/// datagrams shaped like sealed packets.
fn sealed(k: &mut Vec<Probe>, stolen_cookie: &[u8]) {
    for (len, pad) in [(96usize, 0usize), (96, 256), (1, 0), (1000, 0)] {
        let name = match (len, pad) {
            (96, 0) => "HANDSHAKE, no cookie, 96-byte message, unpadded".to_string(),
            (96, _) => format!("HANDSHAKE, no cookie, padded to {pad} B (as sent)"),
            (1, _) => "HANDSHAKE, no cookie, 1-byte message".to_string(),
            _ => format!("HANDSHAKE, no cookie, {len}-byte message"),
        };
        k.push(Probe::new(
            name,
            Box::new(move |r, i| first(i, vec![handshake(random_bytes(r, len))], pad)),
        ));
    }
    k.push(Probe::new(
        "HANDSHAKE + forged cookie",
        Box::new(|r, i| {
            let frames = vec![cookie(&random_bytes(r, 24)), handshake(random_bytes(r, 96))];
            first(i, frames, 256)
        }),
    ));
    let c = stolen_cookie.to_vec();
    k.push(Probe::new(
        "HANDSHAKE + real cookie of another address",
        Box::new(move |r, i| first(i, vec![cookie(&c), handshake(random_bytes(r, 96))], 256)),
    ));
    for len in [48usize, 200] {
        k.push(Probe::new(
            format!("sealed packet (flags 1), random session id, {len} B"),
            Box::new(move |r, i| {
                let sid = r.gen_range(1..=u64::MAX);
                sealed_junk(r, sid, i, len)
            }),
        ));
    }
    k.push(Probe::new(
        "sealed packet (flags 1), session 0, 64 B",
        Box::new(|r, i| sealed_junk(r, 0, i, 64)),
    ));
}

/// Random bytes, and bad versions and checksums on otherwise valid LOGINs.
fn broken(k: &mut Vec<Probe>, token: &[u8]) {
    for size in [1usize, 4, 11, 16, 40, 100, 400, 1200, 1500, 2000] {
        k.push(Probe::new(
            format!("garbage, {size} random bytes"),
            Box::new(move |r, _| random_bytes(r, size)),
        ));
    }
    for size in [16usize, 60, 600] {
        k.push(Probe::new(
            format!("garbage after version byte 1, {size} B"),
            Box::new(move |r, _| other_version(1, size, r)),
        ));
    }
    let t = token.to_vec();
    k.push(Probe::new(
        "valid LOGIN with version 2..255",
        Box::new(move |r, i| with_version(&first(i, vec![login(&t)], 0), r.gen_range(2..=255))),
    ));
    let t = token.to_vec();
    k.push(Probe::new(
        "valid LOGIN with version 0 (negotiation)",
        Box::new(move |_, i| with_version(&first(i, vec![login(&t)], 0), 0)),
    ));
    let t = token.to_vec();
    k.push(Probe::new(
        "LOGIN with a bad CRC",
        Box::new(move |_, i| with_bad_trailer(&first(i, vec![login(&t)], 0))),
    ));
    let t = token.to_vec();
    k.push(Probe::new(
        "LOGIN cut short (CRC recomputed)",
        Box::new(move |_, i| {
            let v = first(i, vec![login(&t)], 0);
            with_trailer(v[..(v.len() / 2)].to_vec())
        }),
    ));
}

/// Frames of sessions that do not exist, and frames before login.
fn strangers(k: &mut Vec<Probe>) {
    for pad in [0usize, 100, 1200] {
        let name = if pad == 0 {
            "HEARTBEAT, random session id".to_string()
        } else {
            format!("HEARTBEAT, random session id, padded to {pad} B")
        };
        k.push(Probe::new(
            name,
            Box::new(move |r, i| {
                let hb = Frame::Heartbeat(r.gen_range(0..=varint::MAX));
                stranger(r, i, vec![hb], pad)
            }),
        ));
    }
    k.push(Probe::new(
        "header only, random session id",
        Box::new(|r, i| stranger(r, i, vec![], 0)),
    ));
    k.push(Probe::new(
        "ACK, random session id",
        Box::new(|r, i| {
            let ack = Frame::Ack(Ack {
                receiver_online: false,
                cumulative: r.gen_range(1..1000),
                delay_us: 100,
                ranges: vec![],
            });
            stranger(r, i, vec![ack], 0)
        }),
    ));
    k.push(Probe::new(
        "SEND 64 B, random session id",
        Box::new(|r, i| {
            let send = send_frame(&random_bytes(r, 64));
            stranger(r, i, vec![send], 0)
        }),
    ));
    k.push(Probe::new(
        "LOGOUT, random session id",
        Box::new(|r, i| stranger(r, i, vec![Frame::Logout], 0)),
    ));
    k.push(Probe::new(
        "HEARTBEAT, session 0",
        Box::new(|r, i| first(i, vec![Frame::Heartbeat(r.gen_range(0..=varint::MAX))], 0)),
    ));
    k.push(Probe::new(
        "SEND 64 B, session 0",
        Box::new(|r, i| first(i, vec![send_frame(&random_bytes(r, 64))], 0)),
    ));
    k.push(Probe::new(
        "header only, session 0",
        Box::new(|_, i| first(i, vec![], 0)),
    ));
    k.push(Probe::new(
        "unknown frame type 0x3f, session 0",
        Box::new(|_, i| unknown_frame(1 + i as u64, 0, 0x3f)),
    ));
}

/// Every pre-login probe, in table order. `token` is a valid token (for
/// LOGINs that only the missing cookie keeps out), `stolen_cookie` a real
/// cookie the daemon issued to another address.
pub fn prelogin_probes(token: &[u8], stolen_cookie: &[u8]) -> Vec<Probe> {
    let mut k = Vec::new();
    logins(&mut k, token, stolen_cookie);
    sealed(&mut k, stolen_cookie);
    broken(&mut k, token);
    strangers(&mut k);
    k
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_probe_makes_its_copies() {
        let mut r = StdRng::seed_from_u64(4);
        let probes = prelogin_probes(&[1; 53], &[2; 24]);
        assert_eq!(probes.len(), 47);
        for p in &probes {
            for i in 0..3 {
                assert!(!p.datagram(&mut r, i).is_empty(), "{}", p.name);
            }
        }
    }
}
