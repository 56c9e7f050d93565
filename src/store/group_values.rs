//! The group column family (store format 3): one row per (group, user)
//! that was ever a member.
//!
//! | column family | key | value |
//! |---|---|---|
//! | [`CF_GROUP_MEMBER`] | `group u64 ++ user u64` | [`encode_member`] |
//!
//! A group's rows are one contiguous key range sorted by user id, so a page
//! of members is one bounded scan, and a cluster can later move a group
//! with its key range. The group's records and metadata are those of its
//! storage timeline (`ConvKey::Group`, in `conv_values.rs`).
//!
//! ```text
//! GroupMember v1: 0x01 | role u8 | joined u64 | left u64                   (18 bytes)
//! ```

use tern_core::conv::ConvKey;
use tern_core::store::GroupMember;
use tern_core::wire::GroupRole;

use super::rocks::{RocksStore, StoreError};
use super::value::{DecodeError, ValueReader};

/// Column family of group membership rows.
pub const CF_GROUP_MEMBER: &str = "group_member";

const MEMBER_VERSION: u8 = 1;

/// Key of `user`'s row in `group`.
pub fn member_key(group: u64, user: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8..].copy_from_slice(&user.to_be_bytes());
    k
}

/// Encodes a [`GroupMember`].
pub fn encode_member(m: &GroupMember) -> [u8; 18] {
    let mut v = [0u8; 18];
    v[0] = MEMBER_VERSION;
    v[1] = m.role as u8;
    v[2..10].copy_from_slice(&m.joined.to_be_bytes());
    v[10..].copy_from_slice(&m.left.to_be_bytes());
    v
}

/// Decodes a [`GroupMember`].
pub fn decode_member(bytes: &[u8]) -> Result<GroupMember, DecodeError> {
    let mut r = ValueReader::versioned(bytes, MEMBER_VERSION)?;
    let role = r.u8()?;
    let role = GroupRole::from_u8(role).ok_or(DecodeError::UnknownKind {
        what: "group role",
        value: role,
    })?;
    let m = GroupMember {
        role,
        joined: r.u64()?,
        left: r.u64()?,
    };
    r.finish()?;
    Ok(m)
}

impl RocksStore {
    /// Up to `max` rows of `group` with a user id above `after`.
    pub(super) fn read_group_members(
        &self,
        group: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, GroupMember)>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let cf = self.cf(CF_GROUP_MEMBER)?;
        let mut it = self
            .raw()
            .raw_iterator_cf_opt(cf, Self::prefix_read_opts(group));
        it.seek(member_key(group, start));
        let mut out = Vec::new();
        while let Some((k, v)) = it.item() {
            if out.len() == max {
                break;
            }
            let corrupt = |source| StoreError::Corrupt {
                cf: CF_GROUP_MEMBER,
                key: k.to_vec(),
                source,
            };
            let Some(rest) = k.strip_prefix(group.to_be_bytes().as_slice()) else {
                break;
            };
            let user = u64::from_be_bytes(rest.try_into().map_err(|_| {
                corrupt(DecodeError::BadKeyLength {
                    expected: 16,
                    have: k.len(),
                })
            })?);
            out.push((user, decode_member(v).map_err(corrupt)?));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// The groups `user` has a state in, above `after`: its rows of
    /// `CF_USER_CONV` whose conversation key is a group's, in key order.
    pub(super) fn read_user_groups(
        &self,
        user: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let cf = self.cf(super::conv_values::CF_USER_CONV)?;
        let mut it = self
            .raw()
            .raw_iterator_cf_opt(cf, Self::prefix_read_opts(user));
        it.seek(super::conv_values::user_conv_key(
            user,
            &ConvKey::Group(start),
        ));
        let mut out = Vec::new();
        while let Some((k, _)) = it.item() {
            if out.len() == max {
                break;
            }
            let key = k.get(8..).and_then(ConvKey::from_bytes);
            match key {
                Some(ConvKey::Group(g)) if k.starts_with(&user.to_be_bytes()) => out.push(g),
                // Past the user's groups (system conversations sort after).
                _ => break,
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_rows_round_trip_and_refuse_unknown_roles() {
        let m = GroupMember {
            role: GroupRole::Admin,
            joined: 3,
            left: 0,
        };
        assert_eq!(decode_member(&encode_member(&m)), Ok(m));
        let mut bad = encode_member(&m);
        bad[1] = 9;
        assert!(decode_member(&bad).is_err());
        assert!(decode_member(&bad[..5]).is_err());
    }
}
