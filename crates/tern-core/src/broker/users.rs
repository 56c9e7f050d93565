//! What the broker caches per user: the inbox head (staged and committed)
//! and each device's durable and staged state.

use std::collections::{HashMap, VecDeque};

use super::{Broker, BrokerEvent};
use crate::store::{DeviceState, InboxMeta, Store};

/// Rejected uplink sequences remembered per device: as many as a client may
/// have in flight, so every refusal it can still be waiting on is known.
pub(crate) const REJECTED_KEPT: usize = 256;
/// Release-log entries kept per device for the `receiver_online` hint.
const RELEASE_LOG: usize = 64;

pub(crate) struct Dev {
    /// As last committed.
    pub durable: DeviceState,
    /// Including staged, uncommitted changes.
    pub staged: DeviceState,
    pub dirty: bool,
    /// (uplink seq, receiver was online) of recent operations; made on
    /// the device's first operation (most devices in the cache are idle).
    /// Boxed on purpose: 8 bytes inline where an empty deque is 32.
    #[allow(clippy::box_collection)]
    pub release_log: Option<Box<VecDeque<(u64, bool)>>>,
    /// The device's live session.
    pub session: Option<u64>,
}

impl Dev {
    pub fn new(state: DeviceState) -> Self {
        Dev {
            durable: state.clone(),
            staged: state,
            dirty: false,
            release_log: None,
            session: None,
        }
    }

    pub fn log_release(&mut self, seq: u64, online: bool) {
        let log = self.release_log.get_or_insert_with(Default::default);
        if log.len() == RELEASE_LOG {
            log.pop_front();
        }
        log.push_back((seq, online));
    }

    pub fn reject(&mut self, seq: u64, code: u64) {
        if self.staged.rejected.len() == REJECTED_KEPT {
            self.staged.rejected.remove(0);
        }
        self.staged.rejected.push((seq, code));
    }

    /// Was the receiver online for the operation `seq`?
    pub fn online_at(&self, seq: u64) -> bool {
        self.release_log.as_ref().is_some_and(|log| {
            log.iter()
                .rev()
                .find(|(s, _)| *s == seq)
                .is_some_and(|(_, online)| *online)
        })
    }
}

pub(crate) struct UserCache {
    /// Staged view: `head` includes uncommitted appends.
    pub meta: InboxMeta,
    /// The inbox exists in the store or is staged for creation.
    pub exists: bool,
    pub meta_dirty: bool,
    /// Highest sequence known durable.
    pub committed_head: u64,
    pub devices: super::device_map::DeviceMap,
    /// DELIVERED receipts issued: (from_user, from_device) → highest from_seq.
    /// Made on the first receipt (an empty map is 48 bytes).
    #[allow(clippy::box_collection)]
    pub receipted: Option<Box<HashMap<(u64, u32), u64>>>,
    /// When the retention sweep last looked at this inbox.
    pub swept_at: Option<crate::time::Time>,
    /// Groups whose online-member set lists this user (left when its last
    /// device goes offline).
    pub groups: Vec<u64>,
}

impl UserCache {
    pub fn load<S: Store>(store: &S, user: u64) -> Result<UserCache, S::Error> {
        let meta = store.inbox_meta(user)?;
        let devices = store
            .devices(user)?
            .into_iter()
            .map(|(d, s)| (d, Dev::new(s)))
            .collect();
        Ok(UserCache {
            exists: meta.is_some(),
            meta: meta.unwrap_or_default(),
            meta_dirty: false,
            committed_head: meta.map_or(0, |m| m.head),
            devices,
            receipted: None,
            swept_at: None,
            groups: Vec::new(),
        })
    }

    /// True when some device of the user has a live session.
    pub fn online(&self) -> bool {
        self.devices.values().any(|d| d.session.is_some())
    }

    /// Live sessions of the user.
    pub fn sessions(&self) -> impl Iterator<Item = u64> + '_ {
        self.devices.values().filter_map(|d| d.session)
    }

    /// Some registered device last logged in with protocol version 1: the
    /// user's timeline then gets only the entries version 1 knows.
    pub fn has_v1_device(&self) -> bool {
        self.devices
            .values()
            .any(|d| d.staged.version == crate::wire::VERSION)
    }

    /// Lowest checkpoint over every registered device (what may be trimmed).
    pub fn min_checkpoint(&self) -> u64 {
        self.devices
            .values()
            .map(|d| d.staged.checkpoint)
            .min()
            .unwrap_or(0)
    }
}

impl<S: Store> Broker<S> {
    /// `user`'s cache with its inbox created (a random epoch) if it had none.
    pub(super) fn inbox_mut(&mut self, user: u64) -> Result<&mut UserCache, String> {
        let epoch_seed: u64 = rand::Rng::gen_range(&mut self.rng, 1..=crate::wire::varint::MAX);
        let u = self.user_mut(user)?;
        if !u.exists {
            u.exists = true;
            u.meta.epoch = epoch_seed;
        }
        Ok(u)
    }

    /// `user`'s cache, loaded on first use (one hash lookup when cached:
    /// every message passes here several times).
    pub(super) fn user_mut(&mut self, user: u64) -> Result<&mut UserCache, String> {
        match self.users.entry(user) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                match UserCache::load(&*self.store, user) {
                    Ok(u) => Ok(v.insert(Box::new(u))),
                    Err(e) => {
                        let error = e.to_string();
                        self.events.push_back(BrokerEvent::StoreReadFailed {
                            error: error.clone(),
                        });
                        Err(error)
                    }
                }
            }
        }
    }
}
