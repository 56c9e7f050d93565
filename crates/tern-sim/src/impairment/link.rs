//! [`Link`]: one direction of an impaired path, as a pure function of its
//! configuration, its seed and the datagrams offered to it.

use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::config::{as_us, Impairment, ImpairmentError, JitterDist};
use super::counters::{Counters, DropReason};

/// One copy coming out of the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When it arrives, in µs since the origin (never before the `now_us` it was sent at).
    pub at_us: u64,
    /// Its bytes (possibly damaged).
    pub datagram: Bytes,
    /// This is the extra copy made by duplication.
    pub duplicate: bool,
    /// It was held back by the reorder rule.
    pub reordered: bool,
    /// Its bytes were damaged.
    pub corrupted: bool,
}

/// The fate of one datagram: zero, one or two deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcomes {
    /// Copies delivered, the original first; empty when dropped.
    pub deliveries: Vec<Delivery>,
    /// Why it was dropped, if it was.
    pub dropped: Option<DropReason>,
}

impl Outcomes {
    fn drop(reason: DropReason) -> Self {
        Outcomes {
            deliveries: Vec::new(),
            dropped: Some(reason),
        }
    }

    /// Whether nothing is delivered.
    pub fn is_dropped(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// Number of copies delivered.
    pub fn len(&self) -> usize {
        self.deliveries.len()
    }

    /// Same as [`Outcomes::is_dropped`].
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

impl IntoIterator for Outcomes {
    type Item = Delivery;
    type IntoIter = std::vec::IntoIter<Delivery>;
    fn into_iter(self) -> Self::IntoIter {
        self.deliveries.into_iter()
    }
}

/// One direction of an impaired path: configuration, seeded RNG and state.
///
/// Determinism: two links built with the same configuration and seed, fed the
/// same `(now_us, datagram)` sequence, give identical outcomes (on the same
/// platform and `rand` version).
#[derive(Debug, Clone)]
pub struct Link {
    cfg: Impairment,
    rng: SmallRng,
    bad_state: bool,
    /// When the bottleneck queue will be empty (µs).
    queue_free_at: u64,
    /// Latest arrival of an in-order datagram (µs): the FIFO floor.
    fifo_floor: u64,
    counters: Counters,
}

fn chance(rng: &mut SmallRng, p: f64) -> bool {
    p > 0.0 && rng.gen::<f64>() < p
}

impl Link {
    /// A link with this configuration and seed.
    ///
    /// # Panics
    /// If `cfg` is invalid (see [`Impairment::validate`]); use [`Link::try_new`]
    /// to get the error instead.
    pub fn new(cfg: Impairment, seed: u64) -> Self {
        match Self::try_new(cfg, seed) {
            Ok(link) => link,
            Err(e) => panic!("invalid impairment configuration: {e}"),
        }
    }

    /// A link with this configuration and seed, or why the configuration is invalid.
    pub fn try_new(cfg: Impairment, seed: u64) -> Result<Self, ImpairmentError> {
        cfg.validate()?;
        Ok(Link {
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            bad_state: false,
            queue_free_at: 0,
            fifo_floor: 0,
            counters: Counters::default(),
        })
    }

    /// A perfect link (every datagram delivered at once, unchanged).
    pub fn perfect() -> Self {
        Self::new(Impairment::default(), 0)
    }

    /// The configuration.
    pub fn config(&self) -> &Impairment {
        &self.cfg
    }

    /// What the link has done so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether the Gilbert–Elliott chain is in its bad state.
    pub fn in_bad_state(&self) -> bool {
        self.bad_state
    }

    /// Offer a datagram at virtual time `now_us` (µs since the origin); returns
    /// the copies that come out of the other end and when.
    pub fn transmit(&mut self, now_us: u64, datagram: Bytes) -> Outcomes {
        self.counters.sent += 1;

        // 1. One step of the Gilbert–Elliott chain, then its loss draw.
        let burst_loss = match self.cfg.burst {
            Some(ge) => {
                if self.bad_state {
                    if chance(&mut self.rng, ge.p_bad_to_good) {
                        self.bad_state = false;
                    }
                } else if chance(&mut self.rng, ge.p_good_to_bad) {
                    self.bad_state = true;
                }
                let p = if self.bad_state {
                    ge.loss_bad
                } else {
                    ge.loss_good
                };
                chance(&mut self.rng, p)
            }
            None => false,
        };

        // 2. Losses.
        if self.cfg.blackouts.iter().any(|b| b.contains(now_us)) {
            self.counters.dropped_blackout += 1;
            return Outcomes::drop(DropReason::Blackout);
        }
        if burst_loss {
            self.counters.dropped_burst += 1;
            return Outcomes::drop(DropReason::Burst);
        }
        if chance(&mut self.rng, self.cfg.loss) {
            self.counters.dropped_random += 1;
            return Outcomes::drop(DropReason::Random);
        }

        // 3. Bottleneck queue.
        let departs = match self.cfg.rate {
            Some(rate) => {
                let rate = u128::from(rate);
                let start = self.queue_free_at.max(now_us);
                let backlog_us = u128::from(start - now_us);
                let backlog_bytes = (backlog_us * rate).div_ceil(1_000_000);
                let len = datagram.len() as u128;
                if backlog_bytes > 0 && backlog_bytes + len > self.cfg.queue_limit as u128 {
                    self.counters.dropped_queue += 1;
                    return Outcomes::drop(DropReason::Queue);
                }
                let tx_us = (len * 1_000_000).div_ceil(rate);
                self.queue_free_at = start.saturating_add(u64::try_from(tx_us).unwrap_or(u64::MAX));
                self.queue_free_at
            }
            None => now_us,
        };

        // 4. Propagation delay, jitter, FIFO or reorder hold.
        let mut at = departs.saturating_add(self.sample_delay());
        let reordered = chance(&mut self.rng, self.cfg.reorder);
        if reordered {
            at = at.saturating_add(as_us(self.cfg.reorder_delay));
            self.counters.reordered += 1;
        } else {
            at = at.max(self.fifo_floor);
            self.fifo_floor = at;
        }

        // 5. Duplication decided before corruption so the copy can share bytes.
        let dup = chance(&mut self.rng, self.cfg.dup);
        let (first, first_corrupted) = self.maybe_corrupt(datagram.clone());
        let mut deliveries = Vec::with_capacity(if dup { 2 } else { 1 });
        deliveries.push(Delivery {
            at_us: at,
            datagram: first,
            duplicate: false,
            reordered,
            corrupted: first_corrupted,
        });
        if dup {
            self.counters.duplicated += 1;
            let at2 = departs.saturating_add(self.sample_delay());
            let (copy, corrupted) = self.maybe_corrupt(datagram);
            deliveries.push(Delivery {
                at_us: at2,
                datagram: copy,
                duplicate: true,
                reordered: false,
                corrupted,
            });
        }
        Outcomes {
            deliveries,
            dropped: None,
        }
    }

    /// Base delay plus one jitter sample, in µs, never negative.
    fn sample_delay(&mut self) -> u64 {
        let base = as_us(self.cfg.delay);
        let j = as_us(self.cfg.jitter);
        if j == 0 {
            return base;
        }
        let offset: i128 = match self.cfg.jitter_dist {
            JitterDist::Uniform => {
                let j = i64::try_from(j).unwrap_or(i64::MAX);
                i128::from(self.rng.gen_range(-j..=j))
            }
            JitterDist::Normal => {
                // Box–Muller; u1 in (0, 1] so ln is finite.
                let u1: f64 = 1.0 - self.rng.gen::<f64>();
                let u2: f64 = self.rng.gen::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (z.clamp(-3.0, 3.0) * j as f64).round() as i128
            }
        };
        let total = i128::from(base) + offset;
        u64::try_from(total.max(0)).unwrap_or(u64::MAX)
    }

    /// With probability `corrupt`, damage a copy of the bytes.
    fn maybe_corrupt(&mut self, datagram: Bytes) -> (Bytes, bool) {
        if datagram.is_empty() || !chance(&mut self.rng, self.cfg.corrupt) {
            return (datagram, false);
        }
        self.counters.corrupted += 1;
        let len = datagram.len();
        if self.rng.gen_range(0..4) == 0 {
            let keep = self.rng.gen_range(0..len);
            return (datagram.slice(..keep), true);
        }
        let bits = len * 8;
        let flips = self.rng.gen_range(1..=3usize).min(bits);
        let mut chosen: [usize; 3] = [usize::MAX; 3];
        let mut n = 0;
        while n < flips {
            let b = self.rng.gen_range(0..bits);
            if !chosen[..n].contains(&b) {
                chosen[n] = b;
                n += 1;
            }
        }
        let mut buf = BytesMut::from(&datagram[..]);
        for &b in &chosen[..flips] {
            buf[b / 8] ^= 1 << (b % 8);
        }
        (buf.freeze(), true)
    }
}
