//! Mosquitto's side of each workload, driven by a real MQTT client library
//! (`rumqttc`, MQTT 3.1.1, QoS 1, persistent sessions: clean session false)
//! over TCP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use tokio::task::JoinHandle;

use tern_lab::process::ChildProcess;

use crate::lab::Lab;
use crate::results::{LatencyResult, ThroughputResult};
use crate::tern_load::{payload, Receipts};
use crate::Shape;

fn pct(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1] as f64 / 1000.0
}

/// A client and its event loop, with the settings every client here uses:
/// persistent session (clean session false), QoS 1 window `inflight`,
/// TCP_NODELAY, 30 s keep-alive.
fn client(id: &str, addr: SocketAddr, inflight: u16) -> (AsyncClient, EventLoop) {
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
async fn poll_until(
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
/// `receipts` and counts new arrivals in `delivered`.
fn spawn_subscriber(
    mut el: EventLoop,
    epoch: Arc<Mutex<Instant>>,
    receipts: Arc<Mutex<Receipts>>,
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
                    if receipts
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
fn spawn_publisher_loop(
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
async fn subscriber(
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

async fn publisher(id: &str, addr: SocketAddr, inflight: u16) -> Result<(AsyncClient, EventLoop)> {
    let (c, mut el) = client(id, addr, inflight);
    poll_until(&mut el, Duration::from_secs(30), "CONNACK", is_connack).await?;
    Ok((c, el))
}

struct Counters {
    delivered: Arc<AtomicU64>,
    pubacks: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            delivered: Arc::new(AtomicU64::new(0)),
            pubacks: Arc::new(AtomicU64::new(0)),
            reconnects: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Online throughput: `pairs` publishers each to its own online persistent
/// subscriber, `window` QoS 1 messages in flight per publisher (and the
/// broker's `max_inflight_messages` to each subscriber); a message counts
/// once the publisher has its PUBACK and the subscriber has it.
pub async fn online(
    lab: &Lab,
    server: &ChildProcess,
    addr: SocketAddr,
    shape: &Shape,
) -> Result<ThroughputResult> {
    let pairs = shape.pairs as u64;
    let per = shape.messages / pairs;
    let total = per * pairs;
    let k = Counters::new();
    let epoch = Arc::new(Mutex::new(Instant::now()));
    let mut tasks = Vec::new();
    let mut receipts = Vec::new();
    let mut keep = Vec::new();
    for i in 0..pairs {
        let (c, el) = subscriber(
            &format!("pb-on-sub-{i}"),
            &format!("pb/on/{i}"),
            addr,
            shape.window as u16,
        )
        .await?;
        let r = Arc::new(Mutex::new(Receipts::new(per)));
        receipts.push(r.clone());
        tasks.push(spawn_subscriber(
            el,
            epoch.clone(),
            r,
            k.delivered.clone(),
            k.reconnects.clone(),
        ));
        keep.push(c);
    }
    let mut pubs = Vec::new();
    for i in 0..pairs {
        let (c, el) = publisher(&format!("pb-on-pub-{i}"), addr, shape.window as u16).await?;
        tasks.push(spawn_publisher_loop(
            el,
            k.pubacks.clone(),
            k.reconnects.clone(),
        ));
        pubs.push(c);
    }
    let w0 = lab.wire();
    let (s0, p0) = (server.cpu(), tern_lab::bench::util::process_cpu_now());
    let start = Instant::now();
    *epoch.lock().expect("epoch") = start;
    let deadline = start + shape.max_time;
    let size = shape.payload;
    for (i, c) in pubs.iter().enumerate() {
        let c = c.clone();
        let topic = format!("pb/on/{i}");
        tasks.push(tokio::spawn(async move {
            for n in 0..per {
                let ts = start.elapsed().as_micros() as u64;
                if c.publish(
                    topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    payload(ts, n, size),
                )
                .await
                .is_err()
                {
                    break;
                }
            }
        }));
    }
    while (k.delivered.load(Ordering::Relaxed) < total || k.pubacks.load(Ordering::Relaxed) < total)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall = start.elapsed();
    let wire = lab.wire().since(w0);
    let server_cpu = server.cpu().saturating_sub(s0);
    let client_cpu = tern_lab::bench::util::process_cpu_now().saturating_sub(p0);
    for t in &tasks {
        t.abort();
    }
    let delivered = k.delivered.load(Ordering::Relaxed);
    let pubacks = k.pubacks.load(Ordering::Relaxed);
    let mut samples: Vec<u64> = Vec::new();
    for r in &receipts {
        if let Ok(r) = r.lock() {
            samples.extend_from_slice(&r.samples);
        }
    }
    samples.sort_unstable();
    drop(keep);
    Ok(ThroughputResult {
        peer: "mosquitto".into(),
        workload: "online".into(),
        messages: total,
        completed: delivered.min(pubacks),
        elapsed_s: wall.as_secs_f64(),
        rate: delivered.min(pubacks) as f64 / wall.as_secs_f64().max(1e-9),
        p50_ms: quantile_ms(&samples, 0.5),
        p99_ms: quantile_ms(&samples, 0.99),
        wire: wire.into(),
        server_cpu_pct: pct(server_cpu, wall),
        client_cpu_pct: pct(client_cpu, wall),
        timed_out: delivered < total || pubacks < total,
    })
}

/// Durable offline throughput: persistent subscribers subscribe and go
/// offline; publishers send QoS 1 messages, which the broker queues for
/// them (a message counts at its PUBACK); then the subscribers reconnect
/// and drain their queues.
pub async fn offline(
    lab: &Lab,
    server: &ChildProcess,
    addr: SocketAddr,
    shape: &Shape,
) -> Result<(ThroughputResult, ThroughputResult)> {
    let pairs = shape.pairs as u64;
    let per = shape.offline_messages / pairs;
    let total = per * pairs;
    let inflight = shape.window as u16;
    // Subscribe, then disconnect cleanly: the sessions stay on the broker.
    for i in 0..pairs {
        let (c, mut el) = subscriber(
            &format!("pb-off-sub-{i}"),
            &format!("pb/off/{i}"),
            addr,
            inflight,
        )
        .await?;
        c.disconnect().await?;
        poll_until(&mut el, Duration::from_secs(10), "DISCONNECT sent", |e| {
            matches!(e, Event::Outgoing(Outgoing::Disconnect))
        })
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let k = Counters::new();
    let mut tasks = Vec::new();
    let mut pubs = Vec::new();
    for i in 0..pairs {
        let (c, el) = publisher(&format!("pb-off-pub-{i}"), addr, inflight).await?;
        tasks.push(spawn_publisher_loop(
            el,
            k.pubacks.clone(),
            k.reconnects.clone(),
        ));
        pubs.push(c);
    }
    let w0 = lab.wire();
    let (s0, p0) = (server.cpu(), tern_lab::bench::util::process_cpu_now());
    let start = Instant::now();
    let deadline = start + shape.max_time;
    let size = shape.payload;
    for (i, c) in pubs.iter().enumerate() {
        let c = c.clone();
        let topic = format!("pb/off/{i}");
        tasks.push(tokio::spawn(async move {
            for n in 0..per {
                let ts = start.elapsed().as_micros() as u64;
                if c.publish(
                    topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    payload(ts, n, size),
                )
                .await
                .is_err()
                {
                    break;
                }
            }
        }));
    }
    while k.pubacks.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall = start.elapsed();
    let pubacks = k.pubacks.load(Ordering::Relaxed);
    let store = ThroughputResult {
        peer: "mosquitto".into(),
        workload: "offline-store".into(),
        messages: total,
        completed: pubacks,
        elapsed_s: wall.as_secs_f64(),
        rate: pubacks as f64 / wall.as_secs_f64().max(1e-9),
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        wire: lab.wire().since(w0).into(),
        server_cpu_pct: pct(server.cpu().saturating_sub(s0), wall),
        client_cpu_pct: pct(
            tern_lab::bench::util::process_cpu_now().saturating_sub(p0),
            wall,
        ),
        timed_out: pubacks < total,
    };
    for t in tasks.drain(..) {
        t.abort();
    }
    drop(pubs);

    // Drain: the same client ids reconnect with clean session false and get
    // their queued messages.
    let w0 = lab.wire();
    let (s0, p0) = (server.cpu(), tern_lab::bench::util::process_cpu_now());
    let start = Instant::now();
    let epoch = Arc::new(Mutex::new(start));
    let deadline = start + shape.max_time;
    let mut keep = Vec::new();
    for i in 0..pairs {
        let (c, el) = client(&format!("pb-off-sub-{i}"), addr, inflight);
        let r = Arc::new(Mutex::new(Receipts::new(per)));
        tasks.push(spawn_subscriber(
            el,
            epoch.clone(),
            r,
            k.delivered.clone(),
            k.reconnects.clone(),
        ));
        keep.push(c);
    }
    while k.delivered.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall = start.elapsed();
    let got = k.delivered.load(Ordering::Relaxed);
    let drain = ThroughputResult {
        peer: "mosquitto".into(),
        workload: "offline-drain".into(),
        messages: total,
        completed: got,
        elapsed_s: wall.as_secs_f64(),
        rate: got as f64 / wall.as_secs_f64().max(1e-9),
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        wire: lab.wire().since(w0).into(),
        server_cpu_pct: pct(server.cpu().saturating_sub(s0), wall),
        client_cpu_pct: pct(
            tern_lab::bench::util::process_cpu_now().saturating_sub(p0),
            wall,
        ),
        timed_out: got < total,
    };
    for t in &tasks {
        t.abort();
    }
    drop(keep);
    Ok((store, drain))
}

/// One publisher, one online persistent subscriber, one QoS 1 message every
/// `interval`; latency from the scheduled time to the subscribing app. The
/// loss is set after both have connected and subscribed.
pub async fn latency(
    lab: &Lab,
    server: &ChildProcess,
    addr: SocketAddr,
    loss: f64,
    shape: &Shape,
    tag: &str,
) -> Result<LatencyResult> {
    let n = shape.latency_messages;
    let interval = shape.latency_interval;
    let k = Counters::new();
    let epoch = Arc::new(Mutex::new(Instant::now()));
    let topic = format!("pb/lat/{tag}");
    let (sub_c, sub_el) = subscriber(
        &format!("pb-lat-sub-{tag}"),
        &topic,
        addr,
        shape.window as u16,
    )
    .await?;
    let receipts = Arc::new(Mutex::new(Receipts::new(n)));
    let mut tasks = vec![spawn_subscriber(
        sub_el,
        epoch.clone(),
        receipts.clone(),
        k.delivered.clone(),
        k.reconnects.clone(),
    )];
    let (pub_c, pub_el) =
        publisher(&format!("pb-lat-pub-{tag}"), addr, shape.window as u16).await?;
    tasks.push(spawn_publisher_loop(
        pub_el,
        k.pubacks.clone(),
        k.reconnects.clone(),
    ));
    tokio::task::block_in_place(|| lab.set_loss(loss))?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let w0 = lab.wire();
    let s0 = server.cpu();
    let start = Instant::now();
    *epoch.lock().expect("epoch") = start;
    let deadline = start + interval * n as u32 + shape.latency_grace;
    let size = shape.payload;
    {
        let c = pub_c.clone();
        let topic = topic.clone();
        let tstart = tokio::time::Instant::from_std(start);
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                let at = interval * i as u32;
                tokio::time::sleep_until(tstart + at).await;
                let ts = at.as_micros() as u64;
                if c.publish(
                    topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    payload(ts, i, size),
                )
                .await
                .is_err()
                {
                    break;
                }
            }
        }));
    }
    while k.delivered.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    let wire = lab.wire().since(w0);
    let server_cpu = server.cpu().saturating_sub(s0);
    for t in &tasks {
        t.abort();
    }
    drop((sub_c, pub_c));
    tokio::task::block_in_place(|| lab.set_loss(0.0))?;
    let (samples, timeline, duplicates, out_of_order) = {
        let r = receipts.lock().expect("receipts");
        (
            r.samples.clone(),
            r.timeline.clone(),
            r.duplicates,
            r.out_of_order,
        )
    };
    let mut r = LatencyResult {
        peer: "mosquitto".into(),
        loss,
        added_rtt_ms: 0,
        sent: n,
        delivered: k.delivered.load(Ordering::Relaxed),
        duplicates,
        out_of_order,
        reconnects: k.reconnects.load(Ordering::Relaxed),
        p50_ms: 0.0,
        p90_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
        max_ms: 0.0,
        wire: wire.into(),
        server_cpu_ms: server_cpu.as_millis() as u64,
        elapsed_s: elapsed.as_secs_f64(),
        samples,
        timeline,
    };
    r.finish();
    Ok(r)
}
