//! Deterministic simulation: seeded network impairments and endpoints in
//! virtual time. Used by the test suite and the timer benchmarks; the
//! impairment model is shared with the real UDP proxy in `tern::lab`.
//!
//! - `impairment`: one direction of a lossy path, as a pure function of a seed.
//! - `world`: a broker, its store and many clients wired through such links.
//! - `checker`: the exactly-once, in-order invariants checked on every run.

mod checker;
pub mod impairment;
pub mod world;

pub use world::{run, SimConfig, SimReport};
