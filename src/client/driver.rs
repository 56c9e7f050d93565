//! The background task of a [`Client`](super::Client): moves datagrams,
//! timers and commands in and out of the core's `ClientConn`, over the
//! transport the options chose (`transport/`). Delivery state (what was
//! handed, released and must be saved) lives in the core; this task stores
//! what the core asks to be stored (`ops.rs`) and queues events for the
//! application (`queue.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent, Release};
use tern_core::time::Time;
use tern_core::wire::{Entry, ErrorCode, ReceiptStatus, Summary, SummaryEnd, SyncBody};
use tokio::sync::{mpsc, oneshot};

use super::history_store::HistoryStore;
use super::ops::Ops;
use super::queue::EventQueue;
use super::transport::{Link, Recv};
use super::{ClientError, ClientOptions, Command, Event, Sent};

type Ready = oneshot::Receiver<Result<(u64, u32), ClientError>>;
type SummaryWaiter = oneshot::Sender<(Vec<Summary>, SummaryEnd)>;

pub(super) struct Driver {
    pub(super) conn: ClientConn,
    pub(super) conv_waiters: super::driver_convs::ConvWaiters,
    pub(super) group_waiters: super::driver_groups::GroupWaiters,
    /// The local history: records, held ranges, the list.
    pub(super) history: HistoryStore,
    link: Link,
    start: Instant,
    ops: Ops,
    /// Events for the application; queueing never waits.
    events: Arc<EventQueue>,
    ready: Option<oneshot::Sender<Result<(u64, u32), ClientError>>>,
    pub(super) device: u32,
    delivered_up_to: u64,
    delivery_waiters: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    summary_waiters: Vec<SummaryWaiter>,
    manual_release: bool,
    /// Checkpoint last saved durably, and who waits for it to pass a point.
    saved_up_to: u64,
    release_waiters: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    stop: bool,
    close_waiter: Option<oneshot::Sender<()>>,
}

/// The core's settings for these options: the application releases entries
/// (by calling `release`, or by taking them with `recv`), and with a state
/// folder the checkpoint is persisted, entries taken being released in
/// batches (one synced write per batch).
fn core_config(opts: &ClientOptions, durable: bool) -> ClientConfig {
    let mut cfg = ClientConfig::new(Bytes::from(opts.token.clone()));
    cfg.auto_pull = opts.auto_pull;
    cfg.version = opts.version;
    cfg.persist = durable;
    cfg.release = Release::library(durable, opts.manual_release);
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
    cfg
}

