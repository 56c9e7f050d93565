//! The client side of a session as a sans-IO state machine: login, heartbeat,
//! idle detection, the uplink retransmission queue, the downlink reorder
//! window, ACK coalescing, backlog pulling, summary paging, and everything
//! about delivery to the application: what it was handed (never twice, also
//! across re-logins), what it released (in batches), and the checkpoint to
//! persist before the server is told.
//!
//! Call order for a driver, on every wake-up:
//! 1. feed input: [`ClientConn::handle_datagram`], [`ClientConn::handle_timeout`],
//!    [`ClientConn::submit`], [`ClientConn::release`] and the other requests;
//! 2. drain [`ClientConn::poll_event`]; a driver with a durable outbox stores
//!    each `Sequenced` / `Resequenced` operation under its sequence here,
//!    before it is sent;
//! 3. with [`ClientConfig::persist`]: save [`ClientConn::poll_persist`]'s
//!    checkpoint and confirm it with [`ClientConn::persisted`];
//! 4. drain [`ClientConn::poll_transmit`], sending each datagram to the server;
//! 5. sleep until [`ClientConn::poll_timeout`] or the next input.
//!
//! The driver may send from a new local address at any time (a network
//! switch): the session is found by its id, not by address.

mod config;
mod conversations;
mod delivery;
mod downlink;
mod events;
mod members;
mod outgoing;
mod receive;
mod summary;
mod transmit;
mod uplink;

pub use config::{ClientConfig, Release, ReleaseBatch};
pub use conversations::{ConvList, Held, HistoryPage, AUTO_FILL, HISTORY_PAGE, LIST_PAGE};
pub use delivery::Checkpoint;
pub use events::{ClientEvent, OpId};
pub use members::MembersPage;
pub use outgoing::Outgoing;
pub use summary::{Summaries, MAX_SUMMARY_CONVS, SUMMARY_PAGE};

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use crate::reliability::{AckCoalescer, InboundGaps, QueueFull, Receiver, Sender, SenderEvent};
use crate::time::Time;
use crate::wire::{ConvRef, Entry, Frame};

use conversations::Conversations;
use delivery::Delivery;
use summary::SummaryPaging;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LoggingIn { next: Time, interval: Duration },
    Active,
    Closed,
}

/// A client's session with a server.
pub struct ClientConn {
    cfg: ClientConfig,
    state: State,
    session_id: u64,
    /// The session left by the last re-login.
    left_session: u64,
    /// A LOGIN of ours that the current session did not answer may still
    /// be in flight and replace it: the session is `left_session` answered
    /// again (that answer may be a late copy, and the LOGIN sent since may
    /// replace the session), or this login echoed more than one RETRY's
    /// cookie (the later echo may arrive after the session opened, and its
    /// cookie, younger than the session, makes it a new login). A KICK
    /// `Replaced` then means log in again, not stop.
    own_login_in_flight: bool,
    next_pn: u64,
    last_heard: Time,
    last_sent: Time,
    heartbeat: Duration,
    idle_timeout: Duration,
    /// Operations submitted before the first login gave us a sequence base.
    waiting: VecDeque<(OpId, Outgoing)>,
    uplink: Option<Sender<(OpId, Outgoing)>>,
    /// The server's datagrams of this session that never arrived: the
    /// uplink's first estimate of the path (`reliability/gaps.rs`).
    inbound: InboundGaps,
    /// Operations marked refused: uplink seq → (error code, id of the
    /// session whose datagram carried the ERROR). A mark settles an
    /// operation only on that session: a server may refuse before the
    /// refusal is durable, crash, and store the operation when it is sent
    /// again to its next incarnation.
    rejected: HashMap<u64, (u64, u64)>,
    downlink: Receiver<Entry>,
    /// Protocol version logged in with: the configured one, or 1 once the
    /// server said it speaks only that.
    version: u8,
    /// The user and device, once logged in (for version 1 no-ops).
    me: (u64, u32),
    /// Conversation list, history pages, held ranges.
    convs: Conversations,
    /// The group queries (members page, read counts) under way.
    members: members::GroupQueries,
    /// Handed, released and saved points; survives sessions.
    delivery: Delivery,
    /// Where this session's downlink started (the server's checkpoint).
    base: u64,
    /// The highest point the server was told (or is about to be told).
    acked: u64,
    /// The checkpoint the current LOGIN reports.
    login_point: Checkpoint,
    acks: AckCoalescer,
    control: VecDeque<Frame>,
    /// An outstanding pull: (request id, after, sent at).
    pull: Option<(u64, u64, Time)>,
    pulling: bool,
    /// The next PULL waits until everything handed up is released and
    /// saved: a PULL acknowledges up to its `after`, so sent earlier it
    /// would fetch the same page again.
    pull_held: bool,
    summaries: SummaryPaging,
    next_request: u64,
    next_op: u64,
    heartbeat_nonce: u64,
    events: VecDeque<ClientEvent>,
    seed: u64,
    /// What the next LOGIN echoes in its COOKIE frame: the cookie of the
    /// server's last RETRY, or the address token it gave us last.
    cookie: Option<Bytes>,
    /// A version 2 packet came from the server: it speaks version 2, and no
    /// ERROR `UnsupportedVersion` (a corrupted or forged one) makes this
    /// connection fall back to version 1.
    heard_v2: bool,
    /// ERROR `UnsupportedVersion` answers in a row while logging in with
    /// version 2: the second one makes the connection fall back.
    version_errors: u8,
    /// The next extra copy of the last login datagram: (when, datagram,
    /// copies still to send).
    login_echo: Option<(Time, Bytes, u8)>,
    /// RETRYs arriving before this are the answers to the other copies of
    /// the LOGIN a RETRY already answered: ignored (an answer to the LOGIN
    /// that echoes the cookie cannot come sooner than one round trip).
    retry_guard: Option<Time>,
    /// When the current login attempt's LOGINs were sent: (last, count).
    login_sent: Option<(Time, u32)>,
    /// RETRY cookies this login has echoed.
    retries_echoed: u32,
    /// Handshake randomness (sealed sessions).
    entropy: crate::seal::Entropy,
    /// The handshake of the current sealed login attempt and its message 1,
    /// resent unchanged until answered.
    initiator: Option<(crate::seal::Initiator, Bytes)>,
    /// Keys of the current sealed session.
    channel: Option<crate::seal::Channel>,
    stats: SealStats,
}

