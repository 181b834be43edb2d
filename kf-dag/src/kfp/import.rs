//! KFP wire types → the IR: one function per IR type, field for field.
//!
//! Every error names the YAML path of the offending field
//! (`deploymentSpec.executors.exec-x`, `root.dag.tasks.train.inputs.parameters.lr`).
//! This module checks what the wire format alone can get wrong (unknown
//! executor kinds, unknown parameter types, an input with no source,
//! malformed placeholders, durations or loop lists); cross-references and
//! types are left to [`crate::Plan::new`], which reports them at the same
//! paths because the IR mirrors the PipelineSpec.
//!
//! Cost: linear in the size of the spec.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::spec;
use crate::ir::{
    Arg, ArtifactSource, ArtifactSpec, ArtifactType, CachingOptions, Component, Condition, ContainerSpec, Dag,
    DagOutputs, Executor, Implementation, ImporterSpec, ImporterUri, Interface, ItemSelector, LoopItems, OutputRef,
    OutputSelection, ParallelFor, ParameterSource, ParameterSpec, ParameterType, Pipeline, Resources, RetryPolicy,
    Task, Template, TriggerStrategy,
};
use crate::{Error, Result};

/// The executor kinds a PipelineSpec may use.
pub const EXECUTOR_KINDS: [&str; 4] = ["container", "importer", "resolver", "customJob"];

/// `ALL_UPSTREAM_TASKS_SUCCEEDED`, the default trigger strategy.
pub const ALL_UPSTREAM_TASKS_SUCCEEDED: &str = "ALL_UPSTREAM_TASKS_SUCCEEDED";
/// `ALL_UPSTREAM_TASKS_COMPLETED`: exit handlers and `.ignore_upstream_failure()`.
pub const ALL_UPSTREAM_TASKS_COMPLETED: &str = "ALL_UPSTREAM_TASKS_COMPLETED";
const TRIGGER_STRATEGY_UNSPECIFIED: &str = "TRIGGER_STRATEGY_UNSPECIFIED";

/// Converts a PipelineSpec into the IR.
pub fn pipeline(spec: &spec::PipelineSpec) -> Result<Pipeline> {
    let mut p = Pipeline::new(spec.pipeline_info.name.clone());
    p.description = spec.pipeline_info.description.clone();
    if let Some(executors) = spec.deployment_spec.as_ref().and_then(|d| d.executors.as_ref()) {
        for (label, e) in executors {
            p.executors.insert(label.clone(), executor(e, &format!("deploymentSpec.executors.{label}"))?);
        }
    }
    for (name, c) in spec.components.iter().flatten() {
        p.components.insert(name.clone(), component(c, &format!("components.{name}"))?);
    }
    p.root = component(&spec.root, "root")?;
    Ok(p)
}

fn component(c: &spec::ComponentSpec, path: &str) -> Result<Component> {
    let implementation = match (&c.executor_label, &c.dag) {
        (Some(label), None) => Implementation::Executor(label.clone()),
        (None, Some(d)) => Implementation::Dag(dag(d, &format!("{path}.dag"))?),
        (Some(_), Some(_)) => {
            return Err(Error::invalid(path, "expected either executorLabel or dag, found both"));
        }
        (None, None) => return Err(Error::invalid(path, "expected executorLabel or dag, found neither")),
    };
    Ok(Component {
        inputs: interface(c.input_definitions.as_ref(), &format!("{path}.inputDefinitions"))?,
        outputs: interface(c.output_definitions.as_ref(), &format!("{path}.outputDefinitions"))?,
        implementation,
    })
}

fn interface(spec: Option<&spec::InterfaceSpec>, path: &str) -> Result<Interface> {
    let mut i = Interface::default();
    let Some(spec) = spec else { return Ok(i) };
    for (name, p) in spec.parameters.iter().flatten() {
        let ppath = format!("{path}.parameters.{name}");
        i.parameters.insert(
            name.clone(),
            ParameterSpec {
                ty: match (&p.parameter_type, p.extra.get("type").and_then(Value::as_str)) {
                    (None, Some(old)) => primitive_type(old, &format!("{ppath}.type"))?,
                    (kind, _) => parameter_type(kind.as_deref(), &format!("{ppath}.parameterType"))?,
                },
                default: p.default_value.clone(),
                optional: p.is_optional.unwrap_or(false),
                description: p.description.clone(),
            },
        );
    }
    for (name, a) in spec.artifacts.iter().flatten() {
        let apath = format!("{path}.artifacts.{name}");
        i.artifacts.insert(
            name.clone(),
            ArtifactSpec {
                ty: artifact_type(a.artifact_type.as_ref(), &format!("{apath}.artifactType"))?,
                is_list: a.is_artifact_list.unwrap_or(false),
                optional: a.is_optional.unwrap_or(false),
                description: a.description.clone(),
            },
        );
    }
    Ok(i)
}

