//! Every clear LOGIN a client sends gets an answer, however short its
//! token: the client pads the datagram to `MIN_LOGIN_DATAGRAM` (96 bytes),
//! and each answer a server may send before it has proof of the address
//! (RETRY, the login refusals) fits in that (`proto-spec/frames.md`, LOGIN).

use bytes::Bytes;
use tern_core::broker::{BrokerConfig, SealPolicy};
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::seal::StaticKey;
use tern_core::time::Time;
use tern_core::wire::limits::{MAX_COOKIE, MIN_LOGIN_DATAGRAM};
use tern_core::wire::{ErrorCode, ErrorFrame, Frame, Header, Packet, PacketBuilder};
use tern_sim::pair::Pair;

/// A token of 10 bytes: no server of this implementation issues one, but
/// the token is opaque and its size may change.
const SHORT: &[u8] = b"token-1234";

/// The first datagram of a client whose token is [`SHORT`].
fn short_login() -> Bytes {
    let mut c = ClientConn::new(ClientConfig::new(Bytes::from_static(SHORT)), Time::ZERO, 7);
    c.poll_transmit(Time::ZERO).expect("a LOGIN")
}

#[test]
fn a_login_with_a_ten_byte_token_is_padded_to_the_minimum() {
    let d = short_login();
    assert_eq!(d.len(), MIN_LOGIN_DATAGRAM);
    let p = Packet::decode(d).unwrap();
    assert!(matches!(
        p.frames[..],
        [Frame::Login(ref l), Frame::Padding(_)] if l.token == SHORT
    ));
}

#[test]
fn a_login_with_a_ten_byte_token_gets_an_answer() {
    for validate_addresses in [true, false] {
        let mut net = Pair::new(BrokerConfig {
            validate_addresses,
            ..BrokerConfig::default()
        });
        let c = net.connect(1, 1, |c| c.token = Bytes::from_static(SHORT));
        let ev = net.settle();
        assert!(
            ev[c].contains(&ClientEvent::LoginRefused {
                code: ErrorCode::BadToken as u64
            }),
            "validate_addresses {validate_addresses}: the bad token is refused, not ignored: {:?}",
            ev[c]
        );
    }
}

/// The broker's one answer to `datagram`, checked to be no larger.
fn only_answer(cfg: BrokerConfig, datagram: Bytes) -> Packet {
    let mut net = Pair::new(cfg);
    let len = datagram.len();
    let from: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    net.broker.handle_datagram(Time::ZERO, from, datagram);
    let answers: Vec<Bytes> = std::iter::from_fn(|| net.broker.poll_transmit())
        .map(|(_, d)| d)
        .collect();
    assert_eq!(answers.len(), 1, "one answer");
    assert!(answers[0].len() <= len, "{} > {len}", answers[0].len());
    Packet::decode(answers[0].clone()).expect("a clear answer")
}

fn error_code(p: &Packet) -> Option<u64> {
    match p.frames[..] {
        [Frame::Error(ErrorFrame { code, .. })] => Some(code),
        _ => None,
    }
}

#[test]
fn every_answer_to_a_minimal_login_fits_in_it() {
    // Address not proven yet: a RETRY.
    let p = only_answer(BrokerConfig::default(), short_login());
    assert!(matches!(p.frames[..], [Frame::Retry(_)]), "{p:?}");
    // Proven (or not checked): the token is refused.
    let p = only_answer(
        BrokerConfig {
            validate_addresses: false,
            ..BrokerConfig::default()
        },
        short_login(),
    );
    assert_eq!(error_code(&p), Some(ErrorCode::BadToken as u64));
    // A clear login where sealing is required.
    let p = only_answer(
        BrokerConfig {
            seal_key: Some(StaticKey::from_secret([9; 32])),
            seal_policy: SealPolicy::Required,
            ..BrokerConfig::default()
        },
        short_login(),
    );
    assert_eq!(error_code(&p), Some(ErrorCode::SealRequired as u64));
}

#[test]
fn the_largest_answer_before_proof_fits_in_the_minimum() {
    let header = Header {
        session_id: 0,
        packet_number: 1,
        version: tern_core::wire::VERSION,
    };
    let mut retry = PacketBuilder::new(header, 1200);
    retry
        .push(&Frame::Retry(Bytes::from(vec![0xab; MAX_COOKIE])))
        .unwrap();
    let largest = retry.finish().len();
    assert_eq!(largest, 82);
    let mut error = PacketBuilder::new(header, 1200);
    error
        .push(&Frame::Error(ErrorFrame {
            code: ErrorCode::StorageFailure as u64,
            frame_type: 0x01,
            seq: 0,
            reason: "r".repeat(60),
        }))
        .unwrap();
    assert_eq!(error.finish().len(), 80);
    assert!(largest <= MIN_LOGIN_DATAGRAM);
}
