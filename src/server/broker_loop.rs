//! The broker's event loop: one task owns the broker and serves the raw UDP
//! socket and, when enabled, the QUIC connections (through the channel and
//! connection table of [`QuicIo`]) together. Every datagram enters the
//! broker tagged with the transport it arrived on ([`Peer`]), and the
//! broker's output is routed by that tag: raw UDP to the peer's address,
//! QUIC to the connection its key names ([`super::quic::connection_peer`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::broker::{Broker, BrokerEvent, Peer, Transport};
use tern_core::time::Time;
use tern_core::wire::limits::MAX_RECV_DATAGRAM;
use tokio::sync::mpsc;

use super::api::bridge::{Bridge, Live, Request};
use super::metrics::{Metrics, Snapshot};
use super::quic::QuicIo;
use super::storage::{Fault, Health, Verdict};
use super::{udp, ServerError};
use crate::store::{GroupCommitter, RocksStore};
use crate::transport::udp::UdpIo;

/// Datagrams read per wake-up and per transport before the broker's output
/// is flushed.
const READ_BURST: usize = 256;

/// Where the broker's peers are: the UDP socket, and QUIC if enabled.
pub struct Io {
    /// The raw UDP socket.
    pub udp: Arc<UdpIo>,
    /// The QUIC bridge.
    pub quic: Option<QuicIo>,
}

/// Next datagram from any QUIC connection (never, without QUIC).
async fn quic_recv(quic: &mut Option<QuicIo>) -> Option<(Peer, Bytes)> {
    match quic {
        Some(q) => q.rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Io {
    /// Takes what else is already waiting on both transports, without
    /// blocking, so that neither starves the other.
    fn read_bursts(&mut self, buf: &mut [u8], broker: &mut Broker<RocksStore>, now: Time) {
        udp::read_burst(&self.udp, buf, broker, now, READ_BURST);
        if let Some(q) = &mut self.quic {
            for _ in 0..READ_BURST {
                match q.rx.try_recv() {
                    Ok((from, data)) => broker.handle_datagram(now, from, data),
                    Err(_) => break,
                }
            }
        }
    }
}

struct Clock(Instant);

impl Clock {
    fn now(&self) -> Time {
        Time::from_micros(self.0.elapsed().as_micros() as u64)
    }

    fn instant(&self, t: Time) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0 + Duration::from_micros(t.as_micros()))
    }
}

type Done = (u64, Result<(), Fault>);

/// Next request of the server API (never, without it).
async fn api_request(bridge: &mut Option<Bridge>) -> Option<Request> {
    match bridge {
        Some(b) => b.next().await,
        None => std::future::pending().await,
    }
}

/// Hands the committer every batch the broker lets out: up to
/// `max_commits_in_flight`, so the next batch is written while one syncs.
fn start_commit(
    broker: &mut Broker<RocksStore>,
    committer: &GroupCommitter<RocksStore>,
    done: &mpsc::UnboundedSender<Done>,
    live: Option<&Arc<Live>>,
) {
    while let Some(c) = broker.poll_commit() {
        let tx = done.clone();
        let id = c.id;
        let (started, live) = (Instant::now(), live.cloned());
        let submitted = committer.submit_with(
            c.batch,
            Box::new(move |r| {
                if let Some(l) = live {
                    l.latency.record(started.elapsed());
                }
                let _ = tx.send((id, r.map_err(|e| Fault::of(&e))));
            }),
        );
        if submitted.is_err() {
            // The commit thread is gone: report the batch failed so the broker
            // rolls back and nothing staged is ever acknowledged.
            let _ = done.send((id, Err(Fault::committer_stopped())));
        }
    }
}

/// Reports a batch's outcome to the broker. If that rolled the broker back,
/// the batches handed out after the failed one are void: the committer
/// fails them unwritten (its fence) until told to resume, which it is now,
/// before any batch built on the rolled-back state is submitted.
fn committed(
    broker: &mut Broker<RocksStore>,
    committer: &GroupCommitter<RocksStore>,
    now: Time,
    id: u64,
    result: Result<(), String>,
) {
    let failures = broker.stats().commit_failures;
    broker.handle_committed(now, id, result);
    if broker.stats().commit_failures > failures {
        committer.resume();
    }
}

async fn flush(broker: &mut Broker<RocksStore>, io: &Io) {
    while let Some((to, data)) = broker.poll_transmit() {
        match to.transport {
            Transport::Udp => crate::transport::udp::send(&io.udp, to.addr, &data).await,
            Transport::Quic => {
                if let Some(q) = &io.quic {
                    q.peers.send(to.addr, data);
                }
            }
        }
    }
    while let Some(ev) = broker.poll_event() {
        log_event(&ev);
    }
}

fn log_event(ev: &BrokerEvent) {
    match ev {
        BrokerEvent::LoggedIn {
            session,
            user,
            device,
            peer,
        } => {
            let span =
                tracing::info_span!("session", id = %format!("{session:016x}"), user, device);
            span.in_scope(|| tracing::info!(%peer, "logged in"));
        }
        BrokerEvent::Closed {
            session,
            user,
            device,
            reason,
        } => {
            let span =
                tracing::info_span!("session", id = %format!("{session:016x}"), user, device);
            span.in_scope(|| tracing::info!(reason, "closed"));
        }
        BrokerEvent::LoginRefused { peer, code } => tracing::info!(%peer, ?code, "login refused"),
        BrokerEvent::Unreachable { user, device } => {
            tracing::info!(user, device, "device unreachable; entries stay stored")
        }
        BrokerEvent::CommitFailed { error } => {
            tracing::error!(%error, "commit failed; state rolled back")
        }
        BrokerEvent::StoreReadFailed { error } => tracing::error!(%error, "store read failed"),
    }
}

