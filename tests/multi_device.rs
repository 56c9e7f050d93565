//! A user with several devices: every device reads the whole inbox, each
//! entry exactly once; a second login of the same device replaces the first
//! session; counters are kept per device.

mod support;

use std::time::Duration;

use support::*;
use tern::client::{Client, ClientError, Event};
use tern::store::Store;

const ALICE: u64 = 1;
const BOB: u64 = 2;

/// Collects `n` message entries from `c` (skipping other events).
async fn messages(c: &mut Client, n: usize) -> Vec<tern::client::Entry> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next_message(c, 10).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_device_gets_every_message_exactly_once() {
    let d = Daemon::start().await;
    let state = tempfile::tempdir().unwrap();
    let opts3 = || {
        let mut o = d.options(BOB, 3);
        o.state_dir = Some(state.path().join("bob3"));
        o
    };
    let mut bob1 = d.client(BOB, 1).await;
    let mut bob2 = d.client(BOB, 2).await;
    let mut bob3 = Client::connect(opts3()).await.unwrap();
    let alice = d.client(ALICE, 1).await;

    let half = 30u64;
    let sends: Vec<_> = (0..half)
        .map(|i| alice.send(BOB, 9, 0, tagged(ALICE, i)))
        .collect();
    for r in join_all(sends).await {
        assert!(r.unwrap().receiver_online);
    }
    let first3 = messages(&mut bob3, half as usize).await;
    // Device 3 goes offline (its checkpoint is saved in its state folder)
    // while the second half is sent; the other two stay online.
    bob3.close().await;
    let sends: Vec<_> = (half..2 * half)
        .map(|i| alice.send(BOB, 9, 0, tagged(ALICE, i)))
        .collect();
    let last = join_all(sends).await.pop().unwrap().unwrap();
    let mut bob3 = loop {
        match Client::connect(opts3()).await {
            Ok(c) => break c,
            // The previous client may still hold its state folder.
            Err(ClientError::Outbox(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("connect: {e}"),
        }
    };
    let rest3 = messages(&mut bob3, half as usize).await;

    let all1 = messages(&mut bob1, 2 * half as usize).await;
    let all2 = messages(&mut bob2, 2 * half as usize).await;
    let all3: Vec<_> = first3.into_iter().chain(rest3).collect();
    for (name, got) in [
        ("device 1", &all1),
        ("device 2", &all2),
        ("device 3", &all3),
    ] {
        let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=2 * half).collect::<Vec<_>>(),
            "{name}: inbox order"
        );
        for (i, m) in got.iter().enumerate() {
            assert_eq!(untag(&payload_of(m)), (ALICE, i as u64), "{name}");
        }
    }
    // Nothing more: no device got anything twice.
    for c in [&mut bob1, &mut bob2, &mut bob3] {
        let extra: Vec<_> = drain_quiet(c, 200)
            .await
            .into_iter()
            .filter(|e| matches!(e, Event::Entry(_)))
            .collect();
        assert!(extra.is_empty(), "delivered twice: {extra:?}");
    }
    tokio::time::timeout(Duration::from_secs(5), alice.wait_delivered(last.seq))
        .await
        .expect("DELIVERED receipt")
        .unwrap();
    d.stop().await;
}

#[tokio::test]
async fn second_login_of_a_device_replaces_the_first_session() {
    let d = Daemon::start().await;
    let alice = d.client(ALICE, 1).await;
    let mut old = d.client(BOB, 1).await;
    let m1 = alice.send(BOB, 4, 0, tagged(ALICE, 0)).await.unwrap();
    assert_eq!(
        untag(&payload_of(&next_message(&mut old, 5).await)),
        (ALICE, 0)
    );
    tokio::time::timeout(Duration::from_secs(5), alice.wait_delivered(m1.seq))
        .await
        .expect("DELIVERED")
        .unwrap();

    // The same device logs in again (the app restarted elsewhere).
    let mut new = d.client(BOB, 1).await;
    match next_event(&mut new, 5).await {
        Event::Connected { checkpoint, .. } => {
            assert_eq!(checkpoint, 1, "resumes after what the device acknowledged")
        }
        other => panic!("expected Connected, got {other:?}"),
    }

    // The old session is kicked (Replaced) and its client stops for good.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, old.recv()).await {
            Ok(None) => break,
            Ok(Some(Event::Entry(e))) => panic!("the replaced session got {e:?}"),
            Ok(Some(Event::Connected { .. })) => {
                panic!("the replaced client must not log in again (it would kick the new one)")
            }
            Ok(Some(_)) => {}
            Err(_) => panic!("the replaced client was not closed within 5 s"),
        }
    }
    let r = old.send(ALICE, 4, 0, "from the old session".into()).await;
    assert!(
        matches!(r, Err(ClientError::Stopped | ClientError::Closed(_))),
        "the replaced client refuses work: {r:?}"
    );

    // The new session gets what follows, exactly once.
    for i in 1..=5 {
        alice.send(BOB, 4, 0, tagged(ALICE, i)).await.unwrap();
    }
    for i in 1..=5 {
        let m = next_message(&mut new, 5).await;
        assert_eq!((m.seq, untag(&payload_of(&m))), (i + 1, (ALICE, i)));
    }
    old.close().await; // harmless: it has no session any more
    let sent = alice.send(BOB, 4, 0, tagged(ALICE, 6)).await.unwrap();
    assert!(sent.receiver_online, "the new session is still online");
    assert_eq!(next_message(&mut new, 5).await.seq, 7);

    let (_, _, stats) = d.stop_keep().await;
    assert_eq!(stats.broker.replaced, 1, "one session replaced");
    assert_eq!(stats.broker.logins, 3, "alice, bob, bob again");
}

