//! `tern sidecar`: a local Tern client with an HTTP API, so that an app in
//! any language gets exactly-once, in-order, durable messaging without a
//! native SDK (`docs/sidecar.md`, `src/sidecar/openapi.json`).
//!
//! A thin layer over the client library ([`crate::client`]):
//! - sending: every operation is a *keyed* operation of the library's
//!   durable outbox, its tag holding the idempotency key (`records.rs`), so
//!   "accepted" (202) and "in the outbox" are one synced write;
//! - receiving: the library runs with `manual_release`; entries wait in
//!   `events.rs` until the app acknowledges them, and only then is the
//!   server told (`stream.rs` serves them as SSE and WebSocket);
//! - `routes.rs`: the endpoints; `serve.rs`: Unix socket or loopback TCP
//!   with a bearer token; `metrics.rs`: `/metrics`; `args.rs`: the CLI.

mod api;
mod args;
mod convs;
mod events;
mod group_pages;
mod groups;
mod metrics;
mod records;
mod routes;
mod serve;
mod stream;

pub use args::{main, SidecarArgs};
pub use serve::Listen;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;

use crate::client::{Client, ClientError, ClientHandle, ClientOptions, Event};
use events::EventBuffer;
use metrics::Counters;
use records::Records;

/// How the sidecar runs.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// How to reach and log in to `ternd` (`state_dir` is required).
    pub client: ClientOptions,
    /// Where the local API listens.
    pub listen: Listen,
    /// Settled operations are remembered (idempotency keys included) this
    /// long...
    pub keep_for: Duration,
    /// ...and at most this many.
    pub keep_max: usize,
}

/// Why the sidecar could not start.
#[derive(Debug, Error)]
pub enum SidecarError {
    /// No state folder: the outbox and checkpoint must be durable.
    #[error("a state folder is required (--state-dir)")]
    NoStateDir,
    /// The client library failed (connecting, the durable state).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The listener could not be set up.
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// Where.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server refused the login.
    #[error(
        "the server refused the login: a bad or expired --token, or sealing required (--seal-key)"
    )]
    LoginRefused,
    /// A command-line argument does not parse.
    #[error("{arg}: {reason}")]
    BadArgument {
        /// The argument.
        arg: String,
        /// What is wrong.
        reason: String,
    },
    /// The bearer token file could not be read or created.
    #[error("token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Connection state for `GET /v1/status`.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// Logged in now.
    pub connected: bool,
    /// Logins so far.
    pub logins: u64,
    /// The last thing that went wrong, if any.
    pub last_error: Option<String>,
}

/// What every handler shares.
pub struct Shared {
    handle: ClientHandle,
    records: Mutex<Records>,
    /// Serialises accepting requests that carry an idempotency key, so two
    /// concurrent requests with one key cannot both be new.
    keyed_gate: tokio::sync::Mutex<()>,
    /// One member page or read count asked of the server at a time: the
    /// library keeps one of each under way, a new one replacing the last.
    group_query_gate: tokio::sync::Mutex<()>,
    events: EventBuffer,
    link: Mutex<Link>,
    counters: Counters,
    /// (user, device), known from the first login on.
    identity: Mutex<Option<(u64, u32)>>,
    server: String,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_error(&self, e: impl std::fmt::Display) {
        self.link().last_error = Some(e.to_string());
    }

