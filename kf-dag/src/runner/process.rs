//! [`ProcessRunner`]: runs a container executor's command line as a local
//! process (the image is not used: the command must exist on this host).
//!
//! Per attempt it makes a work directory `<work_dir>/<run>/<task…>/attempt-N`
//! holding `inputs/` (input artifacts copied from the artifact store),
//! `outputs/` (files the process writes: output parameters, output artifacts,
//! the executor output JSON), `stdout` and `stderr`. Placeholders in command,
//! args and env are resolved to those paths and to the input values; after a
//! zero exit, output parameters are read from their files, output artifacts
//! are uploaded under the run's prefix, and the captured stdout/stderr are
//! stored beside them (`<run>/<task…>/.logs/attempt-N.{stdout,stderr}`).
//! A non-zero exit fails the attempt with the tail of stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{TaskCall, TaskFailure, TaskRunner};
use crate::ir::{Arg, ArtifactField, Executor, ParameterType, Placeholder, RunField, Segment, Template};
use crate::run::{ArtifactRef, TaskOutputs};

/// Runs container executors as local processes.
///
/// ```
/// let runner = kf_dag::runner::ProcessRunner::new(std::env::temp_dir().join("kf-work"));
/// assert!(runner.work_dir().ends_with("kf-work"));
/// ```
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    work_dir: PathBuf,
}

impl ProcessRunner {
    /// A runner keeping per-attempt work directories under `work_dir`.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        ProcessRunner { work_dir: work_dir.into() }
    }

    /// Where per-attempt work directories go.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
}

/// Files of one attempt.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn input(&self, name: &str, index: usize) -> PathBuf {
        self.dir.join("inputs").join(name).join(index.to_string())
    }
    fn output_artifact(&self, name: &str) -> PathBuf {
        self.dir.join("outputs").join("artifacts").join(name)
    }
    fn output_parameter(&self, name: &str) -> PathBuf {
        self.dir.join("outputs").join("parameters").join(name)
    }
    fn executor_output(&self) -> PathBuf {
        self.dir.join("outputs").join("executor_output.json")
    }
}

pub(super) fn io_failure(what: &str, path: &Path, e: std::io::Error) -> TaskFailure {
    TaskFailure::new(format!("{what} {}: {e}", path.display()))
}

/// `<work_dir>/<run>/<task…>/attempt-N`: one attempt's work directory.
/// Names were checked to be safe path segments when the plan was made.
pub(super) fn attempt_dir(work_dir: &Path, call: &TaskCall) -> PathBuf {
    let mut dir = work_dir.join(&*call.run);
    for segment in &call.segments {
        dir.push(segment);
    }
    dir.push(format!("attempt-{}", call.attempt));
    dir
}

/// Stores an attempt's captured stdout and stderr as
/// `<run>/<task…>/.logs/attempt-N.{stdout,stderr}` (when there is an artifact store).
pub(super) async fn store_logs(call: &TaskCall, stdout: &Path, stderr: &Path) -> Result<(), TaskFailure> {
    if call.artifact_store.is_none() {
        return Ok(());
    }
    let logs_dir = [call.segments.as_slice(), &[".logs".to_owned()]].concat();
    for (stream, path) in [("stdout", stdout), ("stderr", stderr)] {
        let bytes = tokio::fs::read(path).await.map_err(|e| io_failure("cannot read", path, e))?;
        let log = TaskCall { segments: logs_dir.clone(), ..call.clone() };
        log.write_artifact(&format!("attempt-{}.{stream}", call.attempt), Bytes::from(bytes)).await?;
    }
    Ok(())
}

/// The failure of a process that ended badly (`how`: `exit code 1`, …),
/// with the tail of its stderr.
pub(super) fn exit_failure(program: &str, how: &str, stderr: &Path) -> TaskFailure {
    let stderr = std::fs::read(stderr).unwrap_or_default();
    let tail = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(2_000)..]).trim().to_owned();
    TaskFailure::new(format!("{program} ended with {how}; stderr: {tail}"))
}

