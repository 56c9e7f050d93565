//! A client whose address changes mid-session (a phone moving from Wi-Fi to
//! mobile data, a NAT rebinding) keeps its session: the server finds the
//! session by id and follows the newest packet's address.

mod support;

use std::time::Duration;

use support::*;
use tern::client::{Event, SyncBody};

const ALICE: u64 = 1;
const BOB: u64 = 2;

fn no_session_change(events: &[Event]) {
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Connected { .. } | Event::Disconnected)),
        "the session must survive the address change: {events:?}"
    );
}

#[tokio::test]
async fn rebound_client_keeps_its_session_and_keeps_receiving() {
    let d = Daemon::start().await;
    let alice = d.client(ALICE, 1).await;
    let mut bob = d.client(BOB, 1).await;
    let _ = drain_quiet(&mut bob, 50).await;

    alice.send(BOB, 1, 0, tagged(ALICE, 0)).await.unwrap();
    assert_eq!(
        untag(&payload_of(&next_message(&mut bob, 5).await)),
        (ALICE, 0)
    );

    let mut next = 1u64;
    let rebinds = 3;
    let mut addrs = Vec::new();
    for _ in 0..rebinds {
        addrs.push(bob.rebind().await.expect("rebind"));
        // Bob says something from the new address (any packet will do: here
        // a message of his own), then keeps receiving there.
        let reply = bob.send(ALICE, 1, 0, tagged(BOB, next)).await.unwrap();
        assert!(reply.receiver_online);
        for _ in 0..10 {
            let sent = alice.send(BOB, 1, 0, tagged(ALICE, next)).await.unwrap();
            assert!(sent.receiver_online, "bob is still online");
            next += 1;
        }
        let mut seen = Vec::new();
        let mut got = 0;
        while got < 10 {
            let e = wait_for(&mut bob, 5, &mut seen, |e| {
                matches!(e, Event::Entry(m)
                    if m.from_user == ALICE && matches!(m.body, SyncBody::Message { .. }))
            })
            .await;
            if let Event::Entry(m) = e {
                assert_eq!(untag(&payload_of(&m)), (ALICE, next - 10 + got));
                got += 1;
            }
        }
        no_session_change(&seen);
    }
    addrs.dedup();
    assert_eq!(addrs.len(), rebinds, "each rebind moved to a new port");
    no_session_change(&drain_quiet(&mut bob, 100).await);

    alice.close().await;
    bob.close().await;
    let (_, _, stats) = d.stop_keep().await;
    assert!(
        stats.broker.migrations >= rebinds as u64,
        "the server followed {} address changes, counted {}",
        rebinds,
        stats.broker.migrations
    );
    assert_eq!(stats.broker.logins, 2, "no new login after a rebind");
}

/// The client announces a new address by itself (spec: "A client that
/// notices a network change sends HEARTBEAT at once"), so pushes follow it
/// without waiting for the 15 s heartbeat or for application traffic.
#[tokio::test]
async fn rebound_client_receives_pushes_without_sending_anything() {
    let d = Daemon::start().await;
    let alice = d.client(ALICE, 1).await;
    let mut bob = d.client(BOB, 1).await;
    alice.send(BOB, 1, 0, tagged(ALICE, 0)).await.unwrap();
    next_message(&mut bob, 5).await;
    // Let bob's ACK go out, so nothing is owed when the socket changes.
    tokio::time::sleep(Duration::from_millis(100)).await;

    bob.rebind().await.expect("rebind");
    alice.send(BOB, 1, 0, tagged(ALICE, 1)).await.unwrap();
    let mut seen = Vec::new();
    let m = wait_for(&mut bob, 4, &mut seen, |e| matches!(e, Event::Entry(_))).await;
    match m {
        Event::Entry(m) => assert_eq!(untag(&payload_of(&m)), (ALICE, 1)),
        _ => unreachable!(),
    }
    no_session_change(&seen);
    let (_, _, stats) = d.stop_keep().await;
    assert!(stats.broker.migrations >= 1);
}
