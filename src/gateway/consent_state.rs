//! The consent gate this node decides with, cached: the registry and legal bases as last loaded, with the
//! store's counters they were loaded at, reloaded inside the deciding transaction when they moved.

use super::{Gateway, GatewayError};
use crate::consent::{ConsentGate, Registry, model};
use crate::store::WriteTx;
use crate::store::consents::StateVersions;
use std::sync::Arc;

/// The consent registry and legal bases this node decided from last, with the store's counters they
/// were loaded at. Every decision reads the counters in its own transaction and reloads when another
/// node (or the CLI) changed consents or bases.
pub(super) struct ConsentState {
    versions: Option<StateVersions>,
    gate: Arc<ConsentGate>,
}

impl ConsentState {
    /// Nothing loaded yet: the first decision loads from the store.
    pub(super) fn unloaded() -> Self {
        Self {
            versions: None,
            gate: Arc::new(ConsentGate::new(Registry::new(), Vec::new(), None)),
        }
    }
}

impl Gateway {
    /// Run `decide` with the consent gate as the store has it now: the counters are read inside `tx`, and
    /// consents and bases reloaded (inside `tx`) when another node changed them since this node last
    /// looked.
    pub async fn with_gate<T>(
        &self,
        tx: &mut WriteTx<'_>,
        decide: impl FnOnce(&ConsentGate) -> T,
    ) -> Result<T, GatewayError> {
        let versions = self.store.state_versions(tx).await?;
        let mut state = self.consents.lock().await;
        if state.versions != Some(versions) {
            state.gate = Arc::new(self.load_gate(tx).await?);
            state.versions = Some(versions);
            tracing::debug!(
                consents = versions.consents,
                bases = versions.bases,
                "consent state reloaded from the store"
            );
        }
        Ok(decide(&state.gate))
    }

    /// The gate as this node last loaded it, with the counters it was loaded at, without reading the
    /// store (`None` before the first load): for deciding before a transaction, the decision kept only if
    /// the counters read inside it are still these.
    pub(super) async fn gate_as_loaded(&self) -> Option<(StateVersions, Arc<ConsentGate>)> {
        let state = self.consents.lock().await;
        Some((state.versions?, Arc::clone(&state.gate)))
    }

    async fn load_gate(&self, tx: &mut WriteTx<'_>) -> Result<ConsentGate, GatewayError> {
        let mut registry = Registry::new();
        for resource in self.store.consent_resources(tx).await? {
            match model::parse(&resource) {
                Ok(consent) => registry.upsert(consent),
                Err(problems) => {
                    let id = crate::store::reference_of(&resource);
                    tracing::warn!(consent = %id, problems = problems.len(), "a stored consent cannot be read and permits nothing");
                }
            }
        }
        let bases = self.store.legal_bases(tx).await?;
        Ok(ConsentGate::new(registry, bases, None).with_policy(self.config.consent_policy()))
    }
}
