//! Two devices of one user and a peer talk in one conversation while the
//! real `ternd` is SIGKILLed and restarted on the same data folder. Then
//! (after a recall, a deletion for one user and a read position set on
//! one device) both devices agree on the conversation's history (the same
//! records in the same order, served from each device's local history),
//! on the unread count and on the conversation list; the read position and
//! the deletion reached the other device through the sync timeline; the
//! peer's history is the same one; a device that joins late sees it all.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::process::{self, RealDaemon};
use tern::client::{
    Change, Client, ClientOptions, ConvRef, DeleteScope, Event, ListItem, Record, RecordBody,
};

const ALICE: u64 = 1;
const BOB: u64 = 2;
/// Messages each sender posts at most.
const PER_SENDER: u64 = 80;
/// Acknowledged posts per sender before the crash, and again after it.
const BEFORE_KILL: u64 = 15;
const ENV: &[(&str, &str)] = &[
    ("TERN_TIMERS_HEARTBEAT", "1s"),
    ("TERN_TIMERS_IDLE_TIMEOUT", "3s"),
];

fn deadline(secs: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(secs)
}

async fn connect(
    d: &RealDaemon,
    data: &std::path::Path,
    user: u64,
    dev: u32,
    state: Option<std::path::PathBuf>,
) -> Client {
    let mut o = ClientOptions::new(d.addr, process::token(data, user, dev));
    o.seal_key = d.seal_key;
    o.state_dir = state;
    Client::connect(o).await.expect("client connects")
}

