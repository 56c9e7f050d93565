//! What a device writes to the journals: each settled operation (ACK,
//! READ) in `sends.jsonl`, and every event the client library hands it in
//! its receive journal, before releasing the entries (an app journals
//! before it releases).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use tern::client::{Client, ClientError, ConvKind, Event, ReceiptStatus, Sent, SyncBody};

use super::batch::Op;
use super::device::DeviceTask;
use super::journal::{parse_payload, EntryKind, EntryRecord, RecvRecord, SendRecord};

impl DeviceTask {
    pub(super) fn settled(&mut self, op: Op, res: Result<Sent, ClientError>) {
        let t_us = self.shared.clock.us();
        match (op, res) {
            (Op::Msg { n, conv, to }, Ok(sent)) => {
                let group = to == super::GROUP_TO;
                let _ = self.shared.sends.append(&SendRecord::Ack {
                    t_us,
                    user: self.user,
                    device: self.device,
                    n,
                    conv,
                    to,
                    seq: sent.seq,
                    online: sent.receiver_online,
                });
                self.shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                if group {
                    // Checked in the group's history after settling: past
                    // the threshold, offline members are handed nothing.
                    self.shared
                        .counters
                        .group_posts
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    self.shared.tracker.lock().expect("tracker").on_ack((
                        self.user,
                        self.device,
                        n,
                    ));
                }
            }
            (
                Op::Read {
                    conv,
                    peer,
                    target_device,
                    target_seq,
                },
                Ok(sent),
            ) => {
                let _ = self.shared.sends.append(&SendRecord::Read {
                    t_us,
                    user: self.user,
                    device: self.device,
                    conv,
                    peer,
                    target_device,
                    target_seq,
                    seq: sent.seq,
                });
                self.shared.counters.reads.fetch_add(1, Ordering::Relaxed);
            }
            (Op::Mark { conv, up_to }, Ok(sent)) => {
                let _ = self.shared.sends.append(&SendRecord::MarkRead {
                    t_us,
                    user: self.user,
                    device: self.device,
                    conv: conv.to_string(),
                    up_to,
                    seq: sent.seq,
                });
                self.shared.counters.marks.fetch_add(1, Ordering::Relaxed);
            }
            (_, Err(e)) => {
                tracing::debug!(user = self.user, device = self.device, error = %e, "operation failed");
                self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Journals every event available now, then releases what was journaled.
    /// Returns true if the client has stopped.
    pub(super) async fn drain(&mut self, client: &mut Client) -> bool {
        let mut stopped = false;
        loop {
            match tokio::time::timeout(Duration::ZERO, client.recv()).await {
                Ok(Some(ev)) => self.handle(ev),
                Ok(None) => {
                    stopped = true;
                    break;
                }
                Err(_) => break,
            }
        }
        self.release(client).await;
        stopped
    }

    async fn release(&mut self, client: &Client) {
        if let Some(seq) = self.to_release.take() {
            let _ = self.journal.flush();
            let _ = client.release(seq).await;
        }
    }

    pub(super) fn handle(&mut self, ev: Event) {
        let t_us = self.shared.clock.us();
        match ev {
            Event::Entry(d) => {
                // Entries this user's own devices caused (own copies, read
                // positions, deletions) are multi-device sync, not
                // deliveries.
                let own = d.from_user == self.user
                    && matches!(
                        d.body,
                        SyncBody::Message { .. } | SyncBody::Read | SyncBody::Deleted { .. }
                    );
                let mut rec = EntryRecord {
                    t_us,
                    seq: d.seq,
                    conv: d.topic,
                    from_user: d.from_user,
                    from_device: d.from_device,
                    from_seq: d.from_seq,
                    kind: if own {
                        EntryKind::Sync
                    } else if d.conv.kind == ConvKind::Group {
                        EntryKind::Group
                    } else {
                        EntryKind::Message
                    },
                    payload: None,
                    status: None,
                    target_device: None,
                    target_seq: None,
                    cref: Some(d.conv.to_string()),
                    conv_seq: Some(d.conv_seq),
                    sync: None,
                };
                match &d.body {
                    _ if own => {
                        rec.sync = Some(
                            match &d.body {
                                SyncBody::Message { payload, .. } => {
                                    rec.payload =
                                        Some(String::from_utf8_lossy(payload).into_owned());
                                    "own"
                                }
                                SyncBody::Read => "read",
                                _ => "deleted",
                            }
                            .into(),
                        );
                    }
                    SyncBody::Message { payload, .. } if d.conv.kind == ConvKind::Group => {
                        // Checked against the group's history; no READ
                        // receipts in groups, read positions yes.
                        rec.payload = Some(String::from_utf8_lossy(payload).into_owned());
                        let newest = self.newest.entry(d.conv).or_default();
                        *newest = (*newest).max(d.conv_seq);
                        if !self.late
                            && self.rng.gen_bool(self.shared.params.mark_read_prob)
                            && self.pending_marks.len() < 4
                        {
                            self.pending_marks.push((d.conv, d.conv_seq));
                        }
                    }
                    SyncBody::Message { payload, .. } => {
                        let text = String::from_utf8_lossy(payload).into_owned();
                        if let Some(id) = parse_payload(&text).filter(|_| !self.late) {
                            self.shared
                                .tracker
                                .lock()
                                .expect("tracker")
                                .on_seen((self.user, self.device), id);
                        }
                        rec.payload = Some(text);
                        let newest = self.newest.entry(d.conv).or_default();
                        *newest = (*newest).max(d.conv_seq);
                        if !self.late
                            && d.conv_seq > 0
                            && self.rng.gen_bool(self.shared.params.mark_read_prob)
                            && self.pending_marks.len() < 4
                        {
                            self.pending_marks.push((d.conv, d.conv_seq));
                        }
                        if self.rng.gen_bool(self.shared.params.read_prob)
                            && self.pending_reads.len() < 4
                        {
                            self.pending_reads.push((
                                d.topic,
                                d.from_user,
                                d.from_device,
                                d.from_seq,
                            ));
                        }
                    }
                    SyncBody::Receipt {
                        status,
                        target_device,
                        target_seq,
                    } => {
                        rec.kind = EntryKind::Receipt;
                        rec.status = Some(
                            match status {
                                ReceiptStatus::Delivered => "delivered",
                                ReceiptStatus::Read => "read",
                            }
                            .into(),
                        );
                        rec.target_device = Some(*target_device);
                        rec.target_seq = Some(*target_seq);
                    }
                    SyncBody::Recall {
                        target_device,
                        target_seq,
                    } => {
                        rec.kind = EntryKind::Recall;
                        rec.target_device = Some(*target_device);
                        rec.target_seq = Some(*target_seq);
                    }
                    // Only this user's devices cause these (above); a
                    // membership event is journaled as a group record.
                    SyncBody::Read | SyncBody::Deleted { .. } | SyncBody::Member(_) => {}
                }
                let _ = self.journal.append(&RecvRecord::Entry(rec));
                self.last_inbox = self.last_inbox.max(d.seq);
                self.to_release = Some(self.to_release.map_or(d.seq, |s| s.max(d.seq)));
            }
            Event::Connected {
                head,
                checkpoint,
                pull_mode,
                ..
            } => {
                self.shared.counters.logins.fetch_add(1, Ordering::Relaxed);
                let _ = self.journal.append(&RecvRecord::Connected {
                    t_us,
                    head,
                    checkpoint,
                    pull_mode,
                });
            }
            Event::Downgraded => {
                let _ = self.journal.append(&RecvRecord::Downgraded { t_us });
            }
            Event::Disconnected
            | Event::Notify { .. }
            | Event::PageEnd { .. }
            | Event::StorageUnavailable { .. } => {}
        }
    }
}
