//! The Rust client library: a thin async driver around the core's
//! [`ClientConn`](tern_core::client::ClientConn).
//!
//! ```no_run
//! # async fn demo(token: Vec<u8>, seal_key: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use tern::client::{Client, ClientOptions, Event};
//! let mut opts = ClientOptions::new("127.0.0.1:7400".parse()?, token);
//! // The key `ternd seal-key` prints: the session is encrypted and the
//! // server authenticated (servers require it by default).
//! opts.seal_key = Some(seal_key.parse()?);
//! let mut client = Client::connect(opts).await?;
//! let sent = client.send(42, 7, 0, "hello".into()).await?;
//! println!("stored as #{} (receiver online: {})", sent.seq, sent.receiver_online);
//! while let Some(Event::Entry(e)) = client.recv().await {
//!     println!("{:?}", e);
//! }
//! # Ok(()) }
//! ```
//!
//! Conversations (protocol version 2, `proto-spec/conversations.md`): a
//! history per conversation, the conversation list, read positions on
//! every device. The client keeps a local history (see
//! [`HistoryStore`]): pages it holds are served without the network, and
//! only missing ranges are fetched.
//!
//! ```no_run
//! # async fn demo(mut client: tern::client::Client) -> Result<(), tern::client::ClientError> {
//! use tern::client::{Change, ConvRef, Event};
//! let bob = ConvRef::direct(2);
//! client.post(bob, 0, 0, "hi".into()).await?;
//! let changed = client.sync_conversations(32).await?; // since the saved list version
//! for item in client.stored_conversations().await?.items {
//!     println!("{}: {} unread", item.conv, item.unread);
//! }
//! let page = client.history(bob, 0, 50).await?; // newest 50, oldest first
//! if let Some(oldest) = page.records.first() {
//!     let _older = client.history(bob, oldest.conv_seq, 50).await?;
//! }
//! println!("missing: {:?}", client.missing(bob).await?);
//! client.mark_read(bob, page.end.high, None).await?;
//! while let Some(Event::Entry(e)) = client.recv().await {
//!     if let Change::Read { conv, up_to, elsewhere: true, .. } = Change::of(&e, client.identity()) {
//!         println!("{conv} read up to #{up_to} on another device");
//!     }
//! }
//! # let _ = changed; Ok(()) }
//! ```
//!
//! Over QUIC (`proto-spec/quic.md`), with the certificate fingerprint
//! `ternd` prints at start:
//!
//! ```no_run
//! # async fn demo(token: Vec<u8>, fingerprint: &str) -> Result<(), tern::client::ClientError> {
//! use tern::client::{Client, ClientOptions, ServerTrust};
//! let mut opts = ClientOptions::with_server("quic://127.0.0.1:7401".parse().unwrap(), token);
//! opts.quic.trust = Some(ServerTrust::fingerprint(fingerprint)?);
//! let client = Client::connect(opts).await?;
//! # Ok(()) }
//! ```

mod changes;
mod conversations;
mod driver;
mod driver_convs;
mod driver_groups;
mod groups;
mod handle;
mod history_rows;
mod history_store;
mod keyed;
mod ops;
mod outbox;
mod queue;
mod state;
mod transport;

