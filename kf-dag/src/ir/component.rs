//! Components (a typed signature plus an implementation) and executors (what
//! runs a leaf component: a container command, a Rust function, an importer).
//!
//! Components name their executor by label, as KFP's `executorLabel` does, so
//! one executor can serve several components and an imported PipelineSpec maps
//! field for field. This module declares; it never runs anything.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Template;
use super::dag::Dag;
use super::placeholder::Arg;
use super::types::{ArtifactType, Interface};

/// A reusable step: what it takes, what it gives and how it is implemented.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Inputs (KFP `inputDefinitions`).
    pub inputs: Interface,
    /// Outputs (KFP `outputDefinitions`).
    pub outputs: Interface,
    /// An executor or a DAG of tasks.
    pub implementation: Implementation,
}

impl Component {
    /// A leaf component run by the executor with label `executor`.
    pub fn leaf(executor: impl Into<String>) -> Self {
        Component {
            inputs: Interface::default(),
            outputs: Interface::default(),
            implementation: Implementation::Executor(executor.into()),
        }
    }

    /// A component implemented by a DAG of tasks (a pipeline used as a
    /// component, a loop body or a condition branch).
    pub fn dag(dag: Dag) -> Self {
        Component {
            inputs: Interface::default(),
            outputs: Interface::default(),
            implementation: Implementation::Dag(dag),
        }
    }

    /// The DAG, when this component is one.
    pub fn as_dag(&self) -> Option<&Dag> {
        match &self.implementation {
            Implementation::Dag(dag) => Some(dag),
            Implementation::Executor(_) => None,
        }
    }
}

/// How a component is implemented.
#[derive(Debug, Clone, PartialEq)]
pub enum Implementation {
    /// Run by the executor with this label (a key of [`crate::ir::Pipeline::executors`]).
    Executor(String),
    /// A nested DAG of tasks.
    Dag(Dag),
}

impl Implementation {
    /// The DAG, mutably, when this implementation is one.
    pub fn dag_mut(&mut self) -> Option<&mut Dag> {
        match self {
            Implementation::Dag(dag) => Some(dag),
            Implementation::Executor(_) => None,
        }
    }
}

/// What runs a leaf component.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Executor {
    /// A container image with a command line (also run as a local process).
    Container(ContainerSpec),
    /// A Rust function registered with the executor under a name.
    Function(FunctionSpec),
    /// Brings an existing artifact into the pipeline without running anything.
    Importer(ImporterSpec),
}

impl Executor {
    /// The KFP-style name of the executor kind, used in error paths
    /// (`container`, `function`, `importer`).
    pub fn kind(&self) -> &'static str {
        match self {
            Executor::Container(_) => "container",
            Executor::Function(_) => "function",
            Executor::Importer(_) => "importer",
        }
    }
}

/// A container-style executor: image, command, args and environment, each
/// argument possibly holding placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    /// The image, e.g. `python:3.11`.
    pub image: String,
    /// The entrypoint.
    pub command: Vec<Arg>,
    /// Arguments after the command.
    pub args: Vec<Arg>,
    /// Environment variables, in order; values may hold placeholders.
    pub env: Vec<(String, Template)>,
    /// Resource requests and limits.
    pub resources: Resources,
}

/// Resource requests and limits of a container. Values are templates
/// because KFP lets a task output set them (`set_cpu_limit(task.output)`):
/// such a placeholder names an input of the *task* (KFP adds a
/// `pipelinechannel--…` task input the component does not declare).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU limit, e.g. `500m`.
    pub cpu_limit: Option<Template>,
    /// CPU request.
    pub cpu_request: Option<Template>,
    /// Memory limit, e.g. `2G`.
    pub memory_limit: Option<Template>,
    /// Memory request.
    pub memory_request: Option<Template>,
    /// Accelerator type, e.g. `nvidia.com/gpu`.
    pub accelerator_type: Option<Template>,
    /// Number of accelerators.
    pub accelerator_count: Option<Template>,
}

impl Resources {
    /// Every set field with its KFP name (`resourceCpuLimit`, …), in a fixed order.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &Template)> {
        [
            ("resourceCpuLimit", &self.cpu_limit),
            ("resourceCpuRequest", &self.cpu_request),
            ("resourceMemoryLimit", &self.memory_limit),
            ("resourceMemoryRequest", &self.memory_request),
            ("accelerator.resourceType", &self.accelerator_type),
            ("accelerator.resourceCount", &self.accelerator_count),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
    }
}

impl ContainerSpec {
    /// A container running `image` with no command (the image's entrypoint).
    pub fn new(image: impl Into<String>) -> Self {
        ContainerSpec { image: image.into(), ..ContainerSpec::default() }
    }
}

/// A Rust function executor: the function registered under `name` is called
/// with the task's resolved inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The registration name.
    pub name: String,
}

/// An importer: makes an existing URI an artifact output of the task.
#[derive(Debug, Clone, PartialEq)]
pub struct ImporterSpec {
    /// Where the artifact is.
    pub uri: ImporterUri,
    /// The type of the imported artifact.
    pub artifact_type: ArtifactType,
    /// Metadata attached to the artifact.
    pub metadata: BTreeMap<String, Value>,
    /// Import again even when the same URI was imported before.
    pub reimport: bool,
}

/// The URI an importer imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImporterUri {
    /// A fixed URI.
    Constant(String),
    /// The value of one of the component's input parameters.
    InputParameter(String),
}