fn parameter_type(kind: Option<&str>, path: &str) -> Result<ParameterType> {
    let known = || ParameterType::ALL.map(ParameterType::as_kfp_str).join(", ");
    let kind = kind.ok_or_else(|| Error::invalid(path, format!("expected one of {}, found nothing", known())))?;
    ParameterType::from_kfp_str(kind)
        .ok_or_else(|| Error::invalid(path, format!("expected one of {}, found {kind:?}", known())))
}

/// The deprecated `type` of pre-2.0 specs (`PrimitiveType`).
fn primitive_type(kind: &str, path: &str) -> Result<ParameterType> {
    match kind {
        "INT" => Ok(ParameterType::NumberInteger),
        "DOUBLE" => Ok(ParameterType::NumberDouble),
        "STRING" => Ok(ParameterType::String),
        other => Err(Error::invalid(path, format!("expected INT, DOUBLE or STRING, found {other:?}"))),
    }
}

/// The value of a deprecated `constantValue` (`{intValue | doubleValue | stringValue}`).
fn constant_value(extra: &spec::Extra, path: &str) -> Result<Option<Value>> {
    let Some(v) = extra.get("constantValue") else { return Ok(None) };
    let path = format!("{path}.constantValue");
    let field = |key: &str| v.get(key);
    match (field("intValue"), field("doubleValue"), field("stringValue")) {
        // protobuf JSON writes an int64 as a string.
        (Some(i), None, None) => i
            .as_i64()
            .or_else(|| i.as_str().and_then(|s| s.parse().ok()))
            .map(|i| Some(Value::from(i)))
            .ok_or_else(|| Error::invalid(format!("{path}.intValue"), format!("expected an integer, found {i}"))),
        (None, Some(d), None) if d.is_number() => Ok(Some(d.clone())),
        (None, None, Some(Value::String(s))) => Ok(Some(Value::String(s.clone()))),
        _ => Err(Error::invalid(
            path,
            "expected exactly one of intValue, doubleValue (a number), stringValue (a string)",
        )),
    }
}

fn artifact_type(schema: Option<&spec::ArtifactTypeSchema>, path: &str) -> Result<ArtifactType> {
    let title = schema.and_then(|s| s.schema_title.as_ref()).ok_or_else(|| {
        Error::invalid(format!("{path}.schemaTitle"), "expected an artifact schema title such as system.Dataset")
    })?;
    Ok(ArtifactType { schema_title: title.clone(), schema_version: schema.and_then(|s| s.schema_version.clone()) })
}

/// The executor kind an executor spec uses: exactly one of [`EXECUTOR_KINDS`].
pub(crate) fn executor_kind(e: &spec::ExecutorSpec, path: &str) -> Result<&'static str> {
    let mut kinds: Vec<&'static str> = Vec::new();
    if e.container.is_some() {
        kinds.push("container");
    }
    if e.importer.is_some() {
        kinds.push("importer");
    }
    if e.resolver.is_some() {
        kinds.push("resolver");
    }
    if e.custom_job.is_some() {
        kinds.push("customJob");
    }
    let expected = EXECUTOR_KINDS.join(", ");
    if let Some(unknown) = e.extra.keys().next() {
        return Err(Error::invalid(
            path,
            format!("unknown executor kind {unknown:?}: an executor must be exactly one of {expected}"),
        ));
    }
    match kinds.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::invalid(path, format!("expected one of {expected}, found an empty executor"))),
        several => Err(Error::invalid(path, format!("expected exactly one of {expected}, found {several:?}"))),
    }
}

