//! The chaos run itself, phase by phase: set up the run directory, start
//! the daemon and the proxy, log every device in, traffic with faults, heal,
//! stop everything, and let the checker read the journals.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::{watch, Barrier};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::checker::check_dir;
use super::device::DeviceTask;
use super::faults::{restart_if_down, spawn_killer, spawn_rebinder};
use super::journal::{journal_dir, recv_file, Clock, JsonlWriter, Meta};
use super::outcome::{RunOutcome, RunStats};
use super::proxy_thread::ProxyThread;
use super::settle::settle;
use super::shared::{io, Counters, Phase, Shared, Tracker};
use super::Params;
use crate::ternd::{Ternd, TerndConfig};

/// What the run directory holds before anything starts.
struct Setup {
    jdir: PathBuf,
    devices: Vec<(u64, u32)>,
    /// Brand-new devices that join late (history roaming).
    late: Vec<(u64, u32)>,
    convs: Vec<(u64, u64, u64)>,
    tokens: HashMap<(u64, u32), Vec<u8>>,
    seal_key: Option<tern::client::SealKey>,
}

/// Creates the run directory (it must not hold a run), writes `meta.json`,
/// and signs every device's token with the secret the daemon will load.
fn prepare(params: &Params, dir: &Path) -> Result<Setup, String> {
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
    let late: Vec<(u64, u32)> = params
        .late_device_at
        .map(|_| (1, params.devices + 1))
        .into_iter()
        .collect();
    let convs = params.conversations();
    let meta = Meta {
        version: 1,
        devices: devices.iter().chain(&late).copied().collect(),
        convs: convs.clone(),
        params: serde_json::to_value(params).unwrap_or_default(),
        late: late.clone(),
        conv_checks: true,
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
    for &(u, d) in devices.iter().chain(&late) {
        let hex_token = tern::server::issue_token(&cfg, u, d, 7 * 24 * 3600)
            .map_err(|e| format!("token: {e}"))?;
        tokens.insert((u, d), hex::decode(hex_token).expect("hex token"));
    }
    // Created here in the daemon's folder, so the daemon seals with it.
    let seal_key = tern::server::load_seal_key(&cfg)
        .map_err(|e| format!("seal key: {e}"))?
        .map(|k| k.public());
    Ok(Setup {
        jdir,
        devices,
        late,
        convs,
        tokens,
        seal_key,
    })
}

/// `ternd serve` on the run's data folder, with short heartbeats and idle
/// timeouts so that sessions lost in a crash are noticed quickly.
async fn start_daemon(params: &Params, dir: &Path, ternd: &Path) -> Result<Ternd, String> {
    let config = TerndConfig::new(ternd, dir.join("server"))
        .log_file(dir.join("ternd.log"))
        .ready_timeout(Duration::from_secs(20))
        .env(
            "TERN_TIMERS_HEARTBEAT",
            humantime::format_duration(params.heartbeat).to_string(),
        )
        .env(
            "TERN_TIMERS_IDLE_TIMEOUT",
            humantime::format_duration(params.idle_timeout).to_string(),
        )
        .env(
            "TERN_LIMITS_GROUP_WRITE_FANOUT_MAX",
            params.group_write_fanout_max.to_string(),
        )
        .env("RUST_LOG", params.ternd_log.clone());
    tokio::task::spawn_blocking(move || config.start())
        .await
        .map_err(|e| format!("daemon start task: {e}"))?
        .map_err(|e| e.to_string())
}

/// The device tasks, and what releases them into traffic together.
struct Devices {
    tasks: Vec<JoinHandle<Result<(), String>>>,
    /// Every device waits here after its first login.
    barrier: Arc<Barrier>,
    /// When traffic started, once it has.
    start_at: Arc<Mutex<Option<Instant>>>,
}

/// One task per device, each sending to the peers of its user's
/// conversations; the quota of messages is split evenly.
fn spawn_devices(shared: &Arc<Shared>, setup: &Setup, dir: &Path) -> Result<Devices, String> {
    let params = &shared.params;
    let n = setup.devices.len();
    let quota_each = params.messages / n as u64;
    let extra = params.messages % n as u64;
    let barrier = Arc::new(Barrier::new(n + 1));
    let start_at = Arc::new(Mutex::new(None::<Instant>));
    let mut tasks = Vec::new();
    let all = setup.devices.iter().map(|d| (d, false));
    for (i, (&(u, d), late)) in all.chain(setup.late.iter().map(|d| (d, true))).enumerate() {
        let peers: Vec<(u64, u64)> = setup
            .convs
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
            JsonlWriter::create(&setup.jdir.join(recv_file(u, d))).map_err(io(&recv_file(u, d)))?;
        let dev = DeviceTask {
            shared: shared.clone(),
            user: u,
            device: d,
            token: setup.tokens[&(u, d)].clone(),
            state_dir: dir.join("clients").join(format!("u{u}-d{d}")),
            peers,
            quota: if late {
                0
            } else {
                quota_each + u64::from((i as u64) < extra)
            },
            rng: SmallRng::seed_from_u64(
                params.seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)),
            ),
            journal,
            next_n: 0,
            pending_reads: Vec::new(),
            pending_marks: Vec::new(),
            late,
            viewed_round: 0,
            newest: HashMap::new(),
            heal_marked: false,
            last_inbox: 0,
            to_release: None,
            finished: false,
            barrier: barrier.clone(),
            start_at: start_at.clone(),
        };
        tasks.push(tokio::spawn(dev.run()));
    }
    Ok(Devices {
        tasks,
        barrier,
        start_at,
    })
}

