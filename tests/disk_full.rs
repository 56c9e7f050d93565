//! The real `ternd` on a real, nearly full disk: its data folder is on a
//! small ext4 image, loop-mounted, filled to its last 7 MiB, and three
//! senders stream messages until it is full (`support::loopfs`;
//! skipped, saying why, where loop mounts are not possible).
//!
//! What must hold:
//! - while the disk is full, no send is acknowledged: each one either
//!   resolved Ok (and is then delivered exactly once) or is still pending,
//!   retried by its client; the daemon neither crashes nor restarts;
//! - the clients are told why (`Event::StorageUnavailable`, from ERROR 12),
//!   and `/metrics` counts the failed commits;
//! - once the space is freed, the same daemon process acknowledges again
//!   (RocksDB resumes by itself), and every acknowledged message reaches
//!   the receiver exactly once, in each sender's order.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::loopfs::{skip, LoopFs};
use support::process::{self, RealDaemon};
use tern::client::{Client, ClientOptions, Deliver, EntryBody, Event};

const RECEIVER: u64 = 100;
const SENDERS: [u64; 3] = [1, 2, 3];
/// The image: large enough that freeing the filler leaves more than
/// RocksDB's reserve (its largest memtable, 64 MiB), under which it does
/// not resume writes by itself. Sparse: it costs what is written.
const IMAGE_MIB: u64 = 160;
/// Free space left when the disk is filled: room for the daemon to open its
/// store (the MANIFEST takes 4 MiB) and store a few thousand messages.
const LEFT: u64 = 7 << 20;
/// Message size: a full disk is reached in a few hundred messages.
const PAYLOAD: usize = 900;

/// `"u{user}:{i}:"` padded with `#` to PAYLOAD bytes.
fn message(user: u64, i: u64) -> bytes::Bytes {
    let mut s = format!("u{user}:{i}:");
    s.extend(std::iter::repeat_n('#', PAYLOAD - s.len()));
    s.into_bytes().into()
}

fn sender_and_index(d: &Deliver) -> (u64, u64) {
    let p = support::payload_of(d);
    let s = std::str::from_utf8(&p).expect("utf-8 payload");
    let mut parts = s.trim_start_matches('u').split(':');
    let user = parts.next().and_then(|u| u.parse().ok()).expect("sender");
    let i = parts.next().and_then(|i| i.parse().ok()).expect("index");
    (user, i)
}

/// Acknowledgements so far, and when the last one came.
#[derive(Default)]
struct Progress {
    acks: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    fn stalled_for(&self) -> Duration {
        self.last
            .lock()
            .unwrap()
            .map_or(Duration::ZERO, |t| t.elapsed())
    }
}

/// Sends one message at a time until told to stop. A send resolves Ok only
/// once the server stored it; while the disk is full it just waits (the
/// client resends it). Returns the indexes acknowledged, in order.
async fn stream(c: Client, me: u64, stop: Arc<AtomicBool>, p: Arc<Progress>) -> (Client, Vec<u64>) {
    let mut acked = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        match c.send(RECEIVER, me, 0, message(me, i)).await {
            Ok(_) => acked.push(i),
            Err(e) => panic!("sender {me}: send {i} failed: {e}"),
        }
        p.acks.fetch_add(1, Ordering::Relaxed);
        *p.last.lock().unwrap() = Some(Instant::now());
        i += 1;
    }
    (c, acked)
}

async fn connect(d: &RealDaemon, token: Vec<u8>) -> Client {
    let mut o = ClientOptions::new(d.addr, token);
    o.seal_key = d.seal_key;
    Client::connect(o).await.expect("client connects")
}

