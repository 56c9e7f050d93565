//! A daemon's loop sleeps until the broker's next deadline. At a chat rate
//! each wake-up costs more CPU than the message it serves, so a deadline
//! that an answer cancelled (a retransmission or tail-loss probe timer,
//! once the ACK came) must not still wake the loop (`broker/timers.rs`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::store::Store;
use tern_core::time::Time;
use tern_sim::pair::{entries, Pair};

/// Where a datagram in flight goes.
enum To {
    Broker(SocketAddr),
    Client(SocketAddr),
}

/// A [`Pair`] whose datagrams take `one_way` each way, stepped 100 µs at a
/// time; counts the rounds in which only the broker's timer was due.
struct Slow {
    net: Pair,
    one_way: Duration,
    wire: VecDeque<(Time, To, Bytes)>,
    timer_wakes: u64,
    idle_timer_wakes: u64,
}

impl Slow {
    fn step(&mut self) -> Vec<Vec<u64>> {
        let now = self.net.now;
        for (addr, c) in &mut self.net.clients {
            c.handle_timeout(now);
            while let Some(d) = c.poll_transmit(now) {
                self.wire
                    .push_back((now + self.one_way, To::Broker(*addr), d));
            }
        }
        let mut arrived = false;
        let due: Vec<_> = self.take_due(now, true);
        for (to, d) in due {
            arrived = true;
            self.net.broker.handle_datagram(now, to, d);
        }
        let timer_only = !arrived && self.net.broker.poll_timeout().is_some_and(|t| t <= now);
        let out_before = self.net.broker.stats().datagrams_out;
        self.net.broker.handle_timeout(now);
        let mut committed = false;
        while let Some(c) = self.net.broker.poll_commit() {
            committed = true;
            self.net.store.commit(&c.batch).expect("memory store");
            self.net.broker.handle_committed(now, c.id, Ok(()));
        }
        if timer_only {
            self.timer_wakes += 1;
            if !committed && self.net.broker.stats().datagrams_out == out_before {
                self.idle_timer_wakes += 1;
            }
        }
        while let Some((to, d)) = self.net.broker.poll_transmit() {
            self.wire
                .push_back((now + self.one_way, To::Client(to.addr), d));
        }
        for (to, d) in self.take_due(now, false) {
            if let Some((_, c)) = self.net.clients.iter_mut().find(|(a, _)| *a == to) {
                c.handle_datagram(now, d);
            }
        }
        let events = self
            .net
            .clients
            .iter_mut()
            .map(|(_, c)| entries(&std::iter::from_fn(|| c.poll_event()).collect::<Vec<_>>()))
            .collect();
        self.net.now += Duration::from_micros(100);
        events
    }

    /// Datagrams due at `now`, to the broker or to the clients.
    fn take_due(&mut self, now: Time, to_broker: bool) -> Vec<(SocketAddr, Bytes)> {
        let mut due = Vec::new();
        self.wire.retain(|(at, to, d)| {
            let hit = match to {
                To::Broker(a) if to_broker && *at <= now => Some(*a),
                To::Client(a) if !to_broker && *at <= now => Some(*a),
                _ => None,
            };
            match hit {
                Some(a) => {
                    due.push((a, d.clone()));
                    false
                }
                None => true,
            }
        });
        due
    }
}

/// Alice sends Bob `n` messages `gap` apart over a path of `one_way` each
/// way; returns the timer wake-ups, and those that did nothing, after
/// checking every message arrived once, in order.
fn chat(n: u64, gap: Duration, one_way: Duration) -> (u64, u64) {
    let mut net = Pair::new(BrokerConfig::default());
    let alice = net.connect(1, 1, |_| {});
    let bob = net.connect(2, 1, |_| {});
    net.settle();
    let mut slow = Slow {
        net,
        one_way,
        wire: VecDeque::new(),
        timer_wakes: 0,
        idle_timer_wakes: 0,
    };
    let steps = (gap.as_micros() / 100) as usize;
    let mut got = Vec::new();
    for _ in 0..n {
        slow.net.send(alice, 2, 1);
        for _ in 0..steps {
            got.extend(slow.step().swap_remove(bob));
        }
    }
    for _ in 0..2000 {
        got.extend(slow.step().swap_remove(bob));
    }
    assert_eq!(
        got,
        (1..=n).collect::<Vec<_>>(),
        "every message once, in order"
    );
    (slow.timer_wakes, slow.idle_timer_wakes)
}

#[test]
fn a_chat_flow_wakes_the_broker_only_for_work() {
    let n = 200;
    for one_way in [Duration::from_micros(300), Duration::from_millis(20)] {
        let (wakes, idle) = chat(n, Duration::from_millis(5), one_way);
        assert!(
            idle <= n / 20,
            "{idle} of {wakes} timer wake-ups did nothing, for {n} messages ({one_way:?} each way)"
        );
    }
}
