//! Running an experiment: trials in parallel through a [`TrialRunner`],
//! metrics through a [`MetricsSink`], every state change journaled.
//!
//! [`run`] drives an [`ExperimentState`]: it asks the sampler for as many
//! trials as there are free slots (`parallelTrialCount`, within
//! `maxTrialCount`), runs them concurrently on tokio, feeds each reported
//! objective value to the early-stopping rule, and stops when the state says
//! the experiment has ended (goal, budget, failures, algorithm exhausted),
//! killing trials still running. Every start and finish is appended to a
//! [`Journal`] (JSON lines, fsync'd) before it changes the state, so a killed
//! run resumes from the journal without re-running a finished trial.
//!
//! Runners: [`FnRunner`] runs a Rust closure in process (it pushes metrics
//! through the sink); [`process::ProcessRunner`] runs the trial template's
//! command as a local process, substituting `${trialParameters.x}`, and reads
//! metrics from its output or a metrics file. This module owns the IO; the
//! decisions are [`crate::experiment`]'s.

pub mod process;
pub mod push;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::experiment::{Event, ExperimentState, RunEnd};
use crate::metrics::MetricSeries;
use crate::sampler::{Shortfall, TrialState};
use crate::{Error, Result};

/// One trial as a runner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRun {
    /// `<experiment>-<index>`.
    pub name: String,
    /// Its position in the experiment.
    pub index: usize,
    /// Katib `parameterAssignments`: (parameter name, value text).
    pub parameters: Vec<(String, String)>,
    /// Trial parameter name → value text, for `${trialParameters.<name>}`.
    pub trial_parameters: BTreeMap<String, String>,
    /// The name of the trial whose checkpoint this one starts from (PBT
    /// continuations and exploits, Hyperband promotions); `None` starts afresh.
    pub parent: Option<String>,
}

/// Why a trial was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    No,
    EarlyStopped,
    Killed,
}

/// Where a running trial reports metrics, and learns whether to stop.
///
/// Every value of the objective metric is an intermediate value for the
/// early-stopping rule; once the rule says stop (or the experiment ends),
/// [`MetricsSink::stop_requested`] is true and [`MetricsSink::stopped`] resolves.
#[derive(Clone)]
pub struct MetricsSink {
    series: Arc<Mutex<MetricSeries>>,
    state: Arc<Mutex<ExperimentState>>,
    objective: String,
    stop: Arc<watch::Sender<Stop>>,
}

impl std::fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSink").field("objective", &self.objective).finish_non_exhaustive()
    }
}

impl MetricsSink {
    fn new(state: Arc<Mutex<ExperimentState>>) -> Self {
        let objective = lock(&state).plan().objective_metric.clone();
        MetricsSink { series: Arc::default(), state, objective, stop: Arc::new(watch::channel(Stop::No).0) }
    }

    /// Records one observation; returns whether the trial should stop now.
    /// O(finished trials · reports) when `name` is the objective (the
    /// early-stopping rule runs), O(log metrics) otherwise.
    pub fn report(&self, name: &str, value: f64) -> bool {
        let objective_values = {
            let mut series = lock(&self.series);
            series.push(name, value);
            (name == self.objective).then(|| series.get(name).to_vec())
        };
        if let Some(values) = objective_values
            && *self.stop.borrow() == Stop::No
            && lock(&self.state).should_stop(&values)
        {
            self.stop.send_replace(Stop::EarlyStopped);
        }
        self.stop_requested()
    }

    /// Whether the trial has been asked to stop.
    pub fn stop_requested(&self) -> bool {
        *self.stop.borrow() != Stop::No
    }

    /// Resolves once the trial has been asked to stop.
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|s| *s != Stop::No).await;
    }

    fn kill(&self) {
        self.stop.send_if_modified(|s| {
            let first = *s == Stop::No;
            if first {
                *s = Stop::Killed;
            }
            first
        });
    }

    fn snapshot(&self) -> MetricSeries {
        lock(&self.series).clone()
    }
}

/// A poisoned lock only means another trial task panicked; the data is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one trial to its end.
#[async_trait::async_trait]
pub trait TrialRunner: Send + Sync {
    /// Runs `trial`, reporting metrics to `metrics`. `Ok` when the trial ran
    /// to its end or stopped because [`MetricsSink::stop_requested`];
    /// `Err(message)` when it failed (the message says how).
    async fn run(&self, trial: &TrialRun, metrics: &MetricsSink) -> std::result::Result<(), String>;
}

