//! Inbox entries are deleted once every registered device has passed them,
//! or when the retention time ends even if a device never read them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tern_core::auth::{Claims, TokenKeys};
use tern_core::broker::{Broker, BrokerConfig};
use tern_core::client::{ClientConfig, ClientConn, ClientEvent, Outgoing};
use tern_core::store::{MemStore, Store};
use tern_core::time::Time;

struct Net {
    broker: Broker<MemStore>,
    store: Arc<MemStore>,
    clients: Vec<(SocketAddr, ClientConn)>,
    now: Time,
}

impl Net {
    fn new(retention: Duration) -> Net {
        let store = Arc::new(MemStore::new());
        let cfg = BrokerConfig {
            retention,
            ..BrokerConfig::default()
        };
        let keys = TokenKeys::new(b"k".to_vec(), vec![]);
        Net {
            broker: Broker::new(cfg, store.clone(), keys, 1_700_000_000_000, 1),
            store,
            clients: Vec::new(),
            now: Time::ZERO,
        }
    }

    fn connect(&mut self, user: u64, device: u32) -> usize {
        let token = TokenKeys::new(b"k".to_vec(), vec![]).sign(Claims {
            user,
            device,
            expires: u64::MAX,
        });
        let addr: SocketAddr = format!("127.0.0.1:{}", 10000 + self.clients.len())
            .parse()
            .unwrap();
        self.clients.push((
            addr,
            ClientConn::new(ClientConfig::new(token.into()), self.now, 7),
        ));
        self.clients.len() - 1
    }

    /// Moves everything until nothing is left to move (perfect network, instant commits).
    fn settle(&mut self) -> Vec<Vec<ClientEvent>> {
        let mut events = vec![Vec::new(); self.clients.len()];
        for _ in 0..1000 {
            let mut moved = false;
            for (addr, c) in &mut self.clients {
                c.handle_timeout(self.now);
                while let Some(d) = c.poll_transmit(self.now) {
                    self.broker.handle_datagram(self.now, *addr, d);
                    moved = true;
                }
            }
            self.broker.handle_timeout(self.now);
            while let Some(c) = self.broker.poll_commit() {
                self.store.commit(&c.batch).unwrap();
                self.broker.handle_committed(self.now, c.id, Ok(()));
                moved = true;
            }
            while let Some((to, d)) = self.broker.poll_transmit() {
                if let Some((_, c)) = self.clients.iter_mut().find(|(a, _)| *a == to) {
                    c.handle_datagram(self.now, d);
                    moved = true;
                }
            }
            for (i, (_, c)) in self.clients.iter_mut().enumerate() {
                events[i].extend(std::iter::from_fn(|| c.poll_event()));
            }
            if !moved {
                if self.clients.iter().all(|(_, c)| c.pending() == 0) {
                    break;
                }
                // Let coalesced ACKs fall due.
                self.now += Duration::from_millis(20);
            }
        }
        events
    }

    fn send(&mut self, client: usize, to: u64) {
        let op = Outgoing::Send {
            to,
            conv: 1,
            msg_type: 0,
            payload: "x".into(),
        };
        self.clients[client].1.submit(self.now, op).unwrap();
    }
}

#[test]
fn entries_read_by_every_device_are_trimmed() {
    let mut net = Net::new(Duration::from_secs(3600));
    let a = net.connect(1, 1);
    let b1 = net.connect(2, 1);
    let b2 = net.connect(2, 2);
    net.settle();
    net.send(a, 2);
    net.settle();
    // Both devices of user 2 got and acknowledged it (plus alice's receipts).
    let meta = net.store.inbox_meta(2).unwrap().unwrap();
    assert_eq!(meta.head, 1);
    net.now += Duration::from_secs(1);
    net.settle();
    let meta = net.store.inbox_meta(2).unwrap().unwrap();
    assert_eq!(
        meta.trimmed, 1,
        "both devices passed entry 1, so it is deleted"
    );
    assert!(net.store.read_inbox(2, 0, 10).unwrap().is_empty());
    let _ = (b1, b2);
}

#[test]
fn entry_waiting_for_an_absent_device_stays_until_retention_ends() {
    let mut net = Net::new(Duration::from_secs(120));
    let a = net.connect(1, 1);
    let b1 = net.connect(2, 1);
    let b2 = net.connect(2, 2);
    net.settle();
    // Device 2 of user 2 goes away for good.
    net.clients.remove(b2);
    net.send(a, 2);
    net.settle();
    net.now += Duration::from_secs(60);
    net.send(a, 2);
    net.settle();
    assert_eq!(
        net.store.read_inbox(2, 0, 10).unwrap().len(),
        2,
        "kept for the absent device"
    );
    // Past retention, the next activity on the inbox sweeps the old entries.
    net.now += Duration::from_secs(100);
    net.send(a, 2);
    net.settle();
    let left: Vec<u64> = net
        .store
        .read_inbox(2, 0, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        left,
        vec![2, 3],
        "entry 1 is older than 120 s and was deleted"
    );
    let _ = b1;
}
