//! Durable storage: RocksDB behind the core's `Store` trait.
