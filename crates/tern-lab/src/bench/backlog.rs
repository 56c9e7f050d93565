//! `tern-bench backlog`: a device comes back to a large backlog (by default
//! 30,000 messages across 50 conversations). Measured with one sans-IO
//! session over one UDP socket, so every byte is counted:
//!
//! 1. bytes and round trips until its conversation summary (counters first)
//!    is complete: LOGIN → LOGIN_OK, then SUMMARY_REQUEST → SUMMARY… END;
//! 2. the rate of a full paged pull of the backlog, against raw RocksDB
//!    iteration over the same entries (a read-only open of the daemon's
//!    database, in the same run, before the pull trims them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rocksdb::{Options, DB};
use tern_core::client::ClientEvent;

use super::flow::{run_flow, Fleet, FlowSpec};
use super::seal::Sealing;
use super::util::{fmt_latency, histogram, machine_line, rate, si, token, ScratchDir, Target};
use super::{BenchError, Result};
use tern::store::keys::{user_prefix, CF_INBOX, COLUMN_FAMILIES};

/// Options of `tern-bench backlog`.
#[derive(Debug, Clone)]
pub struct BacklogOpts {
    /// Messages stored for the device.
    pub messages: u64,
    /// Conversations they are spread over.
    pub convs: u64,
    /// Users sending them.
    pub senders: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Entries per pull page (the daemon's `limits.page_entries` is set to it).
    pub page: u64,
    /// Time limit of each phase.
    pub max_time: Duration,
    /// Folder for the daemon's data.
    pub dir: Option<PathBuf>,
    /// Keep the data folder.
    pub keep: bool,
    /// Sealed (the default) or clear raw UDP.
    pub seal: Sealing,
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &BacklogOpts) -> Result<()> {
    let senders = opts.senders.max(1);
    let per_sender = (opts.messages / senders as u64).max(1);
    let messages = per_sender * senders as u64;
    let page = opts
        .page
        .clamp(1, tern_core::wire::limits::MAX_PAGE_ENTRIES);
    let scratch = ScratchDir::new(opts.dir.as_deref(), "backlog", opts.keep)?;
    let data = scratch.path().join("ternd");
    let target = Target::in_process(&data, opts.seal, |c| c.limits.page_entries = page)?;
    let receiver = target.user_base + 1_000_000;
    println!("tern-bench backlog: {}", machine_line());
    println!(
        "  {messages} messages of {} bytes from {senders} senders across {} conversations to one offline device; pages of {page}; {}",
        opts.payload, opts.convs, opts.seal.describe()
    );

    // Fill the backlog through the protocol.
    let fill = run_flow(
        target.addr,
        &target.keys,
        target.seal_key,
        FlowSpec {
            senders: (0..senders as u64)
                .map(|i| (target.user_base + i, 1))
                .collect(),
            targets: vec![receiver; senders],
            receivers: Vec::new(),
            per_sender,
            window: 64,
            payload: opts.payload,
            convs: Some(opts.convs),
            max_time: opts.max_time,
        },
        || {},
    )?;
    if fill.stored != messages {
        return Err(BenchError::Failed(format!(
            "fill stored only {} of {messages} messages",
            fill.stored
        )));
    }
    println!(
        "  fill: {messages} messages stored in {:.2?} ({} msg/s)",
        fill.stored_elapsed,
        si(rate(fill.stored, fill.stored_elapsed))
    );

    // Baseline: raw iteration over the same entries, read-only beside the daemon.
    let (raw_entries, raw_bytes, raw_elapsed) = {
        let db = DB::open_cf_for_read_only(
            &Options::default(),
            data.join("db"),
            COLUMN_FAMILIES,
            false,
        )?;
        let cf = db
            .cf_handle(CF_INBOX)
            .ok_or_else(|| BenchError::Failed("no inbox column family".into()))?;
        let prefix = user_prefix(receiver);
        let start = Instant::now();
        let mut it = db.raw_iterator_cf(cf);
        it.seek(prefix);
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Some((k, v)) = it.item() {
            if !k.starts_with(&prefix) {
                break;
            }
            // A row holds a run of entries (store format 4).
            n += tern::store::run_rows::row_entries(v)
                .map_err(|e| BenchError::Failed(format!("inbox row: {e}")))?;
            bytes += v.len() as u64;
            it.next();
        }
        it.status()?;
        (n, bytes, start.elapsed())
    };
    println!(
        "  baseline raw RocksDB iteration (read-only open, one scan): {raw_entries} entries, {} bytes in {:.2?} = {} entries/s",
        raw_bytes,
        raw_elapsed,
        si(rate(raw_entries, raw_elapsed))
    );

    // The device, first as the daemon is configured by default (address
    // validation on: a LOGIN from a new address costs a RETRY round trip).
    let (_, cold) = summary_phase(&target, receiver, page, opts.max_time)?;
    print_summary("default config (address validation on)", &cold);
    // Then the same device against the same data with validation off.
    target.stop()?;
    let target = Target::in_process(&data, opts.seal, |c| {
        c.limits.page_entries = page;
        c.limits.validate_addresses = false;
    })?;
    let (mut fleet, warm) = summary_phase(&target, receiver, page, opts.max_time)?;
    print_summary("limits.validate_addresses = false", &warm);
    let mut events = Vec::new();

    // The full paged pull.
    let before = fleet.stats;
    let t1 = Instant::now();
    let deadline = t1 + opts.max_time;
    let now = fleet.now();
    fleet.conn(0).start_pull(now);
    let mut entries = 0u64;
    let mut pages = 0u64;
    let mut page_latency = histogram();
    let mut page_start = Instant::now();
    'pull: loop {
        if Instant::now() > deadline {
            return Err(BenchError::Failed(format!(
                "pull incomplete after {:?}: {entries} entries",
                opts.max_time
            )));
        }
        fleet.turn(Duration::from_millis(5), &mut events)?;
        for (_, ev) in events.drain(..) {
            match ev {
                ClientEvent::Entry(_) => entries += 1,
                ClientEvent::PageEnd(p) => {
                    pages += 1;
                    page_latency.saturating_record(page_start.elapsed().as_micros() as u64);
                    page_start = Instant::now();
                    if p.end && entries >= messages {
                        break 'pull;
                    }
                }
                _ => {}
            }
        }
    }
    let pull_elapsed = t1.elapsed();
    let p = fleet.stats;
    let _ = fleet.logout_all();
    let snapshot = target.stop()?.unwrap_or_default();
    let pull_rate = rate(entries, pull_elapsed);
    let raw_rate = rate(raw_entries, raw_elapsed);
    println!(
        "  tern paged pull: {entries} entries in {pages} pages, {:.2?} = {} msg/s (target >= 200k: {}); {} bytes in {} datagrams down, {} up",
        pull_elapsed,
        si(pull_rate),
        if pull_rate >= 200_000.0 { "met" } else { "missed" },
        p.bytes_in - before.bytes_in,
        p.datagrams_in - before.datagrams_in,
        p.datagrams_out - before.datagrams_out,
    );
    println!("  time per page: {}", fmt_latency(&page_latency));
    println!(
        "  ratio tern pull / raw RocksDB iteration: {:.3}",
        pull_rate / raw_rate.max(1e-9)
    );
    println!(
        "  daemon: {} entries pulled, {} datagrams out, {} fsyncs in all",
        snapshot.broker.pulled, snapshot.broker.datagrams_out, snapshot.commits.fsyncs
    );
    Ok(())
}

