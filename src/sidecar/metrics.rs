//! `GET /metrics` of the sidecar: counters kept with atomics, gauges read
//! from the outbox index and the event buffer when scraped.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::Shared;
use crate::client::Settled;
use crate::http::prom::{self, Exposition};

/// Counters since start.
#[derive(Default)]
pub struct Counters {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    stored: AtomicU64,
    rejected: AtomicU64,
    streamed: AtomicU64,
    acks: AtomicU64,
}

impl Counters {
    /// An operation entered the outbox.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    /// A request repeated an idempotency key.
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Relaxed);
    }

    /// The server settled an operation.
    pub fn settled(&self, s: &Settled) {
        match s {
            Settled::Stored { .. } => &self.stored,
            Settled::Rejected { .. } => &self.rejected,
        }
        .fetch_add(1, Relaxed);
    }

    /// An event went out on a stream.
    pub fn streamed(&self) {
        self.streamed.fetch_add(1, Relaxed);
    }

    /// The app acknowledged up to a new position.
    pub fn acked(&self, _up_to: u64) {
        self.acks.fetch_add(1, Relaxed);
    }
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `GET /metrics`.
pub async fn render(State(s): State<Arc<Shared>>) -> Response {
    let c = &s.counters;
    let p = s.events.positions();
    let (pending, kept) = {
        let r = s.records();
        (r.pending(), r.len())
    };
    let link = s.link().clone();
    let text = Exposition::default()
        .counter(
            "tern_sidecar_accepted_total",
            "Operations accepted into the durable outbox.",
            c.accepted.load(Relaxed),
        )
        .counter(
            "tern_sidecar_idempotent_repeats_total",
            "Requests that repeated an idempotency key (nothing sent again).",
            c.duplicates.load(Relaxed),
        )
        .counter(
            "tern_sidecar_stored_total",
            "Operations the server stored durably.",
            c.stored.load(Relaxed),
        )
        .counter(
            "tern_sidecar_rejected_total",
            "Operations the server refused.",
            c.rejected.load(Relaxed),
        )
        .counter(
            "tern_sidecar_events_received_total",
            "Inbox entries received from the server.",
            p.received,
        )
        .counter(
            "tern_sidecar_events_streamed_total",
            "Events sent on SSE or WebSocket streams (repeats included).",
            c.streamed.load(Relaxed),
        )
        .counter(
            "tern_sidecar_acks_total",
            "Acknowledgements that moved the position.",
            c.acks.load(Relaxed),
        )
        .counter(
            "tern_sidecar_logins_total",
            "Logins to the server.",
            link.logins,
        )
        .counter(
            "tern_sidecar_inbox_resets_total",
            "Inbox resets seen (positions started again).",
            p.resets,
        )
        .gauge(
            "tern_sidecar_outbox_depth",
            "Operations waiting for the server.",
            pending as f64,
        )
        .gauge(
            "tern_sidecar_records_kept",
            "Operations remembered (idempotency window).",
            kept as f64,
        )
        .gauge(
            "tern_sidecar_events_buffered",
            "Entries received and not acknowledged by the app.",
            p.buffered as f64,
        )
        .gauge(
            "tern_sidecar_events_acked",
            "Position acknowledged by the app.",
            p.acked as f64,
        )
        .gauge(
            "tern_sidecar_connected",
            "1 while logged in to the server.",
            if link.connected { 1.0 } else { 0.0 },
        )
        .finish();
    prom::response(text)
}
