//! Service operations: the server API (`POST /v1/messages` on `ternd`)
//! posts as a *service device*, a device with no session whose operations
//! the daemon injects itself. They take the normal uplink path from the
//! point where a session's operations are in order: [`Broker::apply_uplink`]
//! stages the inbox entry and the device's `applied` in the same batch, the
//! outcome is final once that batch is durable, and de-duplication is by
//! (device, sequence) exactly as for a client SEND. The driver numbers the
//! operations densely and keeps them in a durable log of its own until
//! they are applied, so a crash in between replays them under the same
//! sequences (`src/server/api/outbox.rs`).
//!
//! The service device reads nothing: its checkpoint follows its inbox
//! head, so the DELIVERED receipts its messages cause are trimmed instead
//! of piling up.

use super::users::Dev;
use super::Broker;
use crate::store::{DeviceState, Store};
use crate::time::Time;
use crate::wire::Frame;

/// Where a service device's uplink stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServicePosition {
    /// Every sequence up to this one is applied (staged, maybe not durable).
    pub staged: u64,
    /// Every sequence up to this one is applied durably.
    pub durable: u64,
}

/// How a durable service operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceOutcome {
    /// Stored in the receiver's inbox.
    Stored {
        /// A device of the receiver was online (known only in this run).
        receiver_online: bool,
    },
    /// Refused with this error code (remembered for the last 256 refusals).
    Rejected {
        /// The error code.
        code: u64,
    },
}

/// Why a service operation was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A client is logged in as the service device.
    #[error("a client session is logged in as the service device")]
    DeviceInUse,
    /// Not the next sequence of the device.
    #[error("sequence {got} is not the next one ({want})")]
    OutOfOrder {
        /// Expected.
        want: u64,
        /// Given.
        got: u64,
    },
    /// The store could not be read; try again later.
    #[error("store read failed: {0}")]
    Store(String),
}

impl<S: Store> Broker<S> {
    fn service_dev(&mut self, user: u64, device: u32) -> Result<&mut Dev, ServiceError> {
        let u = self.user_mut(user).map_err(ServiceError::Store)?;
        Ok(u.devices
            .get_or_insert_with(device, || Dev::new(DeviceState::default())))
    }

    /// The service device's position (loading it from the store if needed).
    pub fn service_position(
        &mut self,
        user: u64,
        device: u32,
    ) -> Result<ServicePosition, ServiceError> {
        let d = self.service_dev(user, device)?;
        Ok(ServicePosition {
            staged: d.staged.applied,
            durable: d.durable.applied,
        })
    }

    /// Applies `frame` (a SEND, READ or RECALL whose own `seq` is `seq`) as
    /// the next uplink operation of the service device (`user`, `device`).
    pub fn apply_service(
        &mut self,
        now: Time,
        user: u64,
        device: u32,
        seq: u64,
        frame: Frame,
    ) -> Result<(), ServiceError> {
        let d = self.service_dev(user, device)?;
        if d.session.is_some() {
            return Err(ServiceError::DeviceInUse);
        }
        let want = d.staged.applied + 1;
        if seq != want {
            return Err(ServiceError::OutOfOrder { want, got: seq });
        }
        // Session id 0 is never given to a session: refusals and retries
        // that would address one have no one to tell.
        self.apply_uplink(now, 0, user, device, seq, frame);
        let applied = self.service_dev(user, device)?.staged.applied;
        if applied != seq {
            return Err(ServiceError::Store(
                "the receiver's inbox could not be read".into(),
            ));
        }
        // The service device reads nothing of its own inbox.
        let head = self.user_mut(user).map_or(0, |u| u.meta.head);
        self.advance_checkpoint(now, user, device, head);
        Ok(())
    }

    /// The outcome of sequence `seq` of the service device, once durable.
    pub fn service_outcome(&self, user: u64, device: u32, seq: u64) -> Option<ServiceOutcome> {
        let d = self.users.get(&user)?.devices.get(&device)?;
        if seq > d.durable.applied {
            return None;
        }
        Some(match d.durable.rejected.iter().find(|(s, _)| *s == seq) {
            Some((_, code)) => ServiceOutcome::Rejected { code: *code },
            None => ServiceOutcome::Stored {
                receiver_online: d.online_at(seq),
            },
        })
    }
}
