//! Address tokens against a real `ternd` (default configuration: sealed,
//! address validation on), with the client library's state folder: a
//! device that comes back logs in without the RETRY round trip, also after
//! the daemon was SIGKILLed and restarted (the token key comes from the
//! secret file). A device without a state folder still gets its RETRY.
//!
//! A small UDP relay sits between the clients and the daemon and reads the
//! clear packets the daemon sends (RETRY is clear by design), so the test
//! sees exactly how many RETRYs each login cost.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::process::{self, RealDaemon};
use tern::client::{Client, ClientOptions};
use tern_core::wire::{Frame, Packet};
use tokio::net::UdpSocket;

/// A relay in front of the daemon: every client datagram goes on from one
/// socket of its own per client address, every answer comes back. Counts
/// the RETRY frames the daemon sent.
struct Relay {
    addr: SocketAddr,
    retries: Arc<AtomicU64>,
}

impl Relay {
    async fn start(server: Arc<std::sync::Mutex<SocketAddr>>) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let addr = front.local_addr().expect("addr");
        let retries = Arc::new(AtomicU64::new(0));
        let counted = retries.clone();
        tokio::spawn(async move {
            let mut backs: std::collections::HashMap<SocketAddr, Arc<UdpSocket>> =
                Default::default();
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, client)) = front.recv_from(&mut buf).await else {
                    return;
                };
                let back = match backs.get(&client) {
                    Some(b) => b.clone(),
                    None => {
                        let b = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
                        backs.insert(client, b.clone());
                        let (front, b2, counted) = (front.clone(), b.clone(), counted.clone());
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 65536];
                            while let Ok(n) = b2.recv(&mut buf).await {
                                let d = Bytes::copy_from_slice(&buf[..n]);
                                if let Ok(p) = Packet::decode(d.clone()) {
                                    let r = p
                                        .frames
                                        .iter()
                                        .filter(|f| matches!(f, Frame::Retry(_)))
                                        .count();
                                    counted.fetch_add(r as u64, Ordering::SeqCst);
                                }
                                let _ = front.send_to(&d, client).await;
                            }
                        });
                        b
                    }
                };
                let to = *server.lock().expect("lock");
                let _ = back.send_to(&buf[..n], to).await;
            }
        });
        Relay { addr, retries }
    }

    fn retries(&self) -> u64 {
        self.retries.load(Ordering::SeqCst)
    }
}

/// Connects Alice's device 1 through the relay, sends one message (so
/// that everything the daemon sent with the login has arrived), and
/// closes. Returns the RETRYs the login cost.
async fn login_once(relay: &Relay, d: &RealDaemon, state: Option<&Path>) -> u64 {
    let before = relay.retries();
    let mut o = ClientOptions::new(relay.addr, process::token(&d.data_dir, 1, 1));
    o.seal_key = d.seal_key;
    o.state_dir = state.map(Path::to_path_buf);
    let c = tokio::time::timeout(Duration::from_secs(20), Client::connect(o))
        .await
        .expect("logs in in time")
        .expect("logs in");
    let retries = relay.retries() - before;
    // Stored means ACKed: the daemon sent the token before that ACK.
    tokio::time::timeout(
        Duration::from_secs(20),
        c.send(2, 1, 0, Bytes::from_static(b"hello")),
    )
    .await
    .expect("stored in time")
    .expect("stored");
    c.close().await;
    retries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_device_logs_in_without_a_retry_even_after_a_daemon_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("ternd.log");
    let d =
        RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), &[], &log).expect("ternd starts");
    let server = Arc::new(std::sync::Mutex::new(d.addr));
    let relay = Relay::start(server.clone()).await;
    let state = tmp.path().join("alice");

    assert_eq!(login_once(&relay, &d, Some(&state)).await, 1, "first login");
    assert_eq!(
        login_once(&relay, &d, Some(&state)).await,
        0,
        "the state folder's token proves the address"
    );

    // SIGKILL and restart on the same data folder: the same secret file,
    // so the same token key.
    let addr = d.addr;
    d.kill();
    let d = RealDaemon::spawn_at(&data, addr, &[], &log);
    assert_eq!(
        login_once(&relay, &d, Some(&state)).await,
        0,
        "a token outlives a restart"
    );
    assert_eq!(
        login_once(&relay, &d, None).await,
        1,
        "no state folder, no token: RETRY as before"
    );
}
