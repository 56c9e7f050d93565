//! `tern recv`: print entries as they arrive, releasing each once printed.

use std::io::Write;
use std::time::Duration;

use tern_core::wire::SyncBody;

use super::output::entry_line;
use super::{CliError, Connection};
use crate::client::Event;

/// What `tern recv` does.
#[derive(Debug, Clone)]
pub struct RecvOpts {
    /// Server, token, seal key and state folder (durable checkpoint and
    /// outbox: a restart neither loses nor repeats).
    pub conn: Connection,
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
    let server = o.conn.server.clone();
    let mut client = o.conn.connect(true, true, o.connect_timeout).await?;
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
                // What counts is what others did: not this user's own copies
                // and read positions, which its other devices sync.
                let from_others = d.from_user != client.identity().0;
                if from_others && (o.all || matches!(d.body, SyncBody::Message { .. })) {
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
                    "connected to {server} as user {user} device {device}: {} entries waiting{}",
                    head.saturating_sub(checkpoint),
                    if pull_mode { " (pulling in pages)" } else { "" }
                );
            }
            Some(Event::Disconnected) => {
                let _ = writeln!(status, "connection lost; logging in again");
            }
            Some(Event::StorageUnavailable { .. }) => {
                let _ = writeln!(status, "server storage unavailable, retrying");
            }
            Some(Event::Downgraded) => {
                let _ = writeln!(status, "the server speaks only protocol version 1");
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
