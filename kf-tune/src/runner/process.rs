//! Trials as local processes: Katib's trial template, run on this machine.
//!
//! [`ProcessRunner::from_katib`] takes the primary container of
//! `trialTemplate.trialSpec` (the one named `primaryContainerName`, else the
//! first container found) and runs its `command` + `args` with its literal
//! `env`, after substituting `${trialParameters.<name>}` in every string, as
//! Katib's controller does in the trial's manifest. Each trial runs in its own
//! directory (`<workdir>/<trial name>`), where its output is also kept in
//! `output.log`.
//!
//! Metrics come from the collector Katib's spec names: `StdOut` (default)
//! reads every line of stdout and stderr as it is written, so early stopping
//! can act while the trial runs; `File` reads the metrics file (relative paths
//! are inside the trial's directory) once the trial exits; `Push` gives the
//! trial `KF_TUNE_PUSH_URL` and its own `KF_TUNE_PUSH_TOKEN` to POST its
//! metrics to (see [`crate::push`] for the wire format; its output is kept
//! in `output.log` but not parsed); `None` collects nothing. Other kinds (TensorFlowEvent, PrometheusMetric, Custom) need a
//! cluster and are rejected. A stopped trial's process is killed.
//!
//! Checkpoints (PBT, Hyperband promotions): every trial gets
//! `<workdir>/<trial>/checkpoint/`, named by `KF_TUNE_CHECKPOINT_DIR`
//! (absolute), to save into. A trial whose suggestion names a parent starts
//! with a copy of the parent's `checkpoint/` there (a copy, not links, so the
//! child cannot change the parent's files) and `KF_TUNE_PARENT_TRIAL` set to
//! the parent's name; any other trial starts with it empty. A trial started
//! again after a crash starts again from the same copy. This is what Katib's
//! PBT service does with `suggestion_trial_dir/<trial>` (it copies the
//! parent's directory when it makes the suggestion), in the trial's own
//! directory instead of a shared volume.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::push::PushServer;
use super::{MetricsSink, TrialRun, TrialRunner};
use crate::experiment::{find_container, substitute};
use crate::katib::Experiment;
use crate::metrics::{JsonLinesMetrics, MetricsCollector, TextMetrics};
use crate::push;
use crate::{Error, Result};

/// The directory inside a trial's directory that holds its checkpoint.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// The file in a trial's directory (`<workdir>/<trial>`) that holds its
/// output, standard output and error interleaved, each line as printed.
pub const OUTPUT_LOG: &str = "output.log";
/// The environment variable naming the trial's checkpoint directory (absolute).
pub const CHECKPOINT_ENV: &str = "KF_TUNE_CHECKPOINT_DIR";
/// The environment variable naming the trial it starts from, when it has a parent.
pub const PARENT_ENV: &str = "KF_TUNE_PARENT_TRIAL";

/// Lines of output kept for a failed trial's message.
const TAIL_LINES: usize = 5;

/// Where a trial's metrics are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsSource {
    /// Every line the process writes to stdout or stderr, as it is written.
    Output,
    /// A file the trial writes, read when it exits; relative to the trial's directory.
    File(PathBuf),
    /// The trial pushes its metrics over HTTP to the runner's [`PushServer`].
    Push,
    /// Nothing is collected (the trial pushes its metrics some other way).
    None,
}

/// Runs each trial as a local process.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Arc;
/// use kf_tune::metrics::TextMetrics;
/// use kf_tune::runner::process::{MetricsSource, ProcessRunner};
///
/// let runner = ProcessRunner {
///     command: vec!["sh".into(), "-c".into(), "echo loss=${trialParameters.lr}".into()],
///     env: Vec::new(),
///     workdir: std::env::temp_dir(),
///     source: MetricsSource::Output,
///     collector: Arc::new(TextMetrics::katib_default()),
///     push: None,
/// };
/// let params = BTreeMap::from([("lr".to_owned(), "0.1".to_owned())]);
/// assert_eq!(runner.substitute(&params)?, ["sh", "-c", "echo loss=0.1"]);
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct ProcessRunner {
    /// The program and its arguments, with `${trialParameters.x}` placeholders.
    pub command: Vec<String>,
    /// Environment variables to set, with placeholders.
    pub env: Vec<(String, String)>,
    /// The directory under which each trial gets its own directory.
    pub workdir: PathBuf,
    /// Where metrics are read.
    pub source: MetricsSource,
    /// How metrics are parsed.
    pub collector: Arc<dyn MetricsCollector>,
    /// The endpoint trials push to; needed with [`MetricsSource::Push`].
    pub push: Option<PushServer>,
}

