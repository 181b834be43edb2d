//! The canary traffic split (KServe's `canaryTrafficPercent`): which
//! revision answers a request, by percentage, sticky by key when asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::protocol::{InferenceRequest, InferenceResponse, ModelMetadata};
use crate::{Error, Model, Result};

/// The revision a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revision {
    /// The current, promoted revision.
    Stable,
    /// The revision being rolled out.
    Canary,
}

/// Sends `canary_percent` % of requests to the canary revision.
///
/// Routing is a pure function of a *ticket*: ticket `t` goes to the canary
/// when `slot(t) < canary_percent`, where `slot(t) = 37·t mod 100` — a
/// permutation of the residues mod 100, so canary requests are spread
/// through every run of 100 instead of bunched at its start (37 is coprime
/// with 100). Tickets come from a counter (so any
/// 100 consecutive requests split exactly) or from a hash of a sticky key
/// (so one user always sees the same revision). Raising the percentage only
/// ever moves tickets from stable to canary, never back: a sticky user who
/// reached the canary stays there as the rollout grows. O(1) per request
/// (O(key length) when sticky).
///
/// ```
/// use kf_serve::router::{Revision, TrafficSplit};
///
/// let split = TrafficSplit::new(10)?;
/// let canary = (0..100u64).filter(|t| split.route(*t) == Revision::Canary).count();
/// assert_eq!(canary, 10);
/// assert_eq!(split.route_key("user-7"), split.route_key("user-7"));
/// assert_eq!(split.promote().route(0), Revision::Canary);
/// assert_eq!(split.rollback().route(0), Revision::Stable);
/// # Ok::<(), kf_serve::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficSplit {
    canary_percent: u8,
}

impl TrafficSplit {
    /// `percent` as a split, above 100 read as 100 (for values kept in atomics).
    pub(crate) fn clamped(percent: u64) -> Self {
        TrafficSplit { canary_percent: u8::try_from(percent.min(100)).unwrap_or(100) }
    }

    /// A split sending `canary_percent` (0–100) % to the canary.
    pub fn new(canary_percent: u8) -> Result<Self> {
        if canary_percent > 100 {
            return Err(Error::Invalid {
                path: "canaryTrafficPercent".into(),
                message: format!("expected 0 to 100, found {canary_percent}"),
            });
        }
        Ok(TrafficSplit { canary_percent })
    }

    /// The share of traffic going to the canary, in percent.
    pub fn canary_percent(self) -> u8 {
        self.canary_percent
    }

    /// The revision for `ticket`.
    pub fn route(self, ticket: u64) -> Revision {
        let slot = (ticket % 100) * 37 % 100;
        if slot < u64::from(self.canary_percent) { Revision::Canary } else { Revision::Stable }
    }

    /// The revision for a sticky `key` (a user or session id): the same key
    /// always gets the same revision at a given percentage.
    pub fn route_key(self, key: &str) -> Revision {
        self.route(sticky_ticket(key))
    }

    /// Everything to the canary (it becomes the stable revision).
    pub fn promote(self) -> Self {
        TrafficSplit { canary_percent: 100 }
    }

    /// Everything back to the stable revision.
    pub fn rollback(self) -> Self {
        TrafficSplit { canary_percent: 0 }
    }
}

/// The revision `request` goes to under `split`: by its
/// [`STICKY_PARAMETER`] when it carries one, else by the next ticket.
pub(crate) fn revision_of(split: TrafficSplit, tickets: &AtomicU64, request: &InferenceRequest) -> Revision {
    match request.parameters.as_ref().and_then(|p| p.get(STICKY_PARAMETER)).and_then(Value::as_str) {
        Some(key) => split.route_key(key),
        None => split.route(tickets.fetch_add(1, Ordering::Relaxed)),
    }
}

/// FNV-1a of the key: stable across processes and releases (unlike std's
/// `DefaultHasher`), so replicas agree on where a user goes.
fn sticky_ticket(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The request parameter whose string value makes routing sticky
/// (`"parameters": {"routing_key": "user-7"}`).
pub const STICKY_PARAMETER: &str = "routing_key";

/// Two revisions of one model behind a [`TrafficSplit`].
///
/// Requests carrying the [`STICKY_PARAMETER`] route by it; the others take
/// tickets from a counter, so the split is exact over every 100 requests.
/// Both revisions must declare the same inputs, checked at construction.
/// The split can be changed while serving (promote, rollback, new
/// percentage) without a lock on the request path.
pub struct CanaryModel {
    stable: Arc<dyn Model>,
    canary: Arc<dyn Model>,
    percent: AtomicU64,
    tickets: AtomicU64,
    /// Requests each revision was given: [stable, canary].
    served: [AtomicU64; 2],
}

impl std::fmt::Debug for CanaryModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanaryModel").field("split", &self.split()).finish_non_exhaustive()
    }
}

