//! The broker: the server's whole protocol logic as a sans-IO state machine.
//!
//! It turns datagrams into storage writes and deliveries. A driver feeds it
//! datagrams and timeouts, commits the write batches it hands out (one fsync
//! each: group commit), reports back when they are durable, and sends the
//! datagrams it produces. Nothing is acknowledged before it is durable.
//!
//! Call order for a driver, on every wake-up:
//! 1. [`Broker::handle_datagram`] for each datagram received, then
//!    [`Broker::handle_timeout`];
//! 2. if [`Broker::poll_commit`] yields a batch, commit it (off the hot path)
//!    and later call [`Broker::handle_committed`] with the outcome;
//! 3. drain [`Broker::poll_transmit`] and [`Broker::poll_event`];
//! 4. sleep until [`Broker::poll_timeout`] or the next datagram or commit.

mod admission;
mod config;
mod handlers;
mod session;
mod summary;
mod users;

pub use config::{is_quic_peer, BrokerConfig, SealPolicy, QUIC_PEER_PREFIX};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::auth::TokenKeys;
use crate::store::{DeviceState, Store, StoredEntry, WriteBatch, WriteOp};
use crate::time::Time;
use crate::wire::{ErrorCode, ErrorFrame, Frame, Header, Packet, PacketBuilder};
use session::{Downlink, Session};
use users::UserCache;

/// Counters, exported by the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams produced.
    pub datagrams_out: u64,
    /// Datagrams that failed to decode.
    pub malformed: u64,
    /// Packets naming a session that does not exist.
    pub unknown_session: u64,
    /// Logins refused (bad or expired token, limits).
    pub login_refused: u64,
    /// Sessions opened.
    pub logins: u64,
    /// Sessions replaced by a new login of the same device.
    pub replaced: u64,
    /// Sessions dropped for silence.
    pub idle_closed: u64,
    /// Address changes followed.
    pub migrations: u64,
    /// Messages stored.
    pub stored: u64,
    /// Uplink operations refused with an error.
    pub rejected: u64,
    /// Uplink duplicates (retransmits of processed operations).
    pub uplink_duplicates: u64,
    /// Batches committed.
    pub commits: u64,
    /// Batches that failed to commit.
    pub commit_failures: u64,
    /// Downlink flows whose retry budget ran out (device unreachable).
    pub unreachable: u64,
    /// Entries sent in pull pages.
    pub pulled: u64,
    /// Datagrams dropped by a rate limit (per source before login, per session after).
    pub rate_limited: u64,
    /// RETRY cookies sent to unproven addresses.
    pub retries_sent: u64,
    /// LOGINs carrying a missing, forged or expired cookie.
    pub bad_cookies: u64,
    /// Handshakes that did not decrypt (wrong server key, tampered) or whose
    /// payload was malformed.
    pub handshake_failed: u64,
    /// Handshakes older than the device's live sealed session (replayed).
    pub handshake_replayed: u64,
    /// Clear LOGINs refused because raw-UDP sessions must be sealed.
    pub seal_required: u64,
    /// Sealed packets whose tag did not verify: tampered, truncated or forged.
    pub sealed_rejected: u64,
    /// Authentic sealed packets received again (replays or network copies).
    pub sealed_replayed: u64,
    /// Clear packets naming a sealed session, or sealed ones naming a clear
    /// session: forged, dropped.
    pub seal_mismatch: u64,
    /// Stateless ERROR answers not sent because the global budget
    /// (`stateless_reply_rate`) was spent: a flood is not reflected.
    pub replies_suppressed: u64,
}

