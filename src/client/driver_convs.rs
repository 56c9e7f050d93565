//! The driver's side of conversations: requests from the application go to
//! the core, and its answers back to whoever waits for them.

use std::collections::HashMap;

use tern_core::client::{ConvList, HistoryPage};
use tern_core::time::Time;
use tern_core::wire::ConvRef;
use tokio::sync::oneshot;

use super::driver::Driver;
use super::ClientError;

type Waiter<T> = oneshot::Sender<Result<T, ClientError>>;

/// Who waits for which conversation answer.
#[derive(Default)]
pub(super) struct ConvWaiters {
    list: Vec<Waiter<ConvList>>,
    history: HashMap<ConvRef, Vec<Waiter<HistoryPage>>>,
}

impl Driver {
    pub(super) fn ask_list(&mut self, now: Time, since: u64, preview: u8, w: Waiter<ConvList>) {
        if self.conn.request_list(now, since, preview) {
            self.conv_waiters.list.push(w);
        } else {
            let _ = w.send(Err(ClientError::NotSupported));
        }
    }

    pub(super) fn ask_history(
        &mut self,
        now: Time,
        conv: ConvRef,
        before: u64,
        max: u64,
        w: Waiter<HistoryPage>,
    ) {
        if self.conn.version() == tern_core::wire::VERSION {
            let _ = w.send(Err(ClientError::NotSupported));
            return;
        }
        // A page of `conv` already under way answers this one too; ask
        // again when it does not cover what was asked (`request_history`
        // is refused only while one is under way).
        self.conn.request_history(now, conv, before, max);
        self.conv_waiters.history.entry(conv).or_default().push(w);
    }

    pub(super) fn on_list(&mut self, list: ConvList) {
        for w in self.conv_waiters.list.drain(..) {
            let _ = w.send(Ok(list.clone()));
        }
    }

    pub(super) fn on_history(&mut self, page: HistoryPage) {
        if let Some(ws) = self.conv_waiters.history.remove(&page.conv) {
            for w in ws {
                let _ = w.send(Ok(page.clone()));
            }
        }
    }

    /// The server speaks only version 1: nobody gets an answer.
    pub(super) fn on_downgraded(&mut self) {
        for w in self.conv_waiters.list.drain(..) {
            let _ = w.send(Err(ClientError::NotSupported));
        }
        for (_, ws) in self.conv_waiters.history.drain() {
            for w in ws {
                let _ = w.send(Err(ClientError::NotSupported));
            }
        }
    }
}
