//! The whole pipeline: its components, executors and root DAG.

use std::collections::BTreeMap;

use super::component::{Component, Executor, Implementation};
use super::dag::Dag;
use super::types::Interface;

/// A pipeline: the unit that is validated, planned and run.
///
/// Mirrors KFP's PipelineSpec: `components` (KFP `components`), `executors`
/// (KFP `deploymentSpec.executors`) and `root` (a component whose
/// implementation is the top-level DAG and whose inputs are the pipeline's
/// parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The pipeline's name (KFP `pipelineInfo.name`).
    pub name: String,
    /// Human-readable description.
    pub description: Option<String>,
    /// Components by name.
    pub components: BTreeMap<String, Component>,
    /// Executors by label.
    pub executors: BTreeMap<String, Executor>,
    /// The root component: its inputs are the pipeline parameters, its
    /// outputs the pipeline outputs, its implementation the top-level DAG.
    pub root: Component,
}

impl Pipeline {
    /// An empty pipeline named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Pipeline {
            name: name.into(),
            description: None,
            components: BTreeMap::new(),
            executors: BTreeMap::new(),
            root: Component::dag(Dag::default()),
        }
    }

    /// The top-level DAG; `None` only if the root was built as a leaf, which
    /// validation rejects.
    pub fn root_dag(&self) -> Option<&Dag> {
        self.root.as_dag()
    }

    /// The pipeline parameters (the root component's inputs).
    pub fn parameters(&self) -> &Interface {
        &self.root.inputs
    }

    /// The executor a leaf component runs on, if the component and its label resolve.
    pub fn executor_of(&self, component: &str) -> Option<&Executor> {
        match &self.components.get(component)?.implementation {
            Implementation::Executor(label) => self.executors.get(label),
            Implementation::Dag(_) => None,
        }
    }
}
