//! Group queries: the paged member list (MEMBERS: current members by
//! ascending user id, from committed rows only, bounded per answer both in
//! members sent and in rows read; former members are skipped, not sent),
//! and read counts of records (READ_COUNTS).

use super::session::Out;
use super::Broker;
use crate::store::Store;
use crate::time::Time;
use crate::wire::{
    ty, ErrorCode, Frame, Member, MembersEnd, MembersRequest, ReadCounts, ReadCountsRequest,
    READ_COUNTS_MAX,
};

/// Most members in one answer (`MEMBERS_MAX`): 64 MEMBER frames of at most
/// 20 bytes fit two datagrams.
pub const MEMBERS_MAX: u64 = 64;

/// Most rows read for one answer; past it the answer ends incomplete.
const MEMBERS_SCAN: usize = 1024;

impl<S: Store> Broker<S> {
    pub(super) fn on_members(&mut self, _now: Time, sid: u64, req: MembersRequest) {
        let Some(user) = self.sessions.get(&sid).map(|s| s.user) else {
            return;
        };
        let member = self
            .group_mut(req.group)
            .map(|g| (g.current(user).is_some(), g.members().count() as u64));
        let frames = match member {
            Err(e) => Err(e),
            Ok((false, _)) => {
                self.queue_error(sid, ErrorCode::NoSuchConversation, ty::MEMBERS);
                return;
            }
            Ok((true, count)) => {
                // "Who read it": the author of the record, to leave out.
                let key = crate::conv::ConvKey::Group(req.group);
                match req.read_at {
                    0 => self.members_page(&req, count, None),
                    s => match self.record_at(key, s) {
                        Ok(r) => {
                            let author = r.map(|r| r.from_user);
                            self.members_page(&req, count, Some(author))
                        }
                        Err(e) => Err(e),
                    },
                }
            }
        };
        match frames {
            Ok(frames) => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.out.extend(frames.into_iter().map(Out::Frame));
                }
                self.touch(sid);
            }
            Err(e) => {
                self.events
                    .push_back(super::BrokerEvent::StoreReadFailed { error: e });
                self.queue_error(sid, ErrorCode::StorageFailure, ty::MEMBERS);
            }
        }
    }

    /// A page of members; with `readers` (the `read_at` record's author,
    /// if the record exists) only those who read it.
    fn members_page(
        &self,
        req: &MembersRequest,
        members: u64,
        readers: Option<Option<u64>>,
    ) -> Result<Vec<Frame>, String> {
        let reads = self.convs.groups.get(&req.group).map(|g| &g.reads);
        let read_it = |user: u64| match readers {
            None => true,
            // No such record: nobody read it.
            Some(None) => false,
            Some(Some(author)) => {
                user != author
                    && reads
                        .and_then(|r| r.cursor(user))
                        .is_some_and(|c| c >= req.read_at)
            }
        };
        let max = req.max.clamp(1, MEMBERS_MAX) as usize;
        let rows = self
            .store
            .group_members(req.group, req.after, MEMBERS_SCAN)
            .map_err(|e| e.to_string())?;
        let scanned_all = rows.len() < MEMBERS_SCAN;
        let last_seq = self
            .store
            .conv_meta(&crate::conv::ConvKey::Group(req.group))
            .map_err(|e| e.to_string())?
            .map_or(0, |m| m.head);
        let mut frames = Vec::new();
        let (mut next_after, mut complete) = (req.after, scanned_all);
        for (user, m) in rows {
            if frames.len() == max {
                complete = false;
                break;
            }
            next_after = user;
            if m.current() && read_it(user) {
                frames.push(Frame::Member(Member {
                    request_id: req.request_id,
                    user,
                    role: m.role,
                    since: m.joined,
                }));
            }
        }
        let count = frames.len() as u64;
        frames.push(Frame::MembersEnd(MembersEnd {
            request_id: req.request_id,
            group: req.group,
            count,
            next_after,
            complete,
            members,
            last_seq,
        }));
        Ok(frames)
    }
}

impl<S: Store> Broker<S> {
    /// READ_COUNTS: for each record asked about, the current members other
    /// than its author whose read position is at or past it. O(log records)
    /// per record, whatever the member count.
    pub(super) fn on_read_counts(&mut self, sid: u64, req: ReadCountsRequest) {
        let Some(user) = self.sessions.get(&sid).map(|s| s.user) else {
            return;
        };
        let key = crate::conv::ConvKey::Group(req.group);
        let member = self.group_mut(req.group).map(|g| g.current(user).is_some());
        match member {
            Ok(true) => {}
            Ok(false) => {
                self.queue_error(sid, ErrorCode::NoSuchConversation, ty::READ_COUNTS);
                return;
            }
            Err(_) => {
                self.queue_error(sid, ErrorCode::StorageFailure, ty::READ_COUNTS);
                return;
            }
        }
        let head = match self.timeline_mut(key) {
            Ok(t) => t.meta.head,
            Err(_) => {
                self.queue_error(sid, ErrorCode::StorageFailure, ty::READ_COUNTS);
                return;
            }
        };
        let n = u64::from(req.count).clamp(1, READ_COUNTS_MAX as u64);
        let high = req.low.saturating_add(n - 1).min(head);
        let records = match self.records_between(key, req.low.saturating_sub(1), high) {
            Ok(r) => r,
            Err(_) => {
                self.queue_error(sid, ErrorCode::StorageFailure, ty::READ_COUNTS);
                return;
            }
        };
        let Some(g) = self.convs.groups.get(&req.group) else {
            return;
        };
        let read_by = records
            .iter()
            .map(|r| {
                let all = g.reads.at_or_past(r.conv_seq);
                let author = g.reads.cursor(r.from_user).is_some_and(|c| c >= r.conv_seq);
                all.saturating_sub(u64::from(author))
            })
            .collect();
        let frame = Frame::ReadCounts(ReadCounts {
            request_id: req.request_id,
            group: req.group,
            low: req.low,
            members: g.reads.members() as u64,
            read_by,
        });
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.out.push_back(Out::Frame(frame));
        }
        self.touch(sid);
    }
}
