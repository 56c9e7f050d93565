//! Notable things the broker reports to its driver, for logging.

use super::Peer;
use crate::wire::ErrorCode;

/// Notable things for the driver to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A device logged in.
    LoggedIn {
        /// Session id.
        session: u64,
        /// User.
        user: u64,
        /// Device.
        device: u32,
        /// Where it logged in from.
        peer: Peer,
    },
    /// A session ended.
    Closed {
        /// Session id.
        session: u64,
        /// User.
        user: u64,
        /// Device.
        device: u32,
        /// Why, as a KICK reason code.
        reason: u64,
    },
    /// A login was refused.
    LoginRefused {
        /// Where the login came from.
        peer: Peer,
        /// Error code sent.
        code: ErrorCode,
    },
    /// A device stopped answering; its entries stay stored.
    Unreachable {
        /// User.
        user: u64,
        /// Device.
        device: u32,
    },
    /// A batch failed to commit; staged state was rolled back.
    CommitFailed {
        /// The error text.
        error: String,
    },
    /// A store read failed while serving a request.
    StoreReadFailed {
        /// The error text.
        error: String,
    },
}