/// Traffic until every device's quota is submitted and settled, or the
/// hard bound `duration + max(duration / 4, 20 s)`.
async fn wait_for_traffic(shared: &Shared, devices: usize, traffic_start: Instant) {
    let params = &shared.params;
    let deadline =
        traffic_start + params.duration + (params.duration / 4).max(Duration::from_secs(20));
    let mut last_log = Instant::now();
    loop {
        if shared.counters.quotas_done.load(Ordering::Relaxed) == devices as u64 {
            break;
        }
        if Instant::now() >= deadline {
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
}

/// Heal: no more faults but the lossy network; waits (at most `params.heal`)
/// for every ACKed message to reach every device of its receiver.
async fn heal(shared: &Shared) -> Option<Duration> {
    let heal_start = Instant::now();
    let mut healed_in = None;
    while heal_start.elapsed() < shared.params.heal {
        if shared.tracker.lock().expect("tracker").complete() {
            healed_in = Some(heal_start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    healed_in
}

/// Waits (bounded) for every device task to log out and finish.
async fn stop_devices(tasks: Vec<JoinHandle<Result<(), String>>>) {
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(30), t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "device task failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "device task panicked"),
            Err(_) => tracing::error!("device task did not stop within 30 s"),
        }
    }
}

fn stats_of(c: &Counters) -> RunStats {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    RunStats {
        submitted: get(&c.submitted),
        acked: get(&c.acked),
        unresolved: get(&c.unresolved),
        abandoned: get(&c.abandoned),
        failed: get(&c.failed),
        reads: get(&c.reads),
        marks: get(&c.marks),
        group_posts: get(&c.group_posts),
        history_pages: get(&c.history_pages),
        offline_close: get(&c.offline_close),
        offline_drop: get(&c.offline_drop),
        client_rebinds: get(&c.client_rebinds),
        logins: get(&c.logins),
        ..RunStats::default()
    }
}

/// Runs the whole scenario in `dir` (created; must not hold a previous
/// run), with the daemon binary `ternd`, then checks the journals.
pub async fn run(params: Params, dir: &Path, ternd: &Path) -> Result<RunOutcome, String> {
    params.validate()?;
    let clock = Clock::start();
    let run_start = Instant::now();
    let setup = prepare(&params, dir)?;
    let daemon = start_daemon(&params, dir, ternd).await?;
    let proxy = ProxyThread::start(&params, dir, daemon.addr()).await?;
    let (phase_tx, phase_rx) = watch::channel(Phase::Traffic);
    let shared = Arc::new(Shared {
        params: params.clone(),
        group: std::sync::OnceLock::new(),
        churn_added: Default::default(),
        churn_removed: Default::default(),
        clock,
        sends: JsonlWriter::create(&setup.jdir.join("sends.jsonl")).map_err(io("sends.jsonl"))?,
        events: JsonlWriter::create(&setup.jdir.join("events.jsonl"))
            .map_err(io("events.jsonl"))?,
        tracker: Mutex::new(Tracker {
            devices_per_user: u64::from(params.devices),
            ..Tracker::default()
        }),
        counters: Counters::default(),
        phase: phase_rx,
        server: proxy.addr,
        seal_key: setup.seal_key,
        views: Mutex::new(HashMap::new()),
    });
    shared.event(
        "start",
        serde_json::json!({"ternd": daemon.addr().to_string(), "pid": daemon.pid(), "proxy": proxy.addr.to_string()}),
    );
    tracing::info!(ternd = %daemon.addr(), proxy = %proxy.addr, dir = %dir.display(), "chaos run starting");

    let devices = spawn_devices(&shared, &setup, dir)?;
    // Every device logged in once (registered) before any traffic.
    let registered = tokio::time::timeout(Duration::from_secs(60), devices.barrier.wait()).await;
    if registered.is_err() {
        let _ = phase_tx.send(Phase::Stop);
        return Err("devices did not all log in within 60 s; see ternd.log".into());
    }
    let traffic_start = Instant::now();
    *devices.start_at.lock().expect("start lock") = Some(traffic_start);
    shared.event(
        "traffic_start",
        serde_json::json!({"devices": setup.devices.len()}),
    );

    let killer = spawn_killer(shared.clone(), daemon, traffic_start, phase_tx.subscribe());
    let rebinder = spawn_rebinder(
        shared.clone(),
        proxy.control.clone(),
        params.rebind_every,
        phase_tx.subscribe(),
    );
    wait_for_traffic(&shared, setup.devices.len(), traffic_start).await;
    let traffic = traffic_start.elapsed();
    let _ = phase_tx.send(Phase::Heal);
    shared.event(
        "traffic_end",
        serde_json::json!({"acked": shared.counters.acked.load(Ordering::Relaxed)}),
    );
    let (daemon, kills) = killer.await.map_err(|e| format!("kill task: {e}"))?;
    let rebinds = rebinder.await.unwrap_or(0);
    let mut daemon = restart_if_down(daemon).await?;

    let healed_in = heal(&shared).await;
    // A moment for the last receipts; then every device journals its list
    // and histories until the devices of each user agree; then everyone
    // logs out.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all: Vec<(u64, u32)> = setup.devices.iter().chain(&setup.late).copied().collect();
    let settled = settle(&shared, &phase_tx, &all).await;
    let _ = phase_tx.send(Phase::Stop);
    stop_devices(devices.tasks).await;
    let graceful =
        tokio::task::spawn_blocking(move || daemon.terminate(Duration::from_secs(10)).is_ok())
            .await
            .unwrap_or(false);
    let proxy_stats = proxy.stop().await;
    shared.event(
        "stop",
        serde_json::json!({"ternd_graceful": graceful, "proxy": proxy_stats.to_json()}),
    );
    shared.sends.flush().map_err(io("sends.jsonl"))?;
    shared.events.flush().map_err(io("events.jsonl"))?;

    let mut stats = RunStats {
        kills,
        rebinds,
        traffic,
        healed_in,
        settle_rounds: settled.rounds,
        settled: settled.agreed,
        late_devices: setup.late.len() as u32,
        proxy: proxy_stats,
        ..stats_of(&shared.counters)
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
