//! The fields each PipelineSpec message has (kfp-pipeline-spec 2.17), and
//! the check that a document uses no others.
//!
//! KFP parses a pipeline strictly into its protobuf: a misspelt field
//! (`dependentTask`, `cachingOption`) is an error there, while kf's lenient
//! reader would keep it in an `extra` map and silently lose its meaning.
//! Validation therefore rejects every field the protobuf does not define,
//! naming its path and the closest known field. Fields the protobuf defines
//! but kf does not model (`singlePlatformSpecs`, `lifecycle`, …) are kept and
//! accepted. `deploymentSpec` is a `google.protobuf.Struct` in the
//! PipelineSpec, but the backend parses it into `PipelineDeploymentConfig`
//! just as strictly, so it is checked the same way; the platform document,
//! constants and metadata are free-form and not checked.
//!
//! Cost: linear in the size of the spec.

use std::collections::BTreeMap;

use serde_json::Value;

use super::spec::*;
use crate::{Error, Result};

/// One protobuf message: its name (for messages) and its JSON field names.
struct Message {
    name: &'static str,
    fields: &'static [&'static str],
}

const PIPELINE_SPEC: Message = Message {
    name: "PipelineSpec",
    fields: &[
        "pipelineInfo",
        "deploymentSpec",
        "sdkVersion",
        "schemaVersion",
        "components",
        "root",
        "defaultPipelineRoot",
    ],
};
const PIPELINE_INFO: Message = Message { name: "PipelineInfo", fields: &["name", "displayName", "description"] };
const COMPONENT_SPEC: Message = Message {
    name: "ComponentSpec",
    fields: &[
        "inputDefinitions",
        "outputDefinitions",
        "dag",
        "executorLabel",
        "singlePlatformSpecs",
        "taskConfigPassthroughs",
    ],
};
const INTERFACE_SPEC: Message = Message { name: "ComponentInputsSpec", fields: &["artifacts", "parameters"] };
const PARAMETER_SPEC: Message = Message {
    name: "ParameterSpec",
    fields: &["type", "parameterType", "defaultValue", "isOptional", "description", "literals"],
};
const ARTIFACT_SPEC: Message = Message {
    name: "ArtifactSpec",
    // Input and output artifact specs together: outputs add properties and metadata.
    fields: &[
        "artifactType",
        "isArtifactList",
        "isOptional",
        "description",
        "properties",
        "customProperties",
        "metadata",
    ],
};
const ARTIFACT_TYPE_SCHEMA: Message =
    Message { name: "ArtifactTypeSchema", fields: &["schemaTitle", "schemaUri", "instanceSchema", "schemaVersion"] };
const DAG_SPEC: Message = Message { name: "DagSpec", fields: &["tasks", "outputs"] };
const DAG_OUTPUTS_SPEC: Message = Message { name: "DagOutputsSpec", fields: &["artifacts", "parameters"] };
const DAG_OUTPUT_PARAMETER_SPEC: Message =
    Message { name: "DagOutputParameterSpec", fields: &["valueFromParameter", "valueFromOneof"] };
const PARAMETER_SELECTOR_SPEC: Message =
    Message { name: "ParameterSelectorSpec", fields: &["producerSubtask", "outputParameterKey"] };
const PARAMETER_SELECTORS_SPEC: Message = Message { name: "ParameterSelectorsSpec", fields: &["parameterSelectors"] };
const DAG_OUTPUT_ARTIFACT_SPEC: Message = Message { name: "DagOutputArtifactSpec", fields: &["artifactSelectors"] };
const ARTIFACT_SELECTOR_SPEC: Message =
    Message { name: "ArtifactSelectorSpec", fields: &["producerSubtask", "outputArtifactKey"] };
const TASK_SPEC: Message = Message {
    name: "PipelineTaskSpec",
    fields: &[
        "taskInfo",
        "inputs",
        "dependentTasks",
        "cachingOptions",
        "componentRef",
        "triggerPolicy",
        "artifactIterator",
        "parameterIterator",
        "retryPolicy",
        "iteratorPolicy",
    ],
};
const TASK_INFO: Message = Message { name: "PipelineTaskInfo", fields: &["name"] };
const COMPONENT_REF: Message = Message { name: "ComponentRef", fields: &["name"] };
const TASK_INPUTS_SPEC: Message = Message { name: "TaskInputsSpec", fields: &["parameters", "artifacts"] };
const INPUT_PARAMETER_SPEC: Message = Message {
    name: "InputParameterSpec",
    fields: &[
        "taskOutputParameter",
        "runtimeValue",
        "componentInputParameter",
        "taskFinalStatus",
        "parameterExpressionSelector",
    ],
};
const VALUE_OR_RUNTIME_PARAMETER: Message =
    Message { name: "ValueOrRuntimeParameter", fields: &["constantValue", "runtimeParameter", "constant"] };