fn executor(e: &spec::ExecutorSpec, path: &str) -> Result<Executor> {
    let kind = executor_kind(e, path)?;
    if let Some(c) = &e.container {
        return container(c, &format!("{path}.container")).map(Executor::Container);
    }
    if let Some(i) = &e.importer {
        return importer(i, &format!("{path}.importer")).map(Executor::Importer);
    }
    Err(Error::invalid(
        format!("{path}.{kind}"),
        format!("kf runs container and importer executors; a {kind} executor needs the KFP backend"),
    ))
}

fn template(text: &str, path: &str) -> Result<Template> {
    Template::parse(text).map_err(|m| Error::invalid(path, m))
}

fn container(c: &spec::ContainerSpec, path: &str) -> Result<ContainerSpec> {
    let image = c.image.clone().ok_or_else(|| Error::invalid(format!("{path}.image"), "expected an image"))?;
    let args = |key: &str, items: &Option<Vec<String>>| -> Result<Vec<Arg>> {
        let items = items.iter().flatten().enumerate();
        items.map(|(i, a)| arg(a, &format!("{path}.{key}[{i}]"))).collect()
    };
    let mut env = Vec::new();
    for (i, var) in c.env.iter().flatten().enumerate() {
        let value = template(var.value.as_deref().unwrap_or(""), &format!("{path}.env[{i}].value"))?;
        env.push((var.name.clone(), value));
    }
    let mut resources = Resources::default();
    if let Some(r) = &c.resources {
        let rpath = format!("{path}.resources");
        let field = |v: &Option<String>, key: &str| -> Result<Option<Template>> {
            v.as_deref().map(|t| template(t, &format!("{rpath}.{key}"))).transpose()
        };
        resources = Resources {
            cpu_limit: field(&r.resource_cpu_limit, "resourceCpuLimit")?,
            cpu_request: field(&r.resource_cpu_request, "resourceCpuRequest")?,
            memory_limit: field(&r.resource_memory_limit, "resourceMemoryLimit")?,
            memory_request: field(&r.resource_memory_request, "resourceMemoryRequest")?,
            accelerator_type: field(&r.accelerator.as_ref().and_then(|a| a.resource_type.clone()), "accelerator")?,
            accelerator_count: field(&r.accelerator.as_ref().and_then(|a| a.resource_count.clone()), "accelerator")?,
        };
    }
    Ok(ContainerSpec { image, command: args("command", &c.command)?, args: args("args", &c.args)?, env, resources })
}

/// A command-line argument: a template, or a JSON-encoded structured
/// placeholder (`{"IfPresent": …}`, `{"Concat": […]}`), as the KFP compiler
/// writes them and the KFP launcher reads them.
fn arg(text: &str, path: &str) -> Result<Arg> {
    match structured(text) {
        Some(v) => structured_arg(&v, path, 0),
        None => Ok(Arg::Template(template(text, path)?)),
    }
}

/// The structured placeholder a string encodes, if it is one.
fn structured(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with("{\"IfPresent\"") || trimmed.starts_with("{\"Concat\"")) {
        return None;
    }
    serde_json::from_str::<Value>(text).ok().filter(|v| v.as_object().is_some_and(|o| o.len() == 1))
}

/// Nesting deeper than this is refused rather than recursed into.
const MAX_PLACEHOLDER_DEPTH: usize = 64;

fn structured_arg(v: &Value, path: &str, depth: usize) -> Result<Arg> {
    if depth > MAX_PLACEHOLDER_DEPTH {
        return Err(Error::invalid(
            path,
            format!("structured placeholders nested deeper than {MAX_PLACEHOLDER_DEPTH}"),
        ));
    }
    // Items of Then/Else/Concat are strings (possibly encoding a structured
    // placeholder themselves) or, in hand-written specs, objects.
    let item = |v: &Value| -> Result<Arg> {
        match v {
            Value::String(s) => match structured(s) {
                Some(inner) => structured_arg(&inner, path, depth + 1),
                None => Ok(Arg::Template(template(s, path)?)),
            },
            Value::Object(_) => structured_arg(v, path, depth + 1),
            other => Err(Error::invalid(path, format!("expected a string or a placeholder, found {other}"))),
        }
    };
    // KFP writes Then/Else as a list, or as a single item.
    let list = |v: Option<&Value>| -> Result<Vec<Arg>> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(item).collect(),
            Some(one) => Ok(vec![item(one)?]),
        }
    };
    if let Some(p) = v.get("IfPresent") {
        let input = p.get("InputName").and_then(Value::as_str).ok_or_else(|| {
            Error::invalid(
                path,
                format!(
                    "IfPresent: expected an InputName string, found {}",
                    p.get("InputName").unwrap_or(&Value::Null)
                ),
            )
        })?;
        return Ok(Arg::IfPresent {
            input: input.to_owned(),
            then: list(p.get("Then"))?,
            otherwise: list(p.get("Else"))?,
        });
    }
    if let Some(parts) = v.get("Concat") {
        return Ok(Arg::Concat(list(Some(parts))?));
    }
    Err(Error::invalid(path, format!("expected an IfPresent or Concat placeholder, found {v}")))
}

