//! What a sync-timeline entry changes, for an application that shows a
//! conversation list and read state. Everything arrives as
//! [`Event::Entry`](super::Event::Entry), exactly once and in order; this
//! names what each one means:
//!
//! ```no_run
//! # async fn demo(mut client: tern::client::Client) -> Result<(), tern::client::ClientError> {
//! use tern::client::{Change, Event};
//! let me = client.identity();
//! while let Some(Event::Entry(e)) = client.recv().await {
//!     match Change::of(&e, me) {
//!         Change::Read { conv, up_to, elsewhere: true, .. } => {
//!             println!("{conv} read up to #{up_to} on another device: clear the badge");
//!         }
//!         Change::Deleted { conv, .. } => println!("{conv} deleted for me"),
//!         _ => {}
//!     }
//!     if Change::of(&e, me).changes_list() {
//!         // Unread counts, previews, hidden flags: fetch what changed.
//!         let changed = client.sync_conversations(32).await?;
//!         println!("{} conversations changed", changed.items.len());
//!     }
//! }
//! # Ok(()) }
//! ```

use bytes::Bytes;

use super::{ConvRef, DeleteScope, Entry, ReceiptStatus, SyncBody};
use tern_core::wire::GroupEvent;

/// What one sync-timeline entry changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// A message: from another user, or (`own`) this user's own, sent from
    /// any of its devices (the sending device gets its copy too: it carries
    /// the message's `conv_seq`).
    Message {
        /// The conversation.
        conv: ConvRef,
        /// Its record (0: a version 1 entry, outside any history).
        conv_seq: u64,
        /// Sent by this user.
        own: bool,
        /// Application message type.
        msg_type: u64,
        /// Payload (empty when it was recalled before it was sent here).
        payload: &'a Bytes,
    },
    /// A DELIVERED or READ receipt for messages this user sent.
    Receipt {
        /// The conversation.
        conv: ConvRef,
        /// Delivered or read.
        status: ReceiptStatus,
        /// This user's device that sent them.
        target_device: u32,
        /// Covers that device's messages up to this uplink sequence.
        target_seq: u64,
    },
    /// A message was recalled for everyone: record `conv_seq` is now a
    /// recall marker (the local history already made it one).
    Recalled {
        /// The conversation.
        conv: ConvRef,
        /// The record.
        conv_seq: u64,
    },
    /// This user's read position in `conv` moved to `up_to`: every record
    /// up to it counts as read.
    Read {
        /// The conversation.
        conv: ConvRef,
        /// The new read position (`conv_seq`).
        up_to: u64,
        /// The device that moved it.
        device: u32,
        /// Moved on another device of this user (not this one).
        elsewhere: bool,
    },
    /// This user deleted, for itself, one message or the conversation up
    /// to `conv_seq` (the local history already hid or removed them).
    Deleted {
        /// The conversation.
        conv: ConvRef,
        /// One message, or the conversation up to `conv_seq`.
        scope: DeleteScope,
        /// The message, or the last record deleted (0: all).
        conv_seq: u64,
        /// The device that deleted.
        device: u32,
        /// Deleted on another device of this user.
        elsewhere: bool,
    },
    /// A group's membership changed (`proto-spec/groups.md`): record
    /// `conv_seq` of the group says who joined, left or changed role.
    Member {
        /// The group.
        conv: ConvRef,
        /// The record.
        conv_seq: u64,
        /// The user whose operation caused it.
        by: u64,
        /// What happened, to whom.
        event: GroupEvent,
    },
}

impl<'a> Change<'a> {
    /// What `e` changes, for the client whose identity is `me` (user,
    /// device: [`Client::identity`](super::Client::identity)).
    pub fn of(e: &'a Entry, me: (u64, u32)) -> Change<'a> {
        let (conv, elsewhere) = (e.conv, e.from_device != me.1);
        match &e.body {
            SyncBody::Message { msg_type, payload } => Change::Message {
                conv,
                conv_seq: e.conv_seq,
                own: e.from_user == me.0,
                msg_type: *msg_type,
                payload,
            },
            SyncBody::Receipt {
                status,
                target_device,
                target_seq,
            } => Change::Receipt {
                conv,
                status: *status,
                target_device: *target_device,
                target_seq: *target_seq,
            },
            SyncBody::Recall { .. } => Change::Recalled {
                conv,
                conv_seq: e.conv_seq,
            },
            SyncBody::Read => Change::Read {
                conv,
                up_to: e.conv_seq,
                device: e.from_device,
                elsewhere,
            },
            SyncBody::Deleted { scope } => Change::Deleted {
                conv,
                scope: *scope,
                conv_seq: e.conv_seq,
                device: e.from_device,
                elsewhere,
            },
            SyncBody::Member(event) => Change::Member {
                conv,
                conv_seq: e.conv_seq,
                by: e.from_user,
                event: *event,
            },
        }
    }

    /// The conversation it is about.
    pub fn conv(&self) -> ConvRef {
        match self {
            Change::Message { conv, .. }
            | Change::Receipt { conv, .. }
            | Change::Recalled { conv, .. }
            | Change::Read { conv, .. }
            | Change::Deleted { conv, .. }
            | Change::Member { conv, .. } => *conv,
        }
    }

    /// It changes this user's conversation list (unread count, preview,
    /// hidden flag, read position): everything but receipts.
    pub fn changes_list(&self) -> bool {
        !matches!(self, Change::Receipt { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_positions_and_deletions_from_other_devices_are_named() {
        let mut e = Entry {
            seq: 4,
            conv: ConvRef::direct(2),
            conv_seq: 17,
            topic: 0,
            from_user: 1,
            from_device: 2,
            from_seq: 5,
            time_ms: 0,
            body: SyncBody::Read,
        };
        let read = Change::of(&e, (1, 1));
        assert!(matches!(
            read,
            Change::Read {
                up_to: 17,
                device: 2,
                elsewhere: true,
                ..
            }
        ));
        assert!(read.changes_list());
        assert!(matches!(
            Change::of(&e, (1, 2)),
            Change::Read {
                elsewhere: false,
                ..
            }
        ));
        e.body = SyncBody::Deleted {
            scope: DeleteScope::Conversation,
        };
        assert!(matches!(
            Change::of(&e, (1, 1)),
            Change::Deleted { conv_seq: 17, .. }
        ));
        e.body = SyncBody::Receipt {
            status: ReceiptStatus::Read,
            target_device: 1,
            target_seq: 3,
        };
        assert!(!Change::of(&e, (1, 1)).changes_list());
        assert_eq!(Change::of(&e, (1, 1)).conv(), ConvRef::direct(2));
    }
}
