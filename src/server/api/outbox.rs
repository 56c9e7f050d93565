//! The server API's durable log of service messages, and the task that
//! numbers them.
//!
//! `POST /v1/messages` posts as the service device (`[api] service_user`,
//! `service_device`), a device without a session whose operations go
//! through the broker's normal uplink path (`tern_core::broker` service
//! operations). Exactly once rests on the same two rules as a client's
//! outbox:
//! - a message gets the device's next uplink sequence and is written here,
//!   synced, under that sequence (with its idempotency key) *before* the
//!   broker sees it; requests arriving together share one write;
//! - the broker de-duplicates by (device, sequence) with `applied` stored in
//!   the same batch as the inbox entry. At start every logged message past
//!   the device's durable `applied` is applied again, in order, under its
//!   sequence; those at or below it are done.
//!
//! So a message the API accepted is stored exactly once, whatever crashes,
//! and a key maps to one sequence for the keeping window: a repeated key
//! answers with the first message's outcome and sends nothing.
//!
//! Layout (its own RocksDB under `<data_dir>/api`): `i` + seq (BE) → key
//! length (u16 BE), key, encoded SEND frame (pending messages); `k` + key →
//! seq (BE), Unix ms, SHA-256 digest, outcome byte (0 pending, 1 stored,
//! 2 + code… rejected: code in the last 8 bytes).

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use rocksdb::{WriteBatch, WriteOptions, DB};
use tern_core::broker::ServiceOutcome;
use tern_core::wire::{Frame, Reader};
use tokio::sync::{mpsc, oneshot};

use super::bridge::BridgeHandle;

/// Errors of the service log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// RocksDB failed.
    #[error("service log: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A row does not decode.
    #[error("service log holds a corrupt row")]
    Corrupt,
}

/// A message to post.
pub struct Post {
    /// The SEND frame, numbered when logged.
    pub to: u64,
    /// Conversation.
    pub conv: u64,
    /// Message type.
    pub msg_type: u64,
    /// Payload.
    pub payload: Bytes,
    /// Idempotency key.
    pub key: Option<String>,
    /// SHA-256 (hex) of the request, to refuse a key reused for another.
    pub digest: String,
}

impl Post {
    fn frame(&self, seq: u64) -> Frame {
        Frame::Send(tern_core::wire::Send {
            seq,
            to: self.to,
            conv: self.conv,
            msg_type: self.msg_type,
            payload: self.payload.clone(),
        })
    }
}

/// What the caller learns.
#[derive(Debug)]
pub enum Posted {
    /// Logged under `seq`; the outcome arrives on the receiver.
    Logged {
        /// Its sequence.
        seq: u64,
        /// A repeat of an earlier request with the same key.
        duplicate: bool,
        /// Resolves once durable in the broker (never, if the daemon stops).
        outcome: Waiter,
    },
    /// The key was used for a different request.
    Conflict,
}

/// Resolves to the outcome once the message is durable in the broker.
#[derive(Debug)]
pub struct Waiter(pub oneshot::Receiver<ServiceOutcome>);

type Request = (Post, oneshot::Sender<Result<Posted, String>>);

/// Sends posts to the log's task.
#[derive(Clone)]
pub struct ServiceLog {
    tx: mpsc::Sender<Request>,
}

struct KeyRow {
    seq: u64,
    ms: u64,
    digest: String,
    outcome: Option<ServiceOutcome>,
}

fn encode_key_row(r: &KeyRow) -> Vec<u8> {
    let mut v = r.seq.to_be_bytes().to_vec();
    v.extend_from_slice(&r.ms.to_be_bytes());
    v.extend_from_slice(r.digest.as_bytes());
    match r.outcome {
        None => v.push(0),
        Some(ServiceOutcome::Stored { .. }) => v.push(1),
        Some(ServiceOutcome::Rejected { code }) => {
            v.push(2);
            v.extend_from_slice(&code.to_be_bytes());
        }
    }
    v
}

