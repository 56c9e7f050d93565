//! Group queries (`proto-spec/groups.md`): a page of a group's members
//! (MEMBERS: the MEMBER frames carrying the request's id, each user once,
//! closed by MEMBERS_END) and read counts (READ_COUNTS). One of each is
//! under way at a time, a new request replacing the last. Like the other
//! requests they are asked again after twice the RTO without an answer
//! (a page under a new id, so its frames never mix with a late answer's),
//! again at once after a re-login (the server forgot the old session),
//! and dropped when the server refuses them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::time::Time;
use crate::wire::{Frame, Member, MembersEnd, MembersRequest, ReadCounts, ReadCountsRequest};

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

/// The group queries under way.
#[derive(Debug, Default)]
pub(super) struct GroupQueries {
    /// The members page asked for, and when it was last sent.
    req: Option<(MembersRequest, Time)>,
    got: BTreeMap<u64, Member>,
    /// The read counts asked for, and when they were last sent.
    counts: Option<(ReadCountsRequest, Time)>,
}

impl GroupQueries {
    /// When the oldest query under way is due to be asked again.
    pub(super) fn deadline(&self, rto: Duration) -> Option<Time> {
        let members = self.req.as_ref().map(|(_, at)| *at);
        let counts = self.counts.as_ref().map(|(_, at)| *at);
        members
            .into_iter()
            .chain(counts)
            .min()
            .map(|at| at + rto * 2)
    }
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
        now: Time,
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
        self.members.req = Some((req.clone(), now));
        self.members.got.clear();
        self.control.push_back(Frame::Members(req));
        true
    }

    /// Asks how many members read each of `count` (at most 64) records of
    /// `group` from `low`, answered as a [`ClientEvent::ReadCounts`] with
    /// the returned request id (asked again under the same id until it
    /// comes, or a newer request replaces it). `None` in a version 1
    /// session or for `low` 0.
    pub fn request_read_counts(
        &mut self,
        now: Time,
        group: u64,
        low: u64,
        count: u8,
    ) -> Option<u64> {
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
        self.members.counts = Some((req.clone(), now));
        self.control.push_back(Frame::ReadCountsRequest(req));
        Some(id)
    }

    pub(super) fn on_read_counts(&mut self, c: ReadCounts) {
        if self
            .members
            .counts
            .as_ref()
            .is_some_and(|(r, _)| r.request_id == c.request_id)
        {
            self.members.counts = None;
        }
        self.events.push_back(ClientEvent::ReadCounts(c));
    }

    /// Asks again for the group queries under way: overdue ones, or all
    /// after a re-login (`rto` None).
    pub(super) fn resend_group_queries(&mut self, now: Time, rto: Option<Duration>) {
        let due = |at: Time| rto.is_none_or(|rto| now.saturating_since(at) >= rto * 2);
        if let Some((req, _)) = self.members.req.clone().filter(|(_, at)| due(*at)) {
            self.request_member_page(now, req.group, req.after, req.max, req.read_at);
        }
        if let Some((req, at)) = self.members.counts.as_mut().filter(|(_, at)| due(*at)) {
            *at = now;
            self.control
                .push_back(Frame::ReadCountsRequest(req.clone()));
        }
    }

    /// The server refused a query of this frame type (ERROR
    /// `NoSuchConversation`: not a member): it is not asked again.
    pub(super) fn on_group_query_refused(&mut self, frame_type: u8) {
        if frame_type == crate::wire::ty::MEMBERS {
            self.members.req = None;
            self.members.got.clear();
        } else if frame_type == crate::wire::ty::READ_COUNTS {
            self.members.counts = None;
        }
    }

    pub(super) fn on_member(&mut self, m: Member) {
        if self
            .members
            .req
            .as_ref()
            .is_some_and(|(r, _)| r.request_id == m.request_id)
        {
            self.members.got.insert(m.user, m);
        }
    }

    pub(super) fn on_members_end(&mut self, now: Time, end: MembersEnd) {
        let Some((req, _)) = self.members.req.clone() else {
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
        self.members.req = None;
        let got = std::mem::take(&mut self.members.got);
        self.events.push_back(ClientEvent::Members(MembersPage {
            group: req.group,
            members: got.into_values().collect(),
            end,
        }));
    }
}