fn importer(i: &spec::ImporterSpec, path: &str) -> Result<ImporterSpec> {
    let upath = format!("{path}.artifactUri");
    let old = match &i.artifact_uri {
        Some(u) if u.constant.is_none() => constant_value(&u.extra, &upath)?,
        _ => None,
    };
    let uri = match i.artifact_uri.as_ref().map(|u| (u.constant.as_ref().or(old.as_ref()), &u.runtime_parameter)) {
        Some((Some(Value::String(c)), None)) => ImporterUri::Constant(c.clone()),
        Some((Some(other), None)) => {
            return Err(Error::invalid(format!("{upath}.constant"), format!("expected a URI string, found {other}")));
        }
        Some((None, Some(p))) => ImporterUri::InputParameter(p.clone()),
        _ => return Err(Error::invalid(upath, "expected exactly one of constant or runtimeParameter")),
    };
    Ok(ImporterSpec {
        uri,
        artifact_type: artifact_type(i.type_schema.as_ref(), &format!("{path}.typeSchema"))?,
        metadata: i.metadata.clone().unwrap_or_default(),
        reimport: i.reimport.unwrap_or(false),
    })
}

fn dag(d: &spec::DagSpec, path: &str) -> Result<Dag> {
    let mut dag = Dag::default();
    for (name, t) in d.tasks.iter().flatten() {
        dag.tasks.insert(name.clone(), task(t, &format!("{path}.tasks.{name}"))?);
    }
    dag.outputs = dag_outputs(d.outputs.as_ref(), &format!("{path}.outputs"))?;
    Ok(dag)
}

fn dag_outputs(o: Option<&spec::DagOutputsSpec>, path: &str) -> Result<DagOutputs> {
    let mut outputs = DagOutputs::default();
    let Some(o) = o else { return Ok(outputs) };
    for (name, p) in o.parameters.iter().flatten() {
        let ppath = format!("{path}.parameters.{name}");
        let one = |s: &spec::ParameterSelectorSpec| OutputRef::new(&s.producer_subtask, &s.output_parameter_key);
        let selectors = match (&p.value_from_parameter, &p.value_from_oneof) {
            (Some(s), None) => vec![one(s)],
            (None, Some(s)) if !s.parameter_selectors.is_empty() => s.parameter_selectors.iter().map(one).collect(),
            (None, Some(_)) => {
                return Err(Error::invalid(
                    format!("{ppath}.valueFromOneof.parameterSelectors"),
                    "expected at least one selector",
                ));
            }
            _ => return Err(Error::invalid(ppath, "expected exactly one of valueFromParameter or valueFromOneof")),
        };
        outputs.parameters.insert(name.clone(), OutputSelection { selectors });
    }
    for (name, a) in o.artifacts.iter().flatten() {
        if a.artifact_selectors.is_empty() {
            return Err(Error::invalid(
                format!("{path}.artifacts.{name}.artifactSelectors"),
                "expected at least one selector",
            ));
        }
        let selectors =
            a.artifact_selectors.iter().map(|s| OutputRef::new(&s.producer_subtask, &s.output_artifact_key)).collect();
        outputs.artifacts.insert(name.clone(), OutputSelection { selectors });
    }
    Ok(outputs)
}

/// Parses a protobuf JSON Duration (`3s`, `0.5s`).
pub(crate) fn duration(text: &str, path: &str) -> Result<Duration> {
    text.strip_suffix('s')
        .and_then(|n| n.parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| Error::invalid(path, format!("expected a duration in seconds such as \"3s\", found {text:?}")))
}

