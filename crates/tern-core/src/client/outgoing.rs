//! Operations a client sends on its uplink, before they get a sequence,
//! and the frame each travels in (version 2 ones, to a server that speaks
//! only version 1, as their version 1 equivalent where there is one).

use bytes::Bytes;

use crate::wire::{
    ConvKind, ConvRef, Delete, DeleteScope, Frame, GroupAction, GroupOp, MarkRead, Post, Read,
    Recall, Retract, Send,
};

/// One uplink operation. It gets its sequence when queued after login, and
/// its frame is built from that sequence each time it is transmitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A message.
    Send {
        /// Receiving user.
        to: u64,
        /// Conversation.
        conv: u64,
        /// Application message type.
        msg_type: u64,
        /// Payload.
        payload: Bytes,
    },
    /// "Read up to here".
    Read {
        /// Conversation.
        conv: u64,
        /// User whose messages were read.
        peer: u64,
        /// Their device that sent the last message read.
        target_device: u32,
        /// That device's sequence of the last message read.
        target_seq: u64,
    },
    /// Recall a message this device sent.
    Recall {
        /// Its receiver.
        to: u64,
        /// Its conversation.
        conv: u64,
        /// Its uplink sequence.
        target_seq: u64,
    },
    /// Version 2: a message into a conversation.
    Post {
        /// The conversation.
        conv: ConvRef,
        /// Application tag.
        topic: u64,
        /// Application message type.
        msg_type: u64,
        /// Payload.
        payload: Bytes,
    },
    /// Version 2: move this user's read position.
    MarkRead {
        /// The conversation.
        conv: ConvRef,
        /// Read up to this `conv_seq`.
        up_to: u64,
        /// With `receipt_seq`: the newest message read from the other user
        /// (0 and 0: no READ receipt).
        receipt_device: u32,
        /// Its uplink sequence.
        receipt_seq: u64,
    },
    /// Version 2: recall a message of this user for everyone.
    Retract {
        /// The conversation.
        conv: ConvRef,
        /// The message's `conv_seq`.
        target: u64,
    },
    /// Version 2: delete a message or a conversation for this user.
    Delete {
        /// The conversation.
        conv: ConvRef,
        /// Conversation (up to `target`) or one message.
        scope: DeleteScope,
        /// `conv_seq`.
        target: u64,
    },
    /// A group membership operation (`groups.md`): create (group 0; the
    /// new group's id comes back in the "created" entry naming this
    /// operation), add, remove, leave, set roles.
    Group {
        /// The group (0 to create one).
        group: u64,
        /// What to do.
        action: GroupAction,
        /// The users it applies to, at most `GROUP_OP_MAX_USERS`.
        users: Vec<u64>,
    },
}

impl Outgoing {
    /// Whether a version 1 server can carry it out. Others sent to one (the
    /// server turned out to speak only version 1) travel as a no-op READ of
    /// the user's own message and are reported refused.
    pub fn in_version_1(&self) -> bool {
        match self {
            Outgoing::Send { .. } | Outgoing::Read { .. } | Outgoing::Recall { .. } => true,
            Outgoing::Post { conv, .. } => conv.kind == ConvKind::Direct,
            Outgoing::MarkRead {
                conv, receipt_seq, ..
            } => conv.kind == ConvKind::Direct && *receipt_seq != 0,
            Outgoing::Retract { .. } | Outgoing::Delete { .. } | Outgoing::Group { .. } => false,
        }
    }

    /// The frame carrying this operation under `seq` in a session of
    /// protocol `version` (see [`Outgoing::in_version_1`]); `me` is this
    /// device's (user, device), for the version 1 no-op.
    pub fn frame_for(&self, seq: u64, version: u8, me: (u64, u32)) -> Frame {
        if version != crate::wire::VERSION {
            return self.frame(seq);
        }
        let noop = Frame::Read(Read {
            seq,
            conv: 0,
            peer: me.0,
            target_device: me.1,
            target_seq: 1,
        });
        match self.clone() {
            Outgoing::Post {
                conv,
                topic,
                msg_type,
                payload,
            } if conv.kind == ConvKind::Direct => Frame::Send(Send {
                seq,
                to: conv.id,
                conv: topic,
                msg_type,
                payload,
            }),
            Outgoing::MarkRead {
                conv,
                receipt_device,
                receipt_seq,
                ..
            } if conv.kind == ConvKind::Direct && receipt_seq != 0 => Frame::Read(Read {
                seq,
                conv: 0,
                peer: conv.id,
                target_device: receipt_device,
                target_seq: receipt_seq,
            }),
            Outgoing::Post { .. }
            | Outgoing::MarkRead { .. }
            | Outgoing::Retract { .. }
            | Outgoing::Delete { .. }
            | Outgoing::Group { .. } => noop,
            v1 => v1.frame(seq),
        }
    }

    /// The frame carrying this operation under `seq`, as defined (version 2
    /// operations in version 2 frames).
    pub fn frame(&self, seq: u64) -> Frame {
        match self.clone() {
            Outgoing::Send {
                to,
                conv,
                msg_type,
                payload,
            } => Frame::Send(Send {
                seq,
                to,
                conv,
                msg_type,
                payload,
            }),
            Outgoing::Read {
                conv,
                peer,
                target_device,
                target_seq,
            } => Frame::Read(Read {
                seq,
                conv,
                peer,
                target_device,
                target_seq,
            }),
            Outgoing::Recall {
                to,
                conv,
                target_seq,
            } => Frame::Recall(Recall {
                seq,
                to,
                conv,
                target_seq,
            }),
            Outgoing::Post {
                conv,
                topic,
                msg_type,
                payload,
            } => Frame::Post(Post {
                seq,
                conv,
                topic,
                msg_type,
                payload,
            }),
            Outgoing::MarkRead {
                conv,
                up_to,
                receipt_device,
                receipt_seq,
            } => Frame::MarkRead(MarkRead {
                seq,
                conv,
                up_to,
                receipt_device,
                receipt_seq,
            }),
            Outgoing::Retract { conv, target } => Frame::Retract(Retract { seq, conv, target }),
            Outgoing::Delete {
                conv,
                scope,
                target,
            } => Frame::Delete(Delete {
                seq,
                conv,
                scope,
                target,
            }),
            Outgoing::Group {
                group,
                action,
                users,
            } => Frame::GroupOp(GroupOp {
                seq,
                group,
                action,
                users,
            }),
        }
    }
}
