//! The conversation API of [`Client`] (protocol version 2,
//! `proto-spec/conversations.md`): posting into a conversation, read
//! positions, recall and deletion by `conv_seq`, the conversation list and
//! history pages, and what this device holds of each conversation.
//!
//! History and the list are kept in the client's local history (the state
//! folder, or memory, see [`HistoryStore`](super::HistoryStore)): a page
//! this device holds is served without asking the server, and the list is
//! fetched incrementally from the version last saved.

use bytes::Bytes;
use tern_core::client::Outgoing;
use tokio::sync::oneshot;

use super::{
    Client, ClientError, Command, ConvList, ConvRef, DeleteScope, Held, HistoryPage, ListItem, Sent,
};

/// Where [`Client::history`] pages came from, since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Pages served from the local history, without asking the server.
    pub pages_local: u64,
    /// Pages the server sent (requests, the missing ranges of a request,
    /// and short gaps filled by the client itself).
    pub pages_fetched: u64,
    /// Records in those pages.
    pub records_fetched: u64,
}

/// The conversation list as this device last stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredList {
    /// One item per conversation, newest change first: each is the state
    /// the server last listed (unread count, read position, preview).
    pub items: Vec<ListItem>,
    /// The list version it is complete up to (0: never fetched).
    pub list_version: u64,
}

impl Client {
    /// One request to the driver task and its answer (the handle's).
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClientError> {
        self.handle().ask(make).await
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

    /// Deletes `conv`, for this user only, up to the newest record this
    /// device knows of (every record when it knows none); it is hidden from
    /// the list until the next message. Every device of the user removes
    /// the same records: the deletion names that `conv_seq`.
    pub async fn delete_conversation(&self, conv: ConvRef) -> Result<Sent, ClientError> {
        let target = self.held(conv).await?.map_or(0, |h| h.last_seq);
        self.submit(Outgoing::Delete {
            conv,
            scope: DeleteScope::Conversation,
            target,
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
    /// (0: all), with unread counts and, with `preview_len` > 0 (at most
    /// 64), the first bytes of each newest message. The answer is also
    /// stored (see [`Client::stored_conversations`]).
    pub async fn conversations(
        &self,
        since: u64,
        preview_len: u8,
    ) -> Result<ConvList, ClientError> {
        self.handle().conversations(since, preview_len).await
    }

    /// The conversations changed since the list version this device saved
    /// last (everything, the first time): one round trip at login, however
    /// long the device was away (the server pages 512 items per answer).
    /// The items are stored, then the new version saved, so
    /// [`Client::stored_conversations`] has the whole list afterwards. Call
    /// it again whenever an entry changes the list ([`Change::changes_list`]).
    ///
    /// [`Change::changes_list`]: super::Change::changes_list
    pub async fn sync_conversations(&self, preview_len: u8) -> Result<ConvList, ClientError> {
        self.handle().sync_conversations(preview_len).await
    }

    /// The conversation list as stored by the last list fetch, with its
    /// version; no network.
    pub async fn stored_conversations(&self) -> Result<StoredList, ClientError> {
        self.handle().stored_conversations().await
    }

    /// The newest `max` (1 … 64) records of `conv` below `before` (0: the
    /// newest), ascending, without those deleted for this user: scroll up
    /// by asking `before` = the lowest `conv_seq` of the last page.
    ///
    /// Served from the local history when this device holds every record
    /// of the page; otherwise only the missing ranges are fetched (and
    /// stored), newest first. `before = 0` means past the newest record
    /// this device knows of; the first page of a conversation it knows
    /// nothing of comes from the server.
    pub async fn history(
        &self,
        conv: ConvRef,
        before: u64,
        max: u64,
    ) -> Result<HistoryPage, ClientError> {
        self.handle().history(conv, before, max).await
    }

    /// What this device holds of `conv`'s storage timeline: the ranges its
    /// local history stores, the floor below which nothing can be fetched,
    /// the newest record it knows of; [`Held::missing`] gives the gaps.
    /// `None`: nothing known of `conv`.
    pub async fn held(&self, conv: ConvRef) -> Result<Option<Held>, ClientError> {
        self.ask(|tx| Command::Held(conv, tx)).await
    }

    /// The ranges of `conv` this device is missing, between the floor and
    /// the newest record it knows of (empty: it holds all of it).
    pub async fn missing(&self, conv: ConvRef) -> Result<Vec<(u64, u64)>, ClientError> {
        Ok(self
            .held(conv)
            .await?
            .map_or_else(Vec::new, |h| h.missing()))
    }

    /// How many history pages were served locally and fetched.
    pub async fn history_stats(&self) -> Result<HistoryStats, ClientError> {
        self.ask(Command::HistoryStats).await
    }
}
