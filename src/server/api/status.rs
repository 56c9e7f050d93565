//! The status page (`GET /`), the figures it polls (`GET /v1/stats`) and
//! `GET /metrics` on the API listener. The page is one self-contained HTML
//! file (`status.html`: inline CSS and script, no build step, nothing
//! fetched from elsewhere), so it works offline; it polls once a second
//! and turns counters into rates itself.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{Html, Response};
use axum::Json;
use serde_json::json;

use super::latency::BOUNDS_US;
use super::ApiState;
use crate::http::prom::{self, Exposition};

const PAGE: &str = include_str!("status.html");

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The store's size on disk, measured at most every two seconds.
#[derive(Default)]
pub struct SizeCache(Mutex<Option<(Instant, u64)>>);

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

impl SizeCache {
    fn get(&self, dir: &Path) -> u64 {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match *c {
            Some((at, size)) if at.elapsed() < Duration::from_secs(2) => size,
            _ => {
                let size = dir_size(dir);
                *c = Some((Instant::now(), size));
                size
            }
        }
    }
}

async fn store_bytes(s: &Arc<ApiState>) -> u64 {
    let s = s.clone();
    tokio::task::spawn_blocking(move || s.store_size.get(&s.store_dir))
        .await
        .unwrap_or(0)
}

/// `GET /`.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /v1/stats`: counters (the page computes rates), gauges and the
/// commit latency histogram.
pub async fn stats(State(s): State<Arc<ApiState>>) -> Json<serde_json::Value> {
    let snap = s.metrics.snapshot();
    let b = &snap.broker;
    let c = &snap.commits;
    let lat = s.live.latency.snapshot();
    let store = store_bytes(&s).await;
    Json(json!({
        "time_ms": now_ms(),
        "uptime_s": s.started.elapsed().as_secs(),
        "sessions": snap.sessions,
        "store_bytes": store,
        "service_pending": s.live.service_pending.load(Relaxed),
        "counters": {
            "stored": b.stored,
            "fsyncs": c.fsyncs,
            "batches": c.batches,
            "ops": c.ops,
            "logins": b.logins,
            "datagrams_in": b.datagrams_in,
            "datagrams_out": b.datagrams_out,
            "retransmits": s.live.retransmits.load(Relaxed),
            "uplink_duplicates": b.uplink_duplicates,
            "rejected": b.rejected,
            "commit_failures": b.commit_failures,
            "malformed": b.malformed,
            "login_refused": b.login_refused,
            "sealed_rejected": b.sealed_rejected,
            "rate_limited": b.rate_limited,
            "unreachable": b.unreachable,
        },
        "largest_group": c.largest_group,
        "latency": {"bounds_us": BOUNDS_US, "counts": lat.counts, "sum_us": lat.sum_us},
    }))
}

/// `GET /metrics`: the daemon's counters plus the API's figures.
pub async fn metrics(State(s): State<Arc<ApiState>>) -> Response {
    let mut text = s.metrics.render();
    let lat = s.live.latency.snapshot();
    let store = store_bytes(&s).await;
    text.push_str(
        &Exposition::default()
            .counter(
                "tern_downlink_retransmits_total",
                "Downlink retransmissions (timeout and fast).",
                s.live.retransmits.load(Relaxed),
            )
            .gauge(
                "tern_store_bytes",
                "Size of the RocksDB store on disk.",
                store as f64,
            )
            .gauge(
                "tern_service_pending",
                "Server API messages waiting to be durable.",
                s.live.service_pending.load(Relaxed) as f64,
            )
            .histogram(
                "tern_commit_seconds",
                "Group commit latency: batch handed to the committer until durable.",
                &lat.cumulative(),
                lat.count(),
                lat.sum_us as f64 / 1e6,
            )
            .finish(),
    );
    prom::response(text)
}
