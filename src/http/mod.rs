//! What the two HTTP APIs share: the sidecar's local API (`tern sidecar`,
//! [`crate::sidecar`]) and the daemon's server API ([`crate::server::api`]).
//!
//! - [`error`]: every refusal is a JSON body `{"error": …, "field": …}`
//!   with a 4xx or 5xx status; nothing answers in plain text.
//! - [`extract`]: request bodies bounded before they are read (a declared
//!   length over the limit is refused without reading a byte), JSON and
//!   query strings decoded with the path of the offending field.
//! - [`auth`]: bearer tokens compared in constant time.
//! - [`prom`]: Prometheus text exposition.

pub mod auth;
pub mod error;
pub mod extract;
pub mod prom;

pub use error::ApiError;
pub use extract::{JsonBody, MaybeJson, PathU64, QueryArgs, MAX_BODY};
