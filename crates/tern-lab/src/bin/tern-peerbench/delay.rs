//! `tern-peerbench delay`: a fixed one-way delay for every packet of one
//! network namespace, TCP and UDP alike, without `tc netem` (this kernel has
//! none). An iptables rule sends the packets arriving on the veth to an
//! NFQUEUE (`scripts/netns-lab.sh loss P --queue N`); this program holds
//! each one for the delay and then accepts it, in arrival order. Run one in
//! each namespace for a round trip of twice the delay.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Holds every packet of queue `queue` for `delay`, until `stop_after`
/// passes (or forever) or SIGTERM.
pub fn run(queue: u16, delay: Duration, stop_after: Option<Duration>) -> Result<()> {
    let mut q = nfq::Queue::open().context("opening an NFQUEUE socket (root, nfnetlink_queue)")?;
    q.bind(queue)
        .with_context(|| format!("binding NFQUEUE {queue}"))?;
    // Only the verdict matters: copy as little of each packet as possible.
    let _ = q.set_copy_range(queue, 64);
    let _ = q.set_queue_max_len(queue, 65_536);
    let _ = q.set_recv_enobufs(false);
    q.set_nonblocking(true);
    println!("delaying NFQUEUE {queue} by {delay:?}");
    let start = Instant::now();
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let (mut passed, mut peak) = (0u64, 0usize);
    loop {
        if stop_after.is_some_and(|s| start.elapsed() >= s) {
            break;
        }
        // Take everything waiting.
        loop {
            match q.recv() {
                Ok(m) => held.push_back((Instant::now() + delay, m)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break,
                Err(e) => return Err(e).context("NFQUEUE recv"),
            }
        }
        peak = peak.max(held.len());
        // Release what is due, oldest first (one fixed delay keeps FIFO).
        let now = Instant::now();
        while held.front().is_some_and(|(t, _)| *t <= now) {
            let (_, mut m) = held.pop_front().expect("front exists");
            m.set_verdict(nfq::Verdict::Accept);
            q.verdict(m).context("NFQUEUE verdict")?;
            passed += 1;
        }
        let next = held
            .front()
            .map(|(t, _)| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(1));
        // Short naps: the socket is polled, so a new packet waits at most
        // this long before its clock starts (well under the 0.1 ms of jitter
        // the scheduler adds anyway).
        std::thread::sleep(next.min(Duration::from_micros(100)));
        if passed % 100_000 == 0 && passed > 0 {
            eprintln!("delay: {passed} packets, peak {peak} held");
        }
    }
    Ok(())
}
