//! A cloneable handle on a [`Client`](super::Client) for other tasks, and
//! the keyed operations (`keyed.rs`) it submits.
//!
//! `Client::recv` takes `&mut self`, so one task reads events; any number
//! of others send, release, pull and ask for summaries through a handle.

use bytes::Bytes;
use tern_core::wire::{Summary, SummaryEnd};
use tokio::sync::{mpsc, oneshot};

pub use tern_core::client::Outgoing;

use super::driver_convs::Since;
use super::keyed::{KeyedOutcome, KeyedRecord, MAX_TAG};
use super::{ClientError, Command, Sent};
use super::{ConvList, ConvRef, HistoryPage, StoredList};

/// Sends commands to a client's task; cheap to clone.
#[derive(Clone)]
pub struct ClientHandle {
    pub(super) cmds: mpsc::Sender<Command>,
}

impl ClientHandle {
    /// One request to the driver task and its answer.
    pub(super) async fn ask<T>(
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

    /// Sends an operation; resolves once the server has stored it durably.
    pub async fn submit(&self, op: Outgoing) -> Result<Sent, ClientError> {
        self.ask(|tx| Command::Submit(op, tx)).await?
    }

    /// Stores `op` with the application's `tag` (at most [`MAX_TAG`] bytes)
    /// in one durable write and queues it; resolves to its id as soon as
    /// it is stored, long before the server settles it. The outcome comes
    /// through [`ClientHandle::keyed_outcomes`] and stays in the outbox
    /// (see [`ClientHandle::keyed_records`]) until forgotten.
    pub async fn submit_keyed(&self, op: Outgoing, tag: Bytes) -> Result<u64, ClientError> {
        if tag.len() > MAX_TAG {
            return Err(ClientError::TagTooLong(tag.len()));
        }
        self.ask(|tx| Command::SubmitKeyed(op, tag, tx)).await?
    }

    /// Every keyed operation the outbox holds, pending or settled.
    pub async fn keyed_records(&self) -> Result<Vec<KeyedRecord>, ClientError> {
        self.ask(Command::KeyedRecords).await?
    }

    /// From now on, each keyed operation the server settles is reported
    /// here (a later call replaces the earlier receiver). Settlements are
    /// durable before they are reported; one that happened before this call
    /// is found with [`ClientHandle::keyed_records`].
    pub async fn keyed_outcomes(
        &self,
    ) -> Result<mpsc::UnboundedReceiver<KeyedOutcome>, ClientError> {
        self.ask(Command::KeyedOutcomes).await
    }

    /// Deletes settled keyed rows by id.
    pub async fn forget_keyed(&self, ids: Vec<u64>) -> Result<(), ClientError> {
        self.ask(|tx| Command::ForgetKeyed(ids, tx)).await?
    }

    /// Marks entries up to `seq` processed (with `manual_release`).
    pub async fn release(&self, seq: u64) -> Result<(), ClientError> {
        self.cmds
            .send(Command::Release(seq))
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Marks entries up to `seq` processed and resolves once the checkpoint
    /// covering them is saved durably (at once without a state folder):
    /// after that, no restart delivers them again. An entry not received
    /// yet is covered once it arrives and is released.
    pub async fn release_durable(&self, seq: u64) -> Result<(), ClientError> {
        self.ask(|tx| Command::ReleaseDurable(seq, tx)).await
    }

    /// Resolves once a DELIVERED (or READ) receipt for `seq` of this device
    /// arrived (see `Client::wait_delivered`).
    pub async fn wait_delivered(&self, seq: u64) -> Result<(), ClientError> {
        self.ask(|tx| Command::WaitDelivered(seq, tx)).await
    }

    /// Per-conversation counters past this device's checkpoint.
    pub async fn summary(&self) -> Result<(Vec<Summary>, SummaryEnd), ClientError> {
        self.ask(Command::Summary).await
    }

    /// Starts pulling the backlog page by page.
    pub async fn pull(&self) -> Result<(), ClientError> {
        self.cmds
            .send(Command::Pull)
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// As [`Client::conversations`](super::Client::conversations).
    pub async fn conversations(
        &self,
        since: u64,
        preview_len: u8,
    ) -> Result<ConvList, ClientError> {
        self.ask(|tx| Command::List(Since::Given(since), preview_len, tx))
            .await?
    }

    /// As [`Client::sync_conversations`](super::Client::sync_conversations).
    pub async fn sync_conversations(&self, preview_len: u8) -> Result<ConvList, ClientError> {
        self.ask(|tx| Command::List(Since::Saved, preview_len, tx))
            .await?
    }

    /// As [`Client::stored_conversations`](super::Client::stored_conversations).
    pub async fn stored_conversations(&self) -> Result<StoredList, ClientError> {
        let (items, list_version) = self.ask(Command::LocalList).await?;
        Ok(StoredList {
            items,
            list_version,
        })
    }

    /// As [`Client::history`](super::Client::history).
    pub async fn history(
        &self,
        conv: ConvRef,
        before: u64,
        max: u64,
    ) -> Result<HistoryPage, ClientError> {
        self.ask(|tx| Command::History(conv, before, max, tx))
            .await?
    }

    /// Whether the client's task still runs.
    pub fn is_running(&self) -> bool {
        !self.cmds.is_closed()
    }
}
