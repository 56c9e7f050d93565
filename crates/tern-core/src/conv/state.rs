//! One user's state in one conversation (seed 004's conversation list item):
//! what the user has read, how many messages are unread, what the user
//! deleted for itself. The server keeps it per (user, conversation), so every
//! device of the user sees the same counters; each change takes a new list
//! version so that devices fetch only what changed since they last looked.

/// Per (user, conversation) state. `version` is the user's list version of
/// the last change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConvState {
    /// List version of the last change.
    pub version: u64,
    /// Newest record the user can see.
    pub last_seq: u64,
    /// The user's read position.
    pub read_seq: u64,
    /// Messages from other users past `read_seq`, not deleted for the user.
    pub unread: u64,
    /// Records at or below this are deleted for the user.
    pub cleared_to: u64,
}

impl ConvState {
    /// A message `conv_seq` was stored; `own` when the user sent it.
    /// Whoever writes has read what came before it.
    pub fn on_message(&mut self, conv_seq: u64, own: bool) {
        self.last_seq = self.last_seq.max(conv_seq);
        if own {
            self.read_seq = self.read_seq.max(conv_seq);
            self.unread = 0;
        } else {
            if conv_seq > self.read_seq {
                self.unread += 1;
            }
        }
    }

    /// A group membership event `conv_seq` was stored: the newest record
    /// moves, nothing becomes unread.
    pub fn on_event(&mut self, conv_seq: u64) {
        self.last_seq = self.last_seq.max(conv_seq);
    }

    /// The read position moves to `up_to` (clamped to `last_seq`).
    /// `unread_after(s)` counts the unread messages past `s` (records from
    /// other users in `s+1 ..= last_seq` not deleted for the user); it is
    /// only asked when something stays unread. Returns whether anything
    /// changed.
    pub fn on_read(&mut self, up_to: u64, unread_after: impl FnOnce(u64) -> u64) -> bool {
        let up_to = up_to.min(self.last_seq);
        if up_to <= self.read_seq {
            return false;
        }
        self.read_seq = up_to;
        self.unread = if up_to >= self.last_seq {
            0
        } else {
            unread_after(up_to)
        };
        true
    }

    /// The user deleted the conversation up to `target` (0: everything).
    pub fn on_clear(&mut self, target: u64) {
        let to = if target == 0 {
            self.last_seq
        } else {
            target.min(self.last_seq)
        };
        self.cleared_to = self.cleared_to.max(to);
        self.read_seq = self.read_seq.max(self.cleared_to);
        if self.read_seq >= self.last_seq {
            self.unread = 0;
        }
    }

    /// Deleted for the user, with nothing newer since: the list shows it
    /// hidden until the next message, sent or received.
    pub fn hidden(&self) -> bool {
        self.cleared_to > 0 && self.cleared_to >= self.last_seq
    }

    /// The user deleted one record; `was_unread` when it was an unread
    /// message from another user.
    pub fn on_delete_message(&mut self, was_unread: bool) {
        if was_unread {
            self.unread = self.unread.saturating_sub(1);
        }
    }

    /// The oldest unread record ("↑ N new" jumps there), if any.
    pub fn first_unread(&self) -> Option<u64> {
        (self.unread > 0).then_some(self.read_seq + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_others_count_until_read_and_own_messages_read_everything() {
        let mut s = ConvState::default();
        s.on_message(1, false);
        s.on_message(2, false);
        assert_eq!((s.unread, s.first_unread()), (2, Some(1)));
        s.on_message(3, true);
        assert_eq!((s.unread, s.read_seq, s.first_unread()), (0, 3, None));
        s.on_message(4, false);
        s.on_message(5, false);
        assert!(s.on_read(4, |after| {
            assert_eq!(after, 4);
            1
        }));
        assert_eq!((s.read_seq, s.unread), (4, 1));
        assert!(
            !s.on_read(2, |_| unreachable!()),
            "read positions only move forward"
        );
        assert!(s.on_read(99, |_| unreachable!("all read: nothing to count")));
        assert_eq!((s.read_seq, s.unread), (5, 0));
    }

    #[test]
    fn clearing_hides_until_the_next_message() {
        let mut s = ConvState::default();
        for i in 1..=3 {
            s.on_message(i, false);
        }
        s.on_clear(0);
        assert_eq!((s.cleared_to, s.hidden(), s.unread), (3, true, 0));
        s.on_message(4, false);
        assert_eq!((s.hidden(), s.unread), (false, 1));
        s.on_clear(0);
        s.on_message(5, true);
        assert!(!s.hidden(), "writing in it shows it again");
        s.on_clear(2);
        assert_eq!(s.cleared_to, 4, "never moves back");
    }
}
