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
//! - [`logging`]: `-v` counting into a log level, for every binary.

pub mod args;
pub mod conv_output;
pub mod convs;
pub mod history;
pub mod logging;
pub mod output;
pub mod pull;
pub mod read;
pub mod recv;
pub mod send;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern_core::wire::ErrorCode;
use thiserror::Error;

use crate::client::{Client, ClientError, ClientOptions};

pub use args::{parse_server, parse_token, DEFAULT_PORT};
pub use convs::{convs, ConvsArgs, ConvsOutcome};
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
    /// Server address.
    pub server: SocketAddr,
    /// Login token.
    pub token: Vec<u8>,
    /// The server's seal key (raw UDP is sealed when set).
    pub seal_key: Option<tern_core::seal::PublicKey>,
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
        let mut opts = ClientOptions::new(self.server, self.token.clone());
        opts.seal_key = self.seal_key;
        opts.state_dir = self.state_dir.clone();
        opts.manual_release = manual_release;
        opts.auto_pull = auto_pull;
        opts.connect_timeout = timeout;
        Client::connect(opts)
            .await
            .map_err(|e| client_error(e, self.server))
    }
}

/// Why a command failed. Each message says what to do about it.
#[derive(Debug, Error)]
pub enum CliError {
    /// The server address could not be understood or resolved.
    #[error("bad server address {0}")]
    BadServer(String),
    /// `quic://` was asked for.
    #[error("quic:// is not supported yet by this client; use udp://HOST:PORT")]
    QuicUnsupported,
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
fn client_error(e: ClientError, server: SocketAddr) -> CliError {
    match e {
        ClientError::LoginRefused(code) => CliError::LoginRefused(error_code_name(code)),
        ClientError::Rejected(code) => CliError::Rejected(error_code_name(code)),
        ClientError::ConnectTimeout(_) => CliError::Timeout(format!(
            "no answer from udp://{server}: is ternd running there and reachable?"
        )),
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
