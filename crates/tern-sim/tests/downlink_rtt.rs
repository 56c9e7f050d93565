//! The server's downlink starts from the round trip its login showed
//! (`proto-spec/timers.md`, "downlink's first RTT sample"): with address
//! validation on, the time from the RETRY to the login that echoes its
//! cookie is one round trip. So a lost first push to a device on a 120 ms
//! path is repaired by a tail-loss probe after 2 × 120 + 10 ms, then on its
//! RTO (120 + 4 × 60 + 10 ms), instead of after the blind 500 ms.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::wire::{Frame, Packet};
use tern_sim::pair::Pair;

const ONE_WAY: Duration = Duration::from_millis(60);

/// Bob (user 2) logs in over a path of `ONE_WAY` each way, by hand: every
/// datagram between him and the broker takes that long.
fn bob_logs_in_over_a_slow_path(net: &mut Pair, bob: SocketAddr) -> ClientConn {
    let mut c = ClientConn::new(ClientConfig::new(Pair::token(2, 1)), net.now, 11);
    for _ in 0..4 {
        let outgoing: Vec<Bytes> = std::iter::from_fn(|| c.poll_transmit(net.now)).collect();
        net.now += ONE_WAY;
        let answers: Vec<Bytes> = net
            .broker_round(bob, outgoing)
            .into_iter()
            .filter(|(to, _)| *to == bob)
            .map(|(_, d)| d)
            .collect();
        net.now += ONE_WAY;
        for d in answers {
            c.handle_datagram(net.now, d);
        }
        if std::iter::from_fn(|| c.poll_event()).any(|e| matches!(e, ClientEvent::LoggedIn { .. }))
        {
            return c;
        }
    }
    panic!("Bob did not log in");
}

fn is_push(d: &Bytes) -> bool {
    Packet::decode(d.clone())
        .map(|p| {
            p.frames
                .iter()
                .any(|f| matches!(f, Frame::Entry(_) | Frame::Deliver(_)))
        })
        .unwrap_or(false)
}

#[test]
fn the_first_push_is_repaired_on_the_login_round_trip_not_the_blind_rto() {
    let mut net = Pair::new(BrokerConfig::default());
    assert!(BrokerConfig::default().validate_addresses);
    let bob: SocketAddr = "127.0.0.9:4000".parse().unwrap();
    let _bob = bob_logs_in_over_a_slow_path(&mut net, bob);
    // Alice, on a perfect path, sends Bob one message; every datagram to
    // Bob is lost from here on. Watch when the broker pushes it and when it
    // pushes it again.
    let alice = net.connect(1, 1, |_| {});
    net.settle();
    net.send(alice, 2, 1);
    let mut pushes = Vec::new();
    let mut copy_gap = Duration::ZERO;
    let end = net.now + Duration::from_secs(2);
    while net.now < end && pushes.len() < 3 {
        net.now += Duration::from_millis(1);
        let now = net.now;
        let (addr, c) = &mut net.clients[alice];
        c.handle_timeout(now);
        let out: Vec<Bytes> = std::iter::from_fn(|| c.poll_transmit(now)).collect();
        let addr = *addr;
        for (to, d) in net.broker_round(addr, out) {
            if to == bob {
                // A push's copy 2 ms later (a new sender starts on
                // probation, in copies) is not another attempt.
                let copy = pushes
                    .last()
                    .is_some_and(|&t| now.saturating_since(t) < Duration::from_millis(5));
                if is_push(&d) && !copy {
                    pushes.push(now);
                } else if is_push(&d) && pushes.len() == 1 {
                    copy_gap = now.saturating_since(pushes[0]);
                }
            } else {
                net.clients[alice].1.handle_datagram(now, d);
            }
        }
    }
    assert_eq!(pushes.len(), 3, "pushed, probed, then resent on the RTO");
    let resent = pushes[1].saturating_since(pushes[0]);
    // Then the RTO, SRTT + 4 x RTTVAR + 10 ms = 370 ms, plus at most 10 %
    // jitter on a retransmission.
    let rto = pushes[2].saturating_since(pushes[1]);
    assert!(
        rto >= Duration::from_millis(370) && rto <= Duration::from_millis(408),
        "{rto:?}"
    );
    let resent = resent - copy_gap;
    // SRTT 120 ms: the probe goes 2 x 120 + 10 ms (the peer's ACK delay,
    // one message alone in flight) after the push's last copy.
    assert_eq!(
        resent,
        Duration::from_millis(250),
        "the blind initial RTO would be 500 ms"
    );
}
