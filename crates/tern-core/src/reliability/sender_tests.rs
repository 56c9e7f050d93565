//! Unit tests of the sender, in virtual time.

use std::time::Duration;

use super::*;
use crate::time::Time;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn sender(cfg: SenderConfig) -> Sender<u64> {
    Sender::new(cfg, 1, 7)
}

fn no_jitter() -> SenderConfig {
    SenderConfig {
        jitter: 0.0,
        // Single sends from the start: these tests follow each copy.
        start_in_copies: false,
        ..SenderConfig::default()
    }
}

fn send_all(s: &mut Sender<u64>, now: Time) -> Vec<u64> {
    std::iter::from_fn(|| s.poll_transmit(now).map(|(seq, _)| seq)).collect()
}

fn events(s: &mut Sender<u64>) -> Vec<SenderEvent<u64>> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn cumulative_ack_releases_in_order() {
    let mut s = sender(no_jitter());
    let t = Time::ZERO;
    for i in 0..3 {
        assert_eq!(s.push(t, i * 10).unwrap(), i + 1);
    }
    assert_eq!(send_all(&mut s, t), vec![1, 2, 3]);
    s.handle_ack(t + ms(100), 2, &[], Duration::ZERO);
    let ev = events(&mut s);
    assert_eq!(
        ev,
        vec![
            SenderEvent::Acked { seq: 1, item: 0 },
            SenderEvent::Acked { seq: 2, item: 10 }
        ]
    );
    assert_eq!(s.base(), 3);
    assert_eq!(s.rtt().srtt(), Some(ms(100)));
}

#[test]
fn timeout_retransmits_with_backoff_then_fails() {
    let cfg = SenderConfig {
        max_retransmits: 3,
        breaker_after: 100,
        ..no_jitter()
    };
    let mut s = sender(cfg);
    let mut now = Time::ZERO;
    s.push(now, 1).unwrap();
    assert_eq!(send_all(&mut s, now), vec![1]);
    let mut gaps = Vec::new();
    let mut last = now;
    while let Some(deadline) = s.poll_timeout() {
        now = deadline;
        s.handle_timeout(now);
        if send_all(&mut s, now) == vec![1] {
            gaps.push(now.saturating_since(last));
            last = now;
        }
    }
    // Initial RTO 500 ms, then x1.5 per timeout.
    assert_eq!(gaps, vec![ms(500), ms(750), ms(1125)]);
    let ev = events(&mut s);
    assert!(matches!(
        ev.as_slice(),
        [SenderEvent::Failed {
            seq: 1,
            retransmits: 3,
            ..
        }]
    ));
    assert!(s.is_failed());
    assert_eq!(s.len(), 1, "a failed flow keeps its messages");
    assert!(s.poll_transmit(now).is_none());
}

#[test]
fn sack_counting_resends_the_gap_when_time_based_detection_is_off() {
    let mut s = sender(SenderConfig {
        jitter: 0.0,
        ..SenderConfig::before_rack()
    });
    let t0 = Time::ZERO;
    for i in 0..5 {
        s.push(t0, i).unwrap();
    }
    send_all(&mut s, t0);
    // 1 arrived, 2 lost, 3..5 received but not released.
    s.handle_ack(t0 + ms(100), 1, &[(3, 5)], Duration::ZERO);
    assert_eq!(send_all(&mut s, t0 + ms(100)), vec![2]);
    assert_eq!(s.stats().fast_retransmits, 1);
    // On the timer the gap is resent; received-but-unreleased messages wait,
    // since the gap's repair will make the peer acknowledge again.
    s.handle_timeout(t0 + ms(600));
    assert_eq!(send_all(&mut s, t0 + ms(600)), vec![2]);
}

#[test]
fn window_bounds_messages_in_flight() {
    let cfg = SenderConfig {
        window: 4,
        ..no_jitter()
    };
    let mut s = sender(cfg);
    for i in 0..10 {
        s.push(Time::ZERO, i).unwrap();
    }
    assert_eq!(send_all(&mut s, Time::ZERO), vec![1, 2, 3, 4]);
    s.handle_ack(Time::from_millis(50), 2, &[], Duration::ZERO);
    assert_eq!(send_all(&mut s, Time::from_millis(50)), vec![5, 6]);
}

#[test]
fn capacity_is_enforced() {
    let cfg = SenderConfig {
        capacity: 2,
        ..no_jitter()
    };
    let mut s = sender(cfg);
    s.push(Time::ZERO, 0).unwrap();
    s.push(Time::ZERO, 0).unwrap();
    assert_eq!(s.push(Time::ZERO, 0), Err(QueueFull { capacity: 2 }));
}

