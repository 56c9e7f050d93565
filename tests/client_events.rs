//! The client library's events and the application: an application that
//! never reads events (send-only) never stalls its sends, and an inbox entry
//! counts as processed only once `recv` has returned it.

mod support;

use std::time::Duration;

use support::*;
use tern::client::{Client, ClientError, ClientOptions, Event};

const ALICE: u64 = 1;
const BOB: u64 = 2;

/// An application that only sends and never calls `recv` must be able to
/// send as much as it likes, even while entries keep arriving for it. Here
/// every message goes to the sender's own user, so each one also becomes an
/// inbox entry pushed to this very client: more than the library could ever
/// queue if it took them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_only_client_never_stalls() {
    let d = Daemon::start().await;
    let mut alice = d.client(ALICE, 1).await;
    let n = 5_500u64;
    let chunk = 500u64;
    let mut i = 0;
    while i < n {
        let sends: Vec<_> = (i..(i + chunk).min(n))
            .map(|k| alice.send(ALICE, 1, 0, tagged(ALICE, k)))
            .collect();
        let sent = tokio::time::timeout(Duration::from_secs(30), join_all(sends))
            .await
            .unwrap_or_else(|_| panic!("sends stalled after {i} of {n} completed"));
        for r in sent {
            r.expect("stored");
        }
        i += chunk;
    }

    // Nothing was lost by not reading: every entry comes when asked for,
    // once and in order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut next = 0u64;
    while next < n {
        match tokio::time::timeout_at(deadline, alice.recv()).await {
            Ok(Some(Event::Entry(m))) => {
                assert_eq!(m.seq, next + 1, "inbox order");
                assert_eq!(untag(&payload_of(&m)), (ALICE, next));
                next += 1;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("client stopped"),
            Err(_) => panic!("only {next} of {n} entries read back"),
        }
    }
    alice.close().await;
    d.stop().await;
}

async fn connect_retrying(opts: ClientOptions) -> Client {
    loop {
        // The previous client's state folder may still be closing.
        match Client::connect(opts.clone()).await {
            Ok(c) => return c,
            Err(ClientError::Outbox(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("connect: {e}"),
        }
    }
}

/// Automatic release acknowledges what the application took with `recv`,
/// not what the library queued: entries that arrived but were never read
/// before `close` come again after reopening with the same state folder.
#[tokio::test]
async fn entries_not_read_before_close_are_delivered_again() {
    let d = Daemon::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut opts = d.options(BOB, 1);
    opts.state_dir = Some(state.path().join("bob"));
    let mut bob = Client::connect(opts.clone()).await.unwrap();
    let alice = d.client(ALICE, 1).await;
    let n = 10u64;
    for i in 0..n {
        let sent = alice.send(BOB, 1, 0, tagged(ALICE, i)).await.unwrap();
        assert!(sent.receiver_online, "bob is online: pushed to him");
    }
    // Let the pushes reach bob's library (and any wrong ACK the server).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read = 3u64;
    for i in 0..read {
        let m = next_message(&mut bob, 5).await;
        assert_eq!((m.seq, untag(&payload_of(&m))), (i + 1, (ALICE, i)));
    }
    // The server's counters follow what the application read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, end) = bob.summary().await.unwrap();
        assert!(
            end.total_unread >= n - read,
            "entries the application never read were acknowledged: {end:?}"
        );
        if end.total_unread == n - read {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "reads not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, end) = bob.summary().await.unwrap();
    assert_eq!(end.total_unread, n - read, "still unread on the server");
    // One more, read just before closing: it counts as read too.
    let m = next_message(&mut bob, 5).await;
    assert_eq!(m.seq, read + 1);
    let read = read + 1;
    bob.close().await;

    // Same state folder: delivery resumes after the last entry read.
    let mut bob = connect_retrying(opts).await;
    match next_event(&mut bob, 5).await {
        Event::Connected { checkpoint, .. } => assert_eq!(checkpoint, read),
        other => panic!("expected Connected first, got {other:?}"),
    }
    for i in read..n {
        let m = next_message(&mut bob, 5).await;
        assert_eq!((m.seq, untag(&payload_of(&m))), (i + 1, (ALICE, i)));
    }
    let extra = drain_quiet(&mut bob, 200).await;
    assert!(
        !extra.iter().any(|e| matches!(e, Event::Entry(_))),
        "nothing delivered twice: {extra:?}"
    );
    bob.close().await;
    alice.close().await;
    d.stop().await;
}
