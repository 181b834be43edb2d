//! [`LocalBackend`]: the IO around the pure core — fetch, spawn, stream,
//! supervise, kill, write status.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use super::processes::{ProcessSpec, Workspace, processes};
use super::tracker::{JobTracker, Outcome};
use crate::launch::{self, Network, Role, STORAGE_URI_ENV};
use crate::trainjob::{TrainJob, TrainJobStatus};
use crate::{Error, Result, TrainingRuntime};

/// How a local run is set up.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The run's workspace directory (created): dataset, model, logs, files,
    /// and `trainjob.json` with the status.
    pub workspace: PathBuf,
    /// The address every node uses; processes rendezvous on a free port of it.
    pub host: String,
    /// Namespace the processes see (`metadata.namespace` in the downward API).
    pub namespace: String,
    /// Working directory of the processes (default: the caller's).
    pub working_dir: Option<PathBuf>,
    /// Time between SIGTERM and SIGKILL when processes are stopped.
    pub kill_grace: Duration,
}

impl LocalOptions {
    /// Defaults for a workspace: 127.0.0.1, namespace `default`, the
    /// caller's working directory, 5 s grace.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        LocalOptions {
            workspace: workspace.into(),
            host: "127.0.0.1".into(),
            namespace: "default".into(),
            working_dir: None,
            kill_grace: Duration::from_secs(5),
        }
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What happens during a run, in order, for progress displays.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LocalEvent {
    /// An initializer copied its `storageUri` into the workspace.
    Fetched {
        /// `dataset-initializer` or `model-initializer`.
        replicated_job: String,
        /// Where from.
        uri: String,
        /// Where to.
        into: PathBuf,
        /// Files copied.
        files: usize,
        /// Bytes copied.
        bytes: u64,
    },
    /// A process started.
    Started {
        /// Its label (`rank 3`, `launcher-0-0`).
        process: String,
        /// Its pid (also its process group).
        pid: u32,
    },
    /// A line a process printed.
    Line {
        /// Its label.
        process: String,
        /// Which stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// A process ended (`code` is `None` after a signal).
    Exited {
        /// Its label.
        process: String,
        /// Exit code.
        code: Option<i32>,
    },
    /// The TrainJob status changed (a transition, or new trainer metrics).
    Status(Box<TrainJobStatus>),
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct LocalRun {
    /// How it ended.
    pub outcome: Outcome,
    /// The TrainJob with its final status (also in the workspace's `trainjob.json`).
    pub job: TrainJob,
    /// The workspace.
    pub workspace: Workspace,
}

/// Runs TrainJobs as local processes.
///
/// Every process gets its own process group, so stopping the job (a rank
/// failed, the deadline passed, the caller cancelled) stops whatever the
/// process started too: SIGTERM to each group, SIGKILL after the grace
/// period. Groups still alive when the run returns are killed.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    options: LocalOptions,
}

enum Message {
    Line(usize, Stream, String),
    StreamClosed,
    Exited(usize, Option<i32>),
}

impl LocalBackend {
    /// A backend with these options.
    pub fn new(options: LocalOptions) -> Self {
        LocalBackend { options }
    }

    /// Resolves `job` against `runtime`, runs the initializers, then every
    /// process, until all succeed, one fails, `activeDeadlineSeconds`
    /// passes or `cancel` completes. Plan errors and an unwritable
    /// workspace are errors; how the job itself went is in the returned
    /// [`LocalRun::outcome`]. `on_event` sees every step as it happens.
    pub async fn run(
        &self,
        job: &TrainJob,
        runtime: &TrainingRuntime,
        mut on_event: impl FnMut(LocalEvent),
        cancel: impl Future<Output = ()>,
    ) -> Result<LocalRun> {
        let workspace = Workspace::new(&self.options.workspace);
        let mut tracker = JobTracker::new(now());
        let mut job = job.clone();
        create_dir(workspace.root())?;
        if job.suspended() {
            tracker.suspend(&now());
            return finish(&workspace, &mut job, &tracker, &mut on_event);
        }
        let port = free_port(&self.options.host)?;
        let plan = launch::plan(&job, runtime, &Network::Local { host: self.options.host.clone(), port })?;
        let specs = processes(&plan, &workspace, &self.options.namespace)?;
        create_dir(&workspace.root().join("logs"))?;

        let initializers: Vec<_> = plan
            .pods
            .iter()
            .filter(|p| matches!(p.role, Role::DatasetInitializer | Role::ModelInitializer))
            .map(|p| {
                let id = tracker.add_task(&p.replicated_job, p.job_index, &p.replicated_job, false);
                let dest = if p.role == Role::DatasetInitializer { workspace.dataset() } else { workspace.model() };
                (id, p.replicated_job.clone(), p.container.env_value(STORAGE_URI_ENV).map(str::to_string), dest)
            })
            .collect();
        let reporter = specs.iter().position(|s| s.rank == Some(0) || s.node_rank == Some(0)).unwrap_or(0);
        let ids: Vec<usize> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| tracker.add_task(&s.replicated_job, s.job_index, &s.label(), i == reporter))
            .collect();
        job.status = Some(tracker.status());
        write_status(&workspace, &job)?;

        let started = Instant::now();
        let deadline = plan.active_deadline_seconds.map(|s| (s, started + Duration::from_secs(s.max(0) as u64)));
        let deadline_sleep = async {
            match deadline {
                Some((_, at)) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline_sleep, cancel);

        // Phase 1: the initializers, one after the other, before any node.
        for (id, rjob, uri, dest) in initializers {
            tracker.start(id);
            let Some(uri) = uri else {
                tracker.exited(id, Some(0), &now());
                continue;
            };
            tokio::select! {
                fetched = super::storage::fetch(&uri, &dest) => match fetched {
                    Ok((files, bytes)) => {
                        on_event(LocalEvent::Fetched { replicated_job: rjob, uri, into: dest, files, bytes });
                        tracker.exited(id, Some(0), &now());
                    }
                    Err(e) => tracker.fail(id, e.to_string(), &now()),
                },
                () = &mut deadline_sleep => tracker.deadline_exceeded(deadline.map_or(0, |d| d.0), &now()),
                () = &mut cancel => tracker.cancel("stopped while initializing", &now()),
            }
            if tracker.outcome().is_some() {
                return finish(&workspace, &mut job, &tracker, &mut on_event);
            }
        }

        // Phase 2: every process at once.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut groups: Vec<Option<Pid>> = vec![None; specs.len()];
        let mut logs: Vec<Option<std::io::BufWriter<std::fs::File>>> = Vec::with_capacity(specs.len());
        let mut open_streams = 0usize;
        for (i, spec) in specs.iter().enumerate() {
            logs.push(std::fs::File::create(workspace.log(&spec.name)).ok().map(std::io::BufWriter::new));
            match self.spawn(spec, i, &tx) {
                Ok((pid, streams)) => {
                    tracker.start(ids[i]);
                    open_streams += streams;
                    groups[i] = i32::try_from(pid).ok().map(Pid::from_raw);
                    on_event(LocalEvent::Started { process: spec.label(), pid });
                }
                Err(e) => tracker.fail(ids[i], e.to_string(), &now()),
            }
            if tracker.outcome().is_some() {
                break;
            }
        }
        drop(tx);
        publish(&workspace, &mut job, &tracker, &mut on_event)?;

        let mut stopping_since: Option<Instant> = None;
        let mut escalated = false;
        let mut last_status_write = Instant::now();
        let mut dirty = false;
        loop {
            if tracker.outcome().is_some() && stopping_since.is_none() {
                stopping_since = Some(Instant::now());
                signal_all(&groups, &tracker.to_kill(), &ids, Signal::SIGTERM);
                publish(&workspace, &mut job, &tracker, &mut on_event)?;
            }
            if tracker.all_over()
                && (open_streams == 0 || stopping_since.is_some_and(|t| t.elapsed() > self.options.kill_grace))
            {
                break;
            }
            let escalate_at = stopping_since.map(|t| t + self.options.kill_grace);
            let escalate = async {
                match escalate_at {
                    Some(at) if !escalated => tokio::time::sleep_until(at.into()).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Message::Line(i, stream, line)) => {
                        if let Some(Some(log)) = logs.get_mut(i) {
                            let _ = writeln!(log, "{line}");
                        }
                        tracker.observe(ids[i], &line, &now(), started.elapsed().as_secs_f64());
                        dirty = true;
                        on_event(LocalEvent::Line { process: specs[i].label(), stream, line });
                    }
                    Some(Message::StreamClosed) => open_streams = open_streams.saturating_sub(1),
                    Some(Message::Exited(i, code)) => {
                        tracker.exited(ids[i], code, &now());
                        on_event(LocalEvent::Exited { process: specs[i].label(), code });
                        publish(&workspace, &mut job, &tracker, &mut on_event)?;
                    }
                    None => open_streams = 0,
                },
                () = &mut deadline_sleep, if tracker.outcome().is_none() => {
                    tracker.deadline_exceeded(deadline.map_or(0, |d| d.0), &now());
                }
                () = &mut cancel, if tracker.outcome().is_none() => tracker.cancel("stopped by the caller", &now()),
                () = escalate => {
                    escalated = true;
                    signal_all(&groups, &tracker.to_kill(), &ids, Signal::SIGKILL);
                }
            }
            if dirty && last_status_write.elapsed() > Duration::from_secs(1) {
                dirty = false;
                last_status_write = Instant::now();
                publish(&workspace, &mut job, &tracker, &mut on_event)?;
            }
        }
        // Nothing outlives the job: whatever the processes left behind in
        // their groups goes too.
        for group in groups.iter().flatten() {
            let _ = killpg(*group, Signal::SIGKILL);
        }
        for log in logs.iter_mut().flatten() {
            let _ = log.flush();
        }
        finish(&workspace, &mut job, &tracker, &mut on_event)
    }

    /// Starts one process in its own process group; its output and exit go
    /// to `tx`. Returns its pid and the number of streams to wait for.
    fn spawn(&self, spec: &ProcessSpec, index: usize, tx: &mpsc::UnboundedSender<Message>) -> Result<(u32, usize)> {
        let fail = |message: String| Error::Process { process: spec.label(), message };
        for (path, contents) in &spec.files {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
            }
            std::fs::write(path, contents).map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
        }
        let mut command = tokio::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.options.working_dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|e| fail(format!("cannot start {:?}: {e}", spec.program)))?;
        let pid = child.id().ok_or_else(|| fail("exited before its pid was read".into()))?;
        let mut streams = 0;
        if let Some(out) = child.stdout.take() {
            streams += 1;
            tokio::spawn(forward(out, index, Stream::Stdout, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            streams += 1;
            tokio::spawn(forward(err, index, Stream::Stderr, tx.clone()));
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => status.code(),
                Err(_) => None,
            };
            let _ = tx.send(Message::Exited(index, code));
        });
        Ok((pid, streams))
    }
}

