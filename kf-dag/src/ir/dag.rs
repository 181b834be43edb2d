//! DAGs of tasks and the wiring between them: where each task input comes
//! from, explicit ordering, loops, conditions, retries and caching options.
//!
//! Scoping follows KFP: a task only sees its sibling tasks and the inputs of
//! the component whose DAG it belongs to. Data enters a nested DAG (a loop
//! body, a condition branch, a pipeline used as a component) through that
//! component's inputs and leaves through its DAG outputs. This module declares
//! the wiring; [`crate::plan`] checks it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::condition::{Condition, ItemSelector};

/// A DAG of named tasks and the outputs it exposes to its parent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dag {
    /// Tasks by name; names are unique within the DAG.
    pub tasks: BTreeMap<String, Task>,
    /// Outputs of the component this DAG implements.
    pub outputs: DagOutputs,
}

/// Where a DAG's outputs come from (KFP `dag.outputs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DagOutputs {
    /// Output parameters by name.
    pub parameters: BTreeMap<String, OutputSelection>,
    /// Output artifacts by name.
    pub artifacts: BTreeMap<String, OutputSelection>,
}

/// The source of one DAG output: one task output, or the first of several
/// that ran (KFP's `dsl.OneOf` over condition branches). When the selected
/// task is a loop, the output is collected: a list over the iterations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSelection {
    /// Candidate sources, in priority order; never empty in a valid DAG.
    pub selectors: Vec<OutputRef>,
}

impl OutputSelection {
    /// A single source.
    pub fn one(task: impl Into<String>, output: impl Into<String>) -> Self {
        OutputSelection { selectors: vec![OutputRef::new(task, output)] }
    }
}

/// A named output of a sibling task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputRef {
    /// The producing task.
    pub task: String,
    /// The output's name in the producer's component.
    pub output: String,
}

impl OutputRef {
    /// `task`'s output `output`.
    pub fn new(task: impl Into<String>, output: impl Into<String>) -> Self {
        OutputRef { task: task.into(), output: output.into() }
    }
}

/// One invocation of a component inside a DAG.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Name of the component it runs (a key of [`crate::ir::Pipeline::components`]).
    pub component: String,
    /// Human-readable name (KFP `taskInfo.name`).
    pub display_name: Option<String>,
    /// Parameter inputs by name.
    pub parameters: BTreeMap<String, ParameterSource>,
    /// Artifact inputs by name.
    pub artifacts: BTreeMap<String, ArtifactSource>,
    /// Sibling tasks that must finish first even without a data dependency
    /// (`.after()`; KFP `dependentTasks` minus the data dependencies).
    pub after: BTreeSet<String>,
    /// Runs the component once per item (`dsl.ParallelFor`).
    pub parallel_for: Option<ParallelFor>,
    /// When the task runs: a condition and which upstream states count.
    pub trigger: TriggerPolicy,
    /// Retries on failure.
    pub retry: Option<RetryPolicy>,
    /// Step caching.
    pub caching: CachingOptions,
    /// Each attempt is stopped (and fails) after this long; `None` uses the
    /// executor's default. Not part of KFP's PipelineSpec (its backend leaves
    /// timeouts to Argo); kf's own pipeline format sets it.
    pub timeout: Option<Duration>,
}

impl Task {
    /// A task running `component`, no inputs, default policies.
    pub fn new(component: impl Into<String>) -> Self {
        Task {
            component: component.into(),
            display_name: None,
            parameters: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            after: BTreeSet::new(),
            parallel_for: None,
            trigger: TriggerPolicy::default(),
            retry: None,
            caching: CachingOptions::default(),
            timeout: None,
        }
    }

    /// Every sibling task this one depends on: explicit `after`, producers of
    /// its inputs, and tasks whose final status it reads. Sorted, no duplicates.
    pub fn upstream(&self) -> BTreeSet<&str> {
        let mut up: BTreeSet<&str> = self.after.iter().map(String::as_str).collect();
        for source in self.parameters.values() {
            match source {
                ParameterSource::TaskOutput(r) => {
                    up.insert(&r.task);
                }
                ParameterSource::TaskFinalStatus(task) => {
                    up.insert(task);
                }
                ParameterSource::Constant(_) | ParameterSource::ComponentInput { .. } => {}
            }
        }
        for source in self.artifacts.values() {
            if let ArtifactSource::TaskOutput(r) = source {
                up.insert(&r.task);
            }
        }
        up
    }
}

