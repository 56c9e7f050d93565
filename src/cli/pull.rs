//! `tern pull`: the conversation summary, then (with `--all`) the whole
//! backlog page by page.

use std::io::Write;
use std::time::{Duration, Instant};

use tern_core::wire::SyncBody;

use super::output::{entry_line, summary_lines};
use super::{client_error, CliError, Connection};
use crate::client::Event;

/// What `tern pull` does.
#[derive(Debug, Clone)]
pub struct PullOpts {
    /// Server, token, seal key and state folder (durable checkpoint).
    pub conn: Connection,
    /// Pull (and consume) the whole backlog after the summary.
    pub all: bool,
    /// Print the pulled entries too.
    pub print: bool,
    /// JSON output.
    pub json: bool,
    /// Limit for each step.
    pub timeout: Duration,
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

/// Prints the conversation summary (counters first); with `all`, then pulls
/// the whole backlog page by page, releasing it (it is consumed for this
/// device), and reports pages and counts.
pub async fn pull(
    o: PullOpts,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<PullOutcome, CliError> {
    let server = o.conn.server.clone();
    // Without --all nothing is consumed: entries pushed at login stay unreleased.
    let mut client = o.conn.connect(!o.all, false, o.timeout).await?;
    let mut outcome = PullOutcome::default();
    let (convs, end) = match tokio::time::timeout(o.timeout, client.summary()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(client_error(e, &server)),
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
                    SyncBody::Message { .. } => outcome.messages += 1,
                    SyncBody::Receipt { .. } => outcome.receipts += 1,
                    SyncBody::Recall { .. } => outcome.recalls += 1,
                    SyncBody::Read | SyncBody::Deleted { .. } | SyncBody::Member(_) => {}
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