    fn identity(&self) -> Option<(u64, u32)> {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A login: who, and where delivery resumes.
    fn logged_in(&self, user: u64, device: u32, checkpoint: u64, head: u64) {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = Some((user, device));
        self.events.start_at(checkpoint, head);
        let mut l = self.link();
        l.connected = true;
        l.logins += 1;
    }
}

/// A sidecar with its client connected and its listener bound.
pub struct Sidecar {
    shared: Arc<Shared>,
    client: Client,
    listener: serve::Bound,
    cfg: SidecarConfig,
    stop: watch::Sender<bool>,
}

impl Sidecar {
    /// Opens the durable state, binds the local API and logs in, waiting
    /// up to the client's connect timeout for the first login. If the
    /// server does not answer by then it starts anyway: operations are
    /// accepted into the outbox and sent once it does. A refused login
    /// (bad or expired token) is an error.
    pub async fn start(mut cfg: SidecarConfig) -> Result<Sidecar, SidecarError> {
        if cfg.client.state_dir.is_none() {
            return Err(SidecarError::NoStateDir);
        }
        cfg.client.manual_release = true;
        let server = cfg.client.server_addr().to_string();
        let mut client = Client::start(cfg.client.clone()).await?;
        let handle = client.handle();
        let listener = serve::bind(&cfg.listen).await?;
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            records: Mutex::new(Records::default()),
            keyed_gate: tokio::sync::Mutex::new(()),
            group_query_gate: tokio::sync::Mutex::new(()),
            events: EventBuffer::default(),
            link: Mutex::new(Link::default()),
            counters: Counters::default(),
            identity: Mutex::new(None),
            handle,
            server,
            shutdown,
        });
        // The first login, or the reason there is none.
        let deadline = tokio::time::Instant::now() + cfg.client.connect_timeout;
        loop {
            match tokio::time::timeout_at(deadline, client.recv()).await {
                Ok(Some(Event::Connected {
                    user,
                    device,
                    checkpoint,
                    head,
                    ..
                })) => {
                    shared.logged_in(user, device, checkpoint, head);
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(SidecarError::LoginRefused);
                }
                Err(_) => {
                    tracing::warn!(server = %shared.server, "no login yet; serving, and sending once the server answers");
                    shared.note_error("not logged in yet: the server has not answered");
                    break;
                }
            }
        }
        Ok(Sidecar {
            shared,
            client,
            listener,
            cfg,
            stop,
        })
    }

    /// Where the API listens (`unix:PATH` or `http://ADDR`).
    pub fn endpoint(&self) -> String {
        self.listener.describe()
    }

    /// Serves until `shutdown` completes, then closes the streams and logs
    /// out (what the app acknowledged is released first).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), SidecarError> {
        let Sidecar {
            shared,
            client,
            listener,
            cfg,
            stop,
        } = self;
        // Outcomes first, then the records: an outcome in both is applied
        // twice, harmlessly; one in neither cannot happen.
        let mut outcomes = shared.handle.keyed_outcomes().await?;
        let restored = Records::restore(shared.handle.keyed_records().await?);
        *shared.records() = restored;
        let s = shared.clone();
        tokio::spawn(async move {
            while let Some(o) = outcomes.recv().await {
                s.counters.settled(&o.settled);
                s.records().settle(o.id, o.settled);
            }
        });
        tokio::spawn(expiry(shared.clone(), cfg.keep_for, cfg.keep_max));
        let receiver = tokio::spawn(receive(shared.clone(), client));
        let app = routes::router(shared.clone());
        let served = serve::serve(listener, app, cfg.listen.token().cloned(), async move {
            shutdown.await;
            let _ = stop.send(true);
            shared.events.wake_all();
        })
        .await;
        if let Ok(client) = receiver.await {
            client.close().await;
        }
        served
    }
}

/// Runs a sidecar until `shutdown`: the embeddable entry point.
pub async fn run(
    cfg: SidecarConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), SidecarError> {
    Sidecar::start(cfg).await?.run(shutdown).await
}

/// Moves the library's events into the buffer until shutdown; gives the
/// client back to be closed.
async fn receive(shared: Arc<Shared>, mut client: Client) -> Client {
    let mut stop = shared.shutdown.clone();
    loop {
        let ev = tokio::select! {
            ev = client.recv() => ev,
            _ = stop.wait_for(|s| *s) => return client,
        };
        match ev {
            Some(Event::Entry(d)) => {
                let seq = d.seq;
                let device = shared.identity().map_or(0, |(_, d)| d);
                if shared.events.push(d, device) {
                    // Acknowledged by the app before it came again.
                    let _ = client.release(seq).await;
                }
            }
            Some(Event::Connected {
                user,
                device,
                checkpoint,
                head,
                ..
            }) => shared.logged_in(user, device, checkpoint, head),
            Some(Event::Disconnected) => {
                let mut l = shared.link();
                l.connected = false;
                l.last_error = Some("session lost; logging in again".into());
            }
            Some(Event::StorageUnavailable { reason }) => {
                shared.link().last_error = Some(format!(
                    "server storage unavailable, the outbox is resent: {reason}"
                ));
            }
            Some(Event::Downgraded) => {
                shared.link().last_error = Some(
                    "the server speaks only protocol version 1 (no conversations or history)"
                        .into(),
                );
            }
            Some(Event::Notify { .. }) | Some(Event::PageEnd { .. }) => {}
            None => {
                {
                    let mut l = shared.link();
                    l.connected = false;
                    l.last_error = Some("the client stopped (session closed by the server)".into());
                }
                let _ = stop.wait_for(|s| *s).await;
                return client;
            }
        }
    }
}

/// Forgets settled operations past the keeping window, once a minute.
async fn expiry(shared: Arc<Shared>, keep_for: Duration, keep_max: usize) {
    let mut stop = shared.shutdown.clone();
    loop {
        let cutoff = metrics::now_ms().saturating_sub(keep_for.as_millis() as u64);
        let gone = shared.records().expire(cutoff, keep_max);
        if !gone.is_empty() {
            if let Err(e) = shared.handle.forget_keyed(gone).await {
                shared.note_error(format!("forgetting settled operations: {e}"));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
