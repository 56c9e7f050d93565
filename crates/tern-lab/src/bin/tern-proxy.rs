//! `tern-proxy`: a user-space UDP impairment proxy for weak-network testing.
//!
//! ```text
//! tern-proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:7000 --seed 42 \
//!     --up "loss=0.2,dup=0.05" --down "loss=0.2" --rebind-every 5s \
//!     --duration 60s --log-file x.jsonl
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound, and a summary of what it
//! did at exit. Stops after `--duration`, on Ctrl-C or on SIGTERM. SIGUSR1
//! moves every client to a new upstream port. See `docs/lab-proxy.md`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tern_lab::args::{duration_arg, period_arg, Period};
use tern_lab::{Impairment, Proxy, ProxyConfig};

fn impairment_arg(s: &str) -> Result<Impairment, String> {
    Impairment::parse(s).map_err(|e| e.to_string())
}

/// UDP impairment proxy: forwards datagrams between clients and one upstream
/// server, dropping, delaying, duplicating, reordering and corrupting them
/// according to a seeded model, independently in each direction.
#[derive(Debug, Parser)]
#[command(name = "tern-proxy", version, after_help = SPEC_HELP)]
struct Args {
    /// Address clients send to (port 0 picks a free one; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0", env = "TERN_PROXY_LISTEN")]
    listen: SocketAddr,

    /// The server to forward to.
    #[arg(long, env = "TERN_PROXY_UPSTREAM")]
    upstream: SocketAddr,

    /// Seed of the impairment models (default: random, logged at start and in the summary).
    #[arg(long, env = "TERN_PROXY_SEED")]
    seed: Option<u64>,

    /// Impairment of both directions, unless --up or --down is given.
    #[arg(long, value_name = "SPEC", value_parser = impairment_arg)]
    both: Option<Impairment>,

    /// Impairment of the client → server direction.
    #[arg(long, value_name = "SPEC", value_parser = impairment_arg)]
    up: Option<Impairment>,

    /// Impairment of the server → client direction.
    #[arg(long, value_name = "SPEC", value_parser = impairment_arg)]
    down: Option<Impairment>,

    /// Move every client to a new upstream source port this often (e.g. 5s).
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    rebind_every: Option<Duration>,

    /// Stop by itself after this long (e.g. 60s).
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    duration: Option<Duration>,

    /// Write a JSON-lines event log (one line per datagram event) to this file.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,

    /// Most clients served at once.
    #[arg(long, default_value_t = 1024)]
    max_clients: usize,

    /// Drop a client's upstream socket after this much silence.
    #[arg(long, value_name = "DUR", default_value = "120s", value_parser = duration_arg)]
    idle_timeout: Duration,

    /// Log a counter summary this often (`off` to disable).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = period_arg)]
    stats_every: Period,

    /// Print the exit summary as one JSON object instead of text.
    #[arg(long)]
    json_summary: bool,

    /// Log every datagram (debug level) on stderr. RUST_LOG overrides.
    #[arg(short, long)]
    verbose: bool,
}

const SPEC_HELP: &str = "\
SPEC is a comma-separated list of key=value (empty or `none` = perfect network):
  loss=P                 independent random loss (P in 0..1 or N%)
  burst=PGB:PBG[:LB[:LG]] Gilbert-Elliott bursty loss (good->bad, bad->good,
                         loss when bad (default 1), loss when good (default 0))
  delay=DUR              base one-way delay (us, ms, s, m, h)
  jitter=DUR[:normal]    jitter, uniform +-DUR (default) or normal sigma=DUR
  reorder=P[:DUR]        hold a datagram DUR longer (default 20ms) so later ones overtake it
  dup=P                  deliver a second copy
  corrupt=P              flip 1-3 bits or truncate
  rate=RATE              bottleneck rate: 1mbps, 500kbps (bits/s) or 64KB/s (bytes/s)
  queue=SIZE             bottleneck queue bound (default 64KiB)
  blackout=DUR-DUR       drop everything in [start, end) after proxy start; repeatable
Example: --up \"loss=0.1,burst=0.05:0.3,delay=50ms,jitter=10ms,rate=1mbps,blackout=10s-12s\"";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // `tern` is a prefix of every Tern crate's targets (tern_lab::proxy too).
    tern::cli::init_logging(if args.verbose {
        "info,tern=debug"
    } else {
        "info"
    });

    let seed = args.seed.unwrap_or_else(rand::random);
    let both = args.both.unwrap_or_default();
    let mut cfg = ProxyConfig::new(args.listen, args.upstream);
    cfg.seed = seed;
    cfg.up = args.up.unwrap_or_else(|| both.clone());
    cfg.down = args.down.unwrap_or(both);
    cfg.rebind_every = args.rebind_every;
    cfg.max_clients = args.max_clients;
    cfg.client_idle_timeout = args.idle_timeout;
    cfg.stats_every = args.stats_every.0;
    cfg.log_file = args.log_file;
    let (up, down) = (cfg.up.to_string(), cfg.down.to_string());

    let proxy = Proxy::bind(cfg).await.context("starting the proxy")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", proxy.local_addr())?;
        out.flush()?;
    }

    #[cfg(unix)]
    {
        let control = proxy.control();
        let mut usr1 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .context("installing the SIGUSR1 handler")?;
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                match control.rebind().await {
                    Ok(n) => tracing::info!(clients = n, "SIGUSR1: rebound"),
                    Err(_) => break,
                }
            }
        });
    }

    let stop = shutdown_signal(args.duration)?;
    let stats = proxy.run(stop).await.context("running the proxy")?;

    let mut out = std::io::stdout().lock();
    if args.json_summary {
        let mut j = stats.to_json();
        j["seed"] = seed.into();
        j["up_spec"] = up.into();
        j["down_spec"] = down.into();
        writeln!(out, "{j}")?;
    } else {
        writeln!(out, "seed {seed}; up: {up}; down: {down}")?;
        writeln!(out, "{stats}")?;
    }
    out.flush()?;
    Ok(())
}

/// Completes after `duration`, on Ctrl-C, or on SIGTERM.
fn shutdown_signal(
    duration: Option<Duration>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    Ok(async move {
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        let term = async move {
            term.recv().await;
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = timer => tracing::info!("duration elapsed"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
            _ = term => tracing::info!("terminated"),
        }
    })
}
