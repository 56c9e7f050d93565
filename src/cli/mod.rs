//! The library behind the `tern` command line: `send`, `recv` and `pull`
//! over the async [`Client`](crate::client::Client), plus argument parsing
//! helpers, the JSON shape of inbox entries and the logging setup every
//! Tern binary shares.
//!
//! Data goes to the writer passed in (stdout); status lines go to the
//! status writer (stderr), so `tern recv --json | jq` sees only JSON.
//!
//! - [`args`]: server addresses and tokens as typed on the command line.
//! - [`output`]: how entries and summaries are printed (text or JSON).
//! - [`send`], [`recv`], [`pull`]: the inbox commands.
//! - [`convs`], [`history`], [`read`]: conversations (protocol version 2):
//!   the list, history pages, the read position; [`conv_output`] prints them.
//! - [`group`]: groups (create, add, remove, leave, members, send).
//! - [`logging`]: `-v` counting into a log level, for every binary.

pub mod args;
pub mod conv_output;
pub mod convs;
pub mod group;
pub mod history;
pub mod logging;
pub mod output;
pub mod pull;
pub mod read;
pub mod recv;
pub mod send;

use std::path::PathBuf;
use std::time::Duration;

use tern_core::wire::ErrorCode;
use thiserror::Error;

use crate::client::{Client, ClientError, ClientOptions, ServerAddr, ServerTrust, Transport};

pub use args::{parse_server, parse_server_addr, parse_token, DEFAULT_PORT, DEFAULT_QUIC_PORT};
pub use convs::{convs, ConvsArgs, ConvsOutcome};
pub use group::{group_cmd, GroupArgs, GroupCmd};
pub use history::{history, HistoryArgs, HistoryOutcome};
pub use logging::{init_logging, Verbosity};
pub use output::{entry_line, EntryJson};
pub use pull::{pull, PullOpts, PullOutcome};
pub use read::{read, ReadArgs, ReadOutcome};
pub use recv::{recv, RecvOpts, RecvOutcome};
pub use send::{send, SendOpts, SendOutcome};

/// Where and as whom a command logs in: the part every command shares.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Server address and transport.
    pub server: ServerAddr,
    /// Login token.
    pub token: Vec<u8>,
    /// The server's seal key (raw UDP is sealed when set).
    pub seal_key: Option<tern_core::seal::PublicKey>,
    /// How the certificate of a QUIC server is verified (required for
    /// `quic://`, ignored for UDP).
    pub quic_trust: Option<ServerTrust>,
    /// Durable client state (checkpoint, outbox), if any.
    pub state_dir: Option<PathBuf>,
}

impl Connection {
    /// Logs in: entries are released by the command itself with
    /// `manual_release`, the backlog pulled by the library with
    /// `auto_pull`; the login may take up to `timeout`.
    async fn connect(
        &self,
        manual_release: bool,
        auto_pull: bool,
        timeout: Duration,
    ) -> Result<Client, CliError> {
        let mut opts = ClientOptions::with_server(self.server.clone(), self.token.clone());
        if self.server.transport == Transport::Quic {
            let trust = self.quic_trust.clone();
            opts.quic.trust =
                Some(trust.ok_or_else(|| CliError::QuicUnverified(self.server.to_string()))?);
        }
        opts.seal_key = self.seal_key;
        opts.state_dir = self.state_dir.clone();
        opts.manual_release = manual_release;
        opts.auto_pull = auto_pull;
        opts.connect_timeout = timeout;
        Client::connect(opts)
            .await
            .map_err(|e| client_error(e, &self.server))
    }
}

/// Why a command failed. Each message says what to do about it.
#[derive(Debug, Error)]
pub enum CliError {
    /// The server address could not be understood or resolved.
    #[error("bad server address {0}")]
    BadServer(String),
    /// `quic://` without a way to verify the server's certificate.
    #[error(
        "{0}: the server's certificate must be pinned or verified: pass --quic-fingerprint HEX \
         (the `quic certificate sha256` line `ternd serve` prints; or TERN_QUIC_FINGERPRINT) or \
         --quic-ca FILE (a PEM file with the CA or the server's certificate; or TERN_QUIC_CA)"
    )]
    QuicUnverified(String),
    /// The QUIC connection could not be set up.
    #[error("QUIC: {0}")]
    Quic(String),
    /// The token is not hex.
    #[error("bad token: {0} (pass the hex string printed by `ternd token`)")]
    BadToken(String),
    /// The server refused the login.
    #[error("login refused by the server: {0}")]
    LoginRefused(String),
    /// The server refused the operation for good.
    #[error("refused by the server: {0}")]
    Rejected(String),
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// The session ended (another login of the same device replaced it, or
    /// the client stopped).
    #[error("{0}")]
    Stopped(String),
    /// The client library failed.
    #[error(transparent)]
    Client(ClientError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Names an error code of the protocol.
pub fn error_code_name(code: u64) -> String {
    let name = match ErrorCode::from_code(code) {
        Some(ErrorCode::BadToken) => "bad token (wrong secret or malformed)",
        Some(ErrorCode::TokenExpired) => "token expired",
        Some(ErrorCode::UnknownRecipient) => "unknown recipient",
        Some(ErrorCode::PayloadTooLarge) => "payload too large",
        Some(ErrorCode::RateLimited) => "rate limited",
        Some(ErrorCode::ServerBusy) => "server busy (too many sessions or shutting down)",
        Some(ErrorCode::StorageFailure) => "storage failure",
        Some(ErrorCode::NotAllowed) => "not allowed",
        Some(ErrorCode::NoSuchMessage) => "no such message",
        Some(ErrorCode::NoSuchConversation) => "no such conversation (or not a member)",
        Some(ErrorCode::NotPermitted) => "not permitted by your role in the group",
        Some(ErrorCode::GroupFull) => "the group is full",
        Some(ErrorCode::SeqOutOfWindow) => "sequence out of window",
        Some(ErrorCode::SealRequired) => {
            "the server requires sealed sessions: pass --seal-key (see `ternd seal-key`)"
        }
        Some(other) => return format!("{other:?} (error code {code})"),
        None => return format!("error code {code}"),
    };
    format!("{name} (error code {code})")
}

/// The command-line view of a client library error.
fn client_error(e: ClientError, server: &ServerAddr) -> CliError {
    match e {
        ClientError::LoginRefused(code) => CliError::LoginRefused(error_code_name(code)),
        ClientError::Rejected(code) => CliError::Rejected(error_code_name(code)),
        ClientError::ConnectTimeout(_) => CliError::Timeout(format!(
            "no answer from {server}: is ternd running there and reachable?"
        )),
        ClientError::Quic(reason) if reason.contains("certificate") => CliError::Quic(format!(
            "{server}: {reason} (the certificate does not match --quic-fingerprint or --quic-ca; \
             compare with the `quic certificate sha256` line `ternd serve` prints)"
        )),
        ClientError::Quic(reason) => CliError::Quic(format!("{server}: {reason}")),
        ClientError::Closed(code) => CliError::Stopped(format!(
            "the server closed the session (kick reason {code}{})",
            if code == 1 {
                ": another login of this device replaced it"
            } else {
                ""
            }
        )),
        other => CliError::Client(other),
    }
}
