//! One logged-in device connection, as the broker sees it.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Peer;
use crate::seal::{Channel, KEY_LEN, SEAL_OVERHEAD};
use crate::store::Origin;
use crate::time::Time;
use crate::wire::{Frame, Header, PacketBuilder};

/// An inbox entry in the downlink retransmission queue.
#[derive(Debug, Clone)]
pub(crate) struct DownItem {
    /// Encoded DELIVER frame.
    pub frame: Bytes,
    /// Who the entry is from, for DELIVERED receipts (`None`: not a message).
    pub origin: Option<Origin>,
}

/// How entries reach the device.
pub(crate) enum Downlink {
    /// The backlog was large at login: the device pulls pages and is sent
    /// NOTIFY hints; pushing starts once a pull reaches the end.
    Pull,
    /// Entries are pushed through a retransmission queue (allocated when
    /// the first entry is pushed).
    Push(super::lazy_sender::LazySender),
}

/// The sealed-UDP state of a session (see `crate::seal`).
pub(crate) struct SessionSeal {
    pub channel: Channel,
    /// Client clock of the handshake that opened the session: only a newer
    /// handshake may replace it (a replayed message 1 is older).
    pub client_time_ms: u64,
    /// The client's ephemeral key: a message 1 repeating it is a retransmission.
    pub ephemeral: [u8; KEY_LEN],
    /// The handshake answer, kept until the client's first sealed packet
    /// shows it arrived, so a retransmitted message 1 gets it again.
    pub reply: Option<Bytes>,
    /// The answer must go out with the next flush.
    pub reply_due: bool,
}

/// Something queued to go out on this session.
pub(crate) enum Out {
    Frame(Frame),
    Raw(Bytes),
}

pub(crate) struct Session {
    pub id: u64,
    pub user: u64,
    pub device: u32,
    /// Where its datagrams come from and answers go (follows address changes).
    pub peer: Peer,
    pub highest_pn: u64,
    /// The client's datagrams that never arrived: the downlink's first
    /// estimate of the path (`reliability/gaps.rs`).
    pub gaps: crate::reliability::InboundGaps,
    pub next_pn: u64,
    /// When the session was opened: a login whose cookie was issued later
    /// cannot be a late copy of the one that opened it.
    pub opened: Time,
    pub last_heard: Time,
    /// Uplink reorder buffer and owed ACKs, made on the first operation.
    pub uplink: super::lazy_uplink::LazyUplink,
    pub down: Downlink,
    /// The downlink retry budget ran out; retried on the next heartbeat.
    pub unreachable: bool,
    pub out: VecDeque<Out>,
    pub notify: Option<u64>,
    /// Message entries of the last pull page, for receipts when acknowledged.
    pub last_page: Vec<(u64, Origin)>,
    /// The deadline of its live entry in the broker's timer heap (any
    /// earlier entry for it is stale: `broker/timers.rs`).
    pub scheduled: Option<Time>,
    /// Packet number of the LOGIN that opened the session.
    pub login_pn: u64,
    /// Protocol version of the session (that of its LOGIN).
    pub version: u8,
    /// Rate limit of this session's datagrams.
    pub bucket: super::admission::Bucket,
    /// Keys and handshake state when the session is sealed.
    pub seal: Option<Box<SessionSeal>>,
}

impl Session {
    /// Whether anything waits to be sent now.
    pub fn has_output(&self, now: Time) -> bool {
        !self.out.is_empty()
            || self.notify.is_some()
            || self.seal.as_ref().is_some_and(|s| s.reply_due)
            || self.uplink.should_send(now)
            || matches!(&self.down, Downlink::Push(s) if s.has_transmit())
    }

    /// Earliest time this session needs attention.
    pub fn next_deadline(&self, idle_timeout: std::time::Duration) -> Time {
        let mut t = self.last_heard + idle_timeout;
        if let Some(a) = self.uplink.poll_timeout() {
            t = t.min(a);
        }
        if let Downlink::Push(s) = &self.down {
            if let Some(d) = s.poll_timeout() {
                t = t.min(d);
            }
        }
        t
    }

    fn header(&mut self) -> Header {
        let h = Header {
            session_id: self.id,
            packet_number: self.next_pn,
            version: self.version,
        };
        self.next_pn += 1;
        h
    }

    /// Packs ACK frames, queued frames and downlink transmissions into
    /// datagrams of at most `max` bytes.
    pub fn build(
        &mut self,
        now: Time,
        ack_frames: Vec<Frame>,
        max: usize,
        sink: &mut VecDeque<(Peer, Bytes)>,
    ) {
        let addr = self.peer;
        let max = match &mut self.seal {
            Some(seal) => {
                if std::mem::take(&mut seal.reply_due) {
                    if let Some(reply) = &seal.reply {
                        sink.push_back((addr, reply.clone()));
                    }
                }
                max - SEAL_OVERHEAD
            }
            None => max,
        };
        let mut pb = PacketBuilder::new(self.header(), max);
        let mut flush = |pb: &mut PacketBuilder, this: &mut Session| {
            let full = std::mem::replace(pb, PacketBuilder::new(this.header(), max));
            sink.push_back((addr, protect(&this.seal, full.finish())));
        };
        if !ack_frames.is_empty() {
            self.uplink.on_ack_sent();
        }
        for f in ack_frames {
            if pb.push(&f).is_err() {
                flush(&mut pb, self);
                let _ = pb.push(&f);
            }
        }
        if let Some(head) = self.notify.take() {
            let f = Frame::Notify(head);
            if pb.push(&f).is_err() {
                flush(&mut pb, self);
                let _ = pb.push(&f);
            }
        }
        while let Some(item) = self.out.pop_front() {
            let ok = match &item {
                Out::Frame(f) => pb.push(f).is_ok(),
                Out::Raw(b) => pb.push_encoded(b).is_ok(),
            };
            if !ok {
                if pb.is_empty() {
                    continue; // cannot fit even alone: drop (never happens for valid frames)
                }
                flush(&mut pb, self);
                self.out.push_front(item);
            }
        }
        // Drained: give the buffer back. A frame is over a hundred bytes,
        // so the few a login queues would otherwise stay allocated for the
        // life of every idle session (544 bytes each, measured with
        // heaptrack: a third of an idle session's memory).
        if self.out.capacity() > 0 {
            self.out = VecDeque::new();
        }
        if let Downlink::Push(sender) = &mut self.down {
            while let Some((_, item)) = sender.poll_transmit(now) {
                if pb.push_encoded(&item.frame).is_err() {
                    // Full: this one goes first in the next datagram.
                    let full = std::mem::replace(
                        &mut pb,
                        PacketBuilder::new(
                            Header {
                                session_id: self.id,
                                packet_number: self.next_pn,
                                version: self.version,
                            },
                            max,
                        ),
                    );
                    self.next_pn += 1;
                    sink.push_back((addr, protect(&self.seal, full.finish())));
                    let _ = pb.push_encoded(&item.frame);
                }
            }
        }
        if !pb.is_empty() {
            sink.push_back((addr, protect(&self.seal, pb.finish())));
        } else {
            // The header was numbered but never sent; give the number back.
            self.next_pn -= 1;
        }
    }
}

/// Seals a finished packet if the session is sealed.
fn protect(seal: &Option<Box<SessionSeal>>, clear: Bytes) -> Bytes {
    match seal {
        Some(seal) => seal.channel.seal(&clear),
        None => clear,
    }
}