/// Notable things for the driver to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A device logged in.
    LoggedIn {
        /// Session id.
        session: u64,
        /// User.
        user: u64,
        /// Device.
        device: u32,
        /// Its address.
        addr: SocketAddr,
    },
    /// A session ended.
    Closed {
        /// Session id.
        session: u64,
        /// User.
        user: u64,
        /// Device.
        device: u32,
        /// Why, as a KICK reason code.
        reason: u64,
    },
    /// A login was refused.
    LoginRefused {
        /// Source address.
        addr: SocketAddr,
        /// Error code sent.
        code: ErrorCode,
    },
    /// A device stopped answering; its entries stay stored.
    Unreachable {
        /// User.
        user: u64,
        /// Device.
        device: u32,
    },
    /// A batch failed to commit; staged state was rolled back.
    CommitFailed {
        /// The error text.
        error: String,
    },
    /// A store read failed while serving a request.
    StoreReadFailed {
        /// The error text.
        error: String,
    },
}

/// A write batch handed to the driver, to commit durably.
#[derive(Debug)]
pub struct Commit {
    /// Pass back to [`Broker::handle_committed`].
    pub id: u64,
    /// The writes.
    pub batch: WriteBatch,
}

#[derive(Default)]
struct Staged {
    appends: Vec<(u64, StoredEntry)>,
    trims: Vec<(u64, u64)>,
    dirty_users: Vec<u64>,
    dirty_devices: Vec<(u64, u32)>,
}

impl Staged {
    fn is_empty(&self) -> bool {
        self.appends.is_empty()
            && self.trims.is_empty()
            && self.dirty_users.is_empty()
            && self.dirty_devices.is_empty()
    }
}

struct InFlight {
    id: u64,
    appends: Vec<(u64, StoredEntry)>,
    devices: Vec<(u64, u32, DeviceState)>,
}

/// The server's protocol logic. See the module docs for the call order.
pub struct Broker<S: Store> {
    cfg: BrokerConfig,
    store: Arc<S>,
    keys: TokenKeys,
    wall_origin_ms: u64,
    sessions: HashMap<u64, Session>,
    users: HashMap<u64, UserCache>,
    staged: Staged,
    in_flight: Option<InFlight>,
    next_commit: u64,
    transmits: VecDeque<(SocketAddr, Bytes)>,
    timers: BinaryHeap<Reverse<(Time, u64)>>,
    touched: Vec<u64>,
    rng: SmallRng,
    stats: BrokerStats,
    events: VecDeque<BrokerEvent>,
    admission: admission::Admission,
    entropy: crate::seal::Entropy,
    /// Global budget of stateless ERROR answers.
    replies: admission::Bucket,
    /// Time of the datagram being handled (for the reply budget).
    last_now: Time,
}

impl<S: Store> Broker<S> {
    /// A broker over `store`. `wall_origin_ms` is the Unix time in ms at
    /// [`Time::ZERO`] (entry timestamps, token expiry); `seed` drives session
    /// ids, epochs and timer jitter.
    pub fn new(
        cfg: BrokerConfig,
        store: Arc<S>,
        keys: TokenKeys,
        wall_origin_ms: u64,
        seed: u64,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let entropy = crate::seal::Entropy::from_test_seed(seed);
        let cfg_reply_rate = cfg.stateless_reply_rate;
        let admission = admission::Admission::new(
            rng.gen(),
            cfg.prelogin_rate,
            cfg.prelogin_burst,
            cfg.max_sources,
        );
        Broker {
            admission,
            cfg,
            store,
            keys,
            wall_origin_ms,
            sessions: HashMap::new(),
            users: HashMap::new(),
            staged: Staged::default(),
            in_flight: None,
            next_commit: 1,
            transmits: VecDeque::new(),
            timers: BinaryHeap::new(),
            touched: Vec::new(),
            rng,
            stats: BrokerStats::default(),
            events: VecDeque::new(),
            entropy,
            replies: admission::Bucket::full(cfg_reply_rate, Time::ZERO),
            last_now: Time::ZERO,
        }
    }

