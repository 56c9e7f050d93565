//! `tern group`: create a group, add and remove members, leave, list the
//! members, post into a group, and see who read what
//! (`proto-spec/groups.md`). Each command
//! logs in, does one thing, and exits once the server stored it.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;

use super::output::role_name;
use super::{client_error, CliError, Connection};
use crate::client::{group, Client, ClientError};

/// `tern group` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GroupCmd {
    /// Create a group owned by this user; prints `group=ID`.
    Create {
        /// First members (user ids), at most 32.
        members: Vec<u64>,
    },
    /// Add members (admins and the owner; --admin: the owner only).
    Add {
        /// The group id.
        group: u64,
        /// User ids, at most 32.
        #[arg(required = true)]
        users: Vec<u64>,
        /// Add them as admins.
        #[arg(long)]
        admin: bool,
    },
    /// Remove members (admins and the owner).
    Remove {
        /// The group id.
        group: u64,
        /// User ids, at most 32.
        #[arg(required = true)]
        users: Vec<u64>,
    },
    /// Leave the group (not its owner).
    Leave {
        /// The group id.
        group: u64,
    },
    /// Print the current members, one `USER ROLE since=CONV_SEQ` per line
    /// (JSON with --json), every page.
    Members {
        /// The group id.
        group: u64,
        /// One JSON object per member.
        #[arg(long)]
        json: bool,
    },
    /// "Read by N of M" for records of the group: one `#SEQ read by N of M`
    /// line each (M: the members besides the record's author).
    Reads {
        /// The group id.
        group: u64,
        /// The first record (conv_seq).
        low: u64,
        /// Records, at most 64.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=64))]
        count: u8,
    },
    /// Who read a record: the members besides its author whose read
    /// position passed it, one `USER ROLE` per line, every page.
    Readers {
        /// The group id.
        group: u64,
        /// The record (conv_seq).
        conv_seq: u64,
    },
    /// Post a message into the group; prints `stored seq=N`.
    Send {
        /// The group id.
        group: u64,
        /// Application message type (0 = UTF-8 text by convention).
        #[arg(long = "type", default_value_t = 0)]
        msg_type: u64,
        /// The message.
        text: String,
    },
}

/// `tern group` arguments (besides the connection).
#[derive(Debug, Clone, clap::Args)]
pub struct GroupArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: GroupCmd,
    /// Limit for connecting and getting the server's answer.
    #[arg(long, default_value = "10s", global = true)]
    pub timeout: humantime::Duration,
}

/// Most member pages `tern group members` reads (64 members each).
const MAX_PAGES: usize = 1024;

async fn run(client: &Client, cmd: GroupCmd, out: &mut impl Write) -> Result<(), ClientError> {
    let stored = |seq: u64| format!("stored seq={seq}");
    let line = match cmd {
        GroupCmd::Create { members } => format!("group={}", client.create_group(&members).await?),
        GroupCmd::Add {
            group,
            users,
            admin,
        } => stored(client.add_members(group, &users, admin).await?.seq),
        GroupCmd::Remove { group, users } => {
            stored(client.remove_members(group, &users).await?.seq)
        }
        GroupCmd::Leave { group } => stored(client.leave_group(group).await?.seq),
        GroupCmd::Send {
            group: g,
            msg_type,
            text,
        } => stored(
            client
                .post(group(g), 0, msg_type, Bytes::from(text))
                .await?
                .seq,
        ),
        GroupCmd::Reads { group, low, count } => {
            let c = client.read_counts(group, low, count).await?;
            for (i, n) in c.read_by.iter().enumerate() {
                // Everyone but the author could have read it.
                let of = c.members.saturating_sub(1);
                writeln!(out, "#{} read by {n} of {of}", c.low + i as u64)
                    .map_err(ClientError::Io)?;
            }
            return Ok(());
        }
        GroupCmd::Readers { group, conv_seq } => {
            let mut after = 0;
            for _ in 0..MAX_PAGES {
                let page = client.readers(group, conv_seq, after, 64).await?;
                for m in &page.members {
                    writeln!(out, "{} {}", m.user, role_name(m.role)).map_err(ClientError::Io)?;
                }
                if page.end.complete {
                    break;
                }
                after = page.end.next_after;
            }
            return Ok(());
        }
        GroupCmd::Members { group, json } => {
            let mut after = 0;
            for _ in 0..MAX_PAGES {
                let page = client.members(group, after, 64).await?;
                for m in &page.members {
                    let l = if json {
                        format!(
                            r#"{{"user":{},"role":"{}","since":{}}}"#,
                            m.user,
                            role_name(m.role),
                            m.since
                        )
                    } else {
                        format!("{} {} since={}", m.user, role_name(m.role), m.since)
                    };
                    writeln!(out, "{l}").map_err(ClientError::Io)?;
                }
                if page.end.complete {
                    break;
                }
                after = page.end.next_after;
            }
            return Ok(());
        }
    };
    writeln!(out, "{line}").map_err(ClientError::Io)?;
    Ok(())
}

/// Runs one `tern group` command, printing its result to `out`.
pub async fn group_cmd(
    conn: Connection,
    a: GroupArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let timeout: Duration = a.timeout.into();
    let server = conn.server.clone();
    let client = conn.connect(true, false, timeout).await?;
    let done = tokio::time::timeout(timeout, run(&client, a.cmd, out)).await;
    client.close().await;
    match done {
        Ok(r) => r.map_err(|e| client_error(e, &server)),
        Err(_) => Err(CliError::Timeout(format!(
            "no answer within {}: the operation may or may not have been stored",
            humantime::format_duration(timeout)
        ))),
    }
}
