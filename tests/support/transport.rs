//! Runs one test body over both transports. [`Net`] is a daemon serving raw
//! UDP and QUIC at once (ports picked by the OS, a generated certificate in
//! its temporary data folder); [`Net::options`] gives client options for
//! either transport, pinning the certificate fingerprint for QUIC.
//!
//! `over_both_transports!(body, …)` turns each `async fn body(t: Transport)`
//! into a module with two tests, `body::udp` and `body::quic`.
//!
//! Included on its own (`#[path = "support/transport.rs"] mod
//! transport;`), with what it shares with `support/mod.rs` from
//! `support/common.rs`.
#![allow(dead_code)]

#[path = "common.rs"]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::ServerTask;
#[allow(unused_imports)]
pub use common::{join_all, next_entry, next_message, payload_of, pushed_and_receipted};
pub use tern::client::Transport;
use tern::client::{Client, ClientOptions, Event, Sent, ServerTrust};
use tern::config::{Config, QuicListen};

/// Generates `mod $body { udp, quic }` tests calling `$body(Transport::…)`.
macro_rules! over_both_transports {
    ($($body:ident),* $(,)?) => {
        $(
            mod $body {
                #[tokio::test]
                async fn udp() {
                    super::$body(super::transport::Transport::Udp).await
                }

                #[tokio::test]
                async fn quic() {
                    super::$body(super::transport::Transport::Quic).await
                }
            }
        )*
    };
}

/// A daemon on UDP and QUIC, inside the test process.
pub struct Net {
    /// Raw UDP address.
    pub udp: SocketAddr,
    /// QUIC address.
    pub quic: SocketAddr,
    /// SHA-256 of the QUIC certificate (hex).
    pub fingerprint: String,
    /// The key raw-UDP clients seal with.
    pub seal_key: Option<tern::client::SealKey>,
    pub cfg: Config,
    pub dir: tempfile::TempDir,
    /// The daemon's counters.
    pub metrics: tern::server::Metrics,
    server: ServerTask,
}

impl Net {
    pub async fn start() -> Net {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.quic.listen = QuicListen::At("127.0.0.1:0".parse().unwrap());
        cfg.server.data_dir = dir.path().to_path_buf();
        tweak(&mut cfg);
        cfg.validate().expect("valid test config");
        Self::serve(dir, cfg).await
    }

    /// Starts again on a stopped daemon's data folder and ports.
    pub async fn restart(
        dir: tempfile::TempDir,
        mut cfg: Config,
        udp: SocketAddr,
        quic: SocketAddr,
    ) -> Net {
        cfg.server.listen = udp;
        cfg.quic.listen = QuicListen::At(quic);
        Self::serve(dir, cfg).await
    }

    async fn serve(dir: tempfile::TempDir, cfg: Config) -> Net {
        let mut last = None;
        for _ in 0..20 {
            match tern::server::Server::bind(cfg.clone()).await {
                Ok(server) => {
                    let udp = server.local_addr();
                    let quic = server.quic_addr().expect("QUIC enabled");
                    let fingerprint = server.quic_fingerprint().expect("QUIC enabled");
                    let seal_key = server.seal_key();
                    let metrics = server.metrics();
                    return Net {
                        udp,
                        quic,
                        fingerprint,
                        seal_key,
                        cfg,
                        dir,
                        metrics,
                        server: ServerTask::spawn(server),
                    };
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("daemon starts: {last:?}");
    }

    pub fn token(&self, user: u64, device: u32) -> Vec<u8> {
        hex::decode(tern::server::issue_token(&self.cfg, user, device, 3600).unwrap()).unwrap()
    }

    /// The server address for `t`, as a client would write it.
    pub fn url(&self, t: Transport) -> String {
        match t {
            Transport::Udp => format!("udp://{}", self.udp),
            Transport::Quic => format!("quic://{}", self.quic),
        }
    }

    /// Client options over `t`; QUIC pins the certificate fingerprint.
    pub fn options(&self, t: Transport, user: u64, device: u32) -> ClientOptions {
        let mut o =
            ClientOptions::with_server(self.url(t).parse().unwrap(), self.token(user, device));
        if t == Transport::Quic {
            o.quic.trust = Some(ServerTrust::fingerprint(&self.fingerprint).unwrap());
        }
        // Raw UDP is sealed (the default policy requires it); QUIC ignores it.
        o.seal_key = self.seal_key;
        o
    }

    pub async fn client(&self, t: Transport, user: u64, device: u32) -> Client {
        Client::connect(self.options(t, user, device))
            .await
            .unwrap_or_else(|e| panic!("client {user}/{device} connects over {t}: {e}"))
    }

    /// Stops gracefully; gives back the data folder and the config.
    pub async fn stop(mut self) -> (tempfile::TempDir, Config) {
        self.server.stop().await.expect("daemon task ends cleanly");
        (self.dir, self.cfg)
    }
}

/// Waits for an event matching `pred` within `secs`, dropping the others.
pub async fn wait_for(c: &mut Client, secs: u64, pred: impl Fn(&Event) -> bool) -> Event {
    common::wait_for(c, secs, &mut Vec::new(), pred).await
}

/// Sends every payload to user `to` in `conv` at once (submitted in
/// order); each must be stored.
pub async fn send_all(c: &Client, to: u64, conv: u64, payloads: Vec<bytes::Bytes>) -> Vec<Sent> {
    let sends = payloads
        .into_iter()
        .map(|p| c.send(to, conv, 0, p))
        .collect();
    join_all(sends)
        .await
        .into_iter()
        .map(|r| r.expect("stored"))
        .collect()
}

/// A payload of exactly `len` bytes that names its index.
pub fn payload(i: u64, len: usize) -> bytes::Bytes {
    let mut p = format!("m{i}:").into_bytes();
    p.resize(len.max(p.len()), b'.');
    p.into()
}

/// The index a [`payload`] names.
pub fn index_of(p: &[u8]) -> u64 {
    let s = std::str::from_utf8(p).expect("utf-8 payload");
    s.strip_prefix('m')
        .and_then(|r| r.split_once(':'))
        .and_then(|(i, _)| i.parse().ok())
        .unwrap_or_else(|| panic!("not a test payload: {s:?}"))
}

/// The real `ternd serve --quic` as a child process (for crashes), through
/// the lab's one launcher.
pub struct Ternd {
    daemon: tern_lab::ternd::Ternd,
    pub udp: SocketAddr,
    pub quic: SocketAddr,
    pub fingerprint: String,
    pub seal_key: Option<tern::client::SealKey>,
}

impl Ternd {
    /// Starts `ternd serve --listen UDP --quic QUIC --data-dir DIR` and reads
    /// the addresses and fingerprint it prints (within 20 s).
    pub fn spawn(dir: &std::path::Path, udp: SocketAddr, quic: SocketAddr) -> Ternd {
        let daemon = tern_lab::ternd::TerndConfig::new(env!("CARGO_BIN_EXE_ternd"), dir)
            .listen(udp)
            .quic(quic)
            .env("RUST_LOG", "warn")
            .ready_timeout(Duration::from_secs(20))
            .start()
            .expect("ternd starts and prints its addresses");
        Ternd {
            udp: daemon.addr(),
            quic: daemon.quic_addr().expect("QUIC address printed"),
            fingerprint: daemon.fingerprint().expect("fingerprint printed").into(),
            seal_key: daemon.seal_key(),
            daemon,
        }
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(mut self) {
        let _ = self.daemon.kill();
    }
}
