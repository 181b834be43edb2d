//! kf's own pipeline file format: the IR as YAML or JSON, for people to write
//! (`kf pipeline validate|run|graph FILE`). KFP's PipelineSpec is the `kfp`
//! module's business; this format is smaller and says the same things.
//!
//! ```yaml
//! name: hello
//! inputs:
//!   parameters:
//!     who: {type: STRING, default: world}
//! components:
//!   say:
//!     inputs:  {parameters: {text: {type: STRING}}}
//!     outputs: {artifacts: {out: {type: system.Dataset}}}
//!     container:
//!       image: alpine
//!       command: [sh, -c, 'echo "$0" > "$1"', "{{$.inputs.parameters['text']}}", "{{$.outputs.artifacts['out'].path}}"]
//! tasks:
//!   say:
//!     component: say
//!     parameters: {text: {parameter: who}}
//! ```
//!
//! A component has exactly one of `container`, `function`, `importer`,
//! `executor` (a label in the top-level `executors`) or `tasks` (a DAG; its
//! outputs then say where they come `from`). A task input is one of
//! `{value: …}`, `{parameter: name, select: 'parseJson(string_value)["f"]'}`,
//! `{task: t, output: o}` or `{finalStatusOf: t}` (artifacts: `{input: name}`
//! or `{task: t, output: o}`). Durations are `500ms`, `30s`, `5m`, `1h` or a
//! number of seconds. Unknown fields are errors: this format is kf's own, and a
//! misspelt field silently ignored would be a pipeline that does not do what
//! it says. Every error names the field path (`tasks.train.parameters.lr`).
//! [`to_value`] writes a pipeline back: [`from_value`] ∘ [`to_value`] is the
//! identity, up to `optional` being implied by a default and the trigger
//! strategy by a final-status input (as the builder sets them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ir::{
    Arg, ArtifactSource, ArtifactSpec, ArtifactType, CachingOptions, Component, Condition, ContainerSpec, Dag,
    DagOutputs, Executor, FunctionSpec, Implementation, ImporterSpec, ImporterUri, Interface, ItemSelector, LoopItems,
    OutputRef, OutputSelection, ParallelFor, ParameterSource, ParameterSpec, ParameterType, Pipeline, Resources,
    RetryPolicy, Task, Template, TriggerPolicy, TriggerStrategy,
};
use crate::{Error, Result};

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PipelineWire {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "InterfaceWire::is_empty")]
    inputs: InterfaceWire,
    #[serde(default, skip_serializing_if = "OutputsWire::is_empty")]
    outputs: OutputsWire,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    executors: BTreeMap<String, ExecutorWire>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    components: BTreeMap<String, ComponentWire>,
    #[serde(default)]
    tasks: BTreeMap<String, TaskWire>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InterfaceWire {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    parameters: BTreeMap<String, ParameterWire>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    artifacts: BTreeMap<String, ArtifactWire>,
}

