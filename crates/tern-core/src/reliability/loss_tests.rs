//! Unit tests of the sender's loss detection (time-based, RACK-style, and
//! the tail-loss probe), in virtual time.

use std::time::Duration;

use super::*;
use crate::time::Time;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn at(v: u64) -> Time {
    Time::from_millis(v)
}

/// The defaults without jitter, and one copy per repair unless a test
/// is about the copies.
fn sender() -> Sender<u64> {
    with_copies(1)
}

fn with_copies(repair_copies: u8) -> Sender<u64> {
    Sender::new(
        SenderConfig {
            jitter: 0.0,
            repair_copies,
            // Single sends from the start: these tests follow each copy.
            start_in_copies: false,
            ..SenderConfig::default()
        },
        1,
        7,
    )
}

fn send_all(s: &mut Sender<u64>, now: Time) -> Vec<u64> {
    std::iter::from_fn(|| s.poll_transmit(now).map(|(seq, _)| seq)).collect()
}

/// Pushes `n` messages at `now` and sends them.
fn burst(s: &mut Sender<u64>, now: Time, n: u64) -> Vec<u64> {
    for i in 0..n {
        s.push(now, i).unwrap();
    }
    send_all(s, now)
}

#[test]
fn a_gap_is_resent_once_a_later_message_is_received_and_nine_eighths_of_an_rtt_passed() {
    let mut s = sender();
    burst(&mut s, at(0), 5);
    // 1 arrived, 2 lost, 3..5 received: RTT 100 ms, so 2 is lost at 112.5 ms.
    s.handle_ack(at(100), 1, &[(3, 5)], Duration::ZERO);
    assert!(
        send_all(&mut s, at(100)).is_empty(),
        "not before the threshold"
    );
    assert_eq!(s.poll_timeout(), Some(Time::from_micros(112_500)));
    s.handle_timeout(Time::from_micros(112_500));
    assert_eq!(send_all(&mut s, Time::from_micros(112_500)), vec![2]);
    assert_eq!(s.stats().fast_retransmits, 1);
    assert_eq!(s.stats().timeout_retransmits, 0);
}

#[test]
fn reordering_within_the_threshold_is_not_a_loss() {
    let mut s = sender();
    burst(&mut s, at(0), 5);
    s.handle_ack(at(100), 1, &[(3, 5)], Duration::ZERO);
    // 2 was only late: it arrives before 9/8 of an RTT.
    s.handle_ack(at(105), 5, &[], Duration::ZERO);
    s.handle_timeout(at(113));
    assert!(send_all(&mut s, at(113)).is_empty());
    assert_eq!(s.stats().fast_retransmits, 0);
    assert_eq!(s.poll_timeout(), None, "nothing in flight, nothing armed");
}

#[test]
fn a_lost_retransmission_is_found_from_a_message_sent_after_it() {
    let mut s = sender();
    burst(&mut s, at(0), 5);
    s.handle_ack(at(100), 1, &[(3, 5)], Duration::ZERO);
    s.handle_timeout(Time::from_micros(112_500));
    assert_eq!(send_all(&mut s, Time::from_micros(112_500)), vec![2]);
    // The copy of 2 is lost too; 6, sent after it, arrives.
    assert_eq!(burst(&mut s, at(120), 1), vec![6]);
    s.handle_ack(at(220), 1, &[(3, 6)], Duration::ZERO);
    // 2 was last sent at 112.5 ms: lost at 112.5 + 112.5 = 225 ms.
    assert!(send_all(&mut s, at(220)).is_empty());
    let t = s.poll_timeout().unwrap();
    assert_eq!(t, Time::from_micros(225_000));
    s.handle_timeout(t);
    assert_eq!(send_all(&mut s, t), vec![2]);
    assert_eq!(s.stats().fast_retransmits, 2);
}

#[test]
fn a_message_released_after_waiting_for_a_gap_gives_no_rtt_sample() {
    let mut s = sender();
    burst(&mut s, at(0), 3);
    s.handle_ack(at(100), 0, &[(2, 3)], Duration::ZERO);
    assert_eq!(s.rtt().srtt(), Some(ms(100)));
    s.handle_timeout(Time::from_micros(112_500));
    assert_eq!(send_all(&mut s, Time::from_micros(112_500)), vec![1]);
    // The repair lands; 2 and 3 are released 330 ms after they were sent,
    // which says nothing about the path.
    s.handle_ack(at(330), 3, &[], Duration::ZERO);
    assert_eq!(s.rtt().srtt(), Some(ms(100)));
    assert_eq!(s.rtt().latest(), ms(100));
}

