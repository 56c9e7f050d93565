//! `ternd`: the Tern daemon. Thin: parses arguments and calls the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tern::config::Config;

#[derive(Parser)]
#[command(name = "ternd", version, about = "Tern reliable-messaging daemon")]
struct Cli {
    #[command(flatten)]
    log: tern::cli::Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve clients over UDP (and QUIC with --quic) until SIGINT or SIGTERM.
    Serve {
        /// TOML config file (see `ternd generate-config`).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// UDP address to listen on (port 0 picks one); overrides the config.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data folder (RocksDB store, token secret); overrides the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Prometheus endpoint address; overrides the config.
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
        /// Also serve QUIC on this UDP address (port 0 picks one), e.g.
        /// 127.0.0.1:7401; overrides `[quic] listen`.
        #[arg(long, value_name = "ADDR")]
        quic: Option<std::net::SocketAddr>,
    },
    /// Issue a login token signed with the data folder's secret.
    Token {
        /// TOML config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Data folder holding the secret; overrides the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// User id.
        #[arg(long)]
        user: u64,
        /// Device id.
        #[arg(long, default_value_t = 1)]
        device: u32,
        /// Validity, e.g. 30d or 12h.
        #[arg(long, default_value = "30d")]
        ttl: humantime::Duration,
    },
    /// Print the public key clients pin to seal raw-UDP sessions (the key
    /// file is created on first use).
    SealKey {
        /// TOML config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Data folder holding the key; overrides the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the default configuration as TOML.
    GenerateConfig,
}

fn load(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut cfg = Config::load(config.as_deref())?;
    if let Some(d) = data_dir {
        cfg.server.data_dir = d;
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining commits and notifying clients");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init_logging(tracing::Level::INFO);
    match cli.command {
        Command::GenerateConfig => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Command::Token {
            config,
            data_dir,
            user,
            device,
            ttl,
        } => {
            let cfg = load(config, data_dir)?;
            let token = tern::server::issue_token(&cfg, user, device, ttl.as_secs())?;
            println!("{token}");
            Ok(())
        }
        Command::SealKey { config, data_dir } => {
            let cfg = load(config, data_dir)?;
            match tern::server::load_seal_key(&cfg)? {
                Some(k) => println!("{}", k.public()),
                None => anyhow::bail!("[seal] policy is off: there is no seal key"),
            }
            Ok(())
        }
        Command::Serve {
            config,
            listen,
            data_dir,
            metrics,
            quic,
        } => {
            let mut cfg = load(config, data_dir)?;
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if metrics.is_some() {
                cfg.metrics.listen = metrics;
            }
            if quic.is_some() {
                cfg.quic.listen = quic;
            }
            cfg.validate()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(async move {
                let server = tern::server::Server::bind(cfg).await?;
                // Printed on stdout too, so scripts and tests can read the port.
                if let Some(k) = server.seal_key() {
                    // Clients pin this to seal their raw-UDP sessions. Printed
                    // before the address line, which scripts wait for.
                    println!("seal key {k}");
                }
                if let Some(addr) = server.api_addr() {
                    // Before the UDP line, which launchers wait for last.
                    println!("listening on api http://{addr}");
                }
                println!("listening on udp://{}", server.local_addr());
                if let (Some(addr), Some(fp)) = (server.quic_addr(), server.quic_fingerprint()) {
                    // Clients pin this (or trust the certificate file).
                    println!("listening on quic://{addr}");
                    println!("quic certificate sha256 {fp}");
                }
                tracing::info!(
                    addr = %server.local_addr(),
                    quic = ?server.quic_addr(),
                    metrics = ?server.metrics_addr(),
                    "ternd listening"
                );
                server.run(shutdown_signal()).await
            })?;
            Ok(())
        }
    }
}