#[tokio::test]
async fn unread_counters_are_kept_per_device() {
    let d = Daemon::start().await;
    // Both of bob's devices are registered and offline.
    d.client(BOB, 1).await.close().await;
    d.client(BOB, 2).await.close().await;
    let alice = d.client(ALICE, 1).await;
    for i in 0..5 {
        alice.send(BOB, 10, 0, tagged(ALICE, i)).await.unwrap();
    }
    for i in 5..8 {
        alice.send(BOB, 20, 0, tagged(ALICE, i)).await.unwrap();
    }

    let manual = |device| {
        let mut o = d.options(BOB, device);
        o.manual_release = true;
        o
    };
    let mut bob1 = Client::connect(manual(1)).await.unwrap();
    let got = messages(&mut bob1, 8).await;
    assert_eq!(got.last().unwrap().seq, 8);

    // Handed to the app but not released: everything is still unread.
    let (convs, end) = bob1.summary().await.unwrap();
    assert_eq!((end.conv_count, end.total_unread, end.head), (2, 8, 8));
    let c10 = &convs[0];
    assert_eq!(
        (c10.conv, c10.unread, c10.first_unread_seq, c10.last_seq),
        (10, 5, 1, 5)
    );
    let preview_seqs: Vec<u64> = c10.previews.iter().map(|p| p.seq).collect();
    assert_eq!(preview_seqs, vec![4, 5], "newest previews, oldest first");
    assert_eq!(&c10.previews[1].head[..], &tagged(ALICE, 4)[..]);
    let c20 = &convs[1];
    assert_eq!(
        (c20.conv, c20.unread, c20.first_unread_seq, c20.last_seq),
        (20, 3, 6, 8)
    );

    // Device 1 reads conversation 10 (entries 1..5).
    bob1.release(5).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (convs, end) = loop {
        let (convs, end) = bob1.summary().await.unwrap();
        if end.total_unread == 3 {
            break (convs, end);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "release not counted: {end:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(end.conv_count, 1);
    assert_eq!((convs[0].conv, convs[0].unread), (20, 3));

    // Device 2 has its own counters: all 8 unread.
    let mut bob2 = Client::connect(manual(2)).await.unwrap();
    let (_, end2) = bob2.summary().await.unwrap();
    assert_eq!((end2.conv_count, end2.total_unread), (2, 8));
    messages(&mut bob2, 8).await;
    bob2.release(8).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, end2) = bob2.summary().await.unwrap();
        if end2.total_unread == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "release not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …and device 1's counters did not move.
    let (_, end1) = bob1.summary().await.unwrap();
    assert_eq!(
        end1.total_unread, 3,
        "device 2 reading does not clear device 1"
    );

    bob1.close().await;
    bob2.close().await;
    let dir = d.stop().await;
    let store = open_store(dir.path());
    let mut cps: Vec<(u32, u64)> = store
        .devices(BOB)
        .unwrap()
        .into_iter()
        .map(|(id, s)| (id, s.checkpoint))
        .collect();
    cps.sort();
    assert_eq!(cps, vec![(1, 5), (2, 8)], "per-device checkpoints");
    let meta = store.inbox_meta(BOB).unwrap().unwrap();
    assert_eq!(meta.trimmed, 5, "trimmed up to the slowest device");
}