/// Sends each output line of a stream, then `StreamClosed`.
async fn forward(stream: impl AsyncRead + Unpin, index: usize, which: Stream, tx: mpsc::UnboundedSender<Message>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                if tx.send(Message::Line(index, which, line)).is_err() {
                    break;
                }
            }
        }
    }
    let _ = tx.send(Message::StreamClosed);
}

fn signal_all(groups: &[Option<Pid>], tasks: &[usize], ids: &[usize], signal: Signal) {
    for (i, group) in groups.iter().enumerate() {
        if let Some(group) = group
            && tasks.contains(&ids[i])
        {
            // ESRCH (already gone) is fine.
            let _ = killpg(*group, signal);
        }
    }
}

fn finish(
    workspace: &Workspace,
    job: &mut TrainJob,
    tracker: &JobTracker,
    on_event: &mut impl FnMut(LocalEvent),
) -> Result<LocalRun> {
    publish(workspace, job, tracker, on_event)?;
    let outcome = tracker.outcome().cloned().ok_or_else(|| Error::Process {
        process: job.name().unwrap_or_default().to_string(),
        message: "the run ended without an outcome".into(),
    })?;
    Ok(LocalRun { outcome, job: job.clone(), workspace: workspace.clone() })
}

/// Writes the TrainJob with the tracker's status (computed once) and tells
/// `on_event` about it.
fn publish(
    workspace: &Workspace,
    job: &mut TrainJob,
    tracker: &JobTracker,
    on_event: &mut impl FnMut(LocalEvent),
) -> Result<()> {
    let status = tracker.status();
    job.status = Some(status.clone());
    write_status(workspace, job)?;
    on_event(LocalEvent::Status(Box::new(status)));
    Ok(())
}

/// Writes the TrainJob, atomically (a reader sees the old file or the new
/// one, never half of one).
fn write_status(workspace: &Workspace, job: &TrainJob) -> Result<()> {
    let path = workspace.status();
    let fail = |e: std::io::Error| Error::Process { process: path.display().to_string(), message: e.to_string() };
    let text = serde_json::to_string_pretty(&job.to_value())
        .map_err(|e| Error::Process { process: path.display().to_string(), message: e.to_string() })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| Error::Process { process: path.display().to_string(), message: format!("cannot create: {e}") })
}

/// A port nobody listens on now; the rank that binds it first (the master)
/// will get it unless another program takes it in between.
fn free_port(host: &str) -> Result<u16> {
    let listener = std::net::TcpListener::bind((host, 0))
        .map_err(|e| Error::Process { process: format!("{host}:0"), message: format!("cannot reserve a port: {e}") })?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Process { process: format!("{host}:0"), message: e.to_string() })?
        .port();
    Ok(port)
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