impl std::fmt::Debug for ProcessRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRunner")
            .field("command", &self.command)
            .field("workdir", &self.workdir)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ProcessRunner {
    /// The runner a Katib Experiment describes; trials run under `workdir`.
    /// Errors name the field: no container with a command, or a collector that
    /// cannot run locally.
    pub fn from_katib(experiment: &Experiment, workdir: &Path) -> Result<Self> {
        let invalid = |path: &str, message: String| Error::Invalid { path: path.into(), message };
        let spec = experiment.spec.as_ref().ok_or_else(|| invalid("spec", "an Experiment needs a spec".into()))?;
        let template = spec.trial_template.as_ref();
        let primary = template.and_then(|t| t.primary_container_name.as_deref());
        let trial_spec = template.and_then(|t| t.trial_spec.as_ref()).ok_or_else(|| {
            invalid("spec.trialTemplate.trialSpec", "a local run needs the trial spec inline (not a ConfigMap)".into())
        })?;
        let container = find_container(trial_spec, primary).ok_or_else(|| {
            invalid(
                "spec.trialTemplate.trialSpec",
                match primary {
                    Some(name) => format!("expected a container named {name:?} (primaryContainerName), found none"),
                    None => "expected a pod template with a container, found none".into(),
                },
            )
        })?;
        let strings = |key: &str| -> Vec<String> {
            container
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let command: Vec<String> = strings("command").into_iter().chain(strings("args")).collect();
        if command.is_empty() {
            return Err(invalid(
                "spec.trialTemplate.trialSpec",
                "expected the primary container to have a command or args, found neither".into(),
            ));
        }
        let env = container
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e.get("name")?.as_str()?.to_owned(), e.get("value")?.as_str()?.to_owned())))
            .collect();
        let collector_spec = spec.metrics_collector_spec.as_ref();
        let kind =
            collector_spec.and_then(|c| c.collector.as_ref()).and_then(|c| c.kind.as_deref()).unwrap_or("StdOut");
        let source_spec = collector_spec.and_then(|c| c.source.as_ref());
        let formats = source_spec.and_then(|s| s.filter.as_ref()).and_then(|f| f.metrics_format.as_deref());
        let text = || TextMetrics::from_formats(formats.unwrap_or_default());
        let (source, collector): (MetricsSource, Arc<dyn MetricsCollector>) = match kind {
            "StdOut" => (MetricsSource::Output, Arc::new(text()?)),
            "File" => {
                let fs = source_spec.and_then(|s| s.file_system_path.as_ref());
                let path = fs.and_then(|f| f.path.clone()).unwrap_or_else(|| "metrics.log".into());
                let collector: Arc<dyn MetricsCollector> = match fs.and_then(|f| f.format.as_deref()) {
                    Some("JSON") => Arc::new(JsonLinesMetrics),
                    _ => Arc::new(text()?),
                };
                (MetricsSource::File(path.into()), collector)
            }
            "None" => (MetricsSource::None, Arc::new(TextMetrics::katib_default())),
            "Push" => (MetricsSource::Push, Arc::new(TextMetrics::katib_default())),
            other => {
                return Err(invalid(
                    "spec.metricsCollectorSpec.collector.kind",
                    format!("a local run collects StdOut, File, Push or None, found {other:?}"),
                ));
            }
        };
        let push = if source == MetricsSource::Push { Some(PushServer::bind()?) } else { None };
        Ok(ProcessRunner { command, env, workdir: workdir.to_owned(), source, collector, push })
    }

    /// The command with every `${trialParameters.x}` replaced; an unknown
    /// name is an error naming it. O(length of the command).
    pub fn substitute(&self, values: &BTreeMap<String, String>) -> std::result::Result<Vec<String>, String> {
        self.command.iter().map(|s| substitute(s, values)).collect()
    }
}