pub use changes::Change;
pub use conversations::{HistoryStats, StoredList};
pub use groups::{group, CREATED_WAIT, MEMBERS_TRIES, MEMBERS_WAIT};
pub use handle::{ClientHandle, Outgoing};
pub use history_store::{HistoryStore, MEMORY_CONVS, MEMORY_RECORDS_PER_CONV};
pub use keyed::{KeyedOutcome, KeyedRecord, KeyedState, Settled, MAX_TAG};
pub use outbox::OutboxError;
pub use tern_core::client::{ConvList, Held, HistoryPage, MembersPage};
pub use tern_core::seal::PublicKey as SealKey;
pub use tern_core::wire::{
    ConvKind, ConvRef, DeleteScope, Entry, GroupAction, GroupEvent, GroupEventKind, GroupRole,
    ListItem, Member, ReadCounts, ReceiptStatus, Record, RecordBody, Summary, SummaryEnd, SyncBody,
};
pub use transport::{AddrParseError, QuicOptions, ServerAddr, ServerTrust, Transport};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// How to reach and log in to a server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Server address: its UDP port, or its QUIC port with
    /// [`Transport::Quic`].
    pub server: SocketAddr,
    /// Raw UDP (the default) or QUIC; delivery semantics are identical.
    pub transport: Transport,
    /// QUIC only: how the server certificate is verified.
    pub quic: QuicOptions,
    /// Raw UDP: the server's seal key (`ternd seal-key` prints it). When
    /// set, the session is sealed: a Noise handshake authenticates the
    /// server and every packet is encrypted. Servers require it by default
    /// (`[seal] policy = "required"`). Ignored over QUIC, which has TLS.
    pub seal_key: Option<SealKey>,
    /// Login token (raw bytes; `ternd token` prints them as hex).
    pub token: Vec<u8>,
    /// Folder for the durable outbox, checkpoint and local history
    /// (records, held ranges, the conversation list: [`HistoryStore`]);
    /// `None`: memory only (the local history then keeps at most
    /// [`MEMORY_RECORDS_PER_CONV`] records of [`MEMORY_CONVS`]
    /// conversations).
    pub state_dir: Option<PathBuf>,
    /// The application calls [`Client::release`] after processing each
    /// entry; otherwise an entry is released once [`Client::recv`] has
    /// returned it (entries still queued in the library are not). While a
    /// backlog is pulled, the next page is asked for once every entry
    /// received so far is released (the PULL acknowledges up to there), so
    /// an application must not wait for more entries before releasing.
    pub manual_release: bool,
    /// Pull a large backlog automatically (otherwise only counters arrive).
    pub auto_pull: bool,
    /// How long [`Client::connect`] waits for the first login.
    pub connect_timeout: Duration,
    /// Protocol version to log in with: 2 (conversations, history, the
    /// list; the default) or 1. A version 2 client falls back to 1 by
    /// itself against a server that speaks only 1 ([`Event::Downgraded`]).
    pub version: u8,
}

impl ClientOptions {
    /// Defaults: raw UDP, memory only, automatic release and pull, 10 s to
    /// connect.
    pub fn new(server: SocketAddr, token: Vec<u8>) -> Self {
        ClientOptions {
            server,
            transport: Transport::Udp,
            quic: QuicOptions::default(),
            seal_key: None,
            token,
            state_dir: None,
            manual_release: false,
            auto_pull: true,
            connect_timeout: Duration::from_secs(10),
            version: tern_core::wire::VERSION_2,
        }
    }

    /// As [`ClientOptions::new`], for a `udp://` or `quic://` address. Over
    /// QUIC, the host as written becomes the TLS server name; set
    /// `quic.trust` before connecting.
    pub fn with_server(server: ServerAddr, token: Vec<u8>) -> Self {
        let mut o = ClientOptions::new(server.addr, token);
        o.transport = server.transport;
        if server.transport == Transport::Quic {
            o.quic.server_name = Some(server.host);
        }
        o
    }

    /// The server address with its transport.
    pub fn server_addr(&self) -> ServerAddr {
        ServerAddr {
            transport: self.transport,
            addr: self.server,
            host: self
                .quic
                .server_name
                .clone()
                .unwrap_or_else(|| self.server.ip().to_string()),
        }
    }
}

/// What [`Client::send`] resolves to once the server has stored the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The message's uplink sequence: with user and device, its global id.
    pub seq: u64,
    /// A device of the receiver was online, so the message is being pushed;
    /// otherwise this was the pseudo-ACK of an offline store.
    pub receiver_online: bool,
}

/// Things the application receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A sync-timeline entry (a message, receipt, recall, or, with
    /// protocol version 2, a read position or deletion from another device
    /// of this user), exactly once, in order.
    Entry(Entry),
    /// The server speaks only protocol version 1: the client logged in with
    /// it; conversations, history and the list are unavailable.
    Downgraded,
    /// Logged in (again); `pull_mode` means a large backlog is being pulled.
    Connected {
        /// User.
        user: u64,
        /// Device.
        device: u32,
        /// Inbox head at login.
        head: u64,
        /// Where delivery resumed.
        checkpoint: u64,
        /// The backlog is pulled in pages rather than pushed.
        pull_mode: bool,
    },
    /// The session was lost; reconnecting with backoff.
    Disconnected,
    /// New entries exist up to `head` (pull mode).
    Notify {
        /// Inbox head.
        head: u64,
    },
    /// The server could not store this client's operations: its disk is
    /// full or failing (ERROR 12, StorageFailure). Nothing is lost: pending
    /// sends stay queued and are resent until the server stores them, and
    /// their `send` futures keep waiting. Shown to a user as "server storage
    /// unavailable, retrying".
    StorageUnavailable {
        /// The server's words, if any.
        reason: String,
    },
    /// A pull page ended; `end` means the backlog is drained.
    PageEnd {
        /// Highest sequence in the page.
        last: u64,
        /// Nothing lies past `last`.
        end: bool,
    },
}

