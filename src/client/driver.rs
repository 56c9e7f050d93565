//! The background task of a [`Client`](super::Client): moves datagrams,
//! timers and commands in and out of the core's `ClientConn`, over the
//! transport the options chose (`transport.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent, OpId, Outgoing};
use tern_core::time::Time;
use tern_core::wire::{EntryBody, ReceiptStatus, Summary};
use tokio::sync::{mpsc, oneshot};

use super::outbox::Outbox;
use super::queue::EventQueue;
use super::transport::{Link, Recv};
use super::{ClientError, ClientOptions, Command, Event, Sent};

/// With a state folder, entries taken by `recv` are released in batches:
/// one synced checkpoint write at most this long after the first of them...
const RELEASE_DELAY: Duration = Duration::from_millis(5);
/// ...or at once when this many are waiting.
const RELEASE_BATCH: u64 = 64;

type Ready = oneshot::Receiver<Result<(u64, u32), ClientError>>;

struct Pending {
    key: u64,
    /// The uplink sequence stored with the operation (0: none yet).
    seq: u64,
    op: Outgoing,
    waiter: Option<oneshot::Sender<Result<Sent, ClientError>>>,
}

struct Driver {
    conn: ClientConn,
    link: Link,
    start: Instant,
    outbox: Option<Outbox>,
    pending: HashMap<OpId, Pending>,
    next_key: u64,
    /// Events for the application; queueing never waits.
    events: Arc<EventQueue>,
    ready: Option<oneshot::Sender<Result<(u64, u32), ClientError>>>,
    device: u32,
    delivered_up_to: u64,
    delivery_waiters: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    summaries: Vec<Summary>,
    summary_waiters: Vec<oneshot::Sender<(Vec<Summary>, tern_core::wire::SummaryEnd)>>,
    manual_release: bool,
    stop: bool,
    close_waiter: Option<oneshot::Sender<()>>,
    /// Inbox epoch the two fields below refer to.
    epoch: u64,
    /// Highest inbox sequence handed to the application. A re-login restarts
    /// the downlink at the server's checkpoint, which lags behind this with
    /// manual release; those entries must not be handed over twice.
    handed: u64,
    /// Highest sequence the application released (with automatic release:
    /// took with `recv`). A release above what the session has (re)received
    /// is applied once the entries are back.
    release_wanted: u64,
    /// The (epoch, checkpoint) last written to the state dir.
    saved: (u64, u64),
    /// When entries taken by `recv` but not yet released are released.
    release_due: Option<Time>,
}