fn task(t: &spec::TaskSpec, path: &str) -> Result<Task> {
    let mut task = Task::new(&t.component_ref.name);
    task.display_name = t.task_info.as_ref().and_then(|i| i.name.clone());
    if let Some(inputs) = &t.inputs {
        for (name, i) in inputs.parameters.iter().flatten() {
            task.parameters.insert(name.clone(), parameter_source(i, &format!("{path}.inputs.parameters.{name}"))?);
        }
        for (name, i) in inputs.artifacts.iter().flatten() {
            let ipath = format!("{path}.inputs.artifacts.{name}");
            let source = match (&i.task_output_artifact, &i.component_input_artifact) {
                (Some(o), None) => ArtifactSource::TaskOutput(OutputRef::new(&o.producer_task, &o.output_artifact_key)),
                (None, Some(c)) => ArtifactSource::ComponentInput(c.clone()),
                _ => {
                    return Err(Error::invalid(
                        ipath,
                        "expected exactly one of taskOutputArtifact or componentInputArtifact",
                    ));
                }
            };
            task.artifacts.insert(name.clone(), source);
        }
    }
    // KFP lists data dependencies in dependentTasks too; the IR's `after`
    // holds only the ordering-only ones, so export writes the same list back.
    let data: std::collections::BTreeSet<String> = task.upstream().into_iter().map(str::to_owned).collect();
    task.after = t.dependent_tasks.iter().flatten().filter(|d| !data.contains(*d)).cloned().collect();
    let parallelism = t.iterator_policy.as_ref().and_then(|p| p.parallelism_limit).filter(|n| *n > 0);
    match (&t.parameter_iterator, &t.artifact_iterator) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                path,
                "expected at most one of parameterIterator or artifactIterator, found both",
            ));
        }
        (Some(it), None) => {
            let lpath = format!("{path}.parameterIterator");
            let items = match it.items.as_ref().map(|i| (&i.raw, &i.input_parameter)) {
                Some((Some(raw), None)) => {
                    let list: Vec<Value> = serde_json::from_str(raw).map_err(|e| {
                        Error::invalid(
                            format!("{lpath}.items.raw"),
                            format!("expected a JSON list, found {raw:?}: {e}"),
                        )
                    })?;
                    LoopItems::Raw(list)
                }
                Some((None, Some(p))) => LoopItems::InputParameter(p.clone()),
                _ => {
                    return Err(Error::invalid(
                        format!("{lpath}.items"),
                        "expected exactly one of raw or inputParameter",
                    ));
                }
            };
            let item_input = item_input(&it.item_input, &lpath)?;
            task.parallel_for = Some(ParallelFor { items, item_input, parallelism });
        }
        (None, Some(it)) => {
            let lpath = format!("{path}.artifactIterator");
            let items = it.items.as_ref().and_then(|i| i.input_artifact.clone()).ok_or_else(|| {
                Error::invalid(
                    format!("{lpath}.items.inputArtifact"),
                    "expected the artifact-list input to iterate over",
                )
            })?;
            let item_input = item_input(&it.item_input, &lpath)?;
            task.parallel_for = Some(ParallelFor { items: LoopItems::InputArtifact(items), item_input, parallelism });
        }
        (None, None) => {}
    }
    if let Some(trigger) = &t.trigger_policy {
        if let Some(c) = &trigger.condition {
            let condition =
                Condition::parse(c).map_err(|m| Error::invalid(format!("{path}.triggerPolicy.condition"), m))?;
            task.trigger.condition = Some(condition);
        }
        task.trigger.strategy = match trigger.strategy.as_deref() {
            None | Some(ALL_UPSTREAM_TASKS_SUCCEEDED | TRIGGER_STRATEGY_UNSPECIFIED) => {
                TriggerStrategy::AllUpstreamSucceeded
            }
            Some(ALL_UPSTREAM_TASKS_COMPLETED) => TriggerStrategy::AllUpstreamCompleted,
            Some(other) => {
                return Err(Error::invalid(
                    format!("{path}.triggerPolicy.strategy"),
                    format!(
                        "expected {ALL_UPSTREAM_TASKS_SUCCEEDED} or {ALL_UPSTREAM_TASKS_COMPLETED}, found {other:?}"
                    ),
                ));
            }
        };
    }
    if let Some(r) = &t.retry_policy {
        let rpath = format!("{path}.retryPolicy");
        let default = RetryPolicy::default();
        let factor = match &r.backoff_factor {
            Some(n) => n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).ok_or_else(|| {
                Error::invalid(format!("{rpath}.backoffFactor"), format!("expected a non-negative number, found {n}"))
            })?,
            None => default.backoff_factor,
        };
        task.retry = Some(RetryPolicy {
            max_retry_count: r.max_retry_count.unwrap_or(0),
            backoff: r
                .backoff_duration
                .as_deref()
                .map(|d| duration(d, &format!("{rpath}.backoffDuration")))
                .transpose()?
                .unwrap_or(default.backoff),
            backoff_factor: factor,
            backoff_max: r
                .backoff_max_duration
                .as_deref()
                .map(|d| duration(d, &format!("{rpath}.backoffMaxDuration")))
                .transpose()?
                .unwrap_or(default.backoff_max),
        });
    }
    // Protobuf default: no cachingOptions, or `{}`, means caching off.
    task.caching = CachingOptions {
        enabled: t.caching_options.as_ref().and_then(|c| c.enable_cache).unwrap_or(false),
        key: t.caching_options.as_ref().and_then(|c| c.cache_key.clone()).filter(|k| !k.is_empty()),
    };
    Ok(task)
}

