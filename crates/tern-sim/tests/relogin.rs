//! A device that logs in again while its session is live (from the
//! session's address or another), over a perfect network in virtual time (`proto-spec/flows.md`, "Login", server
//! step 3): a client whose packet numbers restarted (a new process on the
//! same socket, or a client that numbers each session from 1) is not left
//! waiting for the old session to idle out (45 s), and a late copy of the
//! LOGIN that opened a session never replaces it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tern_core::broker::{BrokerConfig, BrokerEvent};
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::seal::StaticKey;
use tern_core::wire::{Frame, Header, Packet, PacketBuilder};
use tern_sim::pair::{entries, Pair};

fn config(validate_addresses: bool) -> BrokerConfig {
    BrokerConfig {
        validate_addresses,
        ..BrokerConfig::default()
    }
}

fn sealed_config() -> BrokerConfig {
    BrokerConfig {
        seal_key: Some(StaticKey::from_secret([9; 32])),
        ..BrokerConfig::default()
    }
}

/// Messages Alice sends in her first session, one datagram or more each.
const FIRST: u64 = 30;

/// Alice (user 1) logs in and sends Bob (user 2) [`FIRST`] messages one at a
/// time, so that her session has heard packets numbered well above a LOGIN
/// numbered from 1 again.
fn alice_and_bob(cfg: BrokerConfig, tune: impl Fn(&mut ClientConfig)) -> (Pair, usize, usize) {
    let mut net = Pair::new(cfg);
    let alice = net.connect(1, 1, &tune);
    let bob = net.connect(2, 1, &tune);
    net.settle();
    let mut got = Vec::new();
    for _ in 0..FIRST {
        net.send(alice, 2, 1);
        got.extend(entries(&net.settle()[bob]));
    }
    assert_eq!(got, (1..=FIRST).collect::<Vec<_>>(), "the session works");
    (net, alice, bob)
}

/// Moves the network in steps of 100 ms of virtual time until client `i`
/// logs in, for at most `limit`; returns how long it took.
fn time_to_login(net: &mut Pair, i: usize, limit: Duration) -> Option<Duration> {
    let start = net.now;
    while net.now.saturating_since(start) <= limit {
        let ev = net.settle();
        if ev[i]
            .iter()
            .any(|e| matches!(e, ClientEvent::LoggedIn { .. }))
        {
            return Some(net.now.saturating_since(start));
        }
        net.now += Duration::from_millis(100);
    }
    None
}

/// A new process on the same socket: its packet numbers start again at 1.
fn restart(net: &mut Pair, i: usize, tune: impl FnOnce(&mut ClientConfig)) {
    let mut cfg = ClientConfig::new(Pair::token(1, 1));
    tune(&mut cfg);
    net.clients[i].1 = ClientConn::new(cfg, net.now, 99);
}

fn logins(net: &mut Pair) -> Vec<u64> {
    std::iter::from_fn(|| net.broker.poll_event())
        .filter_map(|e| match e {
            BrokerEvent::LoggedIn { session, .. } => Some(session),
            _ => None,
        })
        .collect()
}

#[test]
fn a_client_that_restarted_its_numbering_logs_in_at_once() {
    for validate in [true, false] {
        let (mut net, alice, bob) = alice_and_bob(config(validate), |_| {});
        restart(&mut net, alice, |_| {});
        let waited = time_to_login(&mut net, alice, Duration::from_secs(60));
        assert!(
            waited.is_some_and(|w| w < Duration::from_secs(1)),
            "validate_addresses {validate}: logged in after {waited:?}, not at once"
        );
        net.send(alice, 2, 1);
        let ev = net.settle();
        assert_eq!(entries(&ev[bob]), vec![FIRST + 1], "the new session works");
    }
}

#[test]
fn a_sealed_client_whose_clock_went_back_logs_in_at_once() {
    let key = StaticKey::from_secret([9; 32]).public();
    let (mut net, alice, _) = alice_and_bob(sealed_config(), |c| {
        c.server_key = Some(key);
        c.wall_origin_ms = 1_700_000_000_000;
    });
    // The restarted process's clock is a minute behind the first one's: its
    // handshake looks older than the live session's.
    restart(&mut net, alice, |c| {
        c.server_key = Some(key);
        c.wall_origin_ms = 1_700_000_000_000 - 60_000;
    });
    let waited = time_to_login(&mut net, alice, Duration::from_secs(60));
    assert!(
        waited.is_some_and(|w| w < Duration::from_secs(1)),
        "logged in after {waited:?}, not at once"
    );
}

