//! Tern's own timers on the point-to-point harness: the real [`Sender`],
//! [`Receiver`] and [`AckCoalescer`] with default configs, exchanging real
//! SEND and ACK frames packed by [`PacketBuilder`] (CRC trailer included), and
//! handing messages up strictly in order (head-of-line blocking included).

use std::time::Duration;

use bytes::Bytes;
use tern_core::reliability::{
    AckCoalescer, Arrival, InboundGaps, Receiver, ReceiverConfig, Sender, SenderConfig,
    SenderEvent, SenderStats,
};
use tern_core::time::Time;
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::{Ack, Frame, Header, Packet, PacketBuilder, Send};

use crate::net::Policy;

/// Ids written into every SEND frame (see the wire-overhead section).
pub const TO_USER: u64 = 1_000_000;
pub const CONV: u64 = 1_000_000_000;

/// A 20-byte UTF-8 text message.
pub const TEXT: &[u8; 20] = b"see you at 7, ok? :)";

pub struct TernFlow {
    sender: Sender<Bytes>,
    /// Messages the application could not queue yet (the sender's queue was
    /// full: back-pressure); they keep their submit time.
    backlog: std::collections::VecDeque<usize>,
    /// Most messages held by the sender at once (its queue).
    pub max_queued: usize,
    /// Times the application met a full queue.
    pub queue_full: u64,
    receiver: Receiver<()>,
    acks: AckCoalescer,
    session_id: u64,
    sender_pn: u64,
    receiver_pn: u64,
    inbound: InboundGaps,
    failures: u64,
    /// ACK at once on every arrival while a gap is open (issue 14), not
    /// only on out-of-order ones.
    gap_ack: bool,
}

impl TernFlow {
    /// A flow with the given sender timers (the benchmark uses the defaults;
    /// the diagnostic row changes one knob).
    pub fn new(cfg: SenderConfig, gap_ack: bool, seed: u64) -> Self {
        let rcfg = ReceiverConfig::default();
        TernFlow {
            sender: Sender::new(cfg, 1, seed),
            backlog: Default::default(),
            max_queued: 0,
            queue_full: 0,
            acks: AckCoalescer::new(&rcfg),
            receiver: Receiver::new(rcfg, 0),
            session_id: seed | 1,
            sender_pn: 1,
            receiver_pn: 1,
            inbound: InboundGaps::default(),
            failures: 0,
            gap_ack,
        }
    }

    pub fn sender_stats(&self) -> &SenderStats {
        self.sender.stats()
    }

    /// Copies that reached the receiver although it already had them.
    pub fn duplicates(&self) -> u64 {
        self.receiver.stats().duplicates
    }

    fn drain_events(&mut self, now: Time) {
        while let Some(ev) = self.sender.poll_event() {
            if let SenderEvent::Failed { .. } = ev {
                // The client would log in again and replay; reviving at once
                // is the optimistic version of that. Counted and reported.
                self.failures += 1;
                self.sender.revive(now);
            }
        }
    }

    /// Moves waiting messages into the sender while its queue has room.
    fn admit(&mut self, now: u64) {
        while let Some(&idx) = self.backlog.front() {
            match self
                .sender
                .push(Time::from_micros(now), Bytes::from_static(TEXT))
            {
                Ok(seq) => {
                    assert_eq!(seq, idx as u64 + 1);
                    self.backlog.pop_front();
                }
                Err(_) => {
                    self.queue_full += 1;
                    break;
                }
            }
        }
        self.max_queued = self.max_queued.max(self.sender.len());
    }

    fn header(pn: &mut u64, session_id: u64) -> Header {
        let h = Header {
            session_id,
            packet_number: *pn,
            version: tern_core::wire::VERSION,
        };
        *pn += 1;
        h
    }
}

impl Policy for TernFlow {
    fn submit(&mut self, now: u64, idx: usize) {
        self.backlog.push_back(idx);
        self.admit(now);
    }

