//! `tern-bench live-fanout` (being written).
