//! `tern-peerbench connect`: time to connect on a lossy link (issue 14,
//! item 8), the real-daemon half. The real `ternd` (default configuration:
//! sealed, address validation on) runs in the server namespace of the lab,
//! with random loss by iptables on each side and an NFQUEUE delay for the
//! round trip; from the client namespace three clients each make
//! `--logins` logins per row, one at a time, each a new device from a new
//! socket: Tern's client library, the core client with a fixed login retry
//! (2 s), and TCP + TLS 1.3 to a listener next to ternd. The clients of a
//! row run side by side (`--serial`: one after another) under the same
//! loss and delay; ternd is started fresh for every row.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tern_lab::bench::seal::Sealing;

use crate::connect_args::ConnectArgs;
use crate::connect_stats::{self, Lane};
use crate::connect_tern::{self, Plan, TernTarget};
use crate::connect_tls::{self, TlsListener};
use crate::lab::Lab;
use crate::servers::Ternd;
use crate::summary::Out;
use crate::{delayers, run};

/// The clients of every row, as printed.
const TERN: &str = "Tern (client library, default)";
const TLS: &str = "TCP + TLS 1.3 (rustls, full handshake)";

/// What one row needs besides the daemon.
struct Setup<'a> {
    a: &'a ConnectArgs,
    /// The TLS listener's address.
    tls_addr: std::net::SocketAddr,
    /// A client configuration that trusts it.
    tls_client: std::sync::Arc<rustls::ClientConfig>,
    fixed_name: String,
}

/// `net.ipv4.tcp_syn_retries` and `tcp_synack_retries` where `prefix`
/// runs programs (this namespace when empty).
fn syn_retries(lab: &Lab, server: bool) -> String {
    let read = |key: &str| -> String {
        let path = format!("/proc/sys/net/ipv4/{key}");
        let out = if server {
            lab.server_command(Path::new("cat"))
                .arg(&path)
                .stderr(Stdio::null())
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
        };
        out.filter(|s| !s.is_empty()).unwrap_or_else(|| "?".into())
    };
    format!(
        "tcp_syn_retries {}, tcp_synack_retries {}",
        read("tcp_syn_retries"),
        read("tcp_synack_retries")
    )
}

/// Runs every row and prints the table.
pub fn connect(a: ConnectArgs) -> Result<()> {
    let lab = a.lab_args.lab()?;
    a.check(lab.can_lose())?;
    let ternd = a.lab_args.ternd();
    if !ternd.exists() {
        bail!("ternd not found at {}", ternd.display());
    }
    let (n, bound, rtt) = (a.logins(), a.bound(), a.rtt());
    let mut out = Out(String::new());
    let t0 = Instant::now();
    out.line(format!(
        "tern-peerbench connect: {}",
        tern_lab::bench::util::machine_line()
    ));
    out.line(format!(
        "  commit {}; network: {}",
        run::commit(),
        match &lab.server_ns {
            Some(ns) => format!(
                "namespaces {ns} <-> this one over veth {}, random loss by iptables on input each way, +{} ms RTT (NFQUEUE, {} ms each way)",
                lab.iface,
                a.rtt_ms,
                a.rtt_ms / 2
            ),
            None => "loopback (no loss, no delay)".into(),
        }
    ));
    out.line(format!(
        "  ternd: {}; each login a new device from a new socket (port 0), one at a time per client, clients {}; {n} logins per client and row, bound {bound:?}",
        Sealing::Sealed.describe(),
        if a.serial { "one after another" } else { "side by side" }
    ));
    out.line(format!(
        "  TCP: server side {}; client side {}",
        syn_retries(&lab, true),
        syn_retries(&lab, false)
    ));
    lab.set_loss(0.0)?;
    let budget: Duration = a.row_budget.into();
    let tls = TlsListener::start(&lab, budget * (a.losses.len() as u32 + 1))?;
    let delay = if a.rtt_ms > 0 {
        Some(delayers::start(&lab, a.rtt_ms)?)
    } else {
        None
    };
    let setup = Setup {
        a: &a,
        tls_addr: tls.addr,
        tls_client: tls.client.clone(),
        fixed_name: format!(
            "Tern core, fixed {:?} retry, {} cop{}",
            a.fixed_retry.as_ref(),
            a.fixed_copies,
            if a.fixed_copies == 1 { "y" } else { "ies" }
        ),
    };
    out.line(connect_stats::header(bound));
    let mut at20 = None;
    for &loss in &a.losses {
        let d = Ternd::start(&lab, &ternd, Sealing::Sealed)?;
        let target = TernTarget {
            addr: d.addr,
            keys: d.keys.clone(),
            seal_key: d.seal_key,
        };
        let lanes = lab.set_loss(loss).and_then(|()| row(&setup, &target, n));
        let _ = lab.set_loss(0.0);
        drop(d);
        let lanes = lanes.with_context(|| format!("row at {:.0}% loss", loss * 100.0))?;
        for l in &lanes {
            out.line(connect_stats::line(l, loss, rtt, bound));
        }
        let (tern, fixed, tls) = (&lanes[0], &lanes[1], &lanes[2]);
        out.line(format!(
            "    Tern / TCP+TLS: p50 {}, p90 {}, p99 {};  Tern / fixed retry: p50 {}, p90 {}, p99 {}",
            connect_stats::ratio(tern.pct(50.0), tls.pct(50.0)),
            connect_stats::ratio(tern.pct(90.0), tls.pct(90.0)),
            connect_stats::ratio(tern.pct(99.0), tls.pct(99.0)),
            connect_stats::ratio(tern.pct(50.0), fixed.pct(50.0)),
            connect_stats::ratio(tern.pct(90.0), fixed.pct(90.0)),
            connect_stats::ratio(tern.pct(99.0), fixed.pct(99.0)),
        ));
        if (loss - 0.2).abs() < 1e-9 {
            at20 = Some(connect_stats::goals(tern, rtt, bound));
        }
    }
    drop(delay);
    drop(tls);
    match at20 {
        Some(g) => out.line(format!("  at 20% loss, {g}")),
        None => {
            out.line("  no 20% row: the goals (p50 <= 3 RTT, p99 <= 1.5 s at 20% loss) not judged")
        }
    }
    out.line(format!("run took {:.0?}", t0.elapsed()));
    Ok(())
}

/// One row: the three clients, side by side or one after another.
fn row(s: &Setup<'_>, t: &TernTarget, n: u64) -> Result<Vec<Lane>> {
    let deadline = Instant::now() + Duration::from(s.a.row_budget);
    let plan = |k: u64| Plan {
        logins: n,
        bound: s.a.bound(),
        deadline,
        first_user: 1_000 + k * 1_000_000,
    };
    let tern = || connect_tern::library(TERN, t, plan(0));
    let fixed = || {
        connect_tern::fixed_retry(
            &s.fixed_name,
            t,
            plan(1),
            s.a.fixed_retry.into(),
            s.a.fixed_copies,
        )
    };
    let tls = || connect_tls::logins(TLS, s.tls_addr, &s.tls_client, plan(2));
    if s.a.serial {
        return Ok(vec![tern()?, fixed()?, tls()?]);
    }
    std::thread::scope(|sc| {
        let hs = [sc.spawn(tern), sc.spawn(fixed), sc.spawn(tls)];
        hs.into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a client thread panicked"))?)
            .collect()
    })
}
