//! The pipeline IR: plain domain types for components, executors, DAGs,
//! tasks and the data flowing between them.
//!
//! The IR is shaped after KFP v2's PipelineSpec so importing one is a
//! field-for-field mapping (components by name, executors by label, a root
//! component whose DAG holds the tasks, loops and conditions as tasks running
//! DAG components). It is not a wire format: no serde here. Nothing in this
//! module checks cross-references; [`crate::plan::Plan`] does.

mod component;
mod condition;
mod dag;
mod pipeline;
mod placeholder;
mod types;

pub use component::{
    Component, ContainerSpec, Executor, FunctionSpec, Implementation, ImporterSpec, ImporterUri, Resources,
};
pub use condition::{CompareOp, Condition, Conversion, Expr, ItemSelector};
pub use dag::{
    ArtifactSource, CachingOptions, Dag, DagOutputs, LoopItems, OutputRef, OutputSelection, ParallelFor,
    ParameterSource, RetryPolicy, Task, TriggerPolicy, TriggerStrategy,
};
pub use pipeline::Pipeline;
pub use placeholder::{Arg, ArtifactField, Placeholder, RunField, Segment, Template};
pub use types::{ArtifactSpec, ArtifactType, Interface, ParameterSpec, ParameterType};
