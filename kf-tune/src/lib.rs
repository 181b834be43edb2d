//! # kf-tune — hyperparameter tuning
//!
//! Search spaces, suggestion algorithms and Katib compatibility, as plain data
//! and pure functions:
//!
//! - [`katib`] — the Katib `Experiment` wire type (kubeflow.org/v1beta1):
//!   [`Experiment::from_value`], [`Experiment::validate`], [`Experiment::to_value`],
//!   and [`Experiment::search_space`].
//! - [`space`] — the domain: [`SearchSpace`] of `double`/`int`/`discrete`/`categorical`
//!   parameters with uniform, log-uniform, normal and log-normal priors.
//! - [`algorithm`] — Katib `algorithmName` + `algorithmSettings` → a configured
//!   sampler; every setting applied or rejected with an error naming it.
//! - [`ask_tell`] — the JSON-lines ask/tell protocol: a [`ask_tell::Session`] per
//!   search and [`ask_tell::serve`] over any `BufRead`/`Write`.
//! - [`early_stopping`] — the median stopping rule (Katib `medianstop`) and
//!   successive-halving (ASHA) pruning, as pure functions.
//! - [`sampler`] — the [`Sampler`] trait, a pure function of (space, trial
//!   history, random generator) → suggestions, with one module per algorithm:
//!   [`sampler::random`], [`sampler::grid`], [`sampler::sobol`], [`sampler::tpe`],
//!   [`sampler::mtpe`] (multivariate TPE), [`sampler::gp`] (Gaussian-process BO),
//!   [`sampler::cmaes`] (CMA-ES), [`sampler::hyperband`] and [`sampler::asha`]
//!   (multi-fidelity, with budgets), [`sampler::nsga2`] (multi-objective, Pareto
//!   front), [`sampler::pbt`] (population-based training, parents and checkpoints).
//!
//! - [`metrics`] — reading `name=value` text (Katib's default and custom
//!   regexes) and JSON lines into metric series; min/max/latest strategies.
//! - [`experiment`] — an experiment's plan (from a Katib Experiment) and its
//!   state machine: what runs next, when it ends, its status in Katib's shape.
//! - [`plot`] — the optimisation history and parallel coordinates of an
//!   experiment as one SVG document, a pure function of space and history.
//! - [`push`] — Katib's `Push` collector: the wire format trials report in,
//!   per-trial tokens, the request checks (no IO; the runner serves it).
//! - `runner` (feature `runner`, on by default) — running an experiment on
//!   tokio: the `TrialRunner` trait with an in-process closure runner and a
//!   local process runner, early stopping hooked into metric reports, and a
//!   fsync'd JSON-lines journal to resume from.
//! - `controller` (feature `controller`) — a Katib Experiment reconciler on
//!   kube-runtime: trials as owned objects of the template's kind, the
//!   history rebuilt from them, Katib's status.
//!
//! This crate never depends on another kf crate.
//!
//! ```
//! use kf_tune::Experiment;
//!
//! let doc = serde_json::json!({
//!     "apiVersion": "kubeflow.org/v1beta1",
//!     "kind": "Experiment",
//!     "metadata": {"name": "demo"},
//!     "spec": {
//!         "objective": {"type": "minimize", "objectiveMetricName": "loss", "goal": 0.01},
//!         "algorithm": {"algorithmName": "random"},
//!         "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": 0.05}}],
//!         "trialTemplate": {
//!             "trialParameters": [{"name": "learningRate", "reference": "lr"}],
//!             "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"args": ["--lr=${trialParameters.learningRate}"]}},
//!         },
//!     },
//! });
//! let experiment = Experiment::from_value(doc.clone())?;
//! experiment.validate()?;
//! assert_eq!(experiment.to_value(), doc); // "0.01" stays a string, 0.05 a number
//! assert_eq!(experiment.search_space()?.params()[0].name(), "lr");
//! # Ok::<(), kf_tune::Error>(())
//! ```
#![deny(missing_docs)]

pub mod algorithm;
pub mod ask_tell;
#[cfg(feature = "controller")]
pub mod controller;
pub mod early_stopping;
mod error;
pub mod experiment;
mod gauss;
pub mod katib;
pub mod metrics;
pub mod plot;
pub mod push;
#[cfg(feature = "runner")]
pub mod runner;
pub mod sampler;
pub mod space;

pub use error::{Error, Result};
pub use katib::Experiment;
pub use sampler::{Direction, History, Sampler, Shortfall, Suggestion, Trial, TrialState};
pub use space::{Assignment, Distribution, Domain, Param, ParamValue, SearchSpace};
