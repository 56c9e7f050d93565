//! Building a group through the protocol for the group benchmarks
//! (`storm`, `live-fanout`): one owner device creates it and adds the
//! members 32 at a time (`GROUP_OP_MAX_USERS`), then posts messages into
//! it, each operation acknowledged as durable before it counts. Devices
//! are sessions of a [`Mux`].

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::auth::TokenKeys;
use tern_core::client::{ClientConfig, ClientEvent, OpId, Outgoing};
use tern_core::seal::PublicKey;
use tern_core::wire::{ConvKind, ConvRef, GroupAction, SyncBody, VERSION_2};

use super::mux::Mux;
use super::util::token;
use super::{BenchError, Result};

/// Users per GROUP_OP (`proto-spec/groups.md`, `GROUP_OP_MAX_USERS`).
pub const OP_USERS: usize = 32;

/// A version 2 device's configuration, as an app that fetches counters
/// first: no automatic pull of a large backlog (the list tells it what to
/// fetch), sealed when the daemon has a seal key.
pub fn device_config(
    keys: &TokenKeys,
    seal: Option<PublicKey>,
    user: u64,
    device: u32,
) -> ClientConfig {
    let mut cfg = ClientConfig::new(Bytes::from(token(keys, user, device)));
    cfg.version = VERSION_2;
    cfg.auto_pull = false;
    cfg.server_key = seal;
    cfg
}

/// The group conversation `id`.
pub fn group_ref(id: u64) -> ConvRef {
    ConvRef {
        kind: ConvKind::Group,
        id,
    }
}

/// Turns until `done` says so (it sees every event), or fails after `limit`
/// with `what`.
pub fn drive(
    mux: &mut Mux,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&mut Mux, usize, ClientEvent) -> Result<bool>,
) -> Result<()> {
    let end = Instant::now() + limit;
    let mut events = Vec::new();
    loop {
        if Instant::now() > end {
            return Err(BenchError::Failed(format!(
                "{what}: not done within {limit:?}"
            )));
        }
        mux.turn(Duration::from_millis(5), &mut events)?;
        let mut finished = false;
        for (i, ev) in events.drain(..) {
            if let ClientEvent::LoginRefused { code } = ev {
                return Err(BenchError::Failed(format!(
                    "{what}: login refused (error code {code})"
                )));
            }
            finished |= done(mux, i, ev)?;
        }
        if finished {
            return Ok(());
        }
    }
}

/// Logs device `i` in and waits for it.
pub fn login_one(mux: &mut Mux, i: usize, limit: Duration) -> Result<()> {
    mux.login(i);
    drive(mux, limit, "login", |_, j, ev| {
        Ok(j == i && matches!(ev, ClientEvent::LoggedIn { .. }))
    })
}

/// Submits `ops` from device `owner`, at most `window` unacknowledged, and
/// waits until every one is stored. A refused one fails the run.
/// `on_event` sees every other event (entries, …).
pub fn submit_all(
    mux: &mut Mux,
    owner: usize,
    ops: impl IntoIterator<Item = Outgoing>,
    window: usize,
    limit: Duration,
    what: &str,
    mut on_event: impl FnMut(usize, &ClientEvent),
) -> Result<u64> {
    let mut ops = ops.into_iter().peekable();
    let mut pending: HashSet<OpId> = HashSet::new();
    let mut stored = 0u64;
    let end = Instant::now() + limit;
    let mut events = Vec::new();
    while ops.peek().is_some() || !pending.is_empty() {
        if Instant::now() > end {
            return Err(BenchError::Failed(format!(
                "{what}: {stored} stored within {limit:?}, {} pending",
                pending.len()
            )));
        }
        while pending.len() < window {
            let Some(op) = ops.next() else { break };
            let now = mux.now();
            let c = mux
                .conn(owner)
                .ok_or_else(|| BenchError::Failed(format!("{what}: device not logged in")))?;
            match c.submit(now, op) {
                Ok(id) => {
                    pending.insert(id);
                }
                Err(_) => {
                    return Err(BenchError::Failed(format!("{what}: uplink queue full")));
                }
            }
        }
        mux.turn(Duration::from_millis(5), &mut events)?;
        for (i, ev) in events.drain(..) {
            match &ev {
                ClientEvent::Stored { op, .. } if i == owner => {
                    if pending.remove(op) {
                        stored += 1;
                    }
                }
                ClientEvent::Rejected { code, seq, .. } if i == owner => {
                    return Err(BenchError::Failed(format!(
                        "{what}: operation {seq} refused with error code {code}"
                    )));
                }
                _ => on_event(i, &ev),
            }
        }
    }
    Ok(stored)
}

/// Device `owner` (logged in, user `owner_user`) creates a group with
/// `members` (the owner not among them): the first 31 in the create, then
/// 32 per add. Returns the group's id (learnt from the owner's `created`
/// entry).
pub fn create_group(mux: &mut Mux, owner: usize, members: &[u64], limit: Duration) -> Result<u64> {
    let (first, rest) = members.split_at(members.len().min(OP_USERS - 1));
    let mut group = None;
    let create = Outgoing::Group {
        group: 0,
        action: GroupAction::Create,
        users: first.to_vec(),
    };
    submit_all(mux, owner, [create], 1, limit, "group create", |i, ev| {
        if let (true, ClientEvent::Entry(e)) = (i == owner, ev) {
            if e.conv.kind == ConvKind::Group && matches!(e.body, SyncBody::Member(_)) {
                group.get_or_insert(e.conv.id);
            }
        }
    })?;
    // The `created` entry follows the ACK closely; wait for it if needed.
    if group.is_none() {
        drive(mux, limit, "the created entry", |_, i, ev| {
            if let (true, ClientEvent::Entry(e)) = (i == owner, &ev) {
                if e.conv.kind == ConvKind::Group {
                    group = Some(e.conv.id);
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
    }
    let group = group.expect("set above");
    let adds = rest.chunks(OP_USERS).map(|c| Outgoing::Group {
        group,
        action: GroupAction::Add { admin: false },
        users: c.to_vec(),
    });
    submit_all(mux, owner, adds, 16, limit, "group adds", |_, _| {})?;
    Ok(group)
}

/// A message into `group` whose payload starts with `stamp` (8 bytes, big
/// endian), padded to `payload` bytes.
pub fn post(group: u64, stamp: u64, payload: usize) -> Outgoing {
    let mut p = vec![0u8; payload.max(8)];
    p[..8].copy_from_slice(&stamp.to_be_bytes());
    Outgoing::Post {
        conv: group_ref(group),
        topic: 0,
        msg_type: 1,
        payload: Bytes::from(p),
    }
}
