//! Timer benchmark: delivery latency under loss for Tern's timers and two
//! baselines measured in the same run, the wire overhead of a short text
//! message, and the ACK datagrams of a steady flow through the real broker.
//!
//! ```text
//! cargo run --release -p tern-lab --bin tern-timer-bench [-- --quick] [-- --seed N]
//! ```
//!
//! Everything runs in virtual time from one seed: the same seed prints the
//! same figures on any machine (wall-clock time is printed only as a note).
//! Results and their reading are in `docs/benchmarks.md`.

mod acks;
mod baselines;
mod logins;
mod net;
mod tern_flow;
mod wire_overhead;

use std::time::{Duration, Instant};

use tern_core::reliability::{SenderConfig, SenderStats};
use tern_sim::impairment::Impairment;

use baselines::{CoapCon, MobileImSdk};
use net::{mix, pct_ms, run_flow, schedule, FlowResult, Path, Policy};
use tern_flow::TernFlow;

const RTT_MS: f64 = 100.0;
const ONE_WAY: Duration = Duration::from_millis(50);
const JITTER: Duration = Duration::from_millis(5);
const LOSSES: [f64; 5] = [0.0, 0.05, 0.10, 0.20, 0.30];
const CHAT_GAP: Duration = Duration::from_millis(50);
/// Tern's p99 target at 10 % loss, in RTTs.
const P99_TARGET_RTTS: f64 = 4.0;
/// ACK target: at most one ACK-only datagram per this many messages.
const ACK_TARGET_PER: f64 = 8.0;

struct Args {
    seed: u64,
    quick: bool,
}

fn args() -> Args {
    let mut a = Args {
        seed: 1,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--seed" => {
                a.seed = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage("--seed needs an unsigned integer"))
            }
            s if s.starts_with("--seed=") => {
                a.seed = s[7..]
                    .parse()
                    .unwrap_or_else(|_| usage("--seed needs an unsigned integer"))
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    a
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("error: {err}");
    }
    eprintln!("usage: tern-timer-bench [--quick] [--seed N]");
    std::process::exit(if err.is_empty() { 0 } else { 2 })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tern,
    /// Tern's timers before issue 14: SACK counting, no RACK, no probe.
    TernBefore,
    MobileImSdk,
    Coap,
    /// Tern with time-based loss detection but no tail-loss probe.
    TernNoProbe,
    /// Tern backing off on every timeout, as before issue 14.
    TernAlwaysBackoff,
    /// Tern sending one copy of each repair (the default before
    /// 2026-12-05, two copies since).
    TernOneCopy,
    /// Tern never sending new messages in copies, whatever the loss
    /// (the default before 2026-12-05).
    TernNoRedundancy,
    /// Tern sending new messages in at most two copies on a lossy path
    /// (the default before 2026-12-06; three since, above 4 % loss).
    TernTwoCopies,
    /// Tern starting every flow with single sends: copies only once its
    /// own losses show (the default before 2026-12-06).
    TernNoProbation,
    /// Tern with the circuit breaker disabled: a diagnostic, not a default.
    TernNoBreaker,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Tern,
        Kind::TernBefore,
        Kind::MobileImSdk,
        Kind::Coap,
        Kind::TernNoProbe,
        Kind::TernAlwaysBackoff,
        Kind::TernOneCopy,
        Kind::TernNoRedundancy,
        Kind::TernTwoCopies,
        Kind::TernNoProbation,
        Kind::TernNoBreaker,
    ];
    fn name(self) -> &'static str {
        match self {
            Kind::Tern => "Tern (default timers)",
            Kind::TernBefore => "Tern, levers off",
            Kind::MobileImSdk => "MobileIMSDK (5s/3s/2)",
            Kind::Coap => "CoAP CON (2-3s, x2, 4)",
            Kind::TernNoProbe => "[diag] Tern, no TLP",
            Kind::TernAlwaysBackoff => "[diag] Tern, backoff always",
            Kind::TernOneCopy => "[diag] Tern, 1 repair copy",
            Kind::TernNoRedundancy => "[diag] Tern, no redundant sends",
            Kind::TernTwoCopies => "[diag] Tern, new msgs in 2 copies",
            Kind::TernNoProbation => "[diag] Tern, no copies until losses seen",
            Kind::TernNoBreaker => "[diag] Tern, no breaker",
        }
    }

    fn is_tern(self) -> bool {
        !matches!(self, Kind::MobileImSdk | Kind::Coap)
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).expect("listed")
    }
}

struct PolicyResult {
    res: FlowResult,
    tern: SenderStats,
    duplicates: u64,
    max_queued: usize,
    queue_full_flows: u64,
}

