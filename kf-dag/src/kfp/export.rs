//! IR → KFP wire types: a pipeline built in Rust (or imported and changed)
//! written as the PipelineSpec the kfp compiler would write.
//!
//! The inverse of [`super::import`] on the IR: importing an exported
//! pipeline gives back the same IR, except that a task without a display
//! name gets its task name (KFP always writes `taskInfo.name`). The output
//! holds only fields the `PipelineSpec` protobuf defines, so the kfp SDK's
//! strict parser accepts it. Rust function executors have no KFP
//! equivalent and are refused with the executor's path.
//!
//! Cost: linear in the size of the pipeline.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Number, Value, json};

use super::import::ALL_UPSTREAM_TASKS_COMPLETED;
use super::spec;
use super::{SCHEMA_VERSION, spec::Extra};
use crate::ir::{
    Arg, ArtifactSource, ArtifactType, Component, ContainerSpec, Dag, DagOutputs, Executor, Implementation,
    ImporterSpec, ImporterUri, Interface, LoopItems, ParameterSource, Pipeline, Task, Template, TriggerStrategy,
};
use crate::{Error, Result};

/// The `sdkVersion` kf writes: this crate and its version.
pub const SDK_VERSION: &str = concat!("kf-dag-", env!("CARGO_PKG_VERSION"));

/// Converts an IR pipeline into a PipelineSpec.
pub fn pipeline_spec(p: &Pipeline) -> Result<spec::PipelineSpec> {
    let mut executors = BTreeMap::new();
    for (label, e) in &p.executors {
        executors.insert(label.clone(), executor(e, &format!("deploymentSpec.executors.{label}"))?);
    }
    let components: BTreeMap<String, spec::ComponentSpec> =
        p.components.iter().map(|(name, c)| (name.clone(), component(c))).collect();
    Ok(spec::PipelineSpec {
        pipeline_info: spec::PipelineInfo {
            name: p.name.clone(),
            display_name: None,
            description: p.description.clone(),
            extra: Extra::new(),
        },
        components: (!components.is_empty()).then_some(components),
        deployment_spec: (!executors.is_empty())
            .then(|| spec::DeploymentSpec { executors: Some(executors), extra: Extra::new() }),
        root: component(&p.root),
        schema_version: Some(SCHEMA_VERSION.to_owned()),
        sdk_version: Some(SDK_VERSION.to_owned()),
        default_pipeline_root: None,
        extra: Extra::new(),
    })
}

fn component(c: &Component) -> spec::ComponentSpec {
    let (executor_label, dag) = match &c.implementation {
        Implementation::Executor(label) => (Some(label.clone()), None),
        Implementation::Dag(d) => (None, Some(self::dag(d))),
    };
    spec::ComponentSpec {
        input_definitions: interface(&c.inputs),
        output_definitions: interface(&c.outputs),
        dag,
        executor_label,
        extra: Extra::new(),
    }
}

fn some_map<V>(map: BTreeMap<String, V>) -> Option<BTreeMap<String, V>> {
    (!map.is_empty()).then_some(map)
}

fn interface(i: &Interface) -> Option<spec::InterfaceSpec> {
    if i.is_empty() {
        return None;
    }
    let parameters = i
        .parameters
        .iter()
        .map(|(name, p)| {
            let spec = spec::ParameterSpec {
                parameter_type: Some(p.ty.as_kfp_str().to_owned()),
                default_value: p.default.clone(),
                is_optional: p.optional.then_some(true),
                description: p.description.clone(),
                extra: Extra::new(),
            };
            (name.clone(), spec)
        })
        .collect();
    let artifacts = i
        .artifacts
        .iter()
        .map(|(name, a)| {
            let spec = spec::ArtifactSpec {
                artifact_type: Some(artifact_type(&a.ty)),
                is_artifact_list: a.is_list.then_some(true),
                is_optional: a.optional.then_some(true),
                description: a.description.clone(),
                extra: Extra::new(),
            };
            (name.clone(), spec)
        })
        .collect();
    Some(spec::InterfaceSpec { parameters: some_map(parameters), artifacts: some_map(artifacts), extra: Extra::new() })
}

fn artifact_type(t: &ArtifactType) -> spec::ArtifactTypeSchema {
    spec::ArtifactTypeSchema {
        schema_title: Some(t.schema_title.clone()),
        schema_version: t.schema_version.clone(),
        extra: Extra::new(),
    }
}

fn executor(e: &Executor, path: &str) -> Result<spec::ExecutorSpec> {
    let mut out = spec::ExecutorSpec::default();
    match e {
        Executor::Container(c) => out.container = Some(container(c)),
        Executor::Importer(i) => out.importer = Some(importer(i)),
        Executor::Function(f) => {
            return Err(Error::invalid(
                path,
                format!(
                    "the Rust function {:?} has no KFP equivalent; only container and importer executors export",
                    f.name
                ),
            ));
        }
    }
    Ok(out)
}