#[async_trait]
impl TaskRunner for ProcessRunner {
    async fn run(&self, call: TaskCall) -> Result<TaskOutputs, TaskFailure> {
        let Some(Executor::Container(container)) = call.executor() else {
            return Err(TaskFailure::permanent("the process runner only runs container executors"));
        };
        let Some(component) = call.component() else {
            return Err(TaskFailure::permanent(format!("component {:?} is not in the plan", call.component)));
        };
        let layout = Layout { dir: attempt_dir(&self.work_dir, &call) };
        for sub in ["inputs", "outputs/artifacts", "outputs/parameters"] {
            let path = layout.dir.join(sub);
            tokio::fs::create_dir_all(&path).await.map_err(|e| io_failure("cannot create", &path, e))?;
        }

        let mut staged: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for (name, refs) in &call.artifacts {
            let mut paths = Vec::new();
            for (i, artifact) in refs.iter().enumerate() {
                let path = layout.input(name, i);
                let bytes = call.read(artifact).await?;
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| io_failure("cannot create", parent, e))?;
                }
                tokio::fs::write(&path, &bytes).await.map_err(|e| io_failure("cannot write", &path, e))?;
                paths.push(path);
            }
            staged.insert(name.clone(), paths);
        }

        let resolver = Resolver { call: &call, layout: &layout, staged: &staged, outputs: &component.outputs };
        let mut argv = Vec::new();
        for arg in container.command.iter().chain(&container.args) {
            resolver.arg(arg, &mut argv)?;
        }
        let Some((program, args)) = argv.split_first() else {
            return Err(TaskFailure::permanent("the container has no command: a local process needs one"));
        };
        let mut command = tokio::process::Command::new(program);
        command.args(args).current_dir(&layout.dir).stdin(Stdio::null()).kill_on_drop(true);
        for (name, value) in &container.env {
            command.env(name, resolver.template(value)?);
        }
        let (stdout_path, stderr_path) = (layout.dir.join("stdout"), layout.dir.join("stderr"));
        let stdout = std::fs::File::create(&stdout_path).map_err(|e| io_failure("cannot create", &stdout_path, e))?;
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| io_failure("cannot create", &stderr_path, e))?;
        command.stdout(stdout).stderr(stderr);
        let mut child = command.spawn().map_err(|e| TaskFailure::new(format!("cannot start {program:?}: {e}")))?;
        let status = child.wait().await.map_err(|e| TaskFailure::new(format!("waiting for {program:?}: {e}")))?;

        store_logs(&call, &stdout_path, &stderr_path).await?;
        if !status.success() {
            let code = status.code().map_or("a signal".to_owned(), |c| format!("exit code {c}"));
            return Err(exit_failure(program, &code, &stderr_path));
        }

        let executor_output: Option<Value> =
            tokio::fs::read(layout.executor_output()).await.ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let mut outputs = TaskOutputs::default();
        for (name, spec) in &component.outputs.parameters {
            let path = layout.output_parameter(name);
            let value = match tokio::fs::read_to_string(&path).await {
                Ok(text) => parse_output(spec.ty, &text)
                    .map_err(|e| TaskFailure::new(format!("output parameter {name:?} in {}: {e}", path.display())))?,
                Err(_) => match executor_output.as_ref().and_then(|o| o.pointer(&format!("/parameterValues/{name}"))) {
                    Some(value) => value.clone(),
                    None => {
                        return Err(TaskFailure::new(format!(
                            "output parameter {name:?}: the process did not write {}",
                            path.display()
                        )));
                    }
                },
            };
            outputs.parameters.insert(name.clone(), value);
        }
        for name in component.outputs.artifacts.keys() {
            let path = layout.output_artifact(name);
            let bytes = tokio::fs::read(&path).await.map_err(|e| {
                TaskFailure::new(format!("output artifact {name:?}: cannot read {}: {e}", path.display()))
            })?;
            let artifact = call.write_artifact(name, Bytes::from(bytes)).await?;
            outputs.artifacts.insert(name.clone(), vec![artifact]);
        }
        Ok(outputs)
    }
}

/// Reads an output parameter file: strings as written, other types as JSON
/// (or the command-line forms `ParameterType::parse_text` accepts).
fn parse_output(ty: ParameterType, text: &str) -> Result<Value, String> {
    match ty {
        ParameterType::String => Ok(Value::String(text.to_owned())),
        _ => ty.parse_text(text.trim()),
    }
}

/// Resolves placeholders for one attempt.
struct Resolver<'a> {
    call: &'a TaskCall,
    layout: &'a Layout,
    staged: &'a BTreeMap<String, Vec<PathBuf>>,
    outputs: &'a crate::ir::Interface,
}