    /// Replaces the handshake randomness with 32 bytes from the operating
    /// system. Drivers must call this: the default is derived from `seed`,
    /// which is reproducible (for the simulator) and so not secret.
    pub fn set_entropy(&mut self, os_random: [u8; 32]) {
        self.entropy = crate::seal::Entropy::from_seed(os_random);
    }

    /// Counters.
    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether a device of `user` has a live session.
    pub fn is_online(&self, user: u64) -> bool {
        self.users.get(&user).is_some_and(|u| u.online())
    }

    /// Ends every session with a KICK saying the server is going away, so
    /// clients reconnect promptly instead of waiting for their idle timeout.
    pub fn shutdown(&mut self) {
        let sids: Vec<u64> = self.sessions.keys().copied().collect();
        for sid in sids {
            self.close_session(sid, crate::wire::KickReason::Shutdown, true);
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    fn wall_ms(&self, now: Time) -> u64 {
        self.wall_origin_ms + now.as_micros() / 1000
    }

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, data: Bytes) {
        self.stats.datagrams_in += 1;
        self.last_now = now;
        let len = data.len();
        if data.get(1) == Some(&crate::wire::FLAG_SEALED)
            && data.first() == Some(&crate::wire::VERSION)
            && len <= crate::wire::limits::MAX_RECV_DATAGRAM
        {
            self.handle_sealed(now, from, data);
            self.flush_touched(now);
            return;
        }
        // Sessionless packets are rate limited per source before any parsing.
        let sessionless = data.get(2..10).is_some_and(|id| id.iter().all(|b| *b == 0));
        if sessionless && !self.admission.allow(now, from.ip()) {
            self.stats.rate_limited += 1;
            return;
        }
        let packet = match Packet::decode(data) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                let code = match e {
                    crate::wire::DecodeError::UnsupportedVersion(_) => {
                        ErrorCode::UnsupportedVersion
                    }
                    crate::wire::DecodeError::UnknownFrame(_) => ErrorCode::UnknownFrame,
                    _ => ErrorCode::Malformed,
                };
                self.reply_error(from, 0, len, code, 0, &e.to_string());
                return;
            }
        };
        let sid = packet.header.session_id;
        if sid == 0 {
            self.handle_prelogin(now, from, packet, len);
        } else if self.sessions.contains_key(&sid) {
            self.handle_session_packet(now, from, packet);
        } else {
            self.stats.unknown_session += 1;
            self.reply_error(
                from,
                0,
                len,
                ErrorCode::UnknownSession,
                0,
                "unknown session: log in again",
            );
        }
        self.flush_touched(now);
    }

    /// A sealed packet: found by session id, rate limited, then opened. Only
    /// an authentic, fresh packet is acted on; everything else is counted.
    fn handle_sealed(&mut self, now: Time, from: SocketAddr, data: Bytes) {
        let sid = crate::wire::Header::peek(&data).map_or(0, |(_, sid)| sid);
        let Some(s) = self.sessions.get_mut(&sid) else {
            self.stats.unknown_session += 1;
            // Echo the session id: a sealed client only believes an
            // UNKNOWN_SESSION naming its own (secret to off-path attackers).
            self.reply_error(
                from,
                sid,
                data.len(),
                ErrorCode::UnknownSession,
                0,
                "unknown session: log in again",
            );
            return;
        };
        if !s
            .bucket
            .take(now, self.cfg.session_rate, self.cfg.session_burst)
        {
            self.stats.rate_limited += 1;
            return;
        }
        let Some(seal) = s.seal.as_mut() else {
            self.stats.seal_mismatch += 1;
            return;
        };
        let packet = match seal.channel.open(&data) {
            Ok(p) => p,
            Err(crate::seal::OpenError::Replay(_)) => {
                self.stats.sealed_replayed += 1;
                return;
            }
            Err(crate::seal::OpenError::Frames(_)) => {
                self.stats.malformed += 1;
                return;
            }
            Err(_) => {
                self.stats.sealed_rejected += 1;
                return;
            }
        };
        // The client has the keys: the handshake answer arrived.
        seal.reply = None;
        seal.reply_due = false;
        self.process_session_packet(now, from, packet);
    }

    fn handle_session_packet(&mut self, now: Time, from: SocketAddr, packet: Packet) {
        let sid = packet.header.session_id;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if !s
            .bucket
            .take(now, self.cfg.session_rate, self.cfg.session_burst)
        {
            self.stats.rate_limited += 1;
            return;
        }
        if s.seal.is_some() {
            // Only sealed packets speak for a sealed session.
            self.stats.seal_mismatch += 1;
            return;
        }
        self.process_session_packet(now, from, packet);
    }

    fn process_session_packet(&mut self, now: Time, from: SocketAddr, packet: Packet) {
        let sid = packet.header.session_id;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if packet.header.packet_number > s.highest_pn {
            s.highest_pn = packet.header.packet_number;
            if s.addr != from {
                // NAT rebinding or a network switch: follow the newest packet.
                s.addr = from;
                self.stats.migrations += 1;
            }
        }
        s.last_heard = now;
        self.touch(sid);
        for frame in packet.frames {
            if !self.sessions.contains_key(&sid) {
                break; // logged out by an earlier frame
            }
            self.handle_frame(now, sid, frame);
        }
    }

    /// Sends a small ERROR to an address with no session, never larger than
    /// what was received from it (no amplification).
    fn reply_error(
        &mut self,
        to: SocketAddr,
        sid: u64,
        received: usize,
        code: ErrorCode,
        frame_type: u8,
        reason: &str,
    ) {
        let header = Header {
            session_id: sid,
            packet_number: 1,
        };
        let base = header.len()
            + 1
            + crate::wire::varint::len(code as u64)
            + 1
            + 1
            + 1
            + crate::wire::TRAILER;
        if received < base {
            return;
        }
        let rate = self.cfg.stateless_reply_rate;
        if !self.replies.take(self.last_now, rate, rate) {
            self.stats.replies_suppressed += 1;
            return;
        }
        let room = (received - base)
            .min(crate::wire::limits::MAX_REASON)
            .min(60);
        let mut reason = reason.to_string();
        while reason.len() > room {
            reason.pop();
        }
        let mut pb = PacketBuilder::new(header, received);
        let frame = Frame::Error(ErrorFrame {
            code: code as u64,
            frame_type,
            seq: 0,
            reason,
        });
        if pb.push(&frame).is_ok() {
            self.stats.datagrams_out += 1;
            self.transmits.push_back((to, pb.finish()));
        }
    }

    fn touch(&mut self, sid: u64) {
        if !self.touched.contains(&sid) {
            self.touched.push(sid);
        }
    }

    /// Sends what touched sessions have queued and re-arms their timers.
    fn flush_touched(&mut self, now: Time) {
        let touched = std::mem::take(&mut self.touched);
        for sid in touched {
            self.flush_session(now, sid);
        }
    }

    fn flush_session(&mut self, now: Time, sid: u64) {
        let ack_frames = self.uplink_ack_frames(now, sid);
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if !ack_frames.is_empty() || s.has_output(now) {
            let before = self.transmits.len();
            s.build(now, ack_frames, self.cfg.max_datagram, &mut self.transmits);
            self.stats.datagrams_out += (self.transmits.len() - before) as u64;
        }
        let deadline = s.next_deadline(self.cfg.idle_timeout);
        if s.scheduled.is_none_or(|t| deadline < t) {
            s.scheduled = Some(deadline);
            self.timers.push(Reverse((deadline, sid)));
        }
        self.drain_downlink_events(now, sid);
    }

    /// The ACK (and sticky ERROR) frames owed to a session for its uplink.
    fn uplink_ack_frames(&mut self, now: Time, sid: u64) -> Vec<Frame> {
        let Some(s) = self.sessions.get(&sid) else {
            return Vec::new();
        };
        if !s.acks.should_send(now) {
            return Vec::new();
        }
        let Some(dev) = self
            .users
            .get(&s.user)
            .and_then(|u| u.devices.get(&s.device))
        else {
            return Vec::new();
        };
        let mut cumulative = dev.durable.applied;
        let mut ranges = Vec::new();
        if dev.staged.applied > cumulative {
            ranges.push((cumulative + 1, dev.staged.applied));
        }
        for r in s.uplink.buffered_ranges() {
            if ranges.len() == crate::wire::limits::MAX_ACK_RANGES {
                break;
            }
            ranges.push(r);
        }
        let mut ack = crate::wire::Ack {
            receiver_online: dev.online_at(cumulative),
            cumulative,
            delay_us: s.acks.delay(now).as_micros() as u64,
            ranges,
        };
        // Refusals ride ahead of every ACK that may release them, in the same
        // datagram, so a client never mistakes a refused operation for
        // stored. If they do not all fit, the ACK releases less.
        let mut budget = self.cfg.max_datagram.saturating_sub(
            Header {
                session_id: 0,
                packet_number: u64::from(u32::MAX),
            }
            .len()
                + crate::wire::TRAILER
                + Frame::Ack(ack.clone()).encoded_len(),
        );
        let window = self.cfg.downlink.window as u64;
        let mut frames = Vec::new();
        for &(seq, code) in &dev.durable.rejected {
            if seq + window <= cumulative || seq > cumulative {
                continue;
            }
            let f = Frame::Error(ErrorFrame {
                code,
                frame_type: 0,
                seq,
                reason: String::new(),
            });
            let len = f.encoded_len();
            if len > budget {
                cumulative = seq - 1;
                break;
            }
            budget -= len;
            frames.push(f);
        }
        ack.cumulative = cumulative;
        ack.ranges.retain(|&(start, _)| start > cumulative);
        frames.push(Frame::Ack(ack));
        frames
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(Reverse((t, sid))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let idle = self.cfg.idle_timeout;
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            if s.scheduled == Some(t) {
                s.scheduled = None;
            }
            if now.saturating_since(s.last_heard) >= idle {
                self.stats.idle_closed += 1;
                self.close_session(sid, crate::wire::KickReason::Idle, false);
                continue;
            }
            if let Downlink::Push(sender) = &mut s.down {
                sender.handle_timeout(now);
            }
            self.touch(sid);
        }
        self.flush_touched(now);
    }

    /// When [`Broker::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.transmits.pop_front()
    }

    /// Next notable event.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        self.events.pop_front()
    }

    /// True while a batch is out for commit.
    pub fn commit_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The next batch to commit, if none is in flight and writes are staged.
    pub fn poll_commit(&mut self) -> Option<Commit> {
        if self.in_flight.is_some() || self.staged.is_empty() {
            return None;
        }
        let staged = std::mem::take(&mut self.staged);
        let mut batch = WriteBatch::default();
        for (user, entry) in &staged.appends {
            batch.ops.push(WriteOp::Append {
                user: *user,
                entry: entry.clone(),
            });
        }
        for user in &staged.dirty_users {
            if let Some(u) = self.users.get_mut(user) {
                u.meta_dirty = false;
                batch.ops.push(WriteOp::Meta {
                    user: *user,
                    meta: u.meta,
                });
            }
        }
        let mut devices = Vec::new();
        for (user, device) in &staged.dirty_devices {
            if let Some(d) = self
                .users
                .get_mut(user)
                .and_then(|u| u.devices.get_mut(device))
            {
                d.dirty = false;
                batch.ops.push(WriteOp::Device {
                    user: *user,
                    device: *device,
                    state: d.staged.clone(),
                });
                devices.push((*user, *device, d.staged.clone()));
            }
        }
        for (user, up_to) in &staged.trims {
            batch.ops.push(WriteOp::Trim {
                user: *user,
                up_to: *up_to,
            });
        }
        let id = self.next_commit;
        self.next_commit += 1;
        self.in_flight = Some(InFlight {
            id,
            appends: staged.appends,
            devices,
        });
        Some(Commit { id, batch })
    }

    /// The driver's report on a batch from [`Broker::poll_commit`].
    pub fn handle_committed(&mut self, now: Time, id: u64, result: Result<(), String>) {
        let Some(done) = self.in_flight.take_if(|f| f.id == id) else {
            return;
        };
        match result {
            Ok(()) => {
                self.stats.commits += 1;
                self.on_durable(now, done);
            }
            Err(error) => {
                self.stats.commit_failures += 1;
                self.events.push_back(BrokerEvent::CommitFailed { error });
                self.roll_back();
            }
        }
        self.flush_touched(now);
    }

    fn on_durable(&mut self, now: Time, done: InFlight) {
        for (user, device, state) in done.devices {
            let Some(d) = self
                .users
                .get_mut(&user)
                .and_then(|u| u.devices.get_mut(&device))
            else {
                continue;
            };
            let released = state.applied.saturating_sub(d.durable.applied);
            d.durable = state;
            if let (true, Some(sid)) = (released > 0, d.session) {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    // Coalesced like any ACK: at most `ack_every` ops or
                    // `max_ack_delay` late; the sender's RTO allows for it.
                    for _ in 0..released.min(64) {
                        s.acks.on_ack_eliciting(now, false);
                    }
                    self.touch(sid);
                }
            }
        }
        for (user, entry) in done.appends {
            self.stats.stored += 1;
            let Some(u) = self.users.get_mut(&user) else {
                continue;
            };
            u.committed_head = u.committed_head.max(entry.seq);
            let sids: Vec<u64> = u.sessions().collect();
            for sid in sids {
                self.offer_entry(now, sid, &entry);
            }
        }
    }

    /// A commit failed: forget every in-memory assumption and reload from the
    /// store. Senders retransmit whatever was not acknowledged.
    fn roll_back(&mut self) {
        self.staged = Staged::default();
        let live: Vec<(u64, u64, u32)> = self
            .sessions
            .values()
            .map(|s| (s.id, s.user, s.device))
            .collect();
        self.users.clear();
        for (sid, user, device) in live {
            let applied = match self.user_mut(user) {
                Ok(u) => {
                    let d = u
                        .devices
                        .entry(device)
                        .or_insert_with(|| users::Dev::new(DeviceState::default()));
                    d.session = Some(sid);
                    d.durable.applied
                }
                Err(_) => 0,
            };
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.uplink.reset(applied);
            }
        }
    }

    fn user_mut(&mut self, user: u64) -> Result<&mut UserCache, String> {
        if !self.users.contains_key(&user) {
            match UserCache::load(&*self.store, user) {
                Ok(u) => {
                    self.users.insert(user, u);
                }
                Err(e) => {
                    let error = e.to_string();
                    self.events.push_back(BrokerEvent::StoreReadFailed {
                        error: error.clone(),
                    });
                    return Err(error);
                }
            }
        }
        Ok(self.users.get_mut(&user).expect("inserted above"))
    }

    fn new_id(&mut self) -> u64 {
        loop {
            let id: u64 = self.rng.gen();
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn mark_user_dirty(&mut self, user: u64) {
        if let Some(u) = self.users.get_mut(&user) {
            if !u.meta_dirty {
                u.meta_dirty = true;
                self.staged.dirty_users.push(user);
            }
        }
    }

    fn mark_device_dirty(&mut self, user: u64, device: u32) {
        if let Some(d) = self
            .users
            .get_mut(&user)
            .and_then(|u| u.devices.get_mut(&device))
        {
            if !d.dirty {
                d.dirty = true;
                self.staged.dirty_devices.push((user, device));
            }
        }
    }
}
