//! What the store keeps for groups (`proto-spec/groups.md`): one row per
//! (group, user) that was ever a member. The group's timeline itself is an
//! ordinary storage timeline (`ConvKey::Group`), and its membership events
//! are records in it; the rows say, per user, which stretch of that timeline
//! the user may see. Everything is keyed by the group id, so a cluster can
//! later own a group on one node.

use crate::wire::GroupRole;

/// One user's membership of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember {
    /// Role (the role it had, once it left).
    pub role: GroupRole,
    /// `conv_seq` of the record that made it a member (the latest, after a
    /// re-add): the user sees records from here on.
    pub joined: u64,
    /// `conv_seq` of the record that ended the membership (0: a member
    /// now): the user sees nothing after it.
    pub left: u64,
}

impl GroupMember {
    /// Whether the user is a member now.
    pub fn current(&self) -> bool {
        self.left == 0
    }

    /// The records the user may see, `low ..= high`, given the group's
    /// newest record `head`.
    pub fn visible(&self, head: u64) -> (u64, u64) {
        let high = if self.current() { head } else { self.left };
        (self.joined, high)
    }
}
