//! Settling, after the heal phase: every device journals its conversation
//! list and every history (see [`super::device_conv`]), in rounds, until
//! the devices of each user report the same digest of what they saw, or
//! [`MAX_ROUNDS`] pass. Only to know when to stop: the checker compares
//! the journaled views of each device's last round itself, and fails on
//! any disagreement.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::shared::{Phase, Shared};

/// Rounds of views at most.
pub(super) const MAX_ROUNDS: u32 = 4;
/// Longest wait for every device to journal one round.
const ROUND_TIMEOUT: Duration = Duration::from_secs(240);

/// Settling rounds run, and whether the devices of every user agreed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Settled {
    pub(super) rounds: u32,
    pub(super) agreed: bool,
}

/// Runs the rounds over `devices` (every device of the run, late ones too).
pub(super) async fn settle(
    shared: &Shared,
    phase_tx: &watch::Sender<Phase>,
    devices: &[(u64, u32)],
) -> Settled {
    let mut out = Settled::default();
    for round in 1..=MAX_ROUNDS {
        out.rounds = round;
        let _ = phase_tx.send(Phase::Settle(round));
        let deadline = Instant::now() + ROUND_TIMEOUT;
        let digests = loop {
            let done: Option<Vec<_>> = {
                let views = shared.views.lock().expect("views");
                devices
                    .iter()
                    .map(|d| {
                        views
                            .get(d)
                            .filter(|(r, _)| *r >= round)
                            .map(|(_, g)| (*d, *g))
                    })
                    .collect()
            };
            if let Some(done) = done {
                break done;
            }
            if Instant::now() >= deadline {
                tracing::warn!(round, "not every device journaled its views in time");
                shared.event(
                    "settle",
                    serde_json::json!({"round": round, "complete": false}),
                );
                return out;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut by_user: BTreeMap<u64, Vec<Option<u64>>> = BTreeMap::new();
        for ((user, _), digest) in digests {
            by_user.entry(user).or_default().push(digest);
        }
        let agreed = by_user
            .values()
            .all(|ds| ds.iter().all(|d| d.is_some() && *d == ds[0]));
        shared.event(
            "settle",
            serde_json::json!({"round": round, "complete": true, "agreed": agreed}),
        );
        tracing::info!(round, agreed, "settling round");
        if agreed {
            out.agreed = true;
            return out;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    out
}
