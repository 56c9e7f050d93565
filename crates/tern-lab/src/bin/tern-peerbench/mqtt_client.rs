//! The MQTT side's plumbing: clients with the settings every workload
//! uses (`rumqttc`, MQTT 3.1.1, QoS 1, persistent sessions: clean session
//! false, TCP_NODELAY), and their event loops as counting tasks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::task::JoinHandle;

use crate::arrivals::Arrivals;

/// A client and its event loop, with the settings every client here uses:
/// persistent session (clean session false), QoS 1 window `inflight`,
/// TCP_NODELAY, 30 s keep-alive.
pub fn client(id: &str, addr: SocketAddr, inflight: u16) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_clean_session(false);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(inflight.max(1));
    o.set_max_packet_size(1 << 20, 1 << 20);
    // A short request queue: publish() waits for room, as Tern's sender
    // waits for its window, so latency is not spent in a client-side queue.
    let (c, mut el) = AsyncClient::new(o, 16);
    let mut no = NetworkOptions::new();
    no.set_tcp_nodelay(true);
    no.set_connection_timeout(10);
    el.set_network_options(no);
    (c, el)
}

/// Polls until `want` matches an event; network errors are retried (the
/// event loop reconnects on the next poll) until `timeout`.
pub async fn poll_until(
    el: &mut EventLoop,
    timeout: Duration,
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> Result<()> {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("MQTT: no {what} within {timeout:?}");
        }
        match tokio::time::timeout(left, el.poll()).await {
            Ok(Ok(ev)) if want(&ev) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => bail!("MQTT: no {what} within {timeout:?}"),
        }
    }
}

fn is_connack(e: &Event) -> bool {
    matches!(e, Event::Incoming(Packet::ConnAck(_)))
}

fn is_suback(e: &Event) -> bool {
    matches!(e, Event::Incoming(Packet::SubAck(_)))
}

/// A subscriber's event loop as a task: records every PUBLISH into
/// `arrivals` and counts new arrivals in `delivered`.
pub fn spawn_subscriber(
    mut el: EventLoop,
    epoch: Arc<Mutex<Instant>>,
    arrivals: Arc<Mutex<Arrivals>>,
    delivered: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now_us = epoch
                        .lock()
                        .map(|e| e.elapsed().as_micros() as u64)
                        .unwrap_or(0);
                    if arrivals
                        .lock()
                        .map(|mut r| r.arrive(now_us, &p.payload))
                        .unwrap_or(false)
                    {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// A publisher's event loop as a task: counts PUBACKs.
pub fn spawn_publisher_loop(
    mut el: EventLoop,
    pubacks: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    pubacks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// Connects a subscriber and subscribes it (QoS 1).
pub async fn subscriber(
    id: &str,
    topic: &str,
    addr: SocketAddr,
    inflight: u16,
) -> Result<(AsyncClient, EventLoop)> {
    let (c, mut el) = client(id, addr, inflight);
    poll_until(&mut el, Duration::from_secs(30), "CONNACK", is_connack).await?;
    c.subscribe(topic, QoS::AtLeastOnce).await?;
    poll_until(&mut el, Duration::from_secs(30), "SUBACK", is_suback).await?;
    Ok((c, el))
}

pub async fn publisher(
    id: &str,
    addr: SocketAddr,
    inflight: u16,
) -> Result<(AsyncClient, EventLoop)> {
    let (c, mut el) = client(id, addr, inflight);
    poll_until(&mut el, Duration::from_secs(30), "CONNACK", is_connack).await?;
    Ok((c, el))
}

pub struct Counters {
    /// Messages the subscribers got (first arrivals).
    pub delivered: Arc<AtomicU64>,
    /// PUBACKs the publishers got.
    pub pubacks: Arc<AtomicU64>,
    /// Network errors seen by any event loop.
    pub reconnects: Arc<AtomicU64>,
}

impl Counters {
    pub fn new() -> Counters {
        Counters {
            delivered: Arc::new(AtomicU64::new(0)),
            pubacks: Arc::new(AtomicU64::new(0)),
            reconnects: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// `pairs` publishers `{prefix}-{i}`, each with its PUBACK-counting event
/// loop pushed onto `tasks`.
pub async fn publishers(
    prefix: &str,
    pairs: u64,
    addr: SocketAddr,
    inflight: u16,
    k: &Counters,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Vec<AsyncClient>> {
    let mut pubs = Vec::new();
    for i in 0..pairs {
        let (c, el) = publisher(&format!("{prefix}-{i}"), addr, inflight).await?;
        tasks.push(spawn_publisher_loop(
            el,
            k.pubacks.clone(),
            k.reconnects.clone(),
        ));
        pubs.push(c);
    }
    Ok(pubs)
}

/// Publisher `i` sends `per` QoS 1 messages of `size` bytes to
/// `{topic}/{i}`, as fast as its window allows, stamped with the time
/// since `start`.
pub fn publish_all(
    pubs: &[AsyncClient],
    topic: &str,
    per: u64,
    size: usize,
    start: Instant,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    for (i, c) in pubs.iter().enumerate() {
        let c = c.clone();
        let topic = format!("{topic}/{i}");
        tasks.push(tokio::spawn(async move {
            for n in 0..per {
                let ts = start.elapsed().as_micros() as u64;
                let p = crate::arrivals::payload(ts, n, size);
                if c.publish(topic.as_str(), QoS::AtLeastOnce, false, p)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
}

/// Waits until `done` holds or `deadline` passes, looking every `step`.
pub async fn wait_until(deadline: Instant, step: Duration, done: impl Fn() -> bool) {
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(step).await;
    }
}

/// The current value of a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
