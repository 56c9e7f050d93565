//! `tern convs`: the conversation list, with unread counts and the newest
//! message of each.

use std::io::Write;
use std::time::Duration;

use super::conv_output::list_item_line;
use super::{client_error, CliError, Connection};
use crate::client::ListItem;

/// `tern convs` arguments (besides the connection).
#[derive(Debug, Clone, clap::Args)]
pub struct ConvsArgs {
    /// Only the conversations changed since this list version (the one a
    /// previous run printed). Without it: the whole list; with
    /// --state-dir, only what changed since the last run is fetched.
    #[arg(long)]
    pub since: Option<u64>,
    /// Bytes of each newest message to show (0 … 64).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u8).range(0..=64))]
    pub preview: u8,
    /// One JSON object per line: a header, then one per conversation.
    #[arg(long)]
    pub json: bool,
    /// Limit for connecting and fetching.
    #[arg(long, default_value = "10s")]
    pub timeout: humantime::Duration,
}

/// What `tern convs` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvsOutcome {
    /// The list version the output is complete up to: pass it as --since.
    pub list_version: u64,
    /// Unread messages over all conversations.
    pub total_unread: u64,
    /// Conversations printed.
    pub items: Vec<ListItem>,
    /// Round trips the fetch took.
    pub pages: u32,
}

#[derive(serde::Serialize)]
struct HeaderJson {
    list_version: u64,
    total_unread: u64,
    conversations: usize,
    pages: u32,
}

/// Fetches the list and prints it: a header line (count, unread, list
/// version), then one line per conversation, newest change first. Nothing
/// of the inbox is consumed.
pub async fn convs(
    conn: Connection,
    a: ConvsArgs,
    out: &mut dyn Write,
) -> Result<ConvsOutcome, CliError> {
    let timeout: Duration = a.timeout.into();
    let server = conn.server.clone();
    let client = conn.connect(true, false, timeout).await?;
    let fetched = tokio::time::timeout(timeout, async {
        match a.since {
            Some(since) => {
                let l = client.conversations(since, a.preview).await?;
                let mut items = l.items;
                items.sort_by_key(|x| std::cmp::Reverse(x.version));
                Ok((l.list_version, l.total_unread, l.pages, items))
            }
            None => {
                let l = client.sync_conversations(a.preview).await?;
                let stored = client.stored_conversations().await?;
                Ok((l.list_version, l.total_unread, l.pages, stored.items))
            }
        }
    })
    .await;
    client.close().await;
    let (list_version, total_unread, pages, items) = match fetched {
        Ok(r) => r.map_err(|e| client_error(e, &server))?,
        Err(_) => {
            return Err(CliError::Timeout(format!(
                "no conversation list within {}",
                humantime::format_duration(timeout)
            )))
        }
    };
    if a.json {
        let h = HeaderJson {
            list_version,
            total_unread,
            conversations: items.len(),
            pages,
        };
        writeln!(out, "{}", serde_json::to_string(&h).expect("plain data"))?;
    } else {
        writeln!(
            out,
            "{} conversation{}{}, {total_unread} unread (list version {list_version})",
            items.len(),
            if items.len() == 1 { "" } else { "s" },
            match a.since {
                Some(v) => format!(" changed since version {v}"),
                None => String::new(),
            },
        )?;
    }
    for i in &items {
        writeln!(out, "{}", list_item_line(i, a.json))?;
    }
    out.flush()?;
    Ok(ConvsOutcome {
        list_version,
        total_unread,
        items,
        pages,
    })
}