const TASK_OUTPUT_PARAMETER_SPEC: Message =
    Message { name: "TaskOutputParameterSpec", fields: &["producerTask", "outputParameterKey"] };
const TASK_FINAL_STATUS: Message = Message { name: "TaskFinalStatus", fields: &["producerTask"] };
const INPUT_ARTIFACT_SPEC: Message =
    Message { name: "InputArtifactSpec", fields: &["taskOutputArtifact", "componentInputArtifact"] };
const TASK_OUTPUT_ARTIFACT_SPEC: Message =
    Message { name: "TaskOutputArtifactSpec", fields: &["producerTask", "outputArtifactKey"] };
const CACHING_OPTIONS: Message = Message { name: "CachingOptions", fields: &["enableCache", "cacheKey"] };
const TRIGGER_POLICY: Message = Message { name: "TriggerPolicy", fields: &["condition", "strategy"] };
const PARAMETER_ITERATOR_SPEC: Message = Message { name: "ParameterIteratorSpec", fields: &["items", "itemInput"] };
const PARAMETER_ITEMS_SPEC: Message =
    Message { name: "ParameterIteratorSpec.ItemsSpec", fields: &["raw", "inputParameter"] };
const ARTIFACT_ITERATOR_SPEC: Message = Message { name: "ArtifactIteratorSpec", fields: &["items", "itemInput"] };
const ARTIFACT_ITEMS_SPEC: Message = Message { name: "ArtifactIteratorSpec.ItemsSpec", fields: &["inputArtifact"] };
const ITERATOR_POLICY: Message = Message { name: "IteratorPolicy", fields: &["parallelismLimit"] };
const RETRY_POLICY: Message = Message {
    name: "RetryPolicy",
    fields: &["maxRetryCount", "backoffDuration", "backoffFactor", "backoffMaxDuration"],
};
const DEPLOYMENT_CONFIG: Message = Message { name: "PipelineDeploymentConfig", fields: &["executors"] };
const CONTAINER_SPEC: Message =
    Message { name: "PipelineContainerSpec", fields: &["image", "command", "args", "lifecycle", "resources", "env"] };
const ENV_VAR: Message = Message { name: "EnvVar", fields: &["name", "value"] };
const RESOURCE_SPEC: Message = Message {
    name: "ResourceSpec",
    fields: &[
        "cpuLimit",
        "memoryLimit",
        "cpuRequest",
        "memoryRequest",
        "resourceCpuLimit",
        "resourceMemoryLimit",
        "resourceCpuRequest",
        "resourceMemoryRequest",
        "accelerator",
    ],
};
const ACCELERATOR_CONFIG: Message =
    Message { name: "AcceleratorConfig", fields: &["type", "count", "resourceType", "resourceCount"] };
const IMPORTER_SPEC: Message = Message {
    name: "ImporterSpec",
    fields: &[
        "artifactUri",
        "typeSchema",
        "properties",
        "customProperties",
        "reimport",
        "metadata",
        "downloadToWorkspace",
    ],
};

/// Rejects the first field of `extra` that `message` does not define.
fn check(extra: &BTreeMap<String, Value>, message: &Message, path: &str) -> Result<()> {
    let Some(unknown) = extra.keys().find(|k| !message.fields.contains(&k.as_str())) else { return Ok(()) };
    let at = if path.is_empty() { unknown.clone() } else { format!("{path}.{unknown}") };
    let hint = closest(unknown, message.fields).map(|f| format!("; did you mean {f:?}?")).unwrap_or_default();
    Err(Error::invalid(
        at,
        format!("unknown field {unknown:?}: {} has no such field{hint} (KFP rejects unknown fields)", message.name),
    ))
}

