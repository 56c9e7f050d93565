//! Answers of a session the client has just left, arriving while it logs in
//! again (late or duplicated by the network), in virtual time. Both were
//! found by `sim_groups` seeds 96 and 202 once messages went out in copies
//! on lossy paths: a client taking the old session's LOGIN_OK was then
//! kicked for good by the login it had sent itself, and a refused operation
//! released by the old session's late ACK was reported stored.

use std::net::SocketAddr;

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::client::ClientEvent;
use tern_core::store::Store;
use tern_core::wire::{ConvRef, ErrorCode, ErrorFrame, Frame, Header, PacketBuilder};
use tern_sim::pair::{entries, v2, Pair};

fn config() -> BrokerConfig {
    BrokerConfig {
        validate_addresses: false,
        ..BrokerConfig::default()
    }
}

/// Client `i` sends what it has now; the broker takes it.
fn client_sends(net: &mut Pair, i: usize) {
    let now = net.now;
    let (addr, c) = &mut net.clients[i];
    c.handle_timeout(now);
    while let Some(d) = c.poll_transmit(now) {
        net.broker.handle_datagram(now, *addr, d);
    }
}

/// The broker commits what it staged and fires its timers; returns what it
/// sends, held back from the clients.
fn broker_answers(net: &mut Pair) -> Vec<(SocketAddr, Bytes)> {
    while let Some(c) = net.broker.poll_commit() {
        let result = net.store.commit(&c.batch).map_err(|e| e.to_string());
        net.broker.handle_committed(net.now, c.id, result);
    }
    net.now += std::time::Duration::from_millis(20);
    net.broker.handle_timeout(net.now);
    std::iter::from_fn(|| net.broker.poll_transmit())
        .map(|(to, d)| (to.addr, d))
        .collect()
}

/// What a server that lost our session (or a forger) says in the clear:
/// the client logs in again.
fn unknown_session() -> Bytes {
    let mut pb = PacketBuilder::new(
        Header {
            session_id: 0,
            packet_number: 1,
            version: tern_core::wire::VERSION,
        },
        1200,
    );
    pb.push(&Frame::Error(ErrorFrame {
        code: ErrorCode::UnknownSession as u64,
        frame_type: 0,
        seq: 0,
        reason: String::new(),
    }))
    .expect("fits");
    pb.finish()
}

fn events(net: &mut Pair, i: usize) -> Vec<ClientEvent> {
    std::iter::from_fn(|| net.clients[i].1.poll_event()).collect()
}

#[test]
fn a_late_copy_of_the_answer_of_the_session_left_does_not_stop_the_client() {
    let mut net = Pair::new(config());
    let alice = net.connect(1, 1, |_| {});
    // Alice's login, answered by hand so that a copy of the answer is kept.
    client_sends(&mut net, alice);
    let first: Vec<Bytes> = broker_answers(&mut net)
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    for d in &first {
        net.clients[alice].1.handle_datagram(net.now, d.clone());
    }
    let bob = net.connect(2, 1, |_| {});
    net.settle();
    net.send(alice, 2, 1);
    assert_eq!(
        entries(&net.settle()[bob]),
        vec![1],
        "the first session works"
    );
    // Told to log in again, she sends a LOGIN; before it reaches the
    // server, a copy of her first session's answer reaches her, and she
    // resumes that session.
    net.clients[alice]
        .1
        .handle_datagram(net.now, unknown_session());
    let now = net.now;
    let login: Vec<Bytes> =
        std::iter::from_fn(|| net.clients[alice].1.poll_transmit(now)).collect();
    assert!(!login.is_empty(), "the new LOGIN");
    for d in &first {
        net.clients[alice].1.handle_datagram(net.now, d.clone());
    }
    // Her LOGIN replaces that session: the KICK is her own doing.
    let addr = net.clients[alice].0;
    for d in login {
        net.broker.handle_datagram(net.now, addr, d);
    }
    let ev = net.settle();
    assert!(
        ev[alice]
            .iter()
            .any(|e| matches!(e, ClientEvent::LoggedIn { .. })),
        "{:?}",
        ev[alice]
    );
    net.send(alice, 2, 1);
    assert_eq!(
        entries(&net.settle()[bob]),
        vec![2],
        "she is still logged in, in a session that works"
    );
}

#[test]
fn a_late_ack_of_the_session_left_reports_a_refused_operation_as_refused() {
    let mut net = Pair::new(config());
    let alice = net.connect(1, 1, v2);
    net.settle();
    // A post to a group that does not exist: refused, and the refusal
    // rides ahead of the ACK that releases it.
    net.post(alice, ConvRef::group(77), "hello");
    client_sends(&mut net, alice);
    let ack = broker_answers(&mut net);
    assert!(!ack.is_empty(), "the ACK");
    // That datagram is late: the client has started a new login.
    net.clients[alice]
        .1
        .handle_datagram(net.now, unknown_session());
    for (_, d) in ack {
        net.clients[alice].1.handle_datagram(net.now, d);
    }
    let mut ev = events(&mut net, alice);
    ev.extend(net.settle().swap_remove(alice));
    assert!(
        ev.iter().any(|e| matches!(
            e,
            ClientEvent::Rejected { code, .. } if *code == ErrorCode::NoSuchConversation as u64
        )),
        "{ev:?}"
    );
    assert!(
        !ev.iter().any(|e| matches!(e, ClientEvent::Stored { .. })),
        "a refused post reported stored: {ev:?}"
    );
}
