//! The run's append-only JSON-lines journals, and their reader.
//!
//! A run directory holds, under `journal/`:
//!
//! - `meta.json`: the devices that took part (so the checker knows who should
//!   have received what) and the run's parameters, for the record;
//! - `sends.jsonl`: one `submit` line before each operation is handed to the
//!   client library, one `ack` line once `send` resolved `Ok` (the server
//!   stored it durably), one `read` line per acknowledged READ;
//! - `recv-u<USER>-d<DEVICE>.jsonl`: per device, every inbox entry the client
//!   library handed to the application, in the order it was handed, written
//!   before the entry was released; plus `connected` and `offline` markers;
//! - `events.jsonl`: what the run did to the system (kills, restarts,
//!   rebinds), to line violations up with their cause.
//!
//! Times are microseconds since the run started (`t_us`), all from one
//! monotonic clock, so they compare across files.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use super::conv_journal::{HistRec, HistoryView, ListRec, ListView, ViewEnd, ViewWhat};

/// A message's application-level identity: (sender user, sender device,
/// per-device counter). Travels in the payload as `chaos:USER:DEVICE:N`.
pub type MsgId = (u64, u32, u64);

/// The payload carrying a message id.
pub fn payload(id: MsgId) -> String {
    format!("chaos:{}:{}:{}", id.0, id.1, id.2)
}

/// Parses a payload written by [`payload`].
pub fn parse_payload(p: &str) -> Option<MsgId> {
    let mut it = p.strip_prefix("chaos:")?.split(':');
    let u = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((u, d, n))
}

/// The journal folder inside a run directory.
pub fn journal_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("journal")
}

/// File name of a device's receive journal.
pub fn recv_file(user: u64, device: u32) -> String {
    format!("recv-u{user}-d{device}.jsonl")
}

/// `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// Format version (1).
    pub version: u32,
    /// Every (user, device) that took part; each has a receive journal.
    pub devices: Vec<(u64, u32)>,
    /// Conversations: (id, user a, user b).
    pub convs: Vec<(u64, u64, u64)>,
    /// The run's parameters, free-form, for the record.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Brand-new devices that joined late (also in `devices`): they page
    /// the history (roaming) and are owed nothing sent before they joined.
    #[serde(default)]
    pub late: Vec<(u64, u32)>,
    /// Every device journaled its list and histories after healing, so the
    /// checker requires them and compares devices (false for journals
    /// without conversation views).
    #[serde(default)]
    pub conv_checks: bool,
}

/// One line of `sends.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum SendRecord {
    /// The message is about to be handed to the client library.
    Submit {
        /// Microseconds since the run started.
        t_us: u64,
        /// Sender user.
        user: u64,
        /// Sender device.
        device: u32,
        /// Per-device message counter (third part of the id).
        n: u64,
        /// Conversation.
        conv: u64,
        /// Receiver user.
        to: u64,
    },
    /// `send` resolved `Ok`: the server stored it.
    Ack {
        /// Microseconds since the run started.
        t_us: u64,
        /// Sender user.
        user: u64,
        /// Sender device.
        device: u32,
        /// Per-device message counter.
        n: u64,
        /// Conversation.
        conv: u64,
        /// Receiver user.
        to: u64,
        /// Uplink sequence the server stored it under.
        seq: u64,
        /// `Sent::receiver_online`.
        online: bool,
    },
    /// A READ receipt the server acknowledged (informational).
    Read {
        /// Microseconds since the run started.
        t_us: u64,
        /// Reading user.
        user: u64,
        /// Reading device.
        device: u32,
        /// Conversation.
        conv: u64,
        /// Whose messages were read.
        peer: u64,
        /// Their device.
        target_device: u32,
        /// Up to this uplink sequence.
        target_seq: u64,
        /// Uplink sequence of the READ.
        seq: u64,
    },
    /// A read position (`mark_read`) the server acknowledged.
    MarkRead {
        /// Microseconds since the run started.
        t_us: u64,
        /// Reading user.
        user: u64,
        /// Reading device.
        device: u32,
        /// The conversation (`d:PEER`).
        conv: String,
        /// The read position asked for (`conv_seq`).
        up_to: u64,
        /// Uplink sequence of the MARK_READ.
        seq: u64,
    },
}

