//! Routing requests between model revisions and into batches: the canary
//! [`TrafficSplit`] as a pure function and [`CanaryModel`], a [`Model`] that
//! applies it; [`batch`], dynamic batching for v2 requests; KServe
//! InferenceGraphs: [`GraphPlan`] (a graph compiled to run, with
//! [`Condition`]s in a GJSON subset) executed over a [`StepCaller`]; and
//! (feature `tower`) [`layer`]: batching and the canary split as tower
//! middleware over any `Service<InferenceRequest>`.
//!
//! The split decides; it does no IO and holds no models. The canary model
//! holds two revisions and asks the split which one answers.
//!
//! [`Model`]: crate::Model

pub mod batch;
mod condition;
mod graph;
#[cfg(feature = "tower")]
pub mod layer;
mod split;

#[cfg(feature = "remote")]
pub use crate::model::HttpCaller;
pub use condition::Condition;
pub use graph::{GraphPlan, GraphRouter, RandomSource, SplitMix64, StepCaller, Target};
pub use split::{CanaryModel, Revision, STICKY_PARAMETER, TrafficSplit};
