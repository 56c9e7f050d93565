//! "Read by N" for group records without O(members) work per read: a
//! Fenwick tree over read positions. Each member's read position is one
//! point; moving it is two point updates, and the number of members whose
//! position is at or past record `s` is one suffix sum, both O(log H) for a
//! timeline of H records, whatever the member count.

use std::collections::HashMap;

/// Members' read positions in one group, counted by position.
#[derive(Debug, Clone, Default)]
pub struct ReadCounts {
    /// Fenwick tree over positions `0 ..= tree.len() - 1` (index + 1).
    tree: Vec<i64>,
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
        if pos as usize + 1 > self.tree.len() {
            self.grow(pos as usize + 1);
        }
        if let Some(old) = self.cursors.insert(user, pos) {
            self.add(old, -1);
        }
        self.add(pos, 1);
    }

    /// Stops counting `user`.
    pub fn remove(&mut self, user: u64) {
        if let Some(old) = self.cursors.remove(&user) {
            self.add(old, -1);
        }
    }

    /// Members whose position is at or past `seq`.
    pub fn at_or_past(&self, seq: u64) -> u64 {
        let below = if seq == 0 { 0 } else { self.prefix(seq - 1) };
        (self.cursors.len() as i64 - below).max(0) as u64
    }

    /// Adds `delta` at `pos`, which [`ReadCounts::set`] made room for.
    fn add(&mut self, pos: u64, delta: i64) {
        let mut i = pos as usize + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] += delta;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum over positions `0 ..= pos`.
    fn prefix(&self, pos: u64) -> i64 {
        let mut i = (pos as usize + 1).min(self.tree.len());
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i - 1];
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// Rebuilds the tree with room for `need` positions (doubling, so a
    /// growing timeline costs amortised O(1) per record).
    fn grow(&mut self, need: usize) {
        let size = need.next_power_of_two().max(64);
        self.tree = vec![0; size];
        let cursors: Vec<u64> = self.cursors.values().copied().collect();
        for pos in cursors {
            let mut i = pos as usize + 1;
            while i <= size {
                self.tree[i - 1] += 1;
                i += i & i.wrapping_neg();
            }
        }
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
