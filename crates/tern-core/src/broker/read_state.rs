//! Read positions and deletions for one user (seed 004's badges that agree
//! on every device): version 1's READ and version 2's MARK_READ move the
//! reader's read position and send the READ receipt; DELETE hides history
//! for the deleting user only. Each change takes a new list version and, for
//! version 2 devices, an entry in the user's own sync timeline.

use super::uplink::{Applied, Op};
use super::Broker;
use crate::conv::ConvKey;
use crate::store::{Store, SyncEntry, SyncItem};
use crate::time::Time;
use crate::wire::{
    ConvKind, ConvRef, Delete, DeleteScope, ErrorCode, MarkRead, Read, ReceiptStatus,
};

impl<S: Store> Broker<S> {
    /// Version 1 READ: the receipt as before, and, when the message read is
    /// among the conversation's newest records, the reader's read position.
    pub(super) fn read_v1(&mut self, now: Time, op: Op, f: Read) -> Applied {
        match self.may_address(f.peer) {
            None => return Applied::Retry,
            Some(false) => return Applied::Refused(ErrorCode::UnknownRecipient),
            Some(true) => {}
        }
        let key = ConvKey::of(op.user, ConvRef::direct(f.peer));
        let found = self.find_message(key, f.peer, f.target_device, f.target_seq);
        let Ok(found) = found else {
            return Applied::Retry;
        };
        let conv_seq = found.map_or(0, |r| r.conv_seq);
        if conv_seq != 0 && self.move_read_position(now, op, key, conv_seq).is_err() {
            return Applied::Retry;
        }
        let online = self.send_read_receipt(
            now,
            op,
            key,
            f.conv,
            conv_seq,
            f.target_device,
            f.target_seq,
        );
        Applied::Done { online }
    }

    /// Version 2 MARK_READ.
    pub(super) fn mark_read(&mut self, now: Time, op: Op, f: MarkRead) -> Applied {
        let key = ConvKey::of(op.user, f.conv);
        match self.may_use(op.user, key, false) {
            None => return Applied::Retry,
            Some(false) => return Applied::Refused(ErrorCode::NoSuchConversation),
            Some(true) => {}
        }
        let Ok(read_to) = self.move_read_position(now, op, key, f.up_to) else {
            return Applied::Retry;
        };
        let peer = f.conv.id;
        // Groups send no READ receipts (`groups.md`).
        if f.receipt_seq == 0 || peer == op.user || f.conv.kind != ConvKind::Direct {
            return Applied::Done { online: false };
        }
        match self.may_address(peer) {
            None => return Applied::Retry,
            Some(false) => return Applied::Refused(ErrorCode::UnknownRecipient),
            Some(true) => {}
        }
        let online =
            self.send_read_receipt(now, op, key, 0, read_to, f.receipt_device, f.receipt_seq);
        Applied::Done { online }
    }

    /// DELETE, for the deleting user only.
    pub(super) fn delete_for_me(&mut self, now: Time, op: Op, f: Delete) -> Applied {
        let key = ConvKey::of(op.user, f.conv);
        match self.may_use(op.user, key, false) {
            None => return Applied::Retry,
            Some(false) => return Applied::Refused(ErrorCode::NoSuchConversation),
            Some(true) => {}
        }
        let user = op.user;
        if self.group_catch_up_all(user, key).is_err() {
            return Applied::Retry;
        }
        let changed = match f.scope {
            DeleteScope::Conversation => self.update_user_conv(user, key, |s| {
                let before = s.cleared_to;
                s.on_clear(f.target);
                s.cleared_to != before
            }),
            DeleteScope::Message => {
                let record = match self.record_at(key, f.target) {
                    Ok(Some(r)) => r,
                    Ok(None) => return Applied::Refused(ErrorCode::NoSuchMessage),
                    Err(_) => return Applied::Retry,
                };
                self.staged.convs.hides.push((user, key, f.target));
                self.update_user_conv(user, key, |s| {
                    let unread = record.from_user != user
                        && !record.recalled
                        && record.event.is_none()
                        && f.target > s.read_seq;
                    s.on_delete_message(unread);
                    true
                })
            }
        };
        match changed {
            Err(_) => return Applied::Retry,
            Ok(false) => return Applied::Done { online: false },
            Ok(true) => {}
        }
        self.append_private(now, op, key, f.target, SyncItem::Deleted(f.scope));
        Applied::Done { online: false }
    }

    /// Moves `op.user`'s read position in `key` to `up_to` (clamped); on a
    /// change the user's other devices get a read entry. Returns the read
    /// position after the move.
    fn move_read_position(
        &mut self,
        now: Time,
        op: Op,
        key: ConvKey,
        up_to: u64,
    ) -> Result<u64, String> {
        self.group_catch_up_all(op.user, key)?;
        let s = self.user_conv_mut(op.user, key)?.state;
        let target = up_to.min(s.last_seq);
        if target <= s.read_seq {
            return Ok(s.read_seq);
        }
        let unread = if target < s.last_seq {
            self.count_unread(op.user, key, target, s.last_seq)?
        } else {
            0
        };
        self.update_user_conv(op.user, key, |s| s.on_read(target, |_| unread))?;
        self.append_private(now, op, key, target, SyncItem::Read);
        Ok(target)
    }

    /// Messages from other users in `after+1 ..= last` of `key` that `user`
    /// has not deleted: what stays unread when the read position is `after`.
    fn count_unread(
        &mut self,
        user: u64,
        key: ConvKey,
        after: u64,
        last: u64,
    ) -> Result<u64, String> {
        let records = self.records_between(key, after, last)?;
        let hidden = self
            .store
            .hidden(user, &key, after + 1, last)
            .map_err(|e| e.to_string())?;
        Ok(records
            .iter()
            .filter(|r| {
                r.from_user != user
                    && !r.recalled
                    && r.event.is_none()
                    && hidden.binary_search(&r.conv_seq).is_err()
            })
            .count() as u64)
    }

    /// A READ receipt to the other user of direct conversation `key`.
    #[allow(clippy::too_many_arguments)]
    fn send_read_receipt(
        &mut self,
        now: Time,
        op: Op,
        key: ConvKey,
        topic: u64,
        conv_seq: u64,
        target_device: u32,
        target_seq: u64,
    ) -> bool {
        let Some((lo, hi)) = key.direct_users() else {
            return false;
        };
        let peer = if lo == op.user { hi } else { lo };
        let entry = SyncEntry {
            conv: key,
            conv_seq,
            topic,
            from_user: op.user,
            from_device: op.device,
            from_seq: op.seq,
            time_ms: self.wall_ms(now),
            shared: true,
            item: SyncItem::Receipt {
                status: ReceiptStatus::Read,
                target_device,
                target_seq,
            },
        };
        self.append(now, peer, entry)
    }

    /// An entry only version 2 devices see, in `op.user`'s own timeline
    /// (none while a version 1 device of the user is registered: the list
    /// carries the change to version 2 devices instead).
    pub(super) fn append_private(
        &mut self,
        now: Time,
        op: Op,
        key: ConvKey,
        conv_seq: u64,
        item: SyncItem,
    ) {
        if !self.may_write_private(op.user) {
            return;
        }
        let entry = SyncEntry {
            conv: key,
            conv_seq,
            topic: 0,
            from_user: op.user,
            from_device: op.device,
            from_seq: op.seq,
            time_ms: self.wall_ms(now),
            shared: false,
            item,
        };
        self.append(now, op.user, entry);
    }
}
