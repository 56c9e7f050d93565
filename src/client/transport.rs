//! How a client's Tern packets reach the server: a raw UDP socket, or one
//! QUIC connection whose DATAGRAM frames each carry one Tern packet
//! (`proto-spec/quic.md`). The driver sees the same thing either way:
//! datagrams in, datagrams out, and a way to move to a new local port.

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::UdpSocket;

use super::{ClientError, ClientOptions};
use crate::transport::quic::{
    self, parse_fingerprint, ALPN as QUIC_ALPN, MAX_PACKET as QUIC_MAX_PACKET,
};

/// Which transport carries the Tern packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// One Tern packet per UDP datagram (`udp://`).
    #[default]
    Udp,
    /// One Tern packet per QUIC DATAGRAM frame, ALPN `tern/1` (`quic://`).
    Quic,
}

impl Transport {
    /// The URL scheme: `udp` or `quic`.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Quic => "quic",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// A server address with its transport: `udp://host:port`,
/// `quic://host:port`, or a bare `host:port` (UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// The transport.
    pub transport: Transport,
    /// The resolved address.
    pub addr: SocketAddr,
    /// The host as written (a name or an IP literal): the TLS server name
    /// checked against the certificate over QUIC with a CA file.
    pub host: String,
}

impl ServerAddr {
    /// A UDP server address.
    pub fn udp(addr: SocketAddr) -> Self {
        ServerAddr {
            transport: Transport::Udp,
            addr,
            host: addr.ip().to_string(),
        }
    }

    /// A QUIC server address; the TLS name is the IP address.
    pub fn quic(addr: SocketAddr) -> Self {
        ServerAddr {
            transport: Transport::Quic,
            ..ServerAddr::udp(addr)
        }
    }
}

impl From<SocketAddr> for ServerAddr {
    fn from(addr: SocketAddr) -> Self {
        ServerAddr::udp(addr)
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.transport, self.addr)
    }
}

/// Why a server address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid server address {input:?}: {reason}")]
pub struct AddrParseError {
    input: String,
    reason: String,
}

impl FromStr for ServerAddr {
    type Err = AddrParseError;

    /// Parses and resolves (a host name is looked up, blocking, and the
    /// first address is used).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| AddrParseError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (transport, rest) = match s.split_once("://") {
            Some(("udp", rest)) => (Transport::Udp, rest),
            Some(("quic", rest)) => (Transport::Quic, rest),
            Some(_) => return Err(err("the scheme must be udp:// or quic://")),
            None => (Transport::Udp, s),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| err("expected host:port"))?;
        let port: u16 = port.parse().map_err(|_| err("the port is not a number"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(err("the host is empty"));
        }
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| err(&e.to_string()))?
            .next()
            .ok_or_else(|| err("the host has no address"))?;
        Ok(ServerAddr {
            transport,
            addr,
            host: host.to_string(),
        })
    }
}

/// How a QUIC client decides that it talks to the right server. There is
/// deliberately no way to skip the check.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// The SHA-256 of the server's end-entity certificate (DER), as `ternd`
    /// prints it at start. The server must prove it holds the certificate's
    /// key; names and dates are not checked (the pin is the identity).
    Fingerprint([u8; 32]),
    /// A PEM file of trusted certificates (a CA, or the server's own
    /// certificate): ordinary WebPKI verification, including the server
    /// name (the host of the address, or [`QuicOptions::server_name`]).
    CaFile(PathBuf),
}

impl ServerTrust {
    /// A pin from its hex spelling (`ab12…`, `AB:12:…` or `sha256:ab12…`).
    pub fn fingerprint(hex: &str) -> Result<ServerTrust, ClientError> {
        parse_fingerprint(hex)
            .map(ServerTrust::Fingerprint)
            .ok_or_else(|| ClientError::Quic(format!("not a SHA-256 fingerprint: {hex:?}")))
    }
}

impl fmt::Debug for ServerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerTrust::Fingerprint(fp) => write!(f, "Fingerprint(sha256:{})", hex::encode(fp)),
            ServerTrust::CaFile(p) => f.debug_tuple("CaFile").field(p).finish(),
        }
    }
}

/// QUIC settings of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuicOptions {
    /// How the server certificate is verified; required for QUIC.
    pub trust: Option<ServerTrust>,
    /// TLS server name; `None`: the host of the server address.
    pub server_name: Option<String>,
}

/// What a transport hands the driver.
pub(super) enum Recv {
    /// One Tern packet from the server.
    Datagram(Bytes),
    /// A QUIC handshake failed for a reason other than silence (a
    /// certificate that does not verify, a refused ALPN…). The transport
    /// retries with backoff; before the first login this fails `connect`.
    Failed(String),
}

/// The transport of one client.
pub(super) enum Link {
    Udp(UdpLink),
    Quic(QuicLink),
}

impl Link {
    /// Binds (UDP), or connects (QUIC: one handshake, within `timeout`).
    pub(super) async fn open(opts: &ClientOptions) -> Result<Link, ClientError> {
        match opts.transport {
            Transport::Udp => Ok(Link::Udp(UdpLink {
                socket: bind_near(opts.server).await?,
                server: opts.server,
                buf: vec![0u8; 2048],
            })),
            Transport::Quic => Ok(Link::Quic(QuicLink::open(opts).await?)),
        }
    }

    /// The largest Tern packet this transport carries.
    pub(super) fn max_packet(&self) -> usize {
        match self {
            Link::Udp(_) => tern_core::wire::limits::MAX_DATAGRAM,
            Link::Quic(_) => QUIC_MAX_PACKET.min(tern_core::wire::limits::MAX_DATAGRAM),
        }
    }