#[async_trait::async_trait]
impl TrialRunner for ProcessRunner {
    async fn run(&self, trial: &TrialRun, metrics: &MetricsSink) -> std::result::Result<(), String> {
        let argv = self.substitute(&trial.trial_parameters)?;
        let (program, args) = argv.split_first().ok_or("the trial command is empty")?;
        let dir = self.workdir.join(&trial.name);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let checkpoint = std::path::absolute(dir.join(CHECKPOINT_DIR)).map_err(|e| format!("checkpoint: {e}"))?;
        let from = trial.parent.as_ref().map(|p| self.workdir.join(p).join(CHECKPOINT_DIR));
        let to = checkpoint.clone();
        tokio::task::spawn_blocking(move || prepare_checkpoint(&to, from.as_deref()))
            .await
            .map_err(|e| format!("the checkpoint copy stopped: {e}"))??;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&dir)
            .env("KATIB_TRIAL_NAME", &trial.name)
            .env(CHECKPOINT_ENV, &checkpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            command.env(k, substitute(v, &trial.trial_parameters)?);
        }
        if let Some(parent) = &trial.parent {
            command.env(PARENT_ENV, parent);
        }
        // Held until the trial ends: its token stops working with it.
        let _grant = match (&self.source, &self.push) {
            (MetricsSource::Push, Some(server)) => {
                let grant = server.grant(metrics.clone()).map_err(|e| e.to_string())?;
                command.env(push::URL_ENV, server.url()).env(push::TOKEN_ENV, grant.token());
                Some(grant)
            }
            (MetricsSource::Push, None) => {
                return Err("the Push collector needs a push endpoint (ProcessRunner::push)".into());
            }
            _ => None,
        };
        let mut child = command.spawn().map_err(|e| format!("cannot start {program:?}: {e}"))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err("the trial's output pipes are missing".into());
        };
        let mut log = tokio::fs::File::create(dir.join(OUTPUT_LOG)).await.map_err(|e| format!("{OUTPUT_LOG}: {e}"))?;
        let mut out = BufReader::new(stdout).lines();
        let mut err = BufReader::new(stderr).lines();
        let (mut out_open, mut err_open) = (true, true);
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES + 1);
        let mut stopped = false;
        while out_open || err_open {
            let next = tokio::select! {
                line = out.next_line(), if out_open => (line, true),
                line = err.next_line(), if err_open => (line, false),
                () = metrics.stopped() => {
                    stopped = true;
                    break;
                }
            };
            let line = match next {
                (Ok(Some(line)), _) => line,
                (Ok(None), from_stdout) => {
                    if from_stdout {
                        out_open = false
                    } else {
                        err_open = false
                    }
                    continue;
                }
                (Err(e), _) => return Err(format!("cannot read the trial's output: {e}")),
            };
            let _ = log.write_all(format!("{line}\n").as_bytes()).await;
            if self.source == MetricsSource::Output {
                for (name, value) in self.collector.collect(&line) {
                    metrics.report(&name, value);
                }
            }
            tail.push_back(line);
            if tail.len() > TAIL_LINES {
                tail.pop_front();
            }
        }
        if stopped {
            let _ = child.kill().await;
            return Ok(());
        }
        let status = child.wait().await.map_err(|e| format!("cannot wait for the trial: {e}"))?;
        if let MetricsSource::File(path) = &self.source {
            let path = dir.join(path);
            if let Ok(text) = tokio::fs::read_to_string(&path).await {
                for (name, value) in self.collector.collect(&text) {
                    metrics.report(&name, value);
                }
            }
        }
        if status.success() {
            Ok(())
        } else {
            let tail: Vec<String> = tail.into_iter().collect();
            Err(format!("{status}; last output: {}", if tail.is_empty() { "(none)".into() } else { tail.join(" | ") }))
        }
    }
}

/// Makes `to` a fresh copy of the checkpoint directory `from` (empty when
/// there is no parent, or the parent saved nothing). Whatever `to` held is
/// removed first. O(size of the checkpoint).
fn prepare_checkpoint(to: &Path, from: Option<&Path>) -> std::result::Result<(), String> {
    let fail = |what: &Path, err: std::io::Error| format!("checkpoint {}: {err}", what.display());
    if to.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(to).map_err(|e| fail(to, e))?;
    }
    match from.filter(|f| f.is_dir()) {
        Some(from) => copy_tree(from, to).map_err(|e| fail(from, e)),
        None => std::fs::create_dir_all(to).map_err(|e| fail(to, e)),
    }
}

/// Copies the directory `from` to `to`, recreating symbolic links as links
/// (never following them, so a link cycle cannot loop).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_starts_from_a_copy_of_its_parents_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("p/checkpoint");
        std::fs::create_dir_all(parent.join("sub")).unwrap();
        std::fs::write(parent.join("counter"), "1").unwrap();
        std::fs::write(parent.join("sub/weights"), "w").unwrap();
        let child = dir.path().join("c/checkpoint");
        std::fs::create_dir_all(&child).unwrap();
        std::fs::write(child.join("stale"), "from a run before a crash").unwrap();
        prepare_checkpoint(&child, Some(&parent)).unwrap();
        assert_eq!(std::fs::read_to_string(child.join("counter")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(child.join("sub/weights")).unwrap(), "w");
        assert!(!child.join("stale").exists(), "a restarted trial starts from its parent's checkpoint again");
        std::fs::write(child.join("counter"), "2").unwrap();
        assert_eq!(std::fs::read_to_string(parent.join("counter")).unwrap(), "1", "a copy, not a link");
        // No parent, or a parent that saved nothing: an empty directory.
        let orphan = dir.path().join("o/checkpoint");
        prepare_checkpoint(&orphan, None).unwrap();
        prepare_checkpoint(&child, Some(&dir.path().join("missing/checkpoint"))).unwrap();
        assert_eq!(std::fs::read_dir(&orphan).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&child).unwrap().count(), 0);
    }

    #[test]
    fn the_primary_container_is_found_in_any_job_kind() {
        let job = serde_json::json!({"spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {"containers": [
            {"name": "sidecar", "command": ["a"]}, {"name": "pytorch", "command": ["b"]}]}}}}}});
        assert_eq!(find_container(&job, Some("pytorch")).unwrap()["command"][0], "b");
        assert_eq!(find_container(&job, None).unwrap()["command"][0], "a");
        assert!(find_container(&job, Some("missing")).is_none());
    }
}
