//! Seeded network impairment model.
//!
//! A [`Link`] models one direction of a lossy path. Hand it a datagram and the
//! current virtual time; it answers with the copies that come out of the far
//! end and when ([`Outcomes`]; none means the datagram was dropped). It is pure:
//! no I/O, no clock, no async runtime. The same configuration, seed and inputs
//! always give the same outcomes, so a failing simulation or lab run can be
//! replayed from its seed.
//!
//! # Time
//!
//! Time is a `u64` count of **microseconds since an arbitrary origin** chosen by
//! the driver (the simulator's virtual clock, or the proxy's start instant).
//! Blackout windows are expressed against the same origin. Callers must pass a
//! non-decreasing `now_us`; the configuration itself uses
//! [`Duration`](std::time::Duration)s.
//!
//! # What happens to a datagram, in order
//!
//! 1. `sent` is counted.
//! 2. The Gilbert–Elliott chain (if `burst` is set) takes one step: in the good
//!    state it moves to bad with `p_good_to_bad`, in the bad state back to good
//!    with `p_bad_to_good`; then the datagram is lost with the new state's loss
//!    probability.
//! 3. Inside a blackout window the datagram is dropped (`dropped_blackout`);
//!    otherwise a burst loss from step 2 drops it (`dropped_burst`); otherwise
//!    it is dropped with probability `loss` (`dropped_random`).
//! 4. With a `rate` cap the datagram joins a FIFO serialisation queue: it leaves
//!    when every byte queued before it, and then its own bytes, have been sent
//!    at `rate` bytes/s. If the bytes already waiting plus its own would exceed
//!    `queue_limit`, it is dropped (`dropped_queue`); a datagram reaching an
//!    empty queue is always admitted.
//! 5. It then takes `delay` plus a jitter sample (uniform in `±jitter`, or
//!    normal with σ = `jitter` truncated at ±3σ; the total is never negative).
//!    Jitter alone never reorders: a datagram is never delivered before the one
//!    sent before it (like a real FIFO path). With probability `reorder` the
//!    datagram is instead held back `reorder_delay` longer and escapes that
//!    FIFO rule, so later datagrams overtake it (`reordered`).
//! 6. With probability `corrupt` the delivered bytes are damaged (`corrupted`):
//!    three times in four, 1–3 distinct random bits are flipped; otherwise the
//!    datagram is truncated to a random shorter length (possibly empty). An
//!    empty datagram cannot be corrupted and is delivered as is.
//! 7. With probability `dup` a second copy is delivered (`duplicated`). It was
//!    copied after the bottleneck queue, takes its own delay sample (no FIFO
//!    rule, no reorder hold), and may be corrupted independently.
//!
//! # Files
//!
//! `config.rs` holds the model ([`Impairment`] and its parts), `spec.rs` the
//! compact text form (parsing and printing), `link.rs` the behaviour above
//! ([`Link`]), `counters.rs` what a link counts.

mod config;
mod counters;
mod link;
mod spec;
#[cfg(test)]
mod tests;

pub use config::{
    Blackout, GilbertElliott, Impairment, ImpairmentError, JitterDist, DEFAULT_QUEUE_LIMIT,
    DEFAULT_REORDER_DELAY,
};
pub use counters::{Counters, DropReason};
pub use link::{Delivery, Link, Outcomes};
pub use spec::{parse_duration, parse_probability, parse_rate, parse_size};
