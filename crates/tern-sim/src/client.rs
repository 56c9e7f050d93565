//! One simulated client device: its durable state (checkpoint and outbox,
//! as the client library keeps them in its state folder), the process
//! running on it (a `ClientConn` and an application reading entries), which
//! can crash and restart from that state, and its impaired links.
//!
//! The process drives `ClientConn` exactly as the client library's driver
//! (`src/client/driver.rs`) does: the library's release mode
//! ([`Release::library`]) with a persisted checkpoint; operations stored in
//! the outbox under the sequence they get before they are sent; on every
//! wake-up, timers, then events (outbox updates, entries to the
//! application), then the application's release, then the checkpoint
//! saved and confirmed, then the datagrams.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::audit::Audit;
use crate::checker::{Checker, Dev};
use crate::conv_view::{Mark, Views};
use crate::impairment::Link;
use tern_core::client::{
    Checkpoint, ClientConfig, ClientConn, ClientEvent, Held, OpId, Outgoing, Release,
};
use tern_core::time::Time;
use tern_core::wire::{ConvRef, Entry};

/// One operation in the durable outbox.
struct Row {
    /// Uplink sequence it is stored under (0: none yet).
    seq: u64,
    op: Outgoing,
    /// The checker's message counter (none: not a message).
    n: Option<u32>,
}

/// What survives a crash: the state folder.
#[derive(Default)]
struct Durable {
    checkpoint: Checkpoint,
    /// By key, in submission order.
    outbox: BTreeMap<u64, Row>,
    next_key: u64,
    /// The conversations the application read (version 2).
    views: Views,
    /// The ranges of each conversation the connection held at the last
    /// checkpoint write, saved with it as the library does.
    held: Vec<(ConvRef, Held)>,
}

/// One run of the application and its connection; lost at a crash.
struct Process {
    conn: ClientConn,
    /// Outbox key of each operation the connection holds.
    ops: HashMap<OpId, u64>,
    /// Entries handed up that the application has not read yet.
    unread: VecDeque<Entry>,
    /// When the application reads them.
    read_at: Option<Time>,
    /// Highest entry read (and so released).
    read: u64,
    /// A checkpoint write under way (with the held ranges), and when it
    /// is on disk.
    writing: Option<Writing>,
}

/// A checkpoint write under way: the checkpoint, the ranges it holds, and
/// when it is on disk.
type Writing = (Checkpoint, Vec<(ConvRef, Held)>, Time);

/// What one wake-up of a device produced.
#[derive(Default)]
pub struct Woken {
    /// Datagrams to send to the server.
    pub out: Vec<Bytes>,
    /// The first login of this device happened.
    pub logged_in: bool,
    /// Uplink retry budgets that ran out.
    pub send_failures: u64,
}

/// A simulated device.
pub struct SimClient {
    pub(crate) user: u64,
    pub(crate) device: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) up: Link,
    pub(crate) down: Link,
    pub(crate) to_send: u32,
    pub(crate) next_send: Time,
    pub(crate) offline_until: Option<Time>,
    pub(crate) registered: bool,
    /// When a crashed process starts again.
    pub(crate) restart_at: Option<Time>,
    cfg: ClientConfig,
    /// The application releases entries itself (else by reading them).
    manual: bool,
    /// Longest time the application takes to read what it was handed.
    read_delay: Duration,
    /// How long a checkpoint write takes to reach the disk (zero: done
    /// before anything else happens, as the library's blocking write).
    write_latency: Duration,
    rng: SmallRng,
    durable: Durable,
    process: Option<Process>,
    trace: bool,
    /// Version 2: the application marks what it read as read.
    pub(crate) marks: bool,
    /// The end-of-run audit of a conversations run.
    pub(crate) audit: Audit,
}

