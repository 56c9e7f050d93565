//! `tern-peerbench`: Tern against a real peer, Mosquitto (MQTT QoS 1,
//! persistent sessions), in the same run and on the same network: online
//! throughput, durable offline throughput and drain, delivery latency under
//! kernel-level random loss (network namespaces + iptables, see
//! `scripts/netns-lab.sh`), and bytes on the wire per delivered message.
//! Every figure is printed next to Mosquitto's as a ratio; raw results go
//! to JSON/CSV and `render` draws SVG charts from them.
//!
//! Normally run by `scripts/bench-peers.sh`, inside the client namespace;
//! the servers are started in the server namespace with `ip netns exec`.
//!
//! `connect` measures time to connect on a lossy link instead: the real
//! `ternd` against a fixed login retry and TCP + TLS 1.3 (issue 14, item 8).

mod args;
mod arrivals;
mod charts;
mod check;
mod connect;
mod connect_args;
mod connect_stats;
mod connect_tern;
mod connect_tls;
mod delay;
mod delayers;
mod files;
mod lab;
mod mqtt_client;
mod mqtt_load;
mod raw_paced;
mod results;
mod run;
mod servers;
mod summary;
mod tern_load;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use args::RunArgs;
use connect_args::ConnectArgs;

#[derive(Parser)]
#[command(
    name = "tern-peerbench",
    about = "Tern vs Mosquitto under kernel-level loss"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every workload against both peers and save the results.
    Run(Box<RunArgs>),
    /// Hold every packet of an NFQUEUE for a fixed time (run one in each
    /// namespace; see docs/lab-netns.md).
    Delay {
        /// NFQUEUE number.
        #[arg(long, default_value_t = 7)]
        queue: u16,
        /// One-way delay, ms.
        #[arg(long, default_value_t = 50)]
        ms: u64,
        /// Stop after this long (default: run until killed).
        #[arg(long)]
        duration: Option<humantime::Duration>,
    },
    /// Time to connect under loss: the real ternd against a fixed login
    /// retry and TCP + TLS 1.3, from new sockets, one login at a time.
    Connect(Box<ConnectArgs>),
    /// Accept TLS 1.3 connections and complete their handshakes (the
    /// baseline of `connect`, which starts it in the server namespace).
    #[command(hide = true)]
    TlsListen {
        /// Address to listen on (port 0: any; it prints `listening on ADDR`).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Certificate, DER.
        #[arg(long)]
        cert: PathBuf,
        /// Private key, PKCS#8 DER.
        #[arg(long)]
        key: PathBuf,
        /// Exit after this long.
        #[arg(long, default_value = "2h")]
        max_time: humantime::Duration,
    },
    /// Draw the charts from saved results.
    Render {
        /// Folder with results.json and the latency CSVs.
        #[arg(long, default_value = "docs/charts/data")]
        data: PathBuf,
        /// Folder for the SVG files.
        #[arg(long, default_value = "docs/charts")]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(a) => run::run(*a),
        Cmd::Connect(a) => connect::connect(*a),
        Cmd::TlsListen {
            listen,
            cert,
            key,
            max_time,
        } => connect_tls::serve(listen, &cert, &key, max_time.into()),
        Cmd::Delay {
            queue,
            ms,
            duration,
        } => delay::run(queue, Duration::from_millis(ms), duration.map(Into::into)),
        Cmd::Render { data, out } => {
            let (res, samples) = files::load(&data)?;
            let files = charts::render(&res, &samples, &out)?;
            for f in files {
                println!("wrote {}", out.join(f).display());
            }
            Ok(())
        }
    }
}
