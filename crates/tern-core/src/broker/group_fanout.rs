//! Hybrid fan-out for groups (`proto-spec/groups.md`, "Fan-out"; seed
//! 003). Up to `group_write_fanout_max` current members, every record of a
//! group goes into every member's sync timeline and moves every member's
//! state (write fan-out). Past it (read fan-out) a record is stored once, in
//! the group's storage timeline, and goes only to the sync timelines of
//! users with a device online (the live push), of its author (its other
//! devices) and of the user a membership event is about. Offline members
//! are not touched: their state falls behind, and is caught up from the
//! group's message index when they next log in, read, delete or receive
//! again. So storing a message costs O(1) store writes per offline member:
//! none.
//!
//! The mode is a function of the current member count, which is durable
//! with the records in the same batches, so it needs no row of its own and
//! a crash can never leave it half switched. Crossing the threshold either
//! way loses nothing: a state that fell behind is caught up before anything
//! moves it again, and a device fills the records it does not hold from
//! history by range (the list tells it the newest record).

use super::Broker;
use crate::conv::{ConvKey, Positions};
use crate::store::{ConvRecord, Store};
use crate::time::Time;
use crate::wire::ListRequest;

/// Records read per store call while building a group's message index.
const INDEX_PAGE: usize = 1024;
/// Most groups a login catches up on (a user in more large groups than
/// this gets the rest caught up when it reads or receives in them).
const LOGIN_CATCH_UP: usize = 256;

/// Whether a record counts as an unread message for the members it reaches.
fn counts(r: &ConvRecord) -> bool {
    r.event.is_none() && !r.recalled
}

impl<S: Store> Broker<S> {
    /// Whether `group` (loaded) is in read fan-out now.
    pub(super) fn read_fanout(&self, group: u64) -> bool {
        self.convs
            .groups
            .get(&group)
            .is_some_and(|g| g.current_count > self.cfg.group_write_fanout_max)
    }

    /// Whether `user` has a device online (users with none need not be
    /// cached, so a user not in the cache is offline: no store read).
    pub(super) fn online_cached(&self, user: u64) -> bool {
        self.users.get(&user).is_some_and(|u| u.online())
    }

    /// The message index of `group`, built on first use from its records
    /// (stored ones, then staged ones on top).
    fn group_index(&mut self, group: u64) -> Result<&mut Positions, String> {
        let key = ConvKey::Group(group);
        let built = self.group_mut(group)?.msgs.is_some();
        if !built {
            let (head, trimmed) = {
                let t = self.timeline_mut(key)?;
                (t.meta.head, t.meta.trimmed)
            };
            let mut idx = Positions::default();
            let mut before = head.saturating_add(1);
            loop {
                let page = self
                    .store
                    .read_conv(&key, before, INDEX_PAGE)
                    .map_err(|e| e.to_string())?;
                let Some(first) = page.first().map(|r| r.conv_seq) else {
                    break;
                };
                for r in &page {
                    idx.set(r.conv_seq, counts(r));
                }
                if page.len() < INDEX_PAGE || first <= trimmed + 1 {
                    break;
                }
                before = first;
            }
            for (seq, r) in self.convs.pending.range(&key, 0, head) {
                idx.set(*seq, counts(r));
            }
            idx.cover(head);
            self.group_mut(group)?.msgs = Some(idx);
        }
        Ok(self
            .convs
            .groups
            .get_mut(&group)
            .and_then(|g| g.msgs.as_mut())
            .expect("built above"))
    }

    /// A new record (or a recall marker) of `group`: the index, if built,
    /// learns whether it counts.
    pub(super) fn index_record(&mut self, group: u64, r: &ConvRecord) {
        if let Some(idx) = self
            .convs
            .groups
            .get_mut(&group)
            .and_then(|g| g.msgs.as_mut())
        {
            if r.recalled || r.conv_seq > idx.covered() {
                idx.set(r.conv_seq, counts(r));
            }
        }
    }

    /// Brings `user`'s state in `group` up to record `upto` if it fell
    /// behind while the group did not write to it: the newest record it
    /// sees, and the messages since then as unread (its own messages never
    /// fall behind: posting moves the author's state). A state that is up
    /// to date costs one lookup.
    pub(super) fn group_catch_up(
        &mut self,
        user: u64,
        group: u64,
        upto: u64,
    ) -> Result<(), String> {
        let key = ConvKey::Group(group);
        let Some(row) = self.group_mut(group)?.rows.get(&user).copied() else {
            return Ok(());
        };
        let visible = if row.left > 0 {
            upto.min(row.left)
        } else {
            upto
        };
        let s = self.user_conv_mut(user, key)?.state;
        if visible <= s.last_seq {
            return Ok(());
        }
        let low = s.last_seq.max(s.read_seq).max(row.joined.saturating_sub(1)) + 1;
        let new = self.group_index(group)?.count(low, visible);
        self.stats.group_states_caught_up += 1;
        self.update_user_conv(user, key, |st| {
            st.last_seq = visible;
            st.unread += new;
            true
        })?;
        Ok(())
    }

