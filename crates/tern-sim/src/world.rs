//! A whole Tern deployment in virtual time: one broker over a [`MemStore`],
//! many client connections, and a seeded impaired link per client and
//! direction. Commits take simulated fsync time; the broker can be crashed
//! (dropped with its in-flight batch) and restarted over the same store;
//! client processes can crash and restart from their durable state
//! (`client.rs`); clients can change address. Everything is a function of
//! the seed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::checker::Checker;
use crate::client::SimClient;
pub use crate::config::{SimConfig, SimReport};
use crate::impairment::Link;
use tern_core::auth::{Claims, TokenKeys};
use tern_core::broker::Broker;
use tern_core::client::{ClientConfig, Outgoing};
use tern_core::store::{MemStore, Store};
use tern_core::time::Time;

enum Dest {
    Server(SocketAddr),
    Client(SocketAddr),
}

/// Runs one simulation to completion and checks it.
pub fn run(cfg: &SimConfig) -> SimReport {
    World::new(cfg).run()
}

struct World<'a> {
    cfg: &'a SimConfig,
    rng: SmallRng,
    now: Time,
    store: Arc<MemStore>,
    keys: TokenKeys,
    broker: Broker<MemStore>,
    /// Batches out for commit, oldest first, each with the time its sync
    /// ends: the store commits them one after another, as the daemon's
    /// committer thread does.
    commits: VecDeque<(Time, tern_core::broker::Commit)>,
    clients: Vec<SimClient>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    payloads: HashMap<u64, (Dest, Bytes)>,
    next_id: u64,
    next_port: u16,
    crash_at: Vec<Time>,
    client_crash_at: Vec<Time>,
    checker: Checker,
    report: SimReport,
    heal_applied: bool,
    registered: usize,
    /// Devices added after the window (conversations runs).
    late: usize,
    /// The group's script (groups runs).
    group: crate::world_groups::GroupScript,
    /// The end-of-run audit was started (conversations runs).
    audited: bool,
    /// `TERN_SIM_TRACE` set: print every client event.
    trace: bool,
}

impl<'a> World<'a> {
    fn new(cfg: &'a SimConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let store = Arc::new(MemStore::new());
        let keys = TokenKeys::new(b"sim-secret".to_vec(), vec![]);
        let broker = Broker::new(
            cfg.broker.clone(),
            store.clone(),
            keys.clone(),
            1_700_000_000_000,
            rng.gen(),
        );
        let mut crash_at: Vec<Time> = (0..cfg.crashes)
            .map(|_| Time::ZERO + cfg.send_window.mul_f64(rng.gen_range(0.05..1.0)))
            .collect();
        crash_at.sort();
        let mut client_crash_at: Vec<Time> = (0..cfg.client_crashes)
            .map(|_| Time::ZERO + cfg.send_window.mul_f64(rng.gen_range(0.02..1.0)))
            .collect();
        client_crash_at.sort();
        // Drawn only in groups runs, so other runs keep their seeds' runs.
        let mut churn_at: Vec<Time> = (0..if cfg.groups { cfg.group_churn } else { 0 })
            .map(|_| Time::ZERO + cfg.send_window.mul_f64(rng.gen_range(0.1..0.9)))
            .collect();
        churn_at.sort();
        let mut w = World {
            group: crate::world_groups::GroupScript::new(cfg.users, churn_at),
            cfg,
            now: Time::ZERO,
            store,
            broker,
            commits: VecDeque::new(),
            clients: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            payloads: HashMap::new(),
            next_id: 0,
            next_port: 20000,
            crash_at,
            client_crash_at,
            checker: Checker::new(cfg.conversations),
            heal_applied: false,
            registered: 0,
            late: 0,
            audited: false,
            trace: std::env::var_os("TERN_SIM_TRACE").is_some(),
            report: SimReport {
                seed: cfg.seed,
                ..SimReport::default()
            },
            keys,
            rng,
        };
        w.checker.group.read_fanout =
            cfg.groups && cfg.broker.group_write_fanout_max < cfg.users as usize;
        for user in 1..=cfg.users {
            for device in 1..=cfg.devices {
                w.add_client(user, device);
            }
        }
        w
    }

