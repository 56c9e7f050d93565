//! The group side of a groups run (`SimConfig::groups`): the owner device
//! creates the group once every device registered, posts go into it once
//! its id is known, and the membership changes during the window while
//! traffic goes on. What happened is checked by `group_check.rs`.

use std::collections::BTreeSet;

use rand::Rng;
use tern_core::client::Outgoing;
use tern_core::time::Time;
use tern_core::wire::{ConvKind, ConvRef, GroupAction};

use crate::client::SimClient;

/// The group as the run's script sees it.
#[derive(Default)]
pub(crate) struct GroupScript {
    /// The create was submitted.
    pub created: bool,
    /// When the membership changes.
    pub churn_at: Vec<Time>,
    /// Users meant to be members now (owner included).
    pub members: BTreeSet<u64>,
    /// Users not yet added (never members before: none is added twice).
    pub spares: Vec<u64>,
}

impl GroupScript {
    /// User 1 owns the group; the last two users (with four or more) are
    /// spares added later.
    pub fn new(users: u64, churn_at: Vec<Time>) -> Self {
        let spare = if users >= 4 { 2 } else { 0 };
        GroupScript {
            created: false,
            churn_at,
            members: (1..=users - spare).collect(),
            spares: (users - spare + 1..=users).collect(),
        }
    }

    /// The create, from the owner device: every member but the owner.
    pub fn create(&mut self, owner: &mut SimClient, now: Time) {
        let users: Vec<u64> = self.members.iter().copied().filter(|u| *u != 1).collect();
        let op = Outgoing::Group {
            group: 0,
            action: GroupAction::Create,
            users,
        };
        self.created = owner.submit(now, op, None);
    }

    /// One membership change (when the group is known): add a spare, or
    /// have the owner remove a member, or a member leave. Returns the
    /// client index that submits it and the operation.
    pub fn churn(
        &mut self,
        rng: &mut impl Rng,
        group: u64,
        clients: &[SimClient],
    ) -> Option<(usize, Outgoing)> {
        let owner = clients.iter().position(|c| c.user == 1 && c.device == 1)?;
        let others: Vec<u64> = self.members.iter().copied().filter(|u| *u != 1).collect();
        if !self.spares.is_empty() && (others.is_empty() || rng.gen_bool(0.5)) {
            let u = self.spares.remove(0);
            self.members.insert(u);
            let op = Outgoing::Group {
                group,
                action: GroupAction::Add { admin: false },
                users: vec![u],
            };
            return Some((owner, op));
        }
        let u = *others.get(rng.gen_range(0..others.len().max(1)))?;
        self.members.remove(&u);
        if rng.gen_bool(0.5) {
            let op = Outgoing::Group {
                group,
                action: GroupAction::Remove,
                users: vec![u],
            };
            return Some((owner, op));
        }
        let leaver = clients.iter().position(|c| c.user == u)?;
        let op = Outgoing::Group {
            group,
            action: GroupAction::Leave,
            users: vec![],
        };
        Some((leaver, op))
    }
}

/// The group's reference.
pub(crate) fn conv(group: u64) -> ConvRef {
    ConvRef {
        kind: ConvKind::Group,
        id: group,
    }
}
