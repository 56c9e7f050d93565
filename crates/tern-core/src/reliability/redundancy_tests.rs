//! Unit tests of redundant first sends (`sender/redundancy.rs`): a sender
//! on a path that keeps losing sends new messages in copies, 2 ms apart;
//! one on a clean path, or with a full window, does not. Virtual time.

use std::time::Duration;

use super::*;
use crate::time::Time;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn sender(window: usize) -> Sender<u64> {
    Sender::new(
        SenderConfig {
            jitter: 0.0,
            window,
            ..SenderConfig::default()
        },
        1,
        7,
    )
}

/// Sends whatever is due at `t`.
fn drain(s: &mut Sender<u64>, t: Time) {
    s.handle_timeout(t);
    while s.poll_transmit(t).is_some() {}
}

/// Drives `n` messages over a 100 ms path, one every 10 ms of quiet. Every
/// `every`-th one (0: none) is lost, with all its copies; the next one,
/// sent 5 ms later, arrives, so the time rule finds the loss and the
/// repair gets through. Returns the time reached.
fn chat(s: &mut Sender<u64>, mut now: Time, n: u64, every: u64) -> Time {
    let mut i = 0;
    while i < n {
        let seq = s.push(now, i).unwrap();
        drain(s, now);
        i += 1;
        if every > 0 && seq.is_multiple_of(every) {
            let next = s.push(now + ms(5), i).unwrap();
            i += 1;
            drain(s, now + ms(5));
            drain(s, now + ms(7));
            s.handle_ack(now + ms(105), seq - 1, &[(next, next)], Duration::ZERO);
            // The repair and its copy 2 ms later; the first one arrives,
            // and its report comes a round trip after it was sent.
            let t = s.poll_timeout().expect("the loss timer");
            drain(s, t);
            drain(s, t + ms(2));
            now = t + ms(100);
            s.handle_ack(now, next, &[], Duration::ZERO);
            assert!(s.get(seq).is_none(), "repaired");
        } else {
            drain(s, now + ms(2));
            now += ms(100);
            s.handle_ack(now, seq, &[], Duration::ZERO);
        }
        now += ms(10);
    }
    now
}

/// Sends one new message at `now` and returns when each copy of it left
/// (copies of earlier messages may leave in between).
fn copies_of_next(s: &mut Sender<u64>, now: Time) -> Vec<Time> {
    let seq = s.push(now, 0).unwrap();
    let mut sent = Vec::new();
    let mut t = now;
    for _ in 0..4 {
        s.handle_timeout(t);
        while let Some((q, _)) = s.poll_transmit(t) {
            if q == seq {
                sent.push(t);
            }
        }
        match s.poll_timeout() {
            Some(next) if next <= now + ms(5) => t = next,
            _ => break,
        }
    }
    sent
}

#[test]
fn a_clean_path_sends_each_message_once_after_the_probation() {
    let mut s = sender(256);
    let now = chat(&mut s, Time::ZERO, 500, 0);
    assert_eq!(copies_of_next(&mut s, now), vec![now]);
    assert!(
        s.stats().first_copies <= u64::from(super::sender::PROBATION_PAIRS),
        "copies only while on probation: {}",
        s.stats().first_copies
    );
    assert!(!s.loss_estimate().1);
}

#[test]
fn a_new_sender_sends_copies_until_the_path_shows_it_is_clean() {
    let mut s = sender(256);
    assert!(s.on_probation());
    assert_eq!(
        copies_of_next(&mut s, Time::ZERO),
        vec![Time::ZERO, Time::ZERO + ms(2)]
    );
    s.path_loss_hint(0.0);
    assert!(!s.on_probation() && !s.loss_estimate().1);
    let now = Time::ZERO + ms(50);
    assert_eq!(copies_of_next(&mut s, now), vec![now]);
}

#[test]
fn a_hint_of_loss_keeps_copies_on_and_later_hints_change_nothing() {
    let mut s = sender(256);
    s.path_loss_hint(0.05);
    assert!(!s.on_probation() && s.loss_estimate().1);
    s.path_loss_hint(0.0);
    assert!(s.loss_estimate().1, "copies stay on until the dwell");
    assert_eq!(copies_of_next(&mut s, Time::ZERO).len(), 2);
}

