//! The world of the `broker_sessions` target: a `Broker` over an in-memory
//! store, six peers playing clients (and attackers), and the driver's
//! commit loop under the input's control, including failed commits and
//! failing reads. After every step the broker's invariants are checked:
//! - no panic, and everything it sends reads back (`oracle.rs`);
//! - nothing acknowledged or delivered that was not committed (`oracle.rs`);
//! - no answer larger than its question, and at most one, to a datagram
//!   that did not come from a proven source ([`World::send`]);
//! - bounded state per peer and in total ([`World::check_footprint`]).

pub mod input;
mod oracle;
pub mod peer;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tern_core::auth::{Claims, TokenKeys};
use tern_core::broker::{Broker, BrokerConfig, Commit, SealPolicy};
use tern_core::seal::{Channel, Entropy, Initiator, StaticKey};
use tern_core::time::Time;
use tern_core::wire::{Frame, Login, Send};

use input::{Setup, Step, TokenKind, DEVICES, PEERS, USERS};
use peer::{PeerState, Pending};
use store::{Durable, FlakyStore};

/// Unix ms at the broker's `Time::ZERO` (the spec's T0).
const WALL_ORIGIN_MS: u64 = 1_767_225_600_123;
/// Datagrams remembered for `Replay`.
const REMEMBERED: usize = 64;
/// A sealed login's packet is padded to this size (`proto-spec/sealed.md`).
const HANDSHAKE_PAD: usize = 256;

/// Whether a datagram comes from a source the broker has reason to trust.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    /// Built by the session's owner with its keys or live session id, or a
    /// login echoing the cookie the broker gave this very address.
    Proven,
    /// Anything else: the broker owes it at most one answer, no larger.
    Unproven,
}

/// The target's state.
pub struct World {
    broker: Broker<FlakyStore>,
    store: Arc<FlakyStore>,
    durable: Durable,
    cfg: BrokerConfig,
    now: Time,
    peers: Vec<PeerState>,
    /// Client-side keys of the sealed sessions, by session id.
    keys: HashMap<u64, Channel>,
    /// (user, device) of every session a LOGIN_OK named.
    owners: HashMap<u64, (u64, u32)>,
    /// Sessions opened in the clear (their ids are not secret, by spec).
    clear_sids: HashSet<u64>,
    /// Recent datagrams: (sender, bytes, source).
    sent: Vec<(usize, Bytes, Source)>,
    /// The batch the driver has out.
    out: Option<Commit>,
    server_key: StaticKey,
    tokens: TokenKeys,
    forged: TokenKeys,
    entropy: Entropy,
    /// Handshake clocks, increasing (a newer handshake replaces an older one).
    client_time_ms: u64,
}

fn broker_config(setup: &Setup, key: &StaticKey) -> BrokerConfig {
    let mut cfg = BrokerConfig {
        seal_key: (setup.seal_policy != 0).then(|| key.clone()),
        seal_policy: match setup.seal_policy {
            0 => SealPolicy::Off,
            1 => SealPolicy::Optional,
            _ => SealPolicy::Required,
        },
        accept_unknown_recipients: !setup.known_recipients_only,
        ..BrokerConfig::default()
    };
    if setup.tight_limits {
        cfg.prelogin_rate = 20.0;
        cfg.prelogin_burst = 6.0;
        cfg.session_rate = 50.0;
        cfg.session_burst = 12.0;
        cfg.max_sources = 3;
        cfg.stateless_reply_rate = 4.0;
        cfg.max_sessions = 3;
        cfg.page_entries = 3;
        cfg.downlink.window = 2;
        cfg.downlink.capacity = 4;
        cfg.downlink.max_retransmits = 2;
        cfg.uplink.reorder_window = 4;
    }
    cfg
}

impl World {
    /// A broker set up as `setup` says, and peers with no session yet.
    pub fn new(setup: &Setup) -> World {
        let server_key = StaticKey::from_secret([0x5e; 32]);
        let cfg = broker_config(setup, &server_key);
        let store = Arc::new(FlakyStore::default());
        let tokens = TokenKeys::new(b"broker-fuzz token secret".to_vec(), Vec::new());
        let broker = Broker::new(
            cfg.clone(),
            store.clone(),
            tokens.clone(),
            WALL_ORIGIN_MS,
            7,
        );
        World {
            broker,
            store,
            durable: Durable::default(),
            cfg,
            now: Time::ZERO,
            peers: PeerState::all(),
            keys: HashMap::new(),
            owners: HashMap::new(),
            clear_sids: HashSet::new(),
            sent: Vec::new(),
            out: None,
            server_key,
            tokens,
            forged: TokenKeys::new(b"someone else's secret".to_vec(), Vec::new()),
            entropy: Entropy::from_test_seed(11),
            client_time_ms: WALL_ORIGIN_MS,
        }
    }

    /// Peers holding a session.
    pub fn live_sessions(&self) -> usize {
        self.peers.iter().filter(|p| p.session.is_some()).count()
    }