/// Spare copies of a sealed handshake's message 1 (login copies) reach the
/// server after the first opened the session: each gets the kept answer
/// again, to the session's address, without another Diffie-Hellman
/// operation and without a second session.
#[test]
fn spare_copies_of_a_sealed_handshake_get_the_kept_answer() {
    let key = StaticKey::from_secret([9; 32]).public();
    let mut net = Pair::new(BrokerConfig {
        validate_addresses: false,
        ..sealed_config()
    });
    let alice = net.connect(1, 1, |c| c.server_key = Some(key));
    let now = net.now;
    let (addr, conn) = &mut net.clients[alice];
    let msg1 = conn.poll_transmit(now).expect("the handshake");
    let addr = *addr;
    for _ in 0..3 {
        net.broker.handle_datagram(now, addr, msg1.clone());
    }
    let replies: Vec<Bytes> = std::iter::from_fn(|| net.broker.poll_transmit())
        .map(|(to, d)| {
            assert_eq!(to.addr, addr);
            d
        })
        .collect();
    assert_eq!(replies.len(), 3, "every copy is answered");
    assert!(
        replies.iter().all(|r| *r == replies[0]),
        "with the same answer"
    );
    assert_eq!(net.broker.stats().handshake_copies, 2);
    assert_eq!(logins(&mut net).len(), 1, "one session");
    for r in replies {
        net.clients[alice].1.handle_datagram(now, r);
    }
    let ev = net.settle();
    assert!(ev[alice]
        .iter()
        .any(|e| matches!(e, ClientEvent::LoggedIn { .. })));
    assert!(!ev[alice]
        .iter()
        .any(|e| matches!(e, ClientEvent::Kicked { .. })));
    // The client's first sealed packet ends the kept answer: a copy now
    // goes the full way (and is still not a new login).
    net.send(alice, 2, 1);
    net.settle();
    net.broker.handle_datagram(net.now, addr, msg1);
    assert_eq!(net.broker.stats().handshake_copies, 2);
    assert_eq!(logins(&mut net).len(), 0, "no new session");
}

/// What the broker sends at once in answer to `datagram` from `from`.
fn answers(net: &mut Pair, from: SocketAddr, datagram: Bytes) -> Vec<Packet> {
    net.broker.handle_datagram(net.now, from, datagram);
    std::iter::from_fn(|| net.broker.poll_transmit())
        .map(|(to, d)| {
            assert_eq!(to.addr, from);
            Packet::decode(d).expect("a clear answer")
        })
        .collect()
}

#[test]
fn late_copies_of_a_login_do_not_replace_its_session() {
    for validate in [true, false] {
        let (mut net, alice, bob) = alice_and_bob(config(validate), |_| {});
        let from = net.clients[alice].0;
        let copies = net.logins_sent(from);
        assert_eq!(copies.len(), if validate { 2 } else { 1 });
        let _ = logins(&mut net);
        for copy in copies {
            let len = copy.len();
            let got = answers(&mut net, from, copy.clone());
            assert_eq!(got.len(), 1, "one answer: {got:?}");
            assert!(
                matches!(got[0].frames[..], [Frame::Retry(_)]),
                "a RETRY, which the client in its session ignores: {got:?}"
            );
            assert!(got[0].encode().len() <= len, "never larger than the LOGIN");
            net.clients[alice]
                .1
                .handle_datagram(net.now, got[0].encode());
        }
        assert_eq!(logins(&mut net), Vec::<u64>::new(), "no new session");
        assert_eq!(net.broker.stats().replaced, 0);
        net.send(alice, 2, 1);
        let ev = net.settle();
        assert_eq!(
            entries(&ev[bob]),
            vec![FIRST + 1],
            "the session still works"
        );
        assert!(
            !ev[alice]
                .iter()
                .any(|e| matches!(e, ClientEvent::Kicked { .. } | ClientEvent::Disconnected)),
            "validate_addresses {validate}: {:?}",
            ev[alice]
        );
    }
}

