//! A graceful stop drains: what was acknowledged is durable (and found after
//! the restart), clients are told with a KICK instead of waiting out their
//! idle timeout, and they reconnect by themselves when the daemon is back.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::process::{self, RealDaemon};
use support::*;
use tern::client::{Client, ClientOptions, Entry, Event, SyncBody};

const ALICE: u64 = 1;
const BOB: u64 = 2;

/// Sends to bob one message at a time until told to stop, recording each
/// index as soon as its send resolves (the server stored it durably).
async fn stream(c: Client, acked: Arc<Mutex<Vec<u64>>>, stop: Arc<AtomicBool>) -> Client {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        match c.send(BOB, 3, 0, tagged(ALICE, i)).await {
            Ok(_) => acked.lock().unwrap().push(i),
            Err(e) => panic!("send {i} failed: {e}"),
        }
        i += 1;
    }
    c
}

/// Checks that `msgs` are exactly alice's messages 0..n, in order, once.
fn exactly(msgs: &[Entry], n: u64, what: &str) {
    let idx: Vec<u64> = msgs
        .iter()
        .filter(|m| matches!(m.body, SyncBody::Message { .. }))
        .map(|m| {
            let (from, i) = untag(&payload_of(m));
            assert_eq!(from, ALICE);
            i
        })
        .collect();
    assert_eq!(idx, (0..n).collect::<Vec<_>>(), "{what}");
}