/// What a sealed client dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealStats {
    /// Sealed packets that failed authentication (tampered, truncated, forged).
    pub rejected: u64,
    /// Authentic sealed packets received again.
    pub replayed: u64,
    /// Clear packets a sealed session does not accept.
    pub clear_dropped: u64,
    /// Handshake answers that did not verify.
    pub handshake_failed: u64,
}

impl ClientConn {
    /// A connection that starts logging in at `now`.
    pub fn new(mut cfg: ClientConfig, now: Time, seed: u64) -> Self {
        let start = Checkpoint {
            epoch: cfg.epoch,
            seq: cfg.checkpoint,
        };
        let resume = std::mem::take(&mut cfg.resume);
        let address_token = cfg.address_token.take();
        let mut conn = ClientConn {
            state: State::LoggingIn {
                next: now,
                interval: cfg.login_initial,
            },
            session_id: 0,
            next_pn: 1,
            last_heard: now,
            last_sent: now,
            heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            waiting: VecDeque::new(),
            uplink: None,
            inbound: InboundGaps::default(),
            rejected: HashMap::new(),
            downlink: Receiver::new(cfg.downlink.clone(), cfg.checkpoint),
            version: cfg.version,
            me: (0, 0),
            convs: Conversations::restore(std::mem::take(&mut cfg.held)),
            members: Default::default(),
            delivery: Delivery::new(cfg.release, cfg.persist, start),
            base: cfg.checkpoint,
            acked: cfg.checkpoint,
            login_point: start,
            acks: AckCoalescer::new(&cfg.downlink),
            control: VecDeque::new(),
            pull: None,
            pulling: false,
            pull_held: false,
            summaries: SummaryPaging::default(),
            next_request: 1,
            next_op: 1,
            heartbeat_nonce: 0,
            events: VecDeque::new(),
            seed,
            // A token from the last run proves our address at once.
            cookie: address_token,
            heard_v2: false,
            login_echo: None,
            left_session: 0,
            own_login_in_flight: false,
            retry_guard: None,
            version_errors: 0,
            login_sent: None,
            retries_echoed: 0,
            entropy: match cfg.entropy {
                Some(e) => crate::seal::Entropy::from_seed(e),
                None => crate::seal::Entropy::from_test_seed(seed),
            },
            initiator: None,
            channel: None,
            stats: SealStats::default(),
            cfg,
        };
        conn.resume(now, resume);
        conn
    }

    /// Whether this connection seals its sessions.
    pub fn is_sealed(&self) -> bool {
        self.cfg.server_key.is_some()
    }

    /// Packets a sealed connection dropped.
    pub fn seal_stats(&self) -> SealStats {
        self.stats
    }

