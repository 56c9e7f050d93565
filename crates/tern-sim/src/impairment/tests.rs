//! How a [`Link`] treats datagrams: rates, bounds and determinism, checked
//! over many seeded datagrams.

use std::time::Duration;

use bytes::Bytes;

use super::*;

const MS: u64 = 1_000;

fn payload(i: u32) -> Bytes {
    Bytes::copy_from_slice(&i.to_be_bytes())
}

fn run(cfg: &Impairment, seed: u64, n: u32, gap_us: u64) -> Vec<Outcomes> {
    let mut link = Link::new(cfg.clone(), seed);
    (0..n)
        .map(|i| link.transmit(u64::from(i) * gap_us, payload(i)))
        .collect()
}

#[test]
fn perfect_link_is_transparent() {
    let mut link = Link::perfect();
    for i in 0..100 {
        let out = link.transmit(i * 7, payload(i as u32));
        assert_eq!(out.len(), 1);
        let d = &out.deliveries[0];
        assert_eq!(d.at_us, i * 7);
        assert_eq!(d.datagram, payload(i as u32));
        assert!(!d.corrupted && !d.duplicate && !d.reordered);
    }
    assert_eq!(link.counters().sent, 100);
    assert_eq!(link.counters().dropped(), 0);
    assert!(Impairment::default().is_perfect());
}

#[test]
fn random_loss_rate_within_tolerance() {
    let cfg = Impairment {
        loss: 0.1,
        ..Default::default()
    };
    let mut link = Link::new(cfg, 42);
    let n = 100_000u64;
    let mut lost = 0;
    for i in 0..n {
        if link.transmit(i, payload(i as u32)).is_dropped() {
            lost += 1;
        }
    }
    let rate = lost as f64 / n as f64;
    assert!((rate - 0.1).abs() < 0.005, "loss rate {rate}");
    assert_eq!(link.counters().dropped_random, lost);
    assert_eq!(link.counters().dropped(), lost);
}

#[test]
fn burst_loss_matches_gilbert_elliott_stationary_rate() {
    let ge = GilbertElliott::new(0.05, 0.3);
    let cfg = Impairment {
        burst: Some(ge),
        ..Default::default()
    };
    let mut link = Link::new(cfg, 7);
    let n = 200_000u64;
    let mut lost = 0u64;
    let mut runs = 0u64;
    let mut prev_lost = false;
    for i in 0..n {
        let l = link.transmit(i, payload(i as u32)).is_dropped();
        if l {
            lost += 1;
            if !prev_lost {
                runs += 1;
            }
        }
        prev_lost = l;
    }
    let rate = lost as f64 / n as f64;
    let expected = ge.steady_state_loss();
    assert!((expected - 0.05 / 0.35).abs() < 1e-12);
    assert!((rate - expected).abs() < 0.01, "rate {rate} vs {expected}");
    // Mean burst length 1 / p_bad_to_good.
    let mean_run = lost as f64 / runs as f64;
    assert!((mean_run - 1.0 / 0.3).abs() < 0.2, "mean burst {mean_run}");
    assert_eq!(link.counters().dropped_burst, lost);
}

#[test]
fn deterministic_for_same_seed_and_differs_for_other_seed() {
    let cfg = Impairment::parse(
            "loss=0.1,burst=0.05:0.3,delay=50ms,jitter=10ms,reorder=0.05,dup=0.05,corrupt=0.05,rate=1mbps,blackout=1s-1.2s",
        )
        .unwrap();
    let a = run(&cfg, 99, 5_000, 500);
    let b = run(&cfg, 99, 5_000, 500);
    assert_eq!(a, b);
    let c = run(&cfg, 100, 5_000, 500);
    assert_ne!(a, c);
}

#[test]
fn duplication_rate_and_copies() {
    let cfg = Impairment {
        dup: 0.2,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(2),
        ..Default::default()
    };
    let outs = run(&cfg, 3, 20_000, 100);
    let dups = outs.iter().filter(|o| o.len() == 2).count();
    let rate = dups as f64 / outs.len() as f64;
    assert!((rate - 0.2).abs() < 0.015, "dup rate {rate}");
    for o in outs.iter().filter(|o| o.len() == 2) {
        assert_eq!(o.deliveries[0].datagram, o.deliveries[1].datagram);
        assert!(!o.deliveries[0].duplicate && o.deliveries[1].duplicate);
    }
}