/// A Rust closure as a trial: it reads the parameters and pushes metrics.
///
/// ```
/// use kf_tune::runner::{FnRunner, TrialRun, MetricsSink};
///
/// let runner = FnRunner::new(|trial: &TrialRun, metrics: &MetricsSink| {
///     let x: f64 = trial.parameters[0].1.parse().map_err(|e| format!("{e}"))?;
///     metrics.report("loss", (x - 0.3).powi(2));
///     Ok(())
/// });
/// # let _ = runner;
/// ```
pub struct FnRunner<F> {
    f: F,
}

impl<F> FnRunner<F>
where
    F: Fn(&TrialRun, &MetricsSink) -> std::result::Result<(), String> + Send + Sync,
{
    /// Wraps `f`. It runs on the experiment's tokio worker, so it should be
    /// quick; long trials belong in a process or their own [`TrialRunner`].
    pub fn new(f: F) -> Self {
        FnRunner { f }
    }
}

#[async_trait::async_trait]
impl<F> TrialRunner for FnRunner<F>
where
    F: Fn(&TrialRun, &MetricsSink) -> std::result::Result<(), String> + Send + Sync,
{
    async fn run(&self, trial: &TrialRun, metrics: &MetricsSink) -> std::result::Result<(), String> {
        (self.f)(trial, metrics)
    }
}

/// The experiment's journal: one [`Event`] per line, appended and fsync'd.
///
/// Opening it replays what is there; a last line cut short by a crash is
/// dropped (its event never took effect), any other bad line is an error.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and returns the events it holds. O(file size).
    pub fn open(path: &Path) -> Result<(Self, Vec<Event>)> {
        let io = |err: std::io::Error| Error::Io { path: path.display().to_string(), message: err.to_string() };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let (events, good_len) = if path.exists() { read_events(path)? } else { (Vec::new(), 0) };
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        // Drop a torn last line so the next append starts on a line of its own.
        let len = file.metadata().map_err(io)?.len();
        if len > good_len {
            file.set_len(good_len).map_err(io)?;
        }
        Ok((Journal { path: path.to_owned(), file }, events))
    }

    /// The events of the journal at `path`, without opening it for writing:
    /// safe while a run appends to it (a line being written is read as torn
    /// and left out). O(file size).
    pub fn read(path: &Path) -> Result<Vec<Event>> {
        read_events(path).map(|(events, _)| events)
    }

    /// Appends `event` and waits until it is on disk.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let io = |err: std::io::Error| Error::Io { path: self.path.display().to_string(), message: err.to_string() };
        let mut line = serde_json::to_vec(event).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// The events in the journal at `path` and the length of its whole lines;
/// a last line cut short by a crash is dropped, any other bad line is an error.
fn read_events(path: &Path) -> Result<(Vec<Event>, u64)> {
    let io = |err: std::io::Error| Error::Io { path: path.display().to_string(), message: err.to_string() };
    let mut events = Vec::new();
    let mut good_len = 0u64;
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut lines = reader.split(b'\n').peekable();
    let mut number = 0;
    while let Some(line) = lines.next() {
        let line = line.map_err(io)?;
        number += 1;
        let last = lines.peek().is_none();
        match serde_json::from_slice::<Event>(&line) {
            Ok(event) => {
                events.push(event);
                good_len += line.len() as u64 + 1;
            }
            Err(_) if line.iter().all(u8::is_ascii_whitespace) => good_len += line.len() as u64 + 1,
            Err(_) if last => break,
            Err(err) => {
                return Err(Error::Invalid {
                    path: format!("{}:{number}", path.display()),
                    message: format!("expected a journal event, found a line that is not one: {err}"),
                });
            }
        }
    }
    Ok((events, good_len))
}

/// Replays `events` into `state`. O(events).
pub fn replay(state: &mut ExperimentState, events: Vec<Event>) -> Result<()> {
    events.into_iter().try_for_each(|e| state.apply(e))
}

