//! Load through the client library ([`tern::client::Client`]) for the
//! transport-security benchmarks. Unlike [`super::flow`] (sans-IO sessions
//! over raw sockets), this goes through the same async client applications
//! use, so every transport it supports (raw UDP, QUIC, and any later one) is
//! driven by exactly the same code: only the [`Column`] differs.
//!
//! Two shapes of load, both with online receivers (a message counts once its
//! sender has the daemon's stored ACK and its receiver has the message):
//! [`throughput`] keeps a window of messages in flight per sender;
//! [`fixed_rate`] sends at a steady total rate to measure latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::task::{JoinError, JoinSet};

use super::columns::Column;
use super::daemon::Daemon;
use super::util::{histogram, token};
use super::{BenchError, Result};
use tern::client::{Client, ClientError, Event, Sent, SyncBody};

/// The load generator's runtime: two worker threads named `load-rt`.
pub fn load_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load-rt")
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the load generator's runtime"))
}

/// Sender/receiver pairs: sender `i` is user `base + i`, receiver `i` is
/// user `base + pairs + i`, device 1 each.
pub struct Pairs {
    senders: Vec<Client>,
    receivers: Vec<Client>,
    receiver_users: Vec<u64>,
}

async fn connect_all(d: &Daemon, col: &Column, users: &[u64]) -> Result<Vec<Client>> {
    let mut set = JoinSet::new();
    for (i, &u) in users.iter().enumerate() {
        let opts = (col.client)(d, token(&d.keys, u, 1))?;
        set.spawn(async move { (i, Client::connect(opts).await) });
    }
    let mut out: Vec<Option<Client>> = (0..users.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, c) = r.map_err(|e| BenchError::Failed(format!("connect task: {e}")))?;
        out[i] = Some(c.map_err(|e| BenchError::Failed(format!("{}: connect: {e}", col.name)))?);
    }
    Ok(out.into_iter().flatten().collect())
}

impl Pairs {
    /// Connects `n` pairs (receivers first, so they are online).
    pub async fn connect(d: &Daemon, col: &Column, base: u64, n: usize) -> Result<Pairs> {
        let n = n.max(1) as u64;
        let receiver_users: Vec<u64> = (0..n).map(|i| base + n + i).collect();
        let sender_users: Vec<u64> = (0..n).map(|i| base + i).collect();
        let receivers = connect_all(d, col, &receiver_users).await?;
        let senders = connect_all(d, col, &sender_users).await?;
        Ok(Pairs {
            senders,
            receivers,
            receiver_users,
        })
    }

