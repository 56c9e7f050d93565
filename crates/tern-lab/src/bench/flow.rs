//! [`run_flow`]: senders (and optionally online receivers), each a session
//! of a [`Fleet`], on two threads, and the throughput and latencies they
//! measured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tern_core::auth::TokenKeys;
use tern_core::client::{ClientEvent, Outgoing};
use tern_core::seal::PublicKey as SealKey;
use tern_core::wire::SyncBody;

pub use super::fleet::{client_socket, Fleet, WireStats};
use super::util::{
    cpu_by_group, histogram, thread_cpu_now, thread_group, threads_cpu, token, Target,
};
use super::{BenchError, Result};
use std::net::SocketAddr;

/// What [`run_flow`] runs.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// Sending devices (user, device).
    pub senders: Vec<(u64, u32)>,
    /// Receiving user of each sender (same length as `senders`).
    pub targets: Vec<u64>,
    /// Receiving devices to log in and drive (empty: receivers offline).
    pub receivers: Vec<(u64, u32)>,
    /// Messages each sender sends.
    pub per_sender: u64,
    /// Messages each sender keeps in flight (submitted, not yet ACKed).
    pub window: usize,
    /// Payload bytes per message (at least 16).
    pub payload: usize,
    /// `None`: sender `i` writes conversation `i + 1`; `Some(c)`: messages
    /// are spread round-robin over conversations `1..=c`.
    pub convs: Option<u64>,
    /// Stop after this long even if not done.
    pub max_time: Duration,
}

impl FlowSpec {
    /// `pairs` senders (users `base`, `base + 1`, …, device 1), sender `i`
    /// to user `base + pairs + i` in conversation `i + 1`; those receivers
    /// logged in and driven when `online`, else offline.
    pub fn pairs(base: u64, pairs: usize, per_sender: u64, online: bool) -> FlowSpec {
        let n = pairs as u64;
        FlowSpec {
            senders: (0..n).map(|i| (base + i, 1)).collect(),
            targets: (0..n).map(|i| base + n + i).collect(),
            receivers: if online {
                (0..n).map(|i| (base + n + i, 1)).collect()
            } else {
                Vec::new()
            },
            per_sender,
            window: 64,
            payload: 64,
            convs: None,
            max_time: Duration::from_secs(30),
        }
    }
}

/// What [`run_flow`] measured.
#[derive(Debug)]
pub struct FlowReport {
    /// Messages submitted.
    pub submitted: u64,
    /// Messages the daemon ACKed as stored (the pseudo-ACK when offline).
    pub stored: u64,
    /// Messages refused.
    pub rejected: u64,
    /// Messages the online receivers got.
    pub delivered: u64,
    /// Messages the receivers should get.
    pub expected_deliveries: u64,
    /// DELIVERED receipts the senders got.
    pub receipts: u64,
    /// From start to the last stored ACK.
    pub stored_elapsed: Duration,
    /// From start to the last of everything (stored ACKs and deliveries).
    pub elapsed: Duration,
    /// Submit to stored ACK, microseconds.
    pub stored_latency: Histogram<u64>,
    /// Submit to arrival at the receiver, microseconds.
    pub delivery_latency: Histogram<u64>,
    /// Senders' traffic.
    pub sender_wire: WireStats,
    /// Receivers' traffic.
    pub receiver_wire: WireStats,
    /// Session losses seen (should be 0 on loopback).
    pub disconnects: u64,
    /// CPU of the sender thread.
    pub sender_cpu: Duration,
    /// CPU of the receiver thread.
    pub receiver_cpu: Duration,
    /// The run hit `max_time` before finishing.
    pub timed_out: bool,
}

struct SenderOut {
    submitted: u64,
    stored: u64,
    rejected: u64,
    receipts: u64,
    disconnects: u64,
    finished_us: u64,
    latency: Histogram<u64>,
    wire: WireStats,
    cpu: Duration,
    fleet: Fleet,
}

struct ReceiverOut {
    delivered: u64,
    disconnects: u64,
    finished_us: u64,
    latency: Histogram<u64>,
    wire: WireStats,
    cpu: Duration,
    fleet: Fleet,
}

fn micros_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// Payload: submit time (us since the run's epoch), message index, filler.
fn payload(ts_us: u64, index: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&ts_us.to_be_bytes());
    v.extend_from_slice(&index.to_be_bytes());
    while v.len() < len {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    Bytes::from(v)
}

