//! `tern-bench convs`: conversations at scale (seeds 003 and 004), by
//! default a device that was offline for a day while 500 users sent it
//! 60 messages each (30,000 messages in 500 direct conversations):
//!
//! 1. storage: what those messages cost in RocksDB (sync timeline and
//!    storage timelines together), key and value bytes per column family and
//!    the data folder's growth, against the bytes of the messages;
//! 2. the device's login and conversation list (version 2) until complete:
//!    round trips and bytes both ways, against the version 1 device's
//!    counters-first summary of the same backlog in the same run;
//! 3. history pages of 50 records at random places of random
//!    conversations: request-to-page latency, against a raw RocksDB range
//!    read of the same rows (a read-only open beside the daemon).
//!
//! Every byte is counted on the client's socket: one sans-IO session per
//! device on one UDP socket (the [`Fleet`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rocksdb::{Options, DB};
use tern::store::conv_values::{record_key, CF_CONV};
use tern::store::keys::COLUMN_FAMILIES;
use tern_core::client::ClientEvent;
use tern_core::conv::ConvKey;
use tern_core::wire::{ConvRef, VERSION_2};

use super::backlog::{print_summary, summary_phase};
use super::fleet::Fleet;
use super::flow::{run_flow, FlowSpec};
use super::seal::Sealing;
use super::util::{fmt_latency, histogram, machine_line, rate, si, token, ScratchDir, Target};
use super::{BenchError, Result};

