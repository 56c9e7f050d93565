//! The library behind the `tern` command line: `send`, `recv` and `pull`
//! over the async [`Client`](crate::client::Client), plus argument parsing
//! helpers and the JSON shape of inbox entries.
//!
//! Data goes to the writer passed in (stdout); status lines go to the
//! status writer (stderr), so `tern recv --json | jq` sees only JSON.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tern_core::wire::{Deliver, EntryBody, ErrorCode, ReceiptStatus, Summary, SummaryEnd};
use thiserror::Error;

use crate::client::{Client, ClientError, ClientOptions, Event};

/// Default UDP port of `ternd`.
pub const DEFAULT_PORT: u16 = 7400;

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

/// Parses `udp://HOST:PORT`, `HOST:PORT` or `HOST` (port 7400) and resolves it.
pub fn parse_server(s: &str) -> Result<SocketAddr, CliError> {
    let rest = match s.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "udp" => rest,
            "quic" => return Err(CliError::QuicUnsupported),
            other => {
                return Err(CliError::BadServer(format!(
                    "{s}: unknown scheme {other}:// (use udp://HOST:PORT)"
                )))
            }
        },
        None => s,
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(CliError::BadServer(format!("{s}: no host")));
    }
    let with_port = if rest.parse::<std::net::IpAddr>().is_ok() || !rest.contains(':') {
        // A bare host or a bare IP (IPv6 literals contain colons).
        match rest.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{DEFAULT_PORT}"),
            _ => format!("{rest}:{DEFAULT_PORT}"),
        }
    } else {
        rest.to_string()
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| CliError::BadServer(format!("{s}: {e}")))?
        .next()
        .ok_or_else(|| CliError::BadServer(format!("{s}: resolves to no address")))
}

/// Decodes a hex token.
pub fn parse_token(s: &str) -> Result<Vec<u8>, CliError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(CliError::BadToken("empty".into()));
    }
    hex::decode(t).map_err(|e| CliError::BadToken(format!("not hex: {e}")))
}

/// One inbox entry as printed by `tern recv --json`.
#[derive(Debug, Serialize)]
pub struct EntryJson<'a> {
    /// Inbox sequence.
    pub seq: u64,
    /// Conversation.
    pub conv: u64,
    /// User that caused the entry.
    pub from_user: u64,
    /// Their device.
    pub from_device: u32,
    /// Their uplink sequence (0 for receipts).
    pub from_seq: u64,
    /// Server time stored, ms since the Unix epoch.
    pub time_ms: u64,
    /// "message", "receipt" or "recall".
    pub kind: &'static str,
    /// Application message type (messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_type: Option<u64>,
    /// Payload, when it is UTF-8 (messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// Payload in hex, when it is not UTF-8 (messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    /// "delivered" or "read" (receipts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// The inbox owner's device that sent the target message (receipts,
    /// recalls: the sender's device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_device: Option<u32>,
    /// That device's uplink sequence of the target message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
}

impl<'a> EntryJson<'a> {
    /// The JSON view of `d`.
    pub fn new(d: &'a Deliver) -> Self {
        let mut j = EntryJson {
            seq: d.seq,
            conv: d.conv,
            from_user: d.from_user,
            from_device: d.from_device,
            from_seq: d.from_seq,
            time_ms: d.time_ms,
            kind: "message",
            msg_type: None,
            text: None,
            payload_hex: None,
            status: None,
            target_device: None,
            target_seq: None,
        };
        match &d.body {
            EntryBody::Message { msg_type, payload } => {
                j.msg_type = Some(*msg_type);
                match std::str::from_utf8(payload) {
                    Ok(t) => j.text = Some(t),
                    Err(_) => j.payload_hex = Some(hex::encode(payload)),
                }
            }
            EntryBody::Receipt {
                status,
                target_device,
                target_seq,
            } => {
                j.kind = "receipt";
                j.status = Some(match status {
                    ReceiptStatus::Delivered => "delivered",
                    ReceiptStatus::Read => "read",
                });
                j.target_device = Some(*target_device);
                j.target_seq = Some(*target_seq);
            }
            EntryBody::Recall {
                target_device,
                target_seq,
            } => {
                j.kind = "recall";
                j.target_device = Some(*target_device);
                j.target_seq = Some(*target_seq);
            }
        }
        j
    }
}