    /// True once logged in and until the session is lost.
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    /// True after a terminal KICK, LOGOUT or login refusal.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The inbox epoch and the highest entry the application released
    /// (applied). With [`ClientConfig::persist`], what is durable is what
    /// the driver last saved from [`ClientConn::poll_persist`].
    pub fn checkpoint(&self) -> Checkpoint {
        self.delivery.released()
    }

    /// Uplink operations not yet stored by the server.
    pub fn pending(&self) -> usize {
        self.waiting.len() + self.uplink.as_ref().map_or(0, |s| s.len())
    }

    /// The uplink sequence the next submitted operation gets at once (0: it
    /// waits for the first login, which reports it as `Sequenced`). A driver
    /// with a durable outbox stores the operation under it before submitting.
    pub fn next_seq(&self) -> u64 {
        self.uplink.as_ref().map_or(0, |s| s.next_seq())
    }

    /// Uplink counters and RTT, once logged in.
    pub fn uplink(&self) -> Option<&Sender<(OpId, Outgoing)>> {
        self.uplink.as_ref()
    }

    /// Downlink counters.
    pub fn downlink(&self) -> &Receiver<Entry> {
        &self.downlink
    }

    /// The protocol version logged in with (1 after a downgrade).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// What this device holds of `conv`'s storage timeline.
    pub fn held(&self, conv: &ConvRef) -> Option<&Held> {
        self.convs.held(conv)
    }

    /// Every conversation this device holds something of.
    pub fn all_held(&self) -> impl Iterator<Item = (&ConvRef, &Held)> {
        self.convs.all_held()
    }

    /// Asks for the conversations changed since list version `since`, every
    /// page; the answer comes as one [`ClientEvent::ConvList`]. A fetch
    /// under way answers this request too. False in a version 1 session.
    pub fn request_list(&mut self, now: Time, since: u64, preview_len: u8) -> bool {
        if self.version == crate::wire::VERSION {
            return false;
        }
        let id = self.request_id();
        if let Some(req) = self.convs.start_list(now, id, since, preview_len) {
            self.control.push_back(Frame::List(req));
        }
        true
    }

    /// Asks for the newest `max` records of `conv` below `before` (0: the
    /// newest), answered as a [`ClientEvent::History`]. False in a version
    /// 1 session, or while a page of `conv` is under way.
    pub fn request_history(&mut self, now: Time, conv: ConvRef, before: u64, max: u64) -> bool {
        if self.version == crate::wire::VERSION {
            return false;
        }
        let id = self.request_id();
        match self.convs.start_history(now, id, conv, before, max, false) {
            Some(req) => {
                self.control.push_back(Frame::History(req));
                true
            }
            None => false,
        }
    }

    /// Queues an uplink operation. It is sent once logged in and retried
    /// until the server stores it, across re-logins.
    pub fn submit(&mut self, now: Time, op: Outgoing) -> Result<OpId, QueueFull> {
        let id = OpId(self.next_op);
        match &mut self.uplink {
            Some(s) => {
                s.push(now, (id, op))?;
            }
            None => {
                if self.waiting.len() >= self.cfg.uplink.capacity {
                    return Err(QueueFull {
                        capacity: self.cfg.uplink.capacity,
                    });
                }
                self.waiting.push_back((id, op));
            }
        }
        self.next_op += 1;
        Ok(id)
    }

    /// Asks for the conversation counters past the checkpoint, every page
    /// of them; the answer comes as one [`ClientEvent::Summaries`]. While
    /// one is under way, its answer serves this request too.
    pub fn request_summary(&mut self, now: Time) {
        if self.summaries.start() {
            self.ask_summary_page(now, 0);
        }
    }

    fn ask_summary_page(&mut self, now: Time, cursor: u64) {
        let id = self.request_id();
        let req = self.summaries.ask(now, id, cursor);
        self.control.push_back(Frame::SummaryRequest(req));
    }

    /// Starts pulling the backlog page by page (done automatically when
    /// `auto_pull` is set and the server asks for it).
    ///
    /// A PULL is held until every entry handed up so far is released (and,
    /// with [`ClientConfig::persist`], saved).
    pub fn start_pull(&mut self, now: Time) {
        self.pulling = true;
        self.pull_next(now);
    }

    /// The application processed the entries up to `seq` (with
    /// [`Release::ByApplication`]; bounded by what it was handed). Applied
    /// at once or in a batch (see [`ReleaseBatch`]); then saved (see
    /// [`ClientConn::poll_persist`]) and acknowledged.
    pub fn release(&mut self, now: Time, seq: u64) {
        self.delivery.release(now, seq);
        self.on_progress(now);
    }

