//! Deterministic simulation: seeded network impairments and endpoints in
//! virtual time. Used by the test suite and the timer benchmarks; the
//! impairment model is shared with the real UDP proxy in `tern::lab`.

pub mod impairment;