    fn at_receiver(&mut self, now: u64, datagram: Bytes, delivered: &mut Vec<usize>) {
        let now = Time::from_micros(now);
        let packet = Packet::decode(datagram).expect("links do not corrupt here");
        for f in packet.frames {
            if let Frame::Send(s) = f {
                // As `ClientConn::on_entry`: anything but an in-order
                // arrival asks for an immediate ACK (a duplicate only when no
                // ACK is owed), and so does any arrival while a gap is open.
                let arrival = self.receiver.on_receive(s.seq, ());
                let gap = self.gap_ack && self.receiver.buffered() > 0;
                if arrival == Arrival::Duplicate && !gap {
                    self.acks.on_duplicate(now);
                } else {
                    self.acks
                        .on_ack_eliciting(now, arrival != Arrival::InOrder || gap);
                }
            }
        }
        while let Some((seq, ())) = self.receiver.poll_deliver() {
            delivered.push(seq as usize - 1);
        }
    }

    fn at_sender(&mut self, now: u64, datagram: Bytes) {
        let now = Time::from_micros(now);
        let packet = Packet::decode(datagram).expect("links do not corrupt here");
        // As the client and the server do: the receiver's datagrams lost,
        // from their packet numbers, are the sender's estimate of the path.
        self.inbound.on_packet(packet.header.packet_number);
        if let Some(loss) = self.inbound.loss() {
            self.sender.path_loss_hint(loss);
        }
        for f in packet.frames {
            if let Frame::Ack(a) = f {
                self.sender.handle_ack(
                    now,
                    a.cumulative,
                    &a.ranges,
                    Duration::from_micros(a.delay_us),
                );
            }
        }
        self.drain_events(now);
    }

    fn on_timeout(&mut self, now: u64) {
        let now = Time::from_micros(now);
        self.sender.handle_timeout(now);
        self.drain_events(now);
    }

    fn transmit(&mut self, now: u64, data: &mut Vec<Bytes>, acks: &mut Vec<Bytes>) {
        if !self.backlog.is_empty() && !self.sender.is_full() {
            self.admit(now);
        }
        let t = Time::from_micros(now);
        // Sender: pack as many SEND frames per datagram as fit, like
        // `ClientConn::build_active`.
        while self.sender.has_transmit() {
            let mut pb = PacketBuilder::new(
                Self::header(&mut self.sender_pn, self.session_id),
                MAX_DATAGRAM,
            );
            while let Some((seq, payload)) = self.sender.peek_transmit() {
                let frame = Frame::Send(Send {
                    seq,
                    to: TO_USER,
                    conv: CONV,
                    msg_type: 0,
                    payload: payload.clone(),
                });
                if frame.encoded_len() > pb.remaining() && !pb.is_empty() {
                    break;
                }
                self.sender.poll_transmit(t);
                pb.push(&frame).expect("a 20-byte SEND fits");
            }
            if pb.is_empty() {
                self.sender_pn -= 1;
                break;
            }
            data.push(pb.finish());
        }
        // Receiver: an ACK when the coalescer says so, like `ClientConn::ack_frame`
        // with auto-release (cumulative = handed up; ranges = buffered).
        if self.acks.should_send(t) {
            let ack = Frame::Ack(Ack {
                receiver_online: false,
                cumulative: self.receiver.delivered(),
                delay_us: self.acks.delay(t).as_micros() as u64,
                ranges: self.receiver.buffered_ranges(),
            });
            let mut pb = PacketBuilder::new(
                Self::header(&mut self.receiver_pn, self.session_id),
                MAX_DATAGRAM,
            );
            pb.push(&ack).expect("an ACK fits");
            self.acks.on_ack_sent();
            acks.push(pb.finish());
        }
    }

    fn next_timeout(&self) -> Option<u64> {
        [self.sender.poll_timeout(), self.acks.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(Time::as_micros)
    }

    fn gave_up(&self) -> u64 {
        self.failures
    }
}
