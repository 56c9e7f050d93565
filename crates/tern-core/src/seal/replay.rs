//! The anti-replay window over received packet numbers.
//!
//! A sealed packet whose tag verifies is authentic, but an attacker can
//! still send a recorded copy again. The receiver remembers which of the
//! last [`WINDOW`] packet numbers it has accepted (a bitmap sliding with the
//! highest one) and drops a copy, or anything older than the window.

/// Packet numbers remembered behind the highest one: 256 (four times
/// DTLS's 64; a packet reordered further is repaired like a lost one). It
/// was 1024; the 96 bytes saved on every sealed session brought an idle
/// one under 1 KB at 100,000 sessions (`tern-bench sessions`).
pub const WINDOW: u64 = 256;
const WORDS: usize = (WINDOW / 64) as usize;

/// Which recent packet numbers were already accepted.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    highest: u64,
    /// Bit `i` (word `i / 64`, bit `i % 64`) is packet number `highest - i`.
    seen: [u64; WORDS],
}

/// Why a packet number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Already accepted once.
    Duplicate,
    /// Older than the window: it can no longer be told apart from a copy.
    TooOld,
}

impl ReplayWindow {
    /// An empty window (nothing accepted yet; packet numbers start at 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest packet number accepted.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `pn` could be accepted (call before spending work on it).
    pub fn check(&self, pn: u64) -> Result<(), Replay> {
        if pn == 0 {
            return Err(Replay::Duplicate);
        }
        if pn > self.highest {
            return Ok(());
        }
        let back = self.highest - pn;
        if back >= WINDOW {
            return Err(Replay::TooOld);
        }
        if self.bit(back) {
            Err(Replay::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `pn` as accepted (after its tag verified). Returns whether it
    /// is the new highest.
    pub fn accept(&mut self, pn: u64) -> bool {
        if pn > self.highest {
            self.shift(pn - self.highest);
            self.highest = pn;
            self.set(0);
            true
        } else {
            let back = self.highest - pn;
            if back < WINDOW {
                self.set(back);
            }
            false
        }
    }

    fn bit(&self, back: u64) -> bool {
        self.seen[(back / 64) as usize] >> (back % 64) & 1 == 1
    }

    fn set(&mut self, back: u64) {
        self.seen[(back / 64) as usize] |= 1 << (back % 64);
    }

    /// Moves every bit `by` places further back.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen = [0; WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        for i in (0..WORDS).rev() {
            let lo = i.checked_sub(words).map_or(0, |j| self.seen[j]);
            let carry = match (bits, i.checked_sub(words + 1)) {
                (0, _) | (_, None) => 0,
                (b, Some(j)) => self.seen[j] >> (64 - b),
            };
            self.seen[i] = (lo << bits) | carry;
        }
    }
}

#[cfg(test)]
#[path = "../../tests/common/proptest_seed.rs"]
mod proptest_seed;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn copies_and_stale_numbers_are_refused() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), Err(Replay::Duplicate));
        for pn in [1, 3, 2, 10] {
            assert_eq!(w.check(pn), Ok(()));
            w.accept(pn);
            assert_eq!(w.check(pn), Err(Replay::Duplicate));
        }
        assert_eq!(w.check(9), Ok(()));
        w.accept(10 + WINDOW);
        assert_eq!(w.check(10), Err(Replay::TooOld));
        assert_eq!(w.check(11), Ok(()));
        assert_eq!(w.check(10 + WINDOW), Err(Replay::Duplicate));
    }

    proptest! {
        #![proptest_config(super::proptest_seed::config(256))]

        /// The window agrees with a set of every number ever accepted, for
        /// all numbers within the window.
        #[test]
        fn matches_a_naive_set(pns in proptest::collection::vec(1u64..3000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            for pn in pns {
                let fresh = !seen.contains(&pn);
                let in_window = pn + WINDOW > w.highest();
                match w.check(pn) {
                    Ok(()) => {
                        prop_assert!(fresh && in_window, "accepted {} again", pn);
                        w.accept(pn);
                        seen.insert(pn);
                    }
                    Err(Replay::Duplicate) => prop_assert!(!fresh, "{} refused as duplicate", pn),
                    Err(Replay::TooOld) => prop_assert!(!in_window, "{} refused as too old", pn),
                }
            }
        }
    }
}