impl Resolver<'_> {
    /// Appends the arguments `arg` expands to (`IfPresent` may give none or several).
    fn arg(&self, arg: &Arg, out: &mut Vec<String>) -> Result<(), TaskFailure> {
        enum Work<'a> {
            Expand(&'a Arg),
            /// Join everything pushed since `out` had this length into one argument.
            Join(usize),
        }
        // Explicit stack, no recursion: hostile specs may nest structured placeholders deeply.
        let mut stack = vec![Work::Expand(arg)];
        while let Some(work) = stack.pop() {
            match work {
                Work::Join(start) => {
                    let joined = out.drain(start..).collect::<Vec<_>>().concat();
                    out.push(joined);
                }
                Work::Expand(Arg::Template(t)) => out.push(self.template(t)?),
                Work::Expand(Arg::IfPresent { input, then, otherwise }) => {
                    let present = self.call.parameters.contains_key(input) || self.call.artifacts.contains_key(input);
                    stack.extend(if present { then } else { otherwise }.iter().rev().map(Work::Expand));
                }
                Work::Expand(Arg::Concat(parts)) => {
                    stack.push(Work::Join(out.len()));
                    stack.extend(parts.iter().rev().map(Work::Expand));
                }
            }
        }
        Ok(())
    }

    fn template(&self, template: &Template) -> Result<String, TaskFailure> {
        let mut s = String::new();
        for segment in template.segments() {
            match segment {
                Segment::Text(t) => s.push_str(t),
                Segment::Placeholder(p) => s.push_str(&self.placeholder(p)?),
            }
        }
        Ok(s)
    }

    fn placeholder(&self, p: &Placeholder) -> Result<String, TaskFailure> {
        let call = self.call;
        let missing = |what: &str, name: &str| TaskFailure::permanent(format!("{p}: {what} {name:?} is not given"));
        Ok(match p {
            Placeholder::InputParameter(name) => match call.parameters.get(name) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                // An optional input without a value reads as empty, as in KFP.
                None => String::new(),
            },
            Placeholder::InputArtifact { name, field } => {
                let artifact = call.artifacts.get(name).and_then(|a| a.first());
                match field {
                    ArtifactField::Uri => artifact.ok_or_else(|| missing("input artifact", name))?.uri.clone(),
                    ArtifactField::Path => self
                        .staged
                        .get(name)
                        .and_then(|p| p.first())
                        .ok_or_else(|| missing("input artifact", name))?
                        .display()
                        .to_string(),
                    ArtifactField::Metadata => {
                        serde_json::to_string(&artifact.ok_or_else(|| missing("input artifact", name))?.metadata)
                            .unwrap_or_default()
                    }
                }
            }
            Placeholder::OutputParameterFile(name) => self.layout.output_parameter(name).display().to_string(),
            Placeholder::OutputArtifact { name, field } => match field {
                ArtifactField::Path => self.layout.output_artifact(name).display().to_string(),
                ArtifactField::Uri => self.output_uri(name)?,
                ArtifactField::Metadata => "{}".to_owned(),
            },
            Placeholder::ExecutorOutputFile => self.layout.executor_output().display().to_string(),
            Placeholder::ExecutorInput => self.executor_input()?.to_string(),
            Placeholder::Run(field) => match field {
                RunField::TaskName => call.task.clone(),
                RunField::TaskUuid => format!("{}/{}", call.run, call.task),
                RunField::PipelineRoot => call.artifact_store.as_ref().map(|s| s.root_uri()).unwrap_or_default(),
                RunField::JobCreateTimeUtc | RunField::JobScheduleTimeUtc => String::new(),
                _ => call.run.to_string(),
            },
        })
    }

    fn output_uri(&self, name: &str) -> Result<String, TaskFailure> {
        let store = self.call.artifact_store.as_ref().ok_or_else(|| {
            TaskFailure::permanent(format!("output artifact {name:?}: the executor has no artifact store"))
        })?;
        let path = store
            .location(&self.call.run, &self.call.segments, name)
            .map_err(|e| TaskFailure::permanent(e.to_string()))?;
        Ok(store.uri(&path))
    }

    /// KFP's ExecutorInput JSON (`{{$}}`).
    fn executor_input(&self) -> Result<Value, TaskFailure> {
        let artifact_json = |a: &ArtifactRef| json!({"uri": a.uri, "metadata": a.metadata});
        let inputs_artifacts: serde_json::Map<String, Value> = self
            .call
            .artifacts
            .iter()
            .map(|(name, refs)| {
                (name.clone(), json!({"artifacts": refs.iter().map(artifact_json).collect::<Vec<_>>()}))
            })
            .collect();
        let mut output_artifacts = serde_json::Map::new();
        for name in self.outputs.artifacts.keys() {
            output_artifacts
                .insert(name.clone(), json!({"artifacts": [{"uri": self.output_uri(name)?, "metadata": {}}]}));
        }
        let output_parameters: serde_json::Map<String, Value> = self
            .outputs
            .parameters
            .keys()
            .map(|name| (name.clone(), json!({"outputFile": self.layout.output_parameter(name).display().to_string()})))
            .collect();
        Ok(json!({
            "inputs": {"parameterValues": self.call.parameters, "artifacts": inputs_artifacts},
            "outputs": {
                "parameters": output_parameters,
                "artifacts": output_artifacts,
                "outputFile": self.layout.executor_output().display().to_string(),
            },
        }))
    }
}