    /// Next thing from the server. Cancel-safe: nothing is lost when the
    /// future is dropped.
    pub(super) async fn recv(&mut self) -> Recv {
        match self {
            Link::Udp(u) => u.recv().await,
            Link::Quic(q) => q.recv().await,
        }
    }

    /// Sends one Tern packet; losses are the reliability layer's business.
    pub(super) async fn send(&mut self, data: Bytes) {
        match self {
            // A send error (no route, network switch) is retried by the timers.
            Link::Udp(u) => {
                let _ = u.socket.send_to(&data, u.server).await;
            }
            Link::Quic(q) => q.send(data),
        }
    }

    /// Lets the last packets (a LOGOUT) leave, then closes the connection.
    pub(super) async fn close(&mut self) {
        if let Link::Quic(q) = self {
            if let Some(c) = q.conn.take() {
                quic::flush_datagrams(std::slice::from_ref(&c), Duration::from_millis(200)).await;
                c.close(0u32.into(), b"client closed");
            }
        }
    }

    /// Moves to a new local port. Over QUIC the connection migrates.
    pub(super) async fn rebind(&mut self) -> std::io::Result<SocketAddr> {
        match self {
            Link::Udp(u) => {
                u.socket = bind_near(u.server).await?;
                u.socket.local_addr()
            }
            Link::Quic(q) => q.rebind(),
        }
    }
}

fn unspecified_near(server: SocketAddr) -> SocketAddr {
    if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    }
}

async fn bind_near(server: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(unspecified_near(server)).await
}

pub(super) struct UdpLink {
    socket: UdpSocket,
    server: SocketAddr,
    buf: Vec<u8>,
}

impl UdpLink {
    async fn recv(&mut self) -> Recv {
        loop {
            // Errors (ICMP unreachable after a send) and strangers are ignored.
            if let Ok((n, from)) = self.socket.recv_from(&mut self.buf).await {
                if from == self.server {
                    return Recv::Datagram(Bytes::copy_from_slice(&self.buf[..n]));
                }
            }
        }
    }
}

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

pub(super) struct QuicLink {
    endpoint: quinn::Endpoint,
    server: SocketAddr,
    name: String,
    conn: Option<quinn::Connection>,
    connecting: Option<Connecting>,
    retry_at: Option<tokio::time::Instant>,
    backoff: Duration,
}

impl QuicLink {
    async fn open(opts: &ClientOptions) -> Result<QuicLink, ClientError> {
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
        let socket = std::net::UdpSocket::bind(unspecified_near(opts.server))?;
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        endpoint.set_default_client_config(client_config(&trust)?);
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

    async fn recv(&mut self) -> Recv {
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

    fn send(&mut self, data: Bytes) {
        // Without a connection the packet is dropped; Tern retransmits.
        if let Some(c) = &self.conn {
            if let Err(e) = c.send_datagram(data) {
                tracing::debug!(error = %e, "quic datagram not sent");
            }
        }
    }

    fn rebind(&mut self) -> std::io::Result<SocketAddr> {
        let socket = std::net::UdpSocket::bind(unspecified_near(self.server))?;
        self.endpoint.rebind(socket)?;
        self.endpoint.local_addr()
    }
}

impl Drop for QuicLink {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"client closed");
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(trust: &ServerTrust) -> Result<quinn::ClientConfig, ClientError> {
    let tls_err = |e: rustls::Error| ClientError::Quic(e.to_string());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?;
    let mut tls = match trust {
        ServerTrust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                sha256: *fp,
                provider: provider(),
            }))
            .with_no_client_auth(),
        ServerTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientError::Quic(format!("{}: {e}", path.display())))?;
            for c in certs {
                roots.add(c).map_err(tls_err)?;
            }
            if roots.is_empty() {
                return Err(ClientError::Quic(format!(
                    "{}: no certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(quic::transport_config(CLIENT_IDLE)));
    Ok(cfg)
}

/// Accepts exactly the server certificate whose SHA-256 is pinned, and
/// checks the handshake signature against it (so the server must hold its
/// private key).
#[derive(Debug)]
struct PinnedCert {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        // Not secret, but compare without an early exit all the same.
        let diff = got
            .iter()
            .zip(self.sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_parse_with_their_transport() {
        let a: ServerAddr = "quic://127.0.0.1:7401".parse().unwrap();
        assert_eq!(a.transport, Transport::Quic);
        assert_eq!(a.addr, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(a.host, "127.0.0.1");
        assert_eq!(a.to_string(), "quic://127.0.0.1:7401");
        let u: ServerAddr = "udp://[::1]:7400".parse().unwrap();
        assert_eq!(u.transport, Transport::Udp);
        assert_eq!(u.addr, "[::1]:7400".parse().unwrap());
        assert_eq!(u.host, "::1");
        let bare: ServerAddr = "127.0.0.1:7400".parse().unwrap();
        assert_eq!(bare, ServerAddr::udp("127.0.0.1:7400".parse().unwrap()));
        let named: ServerAddr = "quic://localhost:7401".parse().unwrap();
        assert_eq!(named.host, "localhost");
        assert!(named.addr.ip().is_loopback());
        for bad in [
            "tcp://127.0.0.1:1",
            "quic://127.0.0.1",
            "udp://:7400",
            "quic://h:port",
        ] {
            assert!(bad.parse::<ServerAddr>().is_err(), "{bad}");
        }
    }
}
