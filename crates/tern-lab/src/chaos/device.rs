//! One device of the run: logs in with its durable state folder, sends its
//! quota paced over the traffic phase in batches, answers some messages
//! with READ receipts, goes offline (logout or abrupt drop) and comes back,
//! until the run stops.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::Rng;
use tokio::sync::{watch, Barrier};
use tokio::time::Instant;

use super::batch::{Batch, Op, OpFuture};
use super::journal::ViewWhat;
use super::journal::{payload, JsonlWriter, RecvRecord, SendRecord};
use super::shared::{Phase, Shared};
use tern::client::{Client, ClientError, ClientOptions, ConvKind, ConvRef};

pub(super) struct DeviceTask {
    pub(super) shared: Arc<Shared>,
    pub(super) user: u64,
    pub(super) device: u32,
    pub(super) token: Vec<u8>,
    pub(super) state_dir: PathBuf,
    /// (conversation, peer user).
    pub(super) peers: Vec<(u64, u64)>,
    pub(super) quota: u64,
    pub(super) rng: SmallRng,
    pub(super) journal: JsonlWriter,
    /// Messages submitted so far (the last id's counter).
    pub(super) next_n: u64,
    /// READ receipts owed: (conv, peer, target_device, target_seq).
    pub(super) pending_reads: Vec<(u64, u64, u32, u64)>,
    /// Read positions to set (`mark_read`): (conversation, conv_seq).
    pub(super) pending_marks: Vec<(ConvRef, u64)>,
    /// A brand-new device joining late: sends nothing, never goes offline,
    /// pages every history when it joins (roaming).
    pub(super) late: bool,
    /// The last settling round whose views this device journaled.
    pub(super) viewed_round: u32,
    /// Newest `conv_seq` handed per conversation, of the other users'
    /// messages.
    pub(super) newest: std::collections::HashMap<ConvRef, u64>,
    /// Highest inbox (sync timeline) sequence handed.
    pub(super) last_inbox: u64,
    /// The read position set once the traffic is over (device 1 only).
    pub(super) heal_marked: bool,
    /// Highest inbox sequence journaled and not yet released.
    pub(super) to_release: Option<u64>,
    /// The quota is submitted and settled (counted once).
    pub(super) finished: bool,
    pub(super) barrier: Arc<Barrier>,
    pub(super) start_at: Arc<Mutex<Option<Instant>>>,
}

enum LifeEnd {
    /// Logged out; come back after a while.
    Close,
    /// Dropped abruptly; come back after a while.
    Drop,
    /// The run is over.
    Stop,
}