/// One line for an entry: JSON, or a short human form.
pub fn entry_line(d: &Deliver, json: bool) -> String {
    if json {
        return serde_json::to_string(&EntryJson::new(d)).expect("plain data serialises");
    }
    let from = format!("{}/{}", d.from_user, d.from_device);
    match &d.body {
        EntryBody::Message { msg_type, payload } => {
            let body = match std::str::from_utf8(payload) {
                Ok(t) => format!("{t:?}"),
                Err(_) => format!("0x{}", hex::encode(payload)),
            };
            format!(
                "#{} conv {} from {from} (msg {}, type {msg_type}): {body}",
                d.seq, d.conv, d.from_seq
            )
        }
        EntryBody::Receipt {
            status,
            target_device,
            target_seq,
        } => format!(
            "#{} conv {} receipt from {from}: {} up to your device {target_device} msg {target_seq}",
            d.seq,
            d.conv,
            match status {
                ReceiptStatus::Delivered => "delivered",
                ReceiptStatus::Read => "read",
            }
        ),
        EntryBody::Recall {
            target_device,
            target_seq,
        } => format!(
            "#{} conv {} recall from {from}: message {target_seq} of device {target_device}",
            d.seq, d.conv
        ),
    }
}

/// What `tern send` does.
#[derive(Debug, Clone)]
pub struct SendOpts {
    /// Server address.
    pub server: SocketAddr,
    /// Login token.
    pub token: Vec<u8>,
    /// The server's seal key (raw UDP is sealed when set).
    pub seal_key: Option<tern_core::seal::PublicKey>,
    /// Receiving user.
    pub to: u64,
    /// Conversation.
    pub conv: u64,
    /// Application message type.
    pub msg_type: u64,
    /// Payload.
    pub payload: Bytes,
    /// Limit for connecting and getting the server's ACK.
    pub timeout: Duration,
    /// How long to wait for the DELIVERED receipt when the receiver is online.
    pub wait_delivered: Duration,
    /// Durable client state (outbox), if any.
    pub state_dir: Option<PathBuf>,
}

/// How far a sent message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored durably by the server (the receiver was offline, or its
    /// receipt did not come within the wait).
    Stored {
        /// Uplink sequence (message id with user and device).
        seq: u64,
        /// The server said a receiver device was online.
        receiver_online: bool,
    },
    /// A receiver device acknowledged it.
    Delivered {
        /// Uplink sequence.
        seq: u64,
    },
}

impl std::fmt::Display for SendOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendOutcome::Stored { seq, .. } => write!(f, "stored seq={seq}"),
            SendOutcome::Delivered { seq } => write!(f, "delivered seq={seq}"),
        }
    }
}

/// Sends one message and waits for the server's ACK (and, when the receiver
/// is online, for its DELIVERED receipt, up to `wait_delivered`).
///
/// The session does not release its own inbox (`manual_release`, no pull):
/// sending never consumes messages waiting for this device.
pub async fn send(o: SendOpts) -> Result<SendOutcome, CliError> {
    let deadline = Instant::now() + o.timeout;
    let mut opts = ClientOptions::new(o.server, o.token.clone());
    opts.seal_key = o.seal_key;
    opts.manual_release = true;
    opts.auto_pull = false;
    opts.connect_timeout = o.timeout;
    opts.state_dir = o.state_dir.clone();
    let client = Client::connect(opts)
        .await
        .map_err(|e| client_error(e, o.server))?;
    let (user, device) = client.identity();
    tracing::debug!(user, device, "logged in");
    let left = deadline.saturating_duration_since(Instant::now());
    let sent = match tokio::time::timeout(
        left,
        client.send(o.to, o.conv, o.msg_type, o.payload.clone()),
    )
    .await
    {
        Ok(r) => r.map_err(|e| client_error(e, o.server))?,
        Err(_) => {
            client.close().await;
            return Err(CliError::Timeout(format!(
                "no ACK from the server within {}: the message may or may not have been stored{}",
                humantime::format_duration(o.timeout),
                if o.state_dir.is_some() {
                    " (it stays in the outbox and is resent on the next run with this --state-dir)"
                } else {
                    ""
                }
            )));
        }
    };
    let outcome = if sent.receiver_online && !o.wait_delivered.is_zero() {
        match tokio::time::timeout(o.wait_delivered, client.wait_delivered(sent.seq)).await {
            Ok(Ok(())) => SendOutcome::Delivered { seq: sent.seq },
            _ => SendOutcome::Stored {
                seq: sent.seq,
                receiver_online: true,
            },
        }
    } else {
        SendOutcome::Stored {
            seq: sent.seq,
            receiver_online: sent.receiver_online,
        }
    };
    client.close().await;
    Ok(outcome)
}

/// What `tern recv` does.
#[derive(Debug, Clone)]
pub struct RecvOpts {
    /// Server address.
    pub server: SocketAddr,
    /// Login token.
    pub token: Vec<u8>,
    /// The server's seal key (raw UDP is sealed when set).
    pub seal_key: Option<tern_core::seal::PublicKey>,
    /// Stop after this many messages (receipts and recalls count only with `all`).
    pub count: Option<u64>,
    /// Count every entry, not only messages.
    pub all: bool,
    /// One JSON object per line.
    pub json: bool,
    /// Give up after this long (`None`: never).
    pub timeout: Option<Duration>,
    /// Limit for the first login.
    pub connect_timeout: Duration,
    /// Durable checkpoint (and outbox): a restart neither loses nor repeats.
    pub state_dir: Option<PathBuf>,
}