    /// The same up to the group's newest record (before a read position
    /// or a deletion moves, which are clamped to the newest record seen).
    pub(super) fn group_catch_up_all(&mut self, user: u64, key: ConvKey) -> Result<(), String> {
        let ConvKey::Group(g) = key else {
            return Ok(());
        };
        let head = self.timeline_mut(key)?.meta.head;
        self.group_catch_up(user, g, head)
    }

    /// At login: the user's groups caught up, so that the list the device
    /// asks for next shows their counters. Returns whether anything was
    /// staged (the list then waits for it to be durable).
    pub(super) fn catch_up_groups(&mut self, user: u64) -> bool {
        let Ok(groups) = self.store.user_groups(user, 0, LOGIN_CATCH_UP) else {
            return false;
        };
        let mut staged = false;
        for g in groups {
            let key = ConvKey::Group(g);
            self.member_online(g, user);
            let Ok(before) = self.user_conv_mut(user, key).map(|s| s.state.version) else {
                continue;
            };
            if self.group_catch_up_all(user, key).is_err() {
                continue;
            }
            staged |= self
                .user_conv_mut(user, key)
                .is_ok_and(|s| s.state.version != before);
        }
        if staged {
            self.list_holds.insert(user, self.next_commit);
        }
        staged
    }

    /// `user` has a device online and is a current member of `group`
    /// (loaded): it joins the group's online set.
    pub(super) fn member_online(&mut self, group: u64, user: u64) {
        if !self.online_cached(user) {
            return;
        }
        let Some(g) = self.convs.groups.get_mut(&group) else {
            return;
        };
        if g.current(user).is_some() && g.online.insert(user) {
            self.note_user_group(user, group);
        }
    }

    /// Remembers that `group`'s online set lists `user`.
    pub(super) fn note_user_group(&mut self, user: u64, group: u64) {
        if let Some(u) = self.users.get_mut(&user) {
            if !u.groups.contains(&group) {
                u.groups.push(group);
            }
        }
    }

    /// A session ended: if it was the user's last, the user leaves the
    /// online sets of its groups.
    pub(super) fn user_went_offline(&mut self, user: u64) {
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        if u.online() {
            return;
        }
        for g in std::mem::take(&mut u.groups) {
            if let Some(c) = self.convs.groups.get_mut(&g) {
                c.online.remove(&user);
            }
        }
    }

    /// Who gets an entry for a record of `group` under read fan-out: its
    /// author, the user an event is about, and the members online.
    pub(super) fn read_fanout_targets(
        &self,
        group: u64,
        from: u64,
        subject: Option<u64>,
    ) -> Vec<u64> {
        let mut users: Vec<u64> = self
            .convs
            .groups
            .get(&group)
            .map(|g| g.online.iter().copied().collect())
            .unwrap_or_default();
        users.extend([Some(from), subject].into_iter().flatten());
        users.sort_unstable();
        users.dedup();
        users
    }

    /// A LIST that must wait: its user's login catch-up is not durable yet
    /// (lists answer from durable state only). One held request per
    /// session: a newer one replaces it.
    pub(super) fn hold_list(&mut self, sid: u64, user: u64, req: &ListRequest) -> bool {
        let Some(&id) = self.list_holds.get(&user) else {
            return false;
        };
        self.held_lists.retain(|(s, _, _)| *s != sid);
        self.held_lists.push((sid, id, req.clone()));
        true
    }

    /// Batch `id` is durable (`None`: a batch failed, so nothing staged
    /// before will be, and the held lists are answered from what is).
    pub(super) fn release_lists(&mut self, now: Time, id: Option<u64>) {
        if self.held_lists.is_empty() && self.list_holds.is_empty() {
            return;
        }
        let done = |hold: u64| id.is_none_or(|id| hold <= id);
        self.list_holds.retain(|_, hold| !done(*hold));
        let held = std::mem::take(&mut self.held_lists);
        for (sid, hold, req) in held {
            if !done(hold) {
                self.held_lists.push((sid, hold, req));
            } else if self.sessions.contains_key(&sid) {
                self.on_list(now, sid, req);
            }
        }
    }
}
