//! The conversation API of [`Client`] (protocol version 2,
//! `proto-spec/conversations.md`): posting into a conversation, read
//! positions, recall and deletion by `conv_seq`, the conversation list and
//! history pages, and what this device holds of each conversation.

use bytes::Bytes;
use tern_core::client::Outgoing;
use tokio::sync::oneshot;

use super::{
    Client, ClientError, Command, ConvList, ConvRef, DeleteScope, Held, HistoryPage, Sent,
};

impl Client {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(make(tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// Posts a message into `conv` (a direct conversation names the other
    /// user); resolves once the server stored it. Its `conv_seq` arrives
    /// with this user's own copy in the sync timeline ([`Client::recv`]).
    pub async fn post(
        &self,
        conv: ConvRef,
        topic: u64,
        msg_type: u64,
        payload: Bytes,
    ) -> Result<Sent, ClientError> {
        self.submit(Outgoing::Post {
            conv,
            topic,
            msg_type,
            payload,
        })
        .await
    }

    /// Moves this user's read position in `conv` to `up_to` (a `conv_seq`):
    /// every device of the user clears the badge. With `receipt`, the other
    /// user's device and uplink sequence of the newest message read, a
    /// READ receipt goes to them.
    pub async fn mark_read(
        &self,
        conv: ConvRef,
        up_to: u64,
        receipt: Option<(u32, u64)>,
    ) -> Result<Sent, ClientError> {
        let (receipt_device, receipt_seq) = receipt.unwrap_or((0, 0));
        self.submit(Outgoing::MarkRead {
            conv,
            up_to,
            receipt_device,
            receipt_seq,
        })
        .await
    }

    /// Recalls this user's message `conv_seq` of `conv` for everyone.
    pub async fn retract(&self, conv: ConvRef, conv_seq: u64) -> Result<Sent, ClientError> {
        self.submit(Outgoing::Retract {
            conv,
            target: conv_seq,
        })
        .await
    }

    /// Deletes `conv`, for this user only, up to its newest record; it is
    /// hidden from the list until the next message.
    pub async fn delete_conversation(&self, conv: ConvRef) -> Result<Sent, ClientError> {
        self.submit(Outgoing::Delete {
            conv,
            scope: DeleteScope::Conversation,
            target: 0,
        })
        .await
    }

    /// Deletes message `conv_seq` of `conv`, for this user only.
    pub async fn delete_message(&self, conv: ConvRef, conv_seq: u64) -> Result<Sent, ClientError> {
        self.submit(Outgoing::Delete {
            conv,
            scope: DeleteScope::Message,
            target: conv_seq,
        })
        .await
    }

    /// The conversations whose state changed since list version `since`
    /// (0: all), with unread counts and, with `preview_len` > 0, the first
    /// bytes of each newest message. Save the result's `list_version` and
    /// pass it next time.
    pub async fn conversations(
        &self,
        since: u64,
        preview_len: u8,
    ) -> Result<ConvList, ClientError> {
        self.ask(|tx| Command::List(since, preview_len, tx)).await?
    }

    /// The newest `max` (at most 64) records of `conv` below `before` (0:
    /// the newest): scroll up by asking `before` = the lowest one held.
    pub async fn history(
        &self,
        conv: ConvRef,
        before: u64,
        max: u64,
    ) -> Result<HistoryPage, ClientError> {
        self.ask(|tx| Command::History(conv, before, max, tx))
            .await?
    }

    /// What this device holds of `conv`'s storage timeline: the ranges it
    /// received, the floor below which nothing can be fetched, the newest
    /// record it knows of; `missing()` gives the gaps.
    pub async fn held(&self, conv: ConvRef) -> Result<Option<Held>, ClientError> {
        self.ask(|tx| Command::Held(conv, tx)).await
    }
}