/// A copy of the LOGIN sent from an address the client has left since (a
/// NAT rebinding while it logged in, its login copies delayed) arrives
/// after the session moved to the new address: it must not replace the
/// session (found by simulator seed 930 of `client_restarts_from_durable_state`
/// once clients sent three copies of each login).
#[test]
fn a_late_login_copy_from_an_address_the_client_left_does_not_replace_its_session() {
    for validate in [true, false] {
        let (mut net, alice, bob) = alice_and_bob(config(validate), |_| {});
        let old = net.clients[alice].0;
        let copies = net.logins_sent(old);
        let _ = logins(&mut net);
        // The client moves; its next packets take the session along.
        net.clients[alice].0 = "127.0.0.1:45000".parse().expect("address");
        net.send(alice, 2, 1);
        let ev = net.settle();
        assert_eq!(entries(&ev[bob]), vec![FIRST + 1]);
        for copy in copies {
            let got = answers(&mut net, old, copy);
            assert!(
                got.iter()
                    .all(|p| matches!(p.frames[..], [Frame::Retry(_)])),
                "validate_addresses {validate}: only RETRYs to the old address: {got:?}"
            );
        }
        assert_eq!(logins(&mut net), Vec::<u64>::new(), "no new session");
        assert_eq!(net.broker.stats().replaced, 0);
        net.send(alice, 2, 1);
        let ev = net.settle();
        assert_eq!(
            entries(&ev[bob]),
            vec![FIRST + 2],
            "the session still works"
        );
        assert!(
            !ev[alice]
                .iter()
                .any(|e| matches!(e, ClientEvent::Kicked { .. } | ClientEvent::Disconnected)),
            "validate_addresses {validate}: {:?}",
            ev[alice]
        );
    }
}

/// A LOGIN datagram as a client that numbers each session from 1 builds it.
fn login_numbered(copy: &Bytes, pn: u64, cookie: Option<Bytes>) -> Bytes {
    let old = Packet::decode(copy.clone()).expect("a clear LOGIN");
    let header = Header {
        session_id: 0,
        packet_number: pn,
        version: old.header.version,
    };
    let mut pb = PacketBuilder::new(header, 1200);
    if let Some(c) = cookie {
        pb.push(&Frame::Cookie(c)).unwrap();
    }
    for f in old.frames.iter().filter(|f| matches!(f, Frame::Login(_))) {
        pb.push(f).unwrap();
    }
    pb.pad_to(copy.len());
    pb.finish()
}

#[test]
fn a_client_that_numbers_each_session_from_one_is_not_stranded() {
    let (mut net, alice, _) = alice_and_bob(config(true), |_| {});
    let from = net.clients[alice].0;
    let first = net
        .logins_sent(from)
        .pop()
        .expect("the LOGIN with its cookie");
    let old_cookie = Packet::decode(first.clone())
        .unwrap()
        .frames
        .into_iter()
        .find_map(|f| match f {
            Frame::Cookie(c) => Some(c),
            _ => None,
        })
        .expect("a cookie");
    let old_session = logins(&mut net);
    assert_eq!(old_session.len(), 2, "alice and bob");
    // Its re-login is numbered 1 again, with the cookie it kept: the server
    // cannot tell it from a late copy, and asks.
    let relogin = login_numbered(&first, 1, Some(old_cookie));
    let got = answers(&mut net, from, relogin);
    let cookie = match &got[..] {
        [Packet { frames, .. }] => match &frames[..] {
            [Frame::Retry(c)] => c.clone(),
            other => panic!("expected RETRY, got {other:?}"),
        },
        other => panic!("expected one answer, got {other:?}"),
    };
    // It echoes the fresh cookie at once, as every client does.
    let got = answers(&mut net, from, login_numbered(&first, 2, Some(cookie)));
    let new = logins(&mut net);
    assert_eq!(new.len(), 1, "a new session: {got:?}");
    assert!(!old_session.contains(&new[0]));
    assert!(
        got.iter().any(|p| p.header.session_id == new[0]
            && p.frames.iter().any(|f| matches!(f, Frame::LoginOk(_)))),
        "LOGIN_OK for the new session: {got:?}"
    );
    assert_eq!(net.broker.stats().replaced, 1, "it replaced the old one");
}

#[test]
fn a_retransmitted_login_is_answered_until_the_session_hears_from_its_client() {
    let mut net = Pair::new(config(true));
    let alice = net.connect(1, 1, |_| {});
    net.settle();
    let from = net.clients[alice].0;
    let copy = net
        .logins_sent(from)
        .pop()
        .expect("the LOGIN with its cookie");
    // The session has heard nothing but its LOGIN (alice had nothing to
    // send): a copy is a retransmission, answered with LOGIN_OK again.
    let got = answers(&mut net, from, copy);
    assert!(
        got.iter()
            .any(|p| p.frames.iter().any(|f| matches!(f, Frame::LoginOk(_)))),
        "{got:?}"
    );
    assert_eq!(logins(&mut net).len(), 1, "the one session");
}
