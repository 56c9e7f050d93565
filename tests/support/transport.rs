//! Runs one test body over both transports. [`Net`] is a daemon serving raw
//! UDP and QUIC at once (ports picked by the OS, a generated certificate in
//! its temporary data folder); [`Net::options`] gives client options for
//! either transport, pinning the certificate fingerprint for QUIC.
//!
//! `over_both_transports!(body, …)` turns each `async fn body(t: Transport)`
//! into a module with two tests, `body::udp` and `body::quic`.
//!
//! Self-contained on purpose (include it with
//! `#[path = "support/transport.rs"] mod transport;`).
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub use tern::client::Transport;
use tern::client::{Client, ClientOptions, Deliver, EntryBody, Event, ServerTrust};
use tern::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Net {
    pub async fn start() -> Net {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.quic.listen = Some("127.0.0.1:0".parse().unwrap());
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
        cfg.quic.listen = Some(quic);
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
                    let (stop, rx) = oneshot::channel();
                    let task = tokio::spawn(async move {
                        server
                            .run(async {
                                let _ = rx.await;
                            })
                            .await
                            .expect("daemon runs");
                    });
                    return Net {
                        udp,
                        quic,
                        fingerprint,
                        seal_key,
                        cfg,
                        dir,
                        stop: Some(stop),
                        task: Some(task),
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
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("daemon task ends cleanly");
        }
        (self.dir, self.cfg)
    }
}

/// Next inbox entry within `secs`, skipping other events.
pub async fn next_entry(c: &mut Client, secs: u64) -> Deliver {
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

/// Next message entry, skipping receipts and other events.
pub async fn next_message(c: &mut Client, secs: u64) -> Deliver {
    loop {
        let d = next_entry(c, secs).await;
        if matches!(d.body, EntryBody::Message { .. }) {
            return d;
        }
    }
}

pub fn payload_of(d: &Deliver) -> Vec<u8> {
    match &d.body {
        EntryBody::Message { payload, .. } => payload.to_vec(),
        other => panic!("not a message: {other:?}"),
    }
}

/// Waits for an event matching `pred` within `secs`, dropping the others.
pub async fn wait_for(c: &mut Client, secs: u64, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(e)) => seen.push(e),
            Ok(None) => panic!("client stopped; saw {seen:?}"),
            Err(_) => panic!("no matching event within {secs}s; saw {seen:?}"),
        }
    }
}

/// Polls every future concurrently, first polled in vector order (so
/// operations are submitted in that order); outputs in order.
pub async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
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
