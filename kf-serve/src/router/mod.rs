//! Routing requests between model revisions. Today: the canary
//! [`TrafficSplit`] as a pure function and [`CanaryModel`], a [`Model`] that
//! applies it. Inference graphs and the batching layer join this module.
//!
//! The split decides; it does no IO and holds no models. The canary model
//! holds two revisions and asks the split which one answers.
//!
//! [`Model`]: crate::Model

mod split;

pub use split::{CanaryModel, Revision, STICKY_PARAMETER, TrafficSplit};
