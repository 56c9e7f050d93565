//! History retention: records of a conversation's storage timeline older
//! than [`BrokerConfig::history_retention`](super::BrokerConfig) are
//! deleted (kept forever when it is `None`, the default). A timeline is
//! looked at when it is posted to or paged through, at most once a minute,
//! and a slow walk over every timeline trims the quiet ones too, so the
//! retention a deployment promises holds on disk, not just in answers.
//! Trimming the sync timelines ([`retention`](super::retention)) never
//! trims history: the daemon refuses a history retention shorter than the
//! sync one.

use std::time::Duration;

use super::Broker;
use crate::conv::ConvKey;
use crate::store::Store;
use crate::time::Time;

/// One timeline is looked at most this often on activity.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Records read per step of one timeline's scan, and steps at most.
const SCAN_PAGE: usize = 64;
const SCAN_PAGES: usize = 16;
/// Timelines looked at per step of the walk; a full step schedules the next
/// one a second later, the end of the walk the next walk ten minutes later.
const WALK_BATCH: usize = 32;
const WALK_STEP: Duration = Duration::from_secs(1);
const WALK_REST: Duration = Duration::from_secs(600);

/// Where the walk over every timeline is.
#[derive(Debug, Default)]
pub(crate) struct HistoryWalk {
    /// When the next step is due (`None`: history is kept forever).
    pub at: Option<Time>,
    /// The last timeline looked at (`None`: start from the first).
    pub cursor: Option<ConvKey>,
}

impl HistoryWalk {
    pub fn new(retention: Option<Duration>) -> Self {
        HistoryWalk {
            at: retention.map(|_| Time::ZERO + WALK_STEP),
            cursor: None,
        }
    }
}

impl<S: Store> Broker<S> {
    /// Wall-clock ms below which records are past history retention.
    pub(super) fn history_cutoff(&self, now: Time) -> Option<u64> {
        let keep = self.cfg.history_retention?;
        Some(self.wall_ms(now).saturating_sub(keep.as_millis() as u64))
    }

    /// Trims `conv`'s records past retention, unless it was looked at in
    /// the last minute. Records are in time order: the scan stops at the
    /// first one young enough.
    pub(super) fn sweep_history(&mut self, now: Time, conv: ConvKey) {
        let Some(cutoff) = self.history_cutoff(now) else {
            return;
        };
        let Ok(t) = self.timeline_mut(conv) else {
            return;
        };
        if t.swept_at
            .is_some_and(|at| now.saturating_since(at) < SWEEP_EVERY)
        {
            return;
        }
        t.swept_at = Some(now);
        let mut from = t.meta.trimmed;
        let mut up_to = None;
        'scan: for _ in 0..SCAN_PAGES {
            let before = from.saturating_add(SCAN_PAGE as u64 + 1);
            let Ok(records) = self.store.read_conv(&conv, before, SCAN_PAGE) else {
                return;
            };
            let Some(last) = records.last().map(|r| r.conv_seq) else {
                break;
            };
            for r in &records {
                if r.time_ms >= cutoff {
                    break 'scan;
                }
                up_to = Some(r.conv_seq);
            }
            from = last;
        }
        let Some(up_to) = up_to else {
            return;
        };
        if let Some(t) = self.convs.timelines.get_mut(&conv) {
            t.meta.trimmed = t.meta.trimmed.max(up_to);
        }
        self.mark_timeline_dirty(conv);
        self.staged.convs.trims.push((conv, up_to));
        self.stats.history_trimmed += 1;
    }

    /// One step of the walk over every timeline, if it is due.
    pub(super) fn walk_history(&mut self, now: Time) {
        if self.history_walk.at.is_none_or(|at| now < at) {
            return;
        }
        let cursor = self.history_walk.cursor;
        let metas = match self.store.convs_after(cursor.as_ref(), WALK_BATCH) {
            Ok(m) => m,
            Err(e) => {
                self.events.push_back(super::BrokerEvent::StoreReadFailed {
                    error: e.to_string(),
                });
                self.history_walk.at = Some(now + WALK_REST);
                return;
            }
        };
        for (conv, meta) in &metas {
            if meta.trimmed < meta.head {
                self.sweep_history(now, *conv);
            }
        }
        let full = metas.len() == WALK_BATCH;
        self.history_walk.cursor = if full {
            metas.last().map(|m| m.0)
        } else {
            None
        };
        self.history_walk.at = Some(now + if full { WALK_STEP } else { WALK_REST });
    }
}