#[test]
fn a_pair_that_loses_both_copies_ends_the_probation_with_copies_on() {
    let mut s = sender(256);
    // Message 1 and both its copies are lost; message 2 arrives.
    chat(&mut s, Time::ZERO, 2, 1);
    assert!(!s.on_probation());
    assert!(s.loss_estimate().1);
}

#[test]
fn no_probation_without_start_in_copies() {
    let s: Sender<u64> = Sender::new(
        SenderConfig {
            start_in_copies: false,
            ..SenderConfig::default()
        },
        1,
        7,
    );
    assert!(!s.on_probation() && !s.loss_estimate().1);
}

#[test]
fn a_path_losing_one_in_ten_sends_new_messages_twice_two_ms_apart() {
    let mut s = sender(256);
    let now = chat(&mut s, Time::ZERO, 100, 10);
    let (rate, on) = s.loss_estimate();
    assert!(on, "estimated loss {rate}");
    let sent = copies_of_next(&mut s, now);
    assert!(sent.len() >= 2, "{sent:?}");
    for (k, t) in sent.iter().enumerate() {
        assert_eq!(*t, now + ms(2 * k as u64));
    }
    assert!(s.stats().first_copies >= 1);
}

/// Copies of the next eight new messages, 50 ms apart, after `hint`.
fn copy_counts_after_hint(hint: f32) -> Vec<usize> {
    let mut s = sender(256);
    let mut now = chat(&mut s, Time::ZERO, 100, 10);
    s.path_loss_hint(hint);
    assert!(s.loss_estimate().1);
    (0..8)
        .map(|_| {
            let n = copies_of_next(&mut s, now).len();
            now += ms(50);
            n
        })
        .collect()
}

#[test]
fn with_the_owners_estimate_above_four_per_cent_every_message_goes_in_three() {
    assert_eq!(copy_counts_after_hint(0.05), vec![3; 8]);
}

#[test]
fn with_the_owners_estimate_below_four_per_cent_messages_go_in_two() {
    assert_eq!(copy_counts_after_hint(0.03), vec![2; 8]);
}

#[test]
fn the_owners_estimate_stops_copies_after_the_dwell() {
    let mut s = sender(256);
    let now = chat(&mut s, Time::ZERO, 100, 10);
    s.path_loss_hint(0.05);
    let now = chat(&mut s, now, u64::from(super::sender::DWELL) + 10, 0);
    assert!(
        s.loss_estimate().1,
        "a clean stretch alone does not stop them"
    );
    s.path_loss_hint(0.001);
    assert!(!s.loss_estimate().1);
    assert_eq!(copies_of_next(&mut s, now), vec![now]);
}

#[test]
fn with_three_copies_every_fourth_message_still_goes_in_two() {
    let mut s = Sender::new(
        SenderConfig {
            jitter: 0.0,
            redundant_copies: 3,
            ..SenderConfig::default()
        },
        1,
        7,
    );
    let mut now = chat(&mut s, Time::ZERO, 100, 10);
    let (rate, on) = s.loss_estimate();
    assert!(on, "estimated loss {rate}");
    let mut counts = Vec::new();
    for _ in 0..8 {
        let sent = copies_of_next(&mut s, now);
        // 2 ms apart.
        for (k, t) in sent.iter().enumerate() {
            assert_eq!(*t, now + ms(2 * k as u64));
        }
        counts.push(sent.len());
        now += ms(50);
    }
    counts.sort();
    assert_eq!(counts, vec![2, 2, 3, 3, 3, 3, 3, 3]);
    assert!(s.stats().first_copies >= 1);
}

#[test]
fn copies_stop_once_the_path_heals() {
    let mut s = sender(256);
    let now = chat(&mut s, Time::ZERO, 100, 10);
    assert!(s.loss_estimate().1);
    let now = chat(&mut s, now, 4_000, 0);
    assert!(!s.loss_estimate().1, "rate {}", s.loss_estimate().0);
    assert_eq!(copies_of_next(&mut s, now), vec![now]);
}

