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
//!
//! One file per flow; each adds its part of `impl Broker`:
//! - `intake.rs`: datagrams in: sealed packets opened, session packets
//!   dispatched frame by frame, stateless ERROR answers to the rest;
//! - `login.rs`: a LOGIN or HANDSHAKE before any session: seal policy, RETRY
//!   cookie, handshake, token, repeats and replays;
//! - `lifecycle.rs`: sessions opened (LOGIN_OK) and closed (KICK);
//! - `uplink.rs`: uplink operations in order, exactly once; refusals; sync
//!   timeline appends; the uplink ACKs that release them once durable;
//! - `post.rs`, `read_state.rs`, `recall.rs`: messages into conversations
//!   (store first, then sync), read positions and deletions, recalls;
//! - `groups.rs`, `group_members.rs`: group membership operations and
//!   write fan-out to members, and the paged member list;
//! - `list.rs`, `history.rs`: the conversation list and history pages;
//! - `render.rs`: entries as DELIVER (version 1) or ENTRY (version 2);
//! - `downlink.rs`: committed entries pushed and refilled, downlink ACKs,
//!   DELIVERED receipts;
//! - `pull.rs`, `summary.rs`: paged pulls and counters-first summaries;
//! - `retention.rs`: checkpoints, trims and the retention sweep;
//! - `commit.rs`: staged writes, the batch in flight, durability, roll-back;
//! - `timers.rs`: touched sessions flushed into datagrams, timers fired;
//! - `service.rs`: operations of a session-less service device (the
//!   server API's messages), through the same uplink path;
//! - `inspect.rs`: presence, inbox and checkpoints for the server API, kicks.
//!
//! State lives in `session.rs` (one device connection), `users.rs` (the
//! per-user cache), `convs.rs` and `records.rs` (conversations) and
//! `admission.rs` (cookies and rate limits); the types a
//! driver sees in `config.rs`, `peer.rs`, `stats.rs` and `events.rs`.

mod admission;
mod commit;
mod config;
mod convs;
mod device_map;
mod downlink;
mod events;
mod footprint;
mod group_fanout;
mod group_members;
mod groups;
mod history;
mod history_trim;
mod inspect;
mod intake;
mod lazy_sender;
mod lazy_uplink;
mod lifecycle;
mod list;
mod login;
mod peer;
mod post;
mod pull;
mod read_state;
mod recall;
mod records;
mod render;
mod retention;
mod service;
mod session;
mod stats;
mod summary;
mod timers;
mod uplink;
mod users;

pub use commit::Commit;
pub use config::{BrokerConfig, SealPolicy};
pub use events::BrokerEvent;
pub use footprint::Footprint;
pub use history::HISTORY_MAX;
pub use inspect::{DeviceView, UserView};
pub use list::{LIST_BUDGET, LIST_MAX_ITEMS};
pub use peer::{Peer, Transport};
pub use records::RECALL_SCAN;
pub use service::{ServiceError, ServiceOutcome, ServicePosition};
pub use stats::BrokerStats;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// The broker's maps keyed by ids it assigned or authenticated (sessions,
/// users, conversations): foldhash, seeded per map, instead of SipHash.
/// Maps keyed by what any datagram carries (addresses, handshake keys)
/// keep SipHash.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::auth::TokenKeys;
use crate::store::Store;
use crate::time::Time;
use commit::{InFlight, Staged};
use session::Session;
use users::UserCache;

/// The server's protocol logic. See the module docs for the call order.
pub struct Broker<S: Store> {
    cfg: BrokerConfig,
    store: Arc<S>,
    keys: TokenKeys,
    wall_origin_ms: u64,
    /// Boxed: a map slot is 16 bytes whether or not it holds a session
    /// (a hash map keeps a quarter or more of its slots empty).
    sessions: FastMap<u64, Box<Session>>,
    /// Boxed, as `sessions`: most slots of a large map are empty.
    users: FastMap<u64, Box<UserCache>>,
    staged: Staged,
    /// Conversation caches: storage timelines, user states, pending records.
    convs: convs::Convs,
    /// Batches out for commit, oldest first; they complete in this order.
    in_flight: VecDeque<InFlight>,
    next_commit: u64,
    /// Id of the newest batch reported durable.
    durable_commit: u64,
    /// Users whose login caught up group states: their LIST waits for the
    /// batch with this id (`group_fanout.rs`).
    list_holds: FastMap<u64, u64>,
    /// Sealed sessions whose handshake answer is still kept (the client has
    /// not sent a sealed packet yet), by the client's ephemeral key: a
    /// spare copy of message 1 is answered again without an X25519
    /// operation. Small: entries leave at the first sealed packet.
    answering: HashMap<[u8; crate::seal::KEY_LEN], u64>,
    /// LIST requests waiting: (session, batch id, request).
    held_lists: Vec<(u64, u64, crate::wire::ListRequest)>,
    transmits: VecDeque<(Peer, Bytes)>,
    timers: BinaryHeap<Reverse<(Time, u64)>>,
    touched: Vec<u64>,
    rng: SmallRng,
    stats: BrokerStats,
    events: VecDeque<BrokerEvent>,
    admission: admission::Admission,
    entropy: crate::seal::Entropy,
    /// Global budget of stateless ERROR answers.
    replies: admission::Bucket,
    /// Global budget of RETRY answers (the same rate, its own bucket, so
    /// that a flood of cookieless logins cannot make the server spend a
    /// core minting cookies, nor starve the ERROR answers).
    retries: admission::Bucket,
    /// Time of the datagram being handled (for the reply budget).
    last_now: Time,
    /// Protocol version of the datagram being handled (stateless answers).
    in_version: u8,
    /// The history retention walk over every conversation.
    history_walk: history_trim::HistoryWalk,
    /// When staged writes nothing waits for (checkpoints, receipts) stop
    /// waiting for company.
    deferred_due: Option<Time>,
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
        let mut admission = admission::Admission::new(
            rng.gen(),
            cfg.prelogin_rate,
            cfg.prelogin_burst,
            cfg.max_sources,
        );
        if let Some(key) = cfg.address_token_key {
            admission.set_token_key(key);
        }
        Broker {
            history_walk: history_trim::HistoryWalk::new(cfg.history_retention),
            deferred_due: None,
            admission,
            cfg,
            store,
            keys,
            wall_origin_ms,
            sessions: FastMap::default(),
            users: FastMap::default(),
            staged: Staged::default(),
            convs: convs::Convs::default(),
            in_flight: VecDeque::new(),
            next_commit: 1,
            durable_commit: 0,
            list_holds: FastMap::default(),
            held_lists: Vec::new(),
            answering: HashMap::new(),
            transmits: VecDeque::new(),
            timers: BinaryHeap::new(),
            touched: Vec::new(),
            rng,
            stats: BrokerStats::default(),
            events: VecDeque::new(),
            entropy,
            replies: admission::Bucket::full(cfg_reply_rate, Time::ZERO),
            retries: admission::Bucket::full(cfg_reply_rate, Time::ZERO),
            last_now: Time::ZERO,
            in_version: crate::wire::VERSION,
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

    /// When [`Broker::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let session = self.timers.peek().map(|Reverse((t, _))| *t);
        [session, self.history_walk.at, self.deferred_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Next datagram to send, and the peer to send it to over its transport.
    pub fn poll_transmit(&mut self) -> Option<(Peer, Bytes)> {
        self.transmits.pop_front()
    }

    /// Next notable event.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        self.events.pop_front()
    }
}
