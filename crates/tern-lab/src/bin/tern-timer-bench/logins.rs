//! Time to connect on a lossy link (issue 14, item 8), in virtual time: the
//! real [`ClientConn`] logging in to the real [`Broker`] with the defaults
//! (sealed, address validation on: LOGIN → RETRY → HANDSHAKE with the
//! cookie → LOGIN_OK inside message 2), every datagram through a seeded
//! [`Link`] each way. Measured from the client's creation (`connect`) to its
//! `LoggedIn` event. One login at a time, each a new device from a new
//! address; the broker and its store live across logins, as a server does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tern_core::auth::{Claims, TokenKeys};
use tern_core::broker::{Broker, BrokerConfig};
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::seal::StaticKey;
use tern_core::store::{MemStore, Store};
use tern_core::time::Time;
use tern_sim::impairment::{Impairment, Link};

use crate::net::{mix, pct_ms};
use crate::{JITTER, ONE_WAY, RTT_MS};

/// A login retry schedule: first interval, then doubling up to a ceiling.
#[derive(Clone, Copy)]
pub struct Retry {
    pub name: &'static str,
    pub initial: Duration,
    pub max: Duration,
    /// Copies of each login datagram (`ClientConfig::login_copies`).
    pub copies: u8,
}

/// Connect times of `n` logins, microseconds, sorted; and how many did not
/// log in within `limit`.
pub fn run(seed: u64, n: u64, imp: &Impairment, retry: Retry, limit: Duration) -> (Vec<u64>, u64) {
    let store = Arc::new(MemStore::new());
    let keys = TokenKeys::new(b"bench-secret".to_vec(), vec![]);
    let server_key = StaticKey::from_secret([7; 32]);
    let cfg = BrokerConfig {
        seal_key: Some(server_key.clone()),
        ..BrokerConfig::default()
    };
    assert!(cfg.validate_addresses, "the default validates addresses");
    let mut broker = Broker::new(
        cfg,
        store.clone(),
        keys.clone(),
        1_700_000_000_000,
        mix(&[seed, 1]),
    );
    let mut now = Time::ZERO;
    let mut times = Vec::with_capacity(n as usize);
    let mut failed = 0;
    for i in 0..n {
        let token = keys.sign(Claims {
            user: 1_000 + i,
            device: 1,
            expires: u64::MAX,
        });
        let mut ccfg = ClientConfig::new(token.into());
        ccfg.server_key = Some(server_key.public());
        ccfg.login_initial = retry.initial;
        ccfg.login_max = retry.max;
        ccfg.login_copies = retry.copies;
        let addr = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32 + 1)),
            40_000,
        );
        let mut up = Link::new(imp.clone(), mix(&[seed, 2, i]));
        let mut down = Link::new(imp.clone(), mix(&[seed, 3, i]));
        let start = now;
        let mut client = ClientConn::new(ccfg, now, mix(&[seed, 4, i]));
        // (arrival, id) → (to the server?, datagram)
        let mut queue: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        let mut payloads = std::collections::HashMap::new();
        let mut next_id = 0u64;
        let mut done = None;
        while done.is_none() && now.saturating_since(start) < limit {
            while let Some(&Reverse((at, id))) = queue.peek() {
                if at > now.as_micros() {
                    break;
                }
                queue.pop();
                let (to_server, d): (bool, Bytes) = payloads.remove(&id).expect("queued");
                if to_server {
                    broker.handle_datagram(now, addr, d);
                } else {
                    client.handle_datagram(now, d);
                }
            }
            broker.handle_timeout(now);
            while let Some(c) = broker.poll_commit() {
                store.commit(&c.batch).expect("memory store");
                broker.handle_committed(now, c.id, Ok(()));
            }
            client.handle_timeout(now);
            while let Some(ev) = client.poll_event() {
                if matches!(ev, ClientEvent::LoggedIn { .. }) {
                    done = Some(now);
                }
            }
            let mut out = Vec::new();
            while let Some(d) = client.poll_transmit(now) {
                out.extend(
                    up.transmit(now.as_micros(), d)
                        .deliveries
                        .into_iter()
                        .map(|o| (true, o)),
                );
            }
            while let Some((to, d)) = broker.poll_transmit() {
                if to.addr == addr {
                    out.extend(
                        down.transmit(now.as_micros(), d)
                            .deliveries
                            .into_iter()
                            .map(|o| (false, o)),
                    );
                }
            }
            for (to_server, o) in out {
                next_id += 1;
                payloads.insert(next_id, (to_server, o.datagram));
                queue.push(Reverse((o.at_us, next_id)));
            }
            while broker.poll_event().is_some() {}
            let next = [
                queue.peek().map(|Reverse((at, _))| Time::from_micros(*at)),
                broker.poll_timeout(),
                client.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_millis(1));
            now = next.max(now + Duration::from_micros(1));
        }
        match done {
            Some(t) => times.push(t.saturating_since(start).as_micros() as u64),
            None => failed += 1,
        }
        // The next device starts a little later; the old session stays.
        now += Duration::from_millis(100);
    }
    times.sort_unstable();
    (times, failed)
}

/// Time to connect under loss (issue 14, item 8), Tern's login retry
/// against a fixed 2 s retry (MobileIMSDK's re-login interval). Returns
/// Tern's (p50, p99) in ms at 20 % loss.
pub fn report(seed: u64, n: u64) -> Option<(f64, f64)> {
    println!("== Time to connect (real ClientConn + Broker, sealed, address validation on) ==");
    println!(
        "  {n} logins per row, one at a time, each a new device; RTT {RTT_MS} ms, jitter +-{} ms, random loss each way; \
         from connect to LoggedIn",
        JITTER.as_millis()
    );
    let defaults = ClientConfig::new(bytes::Bytes::new());
    let retries = [
        Retry {
            name: "Tern (default)",
            initial: defaults.login_initial,
            max: defaults.login_max,
            copies: defaults.login_copies,
        },
        Retry {
            name: "[diag] Tern, 2 copies",
            initial: defaults.login_initial,
            max: defaults.login_max,
            copies: 2,
        },
        Retry {
            name: "[diag] Tern, 1 copy (before)",
            initial: defaults.login_initial,
            max: defaults.login_max,
            copies: 1,
        },
        Retry {
            name: "fixed 2 s retry, 1 copy",
            initial: Duration::from_secs(2),
            max: Duration::from_secs(2),
            copies: 1,
        },
    ];
    println!(
        "  {:<30} {:>6} {:>8} {:>8} {:>8} {:>10} {:>12}",
        "login retry", "loss", "p50 ms", "p90 ms", "p99 ms", "p50 RTTs", "not in 60 s"
    );
    let mut at20 = None;
    for (li, loss) in [0.0, 0.10, 0.20].into_iter().enumerate() {
        let imp = Impairment {
            loss,
            delay: ONE_WAY,
            jitter: JITTER,
            ..Impairment::default()
        };
        for (ri, r) in retries.iter().enumerate() {
            let (t, failed) = run(
                mix(&[seed, 7, li as u64]),
                n,
                &imp,
                *r,
                Duration::from_secs(60),
            );
            let (p50, p90, p99) = (pct_ms(&t, 50.0), pct_ms(&t, 90.0), pct_ms(&t, 99.0));
            println!(
                "  {:<30} {:>5.0}% {:>8.1} {:>8.1} {:>8.1} {:>10.2} {:>12}",
                r.name,
                loss * 100.0,
                p50,
                p90,
                p99,
                p50 / RTT_MS,
                failed
            );
            if ri == 0 && loss == 0.20 {
                at20 = Some((p50, p99));
            }
        }
    }
    println!();
    at20
}