#[test]
fn a_half_full_window_gets_no_copies() {
    let mut s = sender(4);
    let now = chat(&mut s, Time::ZERO, 100, 10);
    assert!(s.loss_estimate().1);
    // Two in flight of a window of four: the next one goes once.
    s.push(now, 0).unwrap();
    s.push(now, 0).unwrap();
    assert_eq!(std::iter::from_fn(|| s.poll_transmit(now)).count(), 2);
    assert_eq!(copies_of_next(&mut s, now), vec![now]);
}

#[test]
fn turned_off_it_never_copies() {
    let mut s = Sender::new(
        SenderConfig {
            jitter: 0.0,
            redundant_sends_at: 0.0,
            ..SenderConfig::default()
        },
        1,
        7,
    );
    let now = chat(&mut s, Time::ZERO, 100, 10);
    assert!(!s.loss_estimate().1);
    assert_eq!(copies_of_next(&mut s, now), vec![now]);
}

#[test]
fn a_late_ack_is_not_counted_as_a_loss() {
    let mut s = sender(256);
    // The path is known clean: no probation.
    s.path_loss_hint(0.0);
    let mut now = chat(&mut s, Time::ZERO, 20, 0);
    // Every other message's ACK comes late: the one sent after it is
    // reported first, the time rule resends it, and its report comes just
    // after the resend. The resends were needless; nothing was lost.
    for i in 0..100 {
        let seq = s.push(now, i).unwrap();
        drain(&mut s, now);
        let next = s.push(now + ms(5), i).unwrap();
        drain(&mut s, now + ms(5));
        s.handle_ack(now + ms(105), seq - 1, &[(next, next)], Duration::ZERO);
        let t = s.poll_timeout().expect("the loss timer");
        drain(&mut s, t);
        now = t + ms(5);
        s.handle_ack(now, next, &[], Duration::ZERO);
        now += ms(10);
    }
    assert!(s.stats().fast_retransmits >= 100);
    assert!(!s.loss_estimate().1, "rate {}", s.loss_estimate().0);
}

#[test]
fn probes_and_stalls_are_not_counted_as_losses() {
    let mut s = sender(256);
    // The path is known clean: no probation.
    s.path_loss_hint(0.0);
    let mut now = chat(&mut s, Time::ZERO, 20, 0);
    // Each message's ACK is held 400 ms (a slow commit): the tail-loss
    // probe and then the RTO resend it while nothing at all is heard.
    for i in 0..100 {
        let seq = s.push(now, i).unwrap();
        drain(&mut s, now);
        let mut t = now;
        while t < now + ms(400) {
            t = s.poll_timeout().expect("armed");
            drain(&mut s, t);
        }
        // Longer than a round trip after the last resend: not a late ACK
        // by the timing rule.
        now = t + ms(150);
        s.handle_ack(now, seq, &[], Duration::ZERO);
        now += ms(10);
    }
    assert!(s.stats().tail_probes + s.stats().timeout_retransmits >= 100);
    assert!(!s.loss_estimate().1, "rate {}", s.loss_estimate().0);
}

#[test]
fn messages_sent_in_copies_still_measure_the_round_trip() {
    let mut s = sender(256);
    let mut now = chat(&mut s, Time::ZERO, 100, 10);
    assert!(s.loss_estimate().1);
    // The path's round trip grows to 300 ms; every message goes in copies.
    for i in 0..50 {
        let seq = s.push(now, i).unwrap();
        assert!(copies_of_next_sent(&mut s, now, seq) >= 2);
        now += ms(300);
        s.handle_ack(now, seq, &[], Duration::ZERO);
        now += ms(10);
    }
    let srtt = s.rtt().srtt().expect("sampled");
    assert!(
        srtt > ms(280),
        "srtt {srtt:?}: copies stopped the RTT samples"
    );
}

/// Sends what is due for `seq` over the next 5 ms and counts its copies.
fn copies_of_next_sent(s: &mut Sender<u64>, now: Time, seq: u64) -> usize {
    let mut n = 0;
    for t in [now, now + ms(2), now + ms(5)] {
        s.handle_timeout(t);
        while let Some((q, _)) = s.poll_transmit(t) {
            n += usize::from(q == seq);
        }
    }
    n
}
