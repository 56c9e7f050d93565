//! Tern's side of each workload, driven by the sans-IO `ClientConn` load
//! generator of `tern_lab::bench::flow` (the real protocol over real UDP
//! sockets) against a `ternd` process.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use tern_core::auth::TokenKeys;
use tern_core::client::{ClientEvent, Outgoing};
use tern_core::wire::SyncBody;
use tern_lab::bench::flow::{run_flow, Fleet, FlowReport, FlowSpec};
use tern_lab::bench::util::token;

use crate::args::Shape;
use crate::arrivals::{payload, Arrivals};
use crate::lab::{Lab, Meter};
use crate::results::{LatencyResult, ThroughputResult};
use crate::servers::Ternd;

fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

/// `shape.pairs` senders (users 1, 2, …) each to its own receiver (users
/// `first_receiver`, `first_receiver + 1`, …), `per_sender` messages each;
/// the receivers logged in and driven when `online`.
fn pairs(shape: &Shape, per_sender: u64, first_receiver: u64, online: bool) -> FlowSpec {
    let pairs = shape.pairs as u64;
    FlowSpec {
        senders: (0..pairs).map(|i| (1 + i, 1)).collect(),
        targets: (0..pairs).map(|i| first_receiver + i).collect(),
        receivers: if online {
            (0..pairs).map(|i| (first_receiver + i, 1)).collect()
        } else {
            Vec::new()
        },
        per_sender,
        window: shape.window,
        payload: shape.payload,
        convs: None,
        max_time: shape.max_time,
    }
}

/// Runs `spec` against `d`; the meter starts once every session is logged in.
fn measured_flow(lab: &Lab, d: &Ternd, spec: FlowSpec, what: &str) -> Result<(FlowReport, Meter)> {
    let meter = Cell::new(Meter::start(lab, d.cpu()));
    let r = run_flow(d.addr, &d.keys, d.seal_key, spec, || {
        meter.set(Meter::start(lab, d.cpu()))
    })
    .map_err(|e| anyhow!("{what}: {e}"))?;
    Ok((r, meter.get()))
}

/// Online throughput: `pairs` senders each to its own online receiver; a
/// message counts once the sender has ternd's ACK (stored durably) and the
/// receiver has it (and ACKs it, which releases it on the server).
pub fn online(lab: &Lab, d: &Ternd, shape: &Shape) -> Result<ThroughputResult> {
    let per = shape.messages / shape.pairs as u64;
    let (r, meter) = measured_flow(lab, d, pairs(shape, per, 1001, true), "tern online flow")?;
    let latency = &r.delivery_latency;
    Ok(ThroughputResult::new(
        "tern",
        "online",
        (per * shape.pairs as u64, r.delivered.min(r.stored)),
        (
            ms(latency.value_at_quantile(0.5)),
            ms(latency.value_at_quantile(0.99)),
        ),
        meter.usage(lab, d.cpu(), r.elapsed),
        r.timed_out,
    ))
}

/// Durable offline throughput: `pairs` senders to receivers that are not
/// logged in; a message counts at ternd's pseudo-ACK (fsynced in the
/// receiver's inbox). Then the receivers log in and drain their backlog.
pub fn offline(
    lab: &Lab,
    d: &Ternd,
    shape: &Shape,
) -> Result<(ThroughputResult, ThroughputResult)> {
    let pairs_n = shape.pairs as u64;
    let per = shape.offline_messages / pairs_n;
    let spec = pairs(shape, per, 2001, false);
    let (r, meter) = measured_flow(lab, d, spec, "tern offline flow")?;
    let latency = &r.stored_latency;
    let store = ThroughputResult::new(
        "tern",
        "offline-store",
        (per * pairs_n, r.stored),
        (
            ms(latency.value_at_quantile(0.5)),
            ms(latency.value_at_quantile(0.99)),
        ),
        meter.usage(lab, d.cpu(), r.stored_elapsed),
        r.timed_out,
    );

    // Drain: each receiver logs in and takes its backlog (pushed or pulled,
    // as the daemon decides), releasing entries as they are handed up.
    let tokens = (0..pairs_n).map(|i| token(&d.keys, 2001 + i, 1)).collect();
    let mut fleet =
        Fleet::new(d.addr, tokens, |c| c.server_key = d.seal_key).map_err(|e| anyhow!("{e}"))?;
    let expected = per * pairs_n;
    let meter = Meter::start(lab, d.cpu());
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
                if matches!(e.body, SyncBody::Message { .. }) {
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
    let drain = ThroughputResult::new(
        "tern",
        "offline-drain",
        (expected, got),
        (f64::NAN, f64::NAN),
        meter.usage(lab, d.cpu(), wall),
        got < expected,
    );
    Ok((store, drain))
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
    let sealed = |c: &mut tern_core::client::ClientConfig| c.server_key = d.seal_key;
    let mut sender =
        Fleet::new(addr, vec![token(keys, users.0, 1)], sealed).map_err(|e| anyhow!("{e}"))?;
    let mut receiver =
        Fleet::new(addr, vec![token(keys, users.1, 1)], sealed).map_err(|e| anyhow!("{e}"))?;
    receiver
        .login_all(Duration::from_secs(30))
        .map_err(|e| anyhow!("{e}"))?;
    sender
        .login_all(Duration::from_secs(30))
        .map_err(|e| anyhow!("{e}"))?;
    lab.set_loss(loss)?;
    std::thread::sleep(Duration::from_millis(200));
    let meter = Meter::start(lab, d.cpu());
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
    let mut got = Arrivals::new(n);
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
                    if let SyncBody::Message { payload, .. } = &e.body {
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
    let usage = meter.usage(lab, d.cpu(), elapsed);
    let _ = receiver.logout_all();
    lab.set_loss(0.0)?;
    if let Some(e) = err {
        return Err(e);
    }
    send_result?;
    Ok(LatencyResult::new(
        peer,
        loss,
        added_rtt_ms,
        n,
        got,
        reconnects.load(Ordering::Relaxed),
        usage,
    ))
}
