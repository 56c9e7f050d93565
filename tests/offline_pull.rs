//! Offline delivery: a message to a user with no device online is stored and
//! pseudo-ACKed; a device that comes back to a backlog larger than the push
//! limit pulls it in pages, each pull acknowledging the page before; and
//! nothing is deleted before every registered device has acknowledged it.

mod support;

use std::time::Duration;

use support::*;
use tern::client::{Client, Event};
use tern::store::Store;
use tern_core::wire::limits::PUSH_BACKLOG_LIMIT;

const ALICE: u64 = 1;
const BOB: u64 = 2;
const CONV: u64 = 5;

/// Sends `n` tagged messages from `c` to `to`, pipelined; all must be
/// pseudo-ACKed (the receiver has no device online).
async fn send_offline(c: &Client, to: u64, from: u64, range: std::ops::Range<u64>) -> Vec<u64> {
    let sends: Vec<_> = range
        .map(|i| c.send(to, CONV, 0, tagged(from, i)))
        .collect();
    let mut seqs = Vec::new();
    for r in join_all(sends).await {
        let sent = r.expect("stored");
        assert!(
            !sent.receiver_online,
            "no device of the receiver is online: the ACK must be a pseudo-ACK"
        );
        seqs.push(sent.seq);
    }
    seqs
}

/// Registers `device` of `user` (logs in once, then logs out).
async fn register(d: &Daemon, user: u64, device: u32) {
    d.client(user, device).await.close().await;
}

