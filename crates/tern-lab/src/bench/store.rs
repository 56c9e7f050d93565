//! `tern-bench store`: the durable offline store. Senders send to receivers
//! that are offline; a message counts once the daemon's ACK (the
//! pseudo-ACK: stored and fsynced) reaches its sender. The baseline is raw
//! RocksDB: `WriteBatch`es of the same inbox keys and values written with
//! `sync = true`, in the same folder, in the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rocksdb::{Options, WriteBatch, WriteOptions, DB};
use tern_core::wire::{encode_to_bytes, Deliver, EntryBody, Frame};

use super::flow::{run_flow_with_cpu, FlowSpec};
use super::seal::Sealing;
use super::util::{fmt_cpu, fmt_latency, machine_line, rate, si, ScratchDir, Target};
use super::{BenchError, Result};
use tern::store::keys::inbox_key;

/// Options of `tern-bench store`.
#[derive(Debug, Clone)]
pub struct StoreOpts {
    /// Sending devices, each to its own offline receiver.
    pub senders: usize,
    /// Messages in flight per sender.
    pub window: usize,
    /// Messages in all.
    pub messages: u64,
    /// Payload bytes.
    pub payload: usize,
    /// Time limit of the measured run.
    pub max_time: Duration,
    /// Messages per raw RocksDB batch in the baseline (0: senders × window,
    /// capped at 1024).
    pub baseline_batch: usize,
    /// Folder for the data (must be a real disk for fsync to mean anything).
    pub dir: Option<PathBuf>,
    /// Keep the data folder.
    pub keep: bool,
    /// Sealed (the default) or clear raw UDP.
    pub seal: Sealing,
}