fn decode_key_row(v: &[u8]) -> Option<KeyRow> {
    let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let ms = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    let digest = std::str::from_utf8(v.get(16..80)?).ok()?.to_string();
    let outcome = match v.get(80)? {
        0 => None,
        1 => Some(ServiceOutcome::Stored {
            receiver_online: false,
        }),
        2 => Some(ServiceOutcome::Rejected {
            code: u64::from_be_bytes(v.get(81..89)?.try_into().ok()?),
        }),
        _ => return None,
    };
    Some(KeyRow {
        seq,
        ms,
        digest,
        outcome,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Task {
    db: DB,
    bridge: BridgeHandle,
    next: u64,
    keys: HashMap<String, KeyRow>,
    /// Outcome waiters by sequence.
    waiters: HashMap<u64, Vec<oneshot::Sender<ServiceOutcome>>>,
    /// Outcomes known, by sequence, for keys that arrive again.
    done: mpsc::UnboundedSender<(u64, ServiceOutcome)>,
    keep_ms: u64,
}

impl ServiceLog {
    /// Opens the log under `dir`, replays what the broker has not applied
    /// (in order, under their sequences) and starts the task.
    pub async fn open(
        dir: &Path,
        bridge: BridgeHandle,
        keep: std::time::Duration,
    ) -> Result<ServiceLog, LogError> {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = DB::open(&o, dir)?;
        let position = bridge.position().await.unwrap_or_default();
        let mut pending: Vec<(u64, Frame, String)> = Vec::new();
        let mut highest = position.durable;
        for item in db.prefix_iterator(b"i") {
            let (k, v) = item?;
            if !k.starts_with(b"i") {
                break;
            }
            let seq = u64::from_be_bytes(
                k.get(1..9)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(LogError::Corrupt)?,
            );
            let klen = u16::from_be_bytes(
                v.get(..2)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(LogError::Corrupt)?,
            ) as usize;
            let key = String::from_utf8(v.get(2..2 + klen).ok_or(LogError::Corrupt)?.to_vec())
                .map_err(|_| LogError::Corrupt)?;
            let frame = Frame::decode(&mut Reader::new(Bytes::copy_from_slice(&v[2 + klen..])))
                .map_err(|_| LogError::Corrupt)?;
            highest = highest.max(seq);
            pending.push((seq, frame, key));
        }
        let mut keys = HashMap::new();
        for item in db.prefix_iterator(b"k") {
            let (k, v) = item?;
            if !k.starts_with(b"k") {
                break;
            }
            let key = String::from_utf8(k[1..].to_vec()).map_err(|_| LogError::Corrupt)?;
            keys.insert(key, decode_key_row(&v).ok_or(LogError::Corrupt)?);
        }
        let (tx, rx) = mpsc::channel(4096);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut task = Task {
            db,
            bridge,
            next: highest + 1,
            keys,
            waiters: HashMap::new(),
            done: done_tx,
            keep_ms: keep.as_millis() as u64,
        };
        let logged: std::collections::HashSet<u64> = pending.iter().map(|p| p.0).collect();
        for (seq, frame, _) in pending {
            task.apply(seq, Some(frame));
        }
        // Keys whose outcome was not recorded before a crash: the broker
        // has it (their messages are applied, being out of the log).
        let unknown: Vec<u64> = task
            .keys
            .values()
            .filter(|r| r.outcome.is_none() && !logged.contains(&r.seq))
            .map(|r| r.seq)
            .collect();
        for seq in unknown {
            task.apply(seq, None);
        }
        tokio::spawn(task.run(rx, done_rx));
        Ok(ServiceLog { tx })
    }

    /// Logs a message (or finds the earlier one with its key).
    pub async fn post(&self, p: Post) -> Result<Posted, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((p, tx))
            .await
            .map_err(|_| "the service log has stopped".to_string())?;
        rx.await
            .map_err(|_| "the service log has stopped".to_string())?
    }
}

impl Task {
    /// Hands a logged message to the broker (`None`: one already applied,
    /// whose outcome is wanted); its outcome comes back on `done`.
    fn apply(&mut self, seq: u64, frame: Option<Frame>) {
        let outcome = self.bridge.apply(seq, frame);
        let done = self.done.clone();
        tokio::spawn(async move {
            if let Ok(o) = outcome.await {
                let _ = done.send((seq, o));
            }
        });
    }

    fn waiter(&mut self, seq: u64) -> Waiter {
        let (tx, rx) = oneshot::channel();
        self.waiters.entry(seq).or_default().push(tx);
        Waiter(rx)
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut done: mpsc::UnboundedReceiver<(u64, ServiceOutcome)>,
    ) {
        let mut sweep = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                first = rx.recv() => {
                    let Some(first) = first else { return };
                    let mut batch = vec![first];
                    while batch.len() < 1024 {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    self.log_batch(batch);
                }
                Some((seq, outcome)) = done.recv() => self.settled(seq, outcome),
                _ = sweep.tick() => self.expire(),
            }
        }
    }

    /// New posts are numbered and written in one synced batch, then applied;
    /// repeats of a key get the first one's outcome.
    fn log_batch(&mut self, batch: Vec<Request>) {
        let mut wb = WriteBatch::default();
        let mut fresh = Vec::new();
        let mut answers = Vec::new();
        let start = self.next;
        for (p, reply) in batch {
            if let Some(k) = &p.key {
                if let Some(row) = self.keys.get(k) {
                    let posted = if row.digest != p.digest {
                        Posted::Conflict
                    } else {
                        let (seq, outcome) = (row.seq, row.outcome);
                        let w = self.waiter(seq);
                        if let Some(o) = outcome {
                            self.wake(seq, o);
                        }
                        Posted::Logged {
                            seq,
                            duplicate: true,
                            outcome: w,
                        }
                    };
                    answers.push((reply, posted));
                    continue;
                }
            }
            let seq = self.next;
            self.next += 1;
            let frame = p.frame(seq);
            let key = p.key.clone().unwrap_or_default();
            let mut v = (key.len() as u16).to_be_bytes().to_vec();
            v.extend_from_slice(key.as_bytes());
            v.extend_from_slice(&tern_core::wire::encode_to_bytes(&frame));
            wb.put([b"i".as_slice(), &seq.to_be_bytes()].concat(), v);
            if let Some(k) = &p.key {
                let row = KeyRow {
                    seq,
                    ms: now_ms(),
                    digest: p.digest.clone(),
                    outcome: None,
                };
                wb.put(
                    [b"k".as_slice(), k.as_bytes()].concat(),
                    encode_key_row(&row),
                );
                self.keys.insert(k.clone(), row);
            }
            fresh.push((seq, frame, reply));
        }
        if !fresh.is_empty() {
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            if let Err(e) = self.db.write_opt(wb, &sync) {
                // Nothing of this batch was logged: give the numbers back.
                self.next = start;
                for (_, _, reply) in fresh {
                    let _ = reply.send(Err(format!("service log write failed: {e}")));
                }
                self.keys.retain(|_, r| r.seq < start);
                fresh = Vec::new();
            }
        }
        for (seq, frame, reply) in fresh {
            let w = self.waiter(seq);
            self.apply(seq, Some(frame));
            let _ = reply.send(Ok(Posted::Logged {
                seq,
                duplicate: false,
                outcome: w,
            }));
        }
        for (reply, posted) in answers {
            let _ = reply.send(Ok(posted));
        }
    }

    fn wake(&mut self, seq: u64, o: ServiceOutcome) {
        for w in self.waiters.remove(&seq).unwrap_or_default() {
            let _ = w.send(o);
        }
    }

    /// Durable in the broker: the pending row goes, the key keeps the
    /// outcome (not synced: the broker's store is the authority, and a lost
    /// update only makes a restart apply the message again, which the
    /// broker recognises as done).
    fn settled(&mut self, seq: u64, o: ServiceOutcome) {
        let mut wb = WriteBatch::default();
        wb.delete([b"i".as_slice(), &seq.to_be_bytes()].concat());
        for (k, row) in self.keys.iter_mut() {
            if row.seq == seq {
                row.outcome = Some(o);
                wb.put(
                    [b"k".as_slice(), k.as_bytes()].concat(),
                    encode_key_row(row),
                );
            }
        }
        if let Err(e) = self.db.write(wb) {
            tracing::warn!(error = %e, "service log: cannot record an outcome");
        }
        self.wake(seq, o);
    }

    /// Keys older than the keeping window are forgotten (settled ones only).
    fn expire(&mut self) {
        let cutoff = now_ms().saturating_sub(self.keep_ms);
        let old: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, r)| r.ms < cutoff && r.outcome.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let mut wb = WriteBatch::default();
        for k in &old {
            self.keys.remove(k);
            wb.delete([b"k".as_slice(), k.as_bytes()].concat());
        }
        if !old.is_empty() {
            let _ = self.db.write(wb);
        }
    }
}
