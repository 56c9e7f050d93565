//! The JSON-lines event log (`--log-file`): one line per datagram event,
//! written on its own thread so that file I/O never blocks the proxy loop.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;

use serde::Serialize;
use tracing::warn;

/// Capacity of the event-log channel; events beyond it are counted and skipped.
const LOG_CHANNEL: usize = 16 * 1024;

/// One line of the JSON event log.
#[derive(Debug, Default, Serialize)]
pub(super) struct Event {
    /// Microseconds since the proxy started.
    pub(super) t_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dir: Option<&'static str>,
    pub(super) action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) client: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) delay_us: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    pub(super) dup: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub(super) reordered: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub(super) corrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) old_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stats: Option<serde_json::Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// JSON-lines writer on its own thread behind a bounded channel, so file I/O
/// never blocks the proxy loop.
pub(super) struct EventLog {
    tx: Option<std_mpsc::SyncSender<Event>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub(super) dropped: u64,
}

impl EventLog {
    pub(super) fn create(path: &std::path::Path) -> io::Result<EventLog> {
        let file = std::fs::File::create(path)?;
        let (tx, rx) = std_mpsc::sync_channel::<Event>(LOG_CHANNEL);
        let thread = std::thread::Builder::new()
            .name("tern-proxy-log".into())
            .spawn(move || {
                let mut out = io::BufWriter::new(file);
                let write =
                    |out: &mut io::BufWriter<std::fs::File>, ev: &Event| -> io::Result<()> {
                        serde_json::to_writer(&mut *out, ev)?;
                        out.write_all(b"\n")
                    };
                while let Ok(ev) = rx.recv() {
                    let mut res = write(&mut out, &ev);
                    while let (Ok(()), Ok(ev)) = (&res, rx.try_recv()) {
                        res = write(&mut out, &ev);
                    }
                    if let Err(e) = res.and_then(|_| out.flush()) {
                        warn!(error = %e, "event log write failed; log stopped");
                        return;
                    }
                }
                let _ = out.flush();
            })?;
        Ok(EventLog {
            tx: Some(tx),
            thread: Some(thread),
            dropped: 0,
        })
    }

    pub(super) fn log(&mut self, ev: Event) {
        if let Some(tx) = &self.tx {
            if tx.try_send(ev).is_err() {
                self.dropped += 1;
            }
        }
    }

    /// Flush and wait for the writer.
    pub(super) async fn close(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