/// Options of `tern-bench convs`.
#[derive(Debug, Clone)]
pub struct ConvsOpts {
    /// Users writing to the device, one direct conversation each.
    pub convs: usize,
    /// Messages each of them sends.
    pub per_conv: u64,
    /// Payload bytes.
    pub payload: usize,
    /// History pages read.
    pub reads: usize,
    /// Records per history page.
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
pub fn run(opts: &ConvsOpts) -> Result<()> {
    let scratch = ScratchDir::new(opts.dir.as_deref(), "convs", opts.keep)?;
    let data = scratch.path().join("ternd");
    let target = Target::in_process(&data, opts.seal, |_| {})?;
    let receiver = target.user_base + 1_000_000;
    let senders: Vec<u64> = (0..opts.convs as u64)
        .map(|i| target.user_base + i)
        .collect();
    let messages = opts.per_conv * senders.len() as u64;
    println!("tern-bench convs: {}", machine_line());
    println!(
        "  {messages} messages of {} bytes from {} users, one direct conversation each, to one device offline all along ({})",
        opts.payload,
        senders.len(),
        opts.seal.describe()
    );
    let db_before = dir_bytes(&data.join("db"));
    let fill = run_flow(
        target.addr,
        &target.keys,
        target.seal_key,
        FlowSpec {
            senders: senders.iter().map(|&u| (u, 1)).collect(),
            targets: vec![receiver; senders.len()],
            receivers: Vec::new(),
            per_sender: opts.per_conv,
            window: 8,
            payload: opts.payload,
            convs: None,
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
        "  fill: stored in {:.2?} ({} msg/s)",
        fill.stored_elapsed,
        si(rate(fill.stored, fill.stored_elapsed))
    );
    storage_report(&data, messages, opts.payload, db_before)?;

    // Baseline first: a version 1 device's counters-first summary.
    let (fleet, v1) = summary_phase(&target, receiver, 256, opts.max_time)?;
    print_summary("baseline: version 1 counters-first summary", &v1);
    drop(fleet);
    let (mut fleet, list) = list_phase(&target, receiver, opts.max_time, None)?;
    report_list("version 2 list, first login", &list, v1.bytes);
    // The same device comes back (an app restart) with the address token
    // its state folder kept: no RETRY round trip.
    let token = list.address_token.clone();
    let _ = fleet.logout_all();
    drop(fleet);
    let (mut fleet, back) = list_phase(&target, receiver, opts.max_time, token.clone())?;
    report_list(
        if token.is_some() {
            "version 2 list, returning device (address token)"
        } else {
            "version 2 list, returning device (the server gave no address token)"
        },
        &back,
        v1.bytes,
    );

    history_phase(&mut fleet, &data, receiver, &senders, opts)?;
    let _ = fleet.logout_all();
    target.stop()?;
    Ok(())
}

/// Prints one list phase: the whole cost, then the goal of the list after
/// a login (seed 004) and of a returning device (issue 14: login and list
/// in at most 2 round trips and 16 KB, address validation on).
fn report_list(what: &str, list: &ListCost, v1_bytes: u64) {
    let rts = list.login_round_trips + list.list_round_trips;
    println!(
        "  {what}: {} conversations, {} unread; {rts} round trips (login {}, list {}), {} bytes UDP payload in {} datagrams; login {:.1} ms, list {:.1} ms",
        list.convs,
        list.unread,
        list.login_round_trips,
        list.list_round_trips,
        list.bytes,
        list.datagrams,
        list.login_ms,
        list.list_ms
    );
    println!(
        "    list after login: {} round trips (target <= 2: {}), {} bytes (target <= 16 KB: {}); bytes / version 1 summary: {:.2}",
        list.list_round_trips,
        met(list.list_round_trips <= 2),
        list.list_bytes,
        met(list.list_bytes <= 16 * 1024),
        list.bytes as f64 / v1_bytes.max(1) as f64
    );
    println!(
        "    login and list: {rts} round trips (returning device target <= 2: {}), {} bytes (target <= 16 KB: {})",
        met(rts <= 2),
        list.bytes,
        met(list.bytes <= 16 * 1024)
    );
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Key and value bytes per column family (a read-only open beside the
/// daemon), and the data folder's growth, per message.
fn storage_report(data: &Path, messages: u64, payload: usize, db_before: u64) -> Result<()> {
    let db =
        DB::open_cf_for_read_only(&Options::default(), data.join("db"), COLUMN_FAMILIES, false)?;
    let mut total = 0u64;
    let mut parts = Vec::new();
    for name in COLUMN_FAMILIES {
        let Some(cf) = db.cf_handle(name) else {
            continue;
        };
        let mut it = db.raw_iterator_cf(cf);
        it.seek_to_first();
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some((k, v)) = it.item() {
            rows += 1;
            bytes += (k.len() + v.len()) as u64;
            it.next();
        }
        it.status()?;
        if rows > 0 {
            parts.push(format!("{name} {rows} rows {bytes} B"));
        }
        total += bytes;
    }
    let grown = dir_bytes(&data.join("db")).saturating_sub(db_before);
    let per = total as f64 / messages.max(1) as f64;
    println!("  storage: {}", parts.join(", "));
    println!(
        "    {per:.1} key+value bytes per message over all column families ({:.2}x its {payload}-byte payload); data folder grew {} bytes = {:.1} per message (WAL and SST files, before compaction)",
        per / payload.max(1) as f64,
        grown,
        grown as f64 / messages.max(1) as f64
    );
    Ok(())
}

/// What the version 2 login and list cost.
struct ListCost {
    login_round_trips: u64,
    list_round_trips: u64,
    bytes: u64,
    list_bytes: u64,
    datagrams: u64,
    login_ms: f64,
    list_ms: f64,
    convs: usize,
    unread: u64,
    /// The address token the server gave with the login, if any.
    address_token: Option<bytes::Bytes>,
}

/// A version 2 device logs in on a fresh socket and fetches its whole
/// conversation list with 12-byte previews. With `address_token` (what a
/// returning device keeps in its state folder), the login echoes it.
fn list_phase(
    target: &Target,
    receiver: u64,
    max_time: Duration,
    address_token: Option<bytes::Bytes>,
) -> Result<(Fleet, ListCost)> {
    let mut fleet = Fleet::new(target.addr, vec![token(&target.keys, receiver, 2)], |c| {
        c.version = VERSION_2;
        c.auto_pull = false;
        c.address_token = address_token.clone();
        c.server_key = target.seal_key;
    })?;
    let mut given = None;
    let mut events = Vec::new();
    let t0 = Instant::now();
    let deadline = t0 + max_time;
    'login: loop {
        if Instant::now() > deadline {
            return Err(BenchError::Failed("no login".into()));
        }
        fleet.turn(Duration::from_millis(5), &mut events)?;
        let mut logged_in = false;
        for (_, ev) in events.drain(..) {
            match ev {
                ClientEvent::LoggedIn { .. } => logged_in = true,
                ClientEvent::AddressToken(t) => given = Some(t),
                _ => {}
            }
        }
        if logged_in {
            break 'login;
        }
    }
    let login = fleet.stats;
    let login_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let now = fleet.now();
    fleet.conn(0).request_list(now, 0, 12);
    let list = 'list: loop {
        if Instant::now() > deadline {
            return Err(BenchError::Failed("no list".into()));
        }
        fleet.turn(Duration::from_millis(5), &mut events)?;
        let mut got = None;
        for (_, ev) in events.drain(..) {
            match ev {
                ClientEvent::ConvList(l) => got = Some(l),
                ClientEvent::AddressToken(t) => given = Some(t),
                _ => {}
            }
        }
        if let Some(l) = got {
            break 'list l;
        }
    };
    let s = fleet.stats;
    let cost = ListCost {
        login_round_trips: login.datagrams_out.max(1),
        list_round_trips: u64::from(list.pages),
        bytes: s.bytes_in + s.bytes_out,
        list_bytes: (s.bytes_in + s.bytes_out) - (login.bytes_in + login.bytes_out),
        datagrams: s.datagrams_in + s.datagrams_out,
        login_ms,
        list_ms: t1.elapsed().as_secs_f64() * 1e3,
        convs: list.items.len(),
        unread: list.total_unread,
        address_token: given,
    };
    Ok((fleet, cost))
}

/// History pages at random places: the daemon over UDP, then a raw
/// RocksDB range read of the same rows.
fn history_phase(
    fleet: &mut Fleet,
    data: &Path,
    receiver: u64,
    senders: &[u64],
    opts: &ConvsOpts,
) -> Result<()> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let top = opts.per_conv + 1;
    let asks: Vec<(u64, u64)> = (0..opts.reads)
        .map(|_| {
            let peer = senders[rng.gen_range(0..senders.len())];
            let before = if rng.gen_bool(0.3) {
                0
            } else {
                rng.gen_range(opts.page.min(top)..=top)
            };
            (peer, before)
        })
        .collect();
    let mut tern = histogram();
    let mut events = Vec::new();
    let mut records = 0u64;
    for &(peer, before) in &asks {
        let t = Instant::now();
        let now = fleet.now();
        if !fleet
            .conn(0)
            .request_history(now, ConvRef::direct(peer), before, opts.page)
        {
            return Err(BenchError::Failed("history request refused".into()));
        }
        'page: loop {
            if t.elapsed() > opts.max_time {
                return Err(BenchError::Failed("no history page".into()));
            }
            fleet.turn(Duration::from_millis(5), &mut events)?;
            for (_, ev) in events.drain(..) {
                if let ClientEvent::History(p) = ev {
                    if !p.gap_fill {
                        records += p.records.len() as u64;
                        break 'page;
                    }
                }
            }
        }
        tern.saturating_record(t.elapsed().as_micros() as u64);
    }
    let db =
        DB::open_cf_for_read_only(&Options::default(), data.join("db"), COLUMN_FAMILIES, false)?;
    let cf = db
        .cf_handle(CF_CONV)
        .ok_or_else(|| BenchError::Failed("no conv column family".into()))?;
    let mut raw = histogram();
    let mut raw_records = 0u64;
    for &(peer, before) in &asks {
        let key = ConvKey::of(receiver, ConvRef::direct(peer));
        let t = Instant::now();
        let mut it = db.raw_iterator_cf(cf);
        let start = if before == 0 { u64::MAX } else { before - 1 };
        it.seek_for_prev(record_key(&key, start));
        let mut n = 0u64;
        while n < opts.page {
            let Some((k, v)) = it.item() else { break };
            if !k.starts_with(&key.to_bytes()) {
                break;
            }
            std::hint::black_box(v);
            // A row holds a run of records (store format 4): read rows
            // until they hold a page.
            n += tern::store::run_rows::row_entries(v)
                .map_err(|e| BenchError::Failed(format!("conv row: {e}")))?;
            it.prev();
        }
        it.status()?;
        raw.saturating_record(t.elapsed().as_micros() as u64);
        raw_records += n;
    }
    let ratio = |q: f64| tern.value_at_quantile(q) as f64 / raw.value_at_quantile(q).max(1) as f64;
    println!(
        "  history pages of {}: {} reads, {records} records",
        opts.page,
        asks.len()
    );
    println!(
        "    tern over UDP (request to complete page): {}",
        fmt_latency(&tern)
    );
    println!(
        "    baseline raw RocksDB range read of the same rows ({raw_records} records): {}",
        fmt_latency(&raw)
    );
    println!(
        "    ratio tern / raw RocksDB: p50 {:.1}, p99 {:.1}",
        ratio(0.5),
        ratio(0.99)
    );
    Ok(())
}
