//! Which records of one storage timeline count as unread messages, by
//! position, so that "how many unread between my read position and the
//! newest record" costs O(log H) for a timeline of H records instead of a
//! read of every record in between. A group that does not write each record
//! into every member's sync timeline (read fan-out, `proto-spec/groups.md`)
//! leaves the states of offline members behind; this index brings one up to
//! date when its user comes back, whatever the backlog.
//!
//! A Fenwick tree over positions plus one bit per position (the points it
//! is rebuilt from when it grows).

/// Counted positions of one timeline.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    tree: super::fenwick::Fenwick,
    marked: Vec<u64>,
    /// Every position up to this one is accounted for.
    covered: u64,
}

impl Positions {
    /// Every position up to this one is accounted for: later ones are not
    /// known to the index yet.
    pub fn covered(&self) -> u64 {
        self.covered
    }

    /// Position `pos` is accounted for, counted or not; anything below it
    /// not marked so far is not counted.
    pub fn cover(&mut self, pos: u64) {
        self.covered = self.covered.max(pos);
    }

    /// Whether `pos` is counted.
    pub fn is_counted(&self, pos: u64) -> bool {
        let (w, b) = (pos as usize / 64, pos % 64);
        self.marked.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    /// Counts `pos` (`true`) or stops counting it, and covers it.
    pub fn set(&mut self, pos: u64, counted: bool) {
        self.cover(pos);
        if self.is_counted(pos) == counted {
            return;
        }
        self.tree.reserve(pos, marked_positions(&self.marked));
        let (w, b) = (pos as usize / 64, pos % 64);
        if self.marked.len() <= w {
            self.marked.resize(w + 1, 0);
        }
        self.marked[w] ^= 1 << b;
        self.tree.add(pos, if counted { 1 } else { -1 });
    }

    /// Counted positions in `low ..= high` (none when `low > high`).
    pub fn count(&self, low: u64, high: u64) -> u64 {
        if low > high {
            return 0;
        }
        let below = if low == 0 {
            0
        } else {
            self.tree.prefix(low - 1)
        };
        self.tree.prefix(high) - below
    }
}

/// The positions whose bit is set, ascending.
fn marked_positions(marked: &[u64]) -> impl Iterator<Item = u64> + '_ {
    marked.iter().enumerate().flat_map(|(w, word)| {
        let mut bits = *word;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let b = u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                w as u64 * 64 + b
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn counts_match_a_plain_count_through_random_marks() {
        let seed = std::env::var("TERN_EXPLORE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(11u64);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut p = Positions::default();
        let mut plain = vec![false; 5_000];
        for step in 0..5_000 {
            let pos = rng.gen_range(0..5_000u64);
            let on = rng.gen_bool(0.7);
            p.set(pos, on);
            plain[pos as usize] = on;
            let (a, b) = (rng.gen_range(0..5_100u64), rng.gen_range(0..5_100u64));
            let want = (a..=b)
                .filter(|i| plain.get(*i as usize).copied().unwrap_or(false))
                .count() as u64;
            assert_eq!(p.count(a, b), want, "seed {seed} step {step} {a}..={b}");
        }
    }

    #[test]
    fn covering_does_not_count() {
        let mut p = Positions::default();
        p.set(3, true);
        p.cover(10);
        assert_eq!((p.covered(), p.count(0, 10)), (10, 1));
        p.set(3, false);
        assert_eq!(p.count(0, 10), 0);
    }
}
