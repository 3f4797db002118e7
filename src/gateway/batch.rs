//! The writes of a group commit, gathered as its submissions are accepted and written together: every
//! acceptance's audit entries, resource versions, messages and outbox rows go in with one multi-row insert
//! per table instead of a handful of statements each (each statement is a round trip to the store).
//!
//! The reads are gathered too: what every submission of a batch reads (its resources as held, its
//! referral's latest revision) is read for all of them at once when the transaction starts
//! ([`BatchReads`]). A submission is decided on what the store holds, so one whose resources or referral
//! an earlier submission of the batch wrote reads them again instead, after what is gathered is written
//! (in the same transaction).
//! A refused submission gathers nothing, so nothing of it has to be rolled back. Audit entries are sealed
//! on the chain's head as each submission is accepted, in acceptance order; the head row itself is moved
//! once, before the commit ([`crate::store::Store::settle_chain`]).

use crate::consent::audit::{AuditEntry, ChainHead};
use crate::store::messages::{NewDelivery, Revision};
use crate::store::resources::ResourceWrite;
use crate::store::{HeldResources, Message, Store, StoreError, WriteTx};
use std::collections::{HashMap, HashSet};

/// What a batch's submissions read, read for all of them at the start of its transaction.
pub(super) struct BatchReads {
    /// Every resource of every submission (and each one's Task), as held.
    pub(super) held: HeldResources,
    /// The latest revision of each submission's referral.
    pub(super) revisions: HashMap<String, Revision>,
}

impl BatchReads {
    /// Read what `submissions` (each its referral key and its resources' types and ids) will read.
    pub(super) async fn read(
        store: &Store,
        tx: &mut WriteTx<'_>,
        submissions: &[(&str, Vec<(&str, &str)>)],
    ) -> Result<Self, StoreError> {
        let mut keys: Vec<(&str, &str)> = Vec::new();
        let mut seen = HashSet::new();
        for key in submissions.iter().flat_map(|(_, keys)| keys) {
            if seen.insert(*key) {
                keys.push(*key);
            }
        }
        let mut referrals: Vec<&str> = submissions.iter().map(|(referral, _)| *referral).collect();
        referrals.sort_unstable();
        referrals.dedup();
        Ok(Self {
            held: store.held_resources(tx, &keys).await?,
            revisions: store.latest_revisions(tx, &referrals).await?,
        })
    }
}

/// What the accepted submissions of a group commit write, not yet written.
#[derive(Default)]
pub(super) struct BatchWrites {
    entries: Vec<AuditEntry>,
    resources: Vec<ResourceWrite>,
    messages: Vec<(Message, Vec<NewDelivery>)>,
    /// `Type/id` of the resources written and the referral keys of the messages.
    touched: HashSet<String>,
    /// The same, of everything gathered or written in this transaction (what [`BatchReads`] read of
    /// these is out of date).
    changed: HashSet<String>,
}

/// What one accepted submission writes.
pub(super) struct SubmissionWrites {
    /// Its consent decisions' audit entries, not yet sealed.
    pub(super) entries: Vec<AuditEntry>,
    pub(super) resources: Vec<ResourceWrite>,
    pub(super) message: Message,
    pub(super) deliveries: Vec<NewDelivery>,
}

impl BatchWrites {
    /// Whether a submission reading `resources` (`Type/id`) or the referral `key` would read something
    /// gathered here and not yet written.
    pub(super) fn touches<'k>(
        &self,
        key: &str,
        mut resources: impl Iterator<Item = &'k str>,
    ) -> bool {
        !self.touched.is_empty()
            && (self.touched.contains(key) || resources.any(|r| self.touched.contains(r)))
    }

    /// Whether a submission reading `resources` or the referral `key` reads something this transaction
    /// wrote or gathered: what the batch read of it at the start is out of date.
    pub(super) fn changed<'k>(
        &self,
        key: &str,
        mut resources: impl Iterator<Item = &'k str>,
    ) -> bool {
        !self.changed.is_empty()
            && (self.changed.contains(key) || resources.any(|r| self.changed.contains(r)))
    }

    /// Gather an accepted submission's writes; its audit entries are sealed after `head`, which advances.
    pub(super) fn add(&mut self, head: &mut ChainHead, writes: SubmissionWrites) {
        self.entries
            .extend(crate::store::audit::seal(head, writes.entries));
        let keys = (writes.resources.iter().map(ResourceWrite::key))
            .chain([writes.message.referral_key.clone()]);
        for key in keys {
            self.changed.insert(key.clone());
            self.touched.insert(key);
        }
        self.resources.extend(writes.resources);
        self.messages.push((writes.message, writes.deliveries));
    }

    /// Write what is gathered, inside `tx`, and start again empty (remembering what was written).
    pub(super) async fn write(
        &mut self,
        store: &Store,
        tx: &mut WriteTx<'_>,
    ) -> Result<(), StoreError> {
        let entries = std::mem::take(&mut self.entries);
        let resources = std::mem::take(&mut self.resources);
        let gathered = std::mem::take(&mut self.messages);
        self.touched.clear();
        let messages: Vec<(&Message, &[NewDelivery])> = gathered
            .iter()
            .map(|(message, deliveries)| (message, deliveries.as_slice()))
            .collect();
        store
            .write_gathered(tx, &entries, &resources, &messages)
            .await
    }
}