/// Errors of the client library.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The durable state failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// No login within the connect timeout.
    #[error("no answer from {0} within the connect timeout")]
    ConnectTimeout(SocketAddr),
    /// The server refused the token (code 5: bad token, 6: expired).
    #[error("login refused by the server (error code {0})")]
    LoginRefused(u64),
    /// The server refused the operation (stable error code).
    #[error("refused by the server (error code {0})")]
    Rejected(u64),
    /// The send queue is full; wait for acknowledgements.
    #[error("send queue full")]
    QueueFull,
    /// The session was closed (logout, or replaced by another login).
    #[error("session closed (kick reason {0})")]
    Closed(u64),
    /// The client task has stopped.
    #[error("client stopped")]
    Stopped,
    /// QUIC could not be set up or its handshake failed (for instance, the
    /// server certificate does not match the pin or the CA file).
    #[error("QUIC: {0}")]
    Quic(String),
    /// A keyed operation's tag is longer than [`MAX_TAG`].
    #[error("tag of {0} bytes is longer than {MAX_TAG}")]
    TagTooLong(usize),
    /// The server speaks only protocol version 1: no conversations,
    /// history or list.
    #[error("the server speaks only protocol version 1 (no conversations)")]
    NotSupported,
    /// An answer the client waits for did not come (see the method).
    #[error("no answer: {0}")]
    NoAnswer(&'static str),
}

pub(crate) enum Command {
    Submit(Outgoing, oneshot::Sender<Result<Sent, ClientError>>),
    WaitDelivered(u64, oneshot::Sender<()>),
    Summary(oneshot::Sender<(Vec<Summary>, SummaryEnd)>),
    Pull,
    Release(u64),
    ReleaseDurable(u64, oneshot::Sender<()>),
    Rebind(oneshot::Sender<std::io::Result<SocketAddr>>),
    Close(oneshot::Sender<()>),
    SubmitKeyed(Outgoing, Bytes, oneshot::Sender<Result<u64, ClientError>>),
    KeyedRecords(oneshot::Sender<Result<Vec<KeyedRecord>, ClientError>>),
    KeyedOutcomes(oneshot::Sender<mpsc::UnboundedReceiver<KeyedOutcome>>),
    ForgetKeyed(Vec<u64>, oneshot::Sender<Result<(), ClientError>>),
    List(
        driver_convs::Since,
        u8,
        oneshot::Sender<Result<ConvList, ClientError>>,
    ),
    LocalList(oneshot::Sender<(Vec<ListItem>, u64)>),
    HistoryStats(oneshot::Sender<HistoryStats>),
    History(
        ConvRef,
        u64,
        u64,
        oneshot::Sender<Result<HistoryPage, ClientError>>,
    ),
    Held(ConvRef, oneshot::Sender<Option<Held>>),
    GroupCreated(u64, oneshot::Sender<u64>),
    /// Group, after, max, read_at (0: all members), waiter.
    Members(
        u64,
        u64,
        u64,
        u64,
        oneshot::Sender<Result<tern_core::client::MembersPage, ClientError>>,
    ),
    /// Group, low, count, waiter.
    ReadCounts(
        u64,
        u64,
        u8,
        oneshot::Sender<Result<tern_core::wire::ReadCounts, ClientError>>,
    ),
}

/// A connected client. Dropping it stops the background task.
pub struct Client {
    cmds: mpsc::Sender<Command>,
    events: Arc<queue::EventQueue>,
    user: u64,
    device: u32,
}

