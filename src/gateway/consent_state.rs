//! The consent gate this node decides with, cached: the registry and legal bases as last loaded, with the
//! store's counters they were loaded at, reloaded inside the deciding transaction when they moved.

use super::{Gateway, GatewayError};
use crate::consent::{ConsentGate, Registry, model};
use crate::store::WriteTx;
use crate::store::consents::StateVersions;

/// The consent registry and legal bases this node decided from last, with the store's counters they
/// were loaded at. Every decision reads the counters in its own transaction and reloads when another
/// node (or the CLI) changed consents or bases.
pub(super) struct ConsentState {
    versions: Option<StateVersions>,
    gate: ConsentGate,
}

impl ConsentState {
    /// Nothing loaded yet: the first decision loads from the store.
    pub(super) fn unloaded() -> Self {
        Self {
            versions: None,
            gate: ConsentGate::new(Registry::new(), Vec::new(), None),
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
            state.gate = self.load_gate(tx).await?;
            state.versions = Some(versions);
            tracing::debug!(
                consents = versions.consents,
                bases = versions.bases,
                "consent state reloaded from the store"
            );
        }
        Ok(decide(&state.gate))
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
