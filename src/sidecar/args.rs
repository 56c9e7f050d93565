//! `tern sidecar`: its command-line arguments and entry point.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Listen, Sidecar, SidecarConfig, SidecarError};
use crate::client::{ClientOptions, ServerAddr, ServerTrust};

/// Arguments of `tern sidecar`.
#[derive(Debug, Clone, Args)]
pub struct SidecarArgs {
    /// Server: udp://HOST:PORT, HOST:PORT or quic://HOST:PORT.
    #[arg(long, env = "TERN_SERVER")]
    pub server: String,
    /// Login token, hex, as printed by `ternd token` (or by the server
    /// API's `POST /v1/tokens`).
    #[arg(long, env = "TERN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The server's seal key (raw UDP; printed by `ternd seal-key`).
    #[arg(long, env = "TERN_SEAL_KEY")]
    pub seal_key: Option<String>,
    /// QUIC only: SHA-256 fingerprint of the server certificate to pin.
    #[arg(long)]
    pub quic_fingerprint: Option<String>,
    /// Folder for the durable outbox, idempotency records and checkpoint.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Unix socket of the local API (default: STATE_DIR/sidecar.sock).
    #[arg(long, conflicts_with = "listen")]
    pub socket: Option<PathBuf>,
    /// Serve the local API on this loopback TCP address instead (port 0
    /// picks one); requests need `Authorization: Bearer <token>`.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// With --listen: file holding the bearer token (created with a random
    /// one, mode 0600, if missing). Default: STATE_DIR/api.token.
    #[arg(long, requires = "listen")]
    pub api_token_file: Option<PathBuf>,
    /// How long settled operations (and their idempotency keys) are remembered.
    #[arg(long, default_value = "24h")]
    pub keep_for: humantime::Duration,
    /// At most this many settled operations are remembered.
    #[arg(long, default_value_t = 100_000)]
    pub keep_max: usize,
    /// How long to wait for the first login before serving anyway
    /// (operations queue in the outbox until the server answers).
    #[arg(long, default_value = "10s")]
    pub connect_timeout: humantime::Duration,
}

impl SidecarArgs {
    /// The configuration these arguments describe.
    pub fn config(&self) -> Result<SidecarConfig, SidecarError> {
        let bad = |arg: &str, reason: String| SidecarError::BadArgument {
            arg: arg.into(),
            reason,
        };
        let server: ServerAddr = self
            .server
            .parse()
            .map_err(|e: crate::client::AddrParseError| bad("--server", e.to_string()))?;
        let token =
            hex::decode(self.token.trim()).map_err(|e| bad("--token", format!("not hex: {e}")))?;
        let mut client = ClientOptions::with_server(server, token);
        client.seal_key = self
            .seal_key
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| bad("--seal-key", format!("{e}")))?;
        if let Some(fp) = &self.quic_fingerprint {
            client.quic.trust = Some(ServerTrust::fingerprint(fp)?);
        }
        std::fs::create_dir_all(&self.state_dir).map_err(|source| SidecarError::Listen {
            what: self.state_dir.display().to_string(),
            source,
        })?;
        client.state_dir = Some(self.state_dir.join("client"));
        client.connect_timeout = self.connect_timeout.into();
        let listen = match self.listen {
            Some(addr) => Listen::tcp(
                addr,
                &self
                    .api_token_file
                    .clone()
                    .unwrap_or_else(|| self.state_dir.join("api.token")),
            )?,
            None => Listen::Unix(
                self.socket
                    .clone()
                    .unwrap_or_else(|| self.state_dir.join("sidecar.sock")),
            ),
        };
        Ok(SidecarConfig {
            client,
            listen,
            keep_for: Duration::from(self.keep_for),
            keep_max: self.keep_max,
        })
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs `tern sidecar` until SIGINT or SIGTERM. Prints `listening on
/// unix:PATH` (or `http://ADDR`) on stdout once the API is up.
pub fn main(args: SidecarArgs) -> Result<(), SidecarError> {
    let cfg = args.config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| SidecarError::Listen {
            what: "the async runtime".into(),
            source,
        })?;
    rt.block_on(async move {
        let sidecar = Sidecar::start(cfg).await?;
        println!("listening on {}", sidecar.endpoint());
        sidecar.run(stop_signal()).await
    })
}
