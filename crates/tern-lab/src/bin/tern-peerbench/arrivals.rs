//! What the receiving side of a latency or throughput run saw, the same for
//! both peers: every payload carries its scheduled send time and index, so
//! an arrival gives a latency sample and tells duplicates and reordering
//! apart.

/// Payload: scheduled time (us since the epoch), index, filler.
pub fn payload(ts_us: u64, index: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&ts_us.to_be_bytes());
    v.extend_from_slice(&index.to_be_bytes());
    while v.len() < len {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    v
}

/// Reads (scheduled time, index) back from a payload.
pub fn parse_payload(p: &[u8]) -> Option<(u64, u64)> {
    if p.len() < 16 {
        return None;
    }
    Some((
        u64::from_be_bytes(p[..8].try_into().ok()?),
        u64::from_be_bytes(p[8..16].try_into().ok()?),
    ))
}

/// The arrivals of one run's messages.
#[derive(Debug, Clone)]
pub struct Arrivals {
    seen: Vec<bool>,
    last_index: Option<u64>,
    /// Latencies of first arrivals, us.
    pub samples: Vec<u64>,
    /// (scheduled time, latency) of first arrivals, us, in arrival order.
    pub timeline: Vec<(u64, u64)>,
    /// Copies seen again.
    pub duplicates: u64,
    /// First arrivals with a lower index than an earlier one.
    pub out_of_order: u64,
}

impl Arrivals {
    /// For `n` messages.
    pub fn new(n: u64) -> Arrivals {
        Arrivals {
            seen: vec![false; n as usize],
            last_index: None,
            samples: Vec::with_capacity(n as usize),
            timeline: Vec::with_capacity(n as usize),
            duplicates: 0,
            out_of_order: 0,
        }
    }

    /// One arrival at `now_us`; true if it was new.
    pub fn arrive(&mut self, now_us: u64, payload: &[u8]) -> bool {
        let Some((ts, idx)) = parse_payload(payload) else {
            return false;
        };
        let Some(slot) = self.seen.get_mut(idx as usize) else {
            return false;
        };
        if *slot {
            self.duplicates += 1;
            return false;
        }
        *slot = true;
        if self.last_index.is_some_and(|l| idx < l) {
            self.out_of_order += 1;
        }
        self.last_index = Some(self.last_index.map_or(idx, |l| l.max(idx)));
        self.samples.push(now_us.saturating_sub(ts));
        self.timeline.push((ts, now_us.saturating_sub(ts)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_count_duplicates_and_order() {
        let mut rc = Arrivals::new(4);
        let p = |i: u64| payload(i * 1000, i, 32);
        assert!(rc.arrive(5_000, &p(1)));
        assert!(rc.arrive(6_000, &p(0)));
        assert!(!rc.arrive(7_000, &p(1)));
        assert!(!rc.arrive(7_000, &p(9)), "index out of range is ignored");
        assert!(!rc.arrive(7_000, b"short"));
        assert_eq!(rc.duplicates, 1);
        assert_eq!(rc.out_of_order, 1);
        assert_eq!(rc.samples, vec![4_000, 6_000]);
        assert_eq!(rc.timeline, vec![(1_000, 4_000), (0, 6_000)]);
    }
}
