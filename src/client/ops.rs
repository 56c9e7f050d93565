//! The operations a [`Client`](super::Client) has submitted and the server
//! has not settled yet, with their durable copies in the outbox.
//!
//! The ordering rule that makes a restart safe: an operation is stored
//! under the uplink sequence the core gave it before it is sent (the core
//! reports sequences given at a login as `Sequenced`, and the driver stores
//! them before it transmits). A restart then replays it under that
//! sequence, and the server recognises it if it had stored it already.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;

use tern_core::client::{Checkpoint, ClientConn, OpId, Outgoing};
use tern_core::time::Time;
use tokio::sync::{mpsc, oneshot};

use super::keyed::{KeyedOutcome, KeyedRecord, KeyedState, Settled};
use super::outbox::Outbox;
use super::{ClientError, Sent};

type Waiter = oneshot::Sender<Result<Sent, ClientError>>;

struct Pending {
    /// The outbox key.
    key: u64,
    /// The uplink sequence stored with the operation (0: none yet).
    seq: u64,
    op: Outgoing,
    waiter: Option<Waiter>,
    /// The application's record of a keyed operation (`keyed.rs`).
    tag: Option<Bytes>,
}

pub(super) struct Ops {
    outbox: Option<Outbox>,
    pending: HashMap<OpId, Pending>,
    next_key: u64,
    /// Where settled keyed operations are reported, once asked for.
    pub(super) keyed_tx: Option<mpsc::UnboundedSender<KeyedOutcome>>,
}

/// What a client starts from: its operations and the saved checkpoint.
pub(super) struct Restored {
    pub(super) ops: Ops,
    /// For `ClientConfig::resume`: `OpId(i + 1)` is the i-th.
    pub(super) resume: Vec<(u64, Outgoing)>,
    pub(super) checkpoint: Checkpoint,
    /// The address token saved by the last run.
    pub(super) address_token: Option<Bytes>,
}

impl Ops {
    /// Opens the state folder (if any) and restores what it holds.
    pub(super) fn restore(dir: Option<&Path>) -> Result<Restored, ClientError> {
        let mut ops = Ops {
            outbox: None,
            pending: HashMap::new(),
            next_key: 1,
            keyed_tx: None,
        };
        let Some(dir) = dir else {
            return Ok(Restored {
                ops,
                resume: Vec::new(),
                checkpoint: Checkpoint::default(),
                address_token: None,
            });
        };
        let outbox = Outbox::open(dir)?;
        let (epoch, seq) = outbox.checkpoint()?;
        let address_token = outbox.address_token()?;
        let mut tags: HashMap<u64, Bytes> = outbox.tags()?.into_iter().collect();
        for (key, _, _) in outbox.settled()? {
            ops.next_key = ops.next_key.max(key + 1);
        }
        let mut resume = Vec::new();
        for (i, row) in outbox.rows()?.into_iter().enumerate() {
            ops.next_key = ops.next_key.max(row.key + 1);
            ops.pending.insert(
                OpId(i as u64 + 1),
                Pending {
                    key: row.key,
                    seq: row.seq,
                    op: row.op.clone(),
                    waiter: None,
                    tag: tags.remove(&row.key),
                },
            );
            resume.push((row.seq, row.op));
        }
        ops.outbox = Some(outbox);
        Ok(Restored {
            ops,
            resume,
            checkpoint: Checkpoint { epoch, seq },
            address_token,
        })
    }

    /// Whether a state folder keeps the outbox and checkpoint.
    pub(super) fn is_durable(&self) -> bool {
        self.outbox.is_some()
    }

    /// Stores the operation (under the sequence it gets at once, if any),
    /// then queues it in `conn`.
    pub(super) fn submit(
        &mut self,
        conn: &mut ClientConn,
        now: Time,
        op: Outgoing,
        waiter: Waiter,
    ) {
        match self.store_and_queue(conn, now, op, None) {
            Ok(p) => {
                self.insert(p, Some(waiter), None);
            }
            Err(e) => {
                let _ = waiter.send(Err(e));
            }
        }
    }

    /// As [`Ops::submit`] for a keyed operation: `tag` is stored with it in
    /// the same write; the answer is its key once stored and queued.
    pub(super) fn submit_keyed(
        &mut self,
        conn: &mut ClientConn,
        now: Time,
        op: Outgoing,
        tag: Bytes,
        reply: oneshot::Sender<Result<u64, ClientError>>,
    ) {
        let r = self
            .store_and_queue(conn, now, op, Some(&tag))
            .map(|p| self.insert(p, None, Some(tag)));
        let _ = reply.send(r);
    }

    /// Stores the operation (under the sequence it gets at once, if any,
    /// with its tag if keyed), then queues it in `conn`.
    fn store_and_queue(
        &mut self,
        conn: &mut ClientConn,
        now: Time,
        op: Outgoing,
        tag: Option<&Bytes>,
    ) -> Result<(OpId, u64, u64, Outgoing), ClientError> {
        let key = self.next_key;
        let seq = conn.next_seq();
        if let Some(o) = &self.outbox {
            match tag {
                Some(t) => o.put_keyed(key, seq, &op, t)?,
                None => o.put(key, seq, &op)?,
            }
        }
        match conn.submit(now, op.clone()) {
            Ok(id) => {
                self.next_key += 1;
                Ok((id, key, seq, op))
            }
            Err(_) => {
                if let Some(o) = &self.outbox {
                    let _ = match tag {
                        Some(_) => o.remove_keyed(key),
                        None => o.remove(key),
                    };
                }
                Err(ClientError::QueueFull)
            }
        }
    }

