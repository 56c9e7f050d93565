//! The server API's way into the broker: requests carried over a channel
//! into the broker loop, which owns the broker, and answered there
//! between datagrams. Service messages wait here, by sequence, until the
//! broker has applied them in order and made them durable; a commit that
//! fails rolls the broker back, and they are applied again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tern_core::broker::{Broker, ServiceError, ServiceOutcome, ServicePosition, UserView};
use tern_core::store::Store;
use tern_core::time::Time;
use tern_core::wire::Frame;
use tokio::sync::{mpsc, oneshot};

use super::latency::CommitLatency;

/// Requests the broker loop answers.
pub enum Request {
    /// The service device's position.
    Position(oneshot::Sender<Result<ServicePosition, String>>),
    /// Apply (or, with no frame, only await) service message `seq`.
    Apply(u64, Option<Frame>, oneshot::Sender<ServiceOutcome>),
    /// A user's inbox, devices and presence.
    Inspect(u64, oneshot::Sender<Result<UserView, String>>),
    /// End a user's sessions: (user, device, reconnect).
    Kick(u64, Option<u32>, bool, oneshot::Sender<usize>),
    /// Is the loop answering?
    Ping(oneshot::Sender<()>),
}

/// Figures the loop keeps for the status page and `/metrics`.
#[derive(Default)]
pub struct Live {
    /// Group-commit latency.
    pub latency: CommitLatency,
    /// Downlink retransmissions so far (sessions closed included).
    pub retransmits: AtomicU64,
    /// Service messages waiting for the broker.
    pub service_pending: AtomicU64,
}

/// The API's end: cloneable.
#[derive(Clone)]
pub struct BridgeHandle {
    tx: mpsc::Sender<Request>,
}

/// The loop's end.
pub struct Bridge {
    rx: mpsc::Receiver<Request>,
    user: u64,
    device: u32,
    pending: BTreeMap<u64, (Option<Frame>, Vec<oneshot::Sender<ServiceOutcome>>)>,
    last_retransmits: HashMap<u64, u64>,
    live: Arc<Live>,
}

/// A bridge for the service device (`user`, `device`).
pub fn bridge(user: u64, device: u32) -> (Bridge, BridgeHandle, Arc<Live>) {
    let (tx, rx) = mpsc::channel(4096);
    let live = Arc::new(Live::default());
    (
        Bridge {
            rx,
            user,
            device,
            pending: BTreeMap::new(),
            last_retransmits: HashMap::new(),
            live: live.clone(),
        },
        BridgeHandle { tx },
        live,
    )
}

impl BridgeHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The service device's position.
    pub async fn position(&self) -> Result<ServicePosition, String> {
        self.ask(Request::Position)
            .await
            .unwrap_or_else(|| Err("the broker loop has stopped".into()))
    }

    /// Applies message `seq` (in sequence order, whatever order the calls
    /// come in); resolves once it is durable.
    pub fn apply(&self, seq: u64, frame: Option<Frame>) -> oneshot::Receiver<ServiceOutcome> {
        let (tx, rx) = oneshot::channel();
        let sender = self.tx.clone();
        tokio::spawn(async move {
            let _ = sender.send(Request::Apply(seq, frame, tx)).await;
        });
        rx
    }

    /// A user's view.
    pub async fn inspect(&self, user: u64) -> Option<Result<UserView, String>> {
        self.ask(|tx| Request::Inspect(user, tx)).await
    }

    /// Ends sessions; how many.
    pub async fn kick(&self, user: u64, device: Option<u32>, reconnect: bool) -> Option<usize> {
        self.ask(|tx| Request::Kick(user, device, reconnect, tx))
            .await
    }

    /// Whether the broker loop answers.
    pub async fn ping(&self) -> bool {
        self.ask(Request::Ping).await.is_some()
    }
}

impl Bridge {
    /// The next request (pending forever when every handle is gone).
    pub async fn next(&mut self) -> Option<Request> {
        self.rx.recv().await
    }

    /// The figures it keeps.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Answers one request.
    pub fn handle<S: Store>(&mut self, broker: &mut Broker<S>, now: Time, req: Request) {
        match req {
            Request::Position(tx) => {
                let _ = tx.send(
                    broker
                        .service_position(self.user, self.device)
                        .map_err(|e| e.to_string()),
                );
            }
            Request::Apply(seq, frame, tx) => {
                let slot = self.pending.entry(seq).or_insert((None, Vec::new()));
                if frame.is_some() {
                    slot.0 = frame;
                }
                slot.1.push(tx);
                self.tick(broker, now);
            }
            Request::Inspect(user, tx) => {
                let _ = tx.send(broker.inspect_user(now, user));
            }
            Request::Kick(user, device, reconnect, tx) => {
                let _ = tx.send(broker.kick_user(user, device, reconnect));
            }
            Request::Ping(tx) => {
                let _ = tx.send(());
            }
        }
    }

    /// Applies waiting messages in order and answers those now durable.
    /// Called after every wake-up of the loop.
    pub fn tick<S: Store>(&mut self, broker: &mut Broker<S>, now: Time) {
        if self.pending.is_empty() {
            return;
        }
        loop {
            let Ok(pos) = broker.service_position(self.user, self.device) else {
                return; // store read failed: next wake-up
            };
            let next = pos.staged + 1;
            let Some(frame) = self.pending.get(&next).and_then(|p| p.0.clone()) else {
                break;
            };
            match broker.apply_service(now, self.user, self.device, next, frame.clone()) {
                Ok(()) => {}
                Err(ServiceError::DeviceInUse) => {
                    // The service device is the API's: a client logged in
                    // with its identity is logged out.
                    tracing::warn!(
                        user = self.user,
                        device = self.device,
                        "a client used the service device; kicked"
                    );
                    broker.kick_user(self.user, Some(self.device), false);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "service message not applied yet");
                    break;
                }
            }
        }
        let Ok(pos) = broker.service_position(self.user, self.device) else {
            return;
        };
        let done: Vec<u64> = self
            .pending
            .range(..=pos.durable)
            .map(|(s, _)| *s)
            .collect();
        for seq in done {
            let Some(outcome) = broker.service_outcome(self.user, self.device, seq) else {
                continue;
            };
            if let Some((_, waiters)) = self.pending.remove(&seq) {
                for w in waiters {
                    let _ = w.send(outcome);
                }
            }
        }
        self.live
            .service_pending
            .store(self.pending.len() as u64, Relaxed);
    }

    /// Adds the retransmissions of live sessions since the last call
    /// (about once a second).
    pub fn count_retransmits<S: Store>(&mut self, broker: &Broker<S>) {
        let mut now = HashMap::with_capacity(self.last_retransmits.len());
        let mut added = 0;
        for (sid, n) in broker.downlink_retransmits() {
            added += n.saturating_sub(self.last_retransmits.get(&sid).copied().unwrap_or(0));
            now.insert(sid, n);
        }
        self.last_retransmits = now;
        self.live.retransmits.fetch_add(added, Relaxed);
    }
}
