//! A client whose login took more than one LOGIN (the echo of a RETRY's
//! cookie, a retransmission) may later see its session replaced by one of
//! its own LOGINs arriving late, holding a cookie or address token younger
//! than the session, which the server takes for a new login
//! (`proto-spec/flows.md`, "Login", step 3). That client logs in again; a
//! client that sent one LOGIN still stops on KICK `Replaced`, since then
//! another instance of its device is active (`proto-spec/state-machines.md`).
//! Found by simulator seed 845 of `client_restarts_from_durable_state`.

use std::net::SocketAddr;

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::wire::{Frame, Packet};
use tern_sim::pair::{entries, Pair};

fn pair(validate_addresses: bool) -> (Pair, usize, usize) {
    let mut net = Pair::new(BrokerConfig {
        validate_addresses,
        ..BrokerConfig::default()
    });
    let alice = net.connect(1, 1, |_| {});
    let bob = net.connect(2, 1, |_| {});
    net.settle();
    (net, alice, bob)
}

fn kicked(events: &[ClientEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ClientEvent::Kicked { code: 1 }))
}

/// Client `i`'s datagrams due now.
fn from_client(net: &mut Pair, i: usize) -> Vec<Bytes> {
    let now = net.now;
    let c = &mut net.clients[i].1;
    c.handle_timeout(now);
    std::iter::from_fn(|| c.poll_transmit(now)).collect()
}

/// Hands `datagrams` from client `i` to the broker; returns its answers
/// to that client (it sends no one else anything here).
fn to_broker(net: &mut Pair, i: usize, datagrams: Vec<Bytes>) -> Vec<Bytes> {
    let from = net.clients[i].0;
    let sent = net.broker_round(from, datagrams);
    assert!(
        sent.iter().all(|(to, _)| *to == from),
        "only {from} is answered"
    );
    sent.into_iter().map(|(_, d)| d).collect()
}

fn is_retry(d: &Bytes) -> bool {
    Packet::decode(d.clone()).is_ok_and(|p| p.frames.iter().any(|f| matches!(f, Frame::Retry(_))))
}

#[test]
fn a_session_replaced_by_the_clients_own_late_login_logs_in_again() {
    let mut net = Pair::new(BrokerConfig::default());
    assert!(BrokerConfig::default().validate_addresses);
    let bob = net.connect(2, 1, |_| {});
    net.settle();
    let alice = net.connect(1, 1, |_| {});
    let step = std::time::Duration::from_millis(1);
    // LOGIN, RETRY (cookie 1), and the echo, which opens the session; its
    // LOGIN_OK is held back.
    let first = from_client(&mut net, alice);
    let retry = to_broker(&mut net, alice, first.clone());
    assert!(retry.iter().any(is_retry));
    for d in retry {
        net.clients[alice].1.handle_datagram(net.now, d);
    }
    let echo = from_client(&mut net, alice);
    let login_ok = to_broker(&mut net, alice, echo);
    assert_eq!(net.broker.session_count(), 2, "Alice's session is open");
    // A late copy of the first LOGIN draws a second RETRY (cookie 2, younger
    // than the session), which reaches Alice while she still waits.
    net.now += std::time::Duration::from_millis(300);
    let retry2 = to_broker(&mut net, alice, vec![first[0].clone()]);
    assert!(retry2.iter().any(is_retry));
    for d in retry2 {
        net.clients[alice].1.handle_datagram(net.now, d);
    }
    let late_echo = from_client(&mut net, alice);
    assert!(!late_echo.is_empty(), "Alice echoes cookie 2");
    // The first LOGIN_OK arrives: Alice is in her session and sends in it.
    net.now += step;
    for d in login_ok {
        net.clients[alice].1.handle_datagram(net.now, d);
    }
    net.send(alice, 2, 1);
    assert_eq!(entries(&net.settle()[bob]), vec![1]);
    // Her echo of cookie 2 arrives last: a new login, by step 3.
    let replaced = net.broker.stats().replaced;
    let answers = to_broker(&mut net, alice, late_echo);
    assert_eq!(
        net.broker.stats().replaced,
        replaced + 1,
        "the late echo replaced the session"
    );
    for d in answers {
        net.clients[alice].1.handle_datagram(net.now, d);
    }
    let ev: Vec<ClientEvent> = std::iter::from_fn(|| net.clients[alice].1.poll_event()).collect();
    assert!(kicked(&ev), "{ev:?}");
    net.send(alice, 2, 1);
    let ev = net.settle();
    assert_eq!(
        entries(&ev[bob]),
        vec![2],
        "Alice logged in again and sends"
    );
}

#[test]
fn a_client_that_sent_one_login_stops_when_another_instance_replaces_it() {
    let (mut net, alice, _) = pair(false);
    let from = net.clients[alice].0;
    assert_eq!(net.logins_sent(from).len(), 1, "one LOGIN, no RETRY");
    // Another instance of the same device, on another socket.
    let other: SocketAddr = "127.0.0.1:45000".parse().unwrap();
    net.clients.push((
        other,
        ClientConn::new(ClientConfig::new(Pair::token(1, 1)), net.now, 99),
    ));
    let mut ev = net.settle();
    for _ in 0..5 {
        for (all, more) in ev.iter_mut().zip(net.settle()) {
            all.extend(more);
        }
    }
    assert!(kicked(&ev[alice]), "{:?}", ev[alice]);
    assert!(
        !ev[alice]
            .iter()
            .any(|e| matches!(e, ClientEvent::LoggedIn { .. } | ClientEvent::Disconnected)),
        "the first instance does not fight back: {:?}",
        ev[alice]
    );
    assert!(ev[2]
        .iter()
        .any(|e| matches!(e, ClientEvent::LoggedIn { .. })));
}
