//! Tern over QUIC (`proto-spec/quic.md`): every Tern packet travels in one
//! QUIC DATAGRAM frame; Tern's own reliability runs end to end above it.
//!
//! The broker knows a peer by an address and a transport tag ([`Peer`]).
//! Each accepted QUIC connection is a `Transport::Quic` peer whose address
//! is a key allocated here ([`connection_peer`]): a per-process connection
//! counter. Datagrams read from the connection are handed to the broker loop
//! over a channel tagged with that peer, and broker output for a QUIC peer is
//! sent on the connection its key names, with `send_datagram`. The key never
//! changes while the connection lives, so QUIC connection migration is
//! invisible to the broker. A closed connection is simply a silent peer: the
//! broker's idle timeout ends its session, or the client's next connection
//! (a new key) takes the session over by the ordinary address rule.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tern_core::broker::Peer;
use tern_core::rate_limit::SourceLimits;
use tern_core::time::Time;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::transport::quic::{fingerprint, flush_datagrams, transport_config, ALPN, MAX_PACKET};

/// Channel capacity from the connection readers to the broker loop.
const INBOUND_QUEUE: usize = 4096;

/// The broker peer of QUIC connection number `n`. Only uniqueness matters
/// (the [`Transport::Quic`](tern_core::broker::Transport::Quic) tag, not the
/// address, is what the broker trusts); the counter fills an IPv6 address so
/// that each connection also gets its own pre-login rate-limit bucket, like
/// each raw-UDP source address.
pub fn connection_peer(n: u64) -> Peer {
    let ip = Ipv6Addr::from(u128::from(n));
    Peer::quic(SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, 0)))
}

/// The server's certificate chain and key.
pub struct Identity {
    /// End-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// SHA-256 fingerprint of the end-entity certificate.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }
}

/// Loads the configured certificate, or the generated one from the data
/// folder, generating it (self-signed, with `rcgen`) on first start.
pub fn load_identity(cfg: &Config) -> Result<Identity, String> {
    let (cert_path, key_path) = cfg.quic_cert_paths();
    if cfg.quic_cert_generated() && !cert_path.exists() && !key_path.exists() {
        generate(cfg, &cert_path, &key_path)?;
    }
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificate {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("cannot read private key {}: {e}", key_path.display()))?;
    Ok(Identity { chain, key })
}

