//! What operators and backends may ask about a user (the server API of
//! `ternd`): presence, the inbox and every device's checkpoint, and ending
//! a user's sessions; plus the downlink retransmission counts of live
//! sessions for the status page.

use super::session::Downlink;
use super::Broker;
use crate::store::Store;
use crate::time::Time;
use crate::wire::KickReason;

/// One device of a user, as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// Device id.
    pub device: u32,
    /// A session is live.
    pub online: bool,
    /// Wall-clock ms of the last packet heard (online devices).
    pub last_heard_ms: Option<u64>,
    /// Wall-clock ms of the device's last login (0: never recorded).
    pub last_login_ms: u64,
    /// Inbox entries up to here were acknowledged by the device (durable).
    pub checkpoint: u64,
    /// Uplink operations up to here were processed (durable).
    pub applied: u64,
}

/// A user's inbox and devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    /// The inbox exists (something was stored for the user, or a device
    /// logged in).
    pub exists: bool,
    /// Inbox epoch.
    pub epoch: u64,
    /// Highest sequence stored durably.
    pub head: u64,
    /// Every sequence up to here was deleted (all devices had it, or
    /// retention).
    pub trimmed: u64,
    /// Every registered device.
    pub devices: Vec<DeviceView>,
}

impl<S: Store> Broker<S> {
    /// The user's inbox and devices, loading them from the store if needed.
    pub fn inspect_user(&mut self, now: Time, user: u64) -> Result<UserView, String> {
        let wall_now = self.wall_ms(now);
        let origin = self.wall_origin_ms;
        let u = self.user_mut(user)?;
        let mut devices: Vec<DeviceView> = u
            .devices
            .iter()
            .map(|(id, d)| DeviceView {
                device: *id,
                online: d.session.is_some(),
                last_heard_ms: None,
                last_login_ms: d.durable.last_login_ms,
                checkpoint: d.durable.checkpoint,
                applied: d.durable.applied,
            })
            .collect();
        let view = UserView {
            exists: u.exists,
            epoch: u.meta.epoch,
            head: u.committed_head,
            trimmed: u.meta.trimmed,
            devices: Vec::new(),
        };
        for d in &mut devices {
            let sid = self.device_session(user, d.device);
            if let Some(s) = sid.and_then(|sid| self.sessions.get(&sid)) {
                d.last_heard_ms = Some((origin + s.last_heard.as_micros() / 1000).min(wall_now));
            }
        }
        devices.sort_by_key(|d| d.device);
        Ok(UserView { devices, ..view })
    }

    /// Ends the user's sessions (one device's, or all). `reconnect` tells
    /// clients to log in again later (a server-going-away KICK); otherwise
    /// they are logged out and stop. Returns how many sessions ended.
    pub fn kick_user(&mut self, user: u64, device: Option<u32>, reconnect: bool) -> usize {
        let reason = if reconnect {
            KickReason::Shutdown
        } else {
            KickReason::LoggedOut
        };
        let sids: Vec<u64> = self
            .sessions
            .values()
            .filter(|s| s.user == user && device.is_none_or(|d| d == s.device))
            .map(|s| s.id)
            .collect();
        for sid in &sids {
            self.close_session(*sid, reason, true);
        }
        sids.len()
    }

    /// (session id, downlink retransmissions so far) of every live
    /// pushing session.
    pub fn downlink_retransmits(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.sessions.values().filter_map(|s| match &s.down {
            Downlink::Push(sender) => Some((s.id, sender.retransmits())),
            Downlink::Pull => None,
        })
    }
}