/// One message answered after 100 ms: SRTT 100 ms, RTTVAR 50 ms, so the
/// RTO (310 ms) is later than a probe (200 ms).
fn warmed_up() -> Sender<u64> {
    let mut s = sender();
    burst(&mut s, at(0), 1);
    s.handle_ack(at(100), 1, &[], Duration::ZERO);
    s
}

#[test]
fn the_tail_probe_resends_the_newest_message_before_the_rto() {
    let mut s = warmed_up();
    assert_eq!(burst(&mut s, at(100), 2), vec![2, 3]);
    // The whole tail is lost: nothing later can reveal it.
    assert_eq!(s.poll_timeout(), Some(at(300)));
    s.handle_timeout(at(300));
    assert_eq!(send_all(&mut s, at(300)), vec![3], "the newest, once");
    assert_eq!(s.stats().tail_probes, 1);
    assert_eq!(s.stats().timeout_retransmits, 0);
    // One probe per tail: the next timer is 2's RTO.
    assert_eq!(s.poll_timeout(), Some(at(410)));
}

#[test]
fn the_answer_to_a_tail_probe_reveals_the_earlier_loss() {
    let mut s = warmed_up();
    burst(&mut s, at(100), 2);
    s.handle_timeout(at(300));
    send_all(&mut s, at(300));
    // The probe (3) arrives; 2, sent before it, is missing.
    s.handle_ack(at(400), 1, &[(3, 3)], Duration::ZERO);
    assert_eq!(send_all(&mut s, at(400)), vec![2]);
    assert_eq!(s.stats().fast_retransmits, 1);
    assert_eq!(s.stats().timeout_retransmits, 0);
}

#[test]
fn no_probe_when_the_rto_comes_first() {
    let mut s = sender();
    let mut now = at(0);
    for _ in 0..30 {
        burst(&mut s, now, 1);
        now += ms(100);
        let seq = s.base();
        s.handle_ack(now, seq, &[], Duration::ZERO);
    }
    // Steady 100 ms: RTO about 120 ms, earlier than 2 x SRTT.
    burst(&mut s, now, 1);
    let t = s.poll_timeout().unwrap();
    assert!(t < now + ms(200), "{t:?}");
    s.handle_timeout(t);
    assert_eq!(send_all(&mut s, t).len(), 1);
    assert_eq!(s.stats().tail_probes, 0);
    assert_eq!(s.stats().timeout_retransmits, 1);
}

#[test]
fn a_fully_received_flight_is_not_probed() {
    let mut s = warmed_up();
    burst(&mut s, at(100), 2);
    // Both received, not yet released (e.g. waiting to be durable).
    s.handle_ack(at(200), 1, &[(2, 3)], Duration::ZERO);
    let t = s.poll_timeout().unwrap();
    s.handle_timeout(t);
    send_all(&mut s, t);
    assert_eq!(s.stats().tail_probes, 0);
}

#[test]
fn a_repair_goes_out_twice_in_separate_datagrams() {
    let mut s = with_copies(2);
    burst(&mut s, at(0), 5);
    s.handle_ack(at(100), 1, &[(3, 5)], Duration::ZERO);
    let t = Time::from_micros(112_500);
    s.handle_timeout(t);
    assert_eq!(send_all(&mut s, t), vec![2], "one copy now");
    // The second one 2 ms later: a new wake-up, so a new datagram.
    assert_eq!(s.poll_timeout(), Some(t + ms(2)));
    s.handle_timeout(t + ms(2));
    assert_eq!(send_all(&mut s, t + ms(2)), vec![2]);
    assert_eq!(s.stats().fast_retransmits, 1);
    assert_eq!(s.stats().repair_copies, 1);
}

#[test]
fn the_second_copy_is_dropped_once_the_message_is_reported() {
    let mut s = with_copies(2);
    burst(&mut s, at(0), 5);
    s.handle_ack(at(100), 1, &[(3, 5)], Duration::ZERO);
    let t = Time::from_micros(112_500);
    s.handle_timeout(t);
    send_all(&mut s, t);
    // 2 was only late after all.
    s.handle_ack(t + ms(1), 1, &[(2, 5)], Duration::ZERO);
    s.handle_timeout(t + ms(2));
    assert!(send_all(&mut s, t + ms(2)).is_empty());
    assert_eq!(s.stats().repair_copies, 0);
}

#[test]
fn a_timeout_on_a_quiet_path_sends_one_copy() {
    let mut s = with_copies(2);
    burst(&mut s, at(0), 1);
    // Nothing is ever heard: the RTO fires, backed off, one copy each time.
    for _ in 0..3 {
        let t = s.poll_timeout().unwrap();
        s.handle_timeout(t);
        assert_eq!(send_all(&mut s, t), vec![1]);
    }
    assert_eq!(s.stats().repair_copies, 0);
    assert_eq!(s.stats().timeout_retransmits, 3);
}
