//! The impairment proxy over real sockets on 127.0.0.1: an echo server behind
//! it, clients in front.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use tern_lab::{Impairment, Proxy, ProxyConfig, ProxyControl, ProxyStats};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

const QUIET: Duration = Duration::from_millis(300);

/// An echo server that also reports every datagram it receives and from where.
async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<(SocketAddr, Vec<u8>)>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let _ = sock.send_to(&buf[..n], from).await;
            if tx.send((from, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

struct Running {
    addr: SocketAddr,
    control: ProxyControl,
    stop: oneshot::Sender<()>,
    task: JoinHandle<ProxyStats>,
}

impl Running {
    async fn finish(self) -> ProxyStats {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

async fn start(upstream: SocketAddr, seed: u64, up: &str, down: &str) -> Running {
    let mut cfg = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
    cfg.seed = seed;
    cfg.up = Impairment::parse(up).unwrap();
    cfg.down = Impairment::parse(down).unwrap();
    start_cfg(cfg).await
}

async fn start_cfg(cfg: ProxyConfig) -> Running {
    let proxy = Proxy::bind(cfg).await.unwrap();
    let addr = proxy.local_addr();
    assert_ne!(addr.port(), 0);
    let control = proxy.control();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        proxy
            .run(async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap()
    });
    Running {
        addr,
        control,
        stop,
        task,
    }
}

async fn client(proxy: SocketAddr) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(proxy).await.unwrap();
    sock
}

/// Every datagram that arrives until the socket has been quiet for `QUIET`.
async fn drain(sock: &UdpSocket) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_535];
    while let Ok(Ok(n)) = timeout(QUIET, sock.recv(&mut buf)).await {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Everything the server has reported so far.
fn seen(rx: &mut mpsc::UnboundedReceiver<(SocketAddr, Vec<u8>)>) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut v = Vec::new();
    while let Ok(x) = rx.try_recv() {
        v.push(x);
    }
    v
}

/// Send `n` numbered datagrams in batches, waiting after each batch until
/// the proxy has taken them in, so no kernel buffer overflows on a busy machine.
async fn send_numbered(sock: &UdpSocket, control: &ProxyControl, n: u32) {
    const BATCH: u32 = 40;
    for i in 0..n {
        sock.send(&i.to_be_bytes()).await.unwrap();
        if i % BATCH == BATCH - 1 || i == n - 1 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while control.stats().await.unwrap().up.sent < u64::from(i + 1) {
                assert!(Instant::now() < deadline, "the proxy stalled");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

async fn recv_one(sock: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65_535];
    let n = timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("no reply within 5 s")
        .unwrap();
    buf[..n].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_rate_roughly_matches_the_configuration() {
    let (server, mut seen_rx) = echo_server().await;
    let p = start(server, 42, "loss=0.3", "none").await;
    let c = client(p.addr).await;
    // Read the echoes while sending, or the client's receive buffer overflows.
    let ((), echoes) = tokio::join!(send_numbered(&c, &p.control, 600), drain(&c));
    let stats = p.finish().await;
    let at_server = seen(&mut seen_rx).len() as u64;

    assert_eq!(stats.up.sent, 600, "the proxy saw every datagram");
    let rate = stats.up.dropped_random as f64 / stats.up.sent as f64;
    assert!((0.22..=0.38).contains(&rate), "loss rate {rate}");
    assert_eq!(stats.up.dropped(), stats.up.dropped_random);
    assert_eq!(stats.sent_up, stats.up.sent - stats.up.dropped());
    assert_eq!(at_server, stats.sent_up);
    assert_eq!(stats.down.sent, at_server);
    assert_eq!(echoes.len() as u64, at_server);
    assert_eq!(stats.clients_seen, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_drops_the_same_datagrams() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (server, mut seen_rx) = echo_server().await;
        let p = start(server, 7, "loss=0.25,burst=0.05:0.3", "none").await;
        let c = client(p.addr).await;
        let ((), _) = tokio::join!(send_numbered(&c, &p.control, 200), drain(&c));
        p.finish().await;
        let mut got: Vec<u32> = seen(&mut seen_rx)
            .into_iter()
            .map(|(_, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
            .collect();
        got.sort_unstable();
        runs.push(got);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].len() < 200 && runs[0].len() > 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplication_produces_duplicates() {
    let (server, mut seen_rx) = echo_server().await;
    let p = start(server, 3, "dup=0.5", "none").await;
    let c = client(p.addr).await;
    let ((), echoes) = tokio::join!(send_numbered(&c, &p.control, 100), drain(&c));
    let stats = p.finish().await;

    let mut count: HashMap<Vec<u8>, usize> = HashMap::new();
    for (_, d) in seen(&mut seen_rx) {
        *count.entry(d).or_default() += 1;
    }
    assert_eq!(count.len(), 100, "every datagram arrived at least once");
    let twice = count.values().filter(|&&n| n == 2).count() as u64;
    assert!(count.values().all(|&n| n <= 2));
    assert_eq!(twice, stats.up.duplicated);
    assert!((25..=75).contains(&twice), "{twice} duplicated");
    assert_eq!(echoes.len() as u64, 100 + twice);
    assert_eq!(stats.sent_up, 100 + twice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_changes_bytes() {
    let (server, mut seen_rx) = echo_server().await;
    let p = start(server, 5, "corrupt=1", "none").await;
    let c = client(p.addr).await;
    // Payloads differ from each other in far more than 3 bits.
    let sent: Vec<Vec<u8>> = (1..=50u8).map(|i| vec![i.wrapping_mul(37); 32]).collect();
    for d in &sent {
        c.send(d).await.unwrap();
    }
    let echoes = drain(&c).await;
    let stats = p.finish().await;
    let at_server = seen(&mut seen_rx);
    assert_eq!(at_server.len(), 50);
    assert_eq!(echoes.len(), 50);
    for (_, d) in &at_server {
        assert!(!sent.contains(d), "an uncorrupted datagram got through");
    }
    assert_eq!(stats.up.corrupted, 50);
    assert_eq!(stats.down.corrupted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_applies_in_each_direction() {
    let (server, _seen_rx) = echo_server().await;
    let p = start(server, 1, "delay=5ms", "delay=5ms").await;
    let c = client(p.addr).await;
    for i in 0..5u32 {
        let t0 = Instant::now();
        c.send(&i.to_be_bytes()).await.unwrap();
        assert_eq!(recv_one(&c).await, i.to_be_bytes());
        let rtt = t0.elapsed();
        assert!(rtt >= Duration::from_millis(10), "rtt {rtt:?}");
    }
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_changes_the_source_port_and_replies_still_arrive() {
    let (server, mut seen_rx) = echo_server().await;
    let p = start(server, 0, "none", "none").await;
    let c = client(p.addr).await;

    c.send(b"before").await.unwrap();
    assert_eq!(recv_one(&c).await, b"before");
    let (from1, d1) = seen_rx.recv().await.unwrap();
    assert_eq!(d1, b"before");

    assert_eq!(p.control.rebind().await.unwrap(), 1);

    c.send(b"after").await.unwrap();
    assert_eq!(recv_one(&c).await, b"after");
    let (from2, d2) = seen_rx.recv().await.unwrap();
    assert_eq!(d2, b"after");

    assert_eq!(from1.ip(), from2.ip());
    assert_ne!(
        from1.port(),
        from2.port(),
        "the server must see a new source port"
    );
    let stats = p.control.stats().await.unwrap();
    assert_eq!(stats.rebinds, 1);
    assert_eq!(stats.clients_active, 1);
    let stats = p.finish().await;
    assert_eq!(stats.sent_up, 2);
    assert_eq!(stats.sent_down, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_rebind_moves_the_client_repeatedly() {
    let (server, mut seen_rx) = echo_server().await;
    let mut cfg = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), server);
    cfg.rebind_every = Some(Duration::from_millis(40));
    let p = start_cfg(cfg).await;
    let c = client(p.addr).await;
    let mut replies = 0;
    let rounds = 20;
    for i in 0..rounds {
        c.send(&(i as u32).to_be_bytes()).await.unwrap();
        // A reply can be lost if the rebind falls between the server's
        // receive and its reply, as with a real network change.
        let mut buf = [0u8; 16];
        if let Ok(Ok(_)) = timeout(Duration::from_millis(200), c.recv(&mut buf)).await {
            replies += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = p.finish().await;
    let ports: HashSet<u16> = seen(&mut seen_rx).iter().map(|(a, _)| a.port()).collect();
    assert!(ports.len() >= 3, "ports seen: {ports:?}");
    assert!(stats.rebinds >= 2);
    assert!(
        replies as u64 >= rounds as u64 - stats.rebinds,
        "{replies} replies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_kept_apart() {
    let (server, mut seen_rx) = echo_server().await;
    let p = start(server, 9, "none", "none").await;
    let a = client(p.addr).await;
    let b = client(p.addr).await;
    for i in 0..10u8 {
        a.send(&[b'a', i]).await.unwrap();
        b.send(&[b'b', i]).await.unwrap();
    }
    let got_a = drain(&a).await;
    let got_b = drain(&b).await;
    assert_eq!(got_a.len(), 10);
    assert_eq!(got_b.len(), 10);
    assert!(got_a.iter().all(|d| d[0] == b'a'));
    assert!(got_b.iter().all(|d| d[0] == b'b'));
    let ports: HashSet<u16> = seen(&mut seen_rx).iter().map(|(a, _)| a.port()).collect();
    assert_eq!(ports.len(), 2);
    let stats = p.finish().await;
    assert_eq!(stats.clients_seen, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_limit_and_blackout() {
    let (server, mut seen_rx) = echo_server().await;
    let mut cfg = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), server);
    cfg.max_clients = 1;
    cfg.down = Impairment::parse("blackout=0s-1h").unwrap();
    let p = start_cfg(cfg).await;
    let a = client(p.addr).await;
    let b = client(p.addr).await;
    for _ in 0..5 {
        a.send(b"a").await.unwrap();
    }
    assert!(drain(&a).await.is_empty(), "replies fall into the blackout");
    for _ in 0..3 {
        b.send(b"b").await.unwrap();
    }
    let _ = drain(&b).await;
    let stats = p.finish().await;
    assert_eq!(seen(&mut seen_rx).len(), 5);
    assert_eq!(stats.down.dropped_blackout, 5);
    assert_eq!(stats.clients_rejected, 3);
    assert_eq!(stats.clients_seen, 1);
}

#[test]
fn bad_configuration_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg = ProxyConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
        );
        cfg.up.loss = 1.5;
        assert!(Proxy::bind(cfg.clone()).await.is_err());
        cfg.up.loss = 0.0;
        cfg.max_clients = 0;
        assert!(Proxy::bind(cfg).await.is_err());
    });
}

/// Kills the child process if the test fails half-way.
#[cfg(unix)]
struct KillOnDrop(Option<std::process::Child>);

#[cfg(unix)]
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prints_its_address_forwards_rebinds_and_logs() {
    use std::io::BufRead;

    let (server, mut seen_rx) = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tern-proxy"))
        .args(["--listen", "127.0.0.1:0", "--upstream"])
        .arg(server.to_string())
        .args(["--seed", "42", "--up", "dup=1", "--down", "none"])
        .args(["--duration", "30s", "--log-file"])
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid = child.id() as i32;
    let mut guard = KillOnDrop(Some(child));
    let (line_tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line_tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = timeout(Duration::from_secs(10), lines.recv())
        .await
        .expect("the proxy did not print its address")
        .expect("the proxy exited");
    let addr: SocketAddr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();

    let c = client(addr).await;
    c.send(b"x").await.unwrap();
    assert_eq!(recv_one(&c).await, b"x");
    assert_eq!(recv_one(&c).await, b"x", "dup=1 doubles every datagram");
    let (first_from, _) = seen_rx.recv().await.unwrap();

    // SIGUSR1 moves the client to a new port; poll until the server sees it.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut moved = false;
    while Instant::now() < deadline && !moved {
        c.send(b"y").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        moved = seen(&mut seen_rx)
            .iter()
            .any(|(from, _)| from.port() != first_from.port());
    }
    assert!(moved, "SIGUSR1 did not rebind");

    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut child = guard.0.take().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    while let Some(l) = lines.recv().await {
        rest.push_str(&l);
        rest.push('\n');
    }
    assert!(rest.contains("seed 42"), "summary: {rest}");
    assert!(rest.contains("rebinds=1"), "summary: {rest}");

    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |action: &str, dir: Option<&str>| {
        events
            .iter()
            .filter(|e| {
                e["action"] == action
                    && match dir {
                        None => true,
                        Some(d) => e["dir"] == d,
                    }
            })
            .count()
    };
    assert!(count("recv", Some("up")) >= 2);
    assert_eq!(count("send", Some("up")), 2 * count("recv", Some("up")));
    assert_eq!(count("rebind", None), 1);
    assert_eq!(count("client_new", None), 1);
    assert_eq!(count("summary", None), 1);
    assert!(events.iter().all(|e| e["t_us"].is_u64()));
}