/// What getting a complete summary cost.
pub(super) struct SummaryCost {
    login_round_trips: u64,
    summary_round_trips: u64,
    pub(super) bytes: u64,
    login_bytes: u64,
    datagrams_out: u64,
    datagrams_in: u64,
    login_ms: f64,
    summary_ms: f64,
    convs: u64,
    unread: u64,
    head: u64,
    pull_mode: bool,
}

/// Logs the device in on a fresh socket and asks for its summary until
/// complete, counting every datagram and byte both ways.
pub(super) fn summary_phase(
    target: &Target,
    receiver: u64,
    page: u64,
    max_time: Duration,
) -> Result<(Fleet, SummaryCost)> {
    let mut fleet = Fleet::new(target.addr, vec![token(&target.keys, receiver, 1)], |c| {
        c.auto_pull = false;
        c.page_entries = page;
        c.server_key = target.seal_key;
    })?;
    let mut events = Vec::new();
    let t0 = Instant::now();
    let deadline = t0 + max_time;
    let pull_mode;
    'login: loop {
        if Instant::now() > deadline {
            return Err(BenchError::Failed("no login".into()));
        }
        fleet.turn(Duration::from_millis(5), &mut events)?;
        for (_, ev) in events.drain(..) {
            if let ClientEvent::LoggedIn { pull_mode: p, .. } = ev {
                pull_mode = p;
                break 'login;
            }
        }
    }
    let login_stats = fleet.stats;
    let login_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    // One round trip per LOGIN sent (a RETRY or a lost datagram costs another).
    let login_round_trips = login_stats.datagrams_out.max(1);
    let now = fleet.now();
    fleet.conn(0).request_summary(now);
    let (convs, end, summary_round_trips);
    'summary: loop {
        if Instant::now() > deadline {
            return Err(BenchError::Failed("no summary".into()));
        }
        fleet.turn(Duration::from_millis(5), &mut events)?;
        for (_, ev) in events.drain(..) {
            if let ClientEvent::Summaries(all) = ev {
                // One round trip per page.
                (convs, end, summary_round_trips) =
                    (all.convs.len() as u64, all.end, u64::from(all.pages));
                break 'summary;
            }
        }
    }
    let s = fleet.stats;
    let cost = SummaryCost {
        login_round_trips,
        summary_round_trips,
        bytes: s.bytes_in + s.bytes_out,
        login_bytes: login_stats.bytes_in + login_stats.bytes_out,
        datagrams_out: s.datagrams_out,
        datagrams_in: s.datagrams_in,
        login_ms,
        summary_ms: t1.elapsed().as_secs_f64() * 1e3,
        convs,
        unread: end.total_unread,
        head: end.head,
        pull_mode,
    };
    Ok((fleet, cost))
}

pub(super) fn print_summary(label: &str, c: &SummaryCost) {
    let rts = c.login_round_trips + c.summary_round_trips;
    let datagrams = c.datagrams_in + c.datagrams_out;
    println!(
        "  summary, {label}: {} conversations, {} unread, head {} (pull mode at login: {})",
        c.convs, c.unread, c.head, c.pull_mode
    );
    println!(
        "    {rts} round trips (login {}, summary {}), {} bytes UDP payload ({} with IPv4+UDP headers) in {datagrams} datagrams ({} out, {} in; login {} bytes); login {:.1} ms, summary {:.1} ms",
        c.login_round_trips,
        c.summary_round_trips,
        c.bytes,
        c.bytes + 28 * datagrams,
        c.datagrams_out,
        c.datagrams_in,
        c.login_bytes,
        c.login_ms,
        c.summary_ms,
    );
    println!(
        "    targets: <= 16 KB: {}; <= 2 round trips: {}",
        if c.bytes <= 16 * 1024 {
            "met"
        } else {
            "missed"
        },
        if rts <= 2 { "met" } else { "missed" }
    );
}
