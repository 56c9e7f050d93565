//! When a version 2 client falls back to version 1
//! (`proto-spec/conversations.md`, "Versions on the wire"): a version 1
//! server answers every version 2 LOGIN with ERROR `UnsupportedVersion`,
//! but so does a version 2 server when the datagram's version byte was
//! corrupted on the way, and anyone can forge that clear ERROR. A client
//! that fell back for good on one such answer would lose conversations,
//! its other devices' own copies and the list until it restarts (a
//! simulator seed with corruption found exactly that). So one answer is
//! not enough, and none is once the server has spoken version 2.

use bytes::Bytes;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::time::Time;
use tern_core::wire::{ErrorCode, ErrorFrame, Frame, Header, Packet, VERSION, VERSION_2};
use tern_sim::pair::Pair;

fn client() -> ClientConn {
    let mut cfg = ClientConfig::new(Pair::token(1, 1));
    cfg.version = VERSION_2;
    ClientConn::new(cfg, Time::ZERO, 1)
}

fn from_server(version: u8, frame: Frame) -> Bytes {
    Packet {
        header: Header {
            session_id: 0,
            packet_number: 1,
            version,
        },
        frames: vec![frame],
    }
    .encode()
}

fn unsupported_version() -> Bytes {
    from_server(
        VERSION,
        Frame::Error(ErrorFrame {
            code: ErrorCode::UnsupportedVersion as u64,
            frame_type: 0,
            seq: 0,
            reason: "unsupported protocol version 2".into(),
        }),
    )
}

/// Sends the next LOGIN (at `now`) and hands the client `answer`; returns
/// whether it fell back to version 1.
fn answer(c: &mut ClientConn, now: Time, answer: Bytes) -> bool {
    c.handle_timeout(now);
    while c.poll_transmit(now).is_some() {}
    c.handle_datagram(now, answer);
    std::iter::from_fn(|| c.poll_event()).any(|e| matches!(e, ClientEvent::Downgraded))
}

#[test]
fn one_unsupported_version_answer_is_not_enough_to_fall_back_two_are() {
    let mut c = client();
    assert!(!answer(&mut c, Time::ZERO, unsupported_version()));
    let later = Time::from_secs(1);
    assert!(
        answer(&mut c, later, unsupported_version()),
        "a version 1 server says it to every LOGIN: the second one makes the client fall back"
    );
}

#[test]
fn a_client_that_heard_version_2_from_its_server_never_falls_back() {
    let mut c = client();
    let retry = from_server(VERSION_2, Frame::Retry(Bytes::from_static(&[7; 24])));
    assert!(!answer(&mut c, Time::ZERO, retry));
    for s in 1..5 {
        assert!(
            !answer(&mut c, Time::from_secs(s), unsupported_version()),
            "answer {s}: the server spoke version 2"
        );
    }
}
