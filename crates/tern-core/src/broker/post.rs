//! A message into a conversation (POST, and version 1's SEND, which posts to
//! the direct conversation with `to`): store first, then sync (seed 003).
//! The record takes the conversation's next `conv_seq` in its storage
//! timeline; every participant's sync timeline gets an entry naming it (the
//! sender's own devices too, unless a version 1 device of the sender could
//! not skip it); every participant's conversation state moves. All of it
//! goes into the same batch, so it is durable together or not at all.

use std::sync::Arc;

use bytes::Bytes;

use super::uplink::{Applied, Op};
use super::Broker;
use crate::conv::ConvKey;
use crate::store::{ConvRecord, Store, SyncEntry, SyncItem};
use crate::time::Time;
use crate::wire::{ConvKind, ConvRef, ErrorCode};

impl<S: Store> Broker<S> {
    /// Applies a POST (or SEND) of `op` into `conv` as its user names it.
    pub(super) fn post(
        &mut self,
        now: Time,
        op: Op,
        conv: ConvRef,
        topic: u64,
        msg_type: u64,
        payload: Bytes,
    ) -> Applied {
        if payload.len() > self.cfg.max_payload {
            return Applied::Refused(ErrorCode::PayloadTooLarge);
        }
        let key = ConvKey::of(op.user, conv);
        match conv.kind {
            ConvKind::Direct => match self.may_address(conv.id) {
                None => return Applied::Retry,
                Some(false) => return Applied::Refused(ErrorCode::UnknownRecipient),
                Some(true) => {}
            },
            ConvKind::Group | ConvKind::System => match self.may_use(op.user, key, true) {
                None => return Applied::Retry,
                Some(false) => return Applied::Refused(ErrorCode::NoSuchConversation),
                Some(true) => {}
            },
        }
        self.sweep_history(now, key);
        let Ok(t) = self.timeline_mut(key) else {
            return Applied::Retry;
        };
        t.meta.head += 1;
        let conv_seq = t.meta.head;
        self.mark_timeline_dirty(key);
        let record = Arc::new(ConvRecord {
            conv_seq,
            from_user: op.user,
            from_device: op.device,
            from_seq: op.seq,
            time_ms: self.wall_ms(now),
            topic,
            msg_type,
            payload,
            recalled: false,
            event: None,
        });
        self.stage_record(key, Arc::clone(&record));
        let online = self.deliver_record(now, key, record);
        Applied::Done { online }
    }

    /// Lists a stored record in the sync timelines of its conversation's
    /// users (a group's current members) and moves their conversation
    /// states. Returns whether another participant has a device online.
    pub(super) fn deliver_record(
        &mut self,
        now: Time,
        key: ConvKey,
        record: Arc<ConvRecord>,
    ) -> bool {
        let (from, conv_seq) = (record.from_user, record.conv_seq);
        let entry = |shared| SyncEntry {
            conv: key,
            conv_seq,
            topic: record.topic,
            from_user: from,
            from_device: record.from_device,
            from_seq: record.from_seq,
            time_ms: record.time_ms,
            shared,
            item: SyncItem::Message(record.clone()),
        };
        let group = match key {
            ConvKey::Group(g) => Some(g),
            _ => None,
        };
        // Read fan-out: only members online, the author and the user an
        // event is about get the entry; the others catch up later.
        let read_fanout = group.is_some_and(|g| self.read_fanout(g));
        let subject = record.event.map(|e| e.user);
        let mut online = false;
        let users = match group {
            Some(g) if read_fanout => {
                let targets = self.read_fanout_targets(g, from, subject);
                let members = self.convs.groups.get(&g).map_or(0, |c| c.current_count);
                self.stats.group_entries_skipped += members.saturating_sub(targets.len()) as u64;
                targets
            }
            _ => self.participants_of(key),
        };
        for user in users {
            let own = user == from;
            let event = record.event.is_some();
            if let Some(g) = group {
                if read_fanout && !own && subject != Some(user) && !self.online_cached(user) {
                    self.stats.group_entries_skipped += 1;
                    continue;
                }
                // A state left behind by read fan-out first catches up (a
                // store that cannot be read leaves it behind: never the
                // entry).
                let _ = self.group_catch_up(user, g, conv_seq - 1);
                // Group entries only version 2 devices see, the sender's
                // own copy included.
                let o = self.append_group_entry(now, user, entry(false));
                online |= o && !own;
            } else if own && self.others_of(key, from) {
                // The sender's copy, for its other devices (and the sending
                // one, which learns the conv_seq from it).
                if self.may_write_private(user) {
                    self.append(now, user, entry(false));
                }
            } else {
                online |= self.append(now, user, entry(true));
            }
            let _ = self.update_user_conv(user, key, |s| {
                if event {
                    s.on_event(conv_seq);
                } else {
                    s.on_message(conv_seq, own);
                }
                true
            });
        }
        online
    }

    /// Whether `key` has participants other than `user` (notes to self do
    /// not: their one entry is the message itself).
    fn others_of(&self, key: ConvKey, user: u64) -> bool {
        participants(key).into_iter().any(|u| u != user)
    }

    /// Whether entries only version 2 knows may go to `user`'s timeline:
    /// not while a version 1 device of the user is registered.
    pub(super) fn may_write_private(&mut self, user: u64) -> bool {
        self.user_mut(user).is_ok_and(|u| !u.has_v1_device())
    }
}

/// The users of a direct conversation (a group's are its members:
/// [`Broker::participants_of`]).
pub(super) fn participants(key: ConvKey) -> Vec<u64> {
    match key {
        ConvKey::Direct { lo, hi } if lo == hi => vec![lo],
        ConvKey::Direct { lo, hi } => vec![lo, hi],
        ConvKey::Group(_) | ConvKey::System(_) => Vec::new(),
    }
}
