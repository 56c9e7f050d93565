//! The sidecar's view of its outbox: every operation the app handed in,
//! by id and by idempotency key, with where it stands.
//!
//! The durable copy is the client library's outbox (keyed operations,
//! `tern::client::KeyedRecord`): each record's tag holds the idempotency
//! key, a digest of the request and the time it was accepted, written in
//! the same synced write as the operation. This index is rebuilt from it at
//! start, so a key seen before a crash is still known after it, and an
//! operation is never in neither place.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::client::{KeyedRecord, KeyedState, Settled};

/// What kind of operation a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `POST /v1/messages`.
    Message,
    /// `POST /v1/read`.
    Read,
    /// `POST /v1/recall`.
    Recall,
    /// `POST /v1/conversations/{conv}/messages`.
    Post,
    /// `POST /v1/conversations/{conv}/read`.
    Mark,
    /// A group membership operation (`/v1/groups...`: create, add,
    /// remove, leave).
    Group,
}

/// The tag stored with each operation (short JSON keys: it is on disk once
/// per queued operation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Idempotency key.
    #[serde(rename = "k", skip_serializing_if = "Option::is_none", default)]
    pub key: Option<String>,
    /// SHA-256 (hex) of the operation: the same key with another request
    /// is refused.
    #[serde(rename = "h")]
    pub digest: String,
    /// Unix ms when accepted.
    #[serde(rename = "t")]
    pub accepted_ms: u64,
    /// Kind.
    #[serde(rename = "o")]
    pub kind: Kind,
}

impl Tag {
    /// The bytes stored.
    pub fn encode(&self) -> Bytes {
        serde_json::to_vec(self).expect("a tag serialises").into()
    }

    /// `None` for a tag this sidecar did not write.
    pub fn decode(raw: &[u8]) -> Option<Tag> {
        serde_json::from_slice(raw).ok()
    }
}

/// One operation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its id (the outbox key: increasing, never reused).
    pub id: u64,
    /// Its tag.
    pub tag: Tag,
    /// Where it stands.
    pub state: KeyedState,
}

/// What accepting a request with an idempotency key found.
pub enum Known {
    /// Never seen: go on.
    New,
    /// Seen with the same request: this is its record.
    Same(Record),
    /// Seen with a different request.
    Conflict,
}

/// The index, its waiters and outcomes that arrived before their record.
#[derive(Default)]
pub struct Records {
    by_id: BTreeMap<u64, Record>,
    by_key: HashMap<String, u64>,
    waiters: HashMap<u64, Vec<oneshot::Sender<Settled>>>,
    early: HashMap<u64, Settled>,
    pending: usize,
}

impl Records {
    /// Rebuilt from the outbox.
    pub fn restore(rows: Vec<KeyedRecord>) -> Records {
        let mut r = Records::default();
        for row in rows {
            match Tag::decode(&row.tag) {
                Some(tag) => r.insert(Record {
                    id: row.id,
                    tag,
                    state: row.state,
                }),
                None => tracing::warn!(id = row.id, "outbox row with a foreign tag; ignored"),
            }
        }
        r
    }

    /// Adds a record just accepted (or restored), applying an outcome that
    /// came first.
    pub fn insert(&mut self, mut rec: Record) {
        if let Some(s) = self.early.remove(&rec.id) {
            rec.state = KeyedState::Settled(s);
        }
        if matches!(rec.state, KeyedState::Pending { .. }) {
            self.pending += 1;
        }
        if let Some(k) = &rec.tag.key {
            self.by_key.insert(k.clone(), rec.id);
        }
        if let KeyedState::Settled(s) = rec.state {
            self.wake(rec.id, s);
        }
        self.by_id.insert(rec.id, rec);
    }

    /// What an idempotency key names.
    pub fn lookup(&self, key: &str, digest: &str) -> Known {
        match self.by_key.get(key).and_then(|id| self.by_id.get(id)) {
            None => Known::New,
            Some(r) if r.tag.digest == digest => Known::Same(r.clone()),
            Some(_) => Known::Conflict,
        }
    }

    /// A record by id.
    pub fn get(&self, id: u64) -> Option<&Record> {
        self.by_id.get(&id)
    }

