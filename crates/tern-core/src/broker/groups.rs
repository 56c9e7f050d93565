//! Groups (`proto-spec/groups.md`): membership operations from the uplink
//! (exactly once, like POST), membership events as records of the group's
//! storage timeline, and fan-out of every group record to the sync
//! timelines of the group's current members (all of them up to the write
//! fan-out threshold, those online past it: `group_fanout.rs`).
//!
//! A membership row says which stretch of the timeline a user sees: from
//! the record that added it to the record that removed it. An added user
//! gets its own "added" record; a removed (or leaving) user gets its
//! "removed" record and nothing after it. Rows are cached per group like
//! timelines and staged into the same batch as the records, so a change is
//! durable together with the events that announce it, or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;

use super::uplink::{Applied, Op};
use super::Broker;
use crate::conv::{ConvKey, ReadCounts};
use crate::store::{ConvRecord, GroupMember, Store, SyncEntry};
use crate::time::Time;
use crate::wire::{ErrorCode, GroupAction, GroupEvent, GroupEventKind, GroupOp, GroupRole};

/// Rows read per store call while loading a group.
const LOAD_PAGE: usize = 1024;

/// One group's membership rows, as the broker sees them.
#[derive(Default)]
pub(crate) struct GroupCache {
    /// Every user that was ever a member (staged view).
    pub rows: BTreeMap<u64, GroupMember>,
    /// Rows staged for the next batch.
    pub dirty: Vec<u64>,
    /// Id of the last batch that wrote rows (eviction waits for it).
    pub written: u64,
    /// Current members' read positions, for "read by N" (staged view).
    pub reads: ReadCounts,
    /// Current members (staged view): past the write fan-out threshold the
    /// group is in read fan-out (`group_fanout.rs`).
    pub current_count: usize,
    /// Which records count as unread messages, built when a member's state
    /// first needs catching up (`group_fanout.rs`).
    pub msgs: Option<crate::conv::Positions>,
    /// Current members with a device online: who gets a record under read
    /// fan-out, found without walking every member (`group_fanout.rs`).
    pub online: std::collections::HashSet<u64>,
}

impl GroupCache {
    /// Current members.
    pub fn members(&self) -> impl Iterator<Item = u64> + '_ {
        self.rows
            .iter()
            .filter(|(_, m)| m.current())
            .map(|(u, _)| *u)
    }

    /// `user`'s row, if it is a member now.
    pub fn current(&self, user: u64) -> Option<GroupMember> {
        self.rows.get(&user).copied().filter(GroupMember::current)
    }
}

impl<S: Store> Broker<S> {
    /// The membership rows of `group`, loaded on first use.
    pub(super) fn group_mut(&mut self, group: u64) -> Result<&mut GroupCache, String> {
        if !self.convs.groups.contains_key(&group) {
            let mut cache = GroupCache::default();
            let mut after = 0;
            loop {
                let page = self
                    .store
                    .group_members(group, after, LOAD_PAGE)
                    .map_err(|e| e.to_string())?;
                let full = page.len() == LOAD_PAGE;
                for (user, m) in page {
                    after = user;
                    cache.current_count += usize::from(m.current());
                    cache.rows.insert(user, m);
                }
                if !full {
                    break;
                }
            }
            // Read positions of the current members: one state each, once
            // per load (the load reads every row anyway).
            let key = ConvKey::Group(group);
            let members: Vec<u64> = cache.members().collect();
            for user in members {
                let read = self.user_conv_mut(user, key)?.state.read_seq;
                cache.reads.set(user, read);
                if self.online_cached(user) {
                    cache.online.insert(user);
                    self.note_user_group(user, group);
                }
            }
            self.convs.groups.insert(group, cache);
        }
        Ok(self.convs.groups.get_mut(&group).expect("inserted above"))
    }

    /// Whether `user` may use `key`: any direct conversation; a group it
    /// is a member of (`current`) or ever was. `None`: the store could not
    /// be read.
    pub(super) fn may_use(&mut self, user: u64, key: ConvKey, current: bool) -> Option<bool> {
        match key {
            ConvKey::Direct { .. } => Some(true),
            ConvKey::System(_) => Some(false),
            ConvKey::Group(g) => {
                let row = self.group_mut(g).ok()?.rows.get(&user).copied();
                Some(row.is_some_and(|m| m.current() || !current))
            }
        }
    }

