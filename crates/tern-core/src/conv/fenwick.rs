//! A Fenwick (binary indexed) tree of counts over positions `0, 1, 2, …`:
//! adding at a position and summing up to one are O(log n). It grows by
//! doubling, rebuilt from the points its owner keeps, so a timeline that
//! only grows costs amortised O(log n) per record. Shared by the read
//! counts of a group and its index of unread messages.

/// Counts by position.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fenwick {
    /// Node `i - 1` holds the sum of its range (index `i`, 1-based).
    tree: Vec<u32>,
}

impl Fenwick {
    /// Makes room for `pos` if the tree is too small: rebuilt, doubling,
    /// from `points` (every counted position, once per count).
    pub fn reserve(&mut self, pos: u64, points: impl IntoIterator<Item = u64>) {
        let need = pos as usize + 1;
        if need <= self.tree.len() {
            return;
        }
        let size = need.next_power_of_two().max(64);
        self.tree = vec![0; size];
        for p in points {
            self.add(p, 1);
        }
    }

    /// Adds `delta` at `pos` ([`Fenwick::reserve`] made room for it). Sums
    /// never go below zero: a position is only taken back once counted.
    pub fn add(&mut self, pos: u64, delta: i32) {
        let mut i = pos as usize + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] = self.tree[i - 1].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Sum over positions `0 ..= pos`.
    pub fn prefix(&self, pos: u64) -> u64 {
        let mut i = pos.saturating_add(1).min(self.tree.len() as u64) as usize;
        let mut sum = 0u64;
        while i > 0 {
            sum += u64::from(self.tree[i - 1]);
            i -= i & i.wrapping_neg();
        }
        sum
    }
}
