//! `tern`: the Tern client command line. Thin: parses arguments and calls
//! [`tern::cli`] (send, recv, pull) and [`tern::bench`] (benchmarks).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tern::{bench, cli};

#[derive(Parser)]
#[command(
    name = "tern",
    version,
    about = "Tern client: send and receive messages, inspect the backlog, benchmark the daemon"
)]
struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Conn {
    /// Server: udp://HOST:PORT or HOST:PORT (port 7400 if omitted).
    #[arg(long, env = "TERN_SERVER")]
    server: String,
    /// Login token, hex, as printed by `ternd token`.
    #[arg(long, env = "TERN_TOKEN", hide_env_values = true)]
    token: String,
    /// Folder for durable client state (checkpoint, unsent messages).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The server's seal key (`tern-x25519:…`, printed by `ternd seal-key`
    /// and at `ternd serve` start): the session is encrypted and the server
    /// authenticated. Servers require it unless `[seal] policy` says otherwise.
    #[arg(long, env = "TERN_SEAL_KEY")]
    seal_key: Option<String>,
}

impl Conn {
    fn seal_key(&self) -> anyhow::Result<Option<tern::client::SealKey>> {
        self.seal_key
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("--seal-key")
    }
}

#[derive(Subcommand)]
enum Command {
    /// Send a message; exits 0 once the server has stored it, printing
    /// `stored seq=N`, or `delivered seq=N` when the receiver was online and
    /// acknowledged it within --wait-delivered.
    Send {
        #[command(flatten)]
        conn: Conn,
        /// Receiving user id.
        #[arg(long)]
        to: u64,
        /// Conversation id.
        #[arg(long, default_value_t = 1)]
        conv: u64,
        /// Application message type (0 = UTF-8 text by convention).
        #[arg(long = "type", default_value_t = 0)]
        msg_type: u64,
        /// The message is hex-encoded bytes rather than text.
        #[arg(long)]
        hex: bool,
        /// Limit for connecting and getting the server's ACK.
        #[arg(long, default_value = "10s")]
        timeout: humantime::Duration,
        /// How long to wait for the receiver's DELIVERED receipt when it is
        /// online (0s: do not wait).
        #[arg(long, default_value = "2s")]
        wait_delivered: humantime::Duration,
        /// The message.
        text: String,
    },
    /// Print messages as they arrive (one JSON object per line with
    /// --json); each is released after it is printed.
    Recv {
        #[command(flatten)]
        conn: Conn,
        /// Exit 0 after this many messages (receipts and recalls count only with --all).
        #[arg(long)]
        count: Option<u64>,
        /// Count receipts and recalls toward --count too.
        #[arg(long)]
        all: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Give up after this long (0s: never). With --count, running out
        /// of time is an error.
        #[arg(long, default_value = "30s")]
        timeout: humantime::Duration,
        /// Limit for the first login.
        #[arg(long, default_value = "10s")]
        connect_timeout: humantime::Duration,
    },
    /// Print the conversation summary (counters first); with --all, then
    /// pull and consume the whole backlog page by page.
    Pull {
        #[command(flatten)]
        conn: Conn,
        /// Pull everything after the summary (releases it for this device).
        #[arg(long)]
        all: bool,
        /// Print the pulled entries (with --all).
        #[arg(long)]
        print: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Limit for each step.
        #[arg(long, default_value = "10s")]
        timeout: humantime::Duration,
    },
    /// Benchmarks, each against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(BenchCmd),
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

#[derive(Subcommand)]
enum BenchCmd {
    /// Online relay throughput (stored ACK and delivery) vs a raw-UDP relay.
    Relay {
        /// Sender/receiver pairs.
        #[arg(long, default_value_t = 16)]
        pairs: usize,
        /// Messages in flight per sender.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Messages in all.
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
        /// Payload bytes (at least 16).
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Time limit of each measured run.
        #[arg(long, default_value = "30s")]
        max_time: humantime::Duration,
        /// Messages in flight in the raw-UDP baseline (0: as many as tern,
        /// pairs × window). A run with 64 in flight is always added.
        #[arg(long, default_value_t = 0)]
        baseline_window: usize,
        /// Benchmark an external daemon (udp://HOST:PORT) instead of one in this process.
        #[arg(long, requires = "data_dir")]
        server: Option<String>,
        /// The external daemon's data folder (for its token secret).
        #[arg(long)]
        data_dir: Option<PathBuf>,
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
        /// Time limit of each phase.
        #[arg(long, default_value = "60s")]
        max_time: humantime::Duration,
        #[command(flatten)]
        scratch: Scratch,
    },
    /// Transport security cost: raw UDP (plaintext) vs QUIC, throughput
    /// and latency at a fixed rate, in the same run.
    Transports {
        /// Sender/receiver pairs.
        #[arg(long, default_value_t = 16)]
        pairs: usize,
        /// Messages in flight per sender (throughput runs).
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Messages per throughput run.
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
        /// Payload bytes (at least 16).
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Messages per second in all during the latency runs.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// Length of each latency run.
        #[arg(long, default_value = "5s")]
        duration: humantime::Duration,
        /// Rounds; each runs every transport once, in alternating order.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Time limit of each throughput run.
        #[arg(long, default_value = "30s")]
        max_time: humantime::Duration,
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
    /// The sessions benchmark's baseline server (internal).
    #[command(hide = true)]
    SessionSink {
        /// Token secret file (hex).
        #[arg(long)]
        secret_file: PathBuf,
    },
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn d(h: humantime::Duration) -> Duration {
    h.into()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Send {
            conn,
            to,
            conv,
            msg_type,
            hex,
            timeout,
            wait_delivered,
            text,
        } => {
            let payload = if hex {
                ::hex::decode(text.trim())
                    .context("the message is not hex (drop --hex to send text)")?
            } else {
                text.into_bytes()
            };
            let opts = cli::SendOpts {
                server: cli::parse_server(&conn.server)?,
                token: cli::parse_token(&conn.token)?,
                seal_key: conn.seal_key()?,
                to,
                conv,
                msg_type,
                payload: payload.into(),
                timeout: d(timeout),
                wait_delivered: d(wait_delivered),
                state_dir: conn.state_dir,
            };
            let outcome = runtime()?.block_on(cli::send(opts))?;
            println!("{outcome}");
            Ok(())
        }
        Command::Recv {
            conn,
            count,
            all,
            json,
            timeout,
            connect_timeout,
        } => {
            let opts = cli::RecvOpts {
                server: cli::parse_server(&conn.server)?,
                token: cli::parse_token(&conn.token)?,
                seal_key: conn.seal_key()?,
                count,
                all,
                json,
                timeout: Some(d(timeout)),
                connect_timeout: d(connect_timeout),
                state_dir: conn.state_dir,
            };
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr();
            runtime()?.block_on(cli::recv(opts, &mut out, &mut err))?;
            Ok(())
        }
        Command::Pull {
            conn,
            all,
            print,
            json,
            timeout,
        } => {
            let opts = cli::PullOpts {
                server: cli::parse_server(&conn.server)?,
                token: cli::parse_token(&conn.token)?,
                seal_key: conn.seal_key()?,
                all,
                print,
                json,
                timeout: d(timeout),
                state_dir: conn.state_dir,
            };
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr();
            let o = runtime()?.block_on(cli::pull(opts, &mut out, &mut err))?;
            if all {
                let line = format!(
                    "pulled {} entries ({} messages, {} receipts, {} recalls) in {} pages, {:.1} ms ({:.0} entries/s)",
                    o.entries,
                    o.messages,
                    o.receipts,
                    o.recalls,
                    o.pages,
                    o.elapsed.as_secs_f64() * 1e3,
                    o.entries as f64 / o.elapsed.as_secs_f64().max(1e-9)
                );
                // Keep stdout pure JSON with --json.
                if json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
            Ok(())
        }
        Command::Bench(b) => bench_cmd(b),
    }
}

fn bench_cmd(b: BenchCmd) -> anyhow::Result<()> {
    match b {
        BenchCmd::Relay {
            pairs,
            window,
            messages,
            payload,
            max_time,
            baseline_window,
            server,
            data_dir,
            scratch,
        } => {
            let server = match (server, data_dir) {
                (Some(s), Some(dd)) => Some((cli::parse_server(&s)?, dd)),
                _ => None,
            };
            bench::relay::run(&bench::relay::RelayOpts {
                pairs,
                window,
                messages,
                payload: payload.max(16),
                max_time: d(max_time),
                baseline_window,
                server,
                dir: scratch.dir,
                keep: scratch.keep,
            })?;
        }
        BenchCmd::Store {
            senders,
            window,
            messages,
            payload,
            max_time,
            baseline_batch,
            scratch,
        } => bench::store::run(&bench::store::StoreOpts {
            senders,
            window,
            messages,
            payload: payload.max(16),
            max_time: d(max_time),
            baseline_batch,
            dir: scratch.dir,
            keep: scratch.keep,
        })?,
        BenchCmd::Sessions {
            sessions,
            sockets,
            window,
            devices_per_user,
            max_time,
            ternd,
            scratch,
        } => bench::sessions::run(&bench::sessions::SessionsOpts {
            sessions,
            sockets,
            window,
            devices_per_user,
            max_time: d(max_time),
            ternd,
            dir: scratch.dir,
            keep: scratch.keep,
        })?,
        BenchCmd::Backlog {
            messages,
            convs,
            senders,
            payload,
            page,
            max_time,
            scratch,
        } => bench::backlog::run(&bench::backlog::BacklogOpts {
            messages,
            convs,
            senders,
            payload: payload.max(16),
            page,
            max_time: d(max_time),
            dir: scratch.dir,
            keep: scratch.keep,
        })?,
        BenchCmd::Transports {
            pairs,
            window,
            messages,
            payload,
            rate,
            duration,
            rounds,
            max_time,
            scratch,
        } => bench::transports::run(&bench::transports::TransportsOpts {
            pairs,
            window,
            messages,
            payload: payload.max(16),
            rate,
            duration: d(duration),
            rounds,
            max_time: d(max_time),
            dir: scratch.dir,
            keep: scratch.keep,
        })?,
        BenchCmd::Flood {
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
        BenchCmd::Amplification { copies, scratch } => {
            let report = bench::amplification::run(&bench::amplification::AmplificationOpts {
                copies,
                dir: scratch.dir,
                keep: scratch.keep,
            })?;
            if report.max_factor() > 1.0 {
                anyhow::bail!("amplification factor {:.3} > 1.0", report.max_factor());
            }
        }
        BenchCmd::SessionSink { secret_file } => bench::sessions::session_sink(&secret_file)?,
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
