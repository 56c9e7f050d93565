//! `tern history`: a page of a conversation's history, from the local
//! history when the state folder holds it, else from the server.

use std::io::Write;
use std::time::Duration;

use super::conv_output::{ranges_text, record_line};
use super::{client_error, CliError, Connection};
use crate::client::{ConvRef, Held, HistoryPage};

/// `tern history` arguments (besides the connection).
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// The conversation: d:USER (direct), g:ID (group), s:ID (system), or
    /// a bare user id.
    pub conv: ConvRef,
    /// Records below this conv_seq (0: up to the newest). To scroll up,
    /// pass the lowest conv_seq printed.
    #[arg(long, default_value_t = 0)]
    pub before: u64,
    /// Most records (1 … 64).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub max: u64,
    /// One JSON object per record.
    #[arg(long)]
    pub json: bool,
    /// Limit for connecting and fetching.
    #[arg(long, default_value = "10s")]
    pub timeout: humantime::Duration,
}

/// What `tern history` got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryOutcome {
    /// The page, oldest record first.
    pub page: HistoryPage,
    /// What the device holds of the conversation afterwards.
    pub held: Held,
    /// Records the server sent for it (0: served from the local history).
    pub fetched: u64,
}

/// Prints one page of `conv`, oldest record first (records to `out`), and
/// a status line (the span, where it came from, what is held and missing)
/// to `status`. Nothing of the inbox is consumed.
pub async fn history(
    conn: Connection,
    a: HistoryArgs,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<HistoryOutcome, CliError> {
    let timeout: Duration = a.timeout.into();
    let server = conn.server.clone();
    let client = conn.connect(true, false, timeout).await?;
    let got = tokio::time::timeout(timeout, async {
        let before = client.history_stats().await?;
        let page = client.history(a.conv, a.before, a.max).await?;
        let after = client.history_stats().await?;
        let held = client.held(a.conv).await?.unwrap_or_default();
        Ok((page, held, after.records_fetched - before.records_fetched))
    })
    .await;
    client.close().await;
    let (page, held, fetched) = match got {
        Ok(r) => r.map_err(|e| client_error(e, &server))?,
        Err(_) => {
            return Err(CliError::Timeout(format!(
                "no history page within {}",
                humantime::format_duration(timeout)
            )))
        }
    };
    for r in &page.records {
        writeln!(out, "{}", record_line(r, a.json))?;
    }
    out.flush()?;
    let e = &page.end;
    let span = if e.low > e.high {
        "nothing".to_string()
    } else {
        format!("#{}-#{}", e.low, e.high)
    };
    let source = match fetched {
        0 => "from the local history".to_string(),
        n => format!("{n} fetched from the server"),
    };
    writeln!(
        status,
        "{}: {span}, {} records, {source}; held {}, missing {}, newest #{}{}",
        a.conv,
        page.records.len(),
        ranges_text(held.ranges.ranges()),
        ranges_text(&held.missing()),
        held.last_seq,
        match e.floor {
            0 => String::new(),
            f => format!(", nothing at or below #{f}"),
        },
    )?;
    Ok(HistoryOutcome {
        page,
        held,
        fetched,
    })
}