    fn add_client(&mut self, user: u64, device: u32) {
        let token = self.keys.sign(Claims {
            user,
            device,
            expires: u64::MAX,
        });
        let mut ccfg = ClientConfig::new(token.into());
        if self.cfg.conversations {
            ccfg.version = tern_core::wire::VERSION_2;
        }
        ccfg.server_key = self.cfg.broker.seal_key.as_ref().map(|k| k.public());
        ccfg.wall_origin_ms = 1_700_000_000_000;
        let addr = self.fresh_addr();
        let idx = self.clients.len();
        self.by_addr.insert(addr, idx);
        let gap = self.cfg.send_window / (self.cfg.messages_per_device + 1);
        let links = (
            Link::new(self.cfg.up.clone(), self.rng.gen()),
            Link::new(self.cfg.down.clone(), self.rng.gen()),
        );
        let next_send = self.now + gap.mul_f64(self.rng.gen_range(0.1..1.0));
        let mut c = SimClient::new(
            ccfg,
            (user, device),
            addr,
            links,
            next_send,
            (self.cfg.read_delay, self.cfg.write_latency),
            self.rng.gen(),
            self.now,
        );
        c.to_send = self.cfg.messages_per_device;
        c.marks = self.cfg.conversations;
        self.clients.push(c);
    }