    /// The users whose sync timelines list `key`'s records (a group's
    /// current members: load it first with [`Broker::may_use`]).
    pub(super) fn participants_of(&self, key: ConvKey) -> Vec<u64> {
        match key {
            ConvKey::Group(g) => self
                .convs
                .groups
                .get(&g)
                .map(|c| c.members().collect())
                .unwrap_or_default(),
            _ => super::post::participants(key),
        }
    }

    /// Applies a GROUP_OP.
    pub(super) fn group_op(&mut self, now: Time, op: Op, f: GroupOp) -> Applied {
        let mut users = f.users.clone();
        users.sort_unstable();
        users.dedup();
        if f.action == GroupAction::Create {
            if f.group != 0 {
                return Applied::Refused(ErrorCode::NotAllowed);
            }
            return self.create_group(now, op, users);
        }
        let Ok(g) = self.group_mut(f.group) else {
            return Applied::Retry;
        };
        let Some(me) = g.current(op.user) else {
            return Applied::Refused(ErrorCode::NoSuchConversation);
        };
        let count = g.current_count;
        // Only the (at most 32) named users' rows: not a copy of them all.
        let rows: BTreeMap<u64, GroupMember> = users
            .iter()
            .filter_map(|u| g.current(*u).map(|m| (*u, m)))
            .collect();
        let role_of = |u: &u64| rows.get(u).copied();
        let mut events = Vec::new();
        match f.action {
            // Answered above; a create naming a group is refused there.
            GroupAction::Create => return Applied::Refused(ErrorCode::NotAllowed),
            GroupAction::Add { admin } => {
                if !me.role.manages() || (admin && me.role != GroupRole::Owner) {
                    return Applied::Refused(ErrorCode::NotPermitted);
                }
                let new: Vec<u64> = users.into_iter().filter(|u| role_of(u).is_none()).collect();
                if count + new.len() > self.cfg.group_max_members {
                    return Applied::Refused(ErrorCode::GroupFull);
                }
                if let Some(refused) = self.check_addressable(&new) {
                    return refused;
                }
                let role = if admin {
                    GroupRole::Admin
                } else {
                    GroupRole::Member
                };
                events.extend(new.into_iter().map(|u| (GroupEventKind::Added, u, role)));
            }
            GroupAction::Remove => {
                if !me.role.manages() || users.contains(&op.user) {
                    return Applied::Refused(if me.role.manages() {
                        ErrorCode::NotAllowed
                    } else {
                        ErrorCode::NotPermitted
                    });
                }
                for u in users {
                    let Some(m) = role_of(&u) else {
                        continue; // not a member: nothing to remove
                    };
                    if m.role >= me.role {
                        return Applied::Refused(ErrorCode::NotPermitted);
                    }
                    events.push((GroupEventKind::Removed, u, m.role));
                }
            }
            GroupAction::Leave => {
                if !users.is_empty() {
                    return Applied::Refused(ErrorCode::NotAllowed);
                }
                if me.role == GroupRole::Owner {
                    return Applied::Refused(ErrorCode::NotPermitted);
                }
                events.push((GroupEventKind::Left, op.user, me.role));
            }
            GroupAction::SetRole { admin } => {
                if me.role != GroupRole::Owner {
                    return Applied::Refused(ErrorCode::NotPermitted);
                }
                let role = if admin {
                    GroupRole::Admin
                } else {
                    GroupRole::Member
                };
                for u in users {
                    match role_of(&u) {
                        None => return Applied::Refused(ErrorCode::UnknownRecipient),
                        Some(m) if m.role == GroupRole::Owner => {
                            return Applied::Refused(ErrorCode::NotPermitted)
                        }
                        Some(m) if m.role == role => {}
                        Some(_) => events.push((GroupEventKind::RoleChanged, u, role)),
                    }
                }
            }
        }
        let mut online = false;
        for (kind, user, role) in events {
            match self.group_event(now, op, f.group, kind, user, role) {
                Ok(o) => online |= o,
                Err(_) => return Applied::Retry,
            }
        }
        Applied::Done { online }
    }

    fn create_group(&mut self, now: Time, op: Op, mut users: Vec<u64>) -> Applied {
        users.retain(|u| *u != op.user);
        if users.len() + 1 > self.cfg.group_max_members {
            return Applied::Refused(ErrorCode::GroupFull);
        }
        if let Some(refused) = self.check_addressable(&users) {
            return refused;
        }
        let Some(group) = self.new_group_id() else {
            return Applied::Retry;
        };
        let mut events = vec![(GroupEventKind::Created, op.user, GroupRole::Owner)];
        events.extend(
            users
                .into_iter()
                .map(|u| (GroupEventKind::Added, u, GroupRole::Member)),
        );
        let mut online = false;
        for (kind, user, role) in events {
            match self.group_event(now, op, group, kind, user, role) {
                Ok(o) => online |= o,
                Err(_) => return Applied::Retry,
            }
        }
        Applied::Done { online }
    }