/// What the raw RocksDB baseline measured.
#[derive(Debug, Clone, Copy)]
pub struct RawStoreReport {
    /// Entries written.
    pub entries: u64,
    /// Entries per batch (one fsync each).
    pub batch: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl RawStoreReport {
    /// Entries per second.
    pub fn rate(&self) -> f64 {
        rate(self.entries, self.elapsed)
    }
}

/// Length of a stored DELIVER frame carrying a `payload`-byte message.
pub fn deliver_frame_len(payload: usize) -> usize {
    encode_to_bytes(&Frame::Deliver(Deliver {
        seq: 100_000,
        conv: 17,
        from_user: 1 << 20,
        from_device: 1,
        from_seq: 100_000,
        time_ms: 1_760_000_000_000,
        body: EntryBody::Message {
            msg_type: 1,
            payload: Bytes::from(vec![b'a'; payload]),
        },
    }))
    .len()
}

/// Raw RocksDB: `entries` values of `value_len` bytes under inbox keys of
/// `users` users, in synced batches of `batch`, into a fresh database in `dir`.
pub fn raw_rocks(
    dir: &Path,
    entries: u64,
    batch: usize,
    value_len: usize,
    users: u64,
) -> Result<RawStoreReport> {
    let mut o = Options::default();
    o.create_if_missing(true);
    let db = DB::open(&o, dir)?;
    let mut w = WriteOptions::default();
    w.set_sync(true);
    let value = vec![0xA5u8; value_len];
    let users = users.max(1);
    let batch = batch.max(1);
    let start = Instant::now();
    let mut i = 0u64;
    while i < entries {
        let mut b = WriteBatch::default();
        for _ in 0..batch.min((entries - i) as usize) {
            b.put(inbox_key(1 + i % users, 1 + i / users), &value);
            i += 1;
        }
        db.write_opt(b, &w)?;
    }
    Ok(RawStoreReport {
        entries,
        batch,
        elapsed: start.elapsed(),
    })
}

/// The file system type `path` lives on (from /proc/mounts), for the record.
pub fn fs_type(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        if path.starts_with(f[1]) && best.as_ref().is_none_or(|(n, _)| f[1].len() >= *n) {
            best = Some((f[1].len(), format!("{} on {}", f[2], f[1])));
        }
    }
    best.map_or_else(|| "unknown".into(), |(_, s)| s)
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &StoreOpts) -> Result<()> {
    let senders = opts.senders.max(1);
    let per_sender = (opts.messages / senders as u64).max(1);
    let messages = per_sender * senders as u64;
    let scratch = ScratchDir::new(opts.dir.as_deref(), "store", opts.keep)?;
    let frame_len = deliver_frame_len(opts.payload);
    let batch = if opts.baseline_batch == 0 {
        (senders * opts.window).clamp(1, 1024)
    } else {
        opts.baseline_batch
    };
    println!("tern-bench store: {}", machine_line());
    println!(
        "  {senders} senders to {senders} offline receivers, {} in flight per sender, {messages} messages of {} bytes (stored DELIVER frame {frame_len} bytes), data in {} ({})",
        opts.window,
        opts.payload,
        scratch.path().display(),
        fs_type(scratch.path()),
    );
    println!("  daemon: {}", opts.seal.describe());

    // The same entries as tern stores, into a fresh database each time.
    let raw_run = |name: &str, entries: u64, batch: usize| {
        raw_rocks(
            &scratch.path().join(name),
            entries,
            batch,
            frame_len,
            senders as u64,
        )
    };
    let raw1 = raw_run("raw1", messages, batch)?;
    println!(
        "  baseline raw RocksDB, run 1: {} entries/s ({} entries in synced batches of {}, {:.2?})",
        si(raw1.rate()),
        raw1.entries,
        raw1.batch,
        raw1.elapsed
    );

    let target = Target::in_process(&scratch.path().join("ternd"), opts.seal, |_| {})?;
    let spec = FlowSpec {
        window: opts.window,
        payload: opts.payload,
        max_time: opts.max_time,
        ..FlowSpec::pairs(target.user_base, senders, per_sender, false)
    };
    let (report, groups) = run_flow_with_cpu(&target, spec)?;
    let snapshot = target.stop()?.unwrap_or_default();

    let raw2 = raw_run("raw2", messages, batch)?;
    println!(
        "  baseline raw RocksDB, run 2: {} entries/s ({:.2?})",
        si(raw2.rate()),
        raw2.elapsed
    );

    let tern_rate = rate(report.stored, report.stored_elapsed);
    let c = snapshot.commits;
    let per_fsync = snapshot.broker.stored as f64 / c.fsyncs.max(1) as f64;
    println!(
        "  tern: {} msg/s pseudo-ACKed ({} of {} stored and ACKed in {:.2?}{}); {} fsyncs, {:.1} messages/fsync (largest group {} batches), {:.1} store ops/message",
        si(tern_rate),
        report.stored,
        messages,
        report.stored_elapsed,
        if report.timed_out { ", TIME LIMIT HIT" } else { "" },
        c.fsyncs,
        per_fsync,
        c.largest_group,
        c.ops as f64 / snapshot.broker.stored.max(1) as f64,
    );
    println!(
        "  tern latency, submit to pseudo-ACK: {}",
        fmt_latency(&report.stored_latency)
    );
    // The same raw writes at the batch size tern actually achieved.
    let tern_batch = (per_fsync.round() as usize).max(1);
    let entries = messages.min(tern_batch as u64 * 400).max(tern_batch as u64);
    let raw_same = raw_run("raw3", entries, tern_batch)?;
    println!(
        "  baseline raw RocksDB at tern's mean batch ({tern_batch} entries/fsync): {} entries/s",
        si(raw_same.rate())
    );
    let base = (raw1.rate() + raw2.rate()) / 2.0;
    let ratio = tern_rate / base.max(1e-9);
    println!(
        "  ratio tern / raw RocksDB (batches of {batch}, mean of both runs {} entries/s): {:.2} (target >= 0.70: {})",
        si(base),
        ratio,
        if ratio >= 0.70 { "met" } else { "missed" }
    );
    println!(
        "  ratio tern / raw RocksDB at tern's own batch size: {:.2}",
        tern_rate / raw_same.rate().max(1e-9)
    );
    let sw = report.sender_wire;
    println!(
        "  datagrams per message: senders out {:.2}, in {:.2}; daemon in {}, out {}",
        sw.datagrams_out as f64 / report.stored.max(1) as f64,
        sw.datagrams_in as f64 / report.stored.max(1) as f64,
        snapshot.broker.datagrams_in,
        snapshot.broker.datagrams_out,
    );
    println!(
        "  cpu (% of one core over the run): {}; load generator {:.0}%",
        fmt_cpu(&groups, report.stored_elapsed),
        100.0 * report.sender_cpu.as_secs_f64() / report.stored_elapsed.as_secs_f64().max(1e-9),
    );
    if report.timed_out || report.disconnects > 0 {
        return Err(BenchError::Failed(format!(
            "run incomplete: {} of {messages} stored, {} disconnects",
            report.stored, report.disconnects
        )));
    }
    Ok(())
}