/// What `tern recv` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvOutcome {
    /// Entries printed (messages, receipts, recalls).
    pub printed: u64,
    /// Of which counted toward `--count`.
    pub counted: u64,
}

/// Prints entries as they arrive and releases each one after printing it.
/// Stops after `count` counted entries, at the timeout or on Ctrl-C.
pub async fn recv(
    o: RecvOpts,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<RecvOutcome, CliError> {
    let mut opts = ClientOptions::new(o.server, o.token.clone());
    opts.seal_key = o.seal_key;
    opts.manual_release = true;
    opts.auto_pull = true;
    opts.connect_timeout = o.connect_timeout;
    opts.state_dir = o.state_dir.clone();
    let mut client = Client::connect(opts)
        .await
        .map_err(|e| client_error(e, o.server))?;
    let deadline = o
        .timeout
        .filter(|t| !t.is_zero())
        .map(|t| tokio::time::Instant::now() + t);
    let mut done = RecvOutcome::default();
    let want = o.count.unwrap_or(u64::MAX);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        if done.counted >= want {
            break Ok(done);
        }
        let ev = tokio::select! {
            ev = client.recv() => ev,
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                break match o.count {
                    Some(n) => Err(CliError::Timeout(format!(
                        "received {} of {n} messages within {}",
                        done.counted,
                        humantime::format_duration(o.timeout.unwrap_or_default())
                    ))),
                    None => Ok(done),
                };
            }
            _ = &mut ctrl_c => {
                let _ = writeln!(status, "interrupted");
                break Ok(done);
            }
        };
        match ev {
            Some(Event::Entry(d)) => {
                writeln!(out, "{}", entry_line(&d, o.json))?;
                out.flush()?;
                // Released only once printed: with --state-dir a crash before
                // this point redelivers the entry instead of losing it.
                if client.release(d.seq).await.is_err() {
                    break Err(CliError::Stopped("the client stopped".into()));
                }
                done.printed += 1;
                if o.all || matches!(d.body, EntryBody::Message { .. }) {
                    done.counted += 1;
                }
            }
            Some(Event::Connected {
                user,
                device,
                head,
                checkpoint,
                pull_mode,
            }) => {
                let _ = writeln!(
                    status,
                    "connected to udp://{} as user {user} device {device}: {} entries waiting{}",
                    o.server,
                    head.saturating_sub(checkpoint),
                    if pull_mode { " (pulling in pages)" } else { "" }
                );
            }
            Some(Event::Disconnected) => {
                let _ = writeln!(status, "connection lost; logging in again");
            }
            Some(Event::Notify { .. }) | Some(Event::PageEnd { .. }) => {}
            None => {
                break Err(CliError::Stopped(
                    "the session ended: another login of this device (same token) replaced it, or the token was refused"
                        .into(),
                ))
            }
        }
    };
    // Logging out flushes the last release ACK in the same datagram.
    client.close().await;
    result
}

/// What `tern pull` does.
#[derive(Debug, Clone)]
pub struct PullOpts {
    /// Server address.
    pub server: SocketAddr,
    /// Login token.
    pub token: Vec<u8>,
    /// The server's seal key (raw UDP is sealed when set).
    pub seal_key: Option<tern_core::seal::PublicKey>,
    /// Pull (and consume) the whole backlog after the summary.
    pub all: bool,
    /// Print the pulled entries too.
    pub print: bool,
    /// JSON output.
    pub json: bool,
    /// Limit for each step.
    pub timeout: Duration,
    /// Durable checkpoint.
    pub state_dir: Option<PathBuf>,
}

/// What `tern pull --all` pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullOutcome {
    /// Conversations in the summary.
    pub conversations: u64,
    /// Unread messages in the summary.
    pub unread: u64,
    /// Pages pulled.
    pub pages: u64,
    /// Entries pulled.
    pub entries: u64,
    /// Of which messages.
    pub messages: u64,
    /// Of which receipts.
    pub receipts: u64,
    /// Of which recalls.
    pub recalls: u64,
    /// Time the pull took.
    pub elapsed: Duration,
}