/// Runs the loop until `shutdown`, then drains.
pub async fn serve(
    mut io: Io,
    mut broker: Broker<RocksStore>,
    committer: GroupCommitter<RocksStore>,
    metrics: Metrics,
    mut bridge: Option<Bridge>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let clock = Clock(Instant::now());
    let live = bridge.as_ref().map(|b| b.live().clone());
    let quic_limited = io.quic.as_ref().map(|q| q.handshakes_limited());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut buf = vec![0u8; MAX_RECV_DATAGRAM + 1];
    let mut publish_at = Instant::now();
    let mut health = Health::default();
    tokio::pin!(shutdown);
    // `Some(reason)`: the store failed for good and the daemon stops.
    let failed = loop {
        // Wake at least once a second, so the published counters stay fresh
        // while the daemon is idle.
        let publish_due = tokio::time::Instant::from_std(publish_at + Duration::from_secs(1));
        let wake = broker
            .poll_timeout()
            .map_or(publish_due, |t| clock.instant(t).min(publish_due));
        tokio::select! {
            biased;
            _ = &mut shutdown => break None,
            Some((id, result)) = done_rx.recv() => {
                let verdict = health.on_commit(result.as_ref().map(|_| ()));
                let result = result.map_err(|f| f.text().to_string());
                committed(&mut broker, &committer, clock.now(), id, result);
                if let Verdict::Stop(reason) = verdict {
                    break Some(reason);
                }
            }
            r = io.udp.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let now = clock.now();
                    udp::deliver(&mut broker, now, from, &buf[..n]);
                    io.read_bursts(&mut buf, &mut broker, now);
                }
                // ICMP errors for earlier sends surface here on Linux: not fatal.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(ServerError::Socket(e)),
            },
            Some(req) = api_request(&mut bridge) => {
                if let Some(b) = bridge.as_mut() {
                    b.handle(&mut broker, clock.now(), req);
                }
            }
            Some((from, data)) = quic_recv(&mut io.quic) => {
                let now = clock.now();
                broker.handle_datagram(now, from, data);
                io.read_bursts(&mut buf, &mut broker, now);
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = clock.now();
        broker.handle_timeout(now);
        if let Some(b) = bridge.as_mut() {
            b.tick(&mut broker, now);
        }
        start_commit(&mut broker, &committer, &done_tx, live.as_ref());
        flush(&mut broker, &io).await;
        if publish_at.elapsed() >= Duration::from_secs(1) {
            publish_at = Instant::now();
            if let Some(b) = bridge.as_mut() {
                b.count_retransmits(&broker);
            }
            metrics.publish(snapshot(&broker, &committer, quic_limited.as_deref()));
        }
    };
    if failed.is_none() {
        drain(&clock, &mut broker, &committer, &done_tx, &mut done_rx, &io).await;
    } else {
        // Nothing more can be made durable: send what is owed (ERROR 12
        // for the rolled-back operations) and tell every client to go.
        flush(&mut broker, &io).await;
        broker.shutdown();
        flush(&mut broker, &io).await;
    }
    if let Some(q) = io.quic.take() {
        q.close().await;
    }
    metrics.publish(snapshot(&broker, &committer, quic_limited.as_deref()));
    let stats = committer.shutdown();
    tracing::info!(
        fsyncs = stats.fsyncs,
        batches = stats.batches,
        "ternd stopped"
    );
    match failed {
        Some(reason) => Err(ServerError::Storage(reason)),
        None => Ok(()),
    }
}

/// Commits what is staged, lets the owed ACKs go out, then tells every
/// client to reconnect elsewhere or later.
async fn drain(
    clock: &Clock,
    broker: &mut Broker<RocksStore>,
    committer: &GroupCommitter<RocksStore>,
    done_tx: &mpsc::UnboundedSender<Done>,
    done_rx: &mut mpsc::UnboundedReceiver<Done>,
    io: &Io,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // Checkpoints waiting for company go now: a clean stop loses nothing.
    broker.flush_deferred();
    loop {
        start_commit(broker, committer, done_tx, None);
        if !broker.commit_in_flight() {
            break;
        }
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some((id, r))) => committed(
                broker,
                committer,
                clock.now(),
                id,
                r.map_err(|f| f.text().to_string()),
            ),
            _ => break,
        }
    }
    // ACKs are coalesced for up to a few milliseconds: give them that long.
    let grace = clock.now() + Duration::from_millis(20);
    broker.handle_timeout(grace);
    flush(broker, io).await;
    broker.shutdown();
    flush(broker, io).await;
}

/// The counters the metrics endpoint shows.
fn snapshot(
    broker: &Broker<RocksStore>,
    committer: &GroupCommitter<RocksStore>,
    quic_limited: Option<&AtomicU64>,
) -> Snapshot {
    Snapshot {
        broker: broker.stats().clone(),
        commits: committer.stats(),
        sessions: broker.session_count(),
        quic_handshakes_limited: quic_limited.map_or(0, |c| c.load(Ordering::Relaxed)),
    }
}
