//! Bytes from the network into the sealed-session code (`tern_core::seal`).
//!
//! Random bytes never carry a valid Poly1305 tag, so the input is used three
//! ways:
//! - as a sealed datagram opened with fixed keys (header parsing, length and
//!   replay checks, tag verification): it must be refused, never panic;
//! - as the *plaintext* of a sealed packet: a header is put in front, it is
//!   sealed with the peer's key and opened, which reaches the frame decoder
//!   behind the tag. Opening must agree with `Packet::decode` of the same
//!   clear packet (same frames, or a `Frames` error exactly when the clear
//!   decode fails), and a second open of the same bytes is a replay;
//! - as Noise handshake message 1 for a server, and message 2 for a client:
//!   refused without panicking (and never accepted: no forgery by chance).
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tern_core::seal::{Channel, Entropy, Initiator, OpenError, Responder, StaticKey};
use tern_core::wire::{Header, Login, Packet, FLAG_SEALED};

fuzz_target!(|data: &[u8]| {
    let (a_tx, b_tx) = ([1u8; 32], [2u8; 32]);
    let a = Channel::new(a_tx, b_tx);
    let mut b = Channel::new(b_tx, a_tx);

    // 1. As a sealed datagram.
    assert!(b.open(data).is_err(), "random bytes opened");

    // 2. As the plaintext behind a valid tag.
    let header = Header {
        session_id: 0x0102_0304_0506_0708,
        packet_number: 1 + data.first().copied().unwrap_or(0) as u64,
        version: tern_core::wire::VERSION,
    };
    let mut clear = BytesMut::new();
    header.encode(&mut clear);
    clear.extend_from_slice(data);
    let crc = crc32fast_like(&clear);
    clear.put_u32(crc);
    let clear = clear.freeze();
    let sealed = a.seal(&clear);
    assert_eq!(sealed[1], FLAG_SEALED);
    assert_eq!(sealed.len(), clear.len() + tern_core::seal::SEAL_OVERHEAD);
    if sealed.len() > tern_core::wire::limits::MAX_RECV_DATAGRAM {
        // Over the datagram limit: refused before it is opened, like a
        // clear datagram that long (`proto-spec/sealed.md`, step 1).
        assert!(matches!(
            b.open(&sealed),
            Err(OpenError::Header(tern_core::wire::DecodeError::TooLong { .. }))
        ));
        return;
    }
    match (b.open(&sealed), Packet::decode(clear.clone())) {
        (Ok(opened), Ok(plain)) => assert_eq!(opened, plain),
        (Err(OpenError::Frames(_)), Err(_)) => {}
        (got, plain) => panic!("sealed {got:?} vs clear {plain:?}"),
    }
    assert!(
        matches!(b.open(&sealed), Err(OpenError::Replay(_))),
        "second open is a replay"
    );

    // 3. As handshake messages.
    let server = StaticKey::from_secret([9; 32]);
    let mut e = Entropy::from_test_seed(1);
    assert!(Responder::accept(&mut e, &server, None, data, 1).is_err());
    let login = Login {
        token: Bytes::from_static(b"t"),
        epoch: 0,
        checkpoint: 0,
    };
    if let Ok((init, _)) = Initiator::start(&mut e, &server.public(), None, 1, &login, 1) {
        assert!(init.finish(data).is_err());
    }
});

/// CRC-32 (IEEE), bit by bit: independent of the codec's implementation.
fn crc32fast_like(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
