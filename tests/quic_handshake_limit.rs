//! QUIC connection attempts are limited per source address (`[limits]
//! quic_handshake_rate`, burst twice that): attempts over the limit are
//! ignored before any TLS work and counted, and the clients behind them get
//! in once the source's budget refills (their handshakes are resent).

#[allow(unused_macros)]
#[path = "support/transport.rs"]
mod transport;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tern::client::Client;
use transport::*;

#[tokio::test]
async fn handshakes_over_a_sources_rate_are_ignored_and_counted_then_let_in() {
    // One attempt per second from 127.0.0.1, two at once.
    let net = Net::start_with(|c| c.limits.quic_handshake_rate = 1.0).await;
    let clients =
        join_all((1..=4).map(|u| Client::connect(net.options(Transport::Quic, u, 1)))).await;
    let mut connected = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        connected.push(c.unwrap_or_else(|e| panic!("client {} gets in: {e}", i + 1)));
    }
    // The counters are published once a second.
    let end = Instant::now() + Duration::from_secs(5);
    let limited = loop {
        let n = net.metrics.snapshot().quic_handshakes_limited;
        if n >= 2 || Instant::now() > end {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        limited >= 2,
        "two of four attempts were over the burst: {limited}"
    );
    for c in connected {
        c.close().await;
    }
    net.stop().await;
}
