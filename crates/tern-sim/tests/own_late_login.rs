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
use tern_core::wire::{Frame, Header, Packet, PacketBuilder};
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

/// `login` again, holding `cookie` instead of the one it had.
fn with_cookie(login: &Bytes, cookie: Bytes) -> Bytes {
    let old = Packet::decode(login.clone()).expect("a clear LOGIN");
    let header = Header {
        session_id: 0,
        ..old.header
    };
    let mut pb = PacketBuilder::new(header, 1200);
    pb.push(&Frame::Cookie(cookie)).unwrap();
    for f in old.frames.iter().filter(|f| matches!(f, Frame::Login(_))) {
        pb.push(f).unwrap();
    }
    pb.pad_to(login.len());
    pb.finish()
}

fn kicked(events: &[ClientEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ClientEvent::Kicked { code: 1 }))
}

#[test]
fn a_session_replaced_by_the_clients_own_late_login_logs_in_again() {
    let (mut net, alice, bob) = pair(true);
    let from = net.clients[alice].0;
    let sent = net.logins_sent(from);
    assert!(
        sent.len() >= 2,
        "a LOGIN, then the echo of the RETRY's cookie"
    );
    // The session hears from Alice: her LOGINs are numbered below that.
    net.send(alice, 2, 1);
    assert_eq!(entries(&net.settle()[bob]), vec![1]);
    // A copy of the first LOGIN draws a fresh RETRY; the client's echo of
    // it, had it still been logging in, arrives now.
    net.broker.handle_datagram(net.now, from, sent[0].clone());
    let cookie = std::iter::from_fn(|| net.broker.poll_transmit())
        .find_map(|(_, d)| {
            Packet::decode(d)
                .ok()?
                .frames
                .into_iter()
                .find_map(|f| match f {
                    Frame::Retry(c) => Some(c),
                    _ => None,
                })
        })
        .expect("a RETRY");
    let late = with_cookie(&sent[sent.len() - 1], cookie);
    net.broker.handle_datagram(net.now, from, late);
    let ev = net.settle();
    assert_eq!(
        net.broker.stats().replaced,
        1,
        "the late LOGIN replaced the session"
    );
    assert!(kicked(&ev[alice]), "{:?}", ev[alice]);
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