/// Starts the task; the returned receiver resolves at the first login.
pub(super) async fn spawn(
    opts: ClientOptions,
) -> Result<(mpsc::Sender<Command>, Arc<EventQueue>, Ready), ClientError> {
    let restored = Ops::restore(opts.state_dir.as_deref())?;
    let history = match restored.ops.state_db() {
        Some(db) => HistoryStore::in_db(db)?,
        None => HistoryStore::memory(),
    };
    let link = Link::open(&opts).await?;
    let mut cfg = core_config(&opts, restored.ops.is_durable());
    cfg.max_datagram = link.max_packet();
    cfg.epoch = restored.checkpoint.epoch;
    cfg.checkpoint = restored.checkpoint.seq;
    cfg.resume = restored.resume;
    cfg.address_token = restored.address_token;
    // Gaps are found against what the state folder holds.
    cfg.held = history.all_held();
    let start = Instant::now();
    let conn = ClientConn::new(cfg, Time::ZERO, rand::random());
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let events = Arc::new(EventQueue::new(restored.checkpoint.seq));
    let (ready_tx, ready_rx) = oneshot::channel();
    let driver = Driver {
        conn,
        conv_waiters: Default::default(),
        group_waiters: Default::default(),
        history,
        link,
        start,
        ops: restored.ops,
        events: events.clone(),
        ready: Some(ready_tx),
        device: 0,
        delivered_up_to: 0,
        delivery_waiters: BTreeMap::new(),
        summary_waiters: Vec::new(),
        manual_release: opts.manual_release,
        saved_up_to: restored.checkpoint.seq,
        release_waiters: BTreeMap::new(),
        stop: false,
        close_waiter: None,
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
            let wake = self.conn.poll_timeout().map(|t| {
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
            self.settle_releases(now, false);
            self.flush(now).await;
            if self.conn.is_closed() {
                self.flush(now).await;
                break;
            }
        }
        // Whatever the application took counts, even when it just dropped
        // the client.
        let now = self.now();
        self.settle_releases(now, true);
        self.flush(now).await;
        self.link.close().await;
        self.events.close();
        self.ops.fail_all(|| ClientError::Stopped);
        // `close` returns only once the state folder's store is closed (the
        // driver holds its only handles), so that the application may open
        // the same folder again at once.
        let waiter = self.close_waiter.take();
        drop(self);
        if let Some(w) = waiter {
            let _ = w.send(());
        }
    }

    /// Events first: operations numbered at a login are stored with their
    /// sequence (`Sequenced`) before they are sent, so a crash in between
    /// cannot make a restart send them again as new ones. Then the
    /// application's releases, and the checkpoint saved before the ACK that
    /// releases it on the server can go out (the core holds that ACK until
    /// `persisted`).
    fn settle_releases(&mut self, now: Time, at_once: bool) {
        self.drain_events();
        if !self.manual_release {
            // Automatic release: entries count as processed once `recv`
            // returned them, not when they were queued, so entries the
            // application never read are delivered again (after a restart
            // with the same state folder, or to a new session).
            self.conn.release(now, self.events.taken());
        }
        if at_once {
            self.conn.flush_release(now);
        }
        if let Some(cp) = self.conn.poll_persist() {
            match self.ops.save_checkpoint(cp) {
                Ok(()) => {
                    self.conn.persisted(now, cp);
                    self.saved_up_to = cp.seq;
                    let rest = self.release_waiters.split_off(&(cp.seq + 1));
                    for w in std::mem::replace(&mut self.release_waiters, rest)
                        .into_values()
                        .flatten()
                    {
                        let _ = w.send(());
                    }
                }
                // Not acknowledged either; tried again at the next wake-up.
                Err(e) => tracing::error!(error = %e, "cannot save the checkpoint"),
            }
        }
    }

    async fn flush(&mut self, now: Time) {
        debug_assert!(
            self.ops.sequences_stored(&self.conn),
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
            Command::Submit(op, waiter) => self.ops.submit(&mut self.conn, now, op, waiter),
            Command::WaitDelivered(seq, w) => {
                if seq <= self.delivered_up_to {
                    let _ = w.send(());
                } else {
                    self.delivery_waiters.entry(seq).or_default().push(w);
                }
            }
            Command::Summary(w) => {
                self.summary_waiters.push(w);
                self.conn.request_summary(now);
            }
            Command::Pull => self.conn.start_pull(now),
            Command::Release(seq) => self.conn.release(now, seq),
            Command::ReleaseDurable(seq, w) => {
                self.conn.release(now, seq);
                if !self.ops.is_durable() || seq <= self.saved_up_to {
                    let _ = w.send(());
                } else {
                    self.release_waiters.entry(seq).or_default().push(w);
                }
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
            Command::SubmitKeyed(op, tag, reply) => {
                self.ops.submit_keyed(&mut self.conn, now, op, tag, reply)
            }
            Command::KeyedRecords(w) => {
                let _ = w.send(self.ops.keyed_records());
            }
            Command::KeyedOutcomes(w) => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.ops.keyed_tx = Some(tx);
                let _ = w.send(rx);
            }
            Command::ForgetKeyed(ids, w) => {
                let _ = w.send(self.ops.forget_keyed(&ids));
            }
            Command::List(since, preview, w) => self.ask_list(now, since, preview, w),
            Command::History(conv, before, max, w) => self.ask_history(now, conv, before, max, w),
            Command::GroupCreated(seq, w) => self.ask_created(seq, w),
            Command::Members(group, after, max, read_at, w) => {
                self.ask_members(now, (group, after, max, read_at), w)
            }
            Command::ReadCounts(group, low, count, w) => {
                self.ask_read_counts(now, group, low, count, w)
            }
            Command::Held(conv, w) => {
                let _ = w.send(self.held_view(conv));
            }
            Command::LocalList(w) => {
                let _ = w.send((self.history.list(), self.history.list_version()));
            }
            Command::HistoryStats(w) => {
                let _ = w.send(self.conv_waiters.stats);
            }
            Command::Close(w) => {
                // What the application took counts: the ACK goes out
                // ahead of the LOGOUT.
                self.settle_releases(now, true);
                self.conn.logout();
                self.close_waiter = Some(w);
                self.flush(now).await;
                self.stop = true;
            }
        }
    }

    /// What this device holds of `conv`: the records its local history
    /// stores, with the newest record and floor anything told it of.
    fn held_view(&self, conv: tern_core::wire::ConvRef) -> Option<tern_core::client::Held> {
        let mut h = self.history.held(&conv).cloned();
        if let Some(c) = self.conn.held(&conv) {
            let h = h.get_or_insert_with(Default::default);
            h.last_seq = h.last_seq.max(c.last_seq);
            h.floor = h.floor.max(c.floor);
            h.ranges.remove_through(h.floor);
        }
        h
    }

    /// A DELIVERED or READ receipt for a message of this device resolves
    /// `wait_delivered` up to it.
    fn on_receipt(&mut self, d: &Entry) {
        let SyncBody::Receipt {
            status: ReceiptStatus::Delivered | ReceiptStatus::Read,
            target_device,
            target_seq,
        } = &d.body
        else {
            return;
        };
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
                    self.created_after_login();
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
                ClientEvent::Resync {
                    checkpoint,
                    new_epoch,
                    ..
                } => {
                    if new_epoch {
                        // Entries still queued belong to the old inbox.
                        self.events.new_epoch(checkpoint);
                    }
                }
                ClientEvent::Disconnected => self.emit(Event::Disconnected),
                ClientEvent::LoginRefused { code } => {
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Err(ClientError::LoginRefused(code)));
                    }
                    self.stop = true;
                }
                ClientEvent::Sequenced { op, seq } => self.ops.sequenced(op, seq),
                ClientEvent::Resequenced { op, new, .. } => self.ops.sequenced(op, new),
                ClientEvent::Stored {
                    op,
                    seq,
                    receiver_online,
                } => self.ops.settle(
                    op,
                    Ok(Sent {
                        seq,
                        receiver_online,
                    }),
                ),
                ClientEvent::Rejected { op, code, .. } => {
                    self.ops.settle(op, Err(ClientError::Rejected(code)))
                }
                ClientEvent::SendFailed { seq } => {
                    tracing::debug!(
                        seq,
                        "uplink retry budget exhausted; reconnecting and replaying"
                    )
                }
                ClientEvent::Entry(d) => {
                    self.on_receipt(&d);
                    // Stored before the application is told; a failure
                    // stores nothing and claims nothing held.
                    if let Err(e) = self.history.apply_entry(&d) {
                        tracing::error!(error = %e, "cannot store an entry in the local history");
                    }
                    self.on_group_entry(&d);
                    self.emit(Event::Entry(d));
                }
                ClientEvent::PageEnd(p) => self.emit(Event::PageEnd {
                    last: p.last,
                    end: p.end,
                }),
                ClientEvent::Summaries(s) => {
                    for w in self.summary_waiters.drain(..) {
                        let _ = w.send((s.convs.clone(), s.end.clone()));
                    }
                }
                ClientEvent::Notify { head } => self.emit(Event::Notify { head }),
                ClientEvent::Kicked { code } => {
                    if self.conn.is_closed() {
                        self.ops.fail_all(|| ClientError::Closed(code));
                    }
                }
                ClientEvent::ServerError(e) if e.code == ErrorCode::StorageFailure as u64 => {
                    tracing::warn!(reason = %e.reason, "server storage unavailable, retrying");
                    self.emit(Event::StorageUnavailable { reason: e.reason });
                }
                ClientEvent::ServerError(e) => {
                    tracing::warn!(code = e.code, reason = %e.reason, "server error");
                    self.on_request_refused(self.now(), &e);
                    self.on_group_request_refused(&e);
                }
                ClientEvent::ConvList(list) => self.on_list(self.now(), list),
                ClientEvent::History(page) => self.on_history(self.now(), page),
                ClientEvent::Members(page) => self.on_members(page),
                ClientEvent::ReadCounts(c) => self.on_read_counts(c),
                ClientEvent::AddressToken(token) => self.ops.save_address_token(&token),
                ClientEvent::Downgraded => {
                    tracing::info!("the server speaks only protocol version 1");
                    self.on_downgraded();
                    self.emit(Event::Downgraded);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
