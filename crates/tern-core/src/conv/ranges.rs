//! A set of `u64` values kept as sorted, disjoint, non-touching inclusive
//! ranges: what part of a conversation's storage timeline a client holds.
//! Timelines are dense, so the complement of this set within `1..=last` is
//! exactly what the client is missing.

/// Sorted, disjoint inclusive ranges; touching ranges are merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> Self {
        RangeSet::default()
    }

    /// Rebuilds a set from ranges in any order (overlapping ones merge);
    /// ranges with `start > end` or a zero start are ignored.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut s = RangeSet::new();
        for (a, b) in ranges {
            s.insert(a, b);
        }
        s
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of values held.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a + 1).sum()
    }

    /// Whether `x` is held.
    pub fn contains(&self, x: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, b)| b < x);
        self.ranges.get(i).is_some_and(|&(a, _)| a <= x)
    }

    /// Lowest value held.
    pub fn lowest(&self) -> Option<u64> {
        self.ranges.first().map(|r| r.0)
    }

    /// Highest value held.
    pub fn highest(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }

    /// Adds `start..=end` (nothing when `start > end` or `start == 0`).
    pub fn insert(&mut self, start: u64, end: u64) {
        if start == 0 || start > end {
            return;
        }
        // First range that ends at or after start - 1 (may touch or overlap).
        let lo = self
            .ranges
            .partition_point(|&(_, b)| b.saturating_add(1) < start);
        // First range that starts after end + 1 (cannot touch).
        let hi = self
            .ranges
            .partition_point(|&(a, _)| a <= end.saturating_add(1));
        if lo == hi {
            self.ranges.insert(lo, (start, end));
            return;
        }
        let merged = (start.min(self.ranges[lo].0), end.max(self.ranges[hi - 1].1));
        self.ranges.splice(lo..hi, std::iter::once(merged));
    }

    /// Removes every value at or below `floor` (history trimmed or cleared).
    pub fn remove_through(&mut self, floor: u64) {
        self.ranges.retain(|&(_, b)| b > floor);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(floor + 1);
        }
    }

    /// The ranges within `low..=high` that are not held, ascending.
    pub fn missing(&self, low: u64, high: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if low > high {
            return out;
        }
        let mut next = low;
        for &(a, b) in &self.ranges {
            if b < next {
                continue;
            }
            if a > high {
                break;
            }
            if a > next {
                out.push((next, a - 1));
            }
            next = b.saturating_add(1);
            if next > high {
                return out;
            }
        }
        out.push((next, high));
        out
    }

    /// The newest gap below `high` and above `floor`, if any: what to fetch
    /// next (newest first) to make `floor+1 ..= high` whole.
    pub fn newest_gap(&self, floor: u64, high: u64) -> Option<(u64, u64)> {
        self.missing(floor.saturating_add(1).max(1), high).pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_touching_and_overlapping_ranges() {
        let mut s = RangeSet::new();
        s.insert(5, 7);
        s.insert(1, 2);
        s.insert(10, 10);
        assert_eq!(s.ranges(), &[(1, 2), (5, 7), (10, 10)]);
        s.insert(3, 4);
        assert_eq!(s.ranges(), &[(1, 7), (10, 10)]);
        s.insert(8, 9);
        assert_eq!(s.ranges(), &[(1, 10)]);
        s.insert(4, 20);
        assert_eq!(s.ranges(), &[(1, 20)]);
        assert_eq!(s.count(), 20);
        s.insert(0, 3);
        s.insert(9, 3);
        assert_eq!(s.ranges(), &[(1, 20)]);
    }

    #[test]
    fn missing_is_the_complement_within_bounds() {
        let s = RangeSet::from_ranges([(3, 4), (8, 9)]);
        assert_eq!(s.missing(1, 10), vec![(1, 2), (5, 7), (10, 10)]);
        assert_eq!(s.missing(3, 4), vec![]);
        assert_eq!(s.missing(4, 8), vec![(5, 7)]);
        assert_eq!(s.newest_gap(0, 10), Some((10, 10)));
        assert_eq!(s.newest_gap(0, 9), Some((5, 7)));
        assert_eq!(s.newest_gap(4, 9), Some((5, 7)));
        assert_eq!(s.newest_gap(7, 9), None);
        assert!(RangeSet::new().missing(5, 4).is_empty());
    }

    #[test]
    fn remove_through_cuts_the_bottom() {
        let mut s = RangeSet::from_ranges([(1, 4), (8, 9)]);
        s.remove_through(2);
        assert_eq!(s.ranges(), &[(3, 4), (8, 9)]);
        s.remove_through(5);
        assert_eq!(s.ranges(), &[(8, 9)]);
        s.remove_through(9);
        assert!(s.is_empty());
    }

    #[test]
    fn matches_a_plain_set_on_random_operations() {
        use rand::{rngs::SmallRng, Rng, SeedableRng};
        let seed = 0x5eed;
        let mut rng = SmallRng::seed_from_u64(seed);
        for round in 0..200 {
            let mut s = RangeSet::new();
            let mut plain = std::collections::BTreeSet::new();
            for _ in 0..20 {
                let a = rng.gen_range(1..60u64);
                let b = a + rng.gen_range(0..6u64);
                s.insert(a, b);
                plain.extend(a..=b);
            }
            for x in 0..70 {
                assert_eq!(
                    s.contains(x),
                    plain.contains(&x),
                    "seed {seed} round {round} x {x}"
                );
            }
            let missing: Vec<u64> = s
                .missing(1, 65)
                .into_iter()
                .flat_map(|(a, b)| a..=b)
                .collect();
            let expect: Vec<u64> = (1..=65).filter(|x| !plain.contains(x)).collect();
            assert_eq!(missing, expect, "seed {seed} round {round}");
            for w in s.ranges().windows(2) {
                assert!(w[0].1 + 1 < w[1].0, "touching ranges {:?}", s.ranges());
            }
        }
    }
}
