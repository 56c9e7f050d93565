//! Tern's side of each workload, driven by the sans-IO `ClientConn` load
//! generator of `tern_lab::bench::flow` (the real protocol over real UDP
//! sockets) against a `ternd` process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use tern_core::auth::TokenKeys;
use tern_core::client::{ClientEvent, Outgoing};
use tern_core::wire::EntryBody;
use tern_lab::bench::flow::{run_flow, Fleet, FlowSpec};
use tern_lab::bench::util::{process_cpu_now, token};

use crate::lab::Lab;
use crate::results::{LatencyResult, ThroughputResult};
use crate::servers::Ternd;
use crate::Shape;

fn pct(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

/// Online throughput: `pairs` senders each to its own online receiver; a
/// message counts once the sender has ternd's ACK (stored durably) and the
/// receiver has it (and ACKs it, which releases it on the server).
pub fn online(lab: &Lab, d: &Ternd, shape: &Shape) -> Result<ThroughputResult> {
    let pairs = shape.pairs as u64;
    let spec = FlowSpec {
        senders: (0..pairs).map(|i| (1 + i, 1)).collect(),
        targets: (0..pairs).map(|i| 1001 + i).collect(),
        receivers: (0..pairs).map(|i| (1001 + i, 1)).collect(),
        per_sender: shape.messages / pairs,
        window: shape.window,
        payload: shape.payload,
        convs: None,
        max_time: shape.max_time,
    };
    let w0 = std::cell::Cell::new(lab.wire());
    let c0 = std::cell::Cell::new((d.cpu(), process_cpu_now()));
    let r = run_flow(d.addr, &d.keys, spec, || {
        w0.set(lab.wire());
        c0.set((d.cpu(), process_cpu_now()));
    })
    .map_err(|e| anyhow!("tern online flow: {e}"))?;
    let wire = lab.wire().since(w0.get());
    let (s0, p0) = c0.get();
    let wall = r.elapsed;
    let completed = r.delivered.min(r.stored);
    Ok(ThroughputResult {
        peer: "tern".into(),
        workload: "online".into(),
        messages: shape.messages / pairs * pairs,
        completed,
        elapsed_s: wall.as_secs_f64(),
        rate: completed as f64 / wall.as_secs_f64().max(1e-9),
        p50_ms: ms(r.delivery_latency.value_at_quantile(0.5)),
        p99_ms: ms(r.delivery_latency.value_at_quantile(0.99)),
        wire: wire.into(),
        server_cpu_pct: pct(d.cpu().saturating_sub(s0), wall),
        client_cpu_pct: pct(process_cpu_now().saturating_sub(p0), wall),
        timed_out: r.timed_out,
    })
}

/// Durable offline throughput: `pairs` senders to receivers that are not
/// logged in; a message counts at ternd's pseudo-ACK (fsynced in the
/// receiver's inbox). Then the receivers log in and drain their backlog.
pub fn offline(
    lab: &Lab,
    d: &Ternd,
    shape: &Shape,
) -> Result<(ThroughputResult, ThroughputResult)> {
    let pairs = shape.pairs as u64;
    let per = shape.offline_messages / pairs;
    let spec = FlowSpec {
        senders: (0..pairs).map(|i| (1 + i, 1)).collect(),
        targets: (0..pairs).map(|i| 2001 + i).collect(),
        receivers: Vec::new(),
        per_sender: per,
        window: shape.window,
        payload: shape.payload,
        convs: None,
        max_time: shape.max_time,
    };
    let w0 = std::cell::Cell::new(lab.wire());
    let c0 = std::cell::Cell::new((d.cpu(), process_cpu_now()));
    let r = run_flow(d.addr, &d.keys, spec, || {
        w0.set(lab.wire());
        c0.set((d.cpu(), process_cpu_now()));
    })
    .map_err(|e| anyhow!("tern offline flow: {e}"))?;
    let wire = lab.wire().since(w0.get());
    let (s0, p0) = c0.get();
    let wall = r.stored_elapsed;
    let store = ThroughputResult {
        peer: "tern".into(),
        workload: "offline-store".into(),
        messages: per * pairs,
        completed: r.stored,
        elapsed_s: wall.as_secs_f64(),
        rate: r.stored as f64 / wall.as_secs_f64().max(1e-9),
        p50_ms: ms(r.stored_latency.value_at_quantile(0.5)),
        p99_ms: ms(r.stored_latency.value_at_quantile(0.99)),
        wire: wire.into(),
        server_cpu_pct: pct(d.cpu().saturating_sub(s0), wall),
        client_cpu_pct: pct(process_cpu_now().saturating_sub(p0), wall),
        timed_out: r.timed_out,
    };

    // Drain: each receiver logs in and takes its backlog (pushed or pulled,
    // as the daemon decides), releasing entries as they are handed up.
    let tokens = (0..pairs).map(|i| token(&d.keys, 2001 + i, 1)).collect();
    let mut fleet = Fleet::new(d.addr, tokens, |_| {}).map_err(|e| anyhow!("{e}"))?;
    let expected = per * pairs;
    let w0 = lab.wire();
    let (s0, p0) = (d.cpu(), process_cpu_now());
    let start = Instant::now();
    let deadline = start + shape.max_time;
    let mut got = 0u64;
    let mut events = Vec::new();
    while got < expected && Instant::now() < deadline {
        fleet
            .turn(Duration::from_millis(5), &mut events)
            .map_err(|e| anyhow!("{e}"))?;
        for (_, ev) in events.drain(..) {
            if let ClientEvent::Entry(e) = ev {
                if matches!(e.body, EntryBody::Message { .. }) {
                    got += 1;
                }
            }
        }
    }
    let wall = start.elapsed();
    // Let the last ACKs go out.
    let settle = Instant::now() + Duration::from_millis(50);
    while Instant::now() < settle {
        let _ = fleet.turn(Duration::from_millis(5), &mut events);
        events.clear();
    }
    let _ = fleet.logout_all();
    let drain = ThroughputResult {
        peer: "tern".into(),
        workload: "offline-drain".into(),
        messages: expected,
        completed: got,
        elapsed_s: wall.as_secs_f64(),
        rate: got as f64 / wall.as_secs_f64().max(1e-9),
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        wire: lab.wire().since(w0).into(),
        server_cpu_pct: pct(d.cpu().saturating_sub(s0), wall),
        client_cpu_pct: pct(process_cpu_now().saturating_sub(p0), wall),
        timed_out: got < expected,
    };
    Ok((store, drain))
}

/// Payload: scheduled time (us since the epoch), index, filler.
pub fn payload(ts_us: u64, index: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&ts_us.to_be_bytes());
    v.extend_from_slice(&index.to_be_bytes());
    while v.len() < len {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    v
}

/// Reads (scheduled time, index) back from a payload.
pub fn parse_payload(p: &[u8]) -> Option<(u64, u64)> {
    if p.len() < 16 {
        return None;
    }
    Some((
        u64::from_be_bytes(p[..8].try_into().ok()?),
        u64::from_be_bytes(p[8..16].try_into().ok()?),
    ))
}

/// Shared state of a paced latency run's receiver.
pub struct Receipts {
    seen: Vec<bool>,
    last_index: Option<u64>,
    /// Latencies of first arrivals, us.
    pub samples: Vec<u64>,
    /// (scheduled time, latency) of first arrivals, us, in arrival order.
    pub timeline: Vec<(u64, u64)>,
    /// Copies seen again.
    pub duplicates: u64,
    /// First arrivals with a lower index than an earlier one.
    pub out_of_order: u64,
}

impl Receipts {
    /// For `n` messages.
    pub fn new(n: u64) -> Receipts {
        Receipts {
            seen: vec![false; n as usize],
            last_index: None,
            samples: Vec::with_capacity(n as usize),
            timeline: Vec::with_capacity(n as usize),
            duplicates: 0,
            out_of_order: 0,
        }
    }

    /// One arrival at `now_us`; true if it was new.
    pub fn arrive(&mut self, now_us: u64, payload: &[u8]) -> bool {
        let Some((ts, idx)) = parse_payload(payload) else {
            return false;
        };
        let Some(slot) = self.seen.get_mut(idx as usize) else {
            return false;
        };
        if *slot {
            self.duplicates += 1;
            return false;
        }
        *slot = true;
        if self.last_index.is_some_and(|l| idx < l) {
            self.out_of_order += 1;
        }
        self.last_index = Some(self.last_index.map_or(idx, |l| l.max(idx)));
        self.samples.push(now_us.saturating_sub(ts));
        self.timeline.push((ts, now_us.saturating_sub(ts)));
        true
    }
}

/// One sender, one online receiver, one message every `interval`; latency
/// from the scheduled time to the receiving app, in order. `addr` is
/// ternd's address or a proxy in front of it. The loss is set after both
/// have logged in.
#[allow(clippy::too_many_arguments)]
pub fn latency(
    lab: &Lab,
    d: &Ternd,
    addr: SocketAddr,
    loss: f64,
    peer: &str,
    added_rtt_ms: u64,
    shape: &Shape,
    users: (u64, u64),
) -> Result<LatencyResult> {
    let n = shape.latency_messages;
    let interval_us = shape.latency_interval.as_micros() as u64;
    let keys: &TokenKeys = &d.keys;
    let mut sender =
        Fleet::new(addr, vec![token(keys, users.0, 1)], |_| {}).map_err(|e| anyhow!("{e}"))?;
    let mut receiver =
        Fleet::new(addr, vec![token(keys, users.1, 1)], |_| {}).map_err(|e| anyhow!("{e}"))?;
    receiver
        .login_all(Duration::from_secs(30))
        .map_err(|e| anyhow!("{e}"))?;
    sender
        .login_all(Duration::from_secs(30))
        .map_err(|e| anyhow!("{e}"))?;
    lab.set_loss(loss)?;
    std::thread::sleep(Duration::from_millis(200));
    let w0 = lab.wire();
    let s0 = d.cpu();
    let epoch = Instant::now();
    let send_end = Duration::from_micros(n * interval_us);
    let deadline = epoch + send_end + shape.latency_grace;
    let stop = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicU64::new(0));
    let to = users.1;
    let payload_len = shape.payload;

    let st = {
        let stop = stop.clone();
        let reconnects = reconnects.clone();
        std::thread::Builder::new()
            .name("load-send".into())
            .spawn(move || -> Result<()> {
                let mut next = 0u64;
                let mut events = Vec::new();
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let now_us = epoch.elapsed().as_micros() as u64;
                    let fnow = sender.now();
                    while next < n && next * interval_us <= now_us {
                        let op = Outgoing::Send {
                            to,
                            conv: 1,
                            msg_type: 1,
                            payload: Bytes::from(payload(next * interval_us, next, payload_len)),
                        };
                        if sender.conn(0).submit(fnow, op).is_err() {
                            break;
                        }
                        next += 1;
                    }
                    let wait = if next < n {
                        Duration::from_micros((next * interval_us).saturating_sub(now_us))
                            .min(Duration::from_millis(5))
                    } else {
                        Duration::from_millis(5)
                    };
                    sender.turn(wait, &mut events).map_err(|e| anyhow!("{e}"))?;
                    for (_, ev) in events.drain(..) {
                        if matches!(ev, ClientEvent::Disconnected) {
                            reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let _ = sender.logout_all();
                Ok(())
            })?
    };
    let mut got = Receipts::new(n);
    let mut events = Vec::new();
    let mut delivered = 0u64;
    let mut err = None;
    while delivered < n && Instant::now() < deadline {
        if let Err(e) = receiver.turn(Duration::from_millis(5), &mut events) {
            err = Some(anyhow!("{e}"));
            break;
        }
        let now_us = epoch.elapsed().as_micros() as u64;
        for (_, ev) in events.drain(..) {
            match ev {
                ClientEvent::Entry(e) => {
                    if let EntryBody::Message { payload, .. } = &e.body {
                        if got.arrive(now_us, payload) {
                            delivered += 1;
                        }
                    }
                }
                ClientEvent::Disconnected => {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
    let elapsed = epoch.elapsed();
    stop.store(true, Ordering::Relaxed);
    let send_result = st.join().map_err(|_| anyhow!("sender thread panicked"))?;
    let wire = lab.wire().since(w0);
    let server_cpu = d.cpu().saturating_sub(s0);
    let _ = receiver.logout_all();
    lab.set_loss(0.0)?;
    if let Some(e) = err {
        return Err(e);
    }
    send_result?;
    let mut r = LatencyResult {
        peer: peer.into(),
        loss,
        added_rtt_ms,
        sent: n,
        delivered,
        duplicates: got.duplicates,
        out_of_order: got.out_of_order,
        reconnects: reconnects.load(Ordering::Relaxed),
        p50_ms: 0.0,
        p90_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
        max_ms: 0.0,
        wire: wire.into(),
        server_cpu_ms: server_cpu.as_millis() as u64,
        elapsed_s: elapsed.as_secs_f64(),
        samples: got.samples,
        timeline: got.timeline,
    };
    r.finish();
    Ok(r)
}