fn run_policy(
    kind: Kind,
    seed: u64,
    li: u64,
    imp: &Impairment,
    flows: u64,
    per_flow: usize,
) -> PolicyResult {
    let mut total = FlowResult::default();
    let mut tern = SenderStats::default();
    let mut duplicates = 0;
    let mut max_queued = 0;
    let mut queue_full_flows = 0;
    for flow in 0..flows {
        // Same submissions and link seeds for every policy.
        let submits = schedule(mix(&[seed, li, flow, 0]), per_flow, CHAT_GAP);
        let path = Path {
            imp: imp.clone(),
            data_seed: mix(&[seed, li, flow, 1]),
            ack_seed: mix(&[seed, li, flow, 2]),
        };
        let pseed = mix(&[seed, li, flow, 3]);
        let res = match kind {
            Kind::Tern
            | Kind::TernBefore
            | Kind::TernNoProbe
            | Kind::TernAlwaysBackoff
            | Kind::TernOneCopy
            | Kind::TernNoRedundancy
            | Kind::TernTwoCopies
            | Kind::TernNoProbation
            | Kind::TernNoBreaker => {
                let cfg = match kind {
                    Kind::TernNoBreaker => SenderConfig {
                        breaker_after: u32::MAX,
                        ..SenderConfig::default()
                    },
                    Kind::TernBefore => SenderConfig::before_rack(),
                    Kind::TernNoProbe => SenderConfig {
                        tail_probe: false,
                        ..SenderConfig::default()
                    },
                    Kind::TernAlwaysBackoff => SenderConfig {
                        backoff_needs_silence: false,
                        ..SenderConfig::default()
                    },
                    // One copy of everything, as before 2026-12-05 (new
                    // messages followed the repair-copy count until the
                    // two counts were split).
                    Kind::TernOneCopy => SenderConfig {
                        repair_copies: 1,
                        redundant_copies: 1,
                        ..SenderConfig::default()
                    },
                    Kind::TernTwoCopies => SenderConfig {
                        redundant_copies: 2,
                        ..SenderConfig::default()
                    },
                    Kind::TernNoProbation => SenderConfig {
                        start_in_copies: false,
                        ..SenderConfig::default()
                    },
                    Kind::TernNoRedundancy => SenderConfig {
                        redundant_sends_at: 0.0,
                        ..SenderConfig::default()
                    },
                    _ => SenderConfig::default(),
                };
                let mut p = TernFlow::new(cfg, kind != Kind::TernBefore, pseed);
                let r = run_flow(&mut p, &path, &submits);
                let s = p.sender_stats();
                tern.sent += s.sent;
                tern.timeout_retransmits += s.timeout_retransmits;
                tern.fast_retransmits += s.fast_retransmits;
                tern.tail_probes += s.tail_probes;
                tern.repair_copies += s.repair_copies;
                tern.first_copies += s.first_copies;
                tern.breaker_opened += s.breaker_opened;
                tern.failures += s.failures;
                tern.acked += s.acked;
                duplicates += p.duplicates();
                max_queued = max_queued.max(p.max_queued);
                queue_full_flows += u64::from(p.queue_full > 0);
                r
            }
            Kind::MobileImSdk => run_flow(
                &mut MobileImSdk::new(pseed) as &mut dyn Policy,
                &path,
                &submits,
            ),
            Kind::Coap => run_flow(&mut CoapCon::new(pseed), &path, &submits),
        };
        total.merge(res);
    }
    total.latencies_us.sort_unstable();
    PolicyResult {
        res: total,
        tern,
        duplicates,
        max_queued,
        queue_full_flows,
    }
}

struct LevelSummary {
    loss: f64,
    p99: [f64; Kind::ALL.len()],
}