impl SimClient {
    /// A device whose process starts at `now` on `addr`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: ClientConfig,
        (user, device): Dev,
        addr: SocketAddr,
        (up, down): (Link, Link),
        next_send: Time,
        (read_delay, write_latency): (Duration, Duration),
        seed: u64,
        now: Time,
    ) -> SimClient {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut c = SimClient {
            user,
            device,
            addr,
            up,
            down,
            to_send: 0,
            next_send,
            offline_until: None,
            registered: false,
            restart_at: None,
            cfg,
            manual: rng.gen_bool(0.5),
            read_delay,
            write_latency,
            rng,
            durable: Durable::default(),
            process: None,
            trace: std::env::var_os("TERN_SIM_TRACE").is_some(),
            marks: false,
            audit: Audit::default(),
        };
        c.start(now, addr);
        c
    }

    fn dev(&self) -> Dev {
        (self.user, self.device)
    }

    /// Starts a process from the durable state, on a new address.
    pub fn start(&mut self, now: Time, addr: SocketAddr) {
        let mut cfg = self.cfg.clone();
        cfg.release = Release::library(true, self.manual);
        cfg.persist = true;
        cfg.epoch = self.durable.checkpoint.epoch;
        cfg.checkpoint = self.durable.checkpoint.seq;
        cfg.held = self.durable.held.clone();
        let mut ops = HashMap::new();
        for (i, (key, row)) in self.durable.outbox.iter().enumerate() {
            cfg.resume.push((row.seq, row.op.clone()));
            ops.insert(OpId(i as u64 + 1), *key);
        }
        self.process = Some(Process {
            conn: ClientConn::new(cfg, now, self.rng.gen()),
            ops,
            unread: VecDeque::new(),
            read_at: None,
            read: self.durable.checkpoint.seq,
            writing: None,
        });
        self.addr = addr;
        self.restart_at = None;
    }

    /// The process dies: its connection and unread entries are gone.
    /// Returns the durable checkpoint the next one starts from.
    pub fn crash(&mut self, restart_at: Time) -> u64 {
        self.process = None;
        self.restart_at = Some(restart_at);
        self.durable.checkpoint.seq
    }

    /// The running connection, if any.
    pub fn conn(&self) -> Option<&ClientConn> {
        self.process.as_ref().map(|p| &p.conn)
    }

    /// A datagram from the server.
    pub fn handle_datagram(&mut self, now: Time, data: Bytes) {
        if let Some(p) = &mut self.process {
            p.conn.handle_datagram(now, data);
        }
    }

    /// What the application read of its conversations.
    pub fn views(&self) -> &Views {
        &self.durable.views
    }

    /// The application submits message `n` (none: another operation):
    /// stored in the outbox (under the sequence it gets at once, if any)
    /// before the connection has it.
    pub fn submit(&mut self, now: Time, op: Outgoing, n: Option<u32>) -> bool {
        let Some(p) = &mut self.process else {
            return false;
        };
        let key = self.durable.next_key;
        let seq = p.conn.next_seq();
        match p.conn.submit(now, op.clone()) {
            Ok(id) => {
                self.durable.next_key += 1;
                self.durable.outbox.insert(key, Row { seq, op, n });
                p.ops.insert(id, key);
                true
            }
            Err(_) => false,
        }
    }

    /// Nothing left to do: running, logged in, everything sent and stored,
    /// everything read.
    pub fn is_idle(&self) -> bool {
        self.to_send == 0
            && self.process.as_ref().is_some_and(|p| {
                p.conn.is_active()
                    && p.conn.pending() == 0
                    && p.unread.is_empty()
                    && p.writing.is_none()
            })
            && !self.audit.running()
    }

    /// When this device must next be woken.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.offline_until.is_some() {
            return self.offline_until;
        }
        let Some(p) = &self.process else {
            return self.restart_at;
        };
        [
            p.conn.poll_timeout(),
            p.read_at,
            p.writing.as_ref().map(|w| w.2),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One wake-up, as the driver's loop does it.
    pub fn wake(&mut self, now: Time, checker: &mut Checker) -> Woken {
        let mut woken = Woken::default();
        let dev = self.dev();
        let Some(p) = &mut self.process else {
            return woken;
        };
        p.conn.handle_timeout(now);
        while let Some(ev) = p.conn.poll_event() {
            if self.trace {
                eprintln!("{:>10} {dev:?} {ev:?}", now.as_micros() / 1000);
            }
            let row = |op: &OpId| p.ops.get(op).copied();
            match ev {
                ClientEvent::LoggedIn { checkpoint, .. } => {
                    woken.logged_in = true;
                    if self.durable.checkpoint.epoch == 0 {
                        // A new device starts at the timeline's head: what
                        // came before it is not its to read.
                        p.read = p.read.max(checkpoint);
                        checker.on_first_login(dev, checkpoint);
                    }
                }
                ClientEvent::SendFailed { .. } => woken.send_failures += 1,
                ClientEvent::Sequenced { op, seq }
                | ClientEvent::Resequenced { op, new: seq, .. } => {
                    if let Some(r) = row(&op).and_then(|k| self.durable.outbox.get_mut(&k)) {
                        r.seq = seq;
                    }
                }
                ClientEvent::Stored { op, seq, .. } => {
                    let r = row(&op).and_then(|k| self.durable.outbox.remove(&k));
                    match r {
                        Some(Row { n: Some(n), op, .. }) if is_group_op(&op) => {
                            checker.group.on_stored(dev, n)
                        }
                        Some(Row { n: Some(n), .. }) => checker.on_stored(dev, n, seq),
                        _ => {}
                    }
                    p.ops.remove(&op);
                }
                ClientEvent::Rejected { op, code, .. } => {
                    if let Some(r) = row(&op).and_then(|k| self.durable.outbox.remove(&k)) {
                        if is_group_op(&r.op) {
                            checker.group.on_rejected(dev, r.n, code);
                        } else {
                            checker.on_rejected(dev, r.n, code);
                        }
                    }
                    p.ops.remove(&op);
                }
                ClientEvent::ConvList(list) => self.audit.on_list(list),
                ClientEvent::History(page) => self.audit.on_page(&page),
                ClientEvent::ReadCounts(c) => self.audit.on_counts(&c),
                ClientEvent::Entry(d) => {
                    checker.on_entry(now, dev, &d);
                    p.unread.push_back(d);
                    if p.read_at.is_none() {
                        let delay = self.read_delay.mul_f64(self.rng.gen_range(0.0..1.0));
                        p.read_at = Some(now + delay);
                    }
                }
                _ => {}
            }
        }
        // The application reads some of what it was handed (the rest a bit
        // later), keeps it, and releases what it read; now and then it
        // marks a conversation read.
        let mut marks = Vec::new();
        if p.read_at.is_some_and(|t| t <= now) {
            p.read_at = None;
            let k = self.rng.gen_range(1..=p.unread.len().max(1));
            let read: Vec<Entry> = p.unread.drain(..k.min(p.unread.len())).collect();
            if let Some(last) = read.last() {
                p.read = last.seq;
            }
            let views = &mut self.durable.views;
            let mut convs: Vec<ConvRef> = read.iter().map(|e| e.conv).collect();
            convs.dedup();
            for conv in convs {
                if self.marks && self.rng.gen_bool(0.3) {
                    marks.extend(views.mark_for(self.user, &read, conv));
                }
            }
            for e in &read {
                if let Some(v) = views.apply(self.user, e) {
                    checker.violation(format!("{dev:?}: {v}"));
                }
            }
            if !p.unread.is_empty() {
                let delay = self.read_delay.mul_f64(self.rng.gen_range(0.0..1.0));
                p.read_at = Some(now + delay);
            }
            p.conn.release(now, p.read);
        }
        // The checkpoint is saved (one write at a time), and confirmed
        // once on disk; a crash before that loses the write.
        if p.writing.is_none() {
            if let Some(cp) = p.conn.poll_persist() {
                checker.on_persist(dev, cp, p.read);
                let held = p.conn.all_held().map(|(c, h)| (*c, h.clone())).collect();
                p.writing = Some((cp, held, now + self.write_latency));
            }
        }
        if p.writing.as_ref().is_some_and(|w| w.2 <= now) {
            let (cp, held, _) = p.writing.take().expect("checked above");
            self.durable.checkpoint = cp;
            self.durable.held = held;
            p.conn.persisted(now, cp);
        }
        if !sequences_stored(p, &self.durable) {
            checker.violation(format!(
                "{dev:?}: an operation would be sent before its sequence is stored"
            ));
        }
        self.audit.drive(now, &mut p.conn);
        for m in marks {
            self.mark_read(now, m);
        }
        let Some(p) = &mut self.process else {
            return woken;
        };
        while let Some(d) = p.conn.poll_transmit(now) {
            woken.out.push(d);
        }
        woken
    }

    /// The application marks a conversation read: the device's view moves
    /// at once, the operation goes through the durable outbox.
    fn mark_read(&mut self, now: Time, m: Mark) {
        let op = Outgoing::MarkRead {
            conv: m.conv,
            up_to: m.up_to,
            receipt_device: m.receipt_device,
            receipt_seq: m.receipt_seq,
        };
        if self.submit(now, op, None) {
            self.durable.views.mark(m.conv, m.up_to);
        }
    }
}

/// Whether `op` is about a group (a post into one, or a membership
/// operation): the group checker follows it.
fn is_group_op(op: &Outgoing) -> bool {
    match op {
        Outgoing::Post { conv, .. } => conv.kind == tern_core::wire::ConvKind::Group,
        Outgoing::Group { .. } => true,
        _ => false,
    }
}

/// Every operation the connection has numbered is stored under that number.
fn sequences_stored(p: &Process, durable: &Durable) -> bool {
    let Some(s) = p.conn.uplink() else {
        return true;
    };
    p.ops.iter().all(|(op, key)| {
        durable
            .outbox
            .get(key)
            .is_some_and(|r| s.get(r.seq).is_some_and(|(id, _)| id == op))
    })
}