/// The known field closest to `name` by edit distance, if it is close (≤ 2 edits).
fn closest(name: &str, fields: &[&'static str]) -> Option<&'static str> {
    fields.iter().map(|f| (edit_distance(name, f), *f)).filter(|(d, _)| *d <= 2).min().map(|(_, f)| f)
}

/// Levenshtein distance, O(|a|·|b|) on short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// Checks every message of `spec` for fields the protobuf does not define.
pub(crate) fn check_pipeline(spec: &PipelineSpec) -> Result<()> {
    check(&spec.extra, &PIPELINE_SPEC, "")?;
    check(&spec.pipeline_info.extra, &PIPELINE_INFO, "pipelineInfo")?;
    if let Some(d) = &spec.deployment_spec {
        check(&d.extra, &DEPLOYMENT_CONFIG, "deploymentSpec")?;
        for (label, e) in d.executors.iter().flatten() {
            executor(e, &format!("deploymentSpec.executors.{label}"))?;
        }
    }
    for (name, c) in spec.components.iter().flatten() {
        component(c, &format!("components.{name}"))?;
    }
    component(&spec.root, "root")
}

fn executor(e: &ExecutorSpec, path: &str) -> Result<()> {
    // Unknown executor kinds are the importer's error (with the list of kinds).
    if let Some(c) = &e.container {
        let path = format!("{path}.container");
        check(&c.extra, &CONTAINER_SPEC, &path)?;
        for (i, var) in c.env.iter().flatten().enumerate() {
            check(&var.extra, &ENV_VAR, &format!("{path}.env[{i}]"))?;
        }
        if let Some(r) = &c.resources {
            check(&r.extra, &RESOURCE_SPEC, &format!("{path}.resources"))?;
            if let Some(a) = &r.accelerator {
                check(&a.extra, &ACCELERATOR_CONFIG, &format!("{path}.resources.accelerator"))?;
            }
        }
    }
    if let Some(i) = &e.importer {
        let path = format!("{path}.importer");
        check(&i.extra, &IMPORTER_SPEC, &path)?;
        if let Some(u) = &i.artifact_uri {
            check(&u.extra, &VALUE_OR_RUNTIME_PARAMETER, &format!("{path}.artifactUri"))?;
        }
        if let Some(t) = &i.type_schema {
            check(&t.extra, &ARTIFACT_TYPE_SCHEMA, &format!("{path}.typeSchema"))?;
        }
    }
    Ok(())
}

fn component(c: &ComponentSpec, path: &str) -> Result<()> {
    check(&c.extra, &COMPONENT_SPEC, path)?;
    for (key, interface) in [("inputDefinitions", &c.input_definitions), ("outputDefinitions", &c.output_definitions)] {
        let Some(i) = interface else { continue };
        let ipath = format!("{path}.{key}");
        check(&i.extra, &INTERFACE_SPEC, &ipath)?;
        for (name, p) in i.parameters.iter().flatten() {
            check(&p.extra, &PARAMETER_SPEC, &format!("{ipath}.parameters.{name}"))?;
        }
        for (name, a) in i.artifacts.iter().flatten() {
            let apath = format!("{ipath}.artifacts.{name}");
            check(&a.extra, &ARTIFACT_SPEC, &apath)?;
            if let Some(t) = &a.artifact_type {
                check(&t.extra, &ARTIFACT_TYPE_SCHEMA, &format!("{apath}.artifactType"))?;
            }
        }
    }
    if let Some(d) = &c.dag {
        dag(d, &format!("{path}.dag"))?;
    }
    Ok(())
}

fn dag(d: &DagSpec, path: &str) -> Result<()> {
    check(&d.extra, &DAG_SPEC, path)?;
    if let Some(o) = &d.outputs {
        let opath = format!("{path}.outputs");
        check(&o.extra, &DAG_OUTPUTS_SPEC, &opath)?;
        for (name, p) in o.parameters.iter().flatten() {
            let ppath = format!("{opath}.parameters.{name}");
            check(&p.extra, &DAG_OUTPUT_PARAMETER_SPEC, &ppath)?;
            if let Some(s) = &p.value_from_parameter {
                check(&s.extra, &PARAMETER_SELECTOR_SPEC, &format!("{ppath}.valueFromParameter"))?;
            }
            if let Some(s) = &p.value_from_oneof {
                let spath = format!("{ppath}.valueFromOneof");
                check(&s.extra, &PARAMETER_SELECTORS_SPEC, &spath)?;
                for (i, sel) in s.parameter_selectors.iter().enumerate() {
                    check(&sel.extra, &PARAMETER_SELECTOR_SPEC, &format!("{spath}.parameterSelectors[{i}]"))?;
                }
            }
        }
        for (name, a) in o.artifacts.iter().flatten() {
            let apath = format!("{opath}.artifacts.{name}");
            check(&a.extra, &DAG_OUTPUT_ARTIFACT_SPEC, &apath)?;
            for (i, sel) in a.artifact_selectors.iter().enumerate() {
                check(&sel.extra, &ARTIFACT_SELECTOR_SPEC, &format!("{apath}.artifactSelectors[{i}]"))?;
            }
        }
    }
    for (name, t) in d.tasks.iter().flatten() {
        task(t, &format!("{path}.tasks.{name}"))?;
    }
    Ok(())
}

fn task(t: &TaskSpec, path: &str) -> Result<()> {
    check(&t.extra, &TASK_SPEC, path)?;
    let sub = |key: &str| format!("{path}.{key}");
    if let Some(i) = &t.task_info {
        check(&i.extra, &TASK_INFO, &sub("taskInfo"))?;
    }
    check(&t.component_ref.extra, &COMPONENT_REF, &sub("componentRef"))?;
    if let Some(c) = &t.caching_options {
        check(&c.extra, &CACHING_OPTIONS, &sub("cachingOptions"))?;
    }
    if let Some(p) = &t.trigger_policy {
        check(&p.extra, &TRIGGER_POLICY, &sub("triggerPolicy"))?;
    }
    if let Some(it) = &t.parameter_iterator {
        check(&it.extra, &PARAMETER_ITERATOR_SPEC, &sub("parameterIterator"))?;
        if let Some(items) = &it.items {
            check(&items.extra, &PARAMETER_ITEMS_SPEC, &sub("parameterIterator.items"))?;
        }
    }
    if let Some(it) = &t.artifact_iterator {
        check(&it.extra, &ARTIFACT_ITERATOR_SPEC, &sub("artifactIterator"))?;
        if let Some(items) = &it.items {
            check(&items.extra, &ARTIFACT_ITEMS_SPEC, &sub("artifactIterator.items"))?;
        }
    }
    if let Some(p) = &t.iterator_policy {
        check(&p.extra, &ITERATOR_POLICY, &sub("iteratorPolicy"))?;
    }
    if let Some(r) = &t.retry_policy {
        check(&r.extra, &RETRY_POLICY, &sub("retryPolicy"))?;
    }
    let Some(inputs) = &t.inputs else { return Ok(()) };
    let ipath = sub("inputs");
    check(&inputs.extra, &TASK_INPUTS_SPEC, &ipath)?;
    for (name, p) in inputs.parameters.iter().flatten() {
        let ppath = format!("{ipath}.parameters.{name}");
        check(&p.extra, &INPUT_PARAMETER_SPEC, &ppath)?;
        if let Some(v) = &p.runtime_value {
            check(&v.extra, &VALUE_OR_RUNTIME_PARAMETER, &format!("{ppath}.runtimeValue"))?;
        }
        if let Some(o) = &p.task_output_parameter {
            check(&o.extra, &TASK_OUTPUT_PARAMETER_SPEC, &format!("{ppath}.taskOutputParameter"))?;
        }
        if let Some(f) = &p.task_final_status {
            check(&f.extra, &TASK_FINAL_STATUS, &format!("{ppath}.taskFinalStatus"))?;
        }
    }
    for (name, a) in inputs.artifacts.iter().flatten() {
        let apath = format!("{ipath}.artifacts.{name}");
        check(&a.extra, &INPUT_ARTIFACT_SPEC, &apath)?;
        if let Some(o) = &a.task_output_artifact {
            check(&o.extra, &TASK_OUTPUT_ARTIFACT_SPEC, &format!("{apath}.taskOutputArtifact"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn close_misspellings_are_suggested() {
        assert_eq!(closest("dependentTask", TASK_SPEC.fields), Some("dependentTasks"));
        assert_eq!(closest("cachingOption", TASK_SPEC.fields), Some("cachingOptions"));
        assert_eq!(closest("somethingElse", TASK_SPEC.fields), None);
    }

    proptest! {
        #[test]
        fn edit_distance_is_a_metric(a in "[a-c]{0,6}", b in "[a-c]{0,6}", c in "[a-c]{0,6}") {
            prop_assert_eq!(edit_distance(&a, &a), 0);
            prop_assert_eq!(edit_distance(&a, &b), edit_distance(&b, &a));
            prop_assert!(edit_distance(&a, &c) <= edit_distance(&a, &b) + edit_distance(&b, &c));
            prop_assert!(edit_distance(&a, &b) <= a.len().max(b.len()));
            prop_assert!(edit_distance(&a, &b) >= a.len().abs_diff(b.len()));
        }
    }
}
