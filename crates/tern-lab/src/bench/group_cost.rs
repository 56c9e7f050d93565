//! `tern-bench group-cost`: what storing one group message costs the
//! server, by group size, against one direct message in the same run
//! (issue 12: hybrid fan-out). Each size runs with the default threshold
//! (write fan-out up to 500 members, read fan-out past it); a size past
//! the threshold also runs with write fan-out forced, for comparison.
//!
//! The real broker runs in process over the in-memory store, with the
//! sender's device online and every other member offline (the check-in
//! storm's starting point). Every batch the broker hands out while the
//! messages are posted is counted: its store operations, and the key and
//! value bytes each would take in the daemon's RocksDB (the encoders of
//! `tern::store`). Deterministic: no clock, no fsync, the same figures on
//! any machine.

use std::time::Instant;

use bytes::Bytes;
use tern::store::{conv_values as cv, entry_values, group_values as gv, keys};
use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientEvent, Outgoing};
use tern_core::store::{Store, WriteBatch, WriteOp};
use tern_core::wire::{ConvKind, ConvRef, GroupAction, VERSION_2};
use tern_sim::pair::Pair;

use super::{BenchError, Result};

/// Options of `tern-bench group-cost`.
#[derive(Debug, Clone)]
pub struct GroupCostOpts {
    /// Group sizes (members, the sender included).
    pub sizes: Vec<usize>,
    /// Messages posted per size.
    pub messages: u64,
    /// Payload bytes.
    pub payload: usize,
}

/// Store operations and key+value bytes of some batches.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    ops: u64,
    bytes: u64,
}

/// Key and value bytes `op` takes in the daemon's RocksDB.
fn op_bytes(op: &WriteOp) -> u64 {
    let n = match op {
        WriteOp::Meta { meta, .. } => 8 + keys::encode_meta(meta).len(),
        WriteOp::Append { user, entry } => {
            keys::inbox_key(*user, entry.seq).len() + entry_values::encode_entry(&entry.entry).len()
        }
        WriteOp::Device { state, .. } => keys::DEVICE_KEY_LEN + keys::encode_device(state).len(),
        WriteOp::Trim { .. } | WriteOp::TrimConv { .. } => 2 * keys::INBOX_KEY_LEN,
        WriteOp::PutRecord { conv, record } => {
            cv::record_key(conv, record.conv_seq).len() + cv::encode_record(record).len()
        }
        WriteOp::ConvMeta { conv, meta } => {
            conv.to_bytes().len() + cv::encode_conv_meta(meta).len()
        }
        WriteOp::UserConv {
            user, conv, state, ..
        } => {
            // The state row, and the list-index row it moves (a delete and
            // a put: two keys, one value).
            cv::user_conv_key(*user, conv).len()
                + cv::encode_conv_state(state).len()
                + 2 * 16
                + conv.to_bytes().len()
        }
        WriteOp::Hide {
            user,
            conv,
            conv_seq,
        } => cv::hidden_key(*user, conv, *conv_seq).len(),
        WriteOp::GroupMember {
            group,
            user,
            member,
        } => gv::member_key(*group, *user).len() + gv::encode_member(member).len(),
    };
    n as u64
}

/// Moves everything once, counting the batches committed.
fn step(p: &mut Pair, cost: &mut Cost) -> bool {
    let now = p.now;
    let mut moved = false;
    for (addr, c) in &mut p.clients {
        c.handle_timeout(now);
        while let Some(d) = c.poll_transmit(now) {
            p.broker.handle_datagram(now, *addr, d);
            moved = true;
        }
    }
    p.broker.handle_timeout(now);
    while let Some(c) = p.broker.poll_commit() {
        count(&c.batch, cost);
        let result = p.store.commit(&c.batch).map_err(|e| e.to_string());
        p.broker.handle_committed(now, c.id, result);
        moved = true;
    }
    while let Some((to, d)) = p.broker.poll_transmit() {
        if let Some((_, c)) = p.clients.iter_mut().find(|(a, _)| *a == to.addr) {
            c.handle_datagram(now, d);
            moved = true;
        }
    }
    moved
}

fn count(batch: &WriteBatch, cost: &mut Cost) {
    cost.ops += batch.ops.len() as u64;
    cost.bytes += batch.ops.iter().map(op_bytes).sum::<u64>();
}

/// Runs until nothing moves and the client has nothing pending; returns
/// its events.
fn settle(p: &mut Pair, cost: &mut Cost) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    for _ in 0..100_000 {
        let moved = step(p, cost);
        events.extend(std::iter::from_fn(|| p.clients[0].1.poll_event()));
        if !moved {
            if p.clients[0].1.pending() == 0 {
                break;
            }
            p.now += std::time::Duration::from_millis(20);
        }
    }
    p.now += std::time::Duration::from_millis(200);
    step(p, cost);
    events.extend(std::iter::from_fn(|| p.clients[0].1.poll_event()));
    events
}