fn generate(cfg: &Config, cert_path: &Path, key_path: &Path) -> Result<(), String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(l) = cfg.quic_listen() {
        if !l.ip().is_unspecified() && !l.ip().is_loopback() {
            names.push(l.ip().to_string());
        }
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ternd");
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    write_private(key_path, key.serialize_pem().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
    std::fs::write(cert_path, cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed QUIC certificate");
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Live QUIC connections by their peer key, shared by the connection tasks
/// (insert, remove) and the broker loop (send).
#[derive(Default)]
pub struct Peers {
    conns: Mutex<HashMap<SocketAddr, quinn::Connection>>,
}

impl Peers {
    /// Sends one Tern packet to the connection behind `key`. A missing or
    /// closed connection drops it: Tern's retransmission deals with loss.
    pub fn send(&self, key: SocketAddr, data: Bytes) {
        let conn = self.conns.lock().expect("peers lock").get(&key).cloned();
        let Some(conn) = conn else {
            return;
        };
        if let Err(e) = conn.send_datagram(data) {
            tracing::debug!(peer = %key, error = %e, "quic datagram not sent");
        }
    }

    fn all(&self) -> Vec<quinn::Connection> {
        self.conns
            .lock()
            .expect("peers lock")
            .values()
            .cloned()
            .collect()
    }
}

/// The QUIC side of the daemon: the endpoint and what the broker loop needs.
pub struct QuicServer {
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    fingerprint: String,
    /// Connection attempts per second allowed from one IP address.
    handshake_rate: f64,
}

/// What the broker loop reads from and sends to.
pub struct QuicIo {
    /// Datagrams from every connection, with their peers.
    pub rx: mpsc::Receiver<(Peer, Bytes)>,
    /// Connections by key.
    pub peers: Arc<Peers>,
    endpoint: quinn::Endpoint,
    limited: Arc<AtomicU64>,
}

impl QuicServer {
    /// Loads (or generates) the certificate and binds the endpoint.
    pub fn bind(cfg: &Config, listen: SocketAddr) -> Result<QuicServer, String> {
        let id = load_identity(cfg)?;
        let fingerprint = id.fingerprint();
        let endpoint_cfg = endpoint_config(&id.key);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(id.chain, id.key)
            .map_err(|e| format!("certificate and key do not match: {e}"))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(transport_config(cfg.timers.idle_timeout)));
        server.migration(true);
        // The same 8 MB buffers as raw UDP: with the kernel default (about
        // 200 KB) the QUIC socket dropped datagrams under load.
        let socket = crate::transport::udp::bind_with_buffers(listen)
            .map_err(|e| format!("cannot bind QUIC {listen}: {e}"))?;
        let endpoint = quinn::Endpoint::new(
            endpoint_cfg,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| format!("cannot start QUIC on {listen}: {e}"))?;
        let addr = endpoint.local_addr().map_err(|e| e.to_string())?;
        Ok(QuicServer {
            endpoint,
            addr,
            fingerprint,
            handshake_rate: cfg.limits.quic_handshake_rate,
        })
    }

    /// The UDP address QUIC listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 fingerprint of the server certificate (hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Starts accepting connections; returns the broker loop's side.
    pub fn start(self) -> QuicIo {
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let peers = Arc::new(Peers::default());
        let limited = Arc::new(AtomicU64::new(0));
        let limits = HandshakeLimits {
            sources: SourceLimits::new(
                self.handshake_rate,
                2.0 * self.handshake_rate,
                HANDSHAKE_SOURCES,
            ),
            start: std::time::Instant::now(),
            limited: limited.clone(),
        };
        tokio::spawn(accept_loop(
            self.endpoint.clone(),
            peers.clone(),
            tx,
            limits,
        ));
        QuicIo {
            rx,
            peers,
            endpoint: self.endpoint,
            limited,
        }
    }
}

impl QuicIo {
    /// Connection attempts ignored so far for their source's handshake
    /// rate (shared; it keeps counting).
    pub fn handshakes_limited(&self) -> Arc<AtomicU64> {
        self.limited.clone()
    }

    /// After the broker's last packets were handed over: waits (briefly)
    /// until they have left, then closes every connection and the endpoint,
    /// which frees the port.
    pub async fn close(self) {
        flush_datagrams(&self.peers.all(), Duration::from_millis(500)).await;
        self.endpoint.close(0u32.into(), b"server shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// Endpoint settings that survive restarts: the stateless-reset key and
/// the key that makes connection ids recognisable are both derived from the
/// certificate's private key. A client whose connection the previous
/// process held sends packets with a connection id the new process
/// recognises as its own, and gets a stateless reset it can verify, so it
/// reconnects at once instead of waiting for its idle timeout.
fn endpoint_config(key: &PrivateKeyDer<'_>) -> quinn::EndpointConfig {
    let derive = |label: &[u8]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(label);
        h.update(key.secret_der());
        h.finalize().into()
    };
    let reset = derive(b"tern/1 quic stateless reset key");
    let cid = derive(b"tern/1 quic connection id key");
    let cid_key = u64::from_be_bytes(cid[..8].try_into().expect("8 bytes"));
    let mut cfg = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &reset,
    )));
    cfg.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    cfg
}

/// Source addresses whose QUIC handshake rate is tracked, at most.
const HANDSHAKE_SOURCES: usize = 100_000;

/// The per-source limit on QUIC connection attempts: a TLS handshake costs
/// the server far more than a raw-UDP RETRY, so a flood of Initial packets
/// from one address is ignored past `[limits] quic_handshake_rate` (burst
/// twice that), before quinn does any cryptography for it.
struct HandshakeLimits {
    sources: SourceLimits<std::net::IpAddr>,
    start: std::time::Instant,
    limited: Arc<AtomicU64>,
}

impl HandshakeLimits {
    fn allow(&mut self, from: SocketAddr) -> bool {
        let now = Time::from_micros(self.start.elapsed().as_micros() as u64);
        let ok = self.sources.allow(now, from.ip());
        if !ok {
            self.limited.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    peers: Arc<Peers>,
    tx: mpsc::Sender<(Peer, Bytes)>,
    mut limits: HandshakeLimits,
) {
    let counter = Arc::new(AtomicU64::new(1));
    while let Some(incoming) = endpoint.accept().await {
        if !limits.allow(incoming.remote_address()) {
            tracing::debug!(from = %incoming.remote_address(), "quic handshake over the source's rate");
            incoming.ignore();
            continue;
        }
        let n = counter.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(
            incoming,
            connection_peer(n),
            peers.clone(),
            tx.clone(),
        ));
    }
}

async fn connection(
    incoming: quinn::Incoming,
    peer: Peer,
    peers: Arc<Peers>,
    tx: mpsc::Sender<(Peer, Bytes)>,
) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "quic handshake failed");
            return;
        }
    };
    match conn.max_datagram_size() {
        Some(n) if n >= MAX_PACKET => {}
        other => {
            tracing::info!(%remote, max = ?other, "quic peer cannot take Tern packets as datagrams");
            conn.close(1u32.into(), b"DATAGRAM frames of 1150 bytes required");
            return;
        }
    }
    peers
        .conns
        .lock()
        .expect("peers lock")
        .insert(peer.addr, conn.clone());
    tracing::debug!(%remote, %peer, "quic connection");
    loop {
        match conn.read_datagram().await {
            Ok(data) => {
                if tx.send((peer, data)).await.is_err() {
                    break; // the broker loop has stopped
                }
            }
            Err(e) => {
                tracing::debug!(%peer, reason = %e, "quic connection closed");
                break;
            }
        }
    }
    peers.conns.lock().expect("peers lock").remove(&peer.addr);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_peers_are_stable_distinct_and_tagged_quic() {
        let a = connection_peer(1);
        assert_eq!(a, connection_peer(1));
        assert_ne!(a, connection_peer(2));
        assert!(a.is_quic());
        assert_eq!(a.to_string(), "quic [::1]:0");
        assert_eq!(
            connection_peer(u64::MAX).to_string(),
            "quic [::ffff:ffff:ffff:ffff]:0"
        );
        // A raw-UDP source with the same address is another peer.
        assert_ne!(a, Peer::udp(a.addr));
    }
}
