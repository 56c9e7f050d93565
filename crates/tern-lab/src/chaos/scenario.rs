//! The chaos run itself: daemon, proxy, devices, kills, heal, check.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{watch, Barrier};
use tokio::time::Instant;

use super::checker::{check_dir, Report};
use super::journal::{
    journal_dir, parse_payload, payload, recv_file, Clock, EntryKind, EntryRecord, EventRecord,
    JsonlWriter, Meta, MsgId, RecvRecord, SendRecord,
};
use super::Params;
use crate::proxy::{Proxy, ProxyConfig, ProxyStats};
use crate::ternd::TerndConfig;
use crate::Impairment;
use tern::client::{Client, ClientError, ClientOptions, EntryBody, Event, ReceiptStatus, Sent};

/// What a run did, besides the checker's verdict.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Messages submitted to the client library.
    pub submitted: u64,
    /// Of which `send` resolved `Ok`.
    pub acked: u64,
    /// Sends whose outcome the run stopped waiting for after 10 s: neither
    /// counted as ACKed nor as failed (they may still be stored).
    pub unresolved: u64,
    /// Sends in flight when their device was dropped abruptly.
    pub abandoned: u64,
    /// Sends that resolved with an error (e.g. the client was closed).
    pub failed: u64,
    /// READ receipts sent and acknowledged.
    pub reads: u64,
    /// SIGKILLs of the daemon.
    pub kills: u32,
    /// Proxy rebinds (all clients moved each time).
    pub rebinds: u32,
    /// Offline spells (graceful close).
    pub offline_close: u64,
    /// Offline spells (abrupt drop, sends possibly in flight).
    pub offline_drop: u64,
    /// Client-side port changes.
    pub client_rebinds: u64,
    /// Logins seen by devices (first ones included).
    pub logins: u64,
    /// Traffic phase length.
    pub traffic: Duration,
    /// Time from the end of traffic until every ACKed message had reached
    /// every device of its receiver; `None`: the heal deadline passed first.
    pub healed_in: Option<Duration>,
    /// Whole run.
    pub total: Duration,
    /// The proxy's final counters.
    pub proxy: ProxyStats,
}

/// A finished run: statistics and the checker's report.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The parameters.
    pub params: Params,
    /// The run directory (journals, daemon data and log, client state).
    pub dir: PathBuf,
    /// What the run did.
    pub stats: RunStats,
    /// The independent check of the journals.
    pub report: Report,
}