#[allow(clippy::too_many_arguments)]
fn sender_loop(
    mut fleet: Fleet,
    spec: Arc<FlowSpec>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    receivers_done: Arc<AtomicBool>,
) -> Result<SenderOut> {
    let cpu0 = thread_cpu_now();
    let n = fleet.len();
    let total = spec.per_sender * n as u64;
    let deadline = epoch + spec.max_time;
    let mut submitted = vec![0u64; n];
    let mut outstanding = vec![0usize; n];
    let mut fifo: Vec<std::collections::VecDeque<(u64, u64)>> =
        vec![std::collections::VecDeque::new(); n];
    let (mut stored, mut rejected, mut receipts, mut disconnects) = (0u64, 0u64, 0u64, 0u64);
    let mut finished_us = 0;
    let mut latency = histogram();
    let mut events = Vec::new();
    let mut next_index = 0u64;
    loop {
        // Submit up to the window.
        let now = fleet.now();
        let mut can_submit = false;
        for i in 0..n {
            while outstanding[i] < spec.window && submitted[i] < spec.per_sender {
                let Some(seq) = fleet.conn(i).uplink().map(|u| u.next_seq()) else {
                    break;
                };
                let ts = micros_since(epoch);
                let conv = match spec.convs {
                    None => i as u64 + 1,
                    Some(c) => 1 + next_index % c.max(1),
                };
                let op = Outgoing::Send {
                    to: spec.targets[i],
                    conv,
                    msg_type: 1,
                    payload: payload(ts, next_index, spec.payload),
                };
                if fleet.conn(i).submit(now, op).is_err() {
                    break;
                }
                next_index += 1;
                fifo[i].push_back((seq, ts));
                submitted[i] += 1;
                outstanding[i] += 1;
            }
            can_submit |= submitted[i] < spec.per_sender && outstanding[i] < spec.window;
        }
        let done = stored + rejected >= total;
        if done && finished_us == 0 {
            finished_us = micros_since(epoch);
        }
        if stop.load(Ordering::Relaxed)
            || Instant::now() >= deadline
            || (done && (receivers_done.load(Ordering::Relaxed) || spec.receivers.is_empty()))
        {
            break;
        }
        let wait = if can_submit {
            Duration::ZERO
        } else {
            Duration::from_millis(5)
        };
        fleet.turn(wait, &mut events)?;
        for (i, ev) in events.drain(..) {
            match ev {
                ClientEvent::Stored { seq, .. } | ClientEvent::Rejected { seq, .. } => {
                    let is_stored = !matches!(ev, ClientEvent::Rejected { .. });
                    while let Some(&(s, ts)) = fifo[i].front() {
                        if s > seq {
                            break;
                        }
                        fifo[i].pop_front();
                        if s == seq {
                            latency.saturating_record(micros_since(epoch).saturating_sub(ts));
                        }
                    }
                    outstanding[i] = outstanding[i].saturating_sub(1);
                    if is_stored {
                        stored += 1;
                    } else {
                        rejected += 1;
                    }
                }
                ClientEvent::Entry(d) => {
                    if matches!(d.body, SyncBody::Receipt { .. }) {
                        receipts += 1;
                    }
                }
                ClientEvent::Disconnected => disconnects += 1,
                _ => {}
            }
        }
    }
    if finished_us == 0 {
        finished_us = micros_since(epoch);
    }
    Ok(SenderOut {
        submitted: submitted.iter().sum(),
        stored,
        rejected,
        receipts,
        disconnects,
        finished_us,
        latency,
        wire: fleet.stats,
        cpu: thread_cpu_now().saturating_sub(cpu0),
        fleet,
    })
}

fn receiver_loop(
    mut fleet: Fleet,
    expected: u64,
    epoch: Instant,
    max_time: Duration,
    stop: Arc<AtomicBool>,
) -> Result<ReceiverOut> {
    let cpu0 = thread_cpu_now();
    let deadline = epoch + max_time;
    let mut delivered = 0u64;
    let mut disconnects = 0u64;
    let mut latency = histogram();
    let mut events = Vec::new();
    while delivered < expected && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        fleet.turn(Duration::from_millis(5), &mut events)?;
        for (_, ev) in events.drain(..) {
            match ev {
                ClientEvent::Entry(d) => {
                    if let SyncBody::Message { payload, .. } = &d.body {
                        delivered += 1;
                        if payload.len() >= 8 {
                            let ts = u64::from_be_bytes(payload[..8].try_into().unwrap_or([0; 8]));
                            latency.saturating_record(micros_since(epoch).saturating_sub(ts));
                        }
                    }
                }
                ClientEvent::Disconnected => disconnects += 1,
                _ => {}
            }
        }
    }
    let finished_us = micros_since(epoch);
    // Let the last ACKs (delivery) go out before stopping.
    let settle = Instant::now() + Duration::from_millis(30);
    while Instant::now() < settle {
        fleet.turn(Duration::from_millis(5), &mut events)?;
        events.clear();
    }
    Ok(ReceiverOut {
        delivered,
        disconnects,
        finished_us,
        latency,
        wire: fleet.stats,
        cpu: thread_cpu_now().saturating_sub(cpu0),
        fleet,
    })
}

