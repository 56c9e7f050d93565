//! Encoding and decoding of the group frames (`group.rs`). The type byte is
//! written and read by the frame codec; these handle the fields after it:
//! no panic on any input, the user count bounded before anything is
//! allocated for it.

use bytes::BufMut;

use super::conv_ops_codec::{put, v};
use super::error::{DecodeError, EncodeError};
use super::fields::check;
use super::group::*;
use super::reader::Reader;

fn role(r: &mut Reader, field: &'static str) -> Result<GroupRole, DecodeError> {
    GroupRole::from_u8(r.u8()?).ok_or(DecodeError::InvalidValue { field })
}

impl GroupEvent {
    /// Encoded size: `kind u8, user varint, role u8`.
    pub fn encoded_len(&self) -> usize {
        2 + v(self.user)
    }

    /// Appends the event.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.kind as u8);
        put(out, self.user);
        out.put_u8(self.role as u8);
    }

    /// Reads an event.
    pub fn decode(r: &mut Reader) -> Result<GroupEvent, DecodeError> {
        let kind = GroupEventKind::from_u8(r.u8()?).ok_or(DecodeError::InvalidValue {
            field: "group event",
        })?;
        Ok(GroupEvent {
            kind,
            user: r.varint()?,
            role: role(r, "group role")?,
        })
    }
}

impl GroupAction {
    /// Wire values: `(action, role)`.
    fn bytes(&self) -> (u8, u8) {
        let admin = |a: bool| if a { 2 } else { 1 };
        match self {
            GroupAction::Create => (1, 0),
            GroupAction::Add { admin: a } => (2, admin(*a)),
            GroupAction::Remove => (3, 0),
            GroupAction::Leave => (4, 0),
            GroupAction::SetRole { admin: a } => (5, admin(*a)),
        }
    }

    fn from_bytes(action: u8, role: u8) -> Result<GroupAction, DecodeError> {
        let admin = || match role {
            1 => Ok(false),
            2 => Ok(true),
            _ => Err(DecodeError::InvalidValue {
                field: "group role",
            }),
        };
        let none = |a: GroupAction| {
            if role == 0 {
                Ok(a)
            } else {
                Err(DecodeError::InvalidValue {
                    field: "group role",
                })
            }
        };
        match action {
            1 => none(GroupAction::Create),
            2 => Ok(GroupAction::Add { admin: admin()? }),
            3 => none(GroupAction::Remove),
            4 => none(GroupAction::Leave),
            5 => Ok(GroupAction::SetRole { admin: admin()? }),
            _ => Err(DecodeError::InvalidValue {
                field: "group action",
            }),
        }
    }
}

impl GroupOp {
    pub(super) fn validate(&self) -> Result<(), EncodeError> {
        check("users", self.users.len(), GROUP_OP_MAX_USERS)
    }

    pub(super) fn encoded_len(&self) -> usize {
        v(self.seq) + v(self.group) + 3 + self.users.iter().map(|u| v(*u)).sum::<usize>()
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.seq);
        put(out, self.group);
        let (action, role) = self.action.bytes();
        out.put_u8(action);
        out.put_u8(role);
        out.put_u8(self.users.len().min(u8::MAX.into()) as u8);
        for u in &self.users {
            put(out, *u);
        }
    }

    pub(super) fn decode(r: &mut Reader) -> Result<GroupOp, DecodeError> {
        let seq = r.nonzero("seq")?;
        let group = r.varint()?;
        let action = r.u8()?;
        let role = r.u8()?;
        let action = GroupAction::from_bytes(action, role)?;
        let n = r.u8()?;
        if usize::from(n) > GROUP_OP_MAX_USERS {
            return Err(DecodeError::TooLong {
                field: "users",
                len: n.into(),
                max: GROUP_OP_MAX_USERS,
            });
        }
        let mut users = Vec::with_capacity(n.into());
        for _ in 0..n {
            users.push(r.varint()?);
        }
        Ok(GroupOp {
            seq,
            group,
            action,
            users,
        })
    }
}

impl ReadCountsRequest {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id) + v(self.group) + v(self.low) + 1
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        for x in [self.request_id, self.group, self.low] {
            put(out, x);
        }
        out.put_u8(self.count);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<ReadCountsRequest, DecodeError> {
        Ok(ReadCountsRequest {
            request_id: r.varint()?,
            group: r.varint()?,
            low: r.nonzero("low")?,
            count: r.u8()?,
        })
    }
}

impl ReadCounts {
    pub(super) fn validate(&self) -> Result<(), EncodeError> {
        check("read_by", self.read_by.len(), READ_COUNTS_MAX)
    }

    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id)
            + v(self.group)
            + v(self.low)
            + v(self.members)
            + 1
            + self.read_by.iter().map(|x| v(*x)).sum::<usize>()
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        for x in [self.request_id, self.group, self.low, self.members] {
            put(out, x);
        }
        out.put_u8(self.read_by.len().min(u8::MAX.into()) as u8);
        for x in &self.read_by {
            put(out, *x);
        }
    }

    pub(super) fn decode(r: &mut Reader) -> Result<ReadCounts, DecodeError> {
        let request_id = r.varint()?;
        let group = r.varint()?;
        let low = r.varint()?;
        let members = r.varint()?;
        let n = r.u8()?;
        if usize::from(n) > READ_COUNTS_MAX {
            return Err(DecodeError::TooLong {
                field: "read_by",
                len: n.into(),
                max: READ_COUNTS_MAX,
            });
        }
        let mut read_by = Vec::with_capacity(n.into());
        for _ in 0..n {
            read_by.push(r.varint()?);
        }
        Ok(ReadCounts {
            request_id,
            group,
            low,
            members,
            read_by,
        })
    }
}

impl MembersRequest {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id) + v(self.group) + v(self.after) + v(self.max) + v(self.read_at)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        for x in [
            self.request_id,
            self.group,
            self.after,
            self.max,
            self.read_at,
        ] {
            put(out, x);
        }
    }

    pub(super) fn decode(r: &mut Reader) -> Result<MembersRequest, DecodeError> {
        Ok(MembersRequest {
            request_id: r.varint()?,
            group: r.varint()?,
            after: r.varint()?,
            max: r.varint()?,
            read_at: r.varint()?,
        })
    }
}

impl Member {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id) + v(self.user) + 1 + v(self.since)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        put(out, self.request_id);
        put(out, self.user);
        out.put_u8(self.role as u8);
        put(out, self.since);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<Member, DecodeError> {
        Ok(Member {
            request_id: r.varint()?,
            user: r.varint()?,
            role: role(r, "group role")?,
            since: r.varint()?,
        })
    }
}

impl MembersEnd {
    pub(super) fn encoded_len(&self) -> usize {
        v(self.request_id)
            + v(self.group)
            + v(self.count)
            + v(self.next_after)
            + 1
            + v(self.members)
            + v(self.last_seq)
    }

    pub(super) fn encode(&self, out: &mut impl BufMut) {
        for x in [self.request_id, self.group, self.count, self.next_after] {
            put(out, x);
        }
        out.put_u8(u8::from(self.complete));
        put(out, self.members);
        put(out, self.last_seq);
    }

    pub(super) fn decode(r: &mut Reader) -> Result<MembersEnd, DecodeError> {
        Ok(MembersEnd {
            request_id: r.varint()?,
            group: r.varint()?,
            count: r.varint()?,
            next_after: r.varint()?,
            complete: r.flag("complete")?,
            members: r.varint()?,
            last_seq: r.varint()?,
        })
    }
}