    /// Logs every client out.
    pub async fn close(self) {
        let mut set = JoinSet::new();
        for c in self.senders.into_iter().chain(self.receivers) {
            set.spawn(c.close());
        }
        while set.join_next().await.is_some() {}
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct LoadReport {
    /// Messages submitted.
    pub submitted: u64,
    /// Stored ACKs received by the senders.
    pub stored: u64,
    /// Messages received by the receivers.
    pub delivered: u64,
    /// DELIVERED receipts the senders saw.
    pub receipts: u64,
    /// Sessions lost (should be 0 on loopback).
    pub disconnects: u64,
    /// From the start to the last stored ACK or delivery.
    pub elapsed: Duration,
    /// Submit to stored ACK, microseconds.
    pub stored_latency: Histogram<u64>,
    /// Submit to arrival at the receiving application, microseconds.
    pub delivery_latency: Histogram<u64>,
    /// Not everything was stored and delivered in time.
    pub incomplete: bool,
}

impl LoadReport {
    /// Messages both stored and delivered.
    pub fn completed(&self) -> u64 {
        self.stored.min(self.delivered)
    }
}

/// Payload: submit time (us since `epoch`), then filler.
fn payload(epoch: Instant, len: usize) -> (u64, Bytes) {
    let ts = epoch.elapsed().as_micros() as u64;
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&ts.to_be_bytes());
    while v.len() < len.max(16) {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    (ts, Bytes::from(v))
}

fn since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// Settled sends: the submit time, and the outcome.
type SendSet = JoinSet<(u64, std::result::Result<Sent, ClientError>)>;

/// One sender's client and what it counted.
struct Sender {
    client: Arc<Client>,
    to: u64,
    len: usize,
    epoch: Instant,
    submitted: u64,
    stored: u64,
    receipts: u64,
    disconnects: u64,
    last_us: u64,
    latency: Histogram<u64>,
}

impl Sender {
    /// Sends `len`-byte messages to user `to`, timed from `epoch`.
    fn new(client: Client, to: u64, len: usize, epoch: Instant) -> Sender {
        Sender {
            client: Arc::new(client),
            to,
            len,
            epoch,
            submitted: 0,
            stored: 0,
            receipts: 0,
            disconnects: 0,
            last_us: 0,
            latency: histogram(),
        }
    }

    /// Submits one message into `set`.
    fn submit(&mut self, set: &mut SendSet) {
        let c = self.client.clone();
        let (ts, p) = payload(self.epoch, self.len);
        let to = self.to;
        set.spawn(async move { (ts, c.send(to, 1, 1, p).await) });
        self.submitted += 1;
    }

    /// Counts a settled send (its stored ACK and latency); a failed one
    /// ends the run.
    fn settled(
        &mut self,
        r: std::result::Result<(u64, std::result::Result<Sent, ClientError>), JoinError>,
    ) -> Result<()> {
        match r {
            Ok((ts, Ok(_))) => {
                let now = since(self.epoch);
                self.latency.saturating_record(now.saturating_sub(ts));
                self.last_us = now;
                self.stored += 1;
                Ok(())
            }
            Ok((_, Err(e))) => Err(BenchError::Failed(format!("send: {e}"))),
            Err(e) => Err(BenchError::Failed(format!("send task: {e}"))),
        }
    }

    /// Reads the events the client library queued meanwhile (receipts),
    /// so that its bounded queue never fills. No send may be in flight.
    async fn drain_events(&mut self) {
        let c = Arc::get_mut(&mut self.client).expect("no send in flight");
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::ZERO, c.recv()).await {
            match ev {
                Event::Entry(d) if matches!(d.body, SyncBody::Receipt { .. }) => self.receipts += 1,
                Event::Disconnected => self.disconnects += 1,
                _ => {}
            }
        }
    }
}

struct ReceiverOut {
    client: Client,
    delivered: u64,
    disconnects: u64,
    last_us: u64,
    latency: Histogram<u64>,
}

fn unwrap_client(c: Arc<Client>) -> Client {
    match Arc::try_unwrap(c) {
        Ok(c) => c,
        Err(_) => unreachable!("every send task has finished"),
    }
}

/// Messages per sender between two reads of its event queue (the client
/// library's queue holds 4,096 events; a sender gets at most one receipt
/// per message).
const CHUNK: u64 = 2_000;

/// `n` messages with `window` in flight.
async fn send_window(mut s: Sender, n: u64, window: usize) -> Result<Sender> {
    while s.stored < n {
        let chunk_end = (s.submitted + CHUNK).min(n);
        let mut set = SendSet::new();
        while s.stored < chunk_end {
            while set.len() < window.max(1) && s.submitted < chunk_end {
                s.submit(&mut set);
            }
            match set.join_next().await {
                Some(r) => s.settled(r)?,
                None => break,
            }
        }
        drop(set);
        s.drain_events().await;
    }
    Ok(s)
}

async fn receive(
    mut client: Client,
    expected: Arc<AtomicU64>,
    epoch: Instant,
    deadline: tokio::time::Instant,
) -> ReceiverOut {
    let (mut delivered, mut disconnects, mut last_us) = (0u64, 0u64, 0u64);
    let mut latency = histogram();
    while delivered < expected.load(Ordering::Relaxed) {
        let step = (tokio::time::Instant::now() + Duration::from_millis(50)).min(deadline);
        match tokio::time::timeout_at(step, client.recv()).await {
            Ok(Some(Event::Entry(d))) => {
                if let SyncBody::Message { payload, .. } = &d.body {
                    let now = since(epoch);
                    if payload.len() >= 8 {
                        let ts = u64::from_be_bytes(payload[..8].try_into().unwrap_or([0; 8]));
                        latency.saturating_record(now.saturating_sub(ts));
                    }
                    delivered += 1;
                    last_us = now;
                }
            }
            Ok(Some(Event::Disconnected)) => disconnects += 1,
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    ReceiverOut {
        client,
        delivered,
        disconnects,
        last_us,
        latency,
    }
}

/// The report of a run, and the pairs (their clients) back for the next.
fn merge(
    senders: Vec<Sender>,
    receivers: Vec<ReceiverOut>,
    expected: u64,
    receiver_users: Vec<u64>,
) -> (LoadReport, Pairs) {
    let mut r = LoadReport {
        submitted: 0,
        stored: 0,
        delivered: 0,
        receipts: 0,
        disconnects: 0,
        elapsed: Duration::ZERO,
        stored_latency: histogram(),
        delivery_latency: histogram(),
        incomplete: false,
    };
    let mut last = 0u64;
    let mut sc = Vec::new();
    let mut rc = Vec::new();
    for s in senders {
        r.submitted += s.submitted;
        r.stored += s.stored;
        r.receipts += s.receipts;
        r.disconnects += s.disconnects;
        last = last.max(s.last_us);
        let _ = r.stored_latency.add(&s.latency);
        sc.push(unwrap_client(s.client));
    }
    for x in receivers {
        r.delivered += x.delivered;
        r.disconnects += x.disconnects;
        last = last.max(x.last_us);
        let _ = r.delivery_latency.add(&x.latency);
        rc.push(x.client);
    }
    r.elapsed = Duration::from_micros(last);
    r.incomplete = r.stored < expected || r.delivered < expected;
    let pairs = Pairs {
        senders: sc,
        receivers: rc,
        receiver_users,
    };
    (r, pairs)
}

async fn join_all<T: Send + 'static>(set: &mut JoinSet<Result<T>>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| BenchError::Failed(format!("load task: {e}")))??);
    }
    Ok(out)
}

/// Every sender sends `per_sender` messages of `len` bytes to its receiver
/// with `window` in flight; ends when all are stored and delivered, or
/// after `max_time`.
pub async fn throughput(
    pairs: Pairs,
    per_sender: u64,
    window: usize,
    len: usize,
    max_time: Duration,
) -> Result<(LoadReport, Pairs)> {
    let epoch = Instant::now();
    let deadline = tokio::time::Instant::now() + max_time;
    let n = pairs.senders.len() as u64;
    let mut rset = JoinSet::new();
    for c in pairs.receivers {
        let expected = Arc::new(AtomicU64::new(per_sender));
        rset.spawn(async move { Ok(receive(c, expected, epoch, deadline).await) });
    }
    let mut sset = JoinSet::new();
    for (c, &to) in pairs.senders.into_iter().zip(&pairs.receiver_users) {
        sset.spawn(async move {
            match tokio::time::timeout_at(
                deadline,
                send_window(Sender::new(c, to, len, epoch), per_sender, window),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(BenchError::Failed(format!(
                    "time limit {max_time:?} hit while sending"
                ))),
            }
        });
    }
    let senders = join_all(&mut sset).await?;
    let receivers = join_all(&mut rset).await?;
    Ok(merge(
        senders,
        receivers,
        n * per_sender,
        pairs.receiver_users,
    ))
}

/// One message every `period` for `duration`, the first after `offset`;
/// then waits for the last ACKs. `sent` gets the number submitted.
async fn send_rate(
    mut s: Sender,
    period: Duration,
    offset: Duration,
    duration: Duration,
    sent: Arc<AtomicU64>,
) -> Result<Sender> {
    let start = tokio::time::Instant::now() + offset;
    let end = start + duration;
    let mut tick = tokio::time::interval_at(start, period);
    let mut set = SendSet::new();
    let mut sending = true;
    loop {
        if !sending && set.is_empty() {
            break;
        }
        tokio::select! {
            t = tick.tick(), if sending => {
                if t >= end {
                    sending = false;
                    continue;
                }
                s.submit(&mut set);
            }
            Some(r) = set.join_next(), if !set.is_empty() => s.settled(r)?,
        }
    }
    sent.store(s.submitted, Ordering::Relaxed);
    s.drain_events().await;
    Ok(s)
}

/// Every sender sends at `rate / pairs` messages per second for `duration`
/// (senders staggered evenly within one period), then waits for its last
/// ACKs (at most `grace`); receivers wait for every message sent to them.
/// At most 4,000 messages per sender (the client's event queue).
pub async fn fixed_rate(
    pairs: Pairs,
    rate: f64,
    duration: Duration,
    len: usize,
    grace: Duration,
) -> Result<(LoadReport, Pairs)> {
    let n = pairs.senders.len();
    let per_sender_rate = (rate / n as f64).max(0.1);
    let period = Duration::from_secs_f64(1.0 / per_sender_rate);
    if duration.as_secs_f64() * per_sender_rate > 4_000.0 {
        return Err(BenchError::Failed(format!(
            "{per_sender_rate:.0} msg/s per sender for {duration:?} is more than 4,000 messages per sender: add pairs or shorten the run"
        )));
    }
    let epoch = Instant::now();
    let deadline = tokio::time::Instant::now() + duration + grace;
    let mut rset = JoinSet::new();
    let mut counts = Vec::new();
    for c in pairs.receivers {
        let expected = Arc::new(AtomicU64::new(u64::MAX));
        counts.push(expected.clone());
        rset.spawn(async move { Ok(receive(c, expected, epoch, deadline).await) });
    }
    let mut sset = JoinSet::new();
    for (i, (c, &to)) in pairs
        .senders
        .into_iter()
        .zip(&pairs.receiver_users)
        .enumerate()
    {
        let offset = period.mul_f64(i as f64 / n as f64);
        let sent = counts[i].clone();
        sset.spawn(async move {
            match tokio::time::timeout_at(
                deadline,
                send_rate(
                    Sender::new(c, to, len, epoch),
                    period,
                    offset,
                    duration,
                    sent,
                ),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(BenchError::Failed(
                    "stored ACKs still missing after the grace period".into(),
                )),
            }
        });
    }
    let senders = join_all(&mut sset).await?;
    let expected: u64 = senders.iter().map(|s| s.submitted).sum();
    let receivers = join_all(&mut rset).await?;
    Ok(merge(senders, receivers, expected, pairs.receiver_users))
}
