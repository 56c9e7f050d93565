//! `tern send`: one message, and how far it got.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{client_error, CliError, Connection};

/// What `tern send` does.
#[derive(Debug, Clone)]
pub struct SendOpts {
    /// Server, token, seal key and state folder (the outbox).
    pub conn: Connection,
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
    let server = o.conn.server.clone();
    let client = o.conn.connect(true, false, o.timeout).await?;
    let (user, device) = client.identity();
    tracing::debug!(user, device, "logged in");
    let left = deadline.saturating_duration_since(Instant::now());
    let sent = match tokio::time::timeout(
        left,
        client.send(o.to, o.conv, o.msg_type, o.payload.clone()),
    )
    .await
    {
        Ok(r) => r.map_err(|e| client_error(e, &server))?,
        Err(_) => {
            client.close().await;
            return Err(CliError::Timeout(format!(
                "no ACK from the server within {}: the message may or may not have been stored{}",
                humantime::format_duration(o.timeout),
                if o.conn.state_dir.is_some() {
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
