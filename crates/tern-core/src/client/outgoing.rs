//! Operations a client sends on its uplink, before they get a sequence.

use bytes::Bytes;

use crate::wire::{Frame, Read, Recall, Send};

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
}

impl Outgoing {
    /// The frame carrying this operation under `seq`.
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
        }
    }
}