/// Polls the summary until no unread message is left for this device, so we
/// know the server has processed its acknowledgements.
async fn wait_all_acknowledged(c: &Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, end) = c.summary().await.expect("summary");
        if end.total_unread == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server still counts {} unread after 5 s",
            end.total_unread
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn offline_backlog_is_pseudo_acked_pulled_in_pages_and_kept_for_every_device() {
    let d = Daemon::start_with(|c| c.limits.page_entries = 25).await;
    // Bob has two registered devices, both offline.
    register(&d, BOB, 1).await;
    register(&d, BOB, 2).await;
    let alice = d.client(ALICE, 1).await;

    let n = 100u64;
    assert!(n > PUSH_BACKLOG_LIMIT);
    let seqs = send_offline(&alice, BOB, ALICE, 0..n).await;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "uplink sequences 1..n");

    // Device 1 comes back: the backlog exceeds the push limit, so nothing is
    // pushed; the client is told it is in pull mode.
    let mut o = d.options(BOB, 1);
    o.auto_pull = false;
    let mut bob1 = Client::connect(o).await.unwrap();
    match next_event(&mut bob1, 5).await {
        Event::Connected {
            head,
            checkpoint,
            pull_mode,
            ..
        } => {
            assert_eq!((head, checkpoint, pull_mode), (n, 0, true));
        }
        other => panic!("expected Connected first, got {other:?}"),
    }
    let early = drain_quiet(&mut bob1, 300).await;
    assert!(
        !early.iter().any(|e| matches!(e, Event::Entry(_))),
        "pull mode: nothing is pushed before the client pulls: {early:?}"
    );

    // Counters first: one conversation with every message unread.
    let (convs, end) = bob1.summary().await.unwrap();
    assert_eq!((end.conv_count, end.total_unread, end.head), (1, n, n));
    assert_eq!(convs.len(), 1);
    assert_eq!(
        (convs[0].conv, convs[0].unread, convs[0].first_unread_seq),
        (CONV, n, 1)
    );

    // Content on demand: pages of 25, in order, the last one flagged `end`.
    bob1.pull().await.unwrap();
    let mut entries = Vec::new();
    let mut pages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = tokio::time::timeout_at(deadline, bob1.recv())
            .await
            .unwrap_or_else(|_| panic!("pull did not finish; pages so far {pages:?}"))
            .expect("client running");
        match e {
            Event::Entry(m) => entries.push(m),
            Event::PageEnd { last, end } => {
                assert!(pages.len() < 20, "pages do not progress: {pages:?}");
                pages.push((last, end));
                if end {
                    break;
                }
            }
            other => panic!("unexpected event while pulling: {other:?}"),
        }
    }
    assert_eq!(
        pages,
        vec![(25, false), (50, false), (75, false), (100, true)],
        "pages of 25 entries; only the last says end"
    );
    assert_eq!(entries.len() as u64, n, "every entry exactly once");
    for (i, m) in entries.iter().enumerate() {
        assert_eq!(m.seq, i as u64 + 1, "inbox order");
        assert_eq!(untag(&payload_of(m)), (ALICE, i as u64));
        assert_eq!(
            (m.from_user, m.from_device, m.from_seq),
            (ALICE, 1, i as u64 + 1)
        );
    }

    // The backlog is drained: the session now pushes.
    let live = alice.send(BOB, CONV, 0, tagged(ALICE, n)).await.unwrap();
    assert!(live.receiver_online, "device 1 is online now");
    let m = next_message(&mut bob1, 5).await;
    assert_eq!((m.seq, untag(&payload_of(&m))), (n + 1, (ALICE, n)));
    tokio::time::timeout(Duration::from_secs(5), alice.wait_delivered(live.seq))
        .await
        .expect("DELIVERED receipt for the pulled and pushed messages")
        .unwrap();
    wait_all_acknowledged(&bob1).await;
    bob1.close().await;
    alice.close().await;

    // Device 2 has acknowledged nothing: every entry is still stored.
    let (dir, cfg, _) = d.stop_keep().await;
    {
        let store = open_store(dir.path());
        let meta = store.inbox_meta(BOB).unwrap().expect("bob's inbox exists");
        assert_eq!(meta.head, n + 1);
        assert_eq!(meta.trimmed, 0, "device 2 has not acknowledged anything");
        let mut devices = store.devices(BOB).unwrap();
        devices.sort_by_key(|(id, _)| *id);
        let cps: Vec<(u32, u64)> = devices.iter().map(|(id, s)| (*id, s.checkpoint)).collect();
        assert_eq!(cps, vec![(1, n + 1), (2, 0)]);
        let stored = stored_entries(&store, BOB);
        assert_eq!(stored.len() as u64, n + 1, "nothing deleted on read");
    }

    // Device 2 logs in later and gets everything, pulled automatically.
    let d = Daemon::start_in(dir, cfg).await;
    let mut bob2 = Client::connect(d.options(BOB, 2)).await.unwrap();
    let mut got = Vec::new();
    let mut page_ends = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() as u64 <= n {
        match tokio::time::timeout_at(deadline, bob2.recv()).await {
            Ok(Some(Event::Entry(m))) => got.push(m),
            Ok(Some(Event::PageEnd { .. })) => page_ends += 1,
            Ok(Some(Event::Connected { pull_mode, .. })) => assert!(pull_mode),
            Ok(Some(other)) => panic!("unexpected event {other:?}"),
            Ok(None) => panic!("client stopped"),
            Err(_) => panic!("device 2 got only {} entries", got.len()),
        }
    }
    // 101 entries in pages of 25 (the last PageEnd may still be queued).
    assert!(page_ends >= 4, "device 2 pulled in pages ({page_ends})");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.seq, i as u64 + 1);
        assert_eq!(untag(&payload_of(m)), (ALICE, i as u64));
    }
    wait_all_acknowledged(&bob2).await;
    let extra = drain_quiet(&mut bob2, 200).await;
    assert!(
        !extra.iter().any(|e| matches!(e, Event::Entry(_))),
        "nothing delivered twice: {extra:?}"
    );
    bob2.close().await;

    // Every registered device has passed every entry: now they are trimmed.
    let dir = d.stop().await;
    let store = open_store(dir.path());
    let meta = store.inbox_meta(BOB).unwrap().unwrap();
    assert_eq!((meta.head, meta.trimmed), (n + 1, n + 1));
    assert!(
        stored_entries(&store, BOB).is_empty(),
        "all entries deleted"
    );
}