/// Posts `u{user}d{dev}:{i}` one at a time until stopped or done; returns
/// the client and the uplink sequences the server acknowledged, in order.
async fn post_loop(
    c: Client,
    to: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> (Client, Vec<u64>) {
    let (user, dev) = c.identity();
    let mut seqs = Vec::new();
    for i in 0..PER_SENDER {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let text = Bytes::from(format!("u{user}d{dev}:{i}"));
        let sent = c.post(ConvRef::direct(to), 0, 0, text).await;
        seqs.push(
            sent.unwrap_or_else(|e| panic!("{user}/{dev}: post {i}: {e}"))
                .seq,
        );
        acked.fetch_add(1, Ordering::Relaxed);
    }
    (c, seqs)
}

/// The whole history of `conv`, page by page, newest first, as `c`'s
/// library serves it.
async fn walk(c: &Client, conv: ConvRef) -> Vec<Record> {
    let mut out = Vec::new();
    let mut before = 0;
    loop {
        let p = c.history(conv, before, 64).await.expect("history page");
        let mut recs = p.records;
        recs.append(&mut out);
        out = recs;
        if p.end.low <= p.end.floor + 1 || p.end.low > p.end.high {
            return out;
        }
        before = p.end.low;
    }
}

/// Reads events until `done` holds for what `c` holds and saw, or panics.
async fn converge(
    c: &mut Client,
    conv: ConvRef,
    last_seq: u64,
    seen: &mut Vec<tern::client::Entry>,
    done: impl Fn(&[tern::client::Entry]) -> bool,
) {
    let end = deadline(30);
    loop {
        let held = c.held(conv).await.unwrap().unwrap_or_default();
        if held.last_seq >= last_seq && held.missing().is_empty() && done(seen) {
            return;
        }
        match tokio::time::timeout_at(end, c.recv()).await {
            Ok(Some(Event::Entry(e))) => seen.push(e),
            Ok(Some(_)) => {}
            Ok(None) => panic!("client stopped"),
            Err(_) => panic!("{:?} did not converge: held {held:?}", c.identity()),
        }
    }
}

/// A list item without the preview's age, which depends on when it was
/// asked for.
fn settled(mut i: ListItem) -> ListItem {
    if let Some(p) = &mut i.preview {
        p.age_s = 0;
    }
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_devices_and_a_peer_agree_after_the_daemon_is_killed_mid_traffic() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("ternd.log");
    let daemon =
        RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), ENV, &log).expect("ternd starts");
    let addr = daemon.addr;
    let (with_bob, with_alice) = (ConvRef::direct(BOB), ConvRef::direct(ALICE));
    let mut alice1 = connect(&daemon, &data, ALICE, 1, Some(tmp.path().join("a1"))).await;
    let alice2 = connect(&daemon, &data, ALICE, 2, Some(tmp.path().join("a2"))).await;
    let bob = connect(&daemon, &data, BOB, 1, None).await;
    // Alice's first device shows the conversation: it has read it before.
    alice1.post(with_bob, 0, 0, "hi".into()).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<_> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let tasks = vec![
        tokio::spawn(post_loop(bob, ALICE, stop.clone(), counters[0].clone())),
        tokio::spawn(post_loop(alice2, BOB, stop.clone(), counters[1].clone())),
    ];
    // Alice's first device keeps reading while the others post.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop_now(&seen) {
            match tokio::time::timeout(Duration::from_millis(100), alice1.recv()).await {
                Ok(Some(Event::Entry(e))) => seen.push(e),
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => panic!("alice's first device stopped"),
            }
        }
        (alice1, seen)
    });
    fn stop_now(seen: &[tern::client::Entry]) -> bool {
        seen.iter().any(|e| matches!(&e.body, tern::client::SyncBody::Message { payload, .. } if payload == "stop"))
    }
    let wait_acks = |n: u64| {
        let counters = counters.clone();
        async move {
            let end = deadline(30);
            while counters.iter().any(|c| c.load(Ordering::Relaxed) < n) {
                assert!(tokio::time::Instant::now() < end, "posts stalled below {n}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_acks(BEFORE_KILL).await;
    daemon.kill();
    let daemon = tokio::task::spawn_blocking({
        let (data, log) = (data.clone(), log.clone());
        move || RealDaemon::spawn_at(&data, addr, ENV, &log)
    })
    .await
    .unwrap();
    let after: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    wait_acks(after[0].max(after[1]) + BEFORE_KILL).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked: HashMap<(u64, u32), Vec<u64>> = HashMap::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (c, seqs) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("posts resolve")
            .unwrap();
        acked.insert(c.identity(), seqs);
        clients.push(c);
    }
    let alice2 = clients.pop().unwrap();
    let bob = clients.pop().unwrap();
    bob.post(with_alice, 0, 0, "stop".into()).await.unwrap();
    let (mut alice1, mut seen1) = reader.await.unwrap();
    // Newer than anything Alice sent (sending moves her read position).
    let mut tail = Vec::new();
    for t in ["tail1", "tail2", "tail3"] {
        tail.push(bob.post(with_alice, 0, 0, t.into()).await.unwrap().seq);
    }

    // After the crash: Bob recalls his third message, Alice deletes one of
    // her own for herself on device 2, and reads up to the middle there.
    // A post resolves with the server's ACK; its record (the own copy)
    // reaches Bob's local history through his sync timeline a moment
    // later, so the history is read once it holds the last of them.
    let end = deadline(30);
    let bob_history = loop {
        let h = walk(&bob, with_alice).await;
        if h.iter()
            .any(|r| r.from_user == BOB && r.from_seq == tail[2])
        {
            break h;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "Bob's own copies never reached his history"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let of = |user: u64, n: usize| {
        bob_history
            .iter()
            .filter(|r| r.from_user == user)
            .nth(n)
            .expect("enough messages")
            .conv_seq
    };
    let (recalled, deleted) = (of(BOB, 2), of(ALICE, 4));
    let tail1 = bob_history
        .iter()
        .find(|r| r.from_user == BOB && r.from_seq == tail[0]);
    let read_to = tail1.expect("tail1 stored").conv_seq;
    bob.retract(with_alice, recalled).await.unwrap();
    alice2.delete_message(with_bob, deleted).await.unwrap();
    alice2.mark_read(with_bob, read_to, None).await.unwrap();
    let bob_list = bob.conversations(0, 16).await.unwrap();
    let last_seq = bob_list.items[0].last_seq;

    // Both of Alice's devices get everything, the read position and the
    // deletion included, through the sync timeline.
    let read_and_deleted = |me: (u64, u32)| {
        move |seen: &[tern::client::Entry]| {
            let changes: Vec<_> = seen.iter().map(|e| Change::of(e, me)).collect();
            changes.iter().any(|c| matches!(c, Change::Read { up_to, .. } if *up_to == read_to))
                && changes.iter().any(|c| matches!(c, Change::Deleted { scope: DeleteScope::Message, conv_seq, .. } if *conv_seq == deleted))
                && changes.iter().any(|c| matches!(c, Change::Recalled { conv_seq, .. } if *conv_seq == recalled))
        }
    };
    converge(
        &mut alice1,
        with_bob,
        last_seq,
        &mut seen1,
        read_and_deleted((ALICE, 1)),
    )
    .await;
    let mut alice2 = alice2;
    let mut seen2 = Vec::new();
    converge(
        &mut alice2,
        with_bob,
        last_seq,
        &mut seen2,
        read_and_deleted((ALICE, 2)),
    )
    .await;
    assert!(
        seen1.iter().any(|e| matches!(
            Change::of(e, (ALICE, 1)),
            Change::Read {
                elsewhere: true,
                ..
            }
        )),
        "device 1 learned the read position set on device 2"
    );

    // The same history on both devices, served from their local histories.
    let before = alice1.history_stats().await.unwrap();
    let h1 = walk(&alice1, with_bob).await;
    let fetched = alice1.history_stats().await.unwrap().records_fetched - before.records_fetched;
    assert_eq!(
        fetched, 0,
        "device 1 held its whole history: nothing fetched"
    );
    let h2 = walk(&alice2, with_bob).await;
    assert_eq!(h1, h2, "both of Alice's devices hold the same history");
    // Bob's history is the same storage timeline, without Alice's deletion.
    let bob_history = walk(&bob, with_alice).await;
    let alice_view: Vec<_> = bob_history
        .iter()
        .filter(|r| r.conv_seq != deleted)
        .map(|r| Record {
            conv: with_bob,
            ..r.clone()
        })
        .collect();
    assert_eq!(
        h1, alice_view,
        "Alice's history is Bob's, less what she deleted"
    );
    let marker = h1.iter().find(|r| r.conv_seq == recalled).unwrap();
    assert!(
        matches!(marker.body, RecordBody::Recalled { .. }),
        "recall marker, not content"
    );
    // Every acknowledged post is there exactly once, in each sender's order.
    for ((user, dev), posted) in &acked {
        let ids: Vec<u64> = bob_history
            .iter()
            .filter(|r| (r.from_user, r.from_device) == (*user, *dev))
            .map(|r| r.from_seq)
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{user}/{dev}: no duplicate, in order"
        );
        let kept: Vec<u64> = ids.into_iter().filter(|s| posted.contains(s)).collect();
        assert_eq!(
            &kept, posted,
            "{user}/{dev}: every acknowledged post, once, in order"
        );
    }
    assert!(
        after.iter().all(|n| *n >= BEFORE_KILL),
        "traffic before the crash"
    );

    // One unread count and one list on both devices.
    let l1 = alice1.sync_conversations(16).await.unwrap();
    let l2 = alice2.sync_conversations(16).await.unwrap();
    let unread = h1
        .iter()
        .filter(|r| {
            r.from_user == BOB
                && r.conv_seq > read_to
                && matches!(r.body, RecordBody::Message { .. })
        })
        .count() as u64;
    let s1 = alice1.stored_conversations().await.unwrap();
    let s2 = alice2.stored_conversations().await.unwrap();
    assert_eq!(s1.items.len(), 1);
    assert_eq!(unread, 2, "tail2 and tail3");
    assert_eq!(
        s1.items[0].unread, unread,
        "the unread count matches the history"
    );
    assert_eq!(s1.items[0].read_seq, read_to);
    assert_eq!(
        (l1.list_version, l1.total_unread),
        (l2.list_version, l2.total_unread)
    );
    let strip = |v: Vec<ListItem>| v.into_iter().map(settled).collect::<Vec<_>>();
    assert_eq!(
        strip(s1.items),
        strip(s2.items),
        "the same list on both devices"
    );

    // A device that joins late sees the whole history.
    let alice3 = connect(&daemon, &data, ALICE, 3, None).await;
    assert_eq!(
        walk(&alice3, with_bob).await,
        h1,
        "the late device sees the full history"
    );
    for c in [alice1, alice2, alice3, bob] {
        c.close().await;
    }
    daemon.kill();
}