    fn fresh_addr(&mut self) -> SocketAddr {
        self.next_port += 1;
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)), self.next_port)
    }

    fn enqueue(&mut self, at_us: u64, dest: Dest, data: Bytes) {
        self.next_id += 1;
        self.payloads.insert(self.next_id, (dest, data));
        self.queue.push(Reverse((at_us, self.next_id, 0)));
        self.report.datagrams += 1;
    }

    fn healed(&self) -> bool {
        self.now >= Time::ZERO + self.cfg.send_window
    }

    fn run(mut self) -> SimReport {
        let end = Time::ZERO + self.cfg.send_window + self.cfg.settle;
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(
                steps < 50_000_000,
                "seed {}: simulation does not progress",
                self.cfg.seed
            );
            self.step();
            if self.healed() && self.quiescent() && !self.next_phase() {
                break;
            }
            let Some(next) = self.next_time() else { break };
            if next > end {
                self.now = end;
                break;
            }
            self.now = next.max(self.now);
        }
        self.report.steps = steps;
        self.finish()
    }

    /// Once everything is delivered in a conversations run: late devices
    /// join, then every device audits. False when there is nothing left.
    fn next_phase(&mut self) -> bool {
        if !self.cfg.conversations {
            return false;
        }
        if self.late == 0 && self.cfg.late_devices > 0 {
            for k in 0..self.cfg.late_devices {
                let user = u64::from(k) % self.cfg.users + 1;
                let device = self.cfg.devices + 1 + k;
                self.checker.add_late((user, device));
                self.add_client(user, device);
                self.clients.last_mut().expect("just added").to_send = 0;
            }
            self.late = self.cfg.late_devices as usize;
            return true;
        }
        if !self.audited {
            self.audited = true;
            let group = self.checker.group.id.map(|g| {
                let head = self
                    .store
                    .conv_meta(&tern_core::conv::ConvKey::Group(g))
                    .ok()
                    .flatten()
                    .map_or(0, |m| m.head);
                (g, head)
            });
            for c in &mut self.clients {
                if self.cfg.groups && c.user == 1 && c.device == 1 {
                    c.audit.count_group = group;
                }
                c.audit.start();
            }
            return true;
        }
        false
    }

    fn quiescent(&self) -> bool {
        self.queue.is_empty()
            && self.commits.is_empty()
            && !self.broker.commit_in_flight()
            && self.clients.iter().all(SimClient::is_idle)
            && self.checker.all_delivered(u64::from(self.cfg.devices))
            && (!self.cfg.groups || self.group_complete())
    }

    /// Groups runs: every on-time device was handed its whole sync
    /// timeline (read positions included) and so its user's stretches of
    /// the group, and every post settled. (The direct checker's count says
    /// nothing here, and the broker may still owe a device an entry while
    /// every link is quiet: a session it marked unreachable waits for the
    /// device's next heartbeat.)
    fn group_complete(&self) -> bool {
        let on_time = self.clients.len() - self.late;
        let devices: Vec<(u64, u32)> = self.clients[..on_time]
            .iter()
            .map(|c| (c.user, c.device))
            .collect();
        let caught_up = devices.iter().all(|&(user, device)| {
            let head = self
                .store
                .inbox_meta(user)
                .ok()
                .flatten()
                .map_or(0, |m| m.head);
            self.checker.last_handed((user, device)) >= head
        });
        caught_up && self.checker.group.complete(&self.store, &devices)
    }

    fn next_time(&self) -> Option<Time> {
        let mut t: Option<Time> = None;
        let mut consider = |x: Option<Time>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        consider(
            self.queue
                .peek()
                .map(|Reverse((at, _, _))| Time::from_micros(*at)),
        );
        consider(self.broker.poll_timeout());
        consider(self.commits.front().map(|(at, _)| *at));
        consider(self.crash_at.first().copied());
        consider(self.client_crash_at.first().copied());
        for c in &self.clients {
            consider(c.poll_timeout());
            let running = c.offline_until.is_none() && c.conn().is_some();
            if c.to_send > 0 && running && self.registered == self.clients.len() {
                consider(Some(c.next_send));
            }
        }
        // Never stand still: a deadline in the past means "now".
        t.map(|t| t.max(self.now + Duration::from_micros(1)))
    }

    fn step(&mut self) {
        let now = self.now;
        if self.healed() && !self.heal_applied {
            self.heal_applied = true;
            for c in &mut self.clients {
                c.up = Link::perfect();
                c.down = Link::perfect();
                c.offline_until = None;
            }
        }
        if self.crash_at.first().is_some_and(|t| *t <= now) {
            self.crash_at.remove(0);
            self.crash();
        }
        if let Some(g) = self.checker.group.id {
            if self.group.churn_at.first().is_some_and(|t| *t <= now) {
                self.group.churn_at.remove(0);
                if let Some((i, op)) = self.group.churn(&mut self.rng, g, &self.clients) {
                    self.clients[i].submit(now, op, None);
                }
            }
        }
        if self.client_crash_at.first().is_some_and(|t| *t <= now) {
            self.client_crash_at.remove(0);
            let i = self.rng.gen_range(0..self.clients.len());
            self.crash_client(i);
        }
        while let Some(Reverse((at, id, _))) = self.queue.peek().copied() {
            if at > now.as_micros() {
                break;
            }
            self.queue.pop();
            let Some((dest, data)) = self.payloads.remove(&id) else {
                continue;
            };
            match dest {
                Dest::Server(from) => self.broker.handle_datagram(now, from, data),
                Dest::Client(addr) => {
                    if let Some(&i) = self.by_addr.get(&addr) {
                        if self.clients[i].offline_until.is_none() {
                            self.clients[i].handle_datagram(now, data);
                        }
                    }
                }
            }
        }
        self.broker.handle_timeout(now);
        self.run_commits();
        for i in 0..self.clients.len() {
            self.drive_client(i);
        }
        self.flush_broker();
    }

    fn run_commits(&mut self) {
        let now = self.now;
        while self.commits.front().is_some_and(|(at, _)| *at <= now) {
            let (_, c) = self.commits.pop_front().expect("checked above");
            self.store
                .commit(&c.batch)
                .expect("memory store cannot fail");
            self.broker.handle_committed(now, c.id, Ok(()));
        }
        // Everything staged goes out at once, up to the broker's limit of
        // batches in flight; each syncs after the one before it.
        while let Some(c) = self.broker.poll_commit() {
            let start = self.commits.back().map_or(now, |(at, _)| (*at).max(now));
            self.commits.push_back((start + self.cfg.commit_latency, c));
        }
    }

    fn crash(&mut self) {
        if self.trace {
            eprintln!("{:>10} CRASH", self.now.as_micros() / 1000);
        }
        self.report.crashes += 1;
        self.count_group_stats();
        // The batches out for commit: the oldest ones may have reached the
        // disk without the broker hearing of it, the rest never did.
        let landed = match self.commits.len() {
            0 => 0,
            n => self.rng.gen_range(0..=n),
        };
        for (_, c) in self.commits.drain(..).take(landed) {
            self.store
                .commit(&c.batch)
                .expect("memory store cannot fail");
        }
        self.broker = Broker::new(
            self.cfg.broker.clone(),
            self.store.clone(),
            self.keys.clone(),
            1_700_000_000_000 + self.now.as_micros() / 1000,
            self.rng.gen(),
        );
    }

    /// The process of client `i` dies (if running); it restarts after a
    /// while, from its durable state, on a new address.
    fn crash_client(&mut self, i: usize) {
        if self.clients[i].conn().is_none() {
            return;
        }
        let down = Duration::from_millis(self.rng.gen_range(50..3000));
        let c = &mut self.clients[i];
        let dev = (c.user, c.device);
        let durable = c.crash(self.now + down);
        self.by_addr.remove(&c.addr);
        if self.trace {
            eprintln!("{:>10} CRASH {dev:?}", self.now.as_micros() / 1000);
        }
        let server = self
            .store
            .devices(dev.0)
            .expect("memory store cannot fail")
            .iter()
            .find(|(d, _)| *d == dev.1)
            .map_or(0, |(_, s)| s.checkpoint);
        self.checker.on_restart(dev, durable, server);
        self.report.client_restarts += 1;
    }

    fn flush_broker(&mut self) {
        let now = self.now;
        while let Some((to, data)) = self.broker.poll_transmit() {
            let Some(&i) = self.by_addr.get(&to.addr) else {
                continue;
            };
            let out = self.clients[i].down.transmit(now.as_micros(), data);
            for d in out.deliveries {
                self.enqueue(d.at_us, Dest::Client(to.addr), d.datagram);
            }
        }
        while let Some(ev) = self.broker.poll_event() {
            if self.trace {
                eprintln!("{:>10} broker {:?}", now.as_micros() / 1000, ev);
            }
        }
    }

    fn drive_client(&mut self, i: usize) {
        let now = self.now;
        let all_registered = self.registered == self.clients.len();
        if self.clients[i].restart_at.is_some_and(|t| t <= now) {
            let addr = self.fresh_addr();
            self.by_addr.insert(addr, i);
            self.clients[i].start(now, addr);
        }
        let c = &mut self.clients[i];
        if let Some(until) = c.offline_until {
            if until > now {
                return;
            }
            c.offline_until = None;
        }
        if c.conn().is_none() {
            return;
        }
        // Devices register at their first login; the inbox is trimmed past
        // what every registered device has read, so a device that has never
        // logged in gets no history. Start sending once all have registered.
        if self.cfg.groups && all_registered && !self.group.created && i == 0 {
            self.group.create(&mut self.clients[0], now);
        }
        let c = &mut self.clients[i];
        let (due, left) = (c.next_send <= now && all_registered, c.to_send);
        if left > 0 && due && !self.healed() {
            self.send_one(i);
        } else if left > 0 && self.healed() && all_registered {
            while self.clients[i].to_send > 0 && self.send_one(i) {}
        }
        let c = &mut self.clients[i];
        let woken = c.wake(now, &mut self.checker);
        self.report.send_failures += woken.send_failures;
        if woken.logged_in && !c.registered {
            c.registered = true;
            self.registered += 1;
        }
        let addr = c.addr;
        let mut out = Vec::new();
        for d in woken.out {
            out.extend(c.up.transmit(now.as_micros(), d).deliveries);
        }
        for d in out {
            self.enqueue(d.at_us, Dest::Server(addr), d.datagram);
        }
        // Occasionally go offline for a while (receivers coming back later).
        if self.cfg.offline_spells > 0 && !self.healed() {
            let p = f64::from(self.cfg.offline_spells) / 200.0;
            if self.rng.gen_bool(p.min(1.0) / 50.0) {
                let spell = Duration::from_millis(self.rng.gen_range(500..8000));
                self.clients[i].offline_until = Some(now + spell);
            }
        }
    }

    /// Submits the next message of client `i`; false when it cannot yet (a
    /// groups run before the group's id is known).
    fn send_one(&mut self, i: usize) -> bool {
        let now = self.now;
        let group = self.checker.group.id;
        if self.cfg.groups && group.is_none() {
            let c = &mut self.clients[i];
            c.next_send = now + Duration::from_millis(100);
            return false;
        }
        let users = self.cfg.users;
        let mut to = self.rng.gen_range(1..=users);
        if to == self.clients[i].user && users > 1 {
            to = to % users + 1;
        }
        let c = &mut self.clients[i];
        let n = self.cfg.messages_per_device - c.to_send;
        c.to_send -= 1;
        let gap = self.cfg.send_window / (self.cfg.messages_per_device + 1);
        c.next_send = now + gap.mul_f64(self.rng.gen_range(0.5..1.5));
        let conv = c.user.min(to) * 1_000_000 + c.user.max(to);
        let payload = Checker::payload(c.user, c.device, n);
        let op = if let Some(g) = group.filter(|_| self.cfg.groups) {
            Outgoing::Post {
                conv: crate::world_groups::conv(g),
                topic: 0,
                msg_type: 0,
                payload,
            }
        } else if self.cfg.conversations {
            Outgoing::Post {
                conv: tern_core::wire::ConvRef::direct(to),
                topic: conv,
                msg_type: 0,
                payload,
            }
        } else {
            Outgoing::Send {
                to,
                conv,
                msg_type: 0,
                payload,
            }
        };
        if c.submit(now, op, Some(n)) {
            self.report.submitted += 1;
            let dev = (c.user, c.device);
            if self.cfg.groups {
                self.checker.group.on_submit(dev, n);
            } else {
                self.checker.on_submit(now, dev, to, n);
            }
        }
        if self.rng.gen_bool(self.cfg.address_change.clamp(0.0, 1.0)) {
            let old = self.clients[i].addr;
            self.by_addr.remove(&old);
            let new = self.fresh_addr();
            self.clients[i].addr = new;
            self.by_addr.insert(new, i);
        }
        true
    }
}

#[path = "world_report.rs"]
mod report;
