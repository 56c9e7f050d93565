//! The group invariants of a groups run (`SimConfig::groups`), checked
//! against the group's storage timeline as the store holds it at the end:
//! - every group post the server acknowledged is in the timeline exactly
//!   once, and one it refused is not;
//! - every message in the timeline was posted by a member: its sender's
//!   membership, read from the timeline's own events, covers it;
//! - every device that lived through the run was handed exactly the records
//!   of the stretches its user was a member for (from the record that added
//!   it to the one that removed it), each once, in group order.
//!
//! Membership is derived from the event records, not from the broker's
//! membership rows, so a wrong row cannot vouch for itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::checker::Dev;
use tern_core::conv::ConvKey;
use tern_core::store::{ConvRecord, MemStore, Store};
use tern_core::wire::{ConvKind, Entry, ErrorCode, GroupEventKind, SyncBody};

/// What the run saw of the group.
#[derive(Default)]
pub struct GroupCheck {
    /// The group's id, once the creator's "created" entry arrived.
    pub id: Option<u64>,
    /// Posts submitted: (device, n) → acknowledged (Some(true)), refused
    /// (Some(false)), unsettled (None).
    posts: HashMap<(Dev, u32), Option<bool>>,
    /// Per device: (inbox sequence, conv_seq) of each group entry handed,
    /// in order, in the lives of its process that count.
    handed: HashMap<Dev, Vec<(u64, u64)>>,
    /// Membership operations refused because a race made them moot (a
    /// leave after a removal).
    pub moot: u64,
    /// The group may pass the write fan-out threshold: a device is handed
    /// the records its user was online for, and pages the rest from
    /// history (`proto-spec/groups.md`, "Fan-out").
    pub read_fanout: bool,
    violations: Vec<String>,
}

impl GroupCheck {
    /// A device submitted group post `n`.
    pub fn on_submit(&mut self, dev: Dev, n: u32) {
        if self.posts.insert((dev, n), None).is_some() {
            self.violations
                .push(format!("{dev:?} submitted group post {n} twice"));
        }
    }

    /// The server stored group post `n` of `dev`.
    pub fn on_stored(&mut self, dev: Dev, n: u32) {
        match self.posts.get_mut(&(dev, n)) {
            Some(s @ None) => *s = Some(true),
            Some(Some(true)) => {} // reported again by a new process
            _ => self.violations.push(format!(
                "{dev:?} group post {n}: stored after refused or unknown"
            )),
        }
    }

    /// The server refused a group operation of `dev` (post `n`, or a
    /// membership operation): only "not a member" is expected, from a
    /// member removed before the operation was applied.
    pub fn on_rejected(&mut self, dev: Dev, n: Option<u32>, code: u64) {
        if code != ErrorCode::NoSuchConversation as u64 {
            self.violations
                .push(format!("{dev:?} group operation {n:?} refused with {code}"));
            return;
        }
        match n {
            Some(n) => {
                if let Some(s) = self.posts.get_mut(&(dev, n)) {
                    *s = Some(false);
                }
            }
            None => self.moot += 1,
        }
    }

    /// A group entry was handed to `me`.
    pub fn on_entry(&mut self, me: Dev, e: &Entry) {
        match &e.body {
            SyncBody::Member(ev) if ev.kind == GroupEventKind::Created => {
                self.id = Some(e.conv.id);
            }
            SyncBody::Member(_) | SyncBody::Message { .. } => {}
            // Read positions and the like name a record, they are not one.
            _ => return,
        }
        let handed = self.handed.entry(me).or_default();
        if let Some(&(_, last)) = handed.last() {
            if e.conv_seq <= last {
                self.violations.push(format!(
                    "{me:?} was handed group record {} after {last}",
                    e.conv_seq
                ));
            }
        }
        handed.push((e.seq, e.conv_seq));
    }

    /// The process of `me` restarts after its durable checkpoint `durable`:
    /// entries handed past it come again.
    pub fn on_restart(&mut self, me: Dev, durable: u64) {
        if let Some(h) = self.handed.get_mut(&me) {
            h.retain(|(seq, _)| *seq <= durable);
        }
    }