/// Starts the task; the returned receiver resolves at the first login.
pub(super) async fn spawn(
    opts: ClientOptions,
) -> Result<(mpsc::Sender<Command>, Arc<EventQueue>, Ready), ClientError> {
    let outbox = match &opts.state_dir {
        Some(dir) => Some(Outbox::open(dir)?),
        None => None,
    };
    let link = Link::open(&opts).await?;
    let mut cfg = ClientConfig::new(Bytes::from(opts.token.clone()));
    cfg.max_datagram = link.max_packet();
    cfg.auto_pull = opts.auto_pull;
    // The driver releases entries itself: once `recv` has returned them
    // (automatic release) or when the application says so (manual).
    cfg.auto_release = false;
    let mut pending = HashMap::new();
    let mut fresh = Vec::new();
    let mut next_key = 1;
    let (mut epoch0, mut checkpoint0) = (0, 0);
    if let Some(o) = &outbox {
        let (epoch, checkpoint) = o.checkpoint()?;
        (epoch0, checkpoint0) = (epoch, checkpoint);
        cfg.epoch = epoch;
        cfg.checkpoint = checkpoint;
        let mut op_id = 1;
        for row in o.rows()? {
            next_key = next_key.max(row.key + 1);
            if row.seq != 0 {
                cfg.resume.push((row.seq, row.op.clone()));
                pending.insert(
                    OpId(op_id),
                    Pending {
                        key: row.key,
                        seq: row.seq,
                        op: row.op,
                        waiter: None,
                    },
                );
                op_id += 1;
            } else {
                fresh.push(row);
            }
        }
    }
    if opts.transport == super::Transport::Udp {
        // QUIC is encrypted by TLS already; raw UDP is sealed when the
        // server's key is known.
        cfg.server_key = opts.seal_key;
    }
    // Handshakes carry the wall clock (replay defence) and draw their keys
    // from the OS generator.
    cfg.wall_origin_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    cfg.entropy = Some(rand::random());
    let start = Instant::now();
    let mut conn = ClientConn::new(cfg, Time::ZERO, rand::random());
    for row in fresh {
        if let Ok(id) = conn.submit(Time::ZERO, row.op.clone()) {
            let mut seq = 0;
            if let (Some(o), Some(s)) = (&outbox, conn.uplink()) {
                // Queued behind resumed operations: it has its sequence now.
                seq = s.next_seq() - 1;
                o.put(row.key, seq, &row.op)?;
            }
            pending.insert(
                id,
                Pending {
                    key: row.key,
                    seq,
                    op: row.op,
                    waiter: None,
                },
            );
        }
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let events = Arc::new(EventQueue::new(checkpoint0));
    let (ready_tx, ready_rx) = oneshot::channel();
    let driver = Driver {
        conn,
        link,
        start,
        outbox,
        pending,
        next_key,
        events: events.clone(),
        ready: Some(ready_tx),
        device: 0,
        delivered_up_to: 0,
        delivery_waiters: BTreeMap::new(),
        summaries: Vec::new(),
        summary_waiters: Vec::new(),
        manual_release: opts.manual_release,
        stop: false,
        close_waiter: None,
        epoch: epoch0,
        handed: checkpoint0,
        release_wanted: checkpoint0,
        saved: (epoch0, checkpoint0),
        release_due: None,
    };
    tokio::spawn(driver.run(cmd_rx));
    Ok((cmd_tx, events, ready_rx))
}

impl Driver {
    fn now(&self) -> Time {
        Time::from_micros(self.start.elapsed().as_micros() as u64)
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<Command>) {
        let events = self.events.clone();
        while !self.stop {
            let wake = match (self.conn.poll_timeout(), self.release_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wake = wake.map(|t| {
                tokio::time::Instant::from_std(self.start + Duration::from_micros(t.as_micros()))
            });
            tokio::select! {
                r = self.link.recv() => match r {
                    Recv::Datagram(data) => {
                        let now = self.now();
                        self.conn.handle_datagram(now, data);
                    }
                    Recv::Failed(reason) => self.transport_failed(reason),
                },
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.command(c).await,
                    None => self.stop = true,
                },
                _ = events.wait_taken() => {}
                _ = async { tokio::time::sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)).await }, if wake.is_some() => {}
            }
            let now = self.now();
            self.conn.handle_timeout(now);
            self.release_taken(now, false);
            self.reapply_release(now);
            // Events first: operations numbered at a login are stored with
            // their sequence (Sequenced) before they are sent, so a crash in
            // between cannot make a restart send them again as new ones.
            self.drain_events();
            self.flush(now).await;
            if self.conn.is_closed() {
                self.flush(now).await;
                break;
            }
        }
        // Whatever the application took counts, even when it just dropped
        // the client.
        let now = self.now();
        self.release_taken(now, true);
        self.flush(now).await;
        self.link.close().await;
        self.events.close();
        if let Some(w) = self.close_waiter.take() {
            let _ = w.send(());
        }
        for (_, p) in self.pending.drain() {
            if let Some(w) = p.waiter {
                let _ = w.send(Err(ClientError::Stopped));
            }
        }
    }

    async fn flush(&mut self, now: Time) {
        debug_assert!(
            self.sequences_stored(),
            "an operation would be sent before its sequence is stored"
        );
        while let Some(d) = self.conn.poll_transmit(now) {
            self.link.send(d).await;
        }
    }

    /// A QUIC handshake failed. Before the first login that ends `connect`;
    /// afterwards the transport keeps retrying and this is only logged.
    fn transport_failed(&mut self, reason: String) {
        match self.ready.take() {
            Some(r) => {
                let _ = r.send(Err(ClientError::Quic(reason)));
                self.stop = true;
            }
            None => tracing::warn!(%reason, "quic handshake failed; retrying"),
        }
    }

    async fn command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::Submit(op, waiter) => {
                let key = self.next_key;
                // Once logged in, the operation gets its sequence right away
                // (no Sequenced event): store it with the operation, so that a
                // restart replays it under the same sequence and the server
                // recognises it instead of storing it a second time.
                let seq = self.conn.uplink().map_or(0, |s| s.next_seq());
                if let Some(o) = &self.outbox {
                    if let Err(e) = o.put(key, seq, &op) {
                        let _ = waiter.send(Err(e.into()));
                        return;
                    }
                }
                match self.conn.submit(now, op.clone()) {
                    Ok(id) => {
                        self.next_key += 1;
                        self.pending.insert(
                            id,
                            Pending {
                                key,
                                seq,
                                op,
                                waiter: Some(waiter),
                            },
                        );
                    }
                    Err(_) => {
                        if let Some(o) = &self.outbox {
                            let _ = o.remove(key);
                        }
                        let _ = waiter.send(Err(ClientError::QueueFull));
                    }
                }
            }
            Command::WaitDelivered(seq, w) => {
                if seq <= self.delivered_up_to {
                    let _ = w.send(());
                } else {
                    self.delivery_waiters.entry(seq).or_default().push(w);
                }
            }
            Command::Summary(w) => {
                if self.summary_waiters.is_empty() {
                    self.summaries.clear();
                    self.conn.request_summary(0, 64);
                }
                self.summary_waiters.push(w);
            }
            Command::Pull => self.conn.start_pull(now),
            Command::Release(seq) => {
                self.release_wanted = self.release_wanted.max(seq.min(self.handed));
                self.conn.release(now, seq);
                self.save_checkpoint();
            }
            Command::Rebind(w) => {
                let r = self.link.rebind().await;
                if r.is_ok() {
                    // Tell the server the new address now (flushed below), not
                    // at the next heartbeat: until then it pushes to the old one.
                    self.conn.ping(now);
                }
                let _ = w.send(r);
            }
            Command::Close(w) => {
                // What the application took counts: the ACK goes out
                // ahead of the LOGOUT.
                self.release_taken(now, true);
                self.conn.logout();
                self.close_waiter = Some(w);
                self.flush(now).await;
                self.stop = true;
            }
        }
    }

    /// Automatic release: entries count as processed once `recv` returned
    /// them, not when they were queued, so entries the application never read
    /// are delivered again (after a restart with the same state dir, or to a
    /// new session). With a state folder, entries taken are saved in
    /// batches (one synced write per [`RELEASE_DELAY`] or [`RELEASE_BATCH`]
    /// entries, or at once with `at_once`), always before the ACK that
    /// releases them on the server.
    fn release_taken(&mut self, now: Time, at_once: bool) {
        if self.manual_release {
            return;
        }
        let taken = self.events.taken();
        if taken <= self.release_wanted {
            self.release_due = None;
            return;
        }
        if self.outbox.is_some() && !at_once {
            let due = *self.release_due.get_or_insert(now + RELEASE_DELAY);
            if now < due && taken - self.release_wanted < RELEASE_BATCH {
                return;
            }
        }
        self.release_due = None;
        self.release_wanted = taken;
        self.save_checkpoint();
        self.conn.release(now, taken);
    }

    /// Applies a release the session could not take yet (its entries are
    /// being received again after a re-login).
    fn reapply_release(&mut self, now: Time) {
        let before = self.conn.checkpoint().1;
        if self.release_wanted > before {
            self.conn.release(now, self.release_wanted);
            if self.conn.checkpoint().1 != before {
                self.save_checkpoint();
            }
        }
    }

    fn save_checkpoint(&mut self) {
        if let Some(o) = &self.outbox {
            let (epoch, mut seq) = self.conn.checkpoint();
            if epoch == self.epoch {
                // What the application released counts even if the session
                // has not received it again since a re-login.
                seq = seq.max(self.release_wanted);
            }
            if (epoch, seq) == self.saved {
                return;
            }
            match o.set_checkpoint(epoch, seq) {
                Ok(()) => self.saved = (epoch, seq),
                Err(e) => tracing::error!(error = %e, "cannot save the checkpoint"),
            }
        }
    }

    fn settle(&mut self, op: OpId, result: Result<Sent, ClientError>) {
        if let Some(p) = self.pending.remove(&op) {
            if let Some(o) = &self.outbox {
                if let Err(e) = o.remove(p.key) {
                    tracing::error!(error = %e, "cannot update the outbox");
                }
            }
            if let Some(w) = p.waiter {
                let _ = w.send(result);
            }
        }
    }

    /// An operation got its sequence (at the first login) or a new one (the
    /// server lost operations). It is stored with it before it is sent: a
    /// restart then replays it under that sequence, and the server
    /// recognises it if it had stored it already.
    fn sequenced(&mut self, op: OpId, seq: u64) {
        let Some(p) = self.pending.get_mut(&op) else {
            return;
        };
        if let Some(o) = &self.outbox {
            if let Err(e) = o.put(p.key, seq, &p.op) {
                tracing::error!(error = %e, "cannot update the outbox");
                return;
            }
        }
        p.seq = seq;
    }

    /// True when every pending operation the core has numbered is stored
    /// under that number (checked before each transmission in debug builds).
    fn sequences_stored(&self) -> bool {
        let Some(s) = self.conn.uplink() else {
            return true; // nothing numbered yet
        };
        self.outbox.is_none()
            || self
                .pending
                .iter()
                .all(|(op, p)| s.get(p.seq).is_some_and(|(id, _)| id == op))
    }

    /// Never waits: an application that does not read (a send-only app)
    /// must not stall the session. Unread entries are not acknowledged, so
    /// the server holds back what follows them (see `queue.rs`).
    fn emit(&self, e: Event) {
        self.events.push(e);
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.conn.poll_event() {
            match ev {
                ClientEvent::LoggedIn {
                    user,
                    device,
                    head,
                    checkpoint,
                    pull_mode,
                    ..
                } => {
                    self.device = device;
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Ok((user, device)));
                    }
                    self.emit(Event::Connected {
                        user,
                        device,
                        head,
                        checkpoint,
                        pull_mode,
                    });
                }
                ClientEvent::Resync { epoch, checkpoint } => {
                    if epoch != self.epoch {
                        // A new inbox: nothing handed from it yet.
                        self.epoch = epoch;
                        self.handed = checkpoint;
                        self.release_wanted = checkpoint;
                        self.events.new_epoch(checkpoint);
                    }
                    self.save_checkpoint()
                }
                ClientEvent::Disconnected => self.emit(Event::Disconnected),
                ClientEvent::LoginRefused { code } => {
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Err(ClientError::LoginRefused(code)));
                    }
                    self.stop = true;
                }
                ClientEvent::Sequenced { op, seq } => self.sequenced(op, seq),
                ClientEvent::Resequenced { op, new, .. } => self.sequenced(op, new),
                ClientEvent::Stored {
                    op,
                    seq,
                    receiver_online,
                } => self.settle(
                    op,
                    Ok(Sent {
                        seq,
                        receiver_online,
                    }),
                ),
                ClientEvent::Rejected { op, code, .. } => {
                    self.settle(op, Err(ClientError::Rejected(code)))
                }
                ClientEvent::SendFailed { seq } => {
                    tracing::debug!(
                        seq,
                        "uplink retry budget exhausted; reconnecting and replaying"
                    )
                }
                ClientEvent::Entry(d) if d.seq <= self.handed => {
                    // Already handed over before a re-login.
                }
                ClientEvent::Entry(d) => {
                    self.handed = d.seq;
                    if let EntryBody::Receipt {
                        status: ReceiptStatus::Delivered | ReceiptStatus::Read,
                        target_device,
                        target_seq,
                    } = &d.body
                    {
                        if *target_device == self.device && *target_seq > self.delivered_up_to {
                            self.delivered_up_to = *target_seq;
                            let rest = self.delivery_waiters.split_off(&(target_seq + 1));
                            for w in std::mem::replace(&mut self.delivery_waiters, rest)
                                .into_values()
                                .flatten()
                            {
                                let _ = w.send(());
                            }
                        }
                    }
                    self.emit(Event::Entry(d));
                }
                ClientEvent::PageEnd(p) => self.emit(Event::PageEnd {
                    last: p.last,
                    end: p.end,
                }),
                ClientEvent::Summary(s) => self.summaries.push(s),
                ClientEvent::SummaryEnd(end) => {
                    if end.next_cursor != 0 {
                        self.conn.request_summary(end.next_cursor, 64);
                    } else {
                        let all = std::mem::take(&mut self.summaries);
                        for w in self.summary_waiters.drain(..) {
                            let _ = w.send((all.clone(), end.clone()));
                        }
                    }
                }
                ClientEvent::Notify { head } => self.emit(Event::Notify { head }),
                ClientEvent::Kicked { code } => {
                    if self.conn.is_closed() {
                        for (_, p) in self.pending.drain() {
                            if let Some(w) = p.waiter {
                                let _ = w.send(Err(ClientError::Closed(code)));
                            }
                        }
                    }
                }
                ClientEvent::ServerError(e) => {
                    tracing::warn!(code = e.code, reason = %e.reason, "server error")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tern_core::client::Outgoing;

    use super::super::outbox::Outbox;
    use crate::client::{Client, ClientOptions, EntryBody, Event};

    /// An operation stored before any login (no sequence yet, e.g. by a
    /// client that crashed before its first login) gets its sequence at the
    /// login and is stored with it before it is sent; in debug builds
    /// `flush` checks that (a send first would leave a window in which a
    /// crash makes the next start send it again as a new operation).
    #[tokio::test]
    async fn operation_without_a_sequence_is_stored_with_it_before_it_is_sent() {
        let data = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.server.data_dir = data.path().to_path_buf();
        let server = crate::server::Server::bind(cfg.clone()).await.unwrap();
        let addr = server.local_addr();
        let seal_key = server.seal_key();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let token = |user, device| {
            hex::decode(crate::server::issue_token(&cfg, user, device, 3600).unwrap()).unwrap()
        };

        let state = tempfile::tempdir().unwrap();
        let early = Outgoing::Send {
            to: 2,
            conv: 1,
            msg_type: 0,
            payload: Bytes::from_static(b"early"),
        };
        Outbox::open(state.path())
            .unwrap()
            .put(1, 0, &early)
            .unwrap();

        let mut bob_opts = ClientOptions::new(addr, token(2, 1));
        bob_opts.seal_key = seal_key;
        let mut bob = Client::connect(bob_opts).await.unwrap();
        let mut opts = ClientOptions::new(addr, token(1, 1));
        opts.seal_key = seal_key;
        opts.state_dir = Some(state.path().to_path_buf());
        let alice = Client::connect(opts).await.unwrap();
        let m = loop {
            match tokio::time::timeout(Duration::from_secs(5), bob.recv()).await {
                Ok(Some(Event::Entry(m))) => break m,
                Ok(Some(_)) => {}
                other => panic!("the early message never came: {other:?}"),
            }
        };
        assert_eq!((m.from_user, m.from_seq), (1, 1));
        assert!(matches!(m.body, EntryBody::Message { ref payload, .. } if payload == "early"));
        // Whether or not its ACK came back before closing, the outbox has
        // it under the sequence the server stored it with...
        alice.close().await;
        let rows = loop {
            match Outbox::open(state.path()) {
                Ok(o) => break o.rows().unwrap(),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        assert!(
            rows.iter().all(|r| r.seq == 1),
            "stored under sequence {:?}",
            rows.iter().map(|r| r.seq).collect::<Vec<_>>()
        );
        // ...so a restart does not send it a second time.
        let mut opts = ClientOptions::new(addr, token(1, 1));
        opts.seal_key = seal_key;
        opts.state_dir = Some(state.path().to_path_buf());
        let alice = Client::connect(opts).await.unwrap();
        while let Ok(e) = tokio::time::timeout(Duration::from_millis(300), bob.recv()).await {
            assert!(
                !matches!(e, Some(Event::Entry(_))),
                "delivered again: {e:?}"
            );
        }
        alice.close().await;
        bob.close().await;
        let _ = stop.send(());
        let _ = daemon.await;
    }
}
