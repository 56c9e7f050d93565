//! A flood of packets naming a live session, sent from other addresses,
//! counts against those addresses' rate limits, not the session's own
//! (`proto-spec/flows.md`, "Sessionless packets are also rate limited"):
//! before, anyone who read a session id off a header could use up that
//! session's budget and have the client's own packets dropped.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::wire::Header;
use tern_sim::hostile;
use tern_sim::pair::{entries, v2, Pair};

/// A tight per-session budget, so a small flood would use it up.
fn tight() -> BrokerConfig {
    BrokerConfig {
        session_rate: 10.0,
        session_burst: 50.0,
        prelogin_rate: 10.0,
        prelogin_burst: 50.0,
        ..BrokerConfig::default()
    }
}

#[test]
fn a_flood_naming_a_session_from_elsewhere_does_not_starve_it() {
    let mut p = Pair::new(tight());
    let alice = p.connect(1, 1, v2);
    let bob = p.connect(2, 1, v2);
    p.settle();
    p.send(alice, 2, 1);
    p.settle();
    let alice_addr = p.clients[alice].0;
    let (_, sid) = p
        .sent
        .iter()
        .rev()
        .filter(|(from, _)| *from == alice_addr)
        .filter_map(|(_, d)| Header::peek(d))
        .find(|(_, sid)| *sid != 0)
        .expect("Alice sent in her session");
    // Well-formed, empty packets under Alice's session id from elsewhere;
    // old packet numbers, so the session does not follow them.
    let attacker: SocketAddr = "192.0.2.66:4444".parse().unwrap();
    let limited = p.broker.stats().rate_limited;
    for _ in 0..1_000 {
        let junk = Bytes::from(hostile::packet(sid, 1, vec![]));
        p.broker.handle_datagram(p.now, attacker, junk);
    }
    let flood_limited = p.broker.stats().rate_limited - limited;
    assert!(
        flood_limited >= 900,
        "the flood is limited: {flood_limited}"
    );
    // Alice's own packets still pass at once.
    p.send(alice, 2, 1);
    let ev = p.step_for(Duration::from_millis(50));
    assert_eq!(entries(&ev[bob]).len(), 1, "Bob has Alice's second message");
    assert_eq!(
        p.broker.stats().rate_limited - limited,
        flood_limited,
        "none of Alice's packets was dropped"
    );
}
