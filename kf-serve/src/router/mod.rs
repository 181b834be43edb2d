//! Routing requests between model revisions and into batches: the canary
//! [`TrafficSplit`] as a pure function and [`CanaryModel`], a [`Model`] that
//! applies it; [`batch`], dynamic batching for v2 requests. Inference graphs
//! join this module.
//!
//! The split decides; it does no IO and holds no models. The canary model
//! holds two revisions and asks the split which one answers.
//!
//! [`Model`]: crate::Model

pub mod batch;
mod split;

pub use split::{CanaryModel, Revision, STICKY_PARAMETER, TrafficSplit};
