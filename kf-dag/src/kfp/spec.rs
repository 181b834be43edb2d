//! The KFP v2 `PipelineSpec` and `PlatformSpec` wire types, as
//! `kfp.compiler.Compiler` writes them (camelCase JSON/YAML of the protobuf).
//!
//! Every type keeps the fields kf does not model in an `extra` map and every
//! optional field is an `Option` skipped when absent, so reading a document
//! and writing it back gives the same document: nothing lost, nothing
//! invented. Maps keyed by name are `BTreeMap`s (the compiler sorts keys too).
//!
//! This module only describes the format. It checks nothing beyond JSON types;
//! [`super::import`] turns these types into the IR and reports what is wrong
//! with the YAML path of the offending field.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Number, Value};

/// Fields a type does not model, written back as they were read.
pub type Extra = BTreeMap<String, Value>;

/// Reads any value, `null` included, as `Some`: for fields such as
/// `defaultValue` and `constant` where an explicit `null` is data.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The first YAML document of a compiled pipeline: `PipelineSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// `pipelineInfo`: the pipeline's name and description.
    pub pipeline_info: PipelineInfo,
    /// `components`: every component by name (`comp-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<BTreeMap<String, ComponentSpec>>,
    /// `deploymentSpec`: how leaf components run (executors by label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_spec: Option<DeploymentSpec>,
    /// `root`: the component whose DAG is the pipeline.
    pub root: ComponentSpec,
    /// `schemaVersion`, `2.1.0` for current compilers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    /// `sdkVersion`, e.g. `kfp-2.14.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    /// `defaultPipelineRoot`: where artifacts go unless a run says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_pipeline_root: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `pipelineInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInfo {
    /// The pipeline's name.
    pub name: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A component: a signature plus an executor label or a DAG.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// `inputDefinitions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_definitions: Option<InterfaceSpec>,
    /// `outputDefinitions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_definitions: Option<InterfaceSpec>,
    /// `dag`, for a DAG component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagSpec>,
    /// `executorLabel`, for a leaf component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_label: Option<String>,
    /// Fields kf does not model (`singlePlatformSpecs`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `inputDefinitions` / `outputDefinitions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceSpec {
    /// Parameters by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, ParameterSpec>>,
    /// Artifacts by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<BTreeMap<String, ArtifactSpec>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One parameter declaration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    /// `STRING`, `NUMBER_INTEGER`, `NUMBER_DOUBLE`, `BOOLEAN`, `LIST`, `STRUCT`, `TASK_FINAL_STATUS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_type: Option<String>,
    /// `defaultValue` (any JSON value, `null` included).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
    /// `isOptional`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_optional: Option<bool>,
    /// `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One artifact declaration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSpec {
    /// `artifactType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<ArtifactTypeSchema>,
    /// `isArtifactList`: a list of artifacts (`dsl.Collected`, `List[Dataset]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_artifact_list: Option<bool>,
    /// `isOptional`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_optional: Option<bool>,
    /// `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `artifactType` / `typeSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactTypeSchema {
    /// `schemaTitle`, e.g. `system.Dataset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_title: Option<String>,
    /// `schemaVersion`, e.g. `0.0.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    /// Fields kf does not model (`instanceSchema`, `schemaUri`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `dag`: tasks and outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagSpec {
    /// Tasks by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<BTreeMap<String, TaskSpec>>,
    /// `outputs`: where the DAG component's outputs come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<DagOutputsSpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `dag.outputs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputsSpec {
    /// Output parameters by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, DagOutputParameterSpec>>,
    /// Output artifacts by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<BTreeMap<String, DagOutputArtifactSpec>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One DAG output parameter: a single producer, or the first of several that ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputParameterSpec {
    /// `valueFromParameter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from_parameter: Option<ParameterSelectorSpec>,
    /// `valueFromOneof` (`dsl.OneOf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from_oneof: Option<ParameterSelectorsSpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `{producerSubtask, outputParameterKey}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSelectorSpec {
    /// The producing task of this DAG.
    pub producer_subtask: String,
    /// Its output parameter.
    pub output_parameter_key: String,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `valueFromOneof`: `{parameterSelectors: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSelectorsSpec {
    /// Candidates, in priority order.
    #[serde(default)]
    pub parameter_selectors: Vec<ParameterSelectorSpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One DAG output artifact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputArtifactSpec {
    /// `artifactSelectors`: candidates, in priority order.
    #[serde(default)]
    pub artifact_selectors: Vec<ArtifactSelectorSpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `{producerSubtask, outputArtifactKey}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSelectorSpec {
    /// The producing task of this DAG.
    pub producer_subtask: String,
    /// Its output artifact.
    pub output_artifact_key: String,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One task of a DAG (`PipelineTaskSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// `taskInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_info: Option<TaskInfo>,
    /// `componentRef`.
    pub component_ref: ComponentRefSpec,
    /// `inputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<TaskInputsSpec>,
    /// `dependentTasks`: every sibling this task waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependent_tasks: Option<Vec<String>>,
    /// `cachingOptions` (`{}` means caching off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching_options: Option<CachingOptionsSpec>,
    /// `triggerPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_policy: Option<TriggerPolicySpec>,
    /// `parameterIterator` (`dsl.ParallelFor` over parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_iterator: Option<ParameterIteratorSpec>,
    /// `artifactIterator` (`dsl.ParallelFor` over an artifact list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_iterator: Option<ArtifactIteratorSpec>,
    /// `iteratorPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterator_policy: Option<IteratorPolicySpec>,
    /// `retryPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicySpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `taskInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `componentRef`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRefSpec {
    /// The component's key in `components`.
    pub name: String,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `inputs` of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInputsSpec {
    /// Parameter inputs by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, TaskInputParameterSpec>>,
    /// Artifact inputs by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<BTreeMap<String, TaskInputArtifactSpec>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where one parameter input comes from: exactly one source, optionally
/// with a `parameterExpressionSelector`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInputParameterSpec {
    /// `runtimeValue`: a constant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_value: Option<RuntimeValueSpec>,
    /// `componentInputParameter`: an input of the enclosing component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_input_parameter: Option<String>,
    /// `taskOutputParameter`: an output of a sibling task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_output_parameter: Option<TaskOutputParameterSpec>,
    /// `taskFinalStatus`: the final status of a sibling task (exit handlers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_final_status: Option<TaskFinalStatusSpec>,
    /// `parameterExpressionSelector`: a CEL field selection on the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_expression_selector: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `runtimeValue`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeValueSpec {
    /// `constant` (any JSON value, `null` included).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub constant: Option<Value>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `taskOutputParameter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputParameterSpec {
    /// The producing sibling task.
    pub producer_task: String,
    /// Its output parameter.
    pub output_parameter_key: String,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `taskFinalStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFinalStatusSpec {
    /// The sibling task whose final status is read.
    pub producer_task: String,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where one artifact input comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInputArtifactSpec {
    /// `taskOutputArtifact`: an output of a sibling task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_output_artifact: Option<TaskOutputArtifactSpec>,
    /// `componentInputArtifact`: an input of the enclosing component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_input_artifact: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `taskOutputArtifact`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputArtifactSpec {
    /// The producing sibling task.
    pub producer_task: String,
    /// Its output artifact.
    pub output_artifact_key: String,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `cachingOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachingOptionsSpec {
    /// `enableCache`; absent means off (protobuf default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_cache: Option<bool>,
    /// `cacheKey`: a user-chosen key replacing the computed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `triggerPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerPolicySpec {
    /// `condition`: a CEL expression over the task's inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// `strategy`: `ALL_UPSTREAM_TASKS_SUCCEEDED` or `ALL_UPSTREAM_TASKS_COMPLETED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `parameterIterator`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterIteratorSpec {
    /// `items`: a literal list or an input parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ParameterItemsSpec>,
    /// `itemInput`: the loop component's input receiving each item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_input: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `parameterIterator.items`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterItemsSpec {
    /// `raw`: the list as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// `inputParameter`: a LIST input of the loop task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_parameter: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `artifactIterator`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactIteratorSpec {
    /// `items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ArtifactItemsSpec>,
    /// `itemInput`: the loop component's input receiving each artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_input: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `artifactIterator.items`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactItemsSpec {
    /// `inputArtifact`: an artifact-list input of the loop task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_artifact: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `iteratorPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorPolicySpec {
    /// `parallelismLimit`; 0 or absent means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism_limit: Option<u32>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `retryPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicySpec {
    /// `maxRetryCount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_count: Option<u32>,
    /// `backoffDuration`, a protobuf Duration such as `3s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_duration: Option<String>,
    /// `backoffFactor`. A `Number` so `2` and `2.0` are written back as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_factor: Option<Number>,
    /// `backoffMaxDuration`, e.g. `3600s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max_duration: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `deploymentSpec` (a `google.protobuf.Struct` in the protobuf, hence the
/// importer's own check of executor kinds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Executors by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executors: Option<BTreeMap<String, ExecutorSpec>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One executor: exactly one of `container`, `importer`, `resolver`, `customJob`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorSpec {
    /// A container command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
    /// An importer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importer: Option<ImporterSpec>,
    /// A resolver (kept verbatim; kf does not run resolvers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<Value>,
    /// A Vertex AI custom job (kept verbatim; kf does not run custom jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_job: Option<Value>,
    /// Anything else: an unknown executor kind, which validation rejects.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `container`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// The image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The entrypoint; items may be placeholders or JSON structured placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVarSpec>>,
    /// Resource requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
    /// Fields kf does not model (`lifecycle`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `env` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSpec {
    /// Variable name.
    pub name: String,
    /// Value; may hold placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `resources`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    /// `resourceCpuLimit`, e.g. `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_cpu_limit: Option<String>,
    /// `resourceCpuRequest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_cpu_request: Option<String>,
    /// `resourceMemoryLimit`, e.g. `2G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_memory_limit: Option<String>,
    /// `resourceMemoryRequest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_memory_request: Option<String>,
    /// `accelerator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<AcceleratorSpec>,
    /// Fields kf does not model (the deprecated numeric `cpuLimit`, `memoryLimit`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `resources.accelerator`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorSpec {
    /// `resourceType`, e.g. `nvidia.com/gpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// `resourceCount`, e.g. `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_count: Option<String>,
    /// Fields kf does not model (the deprecated `type`, `count`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `importer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImporterSpec {
    /// `artifactUri`: a constant or an input parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<ImporterUriSpec>,
    /// `typeSchema`: the imported artifact's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_schema: Option<ArtifactTypeSchema>,
    /// `metadata` attached to the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, Value>>,
    /// `reimport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reimport: Option<bool>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `importer.artifactUri`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImporterUriSpec {
    /// `constant`: a fixed URI.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub constant: Option<Value>,
    /// `runtimeParameter`: the component input holding the URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_parameter: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The second YAML document of a compiled pipeline: `PlatformSpec`
/// (`platforms.kubernetes`: volumes, secrets, node selectors …). kf keeps it
/// and writes it back; it does not apply it locally.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformSpec {
    /// Platform name (`kubernetes`) → its configuration.
    #[serde(default)]
    pub platforms: BTreeMap<String, SinglePlatformSpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One platform's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinglePlatformSpec {
    /// `deploymentSpec`: per-executor platform configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_spec: Option<PlatformDeploymentSpec>,
    /// Fields kf does not model (`pipelineConfig`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `platforms.<name>.deploymentSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformDeploymentSpec {
    /// Executor label → platform configuration, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executors: Option<BTreeMap<String, Value>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