fn join_thread<T>(h: std::thread::JoinHandle<Result<T>>) -> Result<T> {
    h.join()
        .map_err(|_| BenchError::Failed("a load thread panicked".into()))?
}

/// [`run_flow`] against `target`, with the CPU of this process's threads
/// (the in-process daemon's included) from the moment the clock starts,
/// grouped by [`thread_group`].
pub fn run_flow_with_cpu(
    target: &Target,
    spec: FlowSpec,
) -> Result<(FlowReport, Vec<(&'static str, Duration)>)> {
    let loop_tid = target.server().map_or(-1, |s| s.loop_tid);
    let mut cpu_before = Default::default();
    let report = run_flow(target.addr, &target.keys, target.seal_key, spec, || {
        cpu_before = threads_cpu();
    })?;
    let groups = cpu_by_group(&cpu_before, &threads_cpu(), thread_group(loop_tid));
    Ok((report, groups))
}

/// Logs every session in, then runs senders and receivers on two threads
/// ("load-send", "load-recv") until every message is stored and delivered
/// or `max_time` passes. Sessions are sealed with `seal_key` when it is
/// given (the daemon's default), clear otherwise. `on_start` runs after
/// login, right before the clock starts (e.g. to take a CPU snapshot).
pub fn run_flow(
    server: SocketAddr,
    keys: &TokenKeys,
    seal_key: Option<SealKey>,
    spec: FlowSpec,
    on_start: impl FnOnce(),
) -> Result<FlowReport> {
    assert_eq!(spec.senders.len(), spec.targets.len());
    let send_tokens = spec
        .senders
        .iter()
        .map(|&(u, d)| token(keys, u, d))
        .collect();
    let recv_tokens = spec
        .receivers
        .iter()
        .map(|&(u, d)| token(keys, u, d))
        .collect();
    let sealed = |c: &mut tern_core::client::ClientConfig| c.server_key = seal_key;
    let mut senders = Fleet::new(server, send_tokens, sealed)?;
    let mut receivers = Fleet::new(server, recv_tokens, sealed)?;
    receivers.login_all(Duration::from_secs(20))?;
    senders.login_all(Duration::from_secs(20))?;
    let online: std::collections::HashSet<u64> = spec.receivers.iter().map(|r| r.0).collect();
    let expected =
        spec.targets.iter().filter(|t| online.contains(t)).count() as u64 * spec.per_sender;
    let spec = Arc::new(spec);
    let stop = Arc::new(AtomicBool::new(false));
    let receivers_done = Arc::new(AtomicBool::new(false));
    on_start();
    let epoch = Instant::now();
    let max_time = spec.max_time;
    let rt = {
        let stop = stop.clone();
        let done = receivers_done.clone();
        std::thread::Builder::new()
            .name("load-recv".into())
            .spawn(move || {
                let r = receiver_loop(receivers, expected, epoch, max_time, stop.clone());
                done.store(true, Ordering::Relaxed);
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            })
            .map_err(BenchError::io("spawning the receiver thread"))?
    };
    let st = {
        let stop = stop.clone();
        let done = receivers_done.clone();
        let spec = spec.clone();
        std::thread::Builder::new()
            .name("load-send".into())
            .spawn(move || {
                let r = sender_loop(senders, spec, epoch, stop.clone(), done);
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            })
            .map_err(BenchError::io("spawning the sender thread"))?
    };
    let s = join_thread(st)?;
    let r = join_thread(rt)?;
    let (mut sf, mut rf) = (s.fleet, r.fleet);
    let _ = sf.logout_all();
    let _ = rf.logout_all();
    let end_us = s
        .finished_us
        .max(if expected > 0 { r.finished_us } else { 0 });
    let total = spec.per_sender * spec.senders.len() as u64;
    let timed_out = s.stored + s.rejected < total || r.delivered < expected;
    Ok(FlowReport {
        submitted: s.submitted,
        stored: s.stored,
        rejected: s.rejected,
        delivered: r.delivered,
        expected_deliveries: expected,
        receipts: s.receipts,
        stored_elapsed: Duration::from_micros(s.finished_us),
        elapsed: Duration::from_micros(end_us),
        stored_latency: s.latency,
        delivery_latency: r.latency,
        sender_wire: s.wire,
        receiver_wire: r.wire,
        disconnects: s.disconnects + r.disconnects,
        sender_cpu: s.cpu,
        receiver_cpu: r.cpu,
        timed_out,
    })
}