impl DeviceTask {
    async fn connect(&self) -> Result<Client, String> {
        let mut opts = ClientOptions::new(self.shared.server, self.token.clone());
        opts.seal_key = self.shared.seal_key;
        opts.state_dir = Some(self.state_dir.clone());
        opts.manual_release = true;
        opts.auto_pull = true;
        opts.connect_timeout = Duration::from_secs(15);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(120);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match Client::connect(opts.clone()).await {
                Ok(c) => {
                    if started.elapsed() > Duration::from_secs(3) {
                        tracing::info!(user = self.user, device = self.device, attempts, took = ?started.elapsed(), "slow connect");
                    }
                    return Ok(c);
                }
                Err(ClientError::LoginRefused(code)) => {
                    return Err(format!(
                        "device {}/{}: login refused ({code})",
                        self.user, self.device
                    ))
                }
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "device {}/{}: cannot connect: {e}",
                            self.user, self.device
                        ));
                    }
                    tracing::debug!(user = self.user, device = self.device, error = %e, "connect failed; retrying");
                    // The previous client may still hold the state folder.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    pub(super) async fn run(mut self) -> Result<(), String> {
        let mut first = !self.late;
        let mut phase = self.shared.phase.clone();
        if self.late && !self.wait_to_join(&mut phase).await {
            return Ok(());
        }
        let mut roam = self.late;
        loop {
            let mut client = match self.connect().await {
                Ok(c) => c,
                Err(e) => {
                    if first {
                        // Do not leave the others waiting forever.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), self.barrier.wait()).await;
                    }
                    return Err(e);
                }
            };
            if first {
                first = false;
                self.barrier.wait().await;
                if (self.user, self.device) == (1, 1) && self.shared.params.group_share > 0.0 {
                    self.create_group(&client).await;
                }
            }
            if roam {
                roam = false;
                self.drain(&mut client).await;
                self.views(&client, ViewWhat::Roam, 0).await;
            }
            let end = self.life(&mut client, &mut phase).await;
            match end {
                LifeEnd::Stop => {
                    self.drain(&mut client).await;
                    client.close().await;
                    let _ = self.journal.flush();
                    return Ok(());
                }
                LifeEnd::Close => {
                    self.drain(&mut client).await;
                    client.close().await;
                    self.shared
                        .counters
                        .offline_close
                        .fetch_add(1, Ordering::Relaxed);
                    self.offline_marker("close");
                }
                LifeEnd::Drop => {
                    drop(client);
                    self.shared
                        .counters
                        .offline_drop
                        .fetch_add(1, Ordering::Relaxed);
                    self.offline_marker("drop");
                }
            }
            let p = &self.shared.params;
            let off = self.rng.gen_range(p.offline_min..=p.offline_max);
            tokio::select! {
                _ = tokio::time::sleep(off) => {}
                _ = phase.wait_for(|p| *p == Phase::Stop) => {}
            }
        }
    }

    /// User 1's first device creates the run's group with every other user
    /// as a member. An answer lost to a kill may hide a group that was
    /// created: the list says, before another is tried.
    async fn create_group(&self, client: &Client) {
        let p = &self.shared.params;
        // With churn the last user joins later.
        let last = p.users - u64::from(p.group_churn);
        let members: Vec<u64> = (2..=last).collect();
        for _ in 0..5 {
            let created = match client.create_group(&members).await {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::info!(error = %e, "creating the run's group failed; asking the list");
                    client.conversations(0, 0).await.ok().and_then(|l| {
                        l.items
                            .iter()
                            .find(|i| i.conv.kind == ConvKind::Group)
                            .map(|i| i.conv.id)
                    })
                }
            };
            if let Some(g) = created {
                let _ = self.shared.group.set(g);
                self.shared
                    .event("group_created", serde_json::json!({ "group": g }));
                return;
            }
        }
        self.shared
            .event("group_not_created", serde_json::json!({}));
    }

    /// Group churn, from the owner's first device: the last user added at
    /// 30 % of the traffic, user 2 removed at 60 % (each tried again at the
    /// next batch until the server acknowledges it; both are idempotent).
    async fn churn(&self, client: &Client, frac: f64) {
        let Some(&g) = self.shared.group.get() else {
            return;
        };
        let s = &self.shared;
        if frac >= 0.3 && !s.churn_added.load(Ordering::Relaxed) {
            let user = s.params.users;
            if client.add_members(g, &[user], false).await.is_ok() {
                s.churn_added.store(true, Ordering::Relaxed);
                s.event("group_added", serde_json::json!({ "user": user }));
            }
        }
        if frac >= 0.6
            && !s.churn_removed.load(Ordering::Relaxed)
            && client.remove_members(g, &[2]).await.is_ok()
        {
            s.churn_removed.store(true, Ordering::Relaxed);
            s.event("group_removed", serde_json::json!({ "user": 2 }));
        }
    }

    fn offline_marker(&self, how: &str) {
        let _ = self.journal.append(&RecvRecord::Offline {
            t_us: self.shared.clock.us(),
            how: how.into(),
        });
        let _ = self.journal.flush();
    }

    /// One online spell. Returns how it ended.
    async fn life(&mut self, client: &mut Client, phase: &mut watch::Receiver<Phase>) -> LifeEnd {
        let p = self.shared.params.clone();
        let traffic_start = self
            .start_at
            .lock()
            .expect("start lock")
            .unwrap_or_else(Instant::now);
        let life_end = if p.offline && !self.late {
            Some(Instant::now() + self.rng.gen_range(p.online_min..=p.online_max))
        } else {
            None
        };
        let abrupt = self.rng.gen_bool(0.5);
        loop {
            if self.drain(client).await {
                // The client stopped by itself (should not happen): start over.
                return LifeEnd::Drop;
            }
            let ph = *phase.borrow();
            if ph == Phase::Stop {
                return LifeEnd::Stop;
            }
            if let Phase::Settle(round) = ph {
                if round > self.viewed_round {
                    self.viewed_round = round;
                    let digest = self.views(client, ViewWhat::Final, round).await;
                    self.shared
                        .views
                        .lock()
                        .expect("views")
                        .insert((self.user, self.device), (round, digest));
                    continue;
                }
            }
            if ph == Phase::Heal && !self.heal_marked {
                self.heal_marked = true;
                self.heal_mark(client).await;
                continue;
            }
            let traffic = ph == Phase::Traffic;
            if traffic && life_end.is_some_and(|t| Instant::now() >= t) {
                return if abrupt {
                    LifeEnd::Drop
                } else {
                    LifeEnd::Close
                };
            }
            // How many messages may go now (paced over the duration).
            let elapsed = traffic_start.elapsed().as_secs_f64();
            let frac = (elapsed / p.duration.as_secs_f64()).min(1.0);
            let allowed = ((self.quota as f64) * frac).ceil() as u64;
            let room = allowed
                .min(self.quota)
                .saturating_sub(self.next_n)
                .min(p.window as u64);
            if !traffic || room == 0 {
                if traffic && self.next_n >= self.quota && !self.finished && !self.late {
                    self.finished = true;
                    self.shared
                        .counters
                        .quotas_done
                        .fetch_add(1, Ordering::Relaxed);
                }
                // Wait for an entry, the next pacing slot or a phase change.
                let next_slot = if self.next_n < self.quota && traffic {
                    let t = (self.next_n + 1) as f64 / self.quota as f64 * p.duration.as_secs_f64();
                    traffic_start + Duration::from_secs_f64(t)
                } else {
                    Instant::now() + Duration::from_millis(250)
                };
                let wake = life_end
                    .filter(|_| traffic)
                    .map_or(next_slot, |t| t.min(next_slot));
                tokio::select! {
                    ev = client.recv() => match ev {
                        Some(ev) => self.handle(ev),
                        None => return LifeEnd::Drop,
                    },
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = phase.changed() => {}
                }
                continue;
            }
            if self.rng.gen_bool(p.client_rebind_prob) && client.rebind().await.is_ok() {
                self.shared
                    .counters
                    .client_rebinds
                    .fetch_add(1, Ordering::Relaxed);
            }
            if (self.user, self.device) == (1, 1) && p.group_churn {
                self.churn(client, frac).await;
            }
            let crash_at = life_end.filter(|_| abrupt);
            let crashed = self.send_batch(client, room, crash_at).await;
            if crashed {
                // Abrupt: sends still in flight, nothing drained.
                return LifeEnd::Drop;
            }
        }
    }

    /// Sends `room` messages and the owed READ receipts as one batch and
    /// journals each result as it settles, for at most 10 s; with
    /// `crash_at`, the batch is abandoned then (an app killed with sends in
    /// flight). Returns true if it was abandoned.
    async fn send_batch(&mut self, client: &Client, room: u64, crash_at: Option<Instant>) -> bool {
        // A batch of `room` messages, plus owed READ receipts.
        let mut futs: Vec<Option<OpFuture<'_>>> = Vec::new();
        let c: &Client = client;
        let group = self.shared.group.get().copied();
        for _ in 0..room {
            let into_group = group.is_some() && self.rng.gen_bool(self.shared.params.group_share);
            let (conv, to) = if into_group {
                (0, super::GROUP_TO)
            } else {
                self.peers[self.rng.gen_range(0..self.peers.len())]
            };
            self.next_n += 1;
            let n = self.next_n;
            let _ = self.shared.sends.append(&SendRecord::Submit {
                t_us: self.shared.clock.us(),
                user: self.user,
                device: self.device,
                n,
                conv,
                to,
            });
            let body = Bytes::from(payload((self.user, self.device, n)));
            let target = match group.filter(|_| into_group) {
                Some(g) => tern::client::group(g),
                None => ConvRef::direct(to),
            };
            futs.push(Some(Box::pin(async move {
                let posted = c.post(target, conv, 0, body).await;
                (Op::Msg { n, conv, to }, posted)
            })));
        }
        self.shared
            .counters
            .submitted
            .fetch_add(room, Ordering::Relaxed);
        for (conv, peer, target_device, target_seq) in self.pending_reads.drain(..) {
            futs.push(Some(Box::pin(async move {
                (
                    Op::Read {
                        conv,
                        peer,
                        target_device,
                        target_seq,
                    },
                    c.read_up_to(conv, peer, target_device, target_seq).await,
                )
            })));
        }
        for (conv, up_to) in self.pending_marks.drain(..) {
            futs.push(Some(Box::pin(async move {
                (
                    Op::Mark { conv, up_to },
                    c.mark_read(conv, up_to, None).await,
                )
            })));
        }
        let mut batch = Batch { futs };
        let timeout = Instant::now() + Duration::from_secs(10);
        let mut crashed = false;
        loop {
            tokio::select! {
                r = batch.next() => match r {
                    Some((op, res)) => self.settled(op, res),
                    None => break,
                },
                _ = tokio::time::sleep_until(timeout) => break,
                _ = tokio::time::sleep_until(crash_at.unwrap_or(timeout)), if crash_at.is_some() => {
                    crashed = true;
                    break;
                }
            }
        }
        let left = batch.outstanding();
        drop(batch);
        let c = &self.shared.counters;
        if crashed {
            c.abandoned.fetch_add(left, Ordering::Relaxed);
        } else {
            c.unresolved.fetch_add(left, Ordering::Relaxed);
        }
        crashed
    }
}