fn main() {
    let a = args();
    let wall = Instant::now();
    let (flows, per_flow) = if a.quick {
        (4u64, 2_500usize)
    } else {
        (20, 10_000)
    };
    println!("Tern timer benchmark (virtual time; deterministic for a seed)");
    println!(
        "seed {}{}; RTT {} ms (one-way {} ms each way, jitter uniform +-{} ms, FIFO), random loss each way",
        a.seed,
        if a.quick { " (--quick)" } else { "" },
        RTT_MS,
        ONE_WAY.as_millis(),
        JITTER.as_millis()
    );
    println!(
        "{} flows x {} messages per loss level, Poisson submissions, mean gap {} ms (20 msg/s per flow)",
        flows,
        per_flow,
        CHAT_GAP.as_millis()
    );
    println!("latency = submit -> handed to the receiving app. Tern: in order (head-of-line blocking counted).");
    println!("Baselines: delivered on first arrival, unordered, every arrival ACKed at once (favours them).");
    println!();

    println!("== Delivery latency under loss ==");
    let mut summaries = Vec::new();
    for (li, &loss) in LOSSES.iter().enumerate() {
        let imp = Impairment {
            loss,
            delay: ONE_WAY,
            jitter: JITTER,
            ..Impairment::default()
        };
        let results: Vec<PolicyResult> = std::thread::scope(|s| {
            let handles: Vec<_> = Kind::ALL
                .iter()
                .map(|&k| {
                    let imp = &imp;
                    s.spawn(move || run_policy(k, a.seed, li as u64, imp, flows, per_flow))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("policy thread"))
                .collect()
        });
        println!("-- loss {:.0}% each way --", loss * 100.0);
        println!(
            "  {:<30} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "policy", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "lost %", "gave up%", "dgrams/msg"
        );
        let mut p99 = [0.0; Kind::ALL.len()];
        for (i, (k, r)) in Kind::ALL.iter().zip(&results).enumerate() {
            let f = &r.res;
            let lat = &f.latencies_us;
            let delivered = lat.len() as f64;
            p99[i] = pct_ms(lat, 99.0);
            println!(
                "  {:<30} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>9.3} {:>9.3} {:>10.2}",
                k.name(),
                pct_ms(lat, 50.0),
                p99[i],
                pct_ms(lat, 99.9),
                lat.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
                100.0 * f.never_delivered as f64 / f.submitted as f64,
                100.0 * f.gave_up as f64 / f.submitted as f64,
                (f.data_datagrams + f.ack_datagrams) as f64 / delivered
            );
        }
        let p = |k: Kind| p99[k.index()];
        println!(
            "  Tern p99 = {:.2} x RTT; = {:.3} x the same with the issue-14 levers off; = {:.3} x MobileIMSDK p99; = {:.3} x CoAP p99",
            p(Kind::Tern) / RTT_MS,
            p(Kind::Tern) / p(Kind::TernBefore),
            p(Kind::Tern) / p(Kind::MobileImSdk),
            p(Kind::Tern) / p(Kind::Coap)
        );
        for (k, t) in Kind::ALL.iter().zip(&results) {
            if !k.is_tern() {
                continue;
            }
            println!(
                "  {}: {} sends, {} timeout + {} fast (RACK or SACK count) retransmits + {} tail probes \
                 + {} extra repair copies + {} extra first copies, \
                 {} copies the receiver already had, \
                 breaker opened {}x, {} budget failures; {:.2} data + {:.2} ACK datagrams, {:.1} B per message; \
                 send queue peaked at {} messages{}",
                k.name(),
                t.tern.sent,
                t.tern.timeout_retransmits,
                t.tern.fast_retransmits,
                t.tern.tail_probes,
                t.tern.repair_copies,
                t.tern.first_copies,
                t.duplicates,
                t.tern.breaker_opened,
                t.tern.failures,
                t.res.data_datagrams as f64 / t.res.submitted as f64,
                t.res.ack_datagrams as f64 / t.res.submitted as f64,
                t.res.bytes as f64 / t.res.submitted as f64,
                t.max_queued,
                if t.queue_full_flows > 0 {
                    format!(" (FULL at 4096 in {} of {} flows: the app had to wait)", t.queue_full_flows, flows)
                } else {
                    String::new()
                }
            );
        }
        println!();
        summaries.push(LevelSummary { loss, p99 });
    }
    println!(
        "  lost % = never reached the app; gave up% = sender gave up (MobileIMSDK 'messagesLost',"
    );
    println!(
        "  CoAP give-up, Tern retry-budget failure, after which the flow is revived at once)."
    );
    println!(
        "  Percentiles are over delivered messages only, which flatters a policy that loses some."
    );
    println!("  [diag] rows are not defaults: the same Tern flow with one knob changed, to locate a cost.");
    println!();

    let over = wire_overhead::run();

    println!("== ACK datagrams in a steady flow (real ClientConn + Broker + MemStore) ==");
    let commit = Duration::from_micros(500);
    let ack_imp = Impairment {
        delay: ONE_WAY,
        jitter: JITTER,
        ..Impairment::default()
    };
    println!(
        "  user A's client sends to user B's online client; RTT {} ms, no loss; commit (fsync) {} us",
        RTT_MS,
        commit.as_micros()
    );
    let mut steady_b = 0.0;
    let mut steady_a = 0.0;
    for (n, gap) in [(1000u64, Duration::from_millis(1)), (1000, CHAT_GAP)] {
        let r = acks::run(a.seed, n, gap, &ack_imp, commit);
        assert_eq!(
            (r.delivered, r.stored),
            (n, n),
            "every message stored and delivered"
        );
        println!(
            "  -- {} messages, one every {} ms (flow took {} ms; {} commits) --",
            n,
            gap.as_millis(),
            r.flow_span.as_millis(),
            r.commits
        );
        println!(
            "  {:<30} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8}",
            "direction",
            "datagrams",
            "ACK-only",
            "ACK-only",
            "ACK",
            "SEND",
            "DELIVER",
            "DELIVER",
            "bytes"
        );
        println!(
            "  {:<30} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8}",
            "", "", "", "/100 msg", "frames", "frames", "msgs", "receipts", "/msg"
        );
        for (name, d) in acks::DIR_NAMES.iter().zip(&r.dirs) {
            println!(
                "  {:<30} {:>9} {:>9} {:>9.1} {:>9} {:>8} {:>8} {:>9} {:>8.1}",
                name,
                d.datagrams,
                d.ack_only,
                100.0 * d.ack_only as f64 / n as f64,
                d.ack_frames,
                d.send_frames,
                d.deliver_messages,
                d.deliver_receipts,
                d.bytes as f64 / n as f64
            );
        }
        if gap == Duration::from_millis(1) {
            steady_a = 100.0 * r.dirs[1].ack_only as f64 / n as f64;
            steady_b = 100.0 * r.dirs[2].ack_only as f64 / n as f64;
        }
    }
    println!();

    let connect = logins::report(a.seed, if a.quick { 100 } else { 500 });

    println!("== Targets ==");
    let ten = summaries
        .iter()
        .find(|s| s.loss == 0.10)
        .expect("10% level");
    let target = P99_TARGET_RTTS * RTT_MS;
    let tern = ten.p99[Kind::Tern.index()];
    println!(
        "  Tern p99 at 10% loss <= {P99_TARGET_RTTS} x RTT ({target} ms): {:.1} ms = {:.2} x RTT -> {}",
        tern,
        tern / RTT_MS,
        if tern <= target { "MET" } else { "MISSED" }
    );
    for s in &summaries {
        let (now, before) = (s.p99[Kind::Tern.index()], s.p99[Kind::TernBefore.index()]);
        println!(
            "    at {:.0}% loss: p99 {:.1} ms against {:.1} ms with the issue-14 levers off ({:.3} x); \
             no TLP {:.1} ms; backoff always {:.1} ms; 1 repair copy {:.1} ms; no redundant sends {:.1} ms; \
             no breaker {:.1} ms",
            s.loss * 100.0,
            now,
            before,
            now / before,
            s.p99[Kind::TernNoProbe.index()],
            s.p99[Kind::TernAlwaysBackoff.index()],
            s.p99[Kind::TernOneCopy.index()],
            s.p99[Kind::TernNoRedundancy.index()],
            s.p99[Kind::TernNoBreaker.index()]
        );
    }
    println!(
        "  overhead of a 20-byte message <= {} B: SEND {} B -> {}; (DELIVER {} B; SEND with ids >= 2^30 {} B; \
         ACK-only datagram {} B)",
        wire_overhead::TARGET_OVERHEAD,
        over.send,
        if over.send <= wire_overhead::TARGET_OVERHEAD { "MET" } else { "MISSED" },
        over.deliver,
        over.send_wide_ids,
        over.ack_datagram
    );
    let per100 = 100.0 / ACK_TARGET_PER;
    for (name, v) in [
        ("server -> sender (uplink ACKs)", steady_a),
        ("receiver -> server (downlink ACKs)", steady_b),
    ] {
        println!(
            "  ACK-only datagrams per 100 messages <= {per100} (1 per {ACK_TARGET_PER}), {name}: {v:.1} -> {}",
            if v <= per100 { "MET" } else { "MISSED" }
        );
    }
    if let Some((p50, p99)) = connect {
        println!(
            "  time to connect at 20% loss (sealed, validation on; simulator): p50 <= 3 x RTT: {:.2} x RTT -> {}; \
             p99 <= 1.5 s: {:.0} ms -> {}",
            p50 / RTT_MS,
            if p50 <= 3.0 * RTT_MS { "MET" } else { "MISSED" },
            p99,
            if p99 <= 1500.0 { "MET" } else { "MISSED" }
        );
    }
    println!();
    println!(
        "wall time {:.1} s (a note only: every figure above is virtual time)",
        wall.elapsed().as_secs_f64()
    );
}
