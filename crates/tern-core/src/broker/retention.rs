//! What may be deleted: device checkpoints advance and trim what every
//! device has acknowledged, and the retention sweep deletes what is too
//! old even if some device never read it.

use super::Broker;
use crate::store::Store;
use crate::time::Time;

impl<S: Store> Broker<S> {
    /// Deletes entries older than the retention time, even if some device
    /// never read them. Looked at most once a minute per inbox, on activity.
    pub(super) fn retention_sweep(&mut self, now: Time, user: u64) {
        let cutoff = self
            .wall_ms(now)
            .saturating_sub(self.cfg.retention.as_millis() as u64);
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        if u.swept_at
            .is_some_and(|t| now.saturating_since(t) < std::time::Duration::from_secs(60))
        {
            return;
        }
        u.swept_at = Some(now);
        let (mut from, head) = (u.meta.trimmed, u.committed_head);
        let mut up_to = None;
        // Entries are in time order: stop at the first one young enough.
        'scan: for _ in 0..16 {
            if from >= head {
                break;
            }
            let Ok(entries) = self.store.read_inbox(user, from, 256) else {
                return;
            };
            if entries.is_empty() {
                break;
            }
            for e in entries.iter().take_while(|e| e.seq <= head) {
                if e.entry.time_ms >= cutoff {
                    break 'scan;
                }
                up_to = Some(e.seq);
                from = e.seq;
            }
        }
        if let Some(up_to) = up_to {
            if let Some(u) = self.users.get_mut(&user) {
                u.meta.trimmed = up_to;
            }
            self.mark_user_dirty(user);
            self.staged.trims.push((user, up_to));
        }
    }

    /// Device `device` of `user` acknowledged every entry `<= to`. The
    /// write waits up to `checkpoint_delay` for a batch that must be
    /// durable anyway: nothing waits for it, and if a crash loses it the
    /// device is sent those entries again and drops them as duplicates
    /// (`proto-spec/state-machines.md`, the client's release checkpoint).
    pub(super) fn advance_checkpoint(&mut self, now: Time, user: u64, device: u32, to: u64) {
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        let Some(d) = u.devices.get_mut(&device) else {
            return;
        };
        if to <= d.staged.checkpoint {
            return;
        }
        d.staged.checkpoint = to;
        let min = u.min_checkpoint();
        let trim = (min > u.meta.trimmed).then(|| {
            u.meta.trimmed = min;
            min
        });
        self.stage_deferred(now, self.cfg.checkpoint_delay, |b| {
            b.mark_device_dirty(user, device);
            if let Some(up_to) = trim {
                b.mark_user_dirty(user);
                b.staged.trims.push((user, up_to));
            }
        });
    }
}
