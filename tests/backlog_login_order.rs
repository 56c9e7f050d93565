//! A device logs in to a backlog while other users keep sending to it: the
//! backlog and the live messages are one inbox timeline, so every message
//! arrives exactly once, in inbox order, and in each sender's order,
//! whether the backlog is pulled (large) or pushed (small).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::*;
use tern::client::{Client, Entry, Event};

const BOB: u64 = 2;
const SENDERS: [u64; 2] = [1, 3];

/// Sends `range` from `c`, one at a time with a short pause, so the sends
/// spread over the receiver's login. Returns (index, receiver_online).
async fn trickle(c: Client, from: u64, range: std::ops::Range<u64>) -> (Client, Vec<bool>) {
    let mut online = Vec::new();
    for i in range {
        let sent = c.send(BOB, from, 0, tagged(from, i)).await.expect("stored");
        online.push(sent.receiver_online);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (c, online)
}

/// Checks the entries a device received: inbox sequences 1, 2, 3… with no
/// gap and no repeat, and each sender's messages exactly once and in order.
fn check_timeline(entries: &[Entry], per_sender: u64) {
    let mut next_index: HashMap<u64, u64> = HashMap::new();
    let mut last_from_seq: HashMap<u64, u64> = HashMap::new();
    for (i, m) in entries.iter().enumerate() {
        assert_eq!(
            m.seq,
            i as u64 + 1,
            "inbox sequences strictly increase by 1 (entry #{i})"
        );
        let (from, idx) = untag(&payload_of(m));
        assert_eq!(from, m.from_user);
        let want = next_index.entry(from).or_insert(0);
        assert_eq!(
            idx, *want,
            "sender {from}: message {idx} arrived, {want} expected"
        );
        *want += 1;
        let prev = last_from_seq.insert(from, m.from_seq).unwrap_or(0);
        assert!(m.from_seq > prev, "sender {from}: message ids increase");
    }
    for s in SENDERS {
        assert_eq!(next_index.get(&s), Some(&per_sender), "sender {s} complete");
    }
}

async fn login_during_traffic(backlog_per_sender: u64, live_per_sender: u64, expect_pull: bool) {
    let d = Daemon::start_with(|c| c.limits.page_entries = 40).await;
    d.client(BOB, 1).await.close().await; // registered, offline

    let mut senders = Vec::new();
    for s in SENDERS {
        senders.push(d.client(s, 1).await);
    }
    // The backlog: pseudo-ACKed, bob is offline.
    let mut all = Vec::new();
    for (c, s) in senders.iter().zip(SENDERS) {
        for i in 0..backlog_per_sender {
            all.push(c.send(BOB, s, 0, tagged(s, i)));
        }
    }
    for r in join_all(all).await {
        assert!(!r.expect("stored").receiver_online, "pseudo-ACK");
    }

    // Live traffic starts, and bob logs in while it flows.
    let total = backlog_per_sender + live_per_sender;
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(SENDERS)
        .map(|(c, s)| tokio::spawn(trickle(c, s, backlog_per_sender..total)))
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut bob = Client::connect(d.options(BOB, 1)).await.unwrap();

    let mut entries = Vec::new();
    let mut pull_mode = None;
    let want = total * SENDERS.len() as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while (entries.len() as u64) < want {
        match tokio::time::timeout_at(deadline, bob.recv()).await {
            Ok(Some(Event::Entry(m))) => entries.push(m),
            Ok(Some(Event::Connected { pull_mode: p, .. })) => {
                assert!(pull_mode.is_none(), "a single login");
                pull_mode = Some(p);
            }
            Ok(Some(Event::Disconnected)) => panic!("session lost"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("client stopped"),
            Err(_) => panic!("only {} of {want} entries within 20 s", entries.len()),
        }
    }
    assert_eq!(pull_mode, Some(expect_pull), "downlink mode at login");
    let mut online_later = 0;
    for t in tasks {
        let (c, online) = t.await.unwrap();
        online_later += online.iter().filter(|o| **o).count();
        c.close().await;
    }
    assert!(online_later > 0, "some live sends found bob online");
    // Nothing more arrives: no duplicates after the expected count.
    let extra: Vec<_> = drain_quiet(&mut bob, 300)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::Entry(_)))
        .collect();
    assert!(extra.is_empty(), "delivered twice: {extra:?}");
    check_timeline(&entries, total);
    bob.close().await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_backlog_is_pulled_while_new_messages_arrive_once_and_in_order() {
    // 2 × 120 = 240 entries: above the push limit of 64, so the device pulls
    // pages of 40 while 2 × 60 live messages are appended.
    login_during_traffic(120, 60, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_backlog_is_pushed_while_new_messages_arrive_once_and_in_order() {
    // 2 × 20 = 40 entries: pushed at login, live messages follow in order.
    login_during_traffic(20, 60, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_logins_during_traffic_lose_and_repeat_nothing() {
    // The same device logs in again and again (a flaky phone) with its
    // saved checkpoint while messages keep arriving.
    let d = Daemon::start_with(|c| c.limits.page_entries = 40).await;
    let state = tempfile::tempdir().unwrap();
    let opts = || {
        let mut o = d.options(BOB, 1);
        o.state_dir = Some(state.path().join("bob"));
        // The app releases each entry once it has it, so entries still
        // queued in the library when it goes away are not acknowledged.
        o.manual_release = true;
        o
    };
    Client::connect(opts()).await.unwrap().close().await;
    let mut senders = Vec::new();
    for s in SENDERS {
        senders.push(d.client(s, 1).await);
    }
    let backlog = 80u64;
    let mut all = Vec::new();
    for (c, s) in senders.iter().zip(SENDERS) {
        for i in 0..backlog {
            all.push(c.send(BOB, s, 0, tagged(s, i)));
        }
    }
    for r in join_all(all).await {
        r.expect("stored");
    }
    let total = backlog + 120;
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(SENDERS)
        .map(|(c, s)| tokio::spawn(trickle(c, s, backlog..total)))
        .collect();

    let want = total * SENDERS.len() as u64;
    let mut entries: Vec<Entry> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let mut logins = 0;
    while (entries.len() as u64) < want {
        logins += 1;
        let mut bob = loop {
            // The previous client's state folder may still be closing.
            match Client::connect(opts()).await {
                Ok(c) => break c,
                Err(tern::client::ClientError::Outbox(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("connect: {e}"),
            }
        };
        // Take a few entries, then go away (logout) mid-stream.
        let quota = 37;
        let mut taken = 0;
        while taken < quota && (entries.len() as u64) < want {
            match tokio::time::timeout_at(deadline, bob.recv()).await {
                Ok(Some(Event::Entry(m))) => {
                    bob.release(m.seq).await.unwrap();
                    entries.push(m);
                    taken += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("client stopped"),
                Err(_) => panic!("only {} of {want} entries", entries.len()),
            }
        }
        bob.close().await;
    }
    assert!(logins > 3, "the device logged in several times ({logins})");
    for t in tasks {
        let (c, _) = t.await.unwrap();
        c.close().await;
    }
    check_timeline(&entries, total);
    d.stop().await;
}
