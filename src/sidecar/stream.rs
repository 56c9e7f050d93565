//! `GET /v1/events` (Server-Sent Events) and `GET /v1/events/ws`
//! (WebSocket): the unacknowledged entries from a position on, then new
//! ones as they come.
//!
//! A stream starts after `Last-Event-ID` (or `?after=N`), never before the
//! acknowledged position; without either it starts at the first
//! unacknowledged entry, which is what an app that crashed gets. Each
//! stream reads the shared buffer at its own pace: a slow reader holds its
//! connection's socket buffer full and nothing more (backpressure), and
//! the buffer itself is bounded by the server's window.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use serde::Deserialize;
use tern_core::wire::Entry;

use super::api::{EventView, MAX_ID};
use super::{routes, Shared};
use crate::http::{ApiError, QueryArgs};

/// Entries taken from the buffer per wake-up.
const BATCH: usize = 64;

/// The query of both stream endpoints.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Resume after this position (as `Last-Event-ID`; the header wins).
    pub after: Option<u64>,
    /// Close the stream after this many events.
    pub limit: Option<u64>,
    /// Close the stream after this long without an event (ms).
    pub idle_ms: Option<u64>,
}

/// One subscriber's cursor over the buffer.
struct Cursor {
    shared: Arc<Shared>,
    at: u64,
    resets: u64,
    changes: tokio::sync::watch::Receiver<u64>,
    left: u64,
    idle: Option<Duration>,
    pending: std::collections::VecDeque<Entry>,
}

/// What a cursor yields.
enum Item {
    Entry(Entry),
    /// The inbox started again: positions restart after `from`.
    Reset {
        from: u64,
    },
}

impl Cursor {
    fn new(shared: Arc<Shared>, after: Option<u64>, q: &StreamQuery) -> Cursor {
        let changes = shared.events.subscribe();
        let (at, resets) = shared.events.start_cursor(after);
        Cursor {
            shared,
            at,
            resets,
            changes,
            left: q.limit.unwrap_or(u64::MAX),
            idle: q.idle_ms.map(Duration::from_millis),
            pending: Default::default(),
        }
    }

    /// The next item; `None` at the limit, when idle too long, or at shutdown.
    async fn next(&mut self) -> Option<Item> {
        loop {
            if self.left == 0 || *self.shared.shutdown.borrow() {
                return None;
            }
            if let Some(d) = self.pending.pop_front() {
                self.at = d.seq;
                self.left -= 1;
                self.shared.counters.streamed();
                return Some(Item::Entry(d));
            }
            self.changes.borrow_and_update();
            let (batch, resets) = self.shared.events.after(self.at, BATCH);
            if resets != self.resets {
                self.resets = resets;
                self.at = self.shared.events.acked();
                return Some(Item::Reset { from: self.at });
            }
            if batch.is_empty() {
                let changed = self.changes.changed();
                let ok = match self.idle {
                    Some(d) => matches!(tokio::time::timeout(d, changed).await, Ok(Ok(()))),
                    None => changed.await.is_ok(),
                };
                if !ok {
                    return None;
                }
                continue;
            }
            self.pending.extend(batch);
        }
    }
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let mut values = headers.get_all("last-event-id").iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::field(
            "last-event-id",
            format!("must be one integer from 0 to {MAX_ID}"),
        )
    };
    if values.next().is_some() {
        return Err(bad());
    }
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|v| *v <= MAX_ID)
        .map(Some)
        .ok_or_else(bad)
}

/// Checks the query's numbers against their documented ranges.
fn check(q: &StreamQuery) -> Result<(), ApiError> {
    for (name, v) in [("after", q.after), ("limit", q.limit)] {
        if v.is_some_and(|v| v > MAX_ID) {
            return Err(ApiError::field(name, format!("must be at most {MAX_ID}")));
        }
    }
    if q.idle_ms.is_some_and(|v| v > 86_400_000) {
        return Err(ApiError::field(
            "idle_ms",
            "must be at most 86400000 (a day)",
        ));
    }
    Ok(())
}

fn sse_event(item: Item) -> Event {
    match item {
        Item::Entry(d) => {
            let v = EventView::of(&d);
            Event::default()
                .id(d.seq.to_string())
                .event(v.kind)
                .json_data(&v)
                .unwrap_or_else(|_| Event::default().comment("unencodable entry"))
        }
        Item::Reset { from } => Event::default()
            .event("reset")
            .data(format!("{{\"after\":{from}}}")),
    }
}

/// `GET /v1/events`.
pub async fn sse(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    QueryArgs(q): QueryArgs<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check(&q)?;
    let after = last_event_id(&headers)?.or(q.after);
    let cursor = Cursor::new(s, after, &q);
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        let item = c.next().await?;
        Some((Ok(sse_event(item)), c))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /v1/events/ws`: the same events as JSON text messages; the app may
/// acknowledge on the socket with `{"ack": N}`.
pub async fn websocket(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    QueryArgs(q): QueryArgs<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("a WebSocket upgrade is required: {}", e.body_text()),
        )
    })?;
    check(&q)?;
    let after = last_event_id(&headers)?.or(q.after);
    let cursor = Cursor::new(s.clone(), after, &q);
    Ok(upgrade
        .max_message_size(4096)
        .on_upgrade(move |socket| serve_socket(s, cursor, socket))
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WsAck {
    ack: u64,
}

async fn serve_socket(s: Arc<Shared>, mut cursor: Cursor, mut socket: WebSocket) {
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let reply = match serde_json::from_str::<WsAck>(t.as_str()) {
                        Ok(a) => match routes::ack_up_to(&s, a.ack).await {
                            Ok(()) => serde_json::json!({"acked": s.events.acked()}),
                            Err(e) => serde_json::json!({"error": e.message, "field": "ack"}),
                        },
                        Err(e) => serde_json::json!({"error": e.to_string(), "field": "ack"}),
                    };
                    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            item = cursor.next() => {
                let Some(item) = item else {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                };
                let text = match item {
                    Item::Entry(d) => serde_json::to_string(&EventView::of(&d)),
                    Item::Reset { from } => Ok(format!("{{\"kind\":\"reset\",\"after\":{from}}}")),
                };
                let Ok(text) = text else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        }
    }
}
