//! What the broker caches and stages for conversations: each storage
//! timeline's head, and each user's state in each conversation. Both are
//! loaded from the store on first use and staged like the inbox: the
//! staged view moves as operations are applied, the store's view once the
//! batch is durable.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::sync::Arc;

use super::FastMap;

use super::{Broker, BrokerEvent};
use crate::conv::{ConvKey, ConvState};
use crate::store::{ConvMeta, ConvRecord, Store};

/// One storage timeline, as the broker sees it.
pub(crate) struct ConvCache {
    /// Staged view: `head` includes records not yet durable.
    pub meta: ConvMeta,
    /// Staged for the next batch.
    pub dirty: bool,
    /// Id of the last batch that wrote it (eviction waits for it).
    pub written: u64,
    /// When history retention last looked at it.
    pub swept_at: Option<crate::time::Time>,
}

/// One user's state in one conversation.
pub(crate) struct UserConvSlot {
    /// Staged view.
    pub state: ConvState,
    /// Version of the state the store holds once every batch handed out so
    /// far is committed: the list-index row the next write replaces.
    pub written_version: u64,
    /// Staged for the next batch.
    pub dirty: bool,
    /// Id of the last batch that wrote it (eviction waits for it).
    pub written: u64,
}

/// Conversation caches of the broker.
#[derive(Default)]
pub(crate) struct Convs {
    pub timelines: FastMap<ConvKey, ConvCache>,
    pub user_convs: FastMap<(u64, ConvKey), UserConvSlot>,
    /// Records staged or in flight, newest version of each.
    pub pending: super::records::Pending,
    /// Groups' membership rows.
    pub groups: FastMap<u64, super::groups::GroupCache>,
}

/// Conversation writes staged since the last batch was handed out.
#[derive(Default)]
pub(crate) struct StagedConvs {
    /// Records to store (new ones, and recall markers overwriting old ones).
    pub records: Vec<(ConvKey, Arc<ConvRecord>)>,
    pub dirty_timelines: Vec<ConvKey>,
    pub dirty_user_convs: Vec<(u64, ConvKey)>,
    pub hides: Vec<(u64, ConvKey, u64)>,
    pub trims: Vec<(ConvKey, u64)>,
    /// Group membership rows: (group, user).
    pub members: Vec<(u64, u64)>,
}

impl StagedConvs {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.dirty_timelines.is_empty()
            && self.dirty_user_convs.is_empty()
            && self.hides.is_empty()
            && self.trims.is_empty()
            && self.members.is_empty()
    }
}

impl<S: Store> Broker<S> {
    /// The storage timeline of `conv`, loaded on first use (one hash
    /// lookup when cached: this is on every message's path).
    pub(super) fn timeline_mut(&mut self, conv: ConvKey) -> Result<&mut ConvCache, String> {
        match self.convs.timelines.entry(conv) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(v) => {
                let meta = match self.store.conv_meta(&conv) {
                    Ok(m) => m,
                    Err(e) => return Err(read_failed(&mut self.events, e)),
                };
                Ok(v.insert(ConvCache {
                    meta: meta.unwrap_or_default(),
                    dirty: false,
                    written: 0,
                    swept_at: None,
                }))
            }
        }
    }

    /// `user`'s state in `conv`, loaded on first use (one hash lookup
    /// when cached).
    pub(super) fn user_conv_mut(
        &mut self,
        user: u64,
        conv: ConvKey,
    ) -> Result<&mut UserConvSlot, String> {
        match self.convs.user_convs.entry((user, conv)) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(v) => {
                let state = match self.store.user_conv(user, &conv) {
                    Ok(s) => s.unwrap_or_default(),
                    Err(e) => return Err(read_failed(&mut self.events, e)),
                };
                Ok(v.insert(UserConvSlot {
                    written_version: state.version,
                    state,
                    dirty: false,
                    written: 0,
                }))
            }
        }
    }

    /// Drops clean cache entries once the caches outgrow
    /// `conv_cache_entries`: the store has them, and a long-running broker
    /// touches every conversation eventually (the retention walk does).
    /// Only entries neither staged nor written by a batch still in flight:
    /// their view is the store's, and loading them again gives the same.
    pub(super) fn evict_conv_caches(&mut self) {
        let max = self.cfg.conv_cache_entries;
        let durable = self.durable_commit;
        if self.convs.timelines.len() > max {
            self.convs
                .timelines
                .retain(|_, t| t.dirty || t.written > durable);
        }
        if self.convs.user_convs.len() > max {
            self.convs
                .user_convs
                .retain(|_, s| s.dirty || s.written > durable);
        }
        if self.convs.groups.len() > max {
            self.convs
                .groups
                .retain(|_, g| !g.dirty.is_empty() || g.written > durable);
        }
    }

    /// Stages a record (new, or a recall marker replacing one).
    pub(super) fn stage_record(&mut self, conv: ConvKey, record: Arc<ConvRecord>) {
        let trimmed = self.convs.timelines.get(&conv).map(|t| t.meta.trimmed);
        if trimmed.is_some_and(|t| record.conv_seq <= t) {
            return; // past history retention: a marker would outlive it
        }
        if let ConvKey::Group(g) = conv {
            self.index_record(g, &record);
        }
        self.convs.pending.insert(conv, Arc::clone(&record));
        self.staged.convs.records.push((conv, record));
    }

    /// Marks `conv`'s metadata for the next batch.
    pub(super) fn mark_timeline_dirty(&mut self, conv: ConvKey) {
        if let Some(t) = self.convs.timelines.get_mut(&conv) {
            if !t.dirty {
                t.dirty = true;
                self.staged.convs.dirty_timelines.push(conv);
            }
        }
    }

    /// Applies `change` to `user`'s state in `conv`; if it reports a change,
    /// the state takes the user's next list version and is staged. Returns
    /// whether it changed.
    pub(super) fn update_user_conv(
        &mut self,
        user: u64,
        conv: ConvKey,
        change: impl FnOnce(&mut ConvState) -> bool,
    ) -> Result<bool, String> {
        let before = self.user_conv_mut(user, conv)?.state;
        let mut after = before;
        if !change(&mut after) {
            return Ok(false);
        }
        let u = self.inbox_mut(user)?;
        u.meta.list_version += 1;
        after.version = u.meta.list_version;
        u.meta.total_unread = (u.meta.total_unread + after.unread).saturating_sub(before.unread);
        self.mark_user_dirty(user);
        if let (ConvKey::Group(g), true) = (conv, after.read_seq != before.read_seq) {
            // "Read by N": the member's cursor moves, O(log records).
            if let Some(c) = self.convs.groups.get_mut(&g) {
                if c.reads.cursor(user).is_some() {
                    c.reads.set(user, after.read_seq);
                }
            }
        }
        let slot = self.user_conv_mut(user, conv)?;
        slot.state = after;
        if !slot.dirty {
            slot.dirty = true;
            self.staged.convs.dirty_user_convs.push((user, conv));
        }
        Ok(true)
    }
}

/// Reports a failed store read as an event; returns its text.
fn read_failed(events: &mut VecDeque<BrokerEvent>, e: impl std::fmt::Display) -> String {
    let error = e.to_string();
    events.push_back(BrokerEvent::StoreReadFailed {
        error: error.clone(),
    });
    error
}
