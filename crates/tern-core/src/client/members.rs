//! A page of a group's members (MEMBERS, `proto-spec/groups.md`): the
//! MEMBER frames carrying the request's id, each user once, closed by
//! MEMBERS_END. A page that arrives short (a lost datagram) is asked for
//! again under a new id; one whose end never arrives is the application's
//! to ask again (there is no timer: the list is fetched on demand, per
//! screen).

use std::collections::BTreeMap;

use crate::time::Time;
use crate::wire::{Frame, Member, MembersEnd, MembersRequest, ReadCountsRequest};

use super::{ClientConn, ClientEvent};

/// A members page, every member of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersPage {
    /// The group.
    pub group: u64,
    /// Current members with a user id above the request's `after`, by
    /// ascending user id.
    pub members: Vec<Member>,
    /// The answer's end: `next_after`, `complete`, the member count.
    pub end: MembersEnd,
}

/// The members request under way.
#[derive(Debug, Default)]
pub(super) struct MembersFetch {
    req: Option<MembersRequest>,
    got: BTreeMap<u64, Member>,
}

impl ClientConn {
    /// Asks for up to `max` current members of `group` with a user id above
    /// `after`, answered as a [`ClientEvent::Members`]. Replaces a request
    /// under way. False in a version 1 session.
    pub fn request_members(&mut self, now: Time, group: u64, after: u64, max: u64) -> bool {
        self.request_member_page(now, group, after, max, 0)
    }

    /// Asks who read record `conv_seq` of `group`: up to `max` current
    /// members other than its author, with a user id above `after`, whose
    /// read position is at or past it; answered as a
    /// [`ClientEvent::Members`]. Replaces a request under way. False in a
    /// version 1 session.
    pub fn request_readers(
        &mut self,
        now: Time,
        group: u64,
        conv_seq: u64,
        after: u64,
        max: u64,
    ) -> bool {
        conv_seq != 0 && self.request_member_page(now, group, after, max, conv_seq)
    }

    fn request_member_page(
        &mut self,
        _now: Time,
        group: u64,
        after: u64,
        max: u64,
        read_at: u64,
    ) -> bool {
        if self.version == crate::wire::VERSION {
            return false;
        }
        let req = MembersRequest {
            request_id: self.request_id(),
            group,
            after,
            max,
            read_at,
        };
        self.members = MembersFetch {
            req: Some(req.clone()),
            got: BTreeMap::new(),
        };
        self.control.push_back(Frame::Members(req));
        true
    }

    /// Asks how many members read each of `count` (at most 64) records of
    /// `group` from `low`, answered as a [`ClientEvent::ReadCounts`] with
    /// the returned request id (one datagram; lost, the application asks
    /// again). `None` in a version 1 session or for `low` 0.
    pub fn request_read_counts(&mut self, group: u64, low: u64, count: u8) -> Option<u64> {
        if self.version == crate::wire::VERSION || low == 0 {
            return None;
        }
        let req = ReadCountsRequest {
            request_id: self.request_id(),
            group,
            low,
            count,
        };
        let id = req.request_id;
        self.control.push_back(Frame::ReadCountsRequest(req));
        Some(id)
    }

    pub(super) fn on_member(&mut self, m: Member) {
        if self
            .members
            .req
            .as_ref()
            .is_some_and(|r| r.request_id == m.request_id)
        {
            self.members.got.insert(m.user, m);
        }
    }

    pub(super) fn on_members_end(&mut self, now: Time, end: MembersEnd) {
        let Some(req) = self.members.req.clone() else {
            return;
        };
        if req.request_id != end.request_id {
            return;
        }
        if (self.members.got.len() as u64) < end.count {
            // A MEMBER frame was lost: the same page again.
            self.request_member_page(now, req.group, req.after, req.max, req.read_at);
            return;
        }
        let fetch = std::mem::take(&mut self.members);
        self.events.push_back(ClientEvent::Members(MembersPage {
            group: req.group,
            members: fetch.got.into_values().collect(),
            end,
        }));
    }
}