/// Where a parameter input's value comes from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParameterSource {
    /// A constant (KFP `runtimeValue.constant`). A string constant may
    /// interpolate other inputs of the same task with
    /// `{{$.inputs.parameters['x']}}` (KFP's pipeline channels in f-strings).
    Constant(Value),
    /// An input of the enclosing component: a pipeline parameter at the root,
    /// a loop item inside a loop body (KFP `componentInputParameter`).
    ComponentInput {
        /// The enclosing component's input name.
        name: String,
        /// Picks a field out of the value (a loop item that is an object).
        selector: Option<ItemSelector>,
    },
    /// An output parameter of a sibling task (KFP `taskOutputParameter`).
    TaskOutput(OutputRef),
    /// The final status of a sibling task, for exit handlers (KFP `taskFinalStatus`).
    TaskFinalStatus(String),
}

/// Where an artifact input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactSource {
    /// An artifact input of the enclosing component (KFP `componentInputArtifact`).
    ComponentInput(String),
    /// An output artifact of a sibling task (KFP `taskOutputArtifact`).
    TaskOutput(OutputRef),
}

/// A loop: the task's component (a DAG) runs once per item.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelFor {
    /// What is iterated.
    pub items: LoopItems,
    /// The input of the loop's component that receives each item (KFP `itemInput`).
    pub item_input: String,
    /// At most this many iterations run at once; `None` means no limit.
    pub parallelism: Option<u32>,
}

/// The list a loop iterates over.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopItems {
    /// A literal list (KFP `items.raw`).
    Raw(Vec<Value>),
    /// A LIST parameter input of the loop task itself (KFP `items.inputParameter`),
    /// typically wired to a pipeline parameter or an upstream output.
    InputParameter(String),
    /// An artifact-list input of the loop task (KFP `artifactIterator`).
    InputArtifact(String),
}

/// When a task runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerPolicy {
    /// Run only if this holds over the task's input parameters; otherwise the
    /// task (and everything inside it) is skipped.
    pub condition: Option<Condition>,
    /// Which upstream outcomes let the task run.
    pub strategy: TriggerStrategy,
}

/// Which upstream outcomes let a task run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TriggerStrategy {
    /// Every upstream task succeeded (the default).
    #[default]
    AllUpstreamSucceeded,
    /// Every upstream task finished, whatever its outcome (exit handlers,
    /// `.ignore_upstream_failure()`).
    AllUpstreamCompleted,
}

/// Retries of a failed task, with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retry_count: u32,
    /// Delay before the first retry.
    pub backoff: Duration,
    /// Each delay is the previous one times this factor (≥ 1).
    pub backoff_factor: f64,
    /// No delay exceeds this.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    /// No retries; KFP's defaults for the backoff (factor 2, at most one hour).
    fn default() -> Self {
        RetryPolicy {
            max_retry_count: 0,
            backoff: Duration::ZERO,
            backoff_factor: 2.0,
            backoff_max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry):
    /// `backoff * factor^(retry-1)`, capped at `backoff_max`. Constant time.
    ///
    /// ```
    /// use kf_dag::ir::RetryPolicy;
    /// use std::time::Duration;
    /// let p = RetryPolicy { max_retry_count: 5, backoff: Duration::from_secs(1), ..RetryPolicy::default() };
    /// assert_eq!(p.delay(1), Duration::from_secs(1));
    /// assert_eq!(p.delay(3), Duration::from_secs(4));
    /// assert_eq!(p.delay(100), Duration::from_secs(3600));
    /// ```
    pub fn delay(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = if self.backoff_factor.is_finite() { self.backoff_factor.max(1.0) } else { 1.0 };
        let secs = self.backoff.as_secs_f64() * factor.powi(exponent);
        let max = self.backoff_max.as_secs_f64();
        if secs.is_finite() && secs < max { Duration::from_secs_f64(secs) } else { self.backoff_max }
    }
}

/// Step caching of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachingOptions {
    /// Whether a cached result may replace running the task.
    pub enabled: bool,
    /// A user-chosen cache key replacing the computed one (KFP `cacheKey`).
    pub key: Option<String>,
}

impl Default for CachingOptions {
    /// Caching on, computed key.
    fn default() -> Self {
        CachingOptions { enabled: true, key: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn retry_delays_grow_geometrically_up_to_the_cap(
            backoff_ms in 0u64..10_000,
            factor in 1.0f64..4.0,
            max_ms in 0u64..100_000,
            retry in 1u32..64,
        ) {
            let p = RetryPolicy {
                max_retry_count: 64,
                backoff: Duration::from_millis(backoff_ms),
                backoff_factor: factor,
                backoff_max: Duration::from_millis(max_ms),
            };
            let (now, next) = (p.delay(retry), p.delay(retry + 1));
            prop_assert!(now <= p.backoff_max);
            prop_assert!(next >= now, "delays never shrink");
            if now < p.backoff_max {
                let expected = backoff_ms as f64 * factor.powi(retry as i32 - 1) / 1000.0;
                prop_assert!((now.as_secs_f64() - expected).abs() <= 1e-6 * expected.max(1.0));
            }
            prop_assert_eq!(p.delay(1), p.backoff.min(p.backoff_max));
        }
    }
}
