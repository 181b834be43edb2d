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
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&dir)
            .env("KATIB_TRIAL_NAME", &trial.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            command.env(k, substitute(v, &trial.trial_parameters)?);
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
        let mut log = tokio::fs::File::create(dir.join("output.log")).await.map_err(|e| format!("output.log: {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_container_is_found_in_any_job_kind() {
        let job = serde_json::json!({"spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {"containers": [
            {"name": "sidecar", "command": ["a"]}, {"name": "pytorch", "command": ["b"]}]}}}}}});
        assert_eq!(find_container(&job, Some("pytorch")).unwrap()["command"][0], "b");
        assert_eq!(find_container(&job, None).unwrap()["command"][0], "a");
        assert!(find_container(&job, Some("missing")).is_none());
    }
}
