//! Deterministic simulation of Tern's protocol core: seeded network
//! impairments and endpoints in virtual time. Used by the test suite, the
//! timer benchmarks and the lab; nothing here ships in the daemon.
//!
//! - `impairment`: one direction of a lossy path, as a pure function of a seed
//!   (shared with the real UDP proxy in `tern-lab`).
//! - `config`: what a run simulates and what it reports.
//! - `world`: a broker, its store and many clients wired through such links,
//!   with broker and client crashes, address changes and offline spells.
//! - `client`: a device: its durable state, and the process driving its
//!   `ClientConn` exactly as the client library's driver does.
//! - `checker`: the exactly-once, in-order invariants checked on every run.
//! - `group_check`: in groups runs, every member device's records against
//!   the group's timeline and the membership its events describe.
//! - `conv_view`, `audit`: in version 2 runs, what each device's application
//!   holds of its conversations, and the end-of-run agreement of every
//!   device with every other and with the server's history and list.
//! - `seeds`: a scenario over many seeds, failing seeds printed with their replay.
//! - `pair`: a broker and clients on a perfect link, moved by hand (unit-style tests).

mod audit;
mod checker;
mod client;
mod config;
mod conv_view;
mod group_check;
pub mod hostile;
pub mod impairment;
pub mod pair;
pub mod seeds;
pub mod world;
mod world_groups;

pub use world::{run, SimConfig, SimReport};