impl RunOutcome {
    /// The one-line summary: verdict, counts, and what the run did.
    pub fn summary_line(&self) -> String {
        let p = &self.params;
        let s = &self.stats;
        format!(
            "tern-chaos: {} | seed={} users={} devices/user={} convs/user={} submitted={} kills={} rebinds={} offline={}+{} client_rebinds={} logins={} unresolved={} abandoned={} loss_up={} loss_down={} dup={} traffic={:.1}s healed_in={} total={:.1}s dir={}",
            self.report,
            p.seed,
            p.users,
            p.devices,
            p.convs,
            s.submitted,
            s.kills,
            s.rebinds,
            s.offline_close,
            s.offline_drop,
            s.client_rebinds,
            s.logins,
            s.unresolved,
            s.abandoned,
            s.proxy.up.dropped(),
            s.proxy.down.dropped(),
            s.proxy.up.duplicated + s.proxy.down.duplicated,
            s.traffic.as_secs_f64(),
            s.healed_in
                .map_or("never".to_string(), |d| format!("{:.1}s", d.as_secs_f64())),
            s.total.as_secs_f64(),
            self.dir.display()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Traffic,
    Heal,
    Stop,
}

/// In-memory progress, only to know when to stop healing. The verdict comes
/// from the journals alone.
#[derive(Default)]
struct Tracker {
    devices_per_user: u64,
    acked: HashSet<MsgId>,
    seen_by: HashMap<MsgId, u64>,
    seen: HashSet<((u64, u32), MsgId)>,
    owed: u64,
    satisfied: u64,
}

impl Tracker {
    fn on_ack(&mut self, id: MsgId) {
        if self.acked.insert(id) {
            self.owed += self.devices_per_user;
            self.satisfied += self.seen_by.get(&id).copied().unwrap_or(0);
        }
    }

    fn on_seen(&mut self, dev: (u64, u32), id: MsgId) {
        if self.seen.insert((dev, id)) {
            *self.seen_by.entry(id).or_default() += 1;
            if self.acked.contains(&id) {
                self.satisfied += 1;
            }
        }
    }

    fn complete(&self) -> bool {
        self.satisfied >= self.owed
    }
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    acked: AtomicU64,
    unresolved: AtomicU64,
    abandoned: AtomicU64,
    failed: AtomicU64,
    reads: AtomicU64,
    offline_close: AtomicU64,
    offline_drop: AtomicU64,
    client_rebinds: AtomicU64,
    logins: AtomicU64,
    quotas_done: AtomicU64,
}

struct Shared {
    params: Params,
    clock: Clock,
    sends: JsonlWriter,
    events: JsonlWriter,
    tracker: Mutex<Tracker>,
    counters: Counters,
    phase: watch::Receiver<Phase>,
    server: std::net::SocketAddr,
    /// The daemon's seal key: every chaos session is sealed, as by default.
    seal_key: Option<tern::client::SealKey>,
}

impl Shared {
    fn event(&self, ev: &str, detail: serde_json::Value) {
        let _ = self.events.append(&EventRecord {
            t_us: self.clock.us(),
            ev: ev.into(),
            detail,
        });
        let _ = self.events.flush();
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Runs the whole scenario in `dir` (created; must not hold a previous
/// run), with the daemon binary `ternd`, then checks the journals.
pub async fn run(params: Params, dir: &Path, ternd: &Path) -> Result<RunOutcome, String> {
    params.validate()?;
    let clock = Clock::start();
    let run_start = Instant::now();
    let jdir = journal_dir(dir);
    if jdir.exists() {
        return Err(format!(
            "{} already holds a run; pick another --dir",
            dir.display()
        ));
    }
    for d in [&jdir, &dir.join("server"), &dir.join("clients")] {
        std::fs::create_dir_all(d).map_err(io(&d.display().to_string()))?;
    }
    let devices: Vec<(u64, u32)> = (1..=params.users)
        .flat_map(|u| (1..=params.devices).map(move |d| (u, d)))
        .collect();
    let convs = params.conversations();
    let meta = Meta {
        version: 1,
        devices: devices.clone(),
        convs: convs.clone(),
        params: serde_json::to_value(&params).unwrap_or_default(),
    };
    std::fs::write(
        jdir.join("meta.json"),
        serde_json::to_string_pretty(&meta).expect("meta serialises"),
    )
    .map_err(io("meta.json"))?;

    // Tokens, signed with the secret the daemon will load from its folder.
    let mut cfg = tern::config::Config::default();
    cfg.server.data_dir = dir.join("server");
    let mut tokens = HashMap::new();
    for &(u, d) in &devices {
        let hex_token = tern::server::issue_token(&cfg, u, d, 7 * 24 * 3600)
            .map_err(|e| format!("token: {e}"))?;
        tokens.insert((u, d), hex::decode(hex_token).expect("hex token"));
    }
    // Created here in the daemon's folder, so the daemon seals with it.
    let seal_key = tern::server::load_seal_key(&cfg)
        .map_err(|e| format!("seal key: {e}"))?
        .map(|k| k.public());

    // The daemon.
    let heartbeat = humantime::format_duration(params.heartbeat).to_string();
    let idle = humantime::format_duration(params.idle_timeout).to_string();
    let ternd_log = params.ternd_log.clone();
    let (ternd, data_dir, log) = (
        ternd.to_path_buf(),
        dir.join("server"),
        dir.join("ternd.log"),
    );
    let daemon = tokio::task::spawn_blocking(move || {
        TerndConfig::new(ternd, data_dir)
            .log_file(log)
            .ready_timeout(Duration::from_secs(20))
            .env("TERN_TIMERS_HEARTBEAT", heartbeat)
            .env("TERN_TIMERS_IDLE_TIMEOUT", idle)
            .env("RUST_LOG", ternd_log)
            .start()
    })
    .await
    .map_err(|e| format!("daemon start task: {e}"))?
    .map_err(|e| e.to_string())?;

    // The proxy in front of it.
    let mut pcfg = ProxyConfig::new("127.0.0.1:0".parse().expect("literal"), daemon.addr());
    pcfg.seed = params.seed;
    pcfg.up = Impairment::parse(&params.up).map_err(|e| format!("up: {e}"))?;
    pcfg.down = Impairment::parse(&params.down).map_err(|e| format!("down: {e}"))?;
    pcfg.stats_every = None;
    pcfg.max_clients = 16 * 1024;
    pcfg.client_idle_timeout = Duration::from_secs(60);
    if params.proxy_log {
        pcfg.log_file = Some(dir.join("proxy.jsonl"));
    }
    // On its own thread and runtime, so that its timers stay punctual however
    // busy the clients keep the main runtime (their state stores fsync).
    let (proxy_stop, proxy_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let proxy_thread = std::thread::Builder::new()
        .name("chaos-proxy".into())
        .spawn(move || -> Option<ProxyStats> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let proxy = match Proxy::bind(pcfg).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e.to_string()));
                        return None;
                    }
                };
                let _ = bound_tx.send(Ok((proxy.local_addr(), proxy.control())));
                proxy
                    .run(async {
                        let _ = proxy_stop_rx.await;
                    })
                    .await
                    .ok()
            })
        })
        .map_err(io("proxy thread"))?;
    let (proxy_addr, control) = bound_rx
        .await
        .map_err(|_| "the proxy thread stopped".to_string())??;
    let (phase_tx, phase_rx) = watch::channel(Phase::Traffic);
    let shared = Arc::new(Shared {
        params: params.clone(),
        clock,
        sends: JsonlWriter::create(&jdir.join("sends.jsonl")).map_err(io("sends.jsonl"))?,
        events: JsonlWriter::create(&jdir.join("events.jsonl")).map_err(io("events.jsonl"))?,
        tracker: Mutex::new(Tracker {
            devices_per_user: u64::from(params.devices),
            ..Tracker::default()
        }),
        counters: Counters::default(),
        phase: phase_rx,
        server: proxy_addr,
        seal_key,
    });
    shared.event(
        "start",
        serde_json::json!({"ternd": daemon.addr().to_string(), "pid": daemon.pid(), "proxy": proxy_addr.to_string()}),
    );
    tracing::info!(ternd = %daemon.addr(), proxy = %proxy_addr, dir = %dir.display(), "chaos run starting");

    // Devices: each sends to the peers of its user's conversations.
    let n = devices.len();
    let quota_each = params.messages / n as u64;
    let extra = params.messages % n as u64;
    let barrier = Arc::new(Barrier::new(n + 1));
    let start_at = Arc::new(Mutex::new(None::<Instant>));
    let mut tasks = Vec::new();
    for (i, &(u, d)) in devices.iter().enumerate() {
        let peers: Vec<(u64, u64)> = convs
            .iter()
            .filter_map(|&(c, a, b)| {
                if a == u {
                    Some((c, b))
                } else if b == u {
                    Some((c, a))
                } else {
                    None
                }
            })
            .collect();
        let journal =
            JsonlWriter::create(&jdir.join(recv_file(u, d))).map_err(io(&recv_file(u, d)))?;
        let dev = DeviceTask {
            shared: shared.clone(),
            user: u,
            device: d,
            token: tokens[&(u, d)].clone(),
            state_dir: dir.join("clients").join(format!("u{u}-d{d}")),
            peers,
            quota: quota_each + u64::from((i as u64) < extra),
            rng: SmallRng::seed_from_u64(
                params.seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)),
            ),
            journal,
            next_n: 0,
            pending_reads: Vec::new(),
            to_release: None,
            finished: false,
            barrier: barrier.clone(),
            start_at: start_at.clone(),
        };
        tasks.push(tokio::spawn(dev.run()));
    }
    // Every device logged in once (registered) before any traffic.
    let registered = tokio::time::timeout(Duration::from_secs(60), barrier.wait()).await;
    if registered.is_err() {
        let _ = phase_tx.send(Phase::Stop);
        return Err("devices did not all log in within 60 s; see ternd.log".into());
    }
    let traffic_start = Instant::now();
    *start_at.lock().expect("start lock") = Some(traffic_start);
    shared.event("traffic_start", serde_json::json!({"devices": n}));

    // Kills and restarts of the daemon, spread over the traffic phase.
    let killer = {
        let shared = shared.clone();
        let mut rng = SmallRng::seed_from_u64(params.seed.wrapping_add(17));
        let mut phase = phase_tx.subscribe();
        let kills = params.kills;
        let duration = params.duration;
        let mut daemon = daemon;
        tokio::spawn(async move {
            let mut done = 0u32;
            for i in 1..=kills {
                let frac = f64::from(i) / f64::from(kills + 1) + rng.gen_range(-0.05..0.05);
                let at = traffic_start + duration.mul_f64(frac.clamp(0.02, 0.98));
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = phase.wait_for(|p| *p != Phase::Traffic) => break,
                }
                let pid = daemon.pid();
                let acked = shared.counters.acked.load(Ordering::Relaxed);
                let r;
                (daemon, r) = tokio::task::spawn_blocking(move || {
                    let r = daemon.kill().map_err(|e| e.to_string());
                    (daemon, r)
                })
                .await
                .expect("kill task");
                if let Err(e) = r {
                    tracing::error!(error = %e, "cannot kill ternd");
                    break;
                }
                done += 1;
                shared.event(
                    "kill",
                    serde_json::json!({"n": done, "pid": pid, "acked_so_far": acked}),
                );
                tracing::info!(n = done, ?pid, acked, "ternd SIGKILLed");
                let down = Duration::from_millis(rng.gen_range(200..1500));
                tokio::time::sleep(down).await;
                let r;
                (daemon, r) = tokio::task::spawn_blocking(move || {
                    let r = daemon
                        .restart(Duration::from_secs(30))
                        .map_err(|e| e.to_string());
                    (daemon, r)
                })
                .await
                .expect("restart task");
                match r {
                    Ok(()) => {
                        shared.event("restart", serde_json::json!({"n": done, "pid": daemon.pid(), "down_ms": down.as_millis() as u64}));
                        tracing::info!(n = done, pid = ?daemon.pid(), "ternd restarted");
                    }
                    Err(e) => {
                        shared.event("restart_failed", serde_json::json!({"error": e}));
                        tracing::error!(error = %e, "ternd did not restart");
                        break;
                    }
                }
            }
            (daemon, done)
        })
    };

    // Proxy rebinds: every client moves to a new upstream port.
    let rebinder = {
        let shared = shared.clone();
        let mut phase = phase_tx.subscribe();
        let every = params.rebind_every;
        tokio::spawn(async move {
            let mut n = 0u32;
            let Some(every) = every else { return n };
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = phase.wait_for(|p| *p != Phase::Traffic) => break,
                }
                if let Ok(moved) = control.rebind().await {
                    n += 1;
                    shared.event("rebind", serde_json::json!({"n": n, "moved": moved}));
                }
            }
            n
        })
    };

    // Traffic until every quota is submitted and settled, or a hard bound.
    let traffic_deadline =
        traffic_start + params.duration + (params.duration / 4).max(Duration::from_secs(20));
    let mut last_log = Instant::now();
    loop {
        if shared.counters.quotas_done.load(Ordering::Relaxed) == n as u64 {
            break;
        }
        if Instant::now() >= traffic_deadline {
            tracing::warn!("traffic deadline reached before every device finished");
            break;
        }
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = Instant::now();
            tracing::info!(
                submitted = shared.counters.submitted.load(Ordering::Relaxed),
                acked = shared.counters.acked.load(Ordering::Relaxed),
                "traffic"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let traffic = traffic_start.elapsed();
    let _ = phase_tx.send(Phase::Heal);
    shared.event(
        "traffic_end",
        serde_json::json!({"acked": shared.counters.acked.load(Ordering::Relaxed)}),
    );
    let (mut daemon, kills) = killer.await.map_err(|e| format!("kill task: {e}"))?;
    let rebinds = rebinder.await.unwrap_or(0);
    if !daemon.is_running() {
        daemon = tokio::task::spawn_blocking(move || {
            let r = daemon.restart(Duration::from_secs(30));
            r.map(|_| daemon)
        })
        .await
        .map_err(|e| format!("restart task: {e}"))?
        .map_err(|e| e.to_string())?;
    }

    // Heal: no more faults but the lossy network; wait for every ACKed
    // message to reach every device of its receiver.
    let heal_start = Instant::now();
    let mut healed_in = None;
    while heal_start.elapsed() < params.heal {
        if shared.tracker.lock().expect("tracker").complete() {
            healed_in = Some(heal_start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    {
        let t = shared.tracker.lock().expect("tracker");
        shared.event(
            "heal_end",
            serde_json::json!({"healed": healed_in.is_some(), "owed": t.owed, "satisfied": t.satisfied}),
        );
        tracing::info!(
            healed = healed_in.is_some(),
            owed = t.owed,
            satisfied = t.satisfied,
            "heal phase over"
        );
    }
    // A moment for the last receipts, then everyone logs out.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = phase_tx.send(Phase::Stop);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(30), t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "device task failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "device task panicked"),
            Err(_) => tracing::error!("device task did not stop within 30 s"),
        }
    }
    let graceful =
        tokio::task::spawn_blocking(move || daemon.terminate(Duration::from_secs(10)).is_ok())
            .await
            .unwrap_or(false);
    let _ = proxy_stop.send(());
    let proxy_stats = tokio::task::spawn_blocking(move || proxy_thread.join().ok().flatten())
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    shared.event(
        "stop",
        serde_json::json!({"ternd_graceful": graceful, "proxy": proxy_stats.to_json()}),
    );
    shared.sends.flush().map_err(io("sends.jsonl"))?;
    shared.events.flush().map_err(io("events.jsonl"))?;

    let c = &shared.counters;
    let mut stats = RunStats {
        submitted: c.submitted.load(Ordering::Relaxed),
        acked: c.acked.load(Ordering::Relaxed),
        unresolved: c.unresolved.load(Ordering::Relaxed),
        abandoned: c.abandoned.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        reads: c.reads.load(Ordering::Relaxed),
        kills,
        rebinds,
        offline_close: c.offline_close.load(Ordering::Relaxed),
        offline_drop: c.offline_drop.load(Ordering::Relaxed),
        client_rebinds: c.client_rebinds.load(Ordering::Relaxed),
        logins: c.logins.load(Ordering::Relaxed),
        traffic,
        healed_in,
        total: Duration::ZERO,
        proxy: proxy_stats,
    };
    // The verdict: from the journals only.
    let check_dir_path = dir.to_path_buf();
    let report = tokio::task::spawn_blocking(move || check_dir(&check_dir_path))
        .await
        .map_err(|e| format!("checker task: {e}"))??;
    stats.total = run_start.elapsed();
    Ok(RunOutcome {
        params,
        dir: dir.to_path_buf(),
        stats,
        report,
    })
}

/// What a batch operation was.
enum Op {
    Msg {
        n: u64,
        conv: u64,
        to: u64,
    },
    Read {
        conv: u64,
        peer: u64,
        target_device: u32,
        target_seq: u64,
    },
}

type OpFuture<'a> = Pin<Box<dyn Future<Output = (Op, Result<Sent, ClientError>)> + Send + 'a>>;

/// Operations in flight together; yields each result as it completes.
struct Batch<'a> {
    futs: Vec<Option<OpFuture<'a>>>,
}

impl<'a> Batch<'a> {
    async fn next(&mut self) -> Option<(Op, Result<Sent, ClientError>)> {
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for slot in self.futs.iter_mut() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        Poll::Ready(out) => {
                            *slot = None;
                            return Poll::Ready(Some(out));
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(None)
            }
        })
        .await
    }

    fn outstanding(&self) -> u64 {
        self.futs.iter().filter(|f| f.is_some()).count() as u64
    }
}

