//! The server API of `ternd`: HTTP for backends, off unless `[api] listen`
//! is set, authenticated by the API keys of `[api] keys`
//! (`Authorization: Bearer KEY` or `X-API-Key: KEY`).
//!
//! - `POST /v1/tokens`: login tokens for (user, device, expiry);
//! - `POST /v1/messages`: a message from the service user, through the
//!   broker's uplink path for its service device, exactly once
//!   (`outbox.rs`: the durable log and its numbering; `bridge.rs`: the
//!   requests the broker loop answers);
//! - `GET /v1/users/{id}/presence`, `POST /v1/users/{id}/kick`,
//!   `GET /v1/users/{id}/inbox`: what the broker knows of a user;
//! - `/health`, `/ready`, `/metrics`, the status page `/` (`status.rs`)
//!   and `/v1/openapi.json`, without a key.

pub mod bridge;
pub mod latency;
mod outbox;
mod routes;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use bridge::{BridgeHandle, Live};

use super::Metrics;

/// What the handlers share.
pub(crate) struct ApiState {
    pub(crate) cfg: Config,
    pub(crate) bridge: BridgeHandle,
    pub(crate) log: outbox::ServiceLog,
    pub(crate) metrics: Metrics,
    pub(crate) live: Arc<Live>,
    pub(crate) store_dir: PathBuf,
    pub(crate) started: std::time::Instant,
    pub(crate) store_size: status::SizeCache,
}

/// The bound listener, before the daemon runs.
pub struct ApiListener {
    listener: tokio::net::TcpListener,
}

impl ApiListener {
    /// Binds `[api] listen`.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<ApiListener> {
        Ok(ApiListener {
            listener: tokio::net::TcpListener::bind(addr).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Opens the service log (once the broker loop answers), then serves until
/// the daemon stops.
pub(crate) async fn serve(
    listener: ApiListener,
    cfg: Config,
    bridge: BridgeHandle,
    live: Arc<Live>,
    metrics: Metrics,
) {
    let dir = cfg.server.data_dir.join("api");
    let log = match outbox::ServiceLog::open(&dir, bridge.clone(), cfg.api.idempotency_window).await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, dir = %dir.display(), "server API not started: its service log does not open");
            return;
        }
    };
    let state = Arc::new(ApiState {
        store_dir: cfg.server.data_dir.join("db"),
        cfg,
        bridge,
        log,
        metrics,
        live,
        started: std::time::Instant::now(),
        store_size: status::SizeCache::default(),
    });
    let app = routes::router(state);
    if let Err(e) = axum::serve(listener.listener, app).await {
        tracing::error!(error = %e, "server API stopped");
    }
}
