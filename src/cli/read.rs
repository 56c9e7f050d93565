//! `tern read`: moves this user's read position in a conversation, on
//! every device of the user, with a READ receipt to the other user of a
//! direct conversation.

use std::time::Duration;

use super::{client_error, CliError, Connection};
use crate::client::{ConvKind, ConvRef, RecordBody};

/// `tern read` arguments (besides the connection).
#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    /// The conversation: d:USER, g:ID, s:ID, or a bare user id.
    pub conv: ConvRef,
    /// Read up to this conv_seq (clamped to the newest record).
    pub up_to: u64,
    /// Send no READ receipt to the other user.
    #[arg(long)]
    pub no_receipt: bool,
    /// Limit for connecting and getting the server's ACK.
    #[arg(long, default_value = "10s")]
    pub timeout: humantime::Duration,
}

/// What `tern read` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Uplink sequence of the MARK_READ.
    pub seq: u64,
    /// The READ receipt's target: the other user's (device, message id).
    pub receipt: Option<(u32, u64)>,
}

impl std::fmt::Display for ReadOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stored seq={}", self.seq)?;
        if let Some((d, s)) = self.receipt {
            write!(f, " (READ receipt up to device {d} msg {s})")?;
        }
        Ok(())
    }
}

/// Marks `conv` read up to `up_to`; resolves once the server stored it.
/// In a direct conversation the receipt names the other user's newest
/// message at or below `up_to` (found in the history, local if held).
pub async fn read(conn: Connection, a: ReadArgs) -> Result<ReadOutcome, CliError> {
    let timeout: Duration = a.timeout.into();
    let server = conn.server.clone();
    let client = conn.connect(true, false, timeout).await?;
    let me = client.identity().0;
    let done = tokio::time::timeout(timeout, async {
        let mut receipt = None;
        if !a.no_receipt && a.conv.kind == ConvKind::Direct && a.conv.id != me && a.up_to > 0 {
            let page = client.history(a.conv, a.up_to + 1, 64).await?;
            receipt = page
                .records
                .iter()
                .rev()
                .find(|r| r.from_user == a.conv.id && matches!(r.body, RecordBody::Message { .. }))
                .map(|r| (r.from_device, r.from_seq));
        }
        let sent = client.mark_read(a.conv, a.up_to, receipt).await?;
        Ok(ReadOutcome {
            seq: sent.seq,
            receipt,
        })
    })
    .await;
    client.close().await;
    match done {
        Ok(r) => r.map_err(|e| client_error(e, &server)),
        Err(_) => Err(CliError::Timeout(format!(
            "no ACK within {}: the read position may or may not have moved",
            humantime::format_duration(timeout)
        ))),
    }
}