    /// Applies a batched release at once (before closing).
    pub fn flush_release(&mut self, now: Time) {
        self.delivery.flush();
        self.on_progress(now);
    }

    /// The checkpoint to save durably (with [`ClientConfig::persist`])
    /// before the server may be told about the entries it covers; `None`
    /// once saved. Save it, then confirm with [`ClientConn::persisted`].
    pub fn poll_persist(&self) -> Option<Checkpoint> {
        self.delivery.poll_persist()
    }

    /// The driver saved `cp` durably: the next ACK may release up to it.
    pub fn persisted(&mut self, now: Time, cp: Checkpoint) {
        self.delivery.persisted(cp);
        self.on_progress(now);
    }

    /// Sends a HEARTBEAT at once, e.g. after the local address changed, so
    /// that the server follows the new address before it has something to
    /// push. While logging in, the LOGIN is resent at once instead.
    pub fn ping(&mut self, now: Time) {
        match self.state {
            State::Active => self.queue_heartbeat(),
            State::LoggingIn { interval, .. } => {
                self.state = State::LoggingIn {
                    next: now,
                    interval,
                }
            }
            State::Closed => {}
        }
    }

    fn queue_heartbeat(&mut self) {
        self.heartbeat_nonce += 1;
        self.control
            .push_back(Frame::Heartbeat(self.heartbeat_nonce));
    }

    /// Ends the session.
    pub fn logout(&mut self) {
        if self.state == State::Active {
            self.control.push_back(Frame::Logout);
        }
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    fn relogin(&mut self, now: Time) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::LoggingIn {
            next: now,
            interval: self.cfg.login_initial,
        };
        if self.session_id != 0 {
            self.left_session = self.session_id;
        }
        self.session_id = 0;
        self.login_sent = None;
        self.retries_echoed = 0;
        self.login_echo = None;
        self.retry_guard = None;
        self.initiator = None;
        self.channel = None;
        self.control.clear();
        self.pull = None;
        self.pull_held = false;
        self.events.push_back(ClientEvent::Disconnected);
    }

    /// The retransmission timeout of requests (PULL, SUMMARY_REQUEST).
    fn request_rto(&self) -> Duration {
        self.uplink
            .as_ref()
            .map_or(self.cfg.login_initial, |s| s.rtt().rto())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.delivery.handle_timeout(now);
        self.on_progress(now);
        if self.state != State::Active {
            return;
        }
        if now.saturating_since(self.last_heard) >= self.idle_timeout {
            self.relogin(now);
            return;
        }
        if let Some(s) = &mut self.uplink {
            s.handle_timeout(now);
            while let Some(ev) = s.poll_event() {
                if let SenderEvent::Failed { seq, .. } = ev {
                    self.events.push_back(ClientEvent::SendFailed { seq });
                    // The path looks dead: start over with a new login.
                    self.relogin(now);
                    return;
                }
            }
        }
        let rto = self.request_rto();
        if let Some((_, _, at)) = self.pull {
            if now.saturating_since(at) >= rto * 2 {
                self.send_pull(now);
            }
        }
        if let Some(cursor) = self.summaries.resend_cursor(now, Some(rto)) {
            self.ask_summary_page(now, cursor);
        }
        self.resend_conv_requests(now, Some(rto));
        self.resend_group_queries(now, Some(rto));
        if now.saturating_since(self.last_sent) >= self.heartbeat {
            self.queue_heartbeat();
        }
    }

    /// When [`ClientConn::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let release = self.delivery.poll_timeout();
        let session = match self.state {
            State::Closed => None,
            State::LoggingIn { next, .. } => Some(
                self.login_echo
                    .as_ref()
                    .map_or(next, |(at, ..)| next.min(*at)),
            ),
            State::Active => {
                let rto = self.request_rto();
                [
                    self.uplink.as_ref().and_then(|s| s.poll_timeout()),
                    self.acks.poll_timeout(),
                    self.pull.map(|(_, _, at)| at + rto * 2),
                    self.summaries.deadline(rto),
                    self.convs.deadline(rto),
                    self.members.deadline(rto),
                ]
                .into_iter()
                .flatten()
                .fold(
                    (self.last_heard + self.idle_timeout).min(self.last_sent + self.heartbeat),
                    Time::min,
                )
                .into()
            }
        };
        match (session, release) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends conversation requests again: overdue ones, or all after a
    /// re-login (`rto` None).
    fn resend_conv_requests(&mut self, now: Time, rto: Option<Duration>) {
        let mut next = self.next_request;
        let frames = self.convs.resend(now, rto, || {
            next += 1;
            next - 1
        });
        self.next_request = next;
        self.control.extend(frames);
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}