fn container(c: &ContainerSpec) -> spec::ContainerSpec {
    let args = |args: &[Arg]| (!args.is_empty()).then(|| args.iter().map(arg_string).collect());
    let env: Vec<spec::EnvVarSpec> = c
        .env
        .iter()
        .map(|(name, value)| spec::EnvVarSpec {
            name: name.clone(),
            value: Some(value.to_string()),
            extra: Extra::new(),
        })
        .collect();
    let r = &c.resources;
    let text = |t: &Option<Template>| t.as_ref().map(Template::to_string);
    let accelerator = (r.accelerator_type.is_some() || r.accelerator_count.is_some()).then(|| spec::AcceleratorSpec {
        resource_type: text(&r.accelerator_type),
        resource_count: text(&r.accelerator_count),
        extra: Extra::new(),
    });
    let resources = spec::ResourcesSpec {
        resource_cpu_limit: text(&r.cpu_limit),
        resource_cpu_request: text(&r.cpu_request),
        resource_memory_limit: text(&r.memory_limit),
        resource_memory_request: text(&r.memory_request),
        accelerator,
        extra: Extra::new(),
    };
    spec::ContainerSpec {
        image: Some(c.image.clone()),
        command: args(&c.command),
        args: args(&c.args),
        env: (!env.is_empty()).then_some(env),
        resources: (resources != spec::ResourcesSpec::default()).then_some(resources),
        extra: Extra::new(),
    }
}

/// An argument as the KFP compiler writes it: a template as text, a
/// structured placeholder as its JSON encoding.
pub(crate) fn arg_string(a: &Arg) -> String {
    match a {
        Arg::Template(t) => t.to_string(),
        structured => arg_json(structured).to_string(),
    }
}

fn arg_json(a: &Arg) -> Value {
    // Nested structured placeholders are written as JSON objects inside the
    // outer one; plain items as strings.
    let items = |args: &[Arg]| Value::Array(args.iter().map(arg_json).collect());
    match a {
        Arg::Template(t) => Value::String(t.to_string()),
        Arg::IfPresent { input, then, otherwise } => {
            let mut body = json!({"InputName": input, "Then": items(then)});
            if !otherwise.is_empty() {
                body["Else"] = items(otherwise);
            }
            json!({ "IfPresent": body })
        }
        Arg::Concat(parts) => json!({ "Concat": items(parts) }),
    }
}

fn importer(i: &ImporterSpec) -> spec::ImporterSpec {
    let artifact_uri = match &i.uri {
        ImporterUri::Constant(uri) => {
            spec::ImporterUriSpec { constant: Some(Value::String(uri.clone())), ..Default::default() }
        }
        ImporterUri::InputParameter(name) => {
            spec::ImporterUriSpec { runtime_parameter: Some(name.clone()), ..Default::default() }
        }
    };
    spec::ImporterSpec {
        artifact_uri: Some(artifact_uri),
        type_schema: Some(artifact_type(&i.artifact_type)),
        metadata: (!i.metadata.is_empty()).then(|| i.metadata.clone()),
        reimport: i.reimport.then_some(true),
        extra: Extra::new(),
    }
}

fn dag(d: &Dag) -> spec::DagSpec {
    let tasks: BTreeMap<String, spec::TaskSpec> =
        d.tasks.iter().map(|(name, t)| (name.clone(), task(name, t))).collect();
    spec::DagSpec { tasks: some_map(tasks), outputs: dag_outputs(&d.outputs), extra: Extra::new() }
}

fn dag_outputs(o: &DagOutputs) -> Option<spec::DagOutputsSpec> {
    let parameters = o
        .parameters
        .iter()
        .map(|(name, sel)| {
            let mut selectors = sel.selectors.iter().map(|r| spec::ParameterSelectorSpec {
                producer_subtask: r.task.clone(),
                output_parameter_key: r.output.clone(),
                extra: Extra::new(),
            });
            let mut out = spec::DagOutputParameterSpec::default();
            if sel.selectors.len() == 1 {
                out.value_from_parameter = selectors.next();
            } else {
                out.value_from_oneof = Some(spec::ParameterSelectorsSpec {
                    parameter_selectors: selectors.collect(),
                    extra: Extra::new(),
                });
            }
            (name.clone(), out)
        })
        .collect();
    let artifacts = o
        .artifacts
        .iter()
        .map(|(name, sel)| {
            let artifact_selectors = sel
                .selectors
                .iter()
                .map(|r| spec::ArtifactSelectorSpec {
                    producer_subtask: r.task.clone(),
                    output_artifact_key: r.output.clone(),
                    extra: Extra::new(),
                })
                .collect();
            (name.clone(), spec::DagOutputArtifactSpec { artifact_selectors, extra: Extra::new() })
        })
        .collect();
    let out =
        spec::DagOutputsSpec { parameters: some_map(parameters), artifacts: some_map(artifacts), extra: Extra::new() };
    (out != spec::DagOutputsSpec::default()).then_some(out)
}

/// A protobuf JSON Duration: whole seconds, or seconds with up to nine
/// fractional digits (`3s`, `1.5s`).
pub(crate) fn duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{}s", d.as_secs())
    } else {
        let fraction = format!("{nanos:09}");
        format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
    }
}