/// The cost of posting `n` messages into `conv` from the one client.
fn post_cost(p: &mut Pair, conv: ConvRef, n: u64, payload: usize) -> Result<Cost> {
    let mut cost = Cost::default();
    let body = Bytes::from(vec![b'x'; payload]);
    for _ in 0..n {
        let op = Outgoing::Post {
            conv,
            topic: 0,
            msg_type: 0,
            payload: body.clone(),
        };
        let now = p.now;
        p.clients[0]
            .1
            .submit(now, op)
            .map_err(|e| BenchError::Failed(e.to_string()))?;
        let ev = settle(p, &mut cost);
        if ev.iter().any(|e| matches!(e, ClientEvent::Rejected { .. })) {
            return Err(BenchError::Failed(format!("a post to {conv} was refused")));
        }
    }
    Ok(cost)
}

/// Largest group the forced write fan-out comparison is run for: setting
/// up a group that way costs O(members²) entries.
const WRITE_COMPARISON_MAX: usize = 5_000;

/// A broker with one online device (user 1) and `others` offline users;
/// `write_fanout_max` overrides the threshold.
fn pair(write_fanout_max: Option<usize>) -> Pair {
    let mut cfg = BrokerConfig {
        accept_unknown_recipients: true,
        ..BrokerConfig::default()
    };
    if let Some(max) = write_fanout_max {
        cfg.group_write_fanout_max = max;
    }
    let mut p = Pair::new(cfg);
    p.connect(1, 1, |c: &mut ClientConfig| c.version = VERSION_2);
    settle(&mut p, &mut Cost::default());
    p
}

/// A group of `size` members (user 1 and offline users 2 ..= size).
fn group(p: &mut Pair, size: usize) -> Result<u64> {
    let mut cost = Cost::default();
    let users: Vec<u64> = (2..=size as u64).collect();
    let mut chunks = users.chunks(32);
    let first = chunks.next().unwrap_or_default().to_vec();
    let now = p.now;
    let create = Outgoing::Group {
        group: 0,
        action: GroupAction::Create,
        users: first,
    };
    p.clients[0]
        .1
        .submit(now, create)
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let ev = settle(p, &mut cost);
    let g = tern_sim::pair::created_group(&ev)
        .ok_or_else(|| BenchError::Failed("the group was not created".into()))?;
    for chunk in chunks {
        let now = p.now;
        let add = Outgoing::Group {
            group: g,
            action: GroupAction::Add { admin: false },
            users: chunk.to_vec(),
        };
        p.clients[0]
            .1
            .submit(now, add)
            .map_err(|e| BenchError::Failed(e.to_string()))?;
        settle(p, &mut cost);
    }
    Ok(g)
}

/// One line of the report: posting into a group of `size` under
/// `write_fanout_max` (`None`: the default threshold).
fn one_size(
    size: usize,
    write_fanout_max: Option<usize>,
    opts: &GroupCostOpts,
    base: (f64, f64),
) -> Result<()> {
    let n = opts.messages.max(1);
    let threshold = write_fanout_max.unwrap_or(BrokerConfig::default().group_write_fanout_max);
    let mode = if size > threshold { "read " } else { "write" };
    let mut p = pair(write_fanout_max);
    let g = group(&mut p, size.max(1))?;
    let conv = ConvRef {
        kind: ConvKind::Group,
        id: g,
    };
    let c = post_cost(&mut p, conv, n, opts.payload)?;
    let (o, b) = (c.ops as f64 / n as f64, c.bytes as f64 / n as f64);
    let forced = if write_fanout_max.is_some() {
        " (forced)"
    } else {
        ""
    };
    println!(
        "  group of {size:>6}, {mode} fan-out{forced:<9}: {o:>9.1} store ops, {b:>10.0} key+value bytes per message = {:>7.1}x / {:>7.1}x the direct message; {:.3} ops and {:.1} bytes per member",
        o / base.0,
        b / base.1,
        o / size as f64,
        b / size as f64
    );
    Ok(())
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &GroupCostOpts) -> Result<()> {
    let started = Instant::now();
    let n = opts.messages.max(1);
    let threshold = BrokerConfig::default().group_write_fanout_max;
    println!(
        "tern-bench group-cost: {n} messages of {} bytes per case; the sender online, every other member offline; default threshold {threshold} members (deterministic, in-process broker)",
        opts.payload
    );
    let mut p = pair(None);
    let base = post_cost(&mut p, ConvRef::direct(2), n, opts.payload)?;
    let (bo, bb) = (base.ops as f64 / n as f64, base.bytes as f64 / n as f64);
    println!("  baseline, one direct message to an offline user: {bo:.1} store ops, {bb:.0} key+value bytes per message");
    for &size in &opts.sizes {
        one_size(size, None, opts, (bo, bb))?;
        if size > threshold && size <= WRITE_COMPARISON_MAX {
            one_size(size, Some(usize::MAX), opts, (bo, bb))?;
        }
    }
    println!(
        "  (run time {:.1?}, not a figure: the counts do not depend on it)",
        started.elapsed()
    );
    Ok(())
}
