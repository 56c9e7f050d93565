//! Recall for everyone: the record becomes a recall marker in the storage
//! timeline (its place, sender and time stay; its content is gone for good),
//! and a recall entry goes to every participant's sync timeline, so that it
//! takes effect at once on every device (seed 004). Version 1's RECALL names
//! the message by its id; version 2's RETRACT by its `conv_seq`.

use super::uplink::{Applied, Op};
use super::Broker;
use crate::conv::ConvKey;
use crate::store::{ConvRecord, Store, SyncEntry, SyncItem};
use crate::time::Time;
use crate::wire::{ConvRef, ErrorCode, Recall};

impl<S: Store> Broker<S> {
    /// Version 1 RECALL of a message this device sent to `f.to`.
    pub(super) fn recall_v1(&mut self, now: Time, op: Op, f: Recall) -> Applied {
        if f.target_seq >= f.seq {
            return Applied::Refused(ErrorCode::NoSuchMessage);
        }
        match self.may_address(f.to) {
            None => return Applied::Retry,
            Some(false) => return Applied::Refused(ErrorCode::UnknownRecipient),
            Some(true) => {}
        }
        let key = ConvKey::of(op.user, ConvRef::direct(f.to));
        let Ok(found) = self.find_message(key, op.user, op.device, f.target_seq) else {
            return Applied::Retry;
        };
        match found {
            Some(record) if !record.recalled => Applied::Done {
                online: self.recall_record(now, op, key, record),
            },
            // Not among the newest records (or recalled already): as in
            // version 1, the recall goes to the receiver's timeline only.
            _ => {
                let entry = SyncEntry {
                    conv: key,
                    conv_seq: found.map_or(0, |r| r.conv_seq),
                    topic: f.conv,
                    from_user: op.user,
                    from_device: op.device,
                    from_seq: op.seq,
                    time_ms: self.wall_ms(now),
                    shared: true,
                    item: SyncItem::Recall {
                        target_device: op.device,
                        target_seq: f.target_seq,
                    },
                };
                Applied::Done {
                    online: self.append(now, f.to, entry),
                }
            }
        }
    }

    /// Version 2 RETRACT of record `target` of `conv`: any device of the
    /// sender may recall the sender's message.
    pub(super) fn retract(&mut self, now: Time, op: Op, conv: ConvRef, target: u64) -> Applied {
        let key = ConvKey::of(op.user, conv);
        match self.may_use(op.user, key, true) {
            None => return Applied::Retry,
            Some(false) => return Applied::Refused(ErrorCode::NoSuchConversation),
            Some(true) => {}
        }
        match self.record_at(key, target) {
            Err(_) => Applied::Retry,
            Ok(Some(r)) if r.from_user == op.user && !r.recalled && r.event.is_none() => {
                Applied::Done {
                    online: self.recall_record(now, op, key, r),
                }
            }
            Ok(_) => Applied::Refused(ErrorCode::NoSuchMessage),
        }
    }

    /// Replaces `record` by its recall marker and tells every participant.
    /// Returns whether another participant has a device online.
    fn recall_record(&mut self, now: Time, op: Op, key: ConvKey, record: ConvRecord) -> bool {
        let marker = record.recalled();
        self.stage_record(key, std::sync::Arc::new(marker));
        let time_ms = self.wall_ms(now);
        let entry = |shared| SyncEntry {
            conv: key,
            conv_seq: record.conv_seq,
            topic: record.topic,
            from_user: op.user,
            from_device: op.device,
            from_seq: op.seq,
            time_ms,
            shared,
            item: SyncItem::Recall {
                target_device: record.from_device,
                target_seq: record.from_seq,
            },
        };
        let mut online = false;
        let users = self.participants_of(key);
        let group = match key {
            ConvKey::Group(g) => Some(g),
            _ => None,
        };
        let read_fanout = group.is_some_and(|g| self.read_fanout(g));
        for &user in &users {
            // Whether the user's state counted the message: a group member
            // added after it never saw it, and a state left behind by read
            // fan-out has not counted it yet (it never will: the index
            // knows it is recalled).
            let saw = group.is_none_or(|g| {
                self.convs
                    .groups
                    .get(&g)
                    .and_then(|c| c.rows.get(&user))
                    .is_some_and(|m| m.joined <= record.conv_seq)
            });
            let Ok(state) = self.user_conv_mut(user, key).map(|s| s.state) else {
                continue;
            };
            let counted = saw
                && state.last_seq >= record.conv_seq
                && user != record.from_user
                && record.conv_seq > state.read_seq;
            // Read fan-out: offline members get no entry, and their state
            // moves only if it counted the message.
            if read_fanout && user != op.user && !self.online_cached(user) {
                if counted {
                    let _ = self.update_user_conv(user, key, |s| {
                        s.unread = s.unread.saturating_sub(1);
                        true
                    });
                }
                continue;
            }
            // The marker changes every participant's preview, and a recalled
            // message no longer counts as unread.
            let _ = self.update_user_conv(user, key, |s| {
                if counted {
                    s.unread = s.unread.saturating_sub(1);
                }
                true
            });
            if group.is_some() {
                let o = self.append_group_entry(now, user, entry(false));
                online |= o && user != op.user;
            } else if user == op.user && users.len() > 1 {
                if self.may_write_private(user) {
                    let e = entry(false);
                    self.append(now, user, e);
                }
            } else {
                let e = entry(true);
                online |= self.append(now, user, e);
            }
        }
        online
    }
}