    fn insert(
        &mut self,
        (id, key, seq, op): (OpId, u64, u64, Outgoing),
        waiter: Option<Waiter>,
        tag: Option<Bytes>,
    ) -> u64 {
        self.pending.insert(
            id,
            Pending {
                key,
                seq,
                op,
                waiter,
                tag,
            },
        );
        key
    }

    /// An operation got its sequence (at a login) or a new one (the server
    /// lost operations): stored with it before it is sent.
    pub(super) fn sequenced(&mut self, op: OpId, seq: u64) {
        let Some(p) = self.pending.get_mut(&op) else {
            return;
        };
        if let Some(o) = &self.outbox {
            // The tag row is keyed by `p.key` and stays as it is.
            if let Err(e) = o.put(p.key, seq, &p.op) {
                tracing::error!(error = %e, "cannot update the outbox");
                return;
            }
        }
        p.seq = seq;
    }

    /// The server stored or refused the operation: forget it.
    pub(super) fn settle(&mut self, op: OpId, result: Result<Sent, ClientError>) {
        if let Some(p) = self.pending.remove(&op) {
            if let Some(tag) = &p.tag {
                self.settle_keyed(&p, tag, &result);
            } else if let Some(o) = &self.outbox {
                if let Err(e) = o.remove(p.key) {
                    tracing::error!(error = %e, "cannot update the outbox");
                }
            }
            if let Some(w) = p.waiter {
                let _ = w.send(result);
            }
        }
    }

    /// A keyed operation settled: its row becomes a settled row (one
    /// write), then the application is told.
    fn settle_keyed(&self, p: &Pending, tag: &Bytes, result: &Result<Sent, ClientError>) {
        let settled = match result {
            Ok(s) => Settled::Stored {
                seq: s.seq,
                receiver_online: s.receiver_online,
            },
            Err(ClientError::Rejected(code)) => Settled::Rejected {
                seq: p.seq,
                code: *code,
            },
            Err(_) => return,
        };
        if let Some(o) = &self.outbox {
            if let Err(e) = o.settle_keyed(p.key, &settled, tag) {
                // The row stays pending: a restart replays it under its
                // sequence and the server answers again.
                tracing::error!(error = %e, "cannot update the outbox");
                return;
            }
        }
        if let Some(tx) = &self.keyed_tx {
            let _ = tx.send(KeyedOutcome {
                id: p.key,
                tag: tag.clone(),
                settled,
            });
        }
    }

    /// Every keyed operation: pending ones, then settled rows not forgotten.
    pub(super) fn keyed_records(&self) -> Result<Vec<KeyedRecord>, ClientError> {
        let mut out: Vec<KeyedRecord> = self
            .pending
            .values()
            .filter_map(|p| {
                Some(KeyedRecord {
                    id: p.key,
                    tag: p.tag.clone()?,
                    state: KeyedState::Pending { seq: p.seq },
                })
            })
            .collect();
        if let Some(o) = &self.outbox {
            for (id, s, tag) in o.settled()? {
                out.push(KeyedRecord {
                    id,
                    tag,
                    state: KeyedState::Settled(s),
                });
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Drops settled rows the application no longer needs.
    pub(super) fn forget_keyed(&self, ids: &[u64]) -> Result<(), ClientError> {
        match &self.outbox {
            Some(o) => Ok(o.forget_settled(ids)?),
            None => Ok(()),
        }
    }

    /// Fails every waiting `send` (the operations stay in the outbox).
    pub(super) fn fail_all(&mut self, err: impl Fn() -> ClientError) {
        for (_, p) in self.pending.drain() {
            if let Some(w) = p.waiter {
                let _ = w.send(Err(err()));
            }
        }
    }

    /// Keeps the server's address token for the next start (best effort: a
    /// lost token costs one RETRY round trip).
    pub(super) fn save_address_token(&self, token: &[u8]) {
        if let Some(o) = &self.outbox {
            if let Err(e) = o.set_address_token(token) {
                tracing::warn!(error = %e, "cannot save the address token");
            }
        }
    }

    /// Saves the checkpoint durably.
    pub(super) fn save_checkpoint(&self, cp: Checkpoint) -> Result<(), ClientError> {
        match &self.outbox {
            Some(o) => Ok(o.set_checkpoint(cp.epoch, cp.seq)?),
            None => Ok(()),
        }
    }

    /// True when every pending operation the core has numbered is stored
    /// under that number (checked before each transmission in debug builds).
    pub(super) fn sequences_stored(&self, conn: &ClientConn) -> bool {
        let Some(s) = conn.uplink() else {
            return true; // nothing numbered yet
        };
        self.outbox.is_none()
            || self
                .pending
                .iter()
                .all(|(op, p)| s.get(p.seq).is_some_and(|(id, _)| id == op))
    }

    /// The state folder's database, shared with the local history (`None`:
    /// memory only).
    pub(super) fn state_db(&self) -> Option<std::sync::Arc<rocksdb::DB>> {
        self.outbox.as_ref().map(|o| o.db())
    }
}