    /// Whether every device in `devices` holds every record of its user's
    /// stretches (a run must not end while the server still owes one: in
    /// groups runs the direct checker's count says nothing).
    pub fn complete(&self, store: &MemStore, devices: &[Dev]) -> bool {
        let Some(id) = self.id else {
            return false;
        };
        if self.read_fanout {
            // Nothing is owed by the sync timeline past the threshold: the
            // audit pages the rest.
            return self.posts.values().all(Option::is_some);
        }
        let records = all_records(store, ConvKey::Group(id));
        let (stretches, _) = stretches(&records);
        devices.iter().all(|dev| {
            let got: BTreeSet<u64> = self
                .handed
                .get(dev)
                .map(|h| h.iter().map(|(_, c)| *c).collect())
                .unwrap_or_default();
            stretches
                .get(&dev.0)
                .is_none_or(|s| s.iter().all(|&(a, b)| (a..=b).all(|c| got.contains(&c))))
        }) && self.posts.values().all(Option::is_some)
    }

    /// The final check; `devices` lived through the run, and `paged` gives
    /// the records of the group each one paged from history at the end
    /// (read fan-out runs: what it holds is what it was handed and what it
    /// paged).
    pub fn verify(
        mut self,
        store: &MemStore,
        devices: &[Dev],
        paged: impl Fn(Dev) -> BTreeSet<u64>,
    ) -> Vec<String> {
        let Some(id) = self.id else {
            return vec!["the group was never created".into()];
        };
        let records = all_records(store, ConvKey::Group(id));
        let dense = records
            .iter()
            .enumerate()
            .all(|(i, r)| r.conv_seq == i as u64 + 1);
        if !dense {
            self.violations
                .push("the group's timeline is not dense".into());
        }
        let (stretches, found) = stretches(&records);
        self.violations.extend(found);
        let mut seen_posts: HashMap<(Dev, u32), u64> = HashMap::new();
        for r in records.iter().filter(|r| r.event.is_none()) {
            let Some((u, d, n)) = parse(&r.payload) else {
                self.violations
                    .push(format!("record {} has a foreign payload", r.conv_seq));
                continue;
            };
            if let Some(first) = seen_posts.insert(((u, d), n), r.conv_seq) {
                self.violations.push(format!(
                    "post {n} of {:?} stored twice: records {first} and {}",
                    (u, d),
                    r.conv_seq
                ));
            }
        }
        for (post, outcome) in &self.posts {
            let stored = seen_posts.contains_key(post);
            match outcome {
                Some(true) if !stored => self.violations.push(format!(
                    "acknowledged group post {post:?} is not in the timeline"
                )),
                Some(false) if stored => self
                    .violations
                    .push(format!("refused group post {post:?} is in the timeline")),
                None => self
                    .violations
                    .push(format!("group post {post:?} never settled")),
                _ => {}
            }
        }
        for dev in devices {
            let want: BTreeSet<u64> = stretches
                .get(&dev.0)
                .map(|s| s.iter().flat_map(|&(a, b)| a..=b).collect())
                .unwrap_or_default();
            let got: Vec<u64> = self
                .handed
                .get(dev)
                .map(|h| h.iter().map(|(_, c)| *c).collect())
                .unwrap_or_default();
            let mut got_set: BTreeSet<u64> = got.iter().copied().collect();
            if got_set.len() != got.len() {
                self.violations
                    .push(format!("{dev:?} was handed a group record twice"));
            }
            if self.read_fanout {
                if let Some(outside) = got_set.difference(&want).next() {
                    self.violations.push(format!(
                        "{dev:?} was handed group record {outside} outside its stretches {:?}",
                        stretches.get(&dev.0)
                    ));
                }
                got_set.extend(paged(*dev));
            }
            if got_set != want {
                let missing: Vec<u64> = want.difference(&got_set).copied().take(8).collect();
                let extra: Vec<u64> = got_set.difference(&want).copied().take(8).collect();
                self.violations.push(format!(
                    "{dev:?} (member for {:?}) missed group records {missing:?}, got extra {extra:?}",
                    stretches.get(&dev.0)
                ));
            }
        }
        self.violations.truncate(12);
        self.violations
    }
}

