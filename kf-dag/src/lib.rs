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
//! - [`store`]: the [`store::RunStore`] trait (append-only journals) and an
//!   in-memory store; [`cache`]: the [`cache::Cache`] trait and an in-memory
//!   cache; [`testing`]: the conformance suites every implementation runs.
//! - [`cache_key`]: [`CacheKey`], the content digest of a task's resolved
//!   inputs and component definition.
//!
//! This crate owns the pipeline IR and everything that runs it. It does not know
//! about training jobs, tuning or serving (those are other crates, joined only by
//! the `kf` assembly), and its core never touches the network or the filesystem:
//! process spawning, object storage and Kubernetes live in adapters.
//!
//! Status: IR, validation, cache keys, the builder, run journals and the cache
//! interface. The executor lands next; KFP YAML import/export with the KFP
//! compatibility issue (docs/kf-dag.md maps the IR to KFP's PipelineSpec).
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
