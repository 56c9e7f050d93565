//! The uplink: operations restored from a durable outbox, lining the queue
//! up with what the server stored at each login, and the server's ACKs.

use std::time::Duration;

use crate::reliability::{Sender, SenderEvent};
use crate::time::Time;
use crate::wire::Ack;

use super::{ClientConn, ClientEvent, OpId, Outgoing};

impl ClientConn {
    /// Queues the operations of [`super::ClientConfig::resume`]: numbered
    /// ones under their sequences, then unnumbered ones behind them (they
    /// get a sequence now if there is a base, reported as `Sequenced`).
    pub(super) fn resume(&mut self, now: Time, rows: Vec<(u64, Outgoing)>) {
        let ids = (1..).map(OpId);
        let rows: Vec<(OpId, u64, Outgoing)> =
            ids.zip(rows).map(|(id, (seq, op))| (id, seq, op)).collect();
        self.next_op = rows.len() as u64 + 1;
        if let Some(first) = rows.iter().map(|r| r.1).find(|s| *s != 0) {
            let mut s = Sender::new(self.cfg.uplink.clone(), first, self.seed);
            for (id, seq, op) in &rows {
                // Capacity was checked when these were first accepted.
                if *seq != 0 {
                    let _ = s.push(now, (*id, op.clone()));
                }
            }
            self.uplink = Some(s);
        }
        for (id, seq, op) in rows {
            if seq != 0 {
                continue;
            }
            match &mut self.uplink {
                Some(s) => {
                    if let Ok(seq) = s.push(now, (id, op)) {
                        self.events
                            .push_back(ClientEvent::Sequenced { op: id, seq });
                    }
                }
                None => self.waiting.push_back((id, op)),
            }
        }
    }

    /// Lines the uplink queue up with what the server has stored.
    pub(super) fn reconcile_uplink(&mut self, now: Time, next: u64, login_rtt: Option<Duration>) {
        let (mut items, rtt) = match self.uplink.take() {
            Some(mut s) => (s.drain(), Some(s.rtt().clone())),
            None => (Vec::new(), None),
        };
        let seed = self.seed ^ next;
        let mut sender = Sender::new(self.cfg.uplink.clone(), next, seed);
        let mut rtt = rtt.unwrap_or_else(|| sender.rtt().clone());
        if let Some(sample) = login_rtt {
            rtt.on_sample(sample, Duration::ZERO);
        }
        sender = sender.with_rtt(rtt);
        // Everything below `next` was stored (its ACK was lost).
        items.retain(|(seq, (op, _))| {
            if *seq < next {
                let ev = match take_refusal(&mut self.rejected, self.session_id, *seq) {
                    Some(code) => ClientEvent::Rejected {
                        op: *op,
                        seq: *seq,
                        code,
                    },
                    None => ClientEvent::Stored {
                        op: *op,
                        seq: *seq,
                        receiver_online: false,
                    },
                };
                self.events.push_back(ev);
                false
            } else {
                true
            }
        });
        for (old_seq, item) in items
            .into_iter()
            .chain(self.waiting.drain(..).map(|i| (0, i)))
        {
            let op = item.0;
            if let Ok(seq) = sender.push(now, item) {
                if old_seq != 0 && old_seq != seq {
                    self.events.push_back(ClientEvent::Resequenced {
                        op,
                        old: old_seq,
                        new: seq,
                    });
                }
                if old_seq == 0 {
                    self.events.push_back(ClientEvent::Sequenced { op, seq });
                }
            }
        }
        self.uplink = Some(sender);
    }

    /// An ACK carried by a datagram of session `sid`: while logging in,
    /// that may be the session just left (a late ACK is still true), and
    /// the refusals that rode ahead of it were marked with that session.
    pub(super) fn on_ack(&mut self, now: Time, sid: u64, ack: Ack) {
        let Some(s) = &mut self.uplink else { return };
        s.handle_ack(
            now,
            ack.cumulative,
            &ack.ranges,
            Duration::from_micros(ack.delay_us),
        );
        let v1 = self.version == crate::wire::VERSION;
        while let Some(ev) = s.poll_event() {
            match ev {
                SenderEvent::Acked { seq, item: (op, o) } => {
                    let refused = take_refusal(&mut self.rejected, sid, seq).or_else(|| {
                        // Sent as a version 1 no-op: not carried out.
                        (v1 && !o.in_version_1())
                            .then_some(crate::wire::ErrorCode::NotAllowed as u64)
                    });
                    let ev = match refused {
                        Some(code) => ClientEvent::Rejected { op, seq, code },
                        None => ClientEvent::Stored {
                            op,
                            seq,
                            receiver_online: ack.receiver_online,
                        },
                    };
                    self.events.push_back(ev);
                }
                SenderEvent::Failed { seq, .. } => {
                    self.events.push_back(ClientEvent::SendFailed { seq })
                }
            }
        }
    }
}

/// The refusal of operation `seq` being settled on `session`, if that
/// session marked it (a mark from an earlier session is void: see
/// `ClientConn::rejected`).
fn take_refusal(
    rejected: &mut std::collections::HashMap<u64, (u64, u64)>,
    session: u64,
    seq: u64,
) -> Option<u64> {
    rejected
        .remove(&seq)
        .and_then(|(code, sid)| (sid == session).then_some(code))
}
