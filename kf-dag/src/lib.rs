//! # kf-dag — pipelines
//!
//! The pipeline engine of kf, modelled on Kubeflow Pipelines v2.
//!
//! - [`ir`]: the pipeline IR — [`ir::Pipeline`], components with typed inputs
//!   and outputs, executors (container, Rust function, importer), DAGs of
//!   tasks, loops, conditions, retries, caching options, placeholders.
//! - [`plan`]: validation of a pipeline into a [`Plan`] — one petgraph graph
//!   per DAG with its topological order, levels and critical path; every
//!   error names the path of the offending field.
//! - [`builder`]: [`PipelineBuilder`], building pipelines in Rust with typed
//!   handles so wiring mistakes fail to compile.
//! - [`run`]: task states, the run journal and its replay into a
//!   [`run::RunSnapshot`] (what a resumed run starts from).
//! - [`exec`]: the [`Executor`] (tokio) — bounded parallelism, conditions,
//!   loops, fan-in, exit handlers, retries, timeouts, caching, cancellation,
//!   resume, and an event stream; [`clock`]: the time it reads and waits on.
//! - [`runner`]: the [`runner::TaskRunner`] trait and its implementations —
//!   Rust functions in process, local processes, a scripted fake.
//! - [`artifact`]: artifacts in any object_store under `<run>/<task>/<output>`.
//! - [`store`]: the [`store::RunStore`] trait and an in-memory store;
//!   [`journal`]: the durable file store; [`cache`]: the [`cache::Cache`]
//!   trait, an in-memory and an object_store cache; [`testing`]: the
//!   conformance suites every implementation runs; [`encoding`]: the JSON
//!   forms of journals and cache entries.
//! - [`cache_key`]: [`CacheKey`], the content digest of a task's resolved
//!   inputs and component definition.
//! - [`kfp`]: KFP v2 compatibility — the compiled `PipelineSpec` YAML read
//!   losslessly ([`kfp::KfpPipeline`]), imported into the IR and validated
//!   with YAML-path errors, IR exported back to KFP, and the
//!   `ExecutorInput`/`ExecutorOutput` contract of KFP components as pure
//!   functions ([`kfp::executor_input`]).
//! - [`format`](mod@format): kf's YAML/JSON pipeline files; [`graph`]: DOT and SVG
//!   pictures; [`local`]: the on-disk layout `kf pipeline` uses;
//!   [`bench`](mod@bench): the no-op scheduling benchmark.
//!
//! This crate owns the pipeline IR and everything that runs it. It does not know
//! about training jobs, tuning or serving (those are other crates, joined only by
//! the `kf` assembly). Its core (IR, plan, cache keys, run journal replay) never
//! touches the network or the filesystem; the executor is async and IO lives in
//! adapters (process runner, object_store artifacts and cache, file journal).
//!
//! Status: IR, validation, the executor with caching and crash-safe runs,
//! and KFP import/export plus the KFP executor contract (docs/kf-dag.md maps
//! the IR to KFP's PipelineSpec).
//!
//! ```
//! use kf_dag::builder::{Dataset, PipelineBuilder};
//! use kf_dag::ir::ContainerSpec;
//!
//! let mut p = PipelineBuilder::new("hello");
//! let greeting = p.parameter::<String>("greeting");
//! let mut say = p.container_component("say", ContainerSpec::new("alpine"));
//! let text = say.input::<String>("text");
//! let out = say.output_artifact::<Dataset>("out");
//! say.command(["sh", "-c", "echo \"$0\" > \"$1\"", &text.placeholder(), &out.path()]);
//! let say = p.add_component(say);
//! let task = p.task("say", &say).set(&text, &greeting).done();
//! let _dataset = task.output_artifact(&out);
//! let plan = p.build()?;
//! assert_eq!(plan.root().order(), ["say"]);
//! # Ok::<(), kf_dag::Error>(())
//! ```
#![deny(missing_docs)]

pub mod artifact;
pub mod bench;
pub mod builder;
pub mod cache;
pub mod cache_key;
pub mod clock;
pub mod encoding;
mod error;
pub mod exec;
pub mod format;
pub mod graph;
pub mod ir;
pub mod journal;
pub mod kfp;
pub mod local;
pub mod plan;
pub mod run;
pub mod runner;
pub mod store;
pub mod testing;

pub use builder::PipelineBuilder;
pub use cache_key::CacheKey;
pub use error::{Error, Result};
pub use exec::Executor;
pub use plan::Plan;
