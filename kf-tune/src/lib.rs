//! # kf-tune — hyperparameter tuning
//!
//! Search spaces, suggestion algorithms (random, grid, Sobol, TPE, Gaussian
//! process, CMA-ES, Hyperband/ASHA, PBT, multi-objective), early stopping, an
//! experiment runner and the JSON-lines ask/tell protocol, compatible with Katib's
//! `Experiment` (kubeflow.org/v1beta1).
//!
//! Every sampler is a pure function of (search space, trial history, random
//! generator), so users can unit-test an algorithm alone; running trials and
//! collecting metrics are traits the caller implements. This crate never depends
//! on another kf crate.
//!
//! Status: the workspace foundation. Spaces, samplers and experiments land with
//! the kf-tune issue.
#![deny(missing_docs)]

mod error;

pub use error::{Error, Result};
