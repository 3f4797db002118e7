//! The writes of a group commit, gathered as its submissions are accepted and written together: every
//! acceptance's audit entries, resource versions, messages and outbox rows go in with one multi-row insert
//! per table instead of a handful of statements each (each statement is a round trip to the store).
//!
//! A submission is decided on what the store holds, so before one is decided whose resources or referral
//! an earlier submission of the batch wrote, what is gathered is written first (in the same transaction).
//! A refused submission gathers nothing, so nothing of it has to be rolled back. Audit entries are sealed
//! on the chain's head as each submission is accepted, in acceptance order; the head row itself is moved
//! once, before the commit ([`crate::store::Store::settle_chain`]).

use crate::consent::audit::{AuditEntry, ChainHead};
use crate::store::messages::NewDelivery;
use crate::store::resources::ResourceWrite;
use crate::store::{Message, Store, StoreError, WriteTx};
use std::collections::HashSet;

/// What the accepted submissions of a group commit write, not yet written.
#[derive(Default)]
pub(super) struct BatchWrites {
    entries: Vec<AuditEntry>,
    resources: Vec<ResourceWrite>,
    messages: Vec<(Message, Vec<NewDelivery>)>,
    /// `Type/id` of the resources written and the referral keys of the messages.
    touched: HashSet<String>,
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

    /// Gather an accepted submission's writes; its audit entries are sealed after `head`, which advances.
    pub(super) fn add(&mut self, head: &mut ChainHead, writes: SubmissionWrites) {
        self.entries
            .extend(crate::store::audit::seal(head, writes.entries));
        self.touched
            .extend(writes.resources.iter().map(ResourceWrite::key));
        self.touched.insert(writes.message.referral_key.clone());
        self.resources.extend(writes.resources);
        self.messages.push((writes.message, writes.deliveries));
    }

    /// Write what is gathered, inside `tx`, and start again empty.
    pub(super) async fn write(
        &mut self,
        store: &Store,
        tx: &mut WriteTx<'_>,
    ) -> Result<(), StoreError> {
        let gathered = std::mem::take(self);
        store.insert_sealed(tx, &gathered.entries).await?;
        store.write_resources(tx, &gathered.resources).await?;
        let messages: Vec<(&Message, &[NewDelivery])> = gathered
            .messages
            .iter()
            .map(|(message, deliveries)| (message, deliveries.as_slice()))
            .collect();
        store.insert_messages(tx, &messages).await
    }
}
