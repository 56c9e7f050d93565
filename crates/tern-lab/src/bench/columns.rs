//! The transports the security benchmarks compare, as columns: how the
//! daemon is configured for each and how a client reaches it. A new
//! transport is a new [`Column`].

use std::net::SocketAddr;

use super::daemon::Daemon;
use super::{BenchError, Result};
use tern::client::{ClientOptions, ServerTrust, Transport};
use tern::config::{Config, SealPolicyName};

/// One transport configuration: how the daemon is configured and how a
/// client reaches it. A new transport is a new `Column`.
#[derive(Clone, Copy)]
pub struct Column {
    /// Column title.
    pub name: &'static str,
    /// Daemon configuration for this column (its own daemon).
    pub daemon: fn(&mut Config),
    /// Client options for a token, once the daemon is up.
    pub client: fn(&Daemon, Vec<u8>) -> Result<ClientOptions>,
    /// True when the clients reach the daemon over QUIC, not raw UDP.
    pub quic: bool,
}

impl Column {
    /// The daemon's socket this column's clients send to.
    pub fn socket(&self, d: &Daemon) -> SocketAddr {
        match (self.quic, d.quic) {
            (true, Some(q)) => q,
            _ => d.udp,
        }
    }
}

fn plain_daemon(cfg: &mut Config) {
    cfg.seal.policy = SealPolicyName::Off;
}

fn sealed_daemon(cfg: &mut Config) {
    cfg.seal.policy = SealPolicyName::Required;
}

fn sealed_client(d: &Daemon, token: Vec<u8>) -> Result<ClientOptions> {
    let Some(key) = d.seal_key else {
        return Err(BenchError::Failed("the daemon has no seal key".into()));
    };
    let mut o = ClientOptions::new(d.udp, token);
    o.seal_key = Some(key);
    Ok(o)
}

fn udp_client(d: &Daemon, token: Vec<u8>) -> Result<ClientOptions> {
    Ok(ClientOptions::new(d.udp, token))
}

fn quic_daemon(cfg: &mut Config) {
    cfg.quic.listen = tern::config::QuicListen::At("127.0.0.1:0".parse().expect("literal"));
}

fn quic_client(d: &Daemon, token: Vec<u8>) -> Result<ClientOptions> {
    let (Some(addr), Some(fp)) = (d.quic, d.fingerprint.as_deref()) else {
        return Err(BenchError::Failed("the daemon has no QUIC listener".into()));
    };
    let mut o = ClientOptions::new(addr, token);
    o.transport = Transport::Quic;
    o.quic.server_name = Some("localhost".into());
    o.quic.trust =
        Some(ServerTrust::fingerprint(fp).map_err(|e| BenchError::Failed(e.to_string()))?);
    Ok(o)
}

/// Raw UDP, plaintext (`[seal] policy = "off"`).
pub const RAW_UDP: Column = Column {
    name: "raw UDP (plaintext)",
    daemon: plain_daemon,
    client: udp_client,
    quic: false,
};

/// Raw UDP sealed: Noise NK handshake at login, then ChaCha20-Poly1305 per
/// packet (`[seal] policy = "required"`, the daemon's default), clients
/// pinning the daemon's seal key.
pub const SEALED_UDP: Column = Column {
    name: "UDP sealed",
    daemon: sealed_daemon,
    client: sealed_client,
    quic: false,
};

/// QUIC (TLS 1.3, DATAGRAM frames), certificate pinned by fingerprint.
pub const QUIC: Column = Column {
    name: "QUIC",
    daemon: quic_daemon,
    client: quic_client,
    quic: true,
};