/// The metrics address `ternd` logs at start (`metrics=Some(ADDR)`).
fn metrics_addr(log: &Path) -> std::net::SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // The field may be coloured: take what follows its `Some(`.
        let line = text.lines().find(|l| l.contains("ternd listening"));
        if let Some(rest) = line.and_then(|l| l.split("metrics").nth(1)?.split("Some(").nth(1)) {
            return rest
                .split(')')
                .next()
                .unwrap()
                .parse()
                .expect("metrics address");
        }
        assert!(
            Instant::now() < deadline,
            "no metrics address in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One counter from `GET /metrics`.
fn counter(addr: std::net::SocketAddr, name: &str) -> u64 {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Alive, not a zombie: the same process still serves.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

async fn until(what: &str, secs: u64, log: &Path, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {secs}s (log: {})",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_acknowledges_nothing_and_the_daemon_resumes_once_space_is_freed() {
    let fs = match LoopFs::mount(IMAGE_MIB) {
        Ok(fs) => fs,
        Err(why) => return skip("disk_full", &why),
    };
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("ternd.log");
    let data = fs.path().join("data");
    let mut tokens: HashMap<u64, Vec<u8>> = HashMap::new();
    for u in SENDERS.iter().copied().chain([RECEIVER]) {
        tokens.insert(u, process::token(&data, u, 1));
    }
    // Filled before the daemon starts: RocksDB preallocates its MANIFEST
    // (4 MiB) and write-ahead log (70 MiB with the default memtable), and
    // filling the disk after that would only fill around those
    // reservations. On a nearly full ext4 the preallocation takes whatever
    // is left, which the log then fills.
    let filler = fs.fill_leaving("filler", LEFT);
    let env = [("TERN_METRICS_LISTEN", "127.0.0.1:0")];
    let daemon =
        RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), &env, &log).expect("ternd starts");
    let pid = daemon.pid();
    let metrics = metrics_addr(&log);

    // The receiver records everything it is handed.
    let seen: Arc<Mutex<Vec<Deliver>>> = Arc::default();
    let mut receiver = connect(&daemon, tokens[&RECEIVER].clone()).await;
    let rx_task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = receiver.recv().await {
                if let Event::Entry(d) = e {
                    seen.lock().unwrap().push(d);
                }
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let mut senders = Vec::new();
    for s in SENDERS {
        let c = connect(&daemon, tokens[&s].clone()).await;
        senders.push(tokio::spawn(stream(c, s, stop.clone(), progress.clone())));
    }
    let acks = || progress.acks.load(Ordering::Relaxed);
    until("traffic flows", 20, &log, || acks() >= 30).await;

    // The senders run into the full disk and stall, unacknowledged.
    until("commits fail on the full disk", 60, &log, || {
        assert!(
            alive(pid),
            "ternd died on the full disk (log: {})",
            log.display()
        );
        counter(metrics, "tern_commit_failures_total") > 0
    })
    .await;
    until("every sender stalls", 30, &log, || {
        progress.stalled_for() > Duration::from_secs(2)
    })
    .await;
    let acked_while_full = acks();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        acks(),
        acked_while_full,
        "nothing is acknowledged on a full disk"
    );
    assert!(
        alive(pid),
        "the daemon survives a full disk (log: {})",
        log.display()
    );
    assert!(fs.free() < LEFT, "the daemon filled the disk");

    // Free the space: the same process acknowledges again.
    std::fs::remove_file(&filler).unwrap();
    until(
        "acknowledgements resume after space is freed",
        60,
        &log,
        || acks() > acked_while_full + 30,
    )
    .await;
    assert!(alive(pid), "no restart was needed");
    stop.store(true, Ordering::Relaxed);

    let mut acked: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut clients = Vec::new();
    for (t, s) in senders.into_iter().zip(SENDERS) {
        let (c, a) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap_or_else(|_| panic!("sender {s}: a send never resolved"))
            .unwrap();
        assert_eq!(
            a,
            (0..a.len() as u64).collect::<Vec<_>>(),
            "sender {s}: in order"
        );
        acked.insert(s, a);
        clients.push((s, c));
    }

    // Every acknowledged message arrives exactly once, in order.
    let want: usize = acked.values().map(Vec::len).sum();
    until(
        "the receiver has every acknowledged message",
        30,
        &log,
        || seen.lock().unwrap().len() >= want,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().unwrap().clone();
    let mut next: HashMap<u64, u64> = HashMap::new();
    for (k, e) in seen.iter().enumerate() {
        assert!(matches!(e.body, EntryBody::Message { .. }));
        assert_eq!(e.seq, k as u64 + 1, "dense, ordered inbox");
        let (from, i) = sender_and_index(e);
        let n = next.entry(from).or_insert(0);
        assert_eq!(i, *n, "sender {from}: message {i}, expected {n}");
        *n += 1;
    }
    for s in SENDERS {
        assert_eq!(
            next.get(&s).copied().unwrap_or(0),
            acked[&s].len() as u64,
            "sender {s}"
        );
    }

    // The clients were told why, and the metrics count it.
    for (s, mut c) in clients {
        let events = support::drain_quiet(&mut c, 200).await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::StorageUnavailable { .. })),
            "sender {s} was told the server's storage is unavailable: {events:?}"
        );
        c.close().await;
    }
    let failures = counter(metrics, "tern_commit_failures_total");
    assert!(failures >= 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("storage full"),
        "the daemon says the disk is full"
    );
    assert!(
        text.contains("storage writable again"),
        "and that it recovered"
    );
    rx_task.abort();
    daemon.kill();
    drop(fs);
    eprintln!("{want} messages acknowledged, {failures} failed commits");
}
