//! `ternd`: the Tern daemon. Thin: parses arguments and calls the library.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tern::config::Config;
use tern::server::{banner, Server};

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
    /// Serve clients over raw UDP and QUIC until SIGINT or SIGTERM; prints
    /// the addresses, the keys clients pin, and `tern` commands that work.
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
        /// Where QUIC listens: `next` (the UDP address with the next port,
        /// the default), `off`, or an address (port 0 picks one); overrides
        /// `[quic] listen`.
        #[arg(long, value_name = "ADDR|next|off")]
        quic: Option<tern::config::QuicListen>,
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
    /// Print the SHA-256 fingerprint of the QUIC certificate, which QUIC
    /// clients pin (`tern --quic-fingerprint`); a generated certificate is
    /// created on first use.
    QuicFingerprint {
        /// TOML config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Data folder holding the generated certificate; overrides the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the default configuration as TOML.
    GenerateConfig,
}

/// What `ternd serve` tells its user: the daemon as it runs, and how to
/// run `tern` and `ternd token` against it (next to this executable).
fn started(server: &Server, cfg: &Config, config: Option<&Path>) -> banner::Started {
    let exe = std::env::current_exe().ok();
    let beside = |name: &str| {
        exe.as_deref()
            .and_then(Path::parent)
            .map(|d| d.join(name))
            .filter(|p| p.is_file())
            .map_or_else(|| name.to_string(), |p| p.display().to_string())
    };
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut token_command = format!(
        "{} token --data-dir {}",
        banner::sh_word(&beside("ternd")),
        banner::sh_word(&absolute(&cfg.server.data_dir).display().to_string())
    );
    if let Some(c) = config {
        token_command += &format!(
            " --config {}",
            banner::sh_word(&absolute(c).display().to_string())
        );
    }
    banner::Started {
        udp: server.local_addr(),
        quic: server.quic_addr().zip(server.quic_fingerprint()),
        seal_key: server.seal_key(),
        api: server.api_addr(),
        token_command,
        tern: banner::sh_word(&beside("tern")),
    }
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
                None => anyhow::bail!(
                    "[seal] policy is \"off\": raw UDP sessions are not sealed, so there is no \
                     seal key; clients connect without --seal-key (set policy = \"optional\" or \
                     \"required\" to seal)"
                ),
            }
            Ok(())
        }
        Command::QuicFingerprint { config, data_dir } => {
            let cfg = load(config, data_dir)?;
            println!("{}", tern::server::quic_fingerprint(&cfg)?);
            Ok(())
        }
        Command::Serve {
            config,
            listen,
            data_dir,
            metrics,
            quic,
        } => {
            let mut cfg = load(config.clone(), data_dir)?;
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if metrics.is_some() {
                cfg.metrics.listen = metrics;
            }
            if let Some(q) = quic {
                cfg.quic.listen = q;
            }
            cfg.validate()?;
            // One thread runs the loop and polls epoll itself: with a
            // multi-thread runtime a worker polled epoll and woke the loop
            // (in `block_on` on this thread) by futex for every datagram,
            // and as a task on a worker it migrated between workers. The
            // current-thread runtime measured fastest both at a chat rate
            // and in bulk (docs/benchmarks.md, "CPU per message at a chat
            // rate"). RocksDB commits have their own thread.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(async move {
                let server = tern::server::Server::bind(cfg.clone()).await?;
                // On stdout, so scripts and tests can read the addresses
                // and keys (see tern::server::banner).
                for line in banner::lines(&started(&server, &cfg, config.as_deref())) {
                    println!("{line}");
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