struct DeviceTask {
    shared: Arc<Shared>,
    user: u64,
    device: u32,
    token: Vec<u8>,
    state_dir: PathBuf,
    /// (conversation, peer user).
    peers: Vec<(u64, u64)>,
    quota: u64,
    rng: SmallRng,
    journal: JsonlWriter,
    /// Messages submitted so far (the last id's counter).
    next_n: u64,
    /// READ receipts owed: (conv, peer, target_device, target_seq).
    pending_reads: Vec<(u64, u64, u32, u64)>,
    /// Highest inbox sequence journaled and not yet released.
    to_release: Option<u64>,
    /// The quota is submitted and settled (counted once).
    finished: bool,
    barrier: Arc<Barrier>,
    start_at: Arc<Mutex<Option<Instant>>>,
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

    async fn run(mut self) -> Result<(), String> {
        let mut first = true;
        let mut phase = self.shared.phase.clone();
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
        let life_end = if p.offline {
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
                if traffic && self.next_n >= self.quota && !self.finished {
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
            // A batch of `room` messages, plus owed READ receipts.
            let mut futs: Vec<Option<OpFuture<'_>>> = Vec::new();
            let c: &Client = client;
            for _ in 0..room {
                let (conv, to) = self.peers[self.rng.gen_range(0..self.peers.len())];
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
                futs.push(Some(Box::pin(async move {
                    (Op::Msg { n, conv, to }, c.send(to, conv, 0, body).await)
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
            let mut batch = Batch { futs };
            let timeout = Instant::now() + Duration::from_secs(10);
            let crash_at = life_end.filter(|_| abrupt);
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
            if crashed {
                // Abrupt: sends still in flight, nothing drained.
                return LifeEnd::Drop;
            }
        }
    }

    fn settled(&mut self, op: Op, res: Result<Sent, ClientError>) {
        let t_us = self.shared.clock.us();
        match (op, res) {
            (Op::Msg { n, conv, to }, Ok(sent)) => {
                let _ = self.shared.sends.append(&SendRecord::Ack {
                    t_us,
                    user: self.user,
                    device: self.device,
                    n,
                    conv,
                    to,
                    seq: sent.seq,
                    online: sent.receiver_online,
                });
                self.shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .tracker
                    .lock()
                    .expect("tracker")
                    .on_ack((self.user, self.device, n));
            }
            (
                Op::Read {
                    conv,
                    peer,
                    target_device,
                    target_seq,
                },
                Ok(sent),
            ) => {
                let _ = self.shared.sends.append(&SendRecord::Read {
                    t_us,
                    user: self.user,
                    device: self.device,
                    conv,
                    peer,
                    target_device,
                    target_seq,
                    seq: sent.seq,
                });
                self.shared.counters.reads.fetch_add(1, Ordering::Relaxed);
            }
            (_, Err(e)) => {
                tracing::debug!(user = self.user, device = self.device, error = %e, "operation failed");
                self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Journals every event available now, then releases what was journaled.
    /// Returns true if the client has stopped.
    async fn drain(&mut self, client: &mut Client) -> bool {
        let mut stopped = false;
        loop {
            match tokio::time::timeout(Duration::ZERO, client.recv()).await {
                Ok(Some(ev)) => self.handle(ev),
                Ok(None) => {
                    stopped = true;
                    break;
                }
                Err(_) => break,
            }
        }
        self.release(client).await;
        stopped
    }

    async fn release(&mut self, client: &Client) {
        if let Some(seq) = self.to_release.take() {
            let _ = self.journal.flush();
            let _ = client.release(seq).await;
        }
    }

    fn handle(&mut self, ev: Event) {
        let t_us = self.shared.clock.us();
        match ev {
            Event::Entry(d) => {
                let mut rec = EntryRecord {
                    t_us,
                    seq: d.seq,
                    conv: d.conv,
                    from_user: d.from_user,
                    from_device: d.from_device,
                    from_seq: d.from_seq,
                    kind: EntryKind::Message,
                    payload: None,
                    status: None,
                    target_device: None,
                    target_seq: None,
                };
                match &d.body {
                    EntryBody::Message { payload, .. } => {
                        let text = String::from_utf8_lossy(payload).into_owned();
                        if let Some(id) = parse_payload(&text) {
                            self.shared
                                .tracker
                                .lock()
                                .expect("tracker")
                                .on_seen((self.user, self.device), id);
                        }
                        rec.payload = Some(text);
                        if self.rng.gen_bool(self.shared.params.read_prob)
                            && self.pending_reads.len() < 4
                        {
                            self.pending_reads.push((
                                d.conv,
                                d.from_user,
                                d.from_device,
                                d.from_seq,
                            ));
                        }
                    }
                    EntryBody::Receipt {
                        status,
                        target_device,
                        target_seq,
                    } => {
                        rec.kind = EntryKind::Receipt;
                        rec.status = Some(
                            match status {
                                ReceiptStatus::Delivered => "delivered",
                                ReceiptStatus::Read => "read",
                            }
                            .into(),
                        );
                        rec.target_device = Some(*target_device);
                        rec.target_seq = Some(*target_seq);
                    }
                    EntryBody::Recall {
                        target_device,
                        target_seq,
                    } => {
                        rec.kind = EntryKind::Recall;
                        rec.target_device = Some(*target_device);
                        rec.target_seq = Some(*target_seq);
                    }
                }
                let _ = self.journal.append(&RecvRecord::Entry(rec));
                self.to_release = Some(self.to_release.map_or(d.seq, |s| s.max(d.seq)));
            }
            Event::Connected {
                head,
                checkpoint,
                pull_mode,
                ..
            } => {
                self.shared.counters.logins.fetch_add(1, Ordering::Relaxed);
                let _ = self.journal.append(&RecvRecord::Connected {
                    t_us,
                    head,
                    checkpoint,
                    pull_mode,
                });
            }
            Event::Disconnected | Event::Notify { .. } | Event::PageEnd { .. } => {}
        }
    }
}
