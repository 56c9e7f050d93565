//! `tern-bench`: Tern's benchmarks, each against a baseline measured in the
//! same run (see `docs/benchmarks.md` for the figures and the commands).
//! Thin: parses arguments and calls [`tern_lab::bench`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tern_lab::bench;
use tern_lab::bench::seal::SealMode;

#[derive(Parser)]
#[command(
    name = "tern-bench",
    version,
    about = "Tern benchmarks, each against a baseline from the same run"
)]
struct Cli {
    #[command(flatten)]
    log: tern::cli::Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Scratch {
    /// Folder under which the benchmark's data goes (default: the temp
    /// folder). It must be a real disk for fsync figures to mean anything.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the data afterwards.
    #[arg(long)]
    keep: bool,
}

/// Sender/receiver pairs with a window of messages in flight (relay, and
/// the throughput runs of transports).
#[derive(Args, Clone)]
struct PairLoad {
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 16)]
    pairs: usize,
    /// Messages in flight per sender.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Messages per measured run, split over the pairs.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Payload bytes (at least 16).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Time limit of each measured run.
    #[arg(long, default_value = "30s")]
    max_time: humantime::Duration,
}

#[derive(Subcommand)]
enum Command {
    /// Online relay throughput (stored ACK and delivery) vs a raw-UDP relay.
    Relay {
        #[command(flatten)]
        load: PairLoad,
        /// Messages in flight in the raw-UDP baseline (0: as many as tern,
        /// pairs × window). A run with 64 in flight is always added.
        #[arg(long, default_value_t = 0)]
        baseline_window: usize,
        /// Benchmark an external daemon (udp://HOST:PORT) instead of one in this process.
        #[arg(long, requires = "data_dir")]
        server: Option<String>,
        /// The external daemon's data folder (for its token secret and
        /// seal key).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Raw-UDP configuration: "sealed" (the daemon's default: seal
        /// policy required, clients sealed), "clear" (seal policy off), or
        /// "both" (sealed, then clear, in the same run).
        #[arg(long, default_value = "sealed")]
        seal: SealMode,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Durable offline store (pseudo-ACK) vs raw RocksDB synced batches.
    Store {
        /// Sending devices, each to its own offline receiver.
        #[arg(long, default_value_t = 64)]
        senders: usize,
        /// Messages in flight per sender.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Messages in all.
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
        /// Payload bytes (at least 16).
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Time limit of the measured run.
        #[arg(long, default_value = "30s")]
        max_time: humantime::Duration,
        /// Entries per raw RocksDB batch (0: senders × window, at most 1024).
        #[arg(long, default_value_t = 0)]
        baseline_batch: usize,
        /// Raw-UDP configuration: "sealed" (the daemon's default: seal
        /// policy required, clients sealed), "clear" (seal policy off), or
        /// "both" (sealed, then clear, in the same run).
        #[arg(long, default_value = "sealed")]
        seal: SealMode,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// A million logged-in idle sessions with heartbeats flowing: RSS,
    /// heartbeat CPU and login rate, against a minimal session table.
    Million {
        /// Sessions to open and keep.
        #[arg(long, default_value_t = 1_000_000)]
        sessions: usize,
        /// Sessions per login wave (each wave is handed to the heartbeat
        /// keeper when it is in; a wave must log in within the idle timeout).
        #[arg(long, default_value_t = 20_000)]
        wave: usize,
        /// Handshakes (sealed; one socket each) or LOGINs (clear)
        /// outstanding at once. With 256 sealed handshakes at once the
        /// daemon's loop fell behind on the heartbeats of the sessions
        /// already in, and some idled out.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Sockets the heartbeats are sent from.
        #[arg(long, default_value_t = 32)]
        keeper_sockets: usize,
        /// One HEARTBEAT per session per this (the daemon announces 15 s).
        #[arg(long, default_value = "15s")]
        interval: humantime::Duration,
        /// The measured window with heartbeats only.
        #[arg(long, default_value = "30s")]
        steady: humantime::Duration,
        /// The ternd binary (default: next to this one).
        #[arg(long)]
        ternd: Option<PathBuf>,
        /// "sealed" (the daemon's default), "clear", or "both".
        #[arg(long, default_value = "sealed")]
        seal: SealMode,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Daemon RSS per idle logged-in session vs a minimal session table.
    Sessions {
        /// Sessions to open.
        #[arg(long, default_value_t = 100_000)]
        sessions: usize,
        /// UDP sockets they share.
        #[arg(long, default_value_t = 16)]
        sockets: usize,
        /// LOGINs outstanding at once.
        #[arg(long, default_value_t = 1024)]
        window: usize,
        /// Devices per user (1: every session a different user; more
        /// separates per-user from per-session memory).
        #[arg(long, default_value_t = 1)]
        devices_per_user: usize,
        /// Time limit of each login phase.
        #[arg(long, default_value = "60s")]
        max_time: humantime::Duration,
        /// The ternd binary (default: next to this one).
        #[arg(long)]
        ternd: Option<PathBuf>,
        /// Raw-UDP configuration: "sealed" (the daemon's default: seal
        /// policy required, each session a Noise handshake; one handshake
        /// outstanding per socket, so --window sockets), "clear" (seal
        /// policy off, clear LOGINs over --sockets sockets), or "both".
        #[arg(long, default_value = "sealed")]
        seal: SealMode,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Summary cost and paged-pull rate for a device with a large backlog.
    Backlog {
        /// Messages waiting for the device.
        #[arg(long, default_value_t = 30_000)]
        messages: u64,
        /// Conversations they are spread over.
        #[arg(long, default_value_t = 50)]
        convs: u64,
        /// Users sending them.
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Payload bytes (at least 16).
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Entries per pull page (also set as the daemon's limit).
        #[arg(long, default_value_t = 256)]
        page: u64,
        /// Raw-UDP configuration: "sealed" (the daemon's default: seal
        /// policy required, clients sealed), "clear" (seal policy off), or
        /// "both" (sealed, then clear, in the same run).
        #[arg(long, default_value = "sealed")]
        seal: SealMode,
        /// Time limit of each phase.
        #[arg(long, default_value = "60s")]
        max_time: humantime::Duration,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Store operations and key+value bytes per group message under write
    /// fan-out, by group size, vs one direct message (deterministic).
    GroupCost {
        /// Group sizes (members, the sender included).
        #[arg(long, value_delimiter = ',', default_value = "10,100,500")]
        sizes: Vec<usize>,
        /// Messages posted per case.
        #[arg(long, default_value_t = 50)]
        messages: u64,
        /// Payload bytes.
        #[arg(long, default_value_t = 64)]
        payload: usize,
    },
    /// "Read by N" in a large group: the broker's Fenwick tree over read
    /// cursors vs a scan of every cursor, same questions, same run.
    ReadCounts {
        /// Members of the group.
        #[arg(long, default_value_t = 30_000)]
        members: u64,
        /// Records of its timeline.
        #[arg(long, default_value_t = 20_000)]
        records: u64,
        /// Reads (cursor moves).
        #[arg(long, default_value_t = 1_000_000)]
        reads: u64,
        /// A count of 64 records after this many reads.
        #[arg(long, default_value_t = 1_000)]
        query_every: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Conversations at scale: storage per message, the conversation list
    /// after a day offline (vs the version 1 summary), history pages (vs a
    /// raw RocksDB range read).
    Convs {
        /// Users writing to the device, one direct conversation each.
        #[arg(long, default_value_t = 500)]
        convs: usize,
        /// Messages in each conversation.
        #[arg(long, default_value_t = 60)]
        per_conv: u64,
        /// Payload bytes (at least 16).
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// History pages read.
        #[arg(long, default_value_t = 2000)]
        reads: usize,
        /// Records per history page.
        #[arg(long, default_value_t = 50)]
        page: u64,
        /// Raw-UDP configuration: "sealed" (the daemon's default: seal
        /// policy required, clients sealed), "clear" (seal policy off), or
        /// "both" (sealed, then clear, in the same run).
        #[arg(long, default_value = "sealed")]
        seal: SealMode,
        /// Time limit of each phase.
        #[arg(long, default_value = "120s")]
        max_time: humantime::Duration,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Transport security cost: raw UDP (plaintext) vs QUIC, throughput
    /// and latency at a fixed rate, in the same run.
    Transports {
        #[command(flatten)]
        load: PairLoad,
        /// Messages per second in all during the latency runs.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// Length of each latency run.
        #[arg(long, default_value = "5s")]
        duration: humantime::Duration,
        /// Rounds; each runs every transport once, in alternating order.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Legitimate latency while a garbage flood hits the UDP port, vs without.
    Flood {
        /// Flood datagrams per second to aim for (what is achieved is printed).
        #[arg(long, default_value_t = 100_000)]
        flood_rate: u64,
        /// Length of each phase.
        #[arg(long, default_value = "5s")]
        duration: humantime::Duration,
        /// Legitimate sender/receiver pairs.
        #[arg(long, default_value_t = 4)]
        pairs: usize,
        /// Legitimate messages per second in all.
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        /// Payload bytes of the legitimate messages (at least 16).
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Flood sender threads.
        #[arg(long, default_value_t = 1)]
        flood_threads: usize,
        /// Source addresses per flood thread (127.0.0.2 onwards); the
        /// pre-login limit is per source address.
        #[arg(long, default_value_t = 32)]
        sources: usize,
        /// Legitimate clients seal their sessions (daemon seal policy
        /// "required") instead of logging in in the clear ("optional").
        #[arg(long)]
        sealed: bool,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Bytes answered per byte received from unvalidated sources, per kind
    /// of pre-login datagram; the largest factor must be at most 1.
    Amplification {
        /// Copies of each probe.
        #[arg(long, default_value_t = 20)]
        copies: usize,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Seed 004's check-in storm: every member of a 30,000-member group
    /// (read fan-out) logs in within 60 s and fetches its list, vs the same
    /// logins in a 500-member group (write fan-out).
    Storm(bench::group_args::StormArgs),
    /// Deliveries per second in a 1,000-member group, every member online,
    /// vs the one-to-one relay (messages delivered per second).
    LiveFanout(bench::group_args::LiveFanoutArgs),
    /// The sessions benchmark's baseline server (internal).
    #[command(hide = true)]
    SessionSink {
        /// Token secret file (hex).
        #[arg(long)]
        secret_file: PathBuf,
    },
}

fn d(h: humantime::Duration) -> Duration {
    h.into()
}

fn run(b: Command) -> anyhow::Result<()> {
    match b {
        Command::Relay {
            load,
            baseline_window,
            server,
            data_dir,
            seal,
            scratch,
        } => {
            let server = match (server, data_dir) {
                (Some(s), Some(dd)) => Some((tern::cli::parse_server(&s)?, dd)),
                _ => None,
            };
            bench::relay::run(&bench::relay::RelayOpts {
                pairs: load.pairs,
                window: load.window,
                messages: load.messages,
                payload: load.payload.max(16),
                max_time: d(load.max_time),
                baseline_window,
                server,
                dir: scratch.dir,
                keep: scratch.keep,
                seal,
            })?;
        }
        Command::Store {
            senders,
            window,
            messages,
            payload,
            max_time,
            baseline_batch,
            seal,
            scratch,
        } => {
            for &s in seal.modes() {
                bench::store::run(&bench::store::StoreOpts {
                    senders,
                    window,
                    messages,
                    payload: payload.max(16),
                    max_time: d(max_time),
                    baseline_batch,
                    dir: scratch.dir.clone(),
                    keep: scratch.keep,
                    seal: s,
                })?
            }
        }
        Command::Million {
            sessions,
            wave,
            window,
            keeper_sockets,
            interval,
            steady,
            ternd,
            seal,
            scratch,
        } => {
            for &s in seal.modes() {
                bench::million::run(&bench::million::MillionOpts {
                    sessions,
                    wave,
                    window,
                    keeper_sockets,
                    interval: d(interval),
                    steady: d(steady),
                    ternd: ternd.clone(),
                    dir: scratch.dir.clone(),
                    keep: scratch.keep,
                    seal: s,
                })?
            }
        }
        Command::Sessions {
            sessions,
            sockets,
            window,
            devices_per_user,
            max_time,
            ternd,
            seal,
            scratch,
        } => {
            for &s in seal.modes() {
                bench::sessions::run(&bench::sessions::SessionsOpts {
                    sessions,
                    sockets,
                    window,
                    devices_per_user,
                    max_time: d(max_time),
                    ternd: ternd.clone(),
                    dir: scratch.dir.clone(),
                    keep: scratch.keep,
                    seal: s,
                })?
            }
        }
        Command::Backlog {
            messages,
            convs,
            senders,
            payload,
            page,
            max_time,
            seal,
            scratch,
        } => {
            for &s in seal.modes() {
                bench::backlog::run(&bench::backlog::BacklogOpts {
                    messages,
                    convs,
                    senders,
                    payload: payload.max(16),
                    page,
                    max_time: d(max_time),
                    dir: scratch.dir.clone(),
                    keep: scratch.keep,
                    seal: s,
                })?
            }
        }
        Command::ReadCounts {
            members,
            records,
            reads,
            query_every,
            seed,
        } => bench::read_counts::run(&bench::read_counts::ReadCountsOpts {
            members,
            records,
            reads,
            query_every,
            seed,
        })?,
        Command::GroupCost {
            sizes,
            messages,
            payload,
        } => bench::group_cost::run(&bench::group_cost::GroupCostOpts {
            sizes,
            messages,
            payload,
        })?,
        Command::Convs {
            convs,
            per_conv,
            payload,
            reads,
            page,
            max_time,
            seal,
            scratch,
        } => {
            for &s in seal.modes() {
                bench::convs::run(&bench::convs::ConvsOpts {
                    convs,
                    per_conv,
                    payload: payload.max(16),
                    reads,
                    page,
                    max_time: d(max_time),
                    dir: scratch.dir.clone(),
                    keep: scratch.keep,
                    seal: s,
                })?
            }
        }
        Command::Transports {
            load,
            rate,
            duration,
            rounds,
            scratch,
        } => bench::transports::run(&bench::transports::TransportsOpts {
            pairs: load.pairs,
            window: load.window,
            messages: load.messages,
            payload: load.payload.max(16),
            rate,
            duration: d(duration),
            rounds,
            max_time: d(load.max_time),
            dir: scratch.dir,
            keep: scratch.keep,
        })?,
        Command::Flood {
            flood_rate,
            duration,
            pairs,
            rate,
            payload,
            flood_threads,
            sources,
            sealed,
            scratch,
        } => bench::flood::run(&bench::flood::FloodOpts {
            flood_rate,
            duration: d(duration),
            pairs,
            rate,
            payload: payload.max(16),
            flood_threads,
            sources,
            sealed,
            dir: scratch.dir,
            keep: scratch.keep,
        })?,
        Command::Amplification { copies, scratch } => {
            let report = bench::amplification::run(&bench::amplification::AmplificationOpts {
                copies,
                dir: scratch.dir,
                keep: scratch.keep,
            })?;
            if report.max_factor() > 1.0 {
                anyhow::bail!("amplification factor {:.3} > 1.0", report.max_factor());
            }
        }
        Command::Storm(a) => bench::storm::run(&a.into())?,
        Command::LiveFanout(a) => bench::live_fanout::run(&a.into())?,
        Command::SessionSink { secret_file } => bench::sessions::session_sink(&secret_file)?,
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init_logging(tracing::Level::WARN);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