fn item_input(item: &Option<String>, path: &str) -> Result<String> {
    item.clone().ok_or_else(|| Error::invalid(format!("{path}.itemInput"), "expected the loop component's item input"))
}

fn parameter_source(i: &spec::TaskInputParameterSpec, path: &str) -> Result<ParameterSource> {
    let given = [
        i.runtime_value.is_some(),
        i.component_input_parameter.is_some(),
        i.task_output_parameter.is_some(),
        i.task_final_status.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(Error::invalid(
            path,
            "expected exactly one of runtimeValue, componentInputParameter, taskOutputParameter, taskFinalStatus",
        ));
    }
    let selector = i
        .parameter_expression_selector
        .as_deref()
        .map(|s| ItemSelector::parse(s).map_err(|m| Error::invalid(format!("{path}.parameterExpressionSelector"), m)))
        .transpose()?;
    if selector.is_some() && i.component_input_parameter.is_none() {
        return Err(Error::invalid(
            format!("{path}.parameterExpressionSelector"),
            "kf applies a parameterExpressionSelector to a componentInputParameter only",
        ));
    }
    if let Some(v) = &i.runtime_value {
        let vpath = format!("{path}.runtimeValue");
        let constant = match &v.constant {
            Some(c) => c.clone(),
            None => constant_value(&v.extra, &vpath)?
                .ok_or_else(|| Error::invalid(format!("{vpath}.constant"), "expected a constant value"))?,
        };
        return Ok(ParameterSource::Constant(constant));
    }
    if let Some(name) = &i.component_input_parameter {
        return Ok(ParameterSource::ComponentInput { name: name.clone(), selector });
    }
    if let Some(o) = &i.task_output_parameter {
        return Ok(ParameterSource::TaskOutput(OutputRef::new(&o.producer_task, &o.output_parameter_key)));
    }
    match &i.task_final_status {
        Some(f) => Ok(ParameterSource::TaskFinalStatus(f.producer_task.clone())),
        None => Err(Error::invalid(path, "expected a parameter source")),
    }
}

/// Checks that every executor the platform document configures exists.
pub(crate) fn platform_references(
    platforms: &spec::PlatformSpec,
    executors: &BTreeMap<String, spec::ExecutorSpec>,
) -> Result<()> {
    for (platform, single) in &platforms.platforms {
        let configured = single.deployment_spec.as_ref().and_then(|d| d.executors.as_ref());
        for label in configured.into_iter().flatten().map(|(label, _)| label) {
            if !executors.contains_key(label) {
                let known: Vec<&String> = executors.keys().collect();
                return Err(Error::UnknownReference {
                    path: format!("platforms.{platform}.deploymentSpec.executors.{label}"),
                    what: "executor".to_owned(),
                    name: label.clone(),
                    known: format!("deploymentSpec.executors: {known:?}"),
                });
            }
        }
    }
    Ok(())
}
