//! The faults a chaos run injects during traffic, besides the lossy
//! network: the daemon SIGKILLed and restarted on the same data folder and
//! port, and every client moved to a new upstream port by the proxy.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::shared::{Phase, Shared};
use crate::proxy::ProxyControl;
use crate::ternd::Ternd;

/// Runs a blocking operation on the daemon off the async threads.
async fn with_daemon<T: Send + 'static>(
    daemon: Ternd,
    f: impl FnOnce(&mut Ternd) -> T + Send + 'static,
) -> (Ternd, T) {
    tokio::task::spawn_blocking(move || {
        let mut daemon = daemon;
        let r = f(&mut daemon);
        (daemon, r)
    })
    .await
    .expect("daemon task")
}

/// Starts the daemon again (same folder and port) if it is down.
pub(super) async fn restart_if_down(daemon: Ternd) -> Result<Ternd, String> {
    if daemon.is_running() {
        return Ok(daemon);
    }
    let (daemon, r) = with_daemon(daemon, |d| d.restart(Duration::from_secs(30))).await;
    r.map(|()| daemon).map_err(|e| e.to_string())
}

/// `params.kills` SIGKILLs spread over the traffic phase (each down for
/// 0.2–1.5 s, then restarted), stopping early when traffic ends. Gives the
/// daemon back with the number of kills done.
pub(super) fn spawn_killer(
    shared: Arc<Shared>,
    daemon: Ternd,
    traffic_start: Instant,
    mut phase: watch::Receiver<Phase>,
) -> JoinHandle<(Ternd, u32)> {
    let params = shared.params.clone();
    let mut rng = SmallRng::seed_from_u64(params.seed.wrapping_add(17));
    let mut daemon = daemon;
    tokio::spawn(async move {
        let mut done = 0u32;
        for i in 1..=params.kills {
            let frac = f64::from(i) / f64::from(params.kills + 1) + rng.gen_range(-0.05..0.05);
            let at = traffic_start + params.duration.mul_f64(frac.clamp(0.02, 0.98));
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = phase.wait_for(|p| *p != Phase::Traffic) => break,
            }
            let pid = daemon.pid();
            let acked = shared.counters.acked.load(Ordering::Relaxed);
            let r;
            (daemon, r) = with_daemon(daemon, |d| d.kill().map_err(|e| e.to_string())).await;
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot kill ternd");
                break;
            }
            done += 1;
            shared.event(
                "kill",
                serde_json::json!({"n": done, "pid": pid, "acked_so_far": acked}),
            );
            tracing::info!(n = done, ?pid, acked, "ternd SIGKILLed");
            let down = Duration::from_millis(rng.gen_range(200..1500));
            tokio::time::sleep(down).await;
            let r;
            (daemon, r) = with_daemon(daemon, |d| {
                d.restart(Duration::from_secs(30))
                    .map_err(|e| e.to_string())
            })
            .await;
            match r {
                Ok(()) => {
                    shared.event("restart", serde_json::json!({"n": done, "pid": daemon.pid(), "down_ms": down.as_millis() as u64}));
                    tracing::info!(n = done, pid = ?daemon.pid(), "ternd restarted");
                }
                Err(e) => {
                    shared.event("restart_failed", serde_json::json!({"error": e}));
                    tracing::error!(error = %e, "ternd did not restart");
                    break;
                }
            }
        }
        (daemon, done)
    })
}

/// Every `every`, until traffic ends, the proxy moves every client to a new
/// upstream port. Gives back the number of rebinds.
pub(super) fn spawn_rebinder(
    shared: Arc<Shared>,
    control: ProxyControl,
    every: Option<Duration>,
    mut phase: watch::Receiver<Phase>,
) -> JoinHandle<u32> {
    tokio::spawn(async move {
        let mut n = 0u32;
        let Some(every) = every else { return n };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = phase.wait_for(|p| *p != Phase::Traffic) => break,
            }
            if let Ok(moved) = control.rebind().await {
                n += 1;
                shared.event("rebind", serde_json::json!({"n": n, "moved": moved}));
            }
        }
        n
    })
}