impl Client {
    /// Connects and waits for the first login.
    pub async fn connect(opts: ClientOptions) -> Result<Client, ClientError> {
        let (cmds, events, ready) = driver::spawn(opts.clone()).await?;
        let (user, device) = match tokio::time::timeout(opts.connect_timeout, ready).await {
            Ok(Ok(Ok(id))) => id,
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(_)) => return Err(ClientError::Stopped),
            Err(_) => return Err(ClientError::ConnectTimeout(opts.server)),
        };
        Ok(Client {
            cmds,
            events,
            user,
            device,
        })
    }

    /// Starts without waiting for the first login, so that an application
    /// can queue operations while the server is unreachable: they are
    /// stored (with a state folder) and sent once logged in. [`Event::Connected`]
    /// says who logged in ([`Client::identity`] stays `(0, 0)`); a refused
    /// login stops the client ([`Client::recv`] returns `None`).
    pub async fn start(opts: ClientOptions) -> Result<Client, ClientError> {
        let (cmds, events, _ready) = driver::spawn(opts).await?;
        Ok(Client {
            cmds,
            events,
            user: 0,
            device: 0,
        })
    }

    /// This client's (user, device).
    pub fn identity(&self) -> (u64, u32) {
        (self.user, self.device)
    }

    /// A handle other tasks send and release through while this one
    /// receives.
    pub fn handle(&self) -> ClientHandle {
        ClientHandle {
            cmds: self.cmds.clone(),
        }
    }

    pub(crate) async fn submit(&self, op: Outgoing) -> Result<Sent, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Command::Submit(op, tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Sends a message; resolves once the server has stored it durably.
    pub async fn send(
        &self,
        to: u64,
        conv: u64,
        msg_type: u64,
        payload: Bytes,
    ) -> Result<Sent, ClientError> {
        self.submit(Outgoing::Send {
            to,
            conv,
            msg_type,
            payload,
        })
        .await
    }

    /// Tells `peer` this user has read `conv` up to their message
    /// (`target_device`, `target_seq`).
    pub async fn read_up_to(
        &self,
        conv: u64,
        peer: u64,
        target_device: u32,
        target_seq: u64,
    ) -> Result<Sent, ClientError> {
        self.submit(Outgoing::Read {
            conv,
            peer,
            target_device,
            target_seq,
        })
        .await
    }

    /// Recalls a message this device sent.
    pub async fn recall(&self, to: u64, conv: u64, target_seq: u64) -> Result<Sent, ClientError> {
        self.submit(Outgoing::Recall {
            to,
            conv,
            target_seq,
        })
        .await
    }

    /// Resolves once a receiver device has acknowledged the message `seq`
    /// sent from this device (a DELIVERED receipt arrived). Receipts are
    /// inbox entries: with more than a window (256) of entries unread, the
    /// server holds the later ones back until the application reads.
    pub async fn wait_delivered(&self, seq: u64) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Command::WaitDelivered(seq, tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// Per-conversation counters past this device's checkpoint.
    pub async fn summary(&self) -> Result<(Vec<Summary>, SummaryEnd), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Command::Summary(tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// Starts pulling the backlog page by page; entries arrive through [`Client::recv`].
    pub async fn pull(&self) -> Result<(), ClientError> {
        self.cmds
            .send(Command::Pull)
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Marks entries up to `seq` processed (with `manual_release`).
    pub async fn release(&self, seq: u64) -> Result<(), ClientError> {
        self.cmds
            .send(Command::Release(seq))
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Moves to a new local port, as a phone switching networks does. The
    /// session continues. Over QUIC the connection migrates to the new port
    /// (QUIC path validation), and the broker sees no change at all.
    pub async fn rebind(&self) -> Result<SocketAddr, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Command::Rebind(tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        Ok(rx.await.map_err(|_| ClientError::Stopped)??)
    }

    /// Next event; `None` once the client has stopped. Cancel-safe.
    ///
    /// Without `manual_release`, an inbox entry counts as processed (the
    /// server is acknowledged and the checkpoint saved) once this returns it,
    /// not before: entries still queued when the client closes or the
    /// process dies are delivered again. An application that never calls
    /// this (send-only) never stalls its sends; the server then holds back
    /// entries past a window of unread ones (256), so DELIVERED receipts
    /// past that point wait too (see [`Client::wait_delivered`]).
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Logs out and stops.
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Close(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }
}
