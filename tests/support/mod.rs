//! Shared helpers for the integration tests: a daemon on port 0 in a
//! temporary data folder, and tokens for it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern::client::{Client, ClientOptions, Event};
use tern::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A daemon running inside the test process.
pub struct Daemon {
    pub addr: SocketAddr,
    pub cfg: Config,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub fn config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
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
        let addr = server.local_addr();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("daemon runs");
        });
        Daemon {
            addr,
            cfg,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn token(&self, user: u64, device: u32) -> Vec<u8> {
        hex::decode(tern::server::issue_token(&self.cfg, user, device, 3600).unwrap()).unwrap()
    }

    pub fn options(&self, user: u64, device: u32) -> ClientOptions {
        ClientOptions::new(self.addr, self.token(user, device))
    }

    pub async fn client(&self, user: u64, device: u32) -> Client {
        Client::connect(self.options(user, device))
            .await
            .expect("client connects")
    }

    /// Stops gracefully and gives the data folder back.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.dir
    }
}

pub fn data_dir(d: &Daemon) -> PathBuf {
    d.dir.path().to_path_buf()
}

/// Next inbox entry within `secs`, skipping other events.
pub async fn next_entry(c: &mut Client, secs: u64) -> tern::client::Deliver {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(Some(Event::Entry(d))) => return d,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("client stopped"),
            Err(_) => panic!("no entry within {secs}s"),
        }
    }
}

/// Next message entry (skipping receipts and other events).
pub async fn next_message(c: &mut Client, secs: u64) -> tern::client::Deliver {
    loop {
        let d = next_entry(c, secs).await;
        if matches!(d.body, tern::client::EntryBody::Message { .. }) {
            return d;
        }
    }
}

pub fn payload_of(d: &tern::client::Deliver) -> Vec<u8> {
    match &d.body {
        tern::client::EntryBody::Message { payload, .. } => payload.to_vec(),
        other => panic!("not a message: {other:?}"),
    }
}
