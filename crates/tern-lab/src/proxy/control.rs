//! Steering a running proxy from outside its loop: rebind every client,
//! read the counters.

use tokio::sync::{mpsc, oneshot};

use super::{ProxyError, ProxyStats};

pub(super) enum Command {
    Rebind(oneshot::Sender<usize>),
    Stats(oneshot::Sender<ProxyStats>),
}

/// Steers a running proxy. Cheap to clone.
#[derive(Clone)]
pub struct ProxyControl {
    pub(super) tx: mpsc::Sender<Command>,
}

impl ProxyControl {
    /// Move every current client to a new upstream port now. Returns how many
    /// clients were moved, once they all have been.
    pub async fn rebind(&self) -> Result<usize, ProxyError> {
        self.ask(Command::Rebind).await
    }

    /// A snapshot of the counters.
    pub async fn stats(&self) -> Result<ProxyStats, ProxyError> {
        self.ask(Command::Stats).await
    }

    /// Sends the loop a command carrying a reply channel; waits for the reply.
    async fn ask<T>(&self, command: fn(oneshot::Sender<T>) -> Command) -> Result<T, ProxyError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(command(tx))
            .await
            .map_err(|_| ProxyError::Stopped)?;
        rx.await.map_err(|_| ProxyError::Stopped)
    }
}
