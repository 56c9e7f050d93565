//! Shared helpers for the integration tests: a daemon on port 0 in a
//! temporary data folder, and tokens for it.
#![allow(dead_code)]

mod common;
pub mod faultfs;
pub mod loopfs;
pub mod process;
pub mod raw_client;
pub mod seeds;
pub mod sidecar;
pub mod streams;

// Not every test uses every helper.
#[allow(unused_imports)]
pub use common::{
    join_all, next_entry, next_message, payload_of, pushed_and_receipted, wait_for, ServerTask,
};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern::client::{Client, ClientOptions, Event};
use tern::config::Config;

/// A daemon running inside the test process.
pub struct Daemon {
    pub addr: SocketAddr,
    pub cfg: Config,
    pub dir: tempfile::TempDir,
    /// The daemon's counters (refreshed about once a second while serving,
    /// and once more after a graceful stop).
    pub metrics: tern::server::Metrics,
    /// The key clients seal with (`None` with `[seal] policy = "off"`).
    pub seal_key: Option<tern::client::SealKey>,
    server: ServerTask,
}

/// Raw UDP only (QUIC would take the next port on a restart at a fixed
/// address); `support/transport.rs` serves QUIC.
pub fn config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.quic.listen = tern::config::QuicListen::Off;
    cfg.server.data_dir = dir.to_path_buf();
    cfg
}

impl Daemon {
    pub async fn start() -> Daemon {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        tweak(&mut cfg);
        Self::start_in(dir, cfg).await
    }

    pub async fn start_in(dir: tempfile::TempDir, cfg: Config) -> Daemon {
        let server = tern::server::Server::bind(cfg.clone())
            .await
            .expect("daemon starts");
        Self::serve(dir, cfg, server)
    }

    /// Starts again on the data folder of a stopped daemon, on the same
    /// address, so that clients keep their server address. Retries a few
    /// times if the port is briefly unavailable.
    pub async fn restart(dir: tempfile::TempDir, mut cfg: Config, addr: SocketAddr) -> Daemon {
        cfg.server.listen = addr;
        let mut last = None;
        for _ in 0..20 {
            match tern::server::Server::bind(cfg.clone()).await {
                Ok(server) => return Self::serve(dir, cfg, server),
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("daemon restarts on {addr}: {last:?}");
    }

    fn serve(dir: tempfile::TempDir, cfg: Config, server: tern::server::Server) -> Daemon {
        let addr = server.local_addr();
        let seal_key = server.seal_key();
        let metrics = server.metrics();
        Daemon {
            addr,
            seal_key,
            cfg,
            dir,
            metrics,
            server: ServerTask::spawn(server),
        }
    }

    pub fn token(&self, user: u64, device: u32) -> Vec<u8> {
        hex::decode(tern::server::issue_token(&self.cfg, user, device, 3600).unwrap()).unwrap()
    }

    /// Options of a client that seals its session (the default policy
    /// requires it).
    pub fn options(&self, user: u64, device: u32) -> ClientOptions {
        let mut o = ClientOptions::new(self.addr, self.token(user, device));
        o.seal_key = self.seal_key;
        o
    }

    pub async fn client(&self, user: u64, device: u32) -> Client {
        Client::connect(self.options(user, device))
            .await
            .expect("client connects")
    }

    /// Stops gracefully and gives the data folder back.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.server.stop().await;
        self.dir
    }

    /// Stops gracefully; gives back the data folder, the config and the
    /// final counters (published after the drain).
    pub async fn stop_keep(mut self) -> (tempfile::TempDir, Config, tern::server::Snapshot) {
        self.server.stop().await.expect("daemon task ends cleanly");
        (self.dir, self.cfg, self.metrics.snapshot())
    }
}

/// The seal key of the daemon whose data folder is `data_dir` (created if
/// it does not exist yet, exactly as the daemon would).
pub fn seal_key_of(data_dir: &std::path::Path) -> tern::client::SealKey {
    tern::server::load_seal_key(&config(data_dir))
        .expect("seal key loads")
        .expect("sealing is on by default")
        .public()
}

pub fn data_dir(d: &Daemon) -> PathBuf {
    d.dir.path().to_path_buf()
}

/// Next event within `secs`, panicking on timeout.
pub async fn next_event(c: &mut Client, secs: u64) -> Event {
    match tokio::time::timeout(Duration::from_secs(secs), c.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("client stopped"),
        Err(_) => panic!("no event within {secs}s"),
    }
}

/// Every event that arrives within `ms` milliseconds of quiet.
pub async fn drain_quiet(c: &mut Client, ms: u64) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(ms), c.recv()).await {
        out.push(e);
    }
    out
}

/// Opens the RocksDB store of a stopped daemon's data folder, for inspection.
pub fn open_store(data_dir: &std::path::Path) -> tern::store::RocksStore {
    tern::store::RocksStore::open_default(data_dir.join("db")).expect("store opens")
}

/// Every stored inbox entry of `user`, decoded.
pub fn stored_entries(store: &tern::store::RocksStore, user: u64) -> Vec<tern::client::Entry> {
    use tern::store::Store;
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_inbox(user, after, 1024).expect("inbox reads");
        if page.is_empty() {
            return out;
        }
        for e in page {
            after = e.seq;
            // What a version 2 device is shown.
            out.push(e.entry.to_entry(e.seq, user));
        }
    }
}

/// Message payloads `(sender, index)` encoded as `"u{user}:{index}"`.
pub fn tagged(user: u64, i: u64) -> bytes::Bytes {
    format!("u{user}:{i}").into_bytes().into()
}

/// Parses a payload made by [`tagged`].
pub fn untag(payload: &[u8]) -> (u64, u64) {
    let s = std::str::from_utf8(payload).expect("utf-8 payload");
    let (u, i) = s
        .strip_prefix('u')
        .and_then(|r| r.split_once(':'))
        .unwrap_or_else(|| panic!("not a tagged payload: {s:?}"));
    (u.parse().unwrap(), i.parse().unwrap())
}
