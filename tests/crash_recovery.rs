//! The real `ternd` process is SIGKILLed several times while senders stream
//! messages, and restarted on the same data folder and port. Every message
//! whose send was acknowledged reaches the receiver, exactly once, in each
//! sender's order; clients ride through the crashes by reconnecting.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::process::{self, RealDaemon};
use support::{tagged, untag};
use tern::client::{Client, ClientOptions, Entry, Event, SyncBody};

const RECEIVER: u64 = 100;
const SENDERS: [u64; 3] = [1, 2, 3];
const KILLS: usize = 3;
/// Time between restarts: longer than the client's idle timeout (3 s), so
/// that even an idle receiver has noticed each crash before the next one.
const UPTIME_MS: u64 = 3_600;

/// Short timers so that an idle receiver notices a restarted daemon within
/// a second (its heartbeat gets ERROR UnknownSession and it logs in again).
const ENV: &[(&str, &str)] = &[
    ("TERN_TIMERS_HEARTBEAT", "1s"),
    ("TERN_TIMERS_IDLE_TIMEOUT", "3s"),
];

#[derive(Default)]
struct Seen {
    entries: Vec<Entry>,
    connects: usize,
    disconnects: usize,
}

async fn connect(daemon: &RealDaemon, token: Vec<u8>) -> Client {
    let mut o = ClientOptions::new(daemon.addr, token);
    o.seal_key = daemon.seal_key;
    o.connect_timeout = Duration::from_secs(10);
    Client::connect(o).await.expect("client connects")
}

/// Sends one message at a time until told to stop; returns the indexes
/// whose send resolved Ok (the server stored them durably) and how many
/// sends were caught by a crash (took over 200 ms).
async fn stream(c: Client, me: u64, stop: Arc<AtomicBool>) -> (Client, Vec<u64>, usize) {
    let mut acked = Vec::new();
    let mut interrupted = 0;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let t0 = std::time::Instant::now();
        match c.send(RECEIVER, me, 0, tagged(me, i)).await {
            Ok(_) => acked.push(i),
            Err(e) => panic!("sender {me}: send {i} failed: {e}"),
        }
        if t0.elapsed() > Duration::from_millis(200) {
            interrupted += 1;
        }
        i += 1;
    }
    (c, acked, interrupted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_messages_survive_sigkill_exactly_once_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("ternd.log");
    let mut tokens: HashMap<u64, Vec<u8>> = HashMap::new();
    for u in SENDERS.iter().copied().chain([RECEIVER]) {
        tokens.insert(u, process::token(&data, u, 1));
    }
    let mut daemon =
        RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), ENV, &log).expect("ternd starts");
    let addr = daemon.addr;

    // The receiver records everything it is handed.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut receiver = connect(&daemon, tokens[&RECEIVER].clone()).await;
    let rx_task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = receiver.recv().await {
                let mut s = seen.lock().unwrap();
                match e {
                    Event::Entry(d) => s.entries.push(d),
                    Event::Connected { .. } => s.connects += 1,
                    Event::Disconnected => s.disconnects += 1,
                    _ => {}
                }
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for s in SENDERS {
        let c = connect(&daemon, tokens[&s].clone()).await;
        senders.push(tokio::spawn(stream(c, s, stop.clone())));
    }

    // Crash the daemon mid-stream, several times; restart it each time on
    // the same folder and the same port.
    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(UPTIME_MS + 150 * round as u64)).await;
        let before = seen.lock().unwrap().entries.len();
        assert!(
            round == 0 || before > 0,
            "traffic flows between crashes (round {round})"
        );
        daemon.kill();
        tokio::time::sleep(Duration::from_millis(250)).await;
        daemon = tokio::task::spawn_blocking({
            let data = data.clone();
            let log = log.clone();
            move || RealDaemon::spawn_at(&data, addr, ENV, &log)
        })
        .await
        .unwrap();
    }
    // Let the clients come back and stream a little longer, then stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut clients = Vec::new();
    let mut interrupted = 0;
    for (t, s) in senders.into_iter().zip(SENDERS) {
        let (c, a, n) = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .unwrap_or_else(|_| {
                panic!("sender {s}: a send never resolved (log: {})", log.display())
            })
            .unwrap();
        assert!(!a.is_empty());
        interrupted += n;
        acked.insert(s, a);
        clients.push(c);
    }
    let want: usize = acked.values().map(|a| a.len()).sum();
    assert!(
        interrupted >= KILLS,
        "the crashes hit sends in flight ({interrupted} sends spanned a crash)"
    );

    // Wait for the receiver to have every acknowledged message.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = seen
            .lock()
            .unwrap()
            .entries
            .iter()
            .filter(|e| matches!(e.body, SyncBody::Message { .. }))
            .count();
        if n >= want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "receiver has {n} of {want} acknowledged messages (log: {})",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything delivered twice would show up now.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut last_from_seq: HashMap<u64, u64> = HashMap::new();
    for (i, e) in seen.entries.iter().enumerate() {
        assert_eq!(
            e.seq,
            i as u64 + 1,
            "the receiver's inbox timeline is dense and in order"
        );
        let (from, idx) = untag(&support::payload_of(e));
        let n = next.entry(from).or_insert(0);
        assert_eq!(
            idx, *n,
            "sender {from}: got message {idx}, expected {n} (duplicate, loss or reorder)"
        );
        *n += 1;
        let prev = last_from_seq.insert(from, e.from_seq).unwrap_or(0);
        assert!(e.from_seq > prev, "message ids of sender {from} increase");
    }
    for s in SENDERS {
        let a = &acked[&s];
        assert_eq!(
            a,
            &(0..a.len() as u64).collect::<Vec<_>>(),
            "sender {s}: every send resolved Ok, in order"
        );
        assert_eq!(
            next.get(&s).copied().unwrap_or(0),
            a.len() as u64,
            "sender {s}: every acknowledged message delivered, nothing else"
        );
    }
    assert!(
        seen.connects > KILLS,
        "the receiver reconnected after every crash ({} logins)",
        seen.connects
    );
    drop(seen);
    for c in clients {
        c.close().await;
    }
    rx_task.abort();
    daemon.kill();
}

/// An idle client (only heartbeats) must notice a crashed and restarted
/// daemon from the ERROR UnknownSession its next heartbeat draws, i.e.
/// within about one heartbeat, not only at its idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_notices_a_restarted_daemon_within_a_few_heartbeats() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("ternd.log");
    let env = &[
        ("TERN_TIMERS_HEARTBEAT", "1s"),
        ("TERN_TIMERS_IDLE_TIMEOUT", "12s"),
    ];
    let token = process::token(&data, RECEIVER, 1);
    let daemon =
        RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), env, &log).expect("ternd starts");
    let addr = daemon.addr;
    let mut c = connect(&daemon, token).await;
    assert!(matches!(
        support::next_event(&mut c, 5).await,
        Event::Connected { .. }
    ));
    // Idle for a while: heartbeats only.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.kill();
    let daemon = tokio::task::spawn_blocking({
        let data = data.clone();
        let log = log.clone();
        move || RealDaemon::spawn_at(&data, addr, env, &log)
    })
    .await
    .unwrap();
    let t0 = std::time::Instant::now();
    let mut seen = Vec::new();
    support::wait_for(&mut c, 5, &mut seen, |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "logged in again after {:?}",
        t0.elapsed()
    );
    c.close().await;
    daemon.kill();
}