    /// The server settled an operation.
    pub fn settle(&mut self, id: u64, s: Settled) {
        match self.by_id.get_mut(&id) {
            Some(r) => {
                if matches!(r.state, KeyedState::Pending { .. }) {
                    self.pending -= 1;
                }
                r.state = KeyedState::Settled(s);
                self.wake(id, s);
            }
            None => {
                self.early.insert(id, s);
            }
        }
    }

    fn wake(&mut self, id: u64, s: Settled) {
        for w in self.waiters.remove(&id).unwrap_or_default() {
            let _ = w.send(s);
        }
    }

    /// Resolves when the record settles (at once if it has).
    pub fn wait(&mut self, id: u64) -> oneshot::Receiver<Settled> {
        let (tx, rx) = oneshot::channel();
        match self.by_id.get(&id).map(|r| r.state) {
            Some(KeyedState::Settled(s)) => {
                let _ = tx.send(s);
            }
            _ => self.waiters.entry(id).or_default().push(tx),
        }
        rx
    }

    /// Operations not settled yet: the outbox depth.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Records kept (pending and settled).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no record is kept.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Settled records to forget: accepted before `cutoff_ms`, or the
    /// oldest beyond `keep` records. Removed from the index here; the
    /// caller deletes them from the outbox.
    pub fn expire(&mut self, cutoff_ms: u64, keep: usize) -> Vec<u64> {
        let mut excess = self.by_id.len().saturating_sub(keep);
        let mut gone = Vec::new();
        for r in self.by_id.values() {
            let settled = matches!(r.state, KeyedState::Settled(_));
            if settled && (r.tag.accepted_ms < cutoff_ms || excess > 0) {
                gone.push(r.id);
                excess = excess.saturating_sub(1);
            }
        }
        for id in &gone {
            if let Some(r) = self.by_id.remove(id) {
                if let Some(k) = r.tag.key {
                    self.by_key.remove(&k);
                }
            }
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, key: &str, digest: &str, ms: u64) -> Record {
        Record {
            id,
            tag: Tag {
                key: Some(key.into()),
                digest: digest.into(),
                accepted_ms: ms,
                kind: Kind::Message,
            },
            state: KeyedState::Pending { seq: 0 },
        }
    }

    #[test]
    fn keys_outcomes_and_expiry() {
        let mut r = Records::default();
        // An outcome that beats its record is kept for it.
        r.settle(
            2,
            Settled::Stored {
                seq: 5,
                receiver_online: false,
            },
        );
        r.insert(rec(1, "a", "d1", 10));
        r.insert(rec(2, "b", "d2", 20));
        assert_eq!(r.pending(), 1);
        assert!(matches!(r.lookup("a", "d1"), Known::Same(x) if x.id == 1));
        assert!(matches!(r.lookup("a", "other"), Known::Conflict));
        assert!(matches!(r.lookup("c", "d1"), Known::New));
        let mut w = r.wait(1);
        assert!(w.try_recv().is_err());
        r.settle(1, Settled::Rejected { seq: 6, code: 4 });
        assert_eq!(w.try_recv().unwrap(), Settled::Rejected { seq: 6, code: 4 });
        assert_eq!(r.pending(), 0);
        // Only settled records expire; the key is free again after.
        assert_eq!(r.expire(15, 100), vec![1]);
        assert!(matches!(r.lookup("a", "d1"), Known::New));
        assert_eq!(r.expire(0, 0), vec![2]);
        assert!(r.is_empty());
    }

    #[test]
    fn tags_round_trip_and_foreign_tags_are_skipped() {
        let t = rec(1, "k", "d", 3).tag;
        assert_eq!(Tag::decode(&t.encode()), Some(t.clone()));
        let restored = Records::restore(vec![
            KeyedRecord {
                id: 1,
                tag: t.encode(),
                state: KeyedState::Pending { seq: 4 },
            },
            KeyedRecord {
                id: 2,
                tag: Bytes::from_static(b"\x00not json"),
                state: KeyedState::Pending { seq: 5 },
            },
        ]);
        assert_eq!(restored.len(), 1);
        assert_eq!(restored.pending(), 1);
    }
}
