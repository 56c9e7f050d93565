//! Mosquitto's side of each workload, driven by a real MQTT client library
//! (`rumqttc`, MQTT 3.1.1, QoS 1, persistent sessions: clean session false)
//! over TCP; the clients are set up in [`crate::mqtt_client`].

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, QoS};
use tern_lab::process::ChildProcess;
use tokio::task::JoinHandle;

use crate::args::Shape;
use crate::arrivals::{payload, Arrivals};
use crate::lab::{Lab, Meter, Usage};
use crate::mqtt_client::{
    client, get, poll_until, publish_all, publishers, spawn_subscriber, subscriber, wait_until,
    Counters,
};
use crate::results::{quantile_ms, LatencyResult, ThroughputResult};

/// A subscriber's event loop as a task (pushed onto `tasks`) recording
/// into a fresh [`Arrivals`] of `per` messages, timed on `epoch`.
fn record(
    el: EventLoop,
    per: u64,
    epoch: &Arc<Mutex<Instant>>,
    k: &Counters,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Arc<Mutex<Arrivals>> {
    let a = Arc::new(Mutex::new(Arrivals::new(per)));
    let (d, r) = (k.delivered.clone(), k.reconnects.clone());
    tasks.push(spawn_subscriber(el, epoch.clone(), a.clone(), d, r));
    a
}

/// Subscribers `{prefix}-{i}` of `{topic}/{i}` (persistent sessions), each
/// recording into its own [`Arrivals`] of `per` messages; their event loops
/// are pushed onto `tasks`. `epoch` is the clock arrivals are timed on.
#[allow(clippy::too_many_arguments)]
async fn subscribers(
    prefix: &str,
    topic: &str,
    pairs: u64,
    per: u64,
    addr: SocketAddr,
    inflight: u16,
    epoch: &Arc<Mutex<Instant>>,
    k: &Counters,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<(Vec<AsyncClient>, Vec<Arc<Mutex<Arrivals>>>)> {
    let (mut clients, mut arrivals) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        let (c, el) = subscriber(
            &format!("{prefix}-{i}"),
            &format!("{topic}/{i}"),
            addr,
            inflight,
        )
        .await?;
        arrivals.push(record(el, per, epoch, k, tasks));
        clients.push(c);
    }
    Ok((clients, arrivals))
}

/// Waits (at most `max_time` from `start`) until `counter` reaches
/// `total`; its value then.
async fn count_to(counter: &AtomicU64, total: u64, start: Instant, max_time: Duration) -> u64 {
    wait_until(start + max_time, Duration::from_millis(1), || {
        get(counter) >= total
    })
    .await;
    get(counter)
}

/// A Mosquitto phase without latency figures: `done` of `total`.
fn unpaced(workload: &str, total: u64, done: u64, usage: Usage) -> ThroughputResult {
    let no_latency = (f64::NAN, f64::NAN);
    ThroughputResult::new(
        "mosquitto",
        workload,
        (total, done),
        no_latency,
        usage,
        done < total,
    )
}

fn abort(tasks: &mut Vec<JoinHandle<()>>) {
    for t in tasks.drain(..) {
        t.abort();
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
    let inflight = shape.window as u16;
    let k = Counters::new();
    let epoch = Arc::new(Mutex::new(Instant::now()));
    let mut tasks = Vec::new();
    let (keep, arrivals) = subscribers(
        "pb-on-sub",
        "pb/on",
        pairs,
        per,
        addr,
        inflight,
        &epoch,
        &k,
        &mut tasks,
    )
    .await?;
    let pubs = publishers("pb-on-pub", pairs, addr, inflight, &k, &mut tasks).await?;
    let meter = Meter::start(lab, server.cpu());
    let start = Instant::now();
    *epoch.lock().expect("epoch") = start;
    publish_all(&pubs, "pb/on", per, shape.payload, start, &mut tasks);
    wait_until(start + shape.max_time, Duration::from_millis(1), || {
        get(&k.delivered) >= total && get(&k.pubacks) >= total
    })
    .await;
    let usage = meter.usage(lab, server.cpu(), start.elapsed());
    abort(&mut tasks);
    let (delivered, pubacks) = (get(&k.delivered), get(&k.pubacks));
    let mut samples: Vec<u64> = Vec::new();
    for a in &arrivals {
        if let Ok(a) = a.lock() {
            samples.extend_from_slice(&a.samples);
        }
    }
    samples.sort_unstable();
    drop(keep);
    Ok(ThroughputResult::new(
        "mosquitto",
        "online",
        (total, delivered.min(pubacks)),
        (quantile_ms(&samples, 0.5), quantile_ms(&samples, 0.99)),
        usage,
        delivered < total || pubacks < total,
    ))
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
    let pubs = publishers("pb-off-pub", pairs, addr, inflight, &k, &mut tasks).await?;
    let meter = Meter::start(lab, server.cpu());
    let start = Instant::now();
    publish_all(&pubs, "pb/off", per, shape.payload, start, &mut tasks);
    let pubacks = count_to(&k.pubacks, total, start, shape.max_time).await;
    let usage = meter.usage(lab, server.cpu(), start.elapsed());
    let store = unpaced("offline-store", total, pubacks, usage);
    abort(&mut tasks);
    drop(pubs);

    // Drain: the same client ids reconnect with clean session false and get
    // their queued messages.
    let meter = Meter::start(lab, server.cpu());
    let start = Instant::now();
    let epoch = Arc::new(Mutex::new(start));
    let mut keep = Vec::new();
    for i in 0..pairs {
        let (c, el) = client(&format!("pb-off-sub-{i}"), addr, inflight);
        record(el, per, &epoch, &k, &mut tasks);
        keep.push(c);
    }
    let got = count_to(&k.delivered, total, start, shape.max_time).await;
    let usage = meter.usage(lab, server.cpu(), start.elapsed());
    let drain = unpaced("offline-drain", total, got, usage);
    abort(&mut tasks);
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
    let inflight = shape.window as u16;
    let k = Counters::new();
    let epoch = Arc::new(Mutex::new(Instant::now()));
    let mut tasks = Vec::new();
    let (sub_c, arrivals) = subscribers(
        &format!("pb-lat-sub-{tag}"),
        &format!("pb/lat/{tag}"),
        1,
        n,
        addr,
        inflight,
        &epoch,
        &k,
        &mut tasks,
    )
    .await?;
    let pub_c = publishers(
        &format!("pb-lat-pub-{tag}"),
        1,
        addr,
        inflight,
        &k,
        &mut tasks,
    )
    .await?
    .remove(0);
    tokio::task::block_in_place(|| lab.set_loss(loss))?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let meter = Meter::start(lab, server.cpu());
    let start = Instant::now();
    *epoch.lock().expect("epoch") = start;
    let deadline = start + interval * n as u32 + shape.latency_grace;
    let size = shape.payload;
    {
        let c = pub_c.clone();
        let topic = format!("pb/lat/{tag}/0");
        let tstart = tokio::time::Instant::from_std(start);
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                let at = interval * i as u32;
                tokio::time::sleep_until(tstart + at).await;
                let p = payload(at.as_micros() as u64, i, size);
                if c.publish(topic.as_str(), QoS::AtLeastOnce, false, p)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    wait_until(deadline, Duration::from_millis(2), || {
        get(&k.delivered) >= n
    })
    .await;
    let usage = meter.usage(lab, server.cpu(), start.elapsed());
    abort(&mut tasks);
    drop((sub_c, pub_c));
    tokio::task::block_in_place(|| lab.set_loss(0.0))?;
    let arrived = arrivals[0].lock().expect("arrivals").clone();
    Ok(LatencyResult::new(
        "mosquitto",
        loss,
        0,
        n,
        arrived,
        get(&k.reconnects),
        usage,
    ))
}
