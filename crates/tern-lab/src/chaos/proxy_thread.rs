//! The impairment proxy of a chaos run, on its own thread and runtime, so
//! that its timers stay punctual however busy the clients keep the main
//! runtime (their state stores fsync).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;

use super::shared::io;
use super::Params;
use crate::proxy::{Proxy, ProxyConfig, ProxyControl, ProxyStats};
use crate::Impairment;

/// A proxy running on its own thread.
pub(super) struct ProxyThread {
    /// Where clients send.
    pub(super) addr: SocketAddr,
    /// Rebinds clients while it runs.
    pub(super) control: ProxyControl,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Option<ProxyStats>>,
}

impl ProxyThread {
    /// Starts the proxy in front of `upstream` with the run's impairment and
    /// seed (its per-datagram log in `DIR/proxy.jsonl` if asked for).
    pub(super) async fn start(
        params: &Params,
        dir: &Path,
        upstream: SocketAddr,
    ) -> Result<ProxyThread, String> {
        let mut pcfg = ProxyConfig::new("127.0.0.1:0".parse().expect("literal"), upstream);
        pcfg.seed = params.seed;
        pcfg.up = Impairment::parse(&params.up).map_err(|e| format!("up: {e}"))?;
        pcfg.down = Impairment::parse(&params.down).map_err(|e| format!("down: {e}"))?;
        pcfg.stats_every = None;
        pcfg.max_clients = 16 * 1024;
        pcfg.client_idle_timeout = Duration::from_secs(60);
        if params.proxy_log {
            pcfg.log_file = Some(dir.join("proxy.jsonl"));
        }
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("chaos-proxy".into())
            .spawn(move || -> Option<ProxyStats> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async move {
                    let proxy = match Proxy::bind(pcfg).await {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e.to_string()));
                            return None;
                        }
                    };
                    let _ = bound_tx.send(Ok((proxy.local_addr(), proxy.control())));
                    proxy
                        .run(async {
                            let _ = stop_rx.await;
                        })
                        .await
                        .ok()
                })
            })
            .map_err(io("proxy thread"))?;
        let (addr, control) = bound_rx
            .await
            .map_err(|_| "the proxy thread stopped".to_string())??;
        Ok(ProxyThread {
            addr,
            control,
            stop,
            thread,
        })
    }

    /// Stops the proxy; its final counters (default ones if it failed).
    pub(super) async fn stop(self) -> ProxyStats {
        let _ = self.stop.send(());
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().ok().flatten())
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}
