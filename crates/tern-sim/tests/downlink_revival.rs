//! A downlink that gave up (its retry budget ran out while every datagram
//! to the device was lost) starts again on the device's next packet, not
//! only on a HEARTBEAT (`proto-spec/flows.md`, downlink): a client that
//! keeps asking for lists and history pages is never silent long enough to
//! send one. Found by the chaos run: a device stayed without its entries
//! through four settling rounds of list and history requests.

use std::time::Duration;

use tern_core::broker::BrokerConfig;
use tern_core::store::Store;
use tern_sim::pair::{entries, v2, Pair};

#[test]
fn a_request_from_the_device_revives_a_downlink_that_gave_up() {
    // Heartbeats far apart: within this test the device sends none.
    let cfg = BrokerConfig {
        heartbeat: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(1800),
        ..BrokerConfig::default()
    };
    let mut p = Pair::new(cfg);
    let alice = p.connect(1, 1, v2);
    let bob = p.connect(2, 1, v2);
    p.settle();
    p.send(alice, 2, 1);
    // Every datagram to Bob is lost until his downlink gives up; Bob's
    // process sends nothing meanwhile.
    let bob_addr = p.clients[bob].0;
    for _ in 0..2_000 {
        if p.broker.stats().unreachable > 0 {
            break;
        }
        p.now += Duration::from_millis(100);
        let now = p.now;
        let (addr, conn) = &mut p.clients[alice];
        conn.handle_timeout(now);
        while let Some(d) = conn.poll_transmit(now) {
            p.broker.handle_datagram(now, *addr, d);
        }
        p.broker.handle_timeout(now);
        while let Some(c) = p.broker.poll_commit() {
            let r = p.store.commit(&c.batch).map_err(|e| e.to_string());
            p.broker.handle_committed(now, c.id, r);
        }
        while let Some((to, d)) = p.broker.poll_transmit() {
            if to.addr != bob_addr {
                let now = p.now;
                p.clients[alice].1.handle_datagram(now, d);
            }
        }
    }
    assert_eq!(p.broker.stats().unreachable, 1, "Bob's downlink gave up");
    // Bob asks for his conversation list: no HEARTBEAT, just a request.
    let now = p.now;
    assert!(p.clients[bob].1.request_list(now, 0, 0));
    let ev = p.settle();
    assert_eq!(
        entries(&ev[bob]),
        vec![1],
        "the entry arrives after the request, not at a heartbeat"
    );
}