#[test]
fn breaker_probes_only_the_oldest_message() {
    let mut s = sender(no_jitter());
    for i in 0..8 {
        s.push(Time::ZERO, i).unwrap();
    }
    send_all(&mut s, Time::ZERO);
    let mut now = Time::ZERO;
    let mut last_round = Vec::new();
    for _ in 0..4 {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        last_round = send_all(&mut s, now);
    }
    assert_eq!(s.stats().breaker_opened, 1);
    assert_eq!(last_round, vec![1]);
    // An ACK closes the breaker and new traffic flows again.
    s.handle_ack(now + ms(100), 1, &[], Duration::ZERO);
    s.push(now, 99).unwrap();
    let out = send_all(&mut s, now + ms(100));
    assert!(
        out.contains(&9),
        "new message sent after breaker closed: {out:?}"
    );
}

#[test]
fn karn_rule_skips_retransmitted_samples() {
    let mut s = sender(no_jitter());
    s.push(Time::ZERO, 0).unwrap();
    send_all(&mut s, Time::ZERO);
    s.handle_timeout(Time::from_millis(500));
    send_all(&mut s, Time::from_millis(500));
    s.handle_ack(Time::from_millis(510), 1, &[], Duration::ZERO);
    assert_eq!(s.rtt().srtt(), None);
}

#[test]
fn acks_for_unsent_sequences_are_clamped() {
    let mut s = sender(no_jitter());
    s.push(Time::ZERO, 0).unwrap();
    s.push(Time::ZERO, 0).unwrap();
    let cfg_window_one = s.poll_transmit(Time::ZERO);
    assert!(cfg_window_one.is_some());
    s.poll_transmit(Time::ZERO);
    s.handle_ack(
        Time::ZERO,
        u64::MAX,
        &[(u64::MAX - 5, u64::MAX)],
        Duration::ZERO,
    );
    assert_eq!(s.stats().invalid_acks, 1);
    assert_eq!(s.base(), 3);
}

#[test]
fn revive_resends_everything_after_failure() {
    let cfg = SenderConfig {
        max_retransmits: 0,
        ..no_jitter()
    };
    let mut s = sender(cfg);
    s.push(Time::ZERO, 0).unwrap();
    s.push(Time::ZERO, 1).unwrap();
    send_all(&mut s, Time::ZERO);
    s.handle_timeout(Time::from_millis(500));
    assert!(s.is_failed());
    s.revive(Time::from_secs(10));
    assert_eq!(send_all(&mut s, Time::from_secs(10)), vec![1, 2]);
}

#[test]
fn drain_returns_everything_unreleased() {
    let mut s = sender(no_jitter());
    for i in 0..3 {
        s.push(Time::ZERO, i).unwrap();
    }
    send_all(&mut s, Time::ZERO);
    s.handle_ack(Time::ZERO, 1, &[], Duration::ZERO);
    assert_eq!(s.drain(), vec![(2, 1), (3, 2)]);
    assert!(s.is_empty());
}

#[test]
fn one_received_message_probes_when_the_releasing_ack_is_lost() {
    let mut s = sender(no_jitter());
    for i in 0..3 {
        s.push(Time::ZERO, i).unwrap();
    }
    send_all(&mut s, Time::ZERO);
    // Everything arrived but nothing was released yet (e.g. not yet durable),
    // and then the ACK that would release it was lost.
    s.handle_ack(Time::ZERO + ms(100), 0, &[(1, 3)], Duration::ZERO);
    let now = s.poll_timeout().unwrap();
    s.handle_timeout(now);
    assert_eq!(send_all(&mut s, now), vec![1], "a single probe");
    assert_eq!(s.stats().breaker_opened, 0);
}

#[test]
fn random_loss_does_not_open_the_breaker() {
    let mut s = sender(no_jitter());
    let mut now = Time::ZERO;
    for i in 0..20 {
        s.push(now, i).unwrap();
    }
    send_all(&mut s, now);
    // Message 1 keeps getting lost while later ones keep being acknowledged
    // selectively: the path is alive.
    for round in 0..6 {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        send_all(&mut s, now);
        s.handle_ack(now + ms(50), 0, &[(2, 20)], Duration::ZERO);
        assert_eq!(s.stats().breaker_opened, 0, "round {round}");
    }
}
