//! The group frames of protocol version 2 (`proto-spec/groups.md`):
//! membership operations in the uplink, membership events as entries and
//! records of the group's timeline, and the paged member list, as plain
//! values. Their codec is `group_codec.rs`.

#[cfg(feature = "arbitrary")]
use super::arb;

/// Most users one GROUP_OP names (`GROUP_OP_MAX_USERS`).
pub const GROUP_OP_MAX_USERS: usize = 32;

/// A member's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum GroupRole {
    /// Posts and reads.
    Member = 1,
    /// Also adds and removes members.
    Admin = 2,
    /// Created the group; also makes and unmakes admins.
    Owner = 3,
}

impl GroupRole {
    /// The role with wire value `v`.
    pub fn from_u8(v: u8) -> Option<GroupRole> {
        match v {
            1 => Some(GroupRole::Member),
            2 => Some(GroupRole::Admin),
            3 => Some(GroupRole::Owner),
            _ => None,
        }
    }

    /// Whether this role may add and remove members.
    pub fn manages(self) -> bool {
        self >= GroupRole::Admin
    }
}

/// What a GROUP_OP does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum GroupAction {
    /// Create a group (the sender is its owner) with these first members.
    Create,
    /// Add users (admins and the owner), as admins if `admin` (the owner
    /// only).
    Add {
        /// Added as admins rather than members.
        admin: bool,
    },
    /// Remove users (admins and the owner; an admin removes only members).
    Remove,
    /// The sender leaves (not the owner).
    Leave,
    /// Make users admins, or members again (the owner only).
    SetRole {
        /// Admin rather than member.
        admin: bool,
    },
}

/// Client → server, uplink: a membership operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct GroupOp {
    /// Uplink sequence.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// The group (0 for `Create`: the server assigns the id).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub group: u64,
    /// What to do.
    pub action: GroupAction,
    /// The users it applies to, at most [`GROUP_OP_MAX_USERS`].
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::group_users))]
    pub users: Vec<u64>,
}

/// What happened to a membership, as a record of the group's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum GroupEventKind {
    /// The group was created by `user`, its owner.
    Created = 1,
    /// `user` was added.
    Added = 2,
    /// `user` was removed.
    Removed = 3,
    /// `user` left.
    Left = 4,
    /// `user`'s role changed.
    RoleChanged = 5,
}

impl GroupEventKind {
    /// The kind with wire value `v`.
    pub fn from_u8(v: u8) -> Option<GroupEventKind> {
        match v {
            1 => Some(GroupEventKind::Created),
            2 => Some(GroupEventKind::Added),
            3 => Some(GroupEventKind::Removed),
            4 => Some(GroupEventKind::Left),
            5 => Some(GroupEventKind::RoleChanged),
            _ => None,
        }
    }

    /// Whether `user` is no longer a member after it.
    pub fn ends_membership(self) -> bool {
        matches!(self, GroupEventKind::Removed | GroupEventKind::Left)
    }
}

/// A membership event: the body of a member ENTRY and of a member RECORD.
/// Who did it is the entry's (record's) `from_user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct GroupEvent {
    /// What happened.
    pub kind: GroupEventKind,
    /// To whom.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub user: u64,
    /// Their role after it (`Removed`, `Left`: the role they had).
    pub role: GroupRole,
}

/// Most records one READ_COUNTS asks about (`READ_COUNTS_MAX`).
pub const READ_COUNTS_MAX: usize = 64;

/// Client → server: how many members read each of some records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ReadCountsRequest {
    /// Echoed in the answer.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The group.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub group: u64,
    /// The first record asked about (`conv_seq`).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub low: u64,
    /// Records asked about, from `low` (clamped to 1 … 64).
    pub count: u8,
}

/// Server → client: read counts of consecutive records of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ReadCounts {
    /// The READ_COUNTS answered.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The group.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub group: u64,
    /// The record of the first count.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub low: u64,
    /// Current members of the group.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub members: u64,
    /// For records `low, low + 1, …`: current members other than the
    /// record's author whose read position is at or past it; at most
    /// [`READ_COUNTS_MAX`].
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::read_counts))]
    pub read_by: Vec<u64>,
}

/// Client → server: a page of a group's current members.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MembersRequest {
    /// Echoed in the answer.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The group.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub group: u64,
    /// Members with a user id above this (0: from the first).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub after: u64,
    /// Most members wanted (clamped to 1 … `MEMBERS_MAX`).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub max: u64,
    /// 0: every current member. Otherwise "who read it": only the current
    /// members other than the author of record `read_at` whose read
    /// position is at or past it.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub read_at: u64,
}

/// Server → client: one member of a MEMBERS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Member {
    /// The MEMBERS answered.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The member.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub user: u64,
    /// Its role.
    pub role: GroupRole,
    /// `conv_seq` of the record that made it a member.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub since: u64,
}

/// Server → client: closes a MEMBERS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MembersEnd {
    /// The MEMBERS answered.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The group.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub group: u64,
    /// MEMBER frames in this answer.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub count: u64,
    /// `after` for the next page (the last user sent).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub next_after: u64,
    /// 1: no member above `next_after`.
    pub complete: bool,
    /// Current members of the group.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub members: u64,
    /// The group's newest record (`conv_seq`) when the page was cut.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub last_seq: u64,
}