/// Kind of an inbox entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A message.
    Message,
    /// A DELIVERED or READ receipt.
    Receipt,
    /// A recall.
    Recall,
    /// An entry this user's own devices caused (its own copy of a message
    /// it sent, a read position, a deletion): multi-device sync, not a
    /// delivery.
    Sync,
    /// A record of the run's group (another member's message, or a
    /// membership event): checked against the group's history, not as a
    /// delivery (past the write fan-out threshold a member offline is
    /// handed none and pages them).
    Group,
}

/// One inbox entry as handed to the application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// Microseconds since the run started, when the application got it.
    pub t_us: u64,
    /// Inbox sequence.
    pub seq: u64,
    /// Conversation.
    pub conv: u64,
    /// User that caused the entry.
    pub from_user: u64,
    /// Its device.
    pub from_device: u32,
    /// That device's uplink sequence (0 for DELIVERED receipts).
    pub from_seq: u64,
    /// What it is.
    pub kind: EntryKind,
    /// Message payload (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Receipt status: `delivered` or `read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Receipt or recall target device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_device: Option<u32>,
    /// Receipt or recall target sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
    /// The conversation as the receiving user names it (`d:PEER`; version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cref: Option<String>,
    /// The record the entry is about (version 2; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_seq: Option<u64>,
    /// For `sync` entries: `own` (a copy of a message this user sent),
    /// `read` (a read position, `conv_seq`) or `deleted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
}

/// One line of a device's receive journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum RecvRecord {
    /// An entry handed to the application.
    Entry(EntryRecord),
    /// The client logged in (again).
    Connected {
        /// Microseconds since the run started.
        t_us: u64,
        /// Inbox head at login.
        head: u64,
        /// Where delivery resumed.
        checkpoint: u64,
        /// Pulled rather than pushed.
        pull_mode: bool,
    },
    /// The application took the device offline.
    Offline {
        /// Microseconds since the run started.
        t_us: u64,
        /// `close` (logout) or `drop` (abrupt, possibly with sends in flight).
        how: String,
    },
    /// The server spoke only protocol version 1 (no conversations).
    Downgraded {
        /// Microseconds since the run started.
        t_us: u64,
    },
    /// The conversation list (see [`super::conv_journal`]).
    List(ListView),
    /// A conversation's whole history.
    History(HistoryView),
    /// A set of views is complete.
    ViewEnd(ViewEnd),
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Microseconds since the run started.
    pub t_us: u64,
    /// `start`, `kill`, `restart`, `rebind`, `traffic_end`, `healed`, ...
    pub ev: String,
    /// Details.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// An append-only JSON-lines file shared by tasks.
pub struct JsonlWriter {
    out: Mutex<BufWriter<File>>,
}

impl JsonlWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<JsonlWriter> {
        Ok(JsonlWriter {
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, File::create(path)?)),
        })
    }

    /// Appends one record.
    pub fn append<T: Serialize>(&self, rec: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(&line)
    }

    /// Pushes buffered lines to the file (no fsync: the journals only have
    /// to survive the run's own process, which is never killed).
    pub fn flush(&self) -> std::io::Result<()> {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Microseconds since a fixed start.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// Starts now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Microseconds since the start.
    pub fn us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// Reads a JSON-lines file, calling `f` with each line number (from 1) and
/// parsed record. A line that does not parse is an error naming it.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(
    path: &Path,
    mut f: impl FnMut(usize, T),
) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: {e}: {line}", path.display(), i + 1))?;
        f(i + 1, rec);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        assert_eq!(parse_payload(&payload((3, 2, 17))), Some((3, 2, 17)));
        assert_eq!(parse_payload("chaos:1:2"), None);
        assert_eq!(parse_payload("chaos:1:2:3:4"), None);
        assert_eq!(parse_payload("hello"), None);
    }

    #[test]
    fn records_are_one_line_each() {
        let r = RecvRecord::Entry(EntryRecord {
            t_us: 5,
            seq: 1,
            conv: 7,
            from_user: 2,
            from_device: 1,
            from_seq: 9,
            kind: EntryKind::Message,
            payload: Some(payload((2, 1, 4))),
            status: None,
            target_device: None,
            target_seq: None,
            cref: Some("d:2".into()),
            conv_seq: Some(4),
            sync: None,
        });
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.starts_with("{\"ev\":\"entry\""), "{s}");
        assert_eq!(serde_json::from_str::<RecvRecord>(&s).unwrap(), r);
        let a = SendRecord::Ack {
            t_us: 1,
            user: 1,
            device: 1,
            n: 1,
            conv: 2,
            to: 3,
            seq: 4,
            online: true,
        };
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<SendRecord>(&s).unwrap(), a);
    }
}