fn summary_lines(
    convs: &[Summary],
    end: &SummaryEnd,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct PreviewJson<'a> {
        seq: u64,
        from_user: u64,
        time_ms: u64,
        msg_type: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_hex: Option<String>,
    }
    #[derive(Serialize)]
    struct ConvJson<'a> {
        conv: u64,
        unread: u64,
        first_unread_seq: u64,
        first_unread_time_ms: u64,
        last_seq: u64,
        previews: Vec<PreviewJson<'a>>,
    }
    #[derive(Serialize)]
    struct TotalJson {
        conversations: u64,
        total_unread: u64,
        head: u64,
    }
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&TotalJson {
                conversations: end.conv_count,
                total_unread: end.total_unread,
                head: end.head,
            })
            .expect("plain data")
        )?;
        for s in convs {
            let previews = s
                .previews
                .iter()
                .map(|p| {
                    let text = std::str::from_utf8(&p.head).ok();
                    PreviewJson {
                        seq: p.seq,
                        from_user: p.from_user,
                        time_ms: p.time_ms,
                        msg_type: p.msg_type,
                        text,
                        payload_hex: text.is_none().then(|| hex::encode(&p.head)),
                    }
                })
                .collect();
            let c = ConvJson {
                conv: s.conv,
                unread: s.unread,
                first_unread_seq: s.first_unread_seq,
                first_unread_time_ms: s.first_unread_time_ms,
                last_seq: s.last_seq,
                previews,
            };
            writeln!(out, "{}", serde_json::to_string(&c).expect("plain data"))?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{} conversations with unread messages, {} unread in all (inbox head {})",
        end.conv_count, end.total_unread, end.head
    )?;
    for s in convs {
        writeln!(
            out,
            "conv {}: {} unread, first #{}, last #{}",
            s.conv, s.unread, s.first_unread_seq, s.last_seq
        )?;
        for p in &s.previews {
            let body = match std::str::from_utf8(&p.head) {
                Ok(t) => format!("{t:?}"),
                Err(_) => format!("0x{}", hex::encode(&p.head)),
            };
            writeln!(out, "    #{} from {}: {body}", p.seq, p.from_user)?;
        }
    }
    Ok(())
}

/// Prints the conversation summary (counters first); with `all`, then pulls
/// the whole backlog page by page, releasing it (it is consumed for this
/// device), and reports pages and counts.
pub async fn pull(
    o: PullOpts,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<PullOutcome, CliError> {
    let mut opts = ClientOptions::new(o.server, o.token.clone());
    opts.seal_key = o.seal_key;
    opts.auto_pull = false;
    // Without --all nothing is consumed: entries pushed at login stay unreleased.
    opts.manual_release = !o.all;
    opts.connect_timeout = o.timeout;
    opts.state_dir = o.state_dir.clone();
    let mut client = Client::connect(opts)
        .await
        .map_err(|e| client_error(e, o.server))?;
    let mut outcome = PullOutcome::default();
    let (convs, end) = match tokio::time::timeout(o.timeout, client.summary()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(client_error(e, o.server)),
        Err(_) => {
            client.close().await;
            return Err(CliError::Timeout(format!(
                "no summary within {}",
                humantime::format_duration(o.timeout)
            )));
        }
    };
    outcome.conversations = end.conv_count;
    outcome.unread = end.total_unread;
    summary_lines(&convs, &end, o.json, out)?;
    out.flush()?;
    if !o.all {
        client.close().await;
        return Ok(outcome);
    }
    let start = Instant::now();
    if client.pull().await.is_err() {
        return Err(CliError::Stopped("the client stopped".into()));
    }
    let mut highest = 0u64;
    let result = loop {
        let ev = match tokio::time::timeout(o.timeout, client.recv()).await {
            Ok(ev) => ev,
            Err(_) => {
                break Err(CliError::Timeout(format!(
                    "pull stalled: nothing for {} after {} entries",
                    humantime::format_duration(o.timeout),
                    outcome.entries
                )))
            }
        };
        match ev {
            Some(Event::Entry(d)) => {
                highest = highest.max(d.seq);
                outcome.entries += 1;
                match d.body {
                    EntryBody::Message { .. } => outcome.messages += 1,
                    EntryBody::Receipt { .. } => outcome.receipts += 1,
                    EntryBody::Recall { .. } => outcome.recalls += 1,
                }
                if o.print {
                    writeln!(out, "{}", entry_line(&d, o.json))?;
                }
            }
            Some(Event::PageEnd { last, end }) => {
                outcome.pages += 1;
                if end && highest >= last {
                    break Ok(());
                }
            }
            // Everything up to the checkpoint counts as held already.
            Some(Event::Connected { checkpoint, .. }) => highest = highest.max(checkpoint),
            Some(Event::Disconnected) => {
                let _ = writeln!(status, "connection lost; logging in again");
            }
            Some(_) => {}
            None => break Err(CliError::Stopped("the session ended".into())),
        }
    };
    outcome.elapsed = start.elapsed();
    out.flush()?;
    client.close().await;
    result.map(|()| outcome)
}
