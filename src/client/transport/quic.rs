//! QUIC: one Tern packet per DATAGRAM frame of one connection
//! (`proto-spec/quic.md`), reconnected with backoff when lost.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::trust::client_config;
use super::{unspecified_near, Recv};
use crate::client::{ClientError, ClientOptions};
use crate::transport::{quic, udp};

/// First wait before reconnecting a lost QUIC connection; doubles per
/// failure up to [`RECONNECT_MAX`], and resets when a datagram arrives.
const RECONNECT_INITIAL: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(8);
/// The client's QUIC idle timeout; the connection uses the smaller of this
/// and the server's (its Tern idle timeout, 45 s by default). Tern's own
/// heartbeats keep a healthy connection busy.
const CLIENT_IDLE: Duration = Duration::from_secs(60);
/// A reconnection handshake that has not finished by then is abandoned and
/// retried (a server that is down answers nothing, and QUIC would otherwise
/// wait for the whole idle timeout).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

type Connecting =
    Pin<Box<dyn Future<Output = Result<quinn::Connection, quinn::ConnectionError>> + Send>>;

pub(in crate::client) struct QuicLink {
    endpoint: quinn::Endpoint,
    server: SocketAddr,
    name: String,
    conn: Option<quinn::Connection>,
    connecting: Option<Connecting>,
    retry_at: Option<tokio::time::Instant>,
    backoff: Duration,
}

impl QuicLink {
    pub(super) async fn open(opts: &ClientOptions) -> Result<QuicLink, ClientError> {
        let trust = opts.quic.trust.clone().ok_or_else(|| {
            ClientError::Quic(
                "a QUIC server needs ServerTrust: a pinned certificate fingerprint or a CA file"
                    .into(),
            )
        })?;
        let name = opts
            .quic
            .server_name
            .clone()
            .unwrap_or_else(|| opts.server.ip().to_string());
        let socket = udp::bind_with_buffers(unspecified_near(opts.server))?;
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        endpoint.set_default_client_config(client_config(&trust, CLIENT_IDLE)?);
        let mut link = QuicLink {
            endpoint,
            server: opts.server,
            name,
            conn: None,
            connecting: None,
            retry_at: None,
            backoff: RECONNECT_INITIAL,
        };
        // The first handshake happens here, so that the first LOGIN goes out
        // at once and a certificate that does not verify fails `connect`.
        match link.start(opts.connect_timeout)?.await {
            Ok(c) => link.conn = Some(c),
            Err(quinn::ConnectionError::TimedOut) => {
                return Err(ClientError::ConnectTimeout(opts.server))
            }
            Err(e) => return Err(ClientError::Quic(e.to_string())),
        }
        Ok(link)
    }

    /// Starts a handshake that gives up (as `TimedOut`) after `limit`.
    fn start(&mut self, limit: Duration) -> Result<Connecting, ClientError> {
        let connecting = self
            .endpoint
            .connect(self.server, &self.name)
            .map_err(|e| ClientError::Quic(e.to_string()))?;
        Ok(Box::pin(async move {
            tokio::time::timeout(limit, connecting)
                .await
                .unwrap_or(Err(quinn::ConnectionError::TimedOut))
        }))
    }

    fn lost(&mut self) {
        self.conn = None;
        self.retry_at = Some(tokio::time::Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(RECONNECT_MAX);
    }

    pub(super) async fn recv(&mut self) -> Recv {
        loop {
            if let Some(c) = &self.conn {
                match c.read_datagram().await {
                    Ok(data) => {
                        self.backoff = RECONNECT_INITIAL;
                        return Recv::Datagram(data);
                    }
                    Err(e) => {
                        tracing::debug!(reason = %e, "quic connection lost; reconnecting");
                        self.lost();
                    }
                }
                continue;
            }
            if let Some(f) = &mut self.connecting {
                let r = f.await;
                self.connecting = None;
                match r {
                    Ok(c) => {
                        tracing::debug!("quic connection re-established");
                        self.conn = Some(c);
                    }
                    Err(e) => {
                        self.lost();
                        if !matches!(e, quinn::ConnectionError::TimedOut) {
                            return Recv::Failed(e.to_string());
                        }
                    }
                }
                continue;
            }
            if let Some(t) = self.retry_at {
                tokio::time::sleep_until(t).await;
            }
            match self.start(HANDSHAKE_TIMEOUT) {
                Ok(f) => self.connecting = Some(f),
                Err(e) => {
                    self.lost();
                    return Recv::Failed(e.to_string());
                }
            }
        }
    }

    pub(super) fn send(&mut self, data: Bytes) {
        // Without a connection the packet is dropped; Tern retransmits.
        if let Some(c) = &self.conn {
            if let Err(e) = c.send_datagram(data) {
                tracing::debug!(error = %e, "quic datagram not sent");
            }
        }
    }

    pub(super) fn rebind(&mut self) -> std::io::Result<SocketAddr> {
        let socket = udp::bind_with_buffers(unspecified_near(self.server))?;
        self.endpoint.rebind(socket)?;
        self.endpoint.local_addr()
    }
}

impl QuicLink {
    /// Lets the last packets (a LOGOUT) leave, then closes the connection.
    pub(super) async fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            quic::flush_datagrams(std::slice::from_ref(&c), Duration::from_millis(200)).await;
            c.close(0u32.into(), b"client closed");
        }
    }
}

impl Drop for QuicLink {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"client closed");
    }
}
