//! A device's conversation views: the list and every conversation's whole
//! history, paged as an app pages it (newest first, `before` = the lowest
//! `conv_seq` of the last page), journaled for the checker (see
//! [`super::conv_journal`]). Also when a late device joins.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use tern::client::{Client, ConvRef};
use tokio::sync::watch;
use tokio::time::Instant;

use super::device::DeviceTask;
use super::journal::{HistRec, HistoryView, ListRec, ListView, RecvRecord, ViewEnd, ViewWhat};
use super::shared::Phase;

/// Records asked for per history page (the protocol's most).
const PAGE: u64 = 64;
/// Pages per conversation at most (a bound, far above any run's history).
const MAX_PAGES: u32 = 20_000;
/// Longest one list fetch or history page may take (the network is lossy,
/// the daemon may be restarting under a roaming device).
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// One conversation's history, paged.
struct Paged {
    records: Vec<HistRec>,
    pages: u32,
    floor: u64,
}

async fn page_all(client: &Client, conv: ConvRef) -> Result<Paged, String> {
    let mut records = Vec::new();
    let mut before = 0;
    let mut pages = 0;
    loop {
        if pages >= MAX_PAGES {
            return Err(format!("{conv}: more than {MAX_PAGES} pages"));
        }
        let page = tokio::time::timeout(CALL_TIMEOUT, client.history(conv, before, PAGE))
            .await
            .map_err(|_| {
                format!("history {conv} before {before}: no page within {CALL_TIMEOUT:?}")
            })?
            .map_err(|e| format!("history {conv} before {before}: {e}"))?;
        pages += 1;
        let floor = page.end.floor;
        // Newest first: each page goes in front of what is already held.
        let mut older: Vec<HistRec> = page.records.iter().map(HistRec::of).collect();
        older.append(&mut records);
        records = older;
        let low = page.end.low;
        if page.records.is_empty() || low > page.end.high || low <= floor + 1 {
            return Ok(Paged {
                records,
                pages,
                floor,
            });
        }
        before = low;
    }
}

impl DeviceTask {
    /// Once the traffic is over, device 1 of each user reads its busiest
    /// conversation up to the newest message it was handed, so that a read
    /// position surely moves late and every other device of the user must
    /// follow (the list's unread count and a read entry).
    pub(super) async fn heal_mark(&mut self, client: &Client) {
        if self.late || self.device != 1 {
            return;
        }
        let Some((&conv, &up_to)) = self.newest.iter().max_by_key(|(c, s)| (**s, **c)) else {
            return;
        };
        let res =
            tokio::time::timeout(Duration::from_secs(20), client.mark_read(conv, up_to, None))
                .await;
        match res {
            Ok(r) => self.settled(super::batch::Op::Mark { conv, up_to }, r),
            Err(_) => {
                tracing::warn!(user = self.user, %conv, up_to, "read position after traffic not acknowledged within 20 s")
            }
        }
    }

    /// A late device: waits until its moment in the traffic phase (or the
    /// traffic's end). Returns false if the run stopped first.
    pub(super) async fn wait_to_join(&self, phase: &mut watch::Receiver<Phase>) -> bool {
        let at = self.shared.params.late_device_at.unwrap_or(0.0);
        let after = self.shared.params.duration.mul_f64(at);
        loop {
            let start = *self.start_at.lock().expect("start lock");
            let ph = *phase.borrow();
            match (ph, start) {
                (Phase::Stop, _) => return false,
                (Phase::Traffic, Some(t)) if Instant::now() >= t + after => return true,
                (Phase::Traffic, _) => {}
                _ => return true,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = phase.changed() => {}
            }
        }
    }

    /// Fetches the list (changes since the saved version), then journals
    /// the stored list and every conversation's whole history. Returns a
    /// digest of what was seen (`None`: the views failed), which the run
    /// compares across a user's devices to know they settled.
    pub(super) async fn views(
        &mut self,
        client: &Client,
        what: ViewWhat,
        round: u32,
    ) -> Option<u64> {
        let (convs, error, digest) = match self.views_inner(client, what, round).await {
            Ok((convs, digest)) => (convs, None, Some(digest)),
            Err((convs, e)) => (convs, Some(e), None),
        };
        if let Some(e) = &error {
            tracing::warn!(user = self.user, device = self.device, ?what, round, error = %e, "conversation views failed");
        }
        let _ = self.journal.append(&RecvRecord::ViewEnd(ViewEnd {
            t_us: self.shared.clock.us(),
            what,
            round,
            convs,
            error,
        }));
        let _ = self.journal.flush();
        digest
    }

    async fn views_inner(
        &mut self,
        client: &Client,
        what: ViewWhat,
        round: u32,
    ) -> Result<(u32, u64), (u32, String)> {
        let mut hasher = DefaultHasher::new();
        // Every device of a user shares one sync timeline: settled, they
        // were all handed the same entries.
        self.last_inbox.hash(&mut hasher);
        tokio::time::timeout(CALL_TIMEOUT, client.sync_conversations(0))
            .await
            .map_err(|_| (0, format!("list: no answer within {CALL_TIMEOUT:?}")))?
            .map_err(|e| (0, format!("list: {e}")))?;
        let stored = client
            .stored_conversations()
            .await
            .map_err(|e| (0, format!("stored list: {e}")))?;
        let mut items: Vec<_> = stored
            .items
            .iter()
            .map(|i| (i.conv, ListRec::of(i)))
            .collect();
        items.sort_by_key(|(c, _)| *c);
        let _ = self.journal.append(&RecvRecord::List(ListView {
            t_us: self.shared.clock.us(),
            what,
            round,
            items: items.iter().map(|(_, r)| r.clone()).collect(),
            list_version: stored.list_version,
        }));
        for (_, item) in &items {
            item.hash(&mut hasher);
        }
        let mut convs = 0;
        for (conv, _) in &items {
            let paged = page_all(client, *conv).await.map_err(|e| (convs, e))?;
            paged.records.hash(&mut hasher);
            let _ = self.journal.append(&RecvRecord::History(HistoryView {
                t_us: self.shared.clock.us(),
                what,
                round,
                conv: conv.to_string(),
                records: paged.records,
                pages: paged.pages,
                floor: paged.floor,
            }));
            self.shared
                .counters
                .history_pages
                .fetch_add(u64::from(paged.pages), std::sync::atomic::Ordering::Relaxed);
            convs += 1;
        }
        Ok((convs, hasher.finish()))
    }
}
