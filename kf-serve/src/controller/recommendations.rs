//! Where the reconciler gets the autoscaler's replica counts.
//!
//! The real source is the [`Scraper`](super::Scraper): it reads the load
//! each `kf serve` pod exposes on `/metrics` (`kf_serve_autoscaler_*`),
//! runs the InferenceService's KPA on the pods' sum and writes its latest
//! answer into an [`InMemoryRecommendations`]; any other autoscaler may
//! implement [`Recommendations`] instead. Every reconcile of an
//! autoscaled InferenceService reads it. The lookup is synchronous
//! and cheap on purpose: the reconciler never waits on a scrape.

use std::collections::HashMap;
use std::sync::RwLock;

/// The latest replica recommendation per InferenceService.
pub trait Recommendations: Send + Sync {
    /// The replicas recommended for the predictor of `namespace/name`;
    /// `None` when there is no recommendation (yet).
    fn replicas(&self, namespace: &str, name: &str) -> Option<u32>;
}

/// Recommendations held in memory, set by whoever computes them.
///
/// ```
/// use kf_serve::controller::{InMemoryRecommendations, Recommendations};
/// let recommendations = InMemoryRecommendations::default();
/// assert_eq!(recommendations.replicas("team-a", "iris"), None);
/// recommendations.set("team-a", "iris", 3);
/// assert_eq!(recommendations.replicas("team-a", "iris"), Some(3));
/// recommendations.remove("team-a", "iris");
/// assert_eq!(recommendations.replicas("team-a", "iris"), None);
/// ```
#[derive(Debug, Default)]
pub struct InMemoryRecommendations {
    by_service: RwLock<HashMap<(String, String), u32>>,
}

impl InMemoryRecommendations {
    /// Records `replicas` for `namespace/name`, replacing any earlier one.
    pub fn set(&self, namespace: &str, name: &str, replicas: u32) {
        let mut map = self.by_service.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert((namespace.to_string(), name.to_string()), replicas);
    }

    /// Forgets the recommendation for `namespace/name`.
    pub fn remove(&self, namespace: &str, name: &str) {
        let mut map = self.by_service.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&(namespace.to_string(), name.to_string()));
    }
}

impl Recommendations for InMemoryRecommendations {
    fn replicas(&self, namespace: &str, name: &str) -> Option<u32> {
        let map = self.by_service.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&(namespace.to_string(), name.to_string())).copied()
    }
}
