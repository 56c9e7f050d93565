//! "Read by N" for group records without O(members) work per read: a
//! Fenwick tree over read positions. Each member's read position is one
//! point; moving it is two point updates, and the number of members whose
//! position is at or past record `s` is one suffix sum, both O(log H) for a
//! timeline of H records, whatever the member count.

use std::collections::HashMap;

/// Members' read positions in one group, counted by position.
#[derive(Debug, Clone, Default)]
pub struct ReadCounts {
    /// Members counted by position.
    tree: super::fenwick::Fenwick,
    /// Each member's position.
    cursors: HashMap<u64, u64>,
}

impl ReadCounts {
    /// Counted members.
    pub fn members(&self) -> usize {
        self.cursors.len()
    }

    /// `user`'s position, if counted.
    pub fn cursor(&self, user: u64) -> Option<u64> {
        self.cursors.get(&user).copied()
    }

    /// Counts `user` at `pos` (moving it if counted already).
    pub fn set(&mut self, user: u64, pos: u64) {
        // Room first: growing rebuilds from the cursors as they are.
        self.tree.reserve(pos, self.cursors.values().copied());
        if let Some(old) = self.cursors.insert(user, pos) {
            self.tree.add(old, -1);
        }
        self.tree.add(pos, 1);
    }

    /// Stops counting `user`.
    pub fn remove(&mut self, user: u64) {
        if let Some(old) = self.cursors.remove(&user) {
            self.tree.add(old, -1);
        }
    }

    /// Members whose position is at or past `seq`.
    pub fn at_or_past(&self, seq: u64) -> u64 {
        let below = if seq == 0 {
            0
        } else {
            self.tree.prefix(seq - 1)
        };
        (self.cursors.len() as u64).saturating_sub(below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn counts_match_a_plain_count_through_random_moves() {
        let seed = std::env::var("TERN_EXPLORE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7u64);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut rc = ReadCounts::default();
        let mut plain: HashMap<u64, u64> = HashMap::new();
        for step in 0..5_000 {
            let user = rng.gen_range(0..50);
            match rng.gen_range(0..10) {
                0 => {
                    rc.remove(user);
                    plain.remove(&user);
                }
                _ => {
                    let pos = rng.gen_range(0..3_000);
                    rc.set(user, pos);
                    plain.insert(user, pos);
                }
            }
            let s = rng.gen_range(0..3_200);
            let want = plain.values().filter(|p| **p >= s).count() as u64;
            assert_eq!(rc.at_or_past(s), want, "seed {seed} step {step} seq {s}");
        }
        assert_eq!(rc.members(), plain.len());
    }
}
