//! The canonical identity of a conversation, independent of who looks at
//! it. On the wire a user names a direct conversation by the other user
//! ([`ConvRef`]); both users' names map to the same [`ConvKey`], so their
//! histories meet in one storage timeline.

use crate::wire::{ConvKind, ConvRef};

/// A conversation, the same for every participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvKey {
    /// Users `lo ≤ hi` (equal for notes to self).
    Direct {
        /// The smaller user id.
        lo: u64,
        /// The larger user id.
        hi: u64,
    },
    /// A group, by its server-assigned id.
    Group(u64),
    /// A system channel, by its server-assigned id.
    System(u64),
}

/// Encoded length of a [`ConvKey`] in storage keys.
pub const CONV_KEY_LEN: usize = 17;

impl ConvKey {
    /// The conversation `user` calls `conv`.
    pub fn of(user: u64, conv: ConvRef) -> ConvKey {
        match conv.kind {
            ConvKind::Direct => ConvKey::Direct {
                lo: user.min(conv.id),
                hi: user.max(conv.id),
            },
            ConvKind::Group => ConvKey::Group(conv.id),
            ConvKind::System => ConvKey::System(conv.id),
        }
    }

    /// How `user` names this conversation. For a direct conversation `user`
    /// should be one of its two users; anyone else is shown `lo`.
    pub fn view(&self, user: u64) -> ConvRef {
        match *self {
            ConvKey::Direct { lo, hi } => ConvRef::direct(if user == lo { hi } else { lo }),
            ConvKey::Group(id) => ConvRef {
                kind: ConvKind::Group,
                id,
            },
            ConvKey::System(id) => ConvRef {
                kind: ConvKind::System,
                id,
            },
        }
    }

    /// The users of a direct conversation (one for notes to self).
    pub fn direct_users(&self) -> Option<(u64, u64)> {
        match *self {
            ConvKey::Direct { lo, hi } => Some((lo, hi)),
            _ => None,
        }
    }

    /// Fixed-width big-endian bytes: kind, then the two ids (group and
    /// system: id, then zero). Bytewise order groups a kind together.
    pub fn to_bytes(&self) -> [u8; CONV_KEY_LEN] {
        let (kind, a, b) = match *self {
            ConvKey::Direct { lo, hi } => (ConvKind::Direct, lo, hi),
            ConvKey::Group(id) => (ConvKind::Group, id, 0),
            ConvKey::System(id) => (ConvKind::System, id, 0),
        };
        let mut k = [0u8; CONV_KEY_LEN];
        k[0] = kind as u8;
        k[1..9].copy_from_slice(&a.to_be_bytes());
        k[9..].copy_from_slice(&b.to_be_bytes());
        k
    }

    /// Parses [`ConvKey::to_bytes`]; `None` for anything else.
    pub fn from_bytes(b: &[u8]) -> Option<ConvKey> {
        let b: &[u8; CONV_KEY_LEN] = b.try_into().ok()?;
        let a = u64::from_be_bytes(b[1..9].try_into().ok()?);
        let c = u64::from_be_bytes(b[9..].try_into().ok()?);
        match ConvKind::from_u8(b[0])? {
            ConvKind::Direct if a <= c => Some(ConvKey::Direct { lo: a, hi: c }),
            ConvKind::Group if c == 0 => Some(ConvKey::Group(a)),
            ConvKind::System if c == 0 => Some(ConvKey::System(a)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_users_of_a_direct_conversation_meet_in_one_key() {
        let ab = ConvKey::of(42, ConvRef::direct(77));
        let ba = ConvKey::of(77, ConvRef::direct(42));
        assert_eq!(ab, ba);
        assert_eq!(ab.view(42), ConvRef::direct(77));
        assert_eq!(ab.view(77), ConvRef::direct(42));
        let me = ConvKey::of(5, ConvRef::direct(5));
        assert_eq!(me.view(5), ConvRef::direct(5));
    }

    #[test]
    fn keys_round_trip_through_bytes_and_reject_others() {
        for k in [
            ConvKey::Direct { lo: 1, hi: 2 },
            ConvKey::Direct { lo: 9, hi: 9 },
            ConvKey::Group(7),
            ConvKey::System(u64::MAX >> 2),
        ] {
            assert_eq!(ConvKey::from_bytes(&k.to_bytes()), Some(k));
        }
        let mut bad = ConvKey::Direct { lo: 1, hi: 2 }.to_bytes();
        bad.swap(8, 16);
        assert_eq!(ConvKey::from_bytes(&bad), None, "lo > hi");
        assert_eq!(ConvKey::from_bytes(&[0; 17]), None);
        assert_eq!(ConvKey::from_bytes(&[1; 3]), None);
    }
}