    /// `Some(refusal)` unless every one of `users` may be written to.
    fn check_addressable(&mut self, users: &[u64]) -> Option<Applied> {
        for u in users {
            match self.may_address(*u) {
                None => return Some(Applied::Retry),
                Some(false) => return Some(Applied::Refused(ErrorCode::UnknownRecipient)),
                Some(true) => {}
            }
        }
        None
    }

    /// A fresh random group id below 2^62 (never 0), unused so far.
    fn new_group_id(&mut self) -> Option<u64> {
        for _ in 0..8 {
            let id = self.rng.gen::<u64>() >> 2;
            if id == 0 {
                continue;
            }
            let key = ConvKey::Group(id);
            let used = self.timeline_mut(key).ok()?.meta.head > 0;
            let rows = !self.group_mut(id).ok()?.rows.is_empty();
            if !used && !rows {
                return Some(id);
            }
        }
        None
    }

    /// Stores one membership event as the group's next record, moves the
    /// membership row, and lists the record in the sync timelines of the
    /// members: the added user is one already, the removed one still is.
    fn group_event(
        &mut self,
        now: Time,
        op: Op,
        group: u64,
        kind: GroupEventKind,
        user: u64,
        role: GroupRole,
    ) -> Result<bool, String> {
        let key = ConvKey::Group(group);
        let t = self.timeline_mut(key)?;
        t.meta.head += 1;
        let conv_seq = t.meta.head;
        self.mark_timeline_dirty(key);
        let record = ConvRecord {
            conv_seq,
            from_user: op.user,
            from_device: op.device,
            from_seq: op.seq,
            time_ms: self.wall_ms(now),
            topic: 0,
            msg_type: 0,
            payload: Bytes::new(),
            recalled: false,
            event: Some(GroupEvent { kind, user, role }),
        };
        self.stage_record(key, std::sync::Arc::new(record.clone()));
        match kind {
            GroupEventKind::Created | GroupEventKind::Added => {
                self.set_member(group, user, |m| {
                    *m = Some(GroupMember {
                        role,
                        joined: conv_seq,
                        left: 0,
                    })
                })?;
                let read = self.user_conv_mut(user, key)?.state.read_seq;
                self.group_mut(group)?.reads.set(user, read);
                self.member_online(group, user);
            }
            GroupEventKind::RoleChanged => {
                self.set_member(group, user, |m| {
                    if let Some(m) = m {
                        m.role = role;
                    }
                })?;
            }
            GroupEventKind::Removed | GroupEventKind::Left => {}
        }
        let online = self.deliver_record(now, key, Arc::new(record));
        if kind.ends_membership() {
            self.set_member(group, user, |m| {
                if let Some(m) = m {
                    m.left = conv_seq;
                }
            })?;
            let g = self.group_mut(group)?;
            g.reads.remove(user);
            g.online.remove(&user);
        }
        Ok(online)
    }

    /// Changes `user`'s row of `group` and stages it.
    fn set_member(
        &mut self,
        group: u64,
        user: u64,
        change: impl FnOnce(&mut Option<GroupMember>),
    ) -> Result<(), String> {
        let g = self.group_mut(group)?;
        let before = g.rows.get(&user).copied();
        let mut row = before;
        change(&mut row);
        let Some(row) = row else {
            return Ok(());
        };
        let was = before.is_some_and(|m| m.current());
        match (was, row.current()) {
            (false, true) => g.current_count += 1,
            (true, false) => g.current_count = g.current_count.saturating_sub(1),
            _ => {}
        }
        g.rows.insert(user, row);
        if !g.dirty.contains(&user) {
            g.dirty.push(user);
            self.staged.convs.members.push((group, user));
        }
        Ok(())
    }

    /// A group entry for `user`'s sync timeline: only version 2 devices
    /// know groups, so none while a version 1 device of the user is
    /// registered (its version 2 devices learn from the list and history).
    pub(super) fn append_group_entry(&mut self, now: Time, user: u64, entry: SyncEntry) -> bool {
        if !self.may_write_private(user) {
            return false;
        }
        self.append(now, user, entry)
    }
}
