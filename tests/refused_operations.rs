//! Operations the server refuses (an unknown recipient, a payload over the
//! configured limit) get typed errors, use up their sequence, and the
//! accepted operations around them flow on, exactly once and in order.

mod support;

use support::*;
use tern::client::{ClientError, Event};

const ALICE: u64 = 1;
const BOB: u64 = 2;

#[tokio::test]
async fn refused_operations_get_typed_errors_and_the_flow_goes_on() {
    let d = Daemon::start_with(|c| {
        c.limits.accept_unknown_recipients = false;
        c.limits.max_payload = 100;
    })
    .await;
    d.client(BOB, 1).await.close().await; // bob exists
    let alice = d.client(ALICE, 1).await;

    let r = alice.send(999, 1, 0, "to nobody".into()).await;
    assert!(
        matches!(r, Err(ClientError::Rejected(7))),
        "unknown recipient: {r:?}"
    );
    let ok1 = alice.send(BOB, 1, 0, tagged(ALICE, 0)).await.unwrap();
    let r = alice.send(BOB, 1, 0, vec![b'x'; 200].into()).await;
    assert!(
        matches!(r, Err(ClientError::Rejected(8))),
        "payload over the configured limit: {r:?}"
    );
    // Refusals and successes interleaved in one pipelined burst.
    let mut ops = Vec::new();
    for i in 1..=6u64 {
        let to = if i % 3 == 0 { 900 + i } else { BOB };
        ops.push(alice.send(to, 1, 0, tagged(ALICE, i)));
    }
    let results = join_all(ops).await;
    for (i, r) in (1..=6u64).zip(&results) {
        if i % 3 == 0 {
            assert!(matches!(r, Err(ClientError::Rejected(7))), "op {i}: {r:?}");
        } else {
            assert!(r.is_ok(), "op {i}: {r:?}");
        }
    }
    assert!(ok1.seq >= 2, "the refused SEND used up its sequence");

    // Bob gets exactly the accepted messages, in order.
    let mut bob = d.client(BOB, 1).await;
    let want = [0u64, 1, 2, 4, 5];
    for (k, i) in want.iter().enumerate() {
        let m = next_message(&mut bob, 5).await;
        assert_eq!((m.seq, untag(&payload_of(&m))), (k as u64 + 1, (ALICE, *i)));
    }
    let extra: Vec<_> = drain_quiet(&mut bob, 200)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::Entry(_)))
        .collect();
    assert!(extra.is_empty(), "refused messages were stored: {extra:?}");
    alice.close().await;
    bob.close().await;
    d.stop().await;
}
