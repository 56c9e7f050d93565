//! A device's operations in flight together (messages, READ receipts and
//! read positions), yielding each result as it completes.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tern::client::{ClientError, Sent};

/// What a batch operation was.
pub(super) enum Op {
    Msg {
        n: u64,
        conv: u64,
        to: u64,
    },
    Read {
        conv: u64,
        peer: u64,
        target_device: u32,
        target_seq: u64,
    },
    Mark {
        conv: tern::client::ConvRef,
        up_to: u64,
    },
}

pub(super) type OpFuture<'a> =
    Pin<Box<dyn Future<Output = (Op, Result<Sent, ClientError>)> + Send + 'a>>;

/// Operations in flight together; yields each result as it completes.
pub(super) struct Batch<'a> {
    pub(super) futs: Vec<Option<OpFuture<'a>>>,
}

impl<'a> Batch<'a> {
    pub(super) async fn next(&mut self) -> Option<(Op, Result<Sent, ClientError>)> {
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for slot in self.futs.iter_mut() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        Poll::Ready(out) => {
                            *slot = None;
                            return Poll::Ready(Some(out));
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(None)
            }
        })
        .await
    }

    pub(super) fn outstanding(&self) -> u64 {
        self.futs.iter().filter(|f| f.is_some()).count() as u64
    }
}