    /// Highest inbox sequence peer `i` was handed in order.
    pub fn delivered(&self, i: usize) -> u64 {
        self.peers[i].session.as_ref().map_or(0, |s| s.delivered)
    }

    /// ERROR 12 (StorageFailure) frames peer `i` received.
    pub fn storage_errors(&self, i: usize) -> u64 {
        self.peers[i].storage_errors
    }

    /// Runs one step and checks the invariants after it.
    pub fn step(&mut self, step: &Step) {
        match step {
            Step::Login {
                peer,
                user,
                device,
                sealed,
                token,
                skip_cookie,
            } => {
                let claims = Claims {
                    user: 1 + u64::from(*user) % USERS,
                    device: 1 + u32::from(*device) % DEVICES,
                    expires: WALL_ORIGIN_MS / 1000 + 86_400,
                };
                self.login(peer_index(*peer), claims, *sealed, *token, *skip_cookie);
            }
            Step::Send {
                peer,
                to,
                conv,
                len,
            } => {
                let i = peer_index(*peer);
                let Some(seq) = self.peers[i].session.as_ref().map(|s| s.next_seq) else {
                    return;
                };
                let frame = Frame::Send(Send {
                    seq,
                    // One more user than can log in: an unknown recipient.
                    to: 1 + u64::from(*to) % (USERS + 1),
                    conv: u64::from(*conv),
                    msg_type: 0,
                    payload: Bytes::from(vec![*len; usize::from(*len) * 4]),
                });
                if self.session_send(i, &[frame]) {
                    if let Some(s) = self.peers[i].session.as_mut() {
                        s.next_seq += 1;
                    }
                }
            }
            Step::Frames { peer, frames } => {
                self.session_send(peer_index(*peer), frames);
            }
            Step::Mutated { peer, body } => {
                let i = peer_index(*peer);
                let channel = channel_of(&self.keys, &self.peers[i]);
                if let Some(d) = self.peers[i].mutated_packet(body, channel) {
                    self.send(i, d, Source::Proven);
                }
            }
            Step::Prelogin { peer, frames } => {
                let i = peer_index(*peer);
                let d = self.peers[i].prelogin(frames, false, 0);
                self.send(i, d, Source::Unproven);
            }
            Step::Junk { peer, bytes } => {
                self.send(
                    peer_index(*peer),
                    Bytes::copy_from_slice(bytes),
                    Source::Unproven,
                );
            }
            Step::Replay {
                peer,
                index,
                at,
                flip,
            } => {
                if self.sent.is_empty() {
                    return;
                }
                let (from, data, source) = self.sent[usize::from(*index) % self.sent.len()].clone();
                let i = peer_index(*peer);
                let mut data = data.to_vec();
                if *flip != 0 && !data.is_empty() {
                    let at = usize::from(*at) % data.len();
                    data[at] ^= flip;
                }
                let same = i == from && *flip == 0;
                let source = if same { source } else { Source::Unproven };
                self.send(i, data.into(), source);
            }
            Step::AckDownlink { peer } => {
                let i = peer_index(*peer);
                let Some(delivered) = self.peers[i].session.as_ref().map(|s| s.delivered) else {
                    return;
                };
                let ack = Frame::Ack(tern_core::wire::Ack {
                    receiver_online: false,
                    cumulative: delivered,
                    delay_us: 0,
                    ranges: Vec::new(),
                });
                self.session_send(i, &[ack]);
            }
            Step::Commit { fail } => self.commit(*fail),
            Step::StoreReads { fail } => self.store.set_fail_reads(*fail),
            Step::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms) * 4);
                self.broker.handle_timeout(self.now);
                self.drain(None);
            }
        }
        self.check_footprint();
    }

    /// The login dance of peer `i`: at most two attempts, the second one
    /// echoing the cookie a RETRY gave.
    fn login(
        &mut self,
        i: usize,
        claims: Claims,
        sealed: bool,
        token: TokenKind,
        skip_cookie: bool,
    ) {
        let token = match token {
            TokenKind::Valid => self.tokens.sign(claims),
            TokenKind::Expired => self.tokens.sign(Claims {
                expires: WALL_ORIGIN_MS / 1000 - 1,
                ..claims
            }),
            TokenKind::Forged => self.forged.sign(claims),
        };
        let login = Login {
            token: token.into(),
            epoch: 0,
            checkpoint: 0,
        };
        for attempt in 0..2 {
            let with_cookie = !skip_cookie && self.peers[i].cookie.is_some();
            let cookie = self.peers[i].cookie.clone().filter(|_| with_cookie);
            let (frame, pad) = if sealed {
                self.client_time_ms += 1;
                let Ok((init, msg1)) = Initiator::start(
                    &mut self.entropy,
                    &self.server_key.public(),
                    cookie.as_deref(),
                    self.client_time_ms,
                    &login,
                    tern_core::wire::VERSION,
                ) else {
                    return;
                };
                self.peers[i].pending = Some(Pending::Sealed(Box::new(init)));
                (Frame::Handshake(msg1), HANDSHAKE_PAD)
            } else {
                self.peers[i].pending = Some(Pending::Clear);
                (Frame::Login(login.clone()), 0)
            };
            let d = self.peers[i].prelogin(&[frame], with_cookie, pad);
            // Proven only when it echoes the cookie this address was given.
            let source = if with_cookie {
                Source::Proven
            } else {
                Source::Unproven
            };
            self.peers[i].session = None;
            self.send(i, d, source);
            if attempt == 1 || self.peers[i].pending.is_none() || self.peers[i].cookie.is_none() {
                return;
            }
        }
    }

    /// Sends `frames` on peer `i`'s session; false without one.
    fn session_send(&mut self, i: usize, frames: &[Frame]) -> bool {
        let channel = channel_of(&self.keys, &self.peers[i]);
        match self.peers[i].session_packet(frames, channel) {
            Some(d) => {
                self.send(i, d, Source::Proven);
                true
            }
            None => false,
        }
    }

    /// Hands the broker one datagram from peer `i`, then reads everything
    /// it answers. To an unproven source (raw UDP, not naming a session
    /// opened in the clear, whose ids are not secret by the spec) it owes
    /// at most one datagram, no larger than the one received.
    fn send(&mut self, i: usize, data: Bytes, source: Source) {
        let peer = self.peers[i].peer;
        if self.sent.len() == REMEMBERED {
            self.sent.remove(0);
        }
        self.sent.push((i, data.clone(), source));
        let names_clear_session = data.get(1) == Some(&0)
            && tern_core::wire::Header::peek(&data)
                .is_some_and(|(_, sid)| sid != 0 && self.clear_sids.contains(&sid));
        let stateless = source == Source::Unproven && !peer.is_quic() && !names_clear_session;
        let len = data.len();
        self.broker.handle_datagram(self.now, peer, data);
        self.drain(stateless.then_some(len));
    }

    /// Reads every datagram and event the broker produced. With `question`,
    /// they answer an unproven datagram of that size.
    fn drain(&mut self, question: Option<usize>) {
        let mut answers = 0;
        while let Some((to, data)) = self.broker.poll_transmit() {
            answers += 1;
            if let Some(q) = question {
                assert!(
                    data.len() <= q && answers == 1,
                    "answer {answers} of {} bytes to an unproven datagram of {q}: {}",
                    data.len(),
                    crate::hex(&data)
                );
            } else {
                let limit = self
                    .cfg
                    .max_datagram
                    .max(tern_core::wire::limits::MAX_RECV_DATAGRAM);
                assert!(data.len() <= limit, "datagram of {} bytes", data.len());
            }
            let idx = self
                .peers
                .iter()
                .position(|p| p.peer == to)
                .unwrap_or_else(|| panic!("the broker sent to {to}, which never sent anything"));
            self.receive(idx, data);
        }
        while self.broker.poll_event().is_some() {}
    }

    /// The driver: finish the batch out (durable, or failed), or hand out
    /// the next one.
    fn commit(&mut self, fail: bool) {
        match self.out.take() {
            Some(c) if fail => {
                self.broker
                    .handle_committed(self.now, c.id, Err("injected commit failure".into()));
            }
            Some(c) => {
                let _ = tern_core::store::Store::commit(&*self.store, &c.batch);
                self.durable.record(&c.batch);
                self.broker.handle_committed(self.now, c.id, Ok(()));
            }
            None => self.out = self.broker.poll_commit(),
        }
        self.drain(None);
    }

    /// Bounded state: at most one session per device, bounded queues per
    /// session, a bounded source table, nothing left undrained.
    fn check_footprint(&self) {
        let f = self.broker.footprint();
        let cfg = &self.cfg;
        let devices = (USERS as usize) * (DEVICES as usize);
        assert!(f.sessions <= devices.min(cfg.max_sessions), "{f:?}");
        assert!(f.sources_tracked <= cfg.max_sources, "{f:?}");
        assert!(f.max_downlink_in_flight <= cfg.downlink.capacity, "{f:?}");
        assert!(
            f.max_uplink_buffered as u64 <= cfg.uplink.reorder_window,
            "{f:?}"
        );
        assert!(f.max_last_page as u64 <= cfg.page_entries, "{f:?}");
        assert!(f.max_rejected_kept <= 256, "{f:?}");
        assert!(f.max_session_out <= 64, "{f:?}");
        assert_eq!(f.transmits_queued + f.events_queued, 0, "{f:?}");
    }
}

/// The keys of peer `p`'s session, if it is sealed.
fn channel_of<'a>(keys: &'a HashMap<u64, Channel>, p: &PeerState) -> Option<&'a Channel> {
    let s = p.session.as_ref().filter(|s| s.sealed)?;
    keys.get(&s.sid)
}

fn peer_index(p: u8) -> usize {
    usize::from(p) % PEERS
}