impl InterfaceWire {
    fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.artifacts.is_empty()
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OutputsWire {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    parameters: BTreeMap<String, ParameterWire>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    artifacts: BTreeMap<String, ArtifactWire>,
}

impl OutputsWire {
    fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.artifacts.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParameterWire {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// DAG outputs only: where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<FromWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactWire {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    list: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<FromWire>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(untagged)]
enum FromWire {
    One(OutputRefWire),
    FirstOf(Vec<OutputRefWire>),
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct OutputRefWire {
    task: String,
    output: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ComponentWire {
    #[serde(default, skip_serializing_if = "InterfaceWire::is_empty")]
    inputs: InterfaceWire,
    #[serde(default, skip_serializing_if = "OutputsWire::is_empty")]
    outputs: OutputsWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    executor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<ContainerWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    importer: Option<ImporterWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tasks: Option<BTreeMap<String, TaskWire>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExecutorWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<ContainerWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    importer: Option<ImporterWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ContainerWire {
    image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    command: Vec<ArgWire>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<ArgWire>,
    /// Environment variables, in order (a list of `{name, value}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    env: Vec<EnvWire>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    resources: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvWire {
    name: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ArgWire {
    Text(String),
    Structured(StructuredArgWire),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum StructuredArgWire {
    IfPresent {
        input: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        then: Vec<ArgWire>,
        #[serde(default, rename = "else", skip_serializing_if = "Vec::is_empty")]
        otherwise: Vec<ArgWire>,
    },
    Concat(Vec<ArgWire>),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImporterWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uri_parameter: Option<String>,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    reimport: bool,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TaskWire {
    component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    parameters: BTreeMap<String, SourceWire>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    artifacts: BTreeMap<String, SourceWire>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    after: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    when: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    ignore_upstream_failure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parallel_for: Option<LoopWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<RetryWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caching: Option<CachingWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<DurationWire>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourceWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    select: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    final_status_of: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoopWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    items: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    items_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifacts_from: Option<String>,
    item_input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parallelism: Option<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RetryWire {
    max_retry_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff: Option<DurationWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff_max: Option<DurationWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum CachingWire {
    Enabled(bool),
    Options {
        #[serde(default = "yes")]
        enabled: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(untagged)]
enum DurationWire {
    Seconds(f64),
    Text(String),
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `1.5h` or a bare number of seconds.
///
/// ```
/// use kf_dag::format::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("expected a duration such as 500ms, 30s, 5m or 1h, found {text:?}")),
    };
    let n: f64 = number.trim().parse().map_err(|_| format!("expected a duration such as 30s, found {text:?}"))?;
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("{text:?} is not a duration (negative or too long)"))
}

fn format_duration(d: Duration) -> DurationWire {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        DurationWire::Seconds(d.as_secs_f64())
    } else if ms.is_multiple_of(3_600_000) && ms > 0 {
        DurationWire::Text(format!("{}h", ms / 3_600_000))
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        DurationWire::Text(format!("{}m", ms / 60_000))
    } else if ms.is_multiple_of(1000) {
        DurationWire::Text(format!("{}s", ms / 1000))
    } else {
        DurationWire::Text(format!("{ms}ms"))
    }
}

fn duration(path: &str, d: &DurationWire) -> Result<Duration> {
    match d {
        DurationWire::Seconds(s) => Duration::try_from_secs_f64(*s)
            .map_err(|_| Error::invalid(path, format!("expected a non-negative number of seconds, found {s}"))),
        DurationWire::Text(t) => parse_duration(t).map_err(|m| Error::invalid(path, m)),
    }
}

/// Reads a pipeline from YAML or JSON text (JSON is YAML). Errors name the
/// field path; syntax errors carry line and column.
pub fn from_str(text: &str) -> Result<Pipeline> {
    // YAML 1.2 booleans: a name such as `n` or `on` stays a string.
    let value: Value = serde_saphyr::from_str_with_options(text, serde_saphyr::options! { strict_booleans: true })
        .map_err(|e| Error::invalid("(document)", e.to_string()))?;
    from_value(value)
}

/// Reads a pipeline from a JSON value.
pub fn from_value(value: Value) -> Result<Pipeline> {
    let wire: PipelineWire = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        Error::invalid(if path == "." { "(document)".to_owned() } else { path }, e.into_inner().to_string())
    })?;
    let mut executors = BTreeMap::new();
    for (label, executor) in &wire.executors {
        let path = format!("executors.{label}");
        executors.insert(
            label.clone(),
            executor_from(&path, executor.container.as_ref(), executor.function.as_ref(), executor.importer.as_ref())?
                .ok_or_else(|| Error::invalid(&path, "expected one of container, function or importer"))?,
        );
    }
    let mut components = BTreeMap::new();
    for (name, c) in wire.components {
        let path = format!("components.{name}");
        let inline = executor_from(&path, c.container.as_ref(), c.function.as_ref(), c.importer.as_ref())?;
        let kinds = [c.executor.is_some(), inline.is_some(), c.tasks.is_some()].iter().filter(|b| **b).count()
            + usize::from(c.container.is_some() && c.function.is_some())
            + usize::from(c.importer.is_some() && (c.container.is_some() || c.function.is_some()));
        if kinds != 1 {
            return Err(Error::invalid(
                &path,
                "expected exactly one of executor, container, function, importer or tasks",
            ));
        }
        let inputs = interface(&format!("{path}.inputs"), &c.inputs.parameters, &c.inputs.artifacts)?;
        let outputs = interface(&format!("{path}.outputs"), &c.outputs.parameters, &c.outputs.artifacts)?;
        let implementation = match (c.executor, inline, c.tasks) {
            (Some(label), _, _) => Implementation::Executor(label),
            (_, Some(executor), _) => {
                let label = format!("exec-{name}");
                if executors.insert(label.clone(), executor).is_some() {
                    return Err(Error::Duplicate { path: "executors".into(), name: label });
                }
                Implementation::Executor(label)
            }
            (_, _, Some(tasks)) => Implementation::Dag(dag(&path, tasks, &c.outputs)?),
            _ => return Err(Error::invalid(&path, "expected an implementation")),
        };
        components.insert(name, Component { inputs, outputs, implementation });
    }
    let root = Component {
        inputs: interface("inputs", &wire.inputs.parameters, &wire.inputs.artifacts)?,
        outputs: interface("outputs", &wire.outputs.parameters, &wire.outputs.artifacts)?,
        implementation: Implementation::Dag(dag("", wire.tasks, &wire.outputs)?),
    };
    Ok(Pipeline { name: wire.name, description: wire.description, components, executors, root })
}

fn executor_from(
    path: &str,
    container: Option<&ContainerWire>,
    function: Option<&String>,
    importer: Option<&ImporterWire>,
) -> Result<Option<Executor>> {
    if let Some(c) = container {
        let path = format!("{path}.container");
        let args = |field: &str, list: &[ArgWire]| -> Result<Vec<Arg>> {
            list.iter().enumerate().map(|(i, a)| arg(&format!("{path}.{field}[{i}]"), a)).collect()
        };
        let mut env = Vec::new();
        for (i, e) in c.env.iter().enumerate() {
            let t = Template::parse(&e.value).map_err(|m| Error::invalid(format!("{path}.env[{i}].value"), m))?;
            env.push((e.name.clone(), t));
        }
        let mut resources = Resources::default();
        for (key, value) in &c.resources {
            let t = Template::parse(value).map_err(|m| Error::invalid(format!("{path}.resources.{key}"), m))?;
            let slot = match key.as_str() {
                "cpuLimit" => &mut resources.cpu_limit,
                "cpuRequest" => &mut resources.cpu_request,
                "memoryLimit" => &mut resources.memory_limit,
                "memoryRequest" => &mut resources.memory_request,
                "acceleratorType" => &mut resources.accelerator_type,
                "acceleratorCount" => &mut resources.accelerator_count,
                _ => {
                    return Err(Error::invalid(
                        format!("{path}.resources.{key}"),
                        "expected cpuLimit, cpuRequest, memoryLimit, memoryRequest, acceleratorType or acceleratorCount",
                    ));
                }
            };
            *slot = Some(t);
        }
        return Ok(Some(Executor::Container(ContainerSpec {
            image: c.image.clone(),
            command: args("command", &c.command)?,
            args: args("args", &c.args)?,
            env,
            resources,
        })));
    }
    if let Some(f) = function {
        return Ok(Some(Executor::Function(FunctionSpec { name: f.clone() })));
    }
    if let Some(i) = importer {
        let uri = match (&i.uri, &i.uri_parameter) {
            (Some(u), None) => ImporterUri::Constant(u.clone()),
            (None, Some(p)) => ImporterUri::InputParameter(p.clone()),
            _ => return Err(Error::invalid(format!("{path}.importer"), "expected exactly one of uri or uriParameter")),
        };
        return Ok(Some(Executor::Importer(ImporterSpec {
            uri,
            artifact_type: ArtifactType { schema_title: i.ty.clone(), schema_version: i.version.clone() },
            metadata: i.metadata.clone(),
            reimport: i.reimport,
        })));
    }
    Ok(None)
}

fn arg(path: &str, a: &ArgWire) -> Result<Arg> {
    match a {
        ArgWire::Text(s) => Arg::parse(s).map_err(|m| Error::invalid(path, m)),
        ArgWire::Structured(StructuredArgWire::IfPresent { input, then, otherwise }) => Ok(Arg::IfPresent {
            input: input.clone(),
            then: then
                .iter()
                .enumerate()
                .map(|(i, a)| arg(&format!("{path}.ifPresent.then[{i}]"), a))
                .collect::<Result<_>>()?,
            otherwise: otherwise
                .iter()
                .enumerate()
                .map(|(i, a)| arg(&format!("{path}.ifPresent.else[{i}]"), a))
                .collect::<Result<_>>()?,
        }),
        ArgWire::Structured(StructuredArgWire::Concat(parts)) => Ok(Arg::Concat(
            parts.iter().enumerate().map(|(i, a)| arg(&format!("{path}.concat[{i}]"), a)).collect::<Result<_>>()?,
        )),
    }
}

fn interface(
    path: &str,
    parameters: &BTreeMap<String, ParameterWire>,
    artifacts: &BTreeMap<String, ArtifactWire>,
) -> Result<Interface> {
    let mut out = Interface::default();
    for (name, p) in parameters {
        let ty = ParameterType::from_kfp_str(&p.ty).ok_or_else(|| {
            Error::invalid(
                format!("{path}.parameters.{name}.type"),
                format!("expected STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT or TASK_FINAL_STATUS, found {:?}", p.ty),
            )
        })?;
        out.parameters.insert(
            name.clone(),
            ParameterSpec {
                ty,
                default: p.default.clone(),
                optional: p.optional || p.default.is_some(),
                description: p.description.clone(),
            },
        );
    }
    for (name, a) in artifacts {
        out.artifacts.insert(
            name.clone(),
            ArtifactSpec {
                ty: ArtifactType { schema_title: a.ty.clone(), schema_version: a.version.clone() },
                is_list: a.list,
                optional: a.optional,
                description: a.description.clone(),
            },
        );
    }
    Ok(out)
}

fn selection(from: &FromWire) -> OutputSelection {
    let refs = match from {
        FromWire::One(r) => vec![r.clone()],
        FromWire::FirstOf(rs) => rs.clone(),
    };
    OutputSelection { selectors: refs.into_iter().map(|r| OutputRef::new(r.task, r.output)).collect() }
}

fn dag(path: &str, tasks: BTreeMap<String, TaskWire>, outputs: &OutputsWire) -> Result<Dag> {
    let prefix = if path.is_empty() { String::new() } else { format!("{path}.") };
    let mut dag = Dag { tasks: BTreeMap::new(), outputs: DagOutputs::default() };
    for (name, p) in &outputs.parameters {
        let from = p.from.as_ref().ok_or_else(|| {
            Error::invalid(
                format!("{prefix}outputs.parameters.{name}.from"),
                "a DAG output needs `from: {task, output}`",
            )
        })?;
        dag.outputs.parameters.insert(name.clone(), selection(from));
    }
    for (name, a) in &outputs.artifacts {
        let from = a.from.as_ref().ok_or_else(|| {
            Error::invalid(
                format!("{prefix}outputs.artifacts.{name}.from"),
                "a DAG output needs `from: {task, output}`",
            )
        })?;
        dag.outputs.artifacts.insert(name.clone(), selection(from));
    }
    for (name, t) in tasks {
        let path = format!("{prefix}tasks.{name}");
        dag.tasks.insert(name, task(&path, t)?);
    }
    Ok(dag)
}

fn task(path: &str, t: TaskWire) -> Result<Task> {
    let mut task = Task::new(t.component);
    task.display_name = t.display_name;
    for (name, s) in &t.parameters {
        task.parameters.insert(name.clone(), parameter_source(&format!("{path}.parameters.{name}"), s)?);
    }
    for (name, s) in &t.artifacts {
        task.artifacts.insert(name.clone(), artifact_source(&format!("{path}.artifacts.{name}"), s)?);
    }
    task.after = t.after;
    let condition = match &t.when {
        Some(c) => Some(Condition::parse(c).map_err(|m| Error::invalid(format!("{path}.when"), m))?),
        None => None,
    };
    let any_final_status = task.parameters.values().any(|s| matches!(s, ParameterSource::TaskFinalStatus(_)));
    let strategy = if t.ignore_upstream_failure || any_final_status {
        TriggerStrategy::AllUpstreamCompleted
    } else {
        TriggerStrategy::AllUpstreamSucceeded
    };
    task.trigger = TriggerPolicy { condition, strategy };
    if let Some(l) = t.parallel_for {
        let lp = format!("{path}.parallelFor");
        let items = match (l.items, l.items_from, l.artifacts_from) {
            (Some(items), None, None) => LoopItems::Raw(items),
            (None, Some(input), None) => LoopItems::InputParameter(input),
            (None, None, Some(input)) => LoopItems::InputArtifact(input),
            _ => return Err(Error::invalid(lp, "expected exactly one of items, itemsFrom or artifactsFrom")),
        };
        task.parallel_for = Some(ParallelFor { items, item_input: l.item_input, parallelism: l.parallelism });
    }
    if let Some(r) = &t.retry {
        let defaults = RetryPolicy::default();
        task.retry = Some(RetryPolicy {
            max_retry_count: r.max_retry_count,
            backoff: r
                .backoff
                .as_ref()
                .map(|d| duration(&format!("{path}.retry.backoff"), d))
                .transpose()?
                .unwrap_or(defaults.backoff),
            backoff_factor: r.backoff_factor.unwrap_or(defaults.backoff_factor),
            backoff_max: r
                .backoff_max
                .as_ref()
                .map(|d| duration(&format!("{path}.retry.backoffMax"), d))
                .transpose()?
                .unwrap_or(defaults.backoff_max),
        });
    }
    task.caching = match t.caching {
        None => CachingOptions::default(),
        Some(CachingWire::Enabled(enabled)) => CachingOptions { enabled, key: None },
        Some(CachingWire::Options { enabled, key }) => CachingOptions { enabled, key },
    };
    task.timeout = t.timeout.as_ref().map(|d| duration(&format!("{path}.timeout"), d)).transpose()?;
    Ok(task)
}

fn one_of(path: &str, allowed: &str) -> Error {
    Error::invalid(path, format!("expected exactly one of {allowed}"))
}

fn parameter_source(path: &str, s: &SourceWire) -> Result<ParameterSource> {
    const ALLOWED: &str = "{value}, {parameter[, select]}, {task, output} or {finalStatusOf}";
    if s.input.is_some() {
        return Err(one_of(path, ALLOWED));
    }
    match (&s.value, &s.parameter, &s.task, &s.output, &s.final_status_of) {
        (Some(v), None, None, None, None) if s.select.is_none() => Ok(ParameterSource::Constant(v.clone())),
        (None, Some(p), None, None, None) => {
            let selector = match &s.select {
                Some(sel) => Some(ItemSelector::parse(sel).map_err(|m| Error::invalid(format!("{path}.select"), m))?),
                None => None,
            };
            Ok(ParameterSource::ComponentInput { name: p.clone(), selector })
        }
        (None, None, Some(t), Some(o), None) if s.select.is_none() => {
            Ok(ParameterSource::TaskOutput(OutputRef::new(t.clone(), o.clone())))
        }
        (None, None, None, None, Some(t)) if s.select.is_none() => Ok(ParameterSource::TaskFinalStatus(t.clone())),
        _ => Err(one_of(path, ALLOWED)),
    }
}

fn artifact_source(path: &str, s: &SourceWire) -> Result<ArtifactSource> {
    match (&s.input, &s.task, &s.output) {
        (Some(i), None, None) if s.value.is_none() && s.parameter.is_none() && s.final_status_of.is_none() => {
            Ok(ArtifactSource::ComponentInput(i.clone()))
        }
        (None, Some(t), Some(o)) if s.value.is_none() && s.parameter.is_none() && s.final_status_of.is_none() => {
            Ok(ArtifactSource::TaskOutput(OutputRef::new(t.clone(), o.clone())))
        }
        _ => Err(one_of(path, "{input} or {task, output}")),
    }
}

/// Writes a pipeline in this format, as a JSON value (serialise it as YAML
/// or JSON). Executors used by exactly one component are written inline.
pub fn to_value(pipeline: &Pipeline) -> Value {
    let mut uses: BTreeMap<&str, usize> = BTreeMap::new();
    for c in pipeline.components.values() {
        if let Implementation::Executor(label) = &c.implementation {
            *uses.entry(label.as_str()).or_default() += 1;
        }
    }
    let mut executors = BTreeMap::new();
    let mut components = BTreeMap::new();
    for (name, c) in &pipeline.components {
        let mut wire = ComponentWire { inputs: interface_to(&c.inputs), ..ComponentWire::default() };
        match &c.implementation {
            Implementation::Executor(label) => {
                let inline = uses.get(label.as_str()) == Some(&1) && *label == format!("exec-{name}");
                match pipeline.executors.get(label) {
                    Some(e) if inline => {
                        let w = executor_to(e);
                        wire.container = w.container;
                        wire.function = w.function;
                        wire.importer = w.importer;
                    }
                    _ => wire.executor = Some(label.clone()),
                }
                wire.outputs = outputs_to(&c.outputs, None);
            }
            Implementation::Dag(d) => {
                wire.tasks = Some(tasks_to(d));
                wire.outputs = outputs_to(&c.outputs, Some(&d.outputs));
            }
        }
        components.insert(name.clone(), wire);
    }
    for (label, e) in &pipeline.executors {
        let inline = uses.get(label.as_str()) == Some(&1)
            && pipeline.components.iter().any(|(n, c)| {
                matches!(&c.implementation, Implementation::Executor(l) if l == label) && *label == format!("exec-{n}")
            });
        if !inline {
            executors.insert(label.clone(), executor_to(e));
        }
    }
    let root_dag = pipeline.root.as_dag();
    let wire = PipelineWire {
        name: pipeline.name.clone(),
        description: pipeline.description.clone(),
        inputs: interface_to(&pipeline.root.inputs),
        outputs: outputs_to(&pipeline.root.outputs, root_dag.map(|d| &d.outputs)),
        executors,
        components,
        tasks: root_dag.map(tasks_to).unwrap_or_default(),
    };
    serde_json::to_value(wire).unwrap_or(Value::Null)
}

fn interface_to(i: &Interface) -> InterfaceWire {
    let o = outputs_to(i, None);
    InterfaceWire { parameters: o.parameters, artifacts: o.artifacts }
}

fn outputs_to(i: &Interface, from: Option<&DagOutputs>) -> OutputsWire {
    let from_wire = |s: &OutputSelection| {
        let refs: Vec<OutputRefWire> =
            s.selectors.iter().map(|r| OutputRefWire { task: r.task.clone(), output: r.output.clone() }).collect();
        match <[OutputRefWire; 1]>::try_from(refs) {
            Ok([one]) => FromWire::One(one),
            Err(refs) => FromWire::FirstOf(refs),
        }
    };
    OutputsWire {
        parameters: i
            .parameters
            .iter()
            .map(|(n, p)| {
                let explicit_optional = p.optional && p.default.is_none();
                (
                    n.clone(),
                    ParameterWire {
                        ty: p.ty.as_kfp_str().to_owned(),
                        default: p.default.clone(),
                        optional: explicit_optional,
                        description: p.description.clone(),
                        from: from.and_then(|f| f.parameters.get(n)).map(from_wire),
                    },
                )
            })
            .collect(),
        artifacts: i
            .artifacts
            .iter()
            .map(|(n, a)| {
                (
                    n.clone(),
                    ArtifactWire {
                        ty: a.ty.schema_title.clone(),
                        version: a.ty.schema_version.clone(),
                        list: a.is_list,
                        optional: a.optional,
                        description: a.description.clone(),
                        from: from.and_then(|f| f.artifacts.get(n)).map(from_wire),
                    },
                )
            })
            .collect(),
    }
}

fn executor_to(e: &Executor) -> ExecutorWire {
    let mut w = ExecutorWire { container: None, function: None, importer: None };
    match e {
        Executor::Container(c) => {
            let mut resources = BTreeMap::new();
            for (key, value) in [
                ("cpuLimit", &c.resources.cpu_limit),
                ("cpuRequest", &c.resources.cpu_request),
                ("memoryLimit", &c.resources.memory_limit),
                ("memoryRequest", &c.resources.memory_request),
                ("acceleratorType", &c.resources.accelerator_type),
                ("acceleratorCount", &c.resources.accelerator_count),
            ] {
                if let Some(v) = value {
                    resources.insert(key.to_owned(), v.to_string());
                }
            }
            w.container = Some(ContainerWire {
                image: c.image.clone(),
                command: c.command.iter().map(arg_to).collect(),
                args: c.args.iter().map(arg_to).collect(),
                env: c.env.iter().map(|(n, v)| EnvWire { name: n.clone(), value: v.to_string() }).collect(),
                resources,
            });
        }
        Executor::Function(f) => w.function = Some(f.name.clone()),
        Executor::Importer(i) => {
            let (uri, uri_parameter) = match &i.uri {
                ImporterUri::Constant(u) => (Some(u.clone()), None),
                ImporterUri::InputParameter(p) => (None, Some(p.clone())),
            };
            w.importer = Some(ImporterWire {
                uri,
                uri_parameter,
                ty: i.artifact_type.schema_title.clone(),
                version: i.artifact_type.schema_version.clone(),
                metadata: i.metadata.clone(),
                reimport: i.reimport,
            });
        }
    }
    w
}

fn arg_to(a: &Arg) -> ArgWire {
    match a {
        Arg::Template(t) => ArgWire::Text(t.to_string()),
        Arg::IfPresent { input, then, otherwise } => ArgWire::Structured(StructuredArgWire::IfPresent {
            input: input.clone(),
            then: then.iter().map(arg_to).collect(),
            otherwise: otherwise.iter().map(arg_to).collect(),
        }),
        Arg::Concat(parts) => ArgWire::Structured(StructuredArgWire::Concat(parts.iter().map(arg_to).collect())),
    }
}

fn tasks_to(d: &Dag) -> BTreeMap<String, TaskWire> {
    d.tasks.iter().map(|(n, t)| (n.clone(), task_to(t))).collect()
}

fn task_to(t: &Task) -> TaskWire {
    let any_final_status = t.parameters.values().any(|s| matches!(s, ParameterSource::TaskFinalStatus(_)));
    TaskWire {
        component: t.component.clone(),
        display_name: t.display_name.clone(),
        parameters: t
            .parameters
            .iter()
            .map(|(n, s)| {
                let w = match s {
                    ParameterSource::Constant(v) => SourceWire { value: Some(v.clone()), ..SourceWire::default() },
                    ParameterSource::ComponentInput { name, selector } => SourceWire {
                        parameter: Some(name.clone()),
                        select: selector.as_ref().map(ToString::to_string),
                        ..SourceWire::default()
                    },
                    ParameterSource::TaskOutput(r) => SourceWire {
                        task: Some(r.task.clone()),
                        output: Some(r.output.clone()),
                        ..SourceWire::default()
                    },
                    ParameterSource::TaskFinalStatus(task) => {
                        SourceWire { final_status_of: Some(task.clone()), ..SourceWire::default() }
                    }
                };
                (n.clone(), w)
            })
            .collect(),
        artifacts: t
            .artifacts
            .iter()
            .map(|(n, s)| {
                let w = match s {
                    ArtifactSource::ComponentInput(i) => SourceWire { input: Some(i.clone()), ..SourceWire::default() },
                    ArtifactSource::TaskOutput(r) => SourceWire {
                        task: Some(r.task.clone()),
                        output: Some(r.output.clone()),
                        ..SourceWire::default()
                    },
                };
                (n.clone(), w)
            })
            .collect(),
        after: t.after.clone(),
        when: t.trigger.condition.as_ref().map(|c| c.source().to_owned()),
        ignore_upstream_failure: t.trigger.strategy == TriggerStrategy::AllUpstreamCompleted && !any_final_status,
        parallel_for: t.parallel_for.as_ref().map(|pf| {
            let (items, items_from, artifacts_from) = match &pf.items {
                LoopItems::Raw(v) => (Some(v.clone()), None, None),
                LoopItems::InputParameter(i) => (None, Some(i.clone()), None),
                LoopItems::InputArtifact(i) => (None, None, Some(i.clone())),
            };
            LoopWire {
                items,
                items_from,
                artifacts_from,
                item_input: pf.item_input.clone(),
                parallelism: pf.parallelism,
            }
        }),
        retry: t.retry.as_ref().map(|r| RetryWire {
            max_retry_count: r.max_retry_count,
            backoff: Some(format_duration(r.backoff)),
            backoff_factor: Some(r.backoff_factor),
            backoff_max: Some(format_duration(r.backoff_max)),
        }),
        caching: match (&t.caching.enabled, &t.caching.key) {
            (true, None) => None,
            (enabled, None) => Some(CachingWire::Enabled(*enabled)),
            (enabled, Some(key)) => Some(CachingWire::Options { enabled: *enabled, key: Some(key.clone()) }),
        },
        timeout: t.timeout.map(format_duration),
    }
}

#[cfg(test)]
mod tests;
