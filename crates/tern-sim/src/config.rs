//! What a simulation is asked to do ([`SimConfig`]) and what it reports
//! ([`SimReport`]).

use std::time::Duration;

use crate::impairment::Impairment;
use tern_core::broker::BrokerConfig;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Everything random derives from it.
    pub seed: u64,
    /// Users; each has `devices` devices.
    pub users: u64,
    /// Devices per user.
    pub devices: u32,
    /// Messages each device sends.
    pub messages_per_device: u32,
    /// Window in which messages are sent (then the network heals).
    pub send_window: Duration,
    /// Client → server impairment.
    pub up: Impairment,
    /// Server → client impairment.
    pub down: Impairment,
    /// Simulated fsync latency of one commit.
    pub commit_latency: Duration,
    /// Broker crashes (dropped with its in-flight commit, then restarted).
    pub crashes: u32,
    /// Probability per message sent that the sending client changes address.
    pub address_change: f64,
    /// Devices that go offline for a while during the window, per user.
    pub offline_spells: u32,
    /// Client process crashes during the window: a random device's
    /// `ClientConn` is dropped with everything its application had not
    /// read, and a new process starts later from the durable checkpoint
    /// and outbox, on a new address.
    pub client_crashes: u32,
    /// Longest time an application takes to read (and so release) the
    /// entries it was handed.
    pub read_delay: Duration,
    /// How long a client's checkpoint write takes to reach the disk; zero
    /// completes it before anything else happens (the library's blocking
    /// write), more lets datagrams and crashes come in between.
    pub write_latency: Duration,
    /// Broker settings.
    pub broker: BrokerConfig,
    /// Virtual time allowed after the window for everything to settle.
    pub settle: Duration,
    /// Protocol version 2: messages are posted into direct conversations,
    /// reach every device of both users, applications mark what they read,
    /// and the run ends with the audit of histories and lists (`audit.rs`).
    pub conversations: bool,
    /// Devices that join after the window (conversations runs): they hold
    /// no sync history and must page through all of it.
    pub late_devices: u32,
    /// Groups run (implies `conversations`): user 1 creates one group with
    /// every user but the last two, every message is posted into it, and
    /// `group_churn` times during the window the membership changes (a
    /// spare user is added, a member is removed by the owner, or a member
    /// leaves) while traffic goes on.
    pub groups: bool,
    /// Membership changes during the window (groups runs).
    pub group_churn: u32,
}

impl SimConfig {
    /// A small deployment on a perfect network.
    pub fn new(seed: u64) -> Self {
        let defaults = BrokerConfig::default();
        // One seed in four writes checkpoints and receipts at once.
        let eager_writes = seed.is_multiple_of(4).then_some(Duration::ZERO);
        SimConfig {
            seed,
            users: 3,
            devices: 2,
            messages_per_device: 20,
            send_window: Duration::from_secs(20),
            up: Impairment::perfect(),
            down: Impairment::perfect(),
            commit_latency: Duration::from_micros(500),
            crashes: 0,
            address_change: 0.0,
            offline_spells: 0,
            client_crashes: 0,
            read_delay: Duration::from_millis(30),
            write_latency: Duration::ZERO,
            // One, two or three batches out at once, by seed: the default
            // (one) and the pipelined path both meet every scenario. The
            // seeds that defer checkpoints and receipts (the default) let
            // a crash lose some.
            broker: BrokerConfig {
                max_commits_in_flight: 1 + (seed % 3) as usize,
                checkpoint_delay: eager_writes.unwrap_or(defaults.checkpoint_delay),
                receipt_delay: eager_writes.unwrap_or(defaults.receipt_delay),
                ..defaults
            },
            settle: Duration::from_secs(600),
            conversations: false,
            late_devices: 0,
            groups: false,
            group_churn: 0,
        }
    }

    /// The same with one group carrying all traffic and `churn` membership
    /// changes during it.
    pub fn groups(mut self, churn: u32) -> Self {
        self = self.conversations();
        self.groups = true;
        self.group_churn = churn;
        self
    }

    /// The same in protocol version 2, with one late device.
    pub fn conversations(mut self) -> Self {
        self.conversations = true;
        self.late_devices = 1;
        self
    }

    /// The same, with sealing required: every session is opened by a Noise
    /// handshake and every packet is encrypted (see `crate::seal`).
    pub fn sealed(mut self) -> Self {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&self.seed.to_be_bytes());
        secret[31] = 0x5e;
        self.broker.seal_key = Some(tern_core::seal::StaticKey::from_secret(secret));
        self.broker.seal_policy = tern_core::broker::SealPolicy::Required;
        self
    }
}

/// What happened, and what the checker found.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Group records the broker did not write to offline members (read
    /// fan-out), and member states it caught up, over every broker life.
    pub group_skipped: u64,
    pub group_caught_up: u64,
    /// The seed.
    pub seed: u64,
    /// Messages submitted.
    pub submitted: u64,
    /// Messages the server acknowledged as stored.
    pub stored: u64,
    /// Messages handed to receiving devices (counting each device).
    pub delivered: u64,
    /// Entries handed again after a client restart (never persisted as
    /// released before the crash).
    pub rehanded: u64,
    /// Violations found; empty means the run is correct.
    pub violations: Vec<String>,
    /// Datagrams put on links.
    pub datagrams: u64,
    /// Virtual time at the end.
    pub end: Duration,
    /// Submit-to-delivery latency of every delivery, microseconds.
    pub latencies_us: Vec<u64>,
    /// Failure events seen by senders (retry budget exhausted).
    pub send_failures: u64,
    /// Broker restarts.
    pub crashes: u32,
    /// Client process restarts.
    pub client_restarts: u32,
    /// Simulation steps taken.
    pub steps: u64,
}