/// Waits (up to `secs`) for an event matching `pred` among `c`'s events,
/// keeping every message entry seen on the way in `into`.
async fn until(
    c: &mut Client,
    secs: u64,
    into: &mut Vec<Entry>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(Some(e)) if pred(&e) => return,
            Ok(Some(Event::Entry(m))) => into.push(m),
            Ok(Some(_)) => {}
            Ok(None) => panic!("client stopped while waiting for {what}"),
            Err(_) => panic!("no {what} within {secs} s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_stop_drains_and_clients_reconnect_after_restart() {
    let d = Daemon::start().await;
    let addr = d.addr;
    let alice = d.client(ALICE, 1).await;
    let mut bob = d.client(BOB, 1).await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(stream(alice, acked.clone(), stop.clone()));

    // Traffic flows; bob reads it live.
    let mut got: Vec<Entry> = Vec::new();
    while got.len() < 20 {
        got.push(next_message(&mut bob, 5).await);
    }

    // Graceful stop in the middle of the stream.
    let (dir, cfg, _) = d.stop_keep().await;
    // Bob hears about it at once (KICK Shutdown), not after his 45 s idle
    // timeout.
    until(&mut bob, 2, &mut got, "Disconnected", |e| {
        matches!(e, Event::Disconnected)
    })
    .await;
    // Bob saw 20 stored messages, so the drain acknowledged at least 20 to
    // alice; her sends resolve as her client reads those ACKs (bounded wait:
    // on a loaded machine that can trail bob's KICK).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while acked.lock().unwrap().len() < 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked_at_stop = acked.lock().unwrap().clone();
    assert!(acked_at_stop.len() >= 20, "{} acked", acked_at_stop.len());

    // Everything acknowledged before the stop is durable, once, in order.
    {
        let store = open_store(dir.path());
        let stored = stored_entries(&store, BOB);
        let mut idx: Vec<u64> = stored.iter().map(|m| untag(&payload_of(m)).1).collect();
        // Bob may have acknowledged (and so trimmed) a prefix already.
        let first = idx.first().copied().unwrap_or(acked_at_stop.len() as u64);
        assert!(
            first <= got.len() as u64,
            "only entries bob acknowledged were trimmed"
        );
        idx.splice(0..0, 0..first);
        assert!(
            idx.len() >= acked_at_stop.len(),
            "acknowledged sends missing from the store: {} stored, {} acknowledged",
            idx.len(),
            acked_at_stop.len()
        );
        assert_eq!(
            idx,
            (0..idx.len() as u64).collect::<Vec<_>>(),
            "stored once each, in order"
        );
    }

    // Back on the same address: both clients reconnect by themselves.
    let d = Daemon::restart(dir, cfg, addr).await;
    until(&mut bob, 10, &mut got, "Connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut alice = tokio::time::timeout(Duration::from_secs(15), sender)
        .await
        .expect("alice's pending send resolves after the restart")
        .unwrap();
    let total = acked.lock().unwrap().len() as u64;
    assert!(
        total > acked_at_stop.len() as u64,
        "alice sent after the restart"
    );
    let alice_events = drain_quiet(&mut alice, 100).await;
    let disc = alice_events
        .iter()
        .position(|e| matches!(e, Event::Disconnected))
        .expect("alice was told of the shutdown");
    assert!(
        alice_events[disc..]
            .iter()
            .any(|e| matches!(e, Event::Connected { .. })),
        "alice reconnected"
    );

    // Bob ends up with every acknowledged message, exactly once, in order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (got.len() as u64) < total {
        match tokio::time::timeout_at(deadline, bob.recv()).await {
            Ok(Some(Event::Entry(m))) => got.push(m),
            Ok(Some(_)) => {}
            Ok(None) => panic!("bob stopped"),
            Err(_) => panic!("bob has {} of {total} messages", got.len()),
        }
    }
    let extra = drain_quiet(&mut bob, 300).await;
    got.extend(extra.into_iter().filter_map(|e| match e {
        Event::Entry(m) => Some(m),
        _ => None,
    }));
    exactly(&got, total, "bob's messages across the restart");
    alice.close().await;
    bob.close().await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_the_real_daemon_and_clients_reconnect() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("ternd.log");
    let alice_token = process::token(&data, ALICE, 1);
    let bob_token = process::token(&data, BOB, 1);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let daemon = RealDaemon::spawn(&data, any, &[], &log).expect("ternd starts");
    let addr = daemon.addr;
    let seal_key = daemon.seal_key;
    let connect = |token: &Vec<u8>| {
        let mut o = ClientOptions::new(addr, token.clone());
        o.seal_key = seal_key;
        Client::connect(o)
    };

    // Bob is registered and offline: everything alice sends is stored only.
    connect(&bob_token).await.unwrap().close().await;
    let alice = connect(&alice_token).await.unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(stream(alice, acked.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let status = tokio::task::spawn_blocking(move || daemon.terminate(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(
        status.success(),
        "ternd exits cleanly on SIGTERM: {status:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acked_at_stop = acked.lock().unwrap().len() as u64;
    assert!(acked_at_stop > 0);
    {
        let store = open_store(&data);
        let stored = stored_entries(&store, BOB);
        let idx: Vec<u64> = stored.iter().map(|m| untag(&payload_of(m)).1).collect();
        assert!(
            idx.len() as u64 >= acked_at_stop,
            "acknowledged sends are durable"
        );
        assert_eq!(idx, (0..idx.len() as u64).collect::<Vec<_>>());
    }

    let daemon = tokio::task::spawn_blocking({
        let data = data.clone();
        let log = log.clone();
        move || RealDaemon::spawn_at(&data, addr, &[], &log)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut alice = tokio::time::timeout(Duration::from_secs(15), sender)
        .await
        .expect("alice's pending send resolves after the restart")
        .unwrap();
    let total = acked.lock().unwrap().len() as u64;
    let events = drain_quiet(&mut alice, 100).await;
    let disc = events
        .iter()
        .position(|e| matches!(e, Event::Disconnected))
        .expect("alice got the shutdown KICK");
    assert!(events[disc..]
        .iter()
        .any(|e| matches!(e, Event::Connected { .. })));

    // Bob comes online and gets every acknowledged message once, in order.
    let mut bob = connect(&bob_token).await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (got.len() as u64) < total {
        match tokio::time::timeout_at(deadline, bob.recv()).await {
            Ok(Some(Event::Entry(m))) => got.push(m),
            Ok(Some(_)) => {}
            Ok(None) => panic!("bob stopped"),
            Err(_) => panic!("bob has {} of {total} (log {})", got.len(), log.display()),
        }
    }
    got.extend(
        drain_quiet(&mut bob, 300)
            .await
            .into_iter()
            .filter_map(|e| match e {
                Event::Entry(m) => Some(m),
                _ => None,
            }),
    );
    exactly(&got, total, "bob's messages across the SIGTERM restart");
    alice.close().await;
    bob.close().await;
    let status = tokio::task::spawn_blocking(move || daemon.terminate(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success());
}
