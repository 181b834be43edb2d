//! The IR against the real KFP corpus.
//!
//! `kfp` below is a minimal, test-only mapping from a compiled KFP
//! PipelineSpec to the IR: one function per IR type, field for field. It
//! exists to show that the mapping is straight and that validation accepts
//! every real pipeline and rejects every broken one at the right path. The
//! real importer (with export and round-trip) is the KFP issue's work.

use std::path::PathBuf;

use kf_dag::{Error, Plan};
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/kfp");

fn load(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The first document is the PipelineSpec; a second one (platforms) is not the IR's business.
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter().next().expect("a document")
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_pipeline_maps_and_validates() {
    let files = yaml_files(CORPUS);
    assert_eq!(files.len(), 25, "the public corpus holds 25 pipelines");
    for path in files {
        let pipeline = kfp::pipeline(&load(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let plan = Plan::new(pipeline).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!plan.root().order().is_empty(), "{}", path.display());
    }
}

#[test]
fn every_invalid_corpus_pipeline_is_rejected_at_the_named_path() {
    let expected = [
        ("missing_component.yaml", "root.dag.tasks.print-text-2.componentRef.name"),
        ("missing_dependent_task.yaml", "root.dag.tasks.print-text-2.dependentTasks"),
        (
            "missing_output_parameter.yaml",
            "root.dag.tasks.print-op.inputs.parameters.message.taskOutputParameter.outputParameterKey",
        ),
        ("task_cycle.yaml", "root.dag.tasks.print-text"),
        ("unknown_executor_kind.yaml", "deploymentSpec.executors.exec-write-to-gcs"),
    ];
    let files = yaml_files(&format!("{CORPUS}/invalid"));
    assert_eq!(files.len(), expected.len());
    for (file, path) in expected {
        let doc = load(&PathBuf::from(format!("{CORPUS}/invalid/{file}")));
        let err = kfp::pipeline(&doc).and_then(Plan::new).expect_err(file);
        assert_eq!(err.path(), Some(path), "{file}: {err}");
        if file == "task_cycle.yaml" {
            assert!(
                matches!(&err, Error::Cycle { cycle, .. } if cycle == &["print-text", "print-text-3", "print-text"]),
                "{err}"
            );
        }
    }
}

/// The test-only KFP → IR mapping.
mod kfp {
    use std::time::Duration;

    use kf_dag::ir::*;
    use kf_dag::{Error, Result};
    use serde_json::Value;

    fn bad(path: &str, message: impl Into<String>) -> Error {
        // `Error::invalid` is crate-private; build the variant directly.
        Error::Invalid { path: path.to_owned(), message: message.into() }
    }

    fn obj<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
        v.get(key).and_then(Value::as_object).into_iter().flatten()
    }

    fn s<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a str> {
        v.get(key).and_then(Value::as_str).ok_or_else(|| bad(&format!("{path}.{key}"), "expected a string"))
    }

    pub fn pipeline(doc: &Value) -> Result<Pipeline> {
        let mut p = Pipeline::new(s(&doc["pipelineInfo"], "name", "pipelineInfo")?);
        for (label, executor) in obj(&doc["deploymentSpec"], "executors") {
            p.executors.insert(label.clone(), self::executor(executor, &format!("deploymentSpec.executors.{label}"))?);
        }
        for (name, c) in obj(doc, "components") {
            p.components.insert(name.clone(), component(c, &format!("components.{name}"))?);
        }
        p.root = component(&doc["root"], "root")?;
        Ok(p)
    }

    fn component(c: &Value, path: &str) -> Result<Component> {
        let implementation = if let Some(label) = c.get("executorLabel").and_then(Value::as_str) {
            Implementation::Executor(label.to_owned())
        } else {
            Implementation::Dag(dag(&c["dag"], &format!("{path}.dag"))?)
        };
        Ok(Component {
            inputs: interface(&c["inputDefinitions"], &format!("{path}.inputDefinitions"))?,
            outputs: interface(&c["outputDefinitions"], &format!("{path}.outputDefinitions"))?,
            implementation,
        })
    }

    fn interface(v: &Value, path: &str) -> Result<Interface> {
        let mut i = Interface::default();
        for (name, p) in obj(v, "parameters") {
            let ppath = format!("{path}.parameters.{name}");
            let kind = s(p, "parameterType", &ppath)?;
            let ty = ParameterType::from_kfp_str(kind).ok_or_else(|| bad(&ppath, format!("unknown type {kind}")))?;
            i.parameters.insert(
                name.clone(),
                ParameterSpec {
                    ty,
                    default: p.get("defaultValue").cloned(),
                    optional: p["isOptional"].as_bool().unwrap_or(false),
                    description: p["description"].as_str().map(str::to_owned),
                },
            );
        }
        for (name, a) in obj(v, "artifacts") {
            let apath = format!("{path}.artifacts.{name}");
            let t = &a["artifactType"];
            i.artifacts.insert(
                name.clone(),
                ArtifactSpec {
                    ty: ArtifactType {
                        schema_title: s(t, "schemaTitle", &apath)?.to_owned(),
                        schema_version: t["schemaVersion"].as_str().map(str::to_owned),
                    },
                    is_list: a["isArtifactList"].as_bool().unwrap_or(false),
                    optional: a["isOptional"].as_bool().unwrap_or(false),
                    description: a["description"].as_str().map(str::to_owned),
                },
            );
        }
        Ok(i)
    }

    fn executor(e: &Value, path: &str) -> Result<Executor> {
        if let Some(c) = e.get("container") {
            let args = |key: &str| -> Result<Vec<Arg>> {
                let items = c.get(key).and_then(Value::as_array).into_iter().flatten();
                items.enumerate().map(|(i, a)| arg(a, &format!("{path}.container.{key}[{i}]"))).collect()
            };
            let mut env = Vec::new();
            for (i, var) in c.get("env").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let vpath = format!("{path}.container.env[{i}]");
                let value = Template::parse(var["value"].as_str().unwrap_or("")).map_err(|m| bad(&vpath, m))?;
                env.push((s(var, "name", &vpath)?.to_owned(), value));
            }
            let image = s(c, "image", &format!("{path}.container"))?.to_owned();
            let r = &c["resources"];
            let field = |v: &Value, key: &str| -> Result<Option<Template>> {
                let rpath = format!("{path}.container.resources.{key}");
                v.get(key).and_then(Value::as_str).map(|t| Template::parse(t).map_err(|m| bad(&rpath, m))).transpose()
            };
            let resources = Resources {
                cpu_limit: field(r, "resourceCpuLimit")?,
                cpu_request: field(r, "resourceCpuRequest")?,
                memory_limit: field(r, "resourceMemoryLimit")?,
                memory_request: field(r, "resourceMemoryRequest")?,
                accelerator_type: field(&r["accelerator"], "resourceType")?,
                accelerator_count: field(&r["accelerator"], "resourceCount")?,
            };
            let (command, args) = (args("command")?, args("args")?);
            return Ok(Executor::Container(ContainerSpec { image, command, args, env, resources }));
        }
        if let Some(i) = e.get("importer") {
            let uri = &i["artifactUri"];
            let uri = match (uri.get("constant"), uri.get("runtimeParameter")) {
                (Some(c), _) => ImporterUri::Constant(c.as_str().unwrap_or_default().to_owned()),
                (_, Some(p)) => ImporterUri::InputParameter(p.as_str().unwrap_or_default().to_owned()),
                _ => return Err(bad(&format!("{path}.importer.artifactUri"), "expected constant or runtimeParameter")),
            };
            let t = &i["typeSchema"];
            return Ok(Executor::Importer(ImporterSpec {
                uri,
                artifact_type: ArtifactType {
                    schema_title: s(t, "schemaTitle", &format!("{path}.importer.typeSchema"))?.to_owned(),
                    schema_version: t["schemaVersion"].as_str().map(str::to_owned),
                },
                metadata: obj(i, "metadata").map(|(k, v)| (k.clone(), v.clone())).collect(),
                reimport: i["reimport"].as_bool().unwrap_or(false),
            }));
        }
        let kinds: Vec<&String> = e.as_object().into_iter().flatten().map(|(k, _)| k).collect();
        Err(bad(path, format!("expected one of container, importer, resolver, customJob, found {kinds:?}")))
    }

    /// A command-line argument: a template, or a JSON-encoded structured placeholder.
    fn arg(v: &Value, path: &str) -> Result<Arg> {
        let structured;
        let v = match v.as_str() {
            Some(text) if text.starts_with("{\"IfPresent\"") || text.starts_with("{\"Concat\"") => {
                structured = serde_json::from_str::<Value>(text).map_err(|e| bad(path, e.to_string()))?;
                &structured
            }
            Some(text) => return Arg::parse(text).map_err(|m| bad(path, m)),
            None => v,
        };
        let list =
            |v: &Value| -> Result<Vec<Arg>> { v.as_array().into_iter().flatten().map(|a| arg(a, path)).collect() };
        if let Some(p) = v.get("IfPresent") {
            let input = p["InputName"].as_str().unwrap_or_default().to_owned();
            return Ok(Arg::IfPresent { input, then: list(&p["Then"])?, otherwise: list(&p["Else"])? });
        }
        if let Some(parts) = v.get("Concat") {
            return Ok(Arg::Concat(list(parts)?));
        }
        Err(bad(path, format!("unknown structured placeholder {v}")))
    }

    fn selectors(v: &Value, task_key: &str, output_key: &str) -> OutputSelection {
        let one = |s: &Value| {
            OutputRef::new(s[task_key].as_str().unwrap_or_default(), s[output_key].as_str().unwrap_or_default())
        };
        OutputSelection { selectors: v.as_array().map_or_else(|| vec![one(v)], |xs| xs.iter().map(one).collect()) }
    }

    fn dag(d: &Value, path: &str) -> Result<Dag> {
        let mut dag = Dag::default();
        for (name, t) in obj(d, "tasks") {
            dag.tasks.insert(name.clone(), task(t, &format!("{path}.tasks.{name}"))?);
        }
        for (name, o) in obj(&d["outputs"], "parameters") {
            let sel = match (o.get("valueFromParameter"), o.get("valueFromOneof")) {
                (Some(v), _) => selectors(v, "producerSubtask", "outputParameterKey"),
                (_, Some(v)) => selectors(&v["parameterSelectors"], "producerSubtask", "outputParameterKey"),
                _ => return Err(bad(&format!("{path}.outputs.parameters.{name}"), "expected a value source")),
            };
            dag.outputs.parameters.insert(name.clone(), sel);
        }
        for (name, o) in obj(&d["outputs"], "artifacts") {
            dag.outputs
                .artifacts
                .insert(name.clone(), selectors(&o["artifactSelectors"], "producerSubtask", "outputArtifactKey"));
        }
        Ok(dag)
    }

    fn duration(v: &Value) -> Option<Duration> {
        v.as_str()?.strip_suffix('s')?.parse::<f64>().ok().map(Duration::from_secs_f64)
    }

    fn task(t: &Value, path: &str) -> Result<Task> {
        let mut task = Task::new(s(&t["componentRef"], "name", &format!("{path}.componentRef"))?);
        task.display_name = t["taskInfo"]["name"].as_str().map(str::to_owned);
        for (name, i) in obj(&t["inputs"], "parameters") {
            let ipath = format!("{path}.inputs.parameters.{name}");
            let source = if let Some(c) = i.get("runtimeValue") {
                ParameterSource::Constant(c["constant"].clone())
            } else if let Some(from) = i.get("componentInputParameter").and_then(Value::as_str) {
                let selector = match i.get("parameterExpressionSelector").and_then(Value::as_str) {
                    Some(sel) => Some(ItemSelector::parse(sel).map_err(|m| bad(&ipath, m))?),
                    None => None,
                };
                ParameterSource::ComponentInput { name: from.to_owned(), selector }
            } else if let Some(o) = i.get("taskOutputParameter") {
                ParameterSource::TaskOutput(OutputRef::new(
                    s(o, "producerTask", &ipath)?,
                    s(o, "outputParameterKey", &ipath)?,
                ))
            } else if let Some(f) = i.get("taskFinalStatus") {
                ParameterSource::TaskFinalStatus(s(f, "producerTask", &ipath)?.to_owned())
            } else {
                return Err(bad(&ipath, "unknown parameter source"));
            };
            task.parameters.insert(name.clone(), source);
        }
        for (name, i) in obj(&t["inputs"], "artifacts") {
            let ipath = format!("{path}.inputs.artifacts.{name}");
            let source = if let Some(o) = i.get("taskOutputArtifact") {
                ArtifactSource::TaskOutput(OutputRef::new(
                    s(o, "producerTask", &ipath)?,
                    s(o, "outputArtifactKey", &ipath)?,
                ))
            } else {
                ArtifactSource::ComponentInput(s(i, "componentInputArtifact", &ipath)?.to_owned())
            };
            task.artifacts.insert(name.clone(), source);
        }
        task.after =
            t["dependentTasks"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
        let parallelism = t["iteratorPolicy"]["parallelismLimit"].as_u64().map(|n| n as u32);
        if let Some(it) = t.get("parameterIterator") {
            let lpath = format!("{path}.parameterIterator");
            let items = if let Some(raw) = it["items"]["raw"].as_str() {
                let list: Vec<Value> =
                    serde_json::from_str(raw).map_err(|e| bad(&format!("{lpath}.items.raw"), e.to_string()))?;
                LoopItems::Raw(list)
            } else {
                LoopItems::InputParameter(s(&it["items"], "inputParameter", &lpath)?.to_owned())
            };
            task.parallel_for =
                Some(ParallelFor { items, item_input: s(it, "itemInput", &lpath)?.to_owned(), parallelism });
        }
        if let Some(it) = t.get("artifactIterator") {
            let lpath = format!("{path}.artifactIterator");
            let items = LoopItems::InputArtifact(s(&it["items"], "inputArtifact", &lpath)?.to_owned());
            task.parallel_for =
                Some(ParallelFor { items, item_input: s(it, "itemInput", &lpath)?.to_owned(), parallelism });
        }
        if let Some(c) = t["triggerPolicy"]["condition"].as_str() {
            let condition = Condition::parse(c).map_err(|m| bad(&format!("{path}.triggerPolicy.condition"), m))?;
            task.trigger.condition = Some(condition);
        }
        if t["triggerPolicy"]["strategy"].as_str() == Some("ALL_UPSTREAM_TASKS_COMPLETED") {
            task.trigger.strategy = TriggerStrategy::AllUpstreamCompleted;
        }
        if let Some(r) = t.get("retryPolicy") {
            let default = RetryPolicy::default();
            task.retry = Some(RetryPolicy {
                max_retry_count: r["maxRetryCount"].as_u64().map_or(0, |n| n as u32),
                backoff: duration(&r["backoffDuration"]).unwrap_or(default.backoff),
                backoff_factor: r["backoffFactor"].as_f64().unwrap_or(default.backoff_factor),
                backoff_max: duration(&r["backoffMaxDuration"]).unwrap_or(default.backoff_max),
            });
        }
        // KFP: `cachingOptions: {}` (or none) means caching off.
        task.caching = CachingOptions {
            enabled: t["cachingOptions"]["enableCache"].as_bool().unwrap_or(false),
            key: t["cachingOptions"]["cacheKey"].as_str().map(str::to_owned),
        };
        Ok(task)
    }
}