/// Each user's membership stretches `(from, to)`, by user.
type Stretches = BTreeMap<u64, Vec<(u64, u64)>>;

/// Each user's membership stretches `(from, to)` of `records` (a group's
/// whole timeline, ascending), read from its events, with what contradicts
/// them (a message by a non-member, a removal of a non-member).
fn stretches(records: &[ConvRecord]) -> (Stretches, Vec<String>) {
    let head = records.last().map_or(0, |r| r.conv_seq);
    let mut out: Stretches = BTreeMap::new();
    let mut open: BTreeMap<u64, u64> = BTreeMap::new();
    let mut bad = Vec::new();
    for r in records {
        let Some(ev) = r.event else {
            if !open.contains_key(&r.from_user) {
                bad.push(format!(
                    "record {} was posted by {}, not a member then",
                    r.conv_seq, r.from_user
                ));
            }
            continue;
        };
        match ev.kind {
            GroupEventKind::Created | GroupEventKind::Added => {
                if open.insert(ev.user, r.conv_seq).is_some() {
                    bad.push(format!("user {} added twice at {}", ev.user, r.conv_seq));
                }
            }
            GroupEventKind::Removed | GroupEventKind::Left => match open.remove(&ev.user) {
                Some(from) => out.entry(ev.user).or_default().push((from, r.conv_seq)),
                None => bad.push(format!(
                    "user {} removed at {} while not a member",
                    ev.user, r.conv_seq
                )),
            },
            GroupEventKind::RoleChanged => {}
        }
    }
    for (user, from) in open {
        out.entry(user).or_default().push((from, head));
    }
    (out, bad)
}

/// The read counts the owner's device got at the end of the run against
/// the truth: for each record, the current members other than its author
/// whose durable read position is at or past it.
pub fn verify_counts(store: &MemStore, audit: &crate::audit::Audit) -> Vec<String> {
    let Some((id, head)) = audit.count_group else {
        return Vec::new();
    };
    let key = ConvKey::Group(id);
    let records = all_records(store, key);
    let mut members = BTreeSet::new();
    for e in records.iter().filter_map(|r| r.event) {
        if e.kind.ends_membership() {
            members.remove(&e.user);
        } else {
            members.insert(e.user);
        }
    }
    let current: Vec<u64> = members.into_iter().collect();
    let read = |u: u64| {
        store
            .user_conv(u, &key)
            .ok()
            .flatten()
            .map_or(0, |s| s.read_seq)
    };
    let mut out = Vec::new();
    if audit.counts.len() as u64 != head {
        out.push(format!(
            "the owner got read counts of {} of the group's {head} records",
            audit.counts.len()
        ));
    }
    for r in &records {
        let want = current
            .iter()
            .filter(|u| **u != r.from_user && read(**u) >= r.conv_seq)
            .count() as u64;
        let want = (current.len() as u64, want);
        match audit.counts.get(&r.conv_seq) {
            Some(got) if *got == want => {}
            got => out.push(format!(
                "record {}: read counts (members, read by) {got:?}, the members' read positions say {want:?}",
                r.conv_seq
            )),
        }
        if out.len() >= 8 {
            break;
        }
    }
    out
}

/// Whether `e` is a group entry.
pub fn is_group(e: &Entry) -> bool {
    e.conv.kind == ConvKind::Group
}

fn parse(p: &[u8]) -> Option<(u64, u32, u32)> {
    let p: &[u8; 16] = p.try_into().ok()?;
    Some((
        u64::from_be_bytes(p[0..8].try_into().ok()?),
        u32::from_be_bytes(p[8..12].try_into().ok()?),
        u32::from_be_bytes(p[12..16].try_into().ok()?),
    ))
}

/// Every record of `key`, ascending.
fn all_records(store: &MemStore, key: ConvKey) -> Vec<ConvRecord> {
    let mut out: Vec<ConvRecord> = Vec::new();
    let mut before = 0;
    loop {
        let page = store.read_conv(&key, before, 256).unwrap_or_default();
        let Some(first) = page.first() else { break };
        let low = first.conv_seq;
        let mut page = page;
        page.append(&mut out);
        out = page;
        if low <= 1 {
            break;
        }
        before = low;
    }
    out
}
