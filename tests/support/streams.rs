//! What the storage-fault tests share: senders streaming numbered messages
//! to one receiver through the real `ternd`, the daemon's metrics and
//! liveness, and the exactly-once check at the end.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::process::RealDaemon;
use tern::client::{Client, ClientOptions, Entry, SyncBody};

/// The receiver of every message.
pub const RECEIVER: u64 = 100;

/// Message size: a full disk is reached in a few hundred messages.
pub const PAYLOAD: usize = 900;

/// `"u{user}:{i}:"` padded with `#` to PAYLOAD bytes.
pub fn message(user: u64, i: u64) -> bytes::Bytes {
    let mut s = format!("u{user}:{i}:");
    s.extend(std::iter::repeat_n('#', PAYLOAD - s.len()));
    s.into_bytes().into()
}

pub fn sender_and_index(d: &Entry) -> (u64, u64) {
    let p = super::payload_of(d);
    let s = std::str::from_utf8(&p).expect("utf-8 payload");
    let mut parts = s.trim_start_matches('u').split(':');
    let user = parts.next().and_then(|u| u.parse().ok()).expect("sender");
    let i = parts.next().and_then(|i| i.parse().ok()).expect("index");
    (user, i)
}

/// Acknowledgements so far, and when the last one came.
#[derive(Default)]
pub struct Progress {
    pub acks: AtomicU64,
    pub last: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn stalled_for(&self) -> Duration {
        self.last
            .lock()
            .unwrap()
            .map_or(Duration::ZERO, |t| t.elapsed())
    }
}

/// Sends one message at a time until told to stop. A send resolves Ok only
/// once the server stored it; while the disk is full it just waits (the
/// client resends it). Returns the indexes acknowledged, in order.
pub async fn stream(
    c: Client,
    me: u64,
    stop: Arc<AtomicBool>,
    p: Arc<Progress>,
) -> (Client, Vec<u64>) {
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

pub async fn connect(d: &RealDaemon, token: Vec<u8>) -> Client {
    let mut o = ClientOptions::new(d.addr, token);
    o.seal_key = d.seal_key;
    Client::connect(o).await.expect("client connects")
}

/// Connects the receiver and records every entry it is handed.
pub async fn record_receiver(
    d: &RealDaemon,
    token: Vec<u8>,
) -> (Arc<Mutex<Vec<Entry>>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<Vec<Entry>>> = Arc::default();
    let mut receiver = connect(d, token).await;
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = receiver.recv().await {
                if let tern::client::Event::Entry(d) = e {
                    seen.lock().unwrap().push(d);
                }
            }
        })
    };
    (seen, task)
}

/// Starts one streaming sender per user in `senders`, all stopped by `stop`.
pub async fn start_senders(
    d: &RealDaemon,
    tokens: &HashMap<u64, Vec<u8>>,
    senders: &[u64],
    stop: &Arc<AtomicBool>,
    progress: &Arc<Progress>,
) -> Vec<tokio::task::JoinHandle<(Client, Vec<u64>)>> {
    let mut out = Vec::new();
    for &s in senders {
        let c = connect(d, tokens[&s].clone()).await;
        out.push(tokio::spawn(stream(c, s, stop.clone(), progress.clone())));
    }
    out
}

/// The metrics address `ternd` logs at start (`metrics=Some(ADDR)`).
pub fn metrics_addr(log: &Path) -> std::net::SocketAddr {
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
pub fn counter(addr: std::net::SocketAddr, name: &str) -> u64 {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Alive, not a zombie: the same process still serves.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

pub async fn until(what: &str, secs: u64, log: &Path, mut cond: impl FnMut() -> bool) {
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

/// The receiver's inbox is dense and in order, and holds every
/// acknowledged message of each sender exactly once, in the sender's order
/// (and nothing beyond what each sender had acknowledged).
pub fn check_exactly_once(seen: &[Entry], acked: &HashMap<u64, Vec<u64>>) {
    let mut next: HashMap<u64, u64> = HashMap::new();
    for (k, e) in seen.iter().enumerate() {
        assert!(matches!(e.body, SyncBody::Message { .. }));
        assert_eq!(e.seq, k as u64 + 1, "dense, ordered inbox");
        let (from, i) = sender_and_index(e);
        let n = next.entry(from).or_insert(0);
        assert_eq!(i, *n, "sender {from}: message {i}, expected {n}");
        *n += 1;
    }
    for (s, a) in acked {
        assert_eq!(
            a,
            &(0..a.len() as u64).collect::<Vec<_>>(),
            "sender {s}: sends resolved in order"
        );
        assert_eq!(
            next.get(s).copied().unwrap_or(0),
            a.len() as u64,
            "sender {s}: every acknowledged message delivered once, nothing else"
        );
    }
}