#[test]
fn delay_and_jitter_bounds_and_fifo() {
    for dist in [JitterDist::Uniform, JitterDist::Normal] {
        let cfg = Impairment {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(10),
            jitter_dist: dist,
            ..Default::default()
        };
        let mut link = Link::new(cfg, 5);
        let mut last = 0;
        let mut sum = 0u64;
        let n = 10_000u64;
        for i in 0..n {
            let now = i * 20 * MS; // far apart: FIFO never binds
            let out = link.transmit(now, payload(i as u32));
            let at = out.deliveries[0].at_us;
            assert!(
                at >= now + 20 * MS && at <= now + 80 * MS,
                "{dist:?} {at} {now}"
            );
            assert!(at >= last);
            last = at;
            sum += at - now;
        }
        let mean = sum as f64 / n as f64;
        assert!((mean - 50_000.0).abs() < 500.0, "{dist:?} mean {mean}");
    }
    // Closely spaced sends: jitter never reorders on its own.
    let cfg = Impairment::parse("delay=10ms,jitter=9ms").unwrap();
    let outs = run(&cfg, 11, 2_000, 100);
    let ats: Vec<u64> = outs.iter().map(|o| o.deliveries[0].at_us).collect();
    assert!(ats.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn reorder_lets_later_datagrams_overtake() {
    let cfg = Impairment::parse("delay=5ms,reorder=0.1:20ms").unwrap();
    let mut link = Link::new(cfg, 8);
    let mut arrivals = Vec::new();
    for i in 0..2_000u32 {
        for d in link.transmit(u64::from(i) * MS, payload(i)) {
            arrivals.push((d.at_us, i, d.reordered));
        }
    }
    let held = arrivals.iter().filter(|a| a.2).count();
    assert_eq!(held as u64, link.counters().reordered);
    assert!((held as f64 / 2_000.0 - 0.1).abs() < 0.03);
    arrivals.sort_by_key(|a| (a.0, a.1));
    let inversions = arrivals.windows(2).filter(|w| w[0].1 > w[1].1).count();
    assert!(
        inversions >= held / 2,
        "inversions {inversions} held {held}"
    );
    for (at, i, r) in &arrivals {
        let sent = u64::from(*i) * MS;
        if *r {
            assert_eq!(*at, sent + 25 * MS);
        }
    }
}

#[test]
fn corruption_always_changes_bytes() {
    let cfg = Impairment {
        corrupt: 1.0,
        ..Default::default()
    };
    let mut link = Link::new(cfg, 1);
    let original = Bytes::from_static(b"hello, tern! 0123456789");
    let mut truncated = 0;
    let mut flipped = 0;
    for i in 0..1_000 {
        let d = link.transmit(i, original.clone()).deliveries.remove(0);
        assert!(d.corrupted);
        assert_ne!(d.datagram, original);
        if d.datagram.len() < original.len() {
            truncated += 1;
            assert_eq!(&original[..d.datagram.len()], &d.datagram[..]);
        } else {
            flipped += 1;
            let diff: u32 = original
                .iter()
                .zip(d.datagram.iter())
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert!((1..=3).contains(&diff), "{diff} bits differ");
        }
    }
    assert!(truncated > 150 && flipped > 650, "{truncated} {flipped}");
    assert_eq!(link.counters().corrupted, 1_000);
    // Empty datagrams pass untouched.
    let d = link.transmit(2_000, Bytes::new());
    assert!(!d.deliveries[0].corrupted);
}

#[test]
fn rate_cap_serialises_and_bounds_queue() {
    // 100 kB/s: a 1000-byte datagram takes 10 ms on the wire.
    let cfg = Impairment {
        rate: Some(100_000),
        queue_limit: 10_000,
        ..Default::default()
    };
    let mut link = Link::new(cfg, 0);
    let pkt = Bytes::from(vec![0u8; 1000]);
    let mut ats = Vec::new();
    for _ in 0..100 {
        let out = link.transmit(0, pkt.clone());
        if let Some(d) = out.deliveries.first() {
            ats.push(d.at_us);
        } else {
            assert_eq!(out.dropped, Some(DropReason::Queue));
        }
    }
    // First admitted at an empty queue, then 9 more fit behind it.
    assert_eq!(ats.len(), 10);
    assert_eq!(ats, (1..=10).map(|k| k * 10 * MS).collect::<Vec<_>>());
    assert_eq!(link.counters().dropped_queue, 90);
    // Once drained the queue accepts again.
    let out = link.transmit(100 * MS, pkt.clone());
    assert_eq!(out.deliveries[0].at_us, 110 * MS);
    // A paced sender under the rate never queues.
    let mut link = Link::new(Impairment::parse("rate=800kbps").unwrap(), 0);
    for i in 0..100 {
        let now = i * 20 * MS;
        let out = link.transmit(now, pkt.clone());
        assert_eq!(out.deliveries[0].at_us, now + 10 * MS);
    }
}

#[test]
fn blackout_drops_everything_inside_window_only() {
    let cfg = Impairment::parse("blackout=10ms-20ms,blackout=30ms-31ms").unwrap();
    let mut link = Link::new(cfg, 0);
    for t in 0..40u64 {
        let out = link.transmit(t * MS, payload(t as u32));
        let inside = (10..20).contains(&t) || t == 30;
        assert_eq!(out.is_dropped(), inside, "t={t}ms");
        if inside {
            assert_eq!(out.dropped, Some(DropReason::Blackout));
        }
    }
    assert_eq!(link.counters().dropped_blackout, 11);
}