impl CanaryModel {
    /// `stable` and `canary` behind `split`. Fails when their inputs differ:
    /// a request valid for one would be refused by the other.
    pub fn new(stable: Arc<dyn Model>, canary: Arc<dyn Model>, split: TrafficSplit) -> Result<Self> {
        if stable.metadata().inputs != canary.metadata().inputs {
            return Err(Error::Invalid {
                path: "canary.inputs".into(),
                message: format!(
                    "the canary's inputs {:?} differ from the stable revision's {:?}",
                    canary.metadata().inputs,
                    stable.metadata().inputs
                ),
            });
        }
        Ok(CanaryModel {
            stable,
            canary,
            percent: AtomicU64::new(u64::from(split.canary_percent)),
            tickets: AtomicU64::new(0),
            served: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    /// The split in force.
    pub fn split(&self) -> TrafficSplit {
        TrafficSplit::clamped(self.percent.load(Ordering::Relaxed))
    }

    /// Requests routed so far to (stable, canary), for dashboards: the split
    /// as it happened, next to the split configured. O(1).
    pub fn served(&self) -> (u64, u64) {
        (self.served[0].load(Ordering::Relaxed), self.served[1].load(Ordering::Relaxed))
    }

    /// Changes the split for the requests that start from now on.
    pub fn set_split(&self, split: TrafficSplit) {
        self.percent.store(u64::from(split.canary_percent), Ordering::Relaxed);
    }

    /// The revision `request` goes to.
    pub fn revision_for(&self, request: &InferenceRequest) -> Revision {
        revision_of(self.split(), &self.tickets, request)
    }
}

impl Model for CanaryModel {
    /// The stable revision's metadata: clients see one model.
    fn metadata(&self) -> &ModelMetadata {
        self.stable.metadata()
    }

    fn is_ready(&self) -> bool {
        self.stable.is_ready() && self.canary.is_ready()
    }

    fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
        match self.revision_for(request) {
            Revision::Stable => {
                self.served[0].fetch_add(1, Ordering::Relaxed);
                self.stable.infer(request)
            }
            Revision::Canary => {
                self.served[1].fetch_add(1, Ordering::Relaxed);
                self.canary.infer(request)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FnModel;
    use crate::protocol::{DataType, MetadataTensor, Parameters, Tensor};
    use proptest::prelude::*;

    fn constant(value: i64) -> Arc<dyn Model> {
        let meta = ModelMetadata {
            name: "m".into(),
            versions: None,
            platform: "closure".into(),
            inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Int64, shape: vec![1] }],
            outputs: vec![MetadataTensor { name: "y".into(), datatype: DataType::Int64, shape: vec![1] }],
        };
        Arc::new(FnModel::new(meta, move |_: &InferenceRequest| {
            Ok(InferenceResponse { outputs: vec![Tensor::new("y", vec![1], vec![value])?], ..Default::default() })
        }))
    }

    fn answer(model: &CanaryModel, key: Option<&str>) -> i64 {
        let mut parameters = Parameters::new();
        if let Some(k) = key {
            parameters.insert(STICKY_PARAMETER.into(), Value::from(k));
        }
        let request = InferenceRequest {
            inputs: vec![Tensor::new("x", vec![1], vec![0i64]).expect("t")],
            parameters: Some(parameters),
            ..Default::default()
        };
        model.infer(&request).expect("infer").outputs[0].data().as_i64().expect("i64")[0]
    }

    #[test]
    fn canary_model_splits_exactly_and_sticks_by_key() {
        let model =
            CanaryModel::new(constant(1), constant(2), TrafficSplit::new(25).expect("split")).expect("same inputs");
        let canary = (0..200).filter(|_| answer(&model, None) == 2).count();
        assert_eq!(canary, 50);
        assert_eq!(model.served(), (150, 50), "what was served is what was routed");
        let first = answer(&model, Some("user-1"));
        assert!((0..20).all(|_| answer(&model, Some("user-1")) == first));
        model.set_split(model.split().promote());
        assert!((0..10).all(|_| answer(&model, None) == 2));
        model.set_split(model.split().rollback());
        assert!((0..10).all(|_| answer(&model, Some("user-1")) == 1));
    }

    #[test]
    fn revisions_must_take_the_same_inputs_and_percentages_are_bounded() {
        let other = Arc::new(FnModel::new(
            ModelMetadata { inputs: vec![], ..constant(0).metadata().clone() },
            |_: &InferenceRequest| Ok(InferenceResponse::default()),
        ));
        assert!(CanaryModel::new(constant(1), other, TrafficSplit::new(5).expect("split")).is_err());
        assert!(TrafficSplit::new(101).is_err());
    }

    proptest! {
        #[test]
        fn any_hundred_consecutive_tickets_split_exactly(percent in 0u8..=100, start in any::<u64>()) {
            // Wrapping past u64::MAX breaks the residue sequence; stay clear of it.
            prop_assume!(start <= u64::MAX - 100);
            let split = TrafficSplit::new(percent).expect("valid");
            let canary = (0..100u64).filter(|i| split.route(start + i) == Revision::Canary).count();
            prop_assert_eq!(canary, usize::from(percent));
        }

        #[test]
        fn canary_tickets_are_spread_not_bunched(percent in 0u8..=100, start in 0u64..1_000_000) {
            // Any 20 consecutive requests get their share within 2 (bunched, 20 could all go one way).
            let split = TrafficSplit::new(percent).expect("valid");
            let canary = (0..20u64).filter(|i| split.route(start + i) == Revision::Canary).count();
            prop_assert!((canary as f64 - f64::from(percent) / 5.0).abs() <= 2.0, "{canary} of 20 at {percent} %");
        }

        #[test]
        fn raising_the_percentage_never_moves_a_key_back_to_stable(key in ".{0,12}", low in 0u8..=100, high in 0u8..=100) {
            let (low, high) = (low.min(high), low.max(high));
            let before = TrafficSplit::new(low).expect("valid").route_key(&key);
            let after = TrafficSplit::new(high).expect("valid").route_key(&key);
            prop_assert!(!(before == Revision::Canary && after == Revision::Stable));
        }
    }
}