#[tokio::test]
async fn unacknowledged_entries_survive_and_are_delivered_again() {
    // Push mode (small backlog), manual release: the app takes entries but
    // acknowledges only some of them.
    let d = Daemon::start().await;
    register(&d, BOB, 1).await;
    let alice = d.client(ALICE, 1).await;
    let n = 40u64;
    send_offline(&alice, BOB, ALICE, 0..n).await;
    alice.close().await;

    let mut o = d.options(BOB, 1);
    o.manual_release = true;
    let mut bob = Client::connect(o).await.unwrap();
    let mut got = Vec::new();
    while (got.len() as u64) < n {
        got.push(next_message(&mut bob, 5).await.seq);
    }
    assert_eq!(got, (1..=n).collect::<Vec<_>>());
    let released = 15;
    bob.release(released).await.unwrap();
    // The server's counters follow the acknowledgement, not the delivery.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, end) = bob.summary().await.unwrap();
        if end.total_unread == n - released {
            break;
        }
        assert!(
            end.total_unread > n - released,
            "the server counts entries the app never released as read: {end:?}"
        );
        assert!(tokio::time::Instant::now() < deadline, "release not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give any (wrong) acknowledgement of unreleased entries time to arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(bob);

    let (dir, cfg, _) = d.stop_keep().await;
    {
        let store = open_store(dir.path());
        let meta = store.inbox_meta(BOB).unwrap().unwrap();
        assert_eq!(meta.trimmed, released, "only released entries are deleted");
        let devices = store.devices(BOB).unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].1.checkpoint, released);
        let left: Vec<u64> = stored_entries(&store, BOB).iter().map(|e| e.seq).collect();
        assert_eq!(left, (released + 1..=n).collect::<Vec<_>>());
    }

    // A device that did not acknowledge gets them again (here: a fresh app
    // with no saved state resumes at the oldest entry still stored).
    let d = Daemon::start_in(dir, cfg).await;
    let mut bob = Client::connect(d.options(BOB, 1)).await.unwrap();
    for seq in released + 1..=n {
        let m = next_message(&mut bob, 5).await;
        assert_eq!(m.seq, seq);
        assert_eq!(untag(&payload_of(&m)), (ALICE, seq - 1));
    }
    bob.close().await;
    d.stop().await;
}

/// A client that releases entries itself (`manual_release`) and pulls a
/// large backlog must not loop on the first page.
#[tokio::test]
async fn manual_release_pull_progresses_page_by_page() {
    let d = Daemon::start_with(|c| c.limits.page_entries = 25).await;
    register(&d, BOB, 1).await;
    let alice = d.client(ALICE, 1).await;
    let n = 80u64;
    send_offline(&alice, BOB, ALICE, 0..n).await;

    let mut o = d.options(BOB, 1);
    o.manual_release = true;
    o.auto_pull = false;
    let mut bob = Client::connect(o).await.unwrap();
    bob.pull().await.unwrap();
    let mut pages = Vec::new();
    let mut entries = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, bob.recv()).await {
            Ok(Some(Event::Entry(_))) => entries += 1,
            Ok(Some(Event::PageEnd { last, end })) => {
                assert!(
                    pages.last().is_none_or(|&p| p < last),
                    "page ending at {last} came again while the app was still storing it (pages so far {pages:?})"
                );
                pages.push(last);
                // The app stores the page (takes a while), then releases it.
                tokio::time::sleep(Duration::from_millis(100)).await;
                bob.release(last).await.unwrap();
                if end {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("client stopped"),
            Err(_) => panic!("pull did not finish: {pages:?}"),
        }
    }
    assert_eq!(entries, n);
    assert_eq!(pages.last(), Some(&n));
    d.stop().await;
}
