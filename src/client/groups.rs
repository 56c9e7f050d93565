//! The group API of [`Client`] (protocol version 2,
//! `proto-spec/groups.md`): create a group, add and remove members, leave,
//! set roles, page through the members. Posting, reading, recalling and
//! history work on a group through the conversation API with
//! [`ConvRef::group`]-style references (`ConvRef { kind: Group, id }`).

use std::time::Duration;

use tern_core::client::{MembersPage, Outgoing};
use tern_core::wire::{ConvKind, ConvRef, GroupAction, ReadCounts};

use super::{Client, ClientError, ClientHandle, Command, Sent};

/// How long [`Client::create_group`] waits for the "created" entry after
/// the server stored the operation.
pub const CREATED_WAIT: Duration = Duration::from_secs(30);
/// How long one member page is waited for before it is asked again.
pub const MEMBERS_WAIT: Duration = Duration::from_secs(3);
/// Times a member page is asked for before giving up.
pub const MEMBERS_TRIES: u32 = 4;

/// The conversation reference of group `id`.
pub fn group(id: u64) -> ConvRef {
    ConvRef {
        kind: ConvKind::Group,
        id,
    }
}

impl Client {
    async fn group_op(
        &self,
        group: u64,
        action: GroupAction,
        users: &[u64],
    ) -> Result<Sent, ClientError> {
        self.submit(Outgoing::Group {
            group,
            action,
            users: users.to_vec(),
        })
        .await
    }

    /// Creates a group with this user as its owner and `members` (at most
    /// 32) as members; resolves with the group's id once the server stored
    /// it and this device received the "created" entry naming the
    /// operation. A user with a version 1 device registered gets no group
    /// entries: then this times out with [`ClientError::NoAnswer`] although
    /// the group exists (it is in the conversation list).
    pub async fn create_group(&self, members: &[u64]) -> Result<u64, ClientError> {
        let sent = self.group_op(0, GroupAction::Create, members).await?;
        let handle = self.handle();
        match tokio::time::timeout(CREATED_WAIT, handle.group_created(sent.seq)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::NoAnswer("the group's created entry")),
        }
    }

    /// Adds `users` to `group` (admins and the owner), as admins if
    /// `admin` (the owner only).
    pub async fn add_members(
        &self,
        group: u64,
        users: &[u64],
        admin: bool,
    ) -> Result<Sent, ClientError> {
        self.group_op(group, GroupAction::Add { admin }, users)
            .await
    }

    /// Removes `users` from `group` (admins and the owner).
    pub async fn remove_members(&self, group: u64, users: &[u64]) -> Result<Sent, ClientError> {
        self.group_op(group, GroupAction::Remove, users).await
    }

    /// Leaves `group` (not its owner).
    pub async fn leave_group(&self, group: u64) -> Result<Sent, ClientError> {
        self.group_op(group, GroupAction::Leave, &[]).await
    }

    /// Makes `users` admins of `group`, or members again (the owner only).
    pub async fn set_admins(
        &self,
        group: u64,
        users: &[u64],
        admin: bool,
    ) -> Result<Sent, ClientError> {
        self.group_op(group, GroupAction::SetRole { admin }, users)
            .await
    }

    /// Up to `max` (at most 64) current members of `group` with a user id
    /// above `after`; page on with `after = page.end.next_after` until
    /// `page.end.complete`.
    pub async fn members(
        &self,
        group: u64,
        after: u64,
        max: u64,
    ) -> Result<MembersPage, ClientError> {
        self.handle().members(group, after, max).await
    }

    /// Who read record `conv_seq` of `group`: up to `max` (at most 64)
    /// current members other than its author, with a user id above
    /// `after`, whose read position is at or past it. Page on as with
    /// [`Client::members`].
    pub async fn readers(
        &self,
        group: u64,
        conv_seq: u64,
        after: u64,
        max: u64,
    ) -> Result<MembersPage, ClientError> {
        self.handle().readers(group, conv_seq, after, max).await
    }

    /// "Read by N of M" for `count` (at most 64) records of `group` from
    /// `low`: for each, the current members other than its author whose
    /// read position is at or past it; `members` is M.
    pub async fn read_counts(
        &self,
        group: u64,
        low: u64,
        count: u8,
    ) -> Result<ReadCounts, ClientError> {
        self.handle().read_counts(group, low, count).await
    }
}

/// The group queries of a [`ClientHandle`], for tasks other than the one
/// receiving events (the sidecar's HTTP handlers); [`Client`]'s methods of
/// the same names call these.
impl ClientHandle {
    /// The id of the group the create operation this device's outbox
    /// stored under uplink sequence `seq` made: resolves once its "created"
    /// entry arrived (at once if it already has, in this run or, the
    /// record being in the local history, an earlier one). Not bounded in
    /// time: the caller is (see [`Client::create_group`]).
    pub async fn group_created(&self, seq: u64) -> Result<u64, ClientError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cmds
            .send(Command::GroupCreated(seq, tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// Up to `max` (at most 64) current members of `group` with a user id
    /// above `after`; page on with `after = page.end.next_after` until
    /// `page.end.complete`.
    pub async fn members(
        &self,
        group: u64,
        after: u64,
        max: u64,
    ) -> Result<MembersPage, ClientError> {
        self.member_page(group, after, max, 0).await
    }

    /// Who read record `conv_seq` of `group`: up to `max` (at most 64)
    /// current members other than its author, with a user id above
    /// `after`, whose read position is at or past it. Page on as with
    /// [`ClientHandle::members`].
    pub async fn readers(
        &self,
        group: u64,
        conv_seq: u64,
        after: u64,
        max: u64,
    ) -> Result<MembersPage, ClientError> {
        if conv_seq == 0 {
            return Ok(MembersPage {
                group,
                members: Vec::new(),
                end: tern_core::wire::MembersEnd {
                    request_id: 0,
                    group,
                    count: 0,
                    next_after: after,
                    complete: true,
                    members: 0,
                    last_seq: 0,
                },
            });
        }
        self.member_page(group, after, max, conv_seq).await
    }

    /// "Read by N of M" for `count` (at most 64) records of `group` from
    /// `low`: for each, the current members other than its author whose
    /// read position is at or past it; `members` is M.
    pub async fn read_counts(
        &self,
        group: u64,
        low: u64,
        count: u8,
    ) -> Result<ReadCounts, ClientError> {
        self.ask_again("the read counts", |tx| {
            Command::ReadCounts(group, low, count, tx)
        })
        .await
    }

    async fn member_page(
        &self,
        group: u64,
        after: u64,
        max: u64,
        read_at: u64,
    ) -> Result<MembersPage, ClientError> {
        self.ask_again("the member page", |tx| {
            Command::Members(group, after, max, read_at, tx)
        })
        .await
    }

    /// Asks the driver with a command made by `make`, and again when the
    /// answer is lost or replaced by a newer request, up to
    /// `MEMBERS_TRIES` times of `MEMBERS_WAIT` each.
    async fn ask_again<T>(
        &self,
        what: &'static str,
        make: impl Fn(tokio::sync::oneshot::Sender<Result<T, ClientError>>) -> Command,
    ) -> Result<T, ClientError> {
        for _ in 0..MEMBERS_TRIES {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.cmds
                .send(make(tx))
                .await
                .map_err(|_| ClientError::Stopped)?;
            match tokio::time::timeout(MEMBERS_WAIT, rx).await {
                Ok(Ok(answer)) => return answer,
                // Replaced or lost: ask again.
                Ok(Err(_)) | Err(_) => continue,
            }
        }
        Err(ClientError::NoAnswer(what))
    }
}