/// Runs the experiment to its end and returns the final state.
///
/// Trials the state holds as running (started before a crash) are started
/// again with the same parameters; finished ones are not. `seed` seeds the
/// sampler's generator, mixed with the number of trials already in the state
/// so that a resumed run does not repeat the first run's draws. `on_event` sees
/// every event after it is applied (progress display). Errors: the journal
/// cannot be written, or the sampler cannot serve the space.
pub async fn run<R: TrialRunner + 'static>(
    state: ExperimentState,
    runner: Arc<R>,
    mut journal: Option<&mut Journal>,
    seed: u64,
    mut on_event: impl FnMut(&ExperimentState, &Event),
) -> Result<ExperimentState> {
    let resumed = state.trials().len() as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ resumed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let state = Arc::new(Mutex::new(state));
    let mut tasks: JoinSet<(usize, std::result::Result<(), String>, MetricsSink)> = JoinSet::new();
    let mut sinks: BTreeMap<usize, MetricsSink> = BTreeMap::new();

    let launch = |index: usize, tasks: &mut JoinSet<_>, sinks: &mut BTreeMap<usize, MetricsSink>| {
        let trial = {
            let s = lock(&state);
            let record = &s.trials()[index];
            TrialRun {
                name: record.name.clone(),
                index,
                parameters: s.plan().space.format(&record.assignment),
                trial_parameters: s.plan().trial_parameter_values(&record.name, &record.assignment),
                parent: record.parent.and_then(|p| s.trials().get(p)).map(|p| p.name.clone()),
            }
        };
        let sink = MetricsSink::new(state.clone());
        sinks.insert(index, sink.clone());
        let runner = runner.clone();
        tasks.spawn(async move {
            let result = runner.run(&trial, &sink).await;
            (index, result, sink)
        });
    };

    let restart: Vec<usize> = lock(&state).running().map(|(i, _)| i).collect();
    for index in restart {
        launch(index, &mut tasks, &mut sinks);
    }
    loop {
        let (ended, slots) = {
            let s = lock(&state);
            (s.end().is_some(), s.slots())
        };
        if ended {
            for sink in sinks.values() {
                sink.kill();
            }
        } else if slots > 0 {
            let (suggestions, ended) = {
                let s = lock(&state);
                let mut history = s.history();
                let sampler = &s.plan().algorithm.sampler;
                let suggestions = match sampler.suggest_detailed(&s.plan().space, &history, slots, &mut rng) {
                    Ok(v) => v,
                    Err(Error::Exhausted { .. }) => Vec::new(),
                    Err(err) => return Err(err),
                };
                // Short of slots: finished for good, or waiting for running
                // trials (a Hyperband rung), in which case a trial's end asks again.
                let ended = suggestions.len() < slots && {
                    for suggestion in &suggestions {
                        history.push_suggestion(suggestion.clone(), TrialState::Pending);
                    }
                    sampler.shortfall(&s.plan().space, &history) == Shortfall::Exhausted
                };
                (suggestions, ended)
            };
            if ended {
                lock(&state).suggestions_ended();
            }
            for suggestion in suggestions {
                let index = lock(&state).trials().len();
                let event = Event::started_from(index, &suggestion.assignment, suggestion.parent);
                if let Some(j) = journal.as_deref_mut() {
                    j.append(&event)?;
                }
                lock(&state).apply(event.clone())?;
                on_event(&lock(&state), &event);
                launch(index, &mut tasks, &mut sinks);
            }
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (index, result, sink) = joined.map_err(|err| Error::Io {
            path: "trial task".into(),
            message: format!("a trial task ended abnormally: {err}"),
        })?;
        sinks.remove(&index);
        let end = match (result, *sink.stop.borrow()) {
            (_, Stop::Killed) => RunEnd::Killed,
            (Ok(()), Stop::EarlyStopped) => RunEnd::EarlyStopped,
            (Ok(()), Stop::No) => RunEnd::Completed,
            (Err(message), _) => RunEnd::Failed(message),
        };
        let event = Event::finished(index, &end, &sink.snapshot());
        if let Some(j) = journal.as_deref_mut() {
            j.append(&event)?;
        }
        lock(&state).apply(event.clone())?;
        on_event(&lock(&state), &event);
    }
    drop(sinks);
    // Every task has finished, so this is the last reference; the fallback
    // copies the state should a sink outlive its task.
    match Arc::try_unwrap(state) {
        Ok(m) => Ok(m.into_inner().unwrap_or_else(PoisonError::into_inner)),
        Err(_) => Err(Error::Io { path: "experiment".into(), message: "a trial still holds the state".into() }),
    }
}

/// `t` as an RFC 3339 UTC timestamp (`2026-11-25T10:15:00Z`), as Katib writes times.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(kf_tune::runner::rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_601_700)), "2026-11-25T10:15:00Z");
/// ```
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Runs `future` to completion on a new single-threaded tokio runtime with
/// IO and process support, for callers (a CLI) that have no runtime of their own.
///
/// ```
/// assert_eq!(kf_tune::runner::block_on(async { 1 + 1 })?, 2);
/// # Ok::<(), kf_tune::Error>(())
/// ```
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Error::Io { path: "tokio runtime".into(), message: err.to_string() })?;
    Ok(runtime.block_on(future))
}