fn task(name: &str, t: &Task) -> spec::TaskSpec {
    let parameters: BTreeMap<String, spec::TaskInputParameterSpec> =
        t.parameters.iter().map(|(name, source)| (name.clone(), parameter_source(source))).collect();
    let artifacts: BTreeMap<String, spec::TaskInputArtifactSpec> = t
        .artifacts
        .iter()
        .map(|(name, source)| {
            let mut out = spec::TaskInputArtifactSpec::default();
            match source {
                ArtifactSource::TaskOutput(r) => {
                    out.task_output_artifact = Some(spec::TaskOutputArtifactSpec {
                        producer_task: r.task.clone(),
                        output_artifact_key: r.output.clone(),
                        extra: Extra::new(),
                    });
                }
                ArtifactSource::ComponentInput(input) => out.component_input_artifact = Some(input.clone()),
            }
            (name.clone(), out)
        })
        .collect();
    let inputs = (!parameters.is_empty() || !artifacts.is_empty()).then(|| spec::TaskInputsSpec {
        parameters: some_map(parameters),
        artifacts: some_map(artifacts),
        extra: Extra::new(),
    });
    // KFP lists every upstream sibling, data dependencies included.
    let dependent: Vec<String> = t.upstream().into_iter().map(str::to_owned).collect();
    let trigger = spec::TriggerPolicySpec {
        condition: t.trigger.condition.as_ref().map(|c| c.source().to_owned()),
        strategy: (t.trigger.strategy == TriggerStrategy::AllUpstreamCompleted)
            .then(|| ALL_UPSTREAM_TASKS_COMPLETED.to_owned()),
        extra: Extra::new(),
    };
    let mut out = spec::TaskSpec {
        task_info: Some(spec::TaskInfo {
            name: Some(t.display_name.clone().unwrap_or_else(|| name.to_owned())),
            extra: Extra::new(),
        }),
        component_ref: spec::ComponentRefSpec { name: t.component.clone(), extra: Extra::new() },
        inputs,
        dependent_tasks: (!dependent.is_empty()).then_some(dependent),
        caching_options: Some(spec::CachingOptionsSpec {
            enable_cache: t.caching.enabled.then_some(true),
            cache_key: t.caching.key.clone(),
            extra: Extra::new(),
        }),
        trigger_policy: (trigger != spec::TriggerPolicySpec::default()).then_some(trigger),
        retry_policy: t.retry.map(|r| spec::RetryPolicySpec {
            max_retry_count: Some(r.max_retry_count),
            backoff_duration: Some(duration(r.backoff)),
            backoff_factor: Number::from_f64(r.backoff_factor),
            backoff_max_duration: Some(duration(r.backoff_max)),
            extra: Extra::new(),
        }),
        ..Default::default()
    };
    if let Some(pf) = &t.parallel_for {
        out.iterator_policy =
            pf.parallelism.map(|n| spec::IteratorPolicySpec { parallelism_limit: Some(n), extra: Extra::new() });
        match &pf.items {
            LoopItems::Raw(items) => {
                out.parameter_iterator = Some(spec::ParameterIteratorSpec {
                    items: Some(spec::ParameterItemsSpec {
                        raw: Some(Value::Array(items.clone()).to_string()),
                        ..Default::default()
                    }),
                    item_input: Some(pf.item_input.clone()),
                    extra: Extra::new(),
                });
            }
            LoopItems::InputParameter(input) => {
                out.parameter_iterator = Some(spec::ParameterIteratorSpec {
                    items: Some(spec::ParameterItemsSpec {
                        input_parameter: Some(input.clone()),
                        ..Default::default()
                    }),
                    item_input: Some(pf.item_input.clone()),
                    extra: Extra::new(),
                });
            }
            LoopItems::InputArtifact(input) => {
                out.artifact_iterator = Some(spec::ArtifactIteratorSpec {
                    items: Some(spec::ArtifactItemsSpec { input_artifact: Some(input.clone()), extra: Extra::new() }),
                    item_input: Some(pf.item_input.clone()),
                    extra: Extra::new(),
                });
            }
        }
    }
    out
}

fn parameter_source(source: &ParameterSource) -> spec::TaskInputParameterSpec {
    let mut out = spec::TaskInputParameterSpec::default();
    match source {
        ParameterSource::Constant(v) => {
            out.runtime_value = Some(spec::RuntimeValueSpec { constant: Some(v.clone()), extra: Extra::new() });
        }
        ParameterSource::ComponentInput { name, selector } => {
            out.component_input_parameter = Some(name.clone());
            out.parameter_expression_selector = selector.as_ref().map(ToString::to_string);
        }
        ParameterSource::TaskOutput(r) => {
            out.task_output_parameter = Some(spec::TaskOutputParameterSpec {
                producer_task: r.task.clone(),
                output_parameter_key: r.output.clone(),
                extra: Extra::new(),
            });
        }
        ParameterSource::TaskFinalStatus(task) => {
            out.task_final_status =
                Some(spec::TaskFinalStatusSpec { producer_task: task.clone(), extra: Extra::new() });
        }
    }
    out
}
