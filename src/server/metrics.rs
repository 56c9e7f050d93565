//! Counters shared between the broker loop and the Prometheus endpoint.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tern_core::broker::BrokerStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::store::GroupCommitStats;

/// A snapshot the loop refreshes and the endpoint renders.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Broker counters.
    pub broker: BrokerStats,
    /// Group-commit counters.
    pub commits: GroupCommitStats,
    /// Live sessions.
    pub sessions: usize,
    /// QUIC connection attempts ignored: their source address was over
    /// `[limits] quic_handshake_rate`.
    pub quic_handshakes_limited: u64,
}

/// Shared handle to the latest snapshot.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Mutex<Snapshot>>);

impl Metrics {
    /// Replaces the snapshot.
    pub fn publish(&self, s: Snapshot) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The snapshot in Prometheus text format.
    pub fn render(&self) -> String {
        let s = self.snapshot();
        let b = &s.broker;
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP tern_{name} {help}\n# TYPE tern_{name} counter\ntern_{name} {v}\n"
            ));
        };
        counter("datagrams_in_total", "Datagrams received.", b.datagrams_in);
        counter("datagrams_out_total", "Datagrams sent.", b.datagrams_out);
        counter(
            "malformed_total",
            "Datagrams that failed to decode.",
            b.malformed,
        );
        counter(
            "unknown_session_total",
            "Packets naming no live session.",
            b.unknown_session,
        );
        counter("login_refused_total", "Logins refused.", b.login_refused);
        counter("logins_total", "Sessions opened.", b.logins);
        counter(
            "sessions_replaced_total",
            "Sessions replaced by a new login.",
            b.replaced,
        );
        counter(
            "sessions_idle_closed_total",
            "Sessions dropped for silence.",
            b.idle_closed,
        );
        counter(
            "migrations_total",
            "Client address changes followed.",
            b.migrations,
        );
        counter("messages_stored_total", "Inbox entries stored.", b.stored);
        counter(
            "uplink_rejected_total",
            "Uplink operations refused.",
            b.rejected,
        );
        counter(
            "uplink_duplicates_total",
            "Uplink retransmits of processed operations.",
            b.uplink_duplicates,
        );
        counter("commits_total", "Write batches committed.", b.commits);
        counter(
            "commit_failures_total",
            "Write batches that failed.",
            b.commit_failures,
        );
        counter(
            "unreachable_total",
            "Downlinks whose retry budget ran out.",
            b.unreachable,
        );
        counter("pulled_total", "Entries sent in pull pages.", b.pulled);
        counter(
            "history_trimmed_total",
            "Trims of a conversation history past its retention.",
            b.history_trimmed,
        );
        counter(
            "rate_limited_total",
            "Datagrams dropped by a per-source or per-session rate limit.",
            b.rate_limited,
        );
        counter(
            "retries_sent_total",
            "RETRY cookies sent to unproven addresses.",
            b.retries_sent,
        );
        counter(
            "bad_cookies_total",
            "Logins with a forged or expired address cookie.",
            b.bad_cookies,
        );
        counter(
            "address_tokens_issued_total",
            "Address tokens handed to raw-UDP clients after a login.",
            b.address_tokens_issued,
        );
        counter(
            "address_tokens_accepted_total",
            "Logins let in by an address token instead of a RETRY round trip.",
            b.address_tokens_accepted,
        );
        counter(
            "group_entries_skipped_total",
            "Group records not written to offline members' sync timelines (read fan-out).",
            b.group_entries_skipped,
        );
        counter(
            "group_states_caught_up_total",
            "Members' group states brought up to date after read fan-out left them behind.",
            b.group_states_caught_up,
        );
        counter(
            "handshake_copies_total",
            "Spare copies of a handshake answered again from the kept answer, without X25519.",
            b.handshake_copies,
        );
        counter(
            "handshake_failed_total",
            "Sealed handshakes that did not decrypt or were malformed.",
            b.handshake_failed,
        );
        counter(
            "handshake_replayed_total",
            "Sealed handshakes older than the device's live session (replays).",
            b.handshake_replayed,
        );
        counter(
            "seal_required_total",
            "Clear logins refused because raw UDP must be sealed.",
            b.seal_required,
        );
        counter(
            "sealed_rejected_total",
            "Sealed packets failing authentication (tampered, truncated, forged).",
            b.sealed_rejected,
        );
        counter(
            "sealed_replayed_total",
            "Authentic sealed packets received again (replays, network copies).",
            b.sealed_replayed,
        );
        counter(
            "seal_mismatch_total",
            "Clear packets naming a sealed session, or sealed ones a clear session.",
            b.seal_mismatch,
        );
        counter(
            "replies_suppressed_total",
            "Stateless ERROR answers not sent: the global reply budget was spent.",
            b.replies_suppressed,
        );
        counter(
            "quic_handshakes_limited_total",
            "QUIC connection attempts ignored: the source address was over its handshake rate.",
            s.quic_handshakes_limited,
        );
        counter(
            "fsyncs_total",
            "Group commits (one fsync each).",
            s.commits.fsyncs,
        );
        out.push_str(&format!(
            "# HELP tern_sessions Live sessions.\n# TYPE tern_sessions gauge\ntern_sessions {}\n",
            s.sessions
        ));
        out
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            // One bounded read is enough for a GET line; anything else gets 404.
            let n = conn.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if req.starts_with("GET /metrics") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        });
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
