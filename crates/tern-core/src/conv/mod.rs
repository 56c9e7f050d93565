//! Conversations (`proto-spec/conversations.md`): the canonical key of a
//! conversation, one user's state in it (read position, unread count,
//! deletions), and the range sets a client uses to know which parts of a
//! storage timeline it holds and which are missing.

mod fenwick;
mod key;
mod positions;
mod ranges;
mod read_counts;
mod state;

pub use key::{ConvKey, CONV_KEY_LEN};
pub use positions::Positions;
pub use ranges::RangeSet;
pub use read_counts::ReadCounts;
pub use state::ConvState;
