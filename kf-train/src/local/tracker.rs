//! [`JobTracker`]: the state machine of a local run. Pure: callers feed it
//! what happened (with timestamps they read), it decides the outcome and
//! renders the TrainJob status.

use std::collections::BTreeMap;

use crate::meta::Condition;
use crate::trainjob::{JobStatus, Metric, TrainJobStatus, TrainerStatus};

/// Metric names whose value is the progress percentage.
const PROGRESS_NAMES: [&str; 3] = ["progress", "progress_percentage", "progressPercentage"];
/// The CRD's limit on metric names and values.
const METRIC_MAX_LEN: usize = 64;
/// The CRD's limit on the number of reported metrics.
const METRICS_MAX: usize = 20;

/// Where one task (a process, or an initializer's fetch) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Not started yet.
    Pending,
    /// Started.
    Running,
    /// Ended with status 0.
    Succeeded,
    /// Ended on its own with an error (exit code, signal, or a fetch error).
    Failed {
        /// What went wrong, e.g. `exited with code 1`.
        detail: String,
    },
    /// Stopped by the backend after the job's outcome was decided.
    Killed,
}

impl TaskState {
    fn is_over(&self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Failed { .. } | TaskState::Killed)
    }
}

/// Why a job ended, as the condition `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Every task succeeded.
    AllJobsCompleted,
    /// A task failed; the others were killed.
    FailedJobs,
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
    /// Stopped by the user (Ctrl-C, an API call).
    Cancelled,
    /// `spec.suspend` is true: nothing started.
    Suspended,
}

impl Reason {
    /// The CamelCase reason written in the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AllJobsCompleted => "AllJobsCompleted",
            Reason::FailedJobs => "FailedJobs",
            Reason::DeadlineExceeded => "DeadlineExceeded",
            Reason::Cancelled => "Cancelled",
            Reason::Suspended => "Suspended",
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Condition reason.
    pub reason: Reason,
    /// What happened, naming the task that decided it.
    pub message: String,
    /// When it was decided (RFC 3339).
    pub at: String,
}

impl Outcome {
    /// Whether the job completed.
    pub fn succeeded(&self) -> bool {
        self.reason == Reason::AllJobsCompleted
    }

    /// The condition type this outcome sets: `Complete`, `Failed` or `Suspended`.
    pub fn condition_type(&self) -> &'static str {
        match self.reason {
            Reason::AllJobsCompleted => "Complete",
            Reason::Suspended => "Suspended",
            _ => "Failed",
        }
    }
}

#[derive(Debug, Clone)]
struct Task {
    replicated_job: String,
    job_index: u32,
    label: String,
    state: TaskState,
}

/// The state machine of one local run.
///
/// Every call is O(1) but [`JobTracker::status`] (O(T) for T tasks) and
/// [`JobTracker::observe`] (O(L) in the line length).
///
/// ```
/// use kf_train::local::{JobTracker, Reason};
///
/// let mut t = JobTracker::new("2026-01-01T00:00:00Z");
/// let a = t.add_task("node", 0, "rank 0", true);
/// let b = t.add_task("node", 0, "rank 1", false);
/// t.start(a);
/// t.start(b);
/// t.observe(a, "epoch 1 loss=0.25 progress=50", "2026-01-01T00:00:10Z", 10.0);
/// t.exited(b, Some(1), "2026-01-01T00:00:11Z");
/// assert_eq!(t.outcome().map(|o| o.reason), Some(Reason::FailedJobs));
/// assert_eq!(t.to_kill(), vec![a]); // the backend kills the rest
/// let status = t.status();
/// assert_eq!(status.trainer_status.unwrap().progress_percentage, Some(50));
/// ```
#[derive(Debug, Clone)]
pub struct JobTracker {
    created_at: String,
    tasks: Vec<Task>,
    reporter: Option<usize>,
    metrics: Vec<(String, String)>,
    progress: Option<i32>,
    remaining_s: Option<i64>,
    last_report: Option<String>,
    outcome: Option<Outcome>,
}

impl JobTracker {
    /// A tracker for a run created at `created_at` (RFC 3339).
    pub fn new(created_at: impl Into<String>) -> Self {
        JobTracker {
            created_at: created_at.into(),
            tasks: Vec::new(),
            reporter: None,
            metrics: Vec::new(),
            progress: None,
            remaining_s: None,
            last_report: None,
            outcome: None,
        }
    }

    /// Adds a task of Job `job_index` of `replicated_job`; `label` names it
    /// in messages. The `reporter`'s output lines feed `trainerStatus` (rank
    /// 0, or the launcher): the first task added as reporter is the one.
    /// Returns the task's id.
    pub fn add_task(&mut self, replicated_job: &str, job_index: u32, label: &str, reporter: bool) -> usize {
        let id = self.tasks.len();
        self.tasks.push(Task {
            replicated_job: replicated_job.to_string(),
            job_index,
            label: label.to_string(),
            state: TaskState::Pending,
        });
        if reporter && self.reporter.is_none() {
            self.reporter = Some(id);
        }
        id
    }

    /// Task `id` started.
    pub fn start(&mut self, id: usize) {
        if let Some(task) = self.tasks.get_mut(id)
            && task.state == TaskState::Pending
        {
            task.state = TaskState::Running;
        }
    }

    /// Task `id` ended with `code` (`None`: killed by a signal). Decides
    /// the outcome when this is the first failure or the last success.
    pub fn exited(&mut self, id: usize, code: Option<i32>, now: &str) {
        let detail = match code {
            Some(0) => None,
            Some(code) => Some(format!("exited with code {code}")),
            None => Some("was killed by a signal".to_string()),
        };
        match detail {
            None => self.set_state(id, TaskState::Succeeded, now),
            Some(detail) => self.fail(id, detail, now),
        }
    }

    /// Task `id` failed without a process exit (it could not start, or an
    /// initializer could not fetch its data).
    pub fn fail(&mut self, id: usize, detail: impl Into<String>, now: &str) {
        let killed_by_us = self.outcome.is_some();
        let state = if killed_by_us { TaskState::Killed } else { TaskState::Failed { detail: detail.into() } };
        self.set_state(id, state, now);
    }

    fn set_state(&mut self, id: usize, state: TaskState, now: &str) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        if task.state.is_over() {
            return;
        }
        task.state = state;
        if self.outcome.is_some() {
            return;
        }
        if let TaskState::Failed { detail } = &task.state {
            let message = format!("{} ({}-{}) {detail}", task.label, task.replicated_job, task.job_index);
            self.decide(Reason::FailedJobs, message, now);
        } else if self.tasks.iter().all(|t| t.state == TaskState::Succeeded) {
            let message = format!("all {} tasks succeeded", self.tasks.len());
            self.decide(Reason::AllJobsCompleted, message, now);
        }
    }

    /// The deadline (`activeDeadlineSeconds`) passed before the end.
    pub fn deadline_exceeded(&mut self, limit_s: i64, now: &str) {
        self.decide(
            Reason::DeadlineExceeded,
            format!("the job ran longer than activeDeadlineSeconds ({limit_s} s)"),
            now,
        );
    }

    /// The run was stopped from outside.
    pub fn cancel(&mut self, why: &str, now: &str) {
        self.decide(Reason::Cancelled, format!("cancelled: {why}"), now);
    }

    /// `spec.suspend` is set: the job is held, nothing runs.
    pub fn suspend(&mut self, now: &str) {
        self.decide(Reason::Suspended, "the TrainJob is suspended (spec.suspend)".to_string(), now);
    }

    fn decide(&mut self, reason: Reason, message: String, now: &str) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome { reason, message, at: now.to_string() });
        }
    }

    /// How the job ended, once decided.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Tasks still running after the outcome is decided: the backend must
    /// stop them. Empty while the job runs.
    pub fn to_kill(&self) -> Vec<usize> {
        if self.outcome.is_none() {
            return Vec::new();
        }
        (0..self.tasks.len()).filter(|&i| self.tasks[i].state == TaskState::Running).collect()
    }

    /// Whether every task has ended (or never will start).
    pub fn all_over(&self) -> bool {
        self.tasks.iter().all(|t| t.state.is_over() || (self.outcome.is_some() && t.state == TaskState::Pending))
    }

    /// The state of task `id`.
    pub fn state(&self, id: usize) -> Option<&TaskState> {
        self.tasks.get(id).map(|t| &t.state)
    }

    /// Reads `name=value` metrics from a line task `id` printed, if it is
    /// the reporter; `progress=` sets the percentage, and the time left is
    /// estimated from the rate so far (`elapsed_s` since the start).
    pub fn observe(&mut self, id: usize, line: &str, now: &str, elapsed_s: f64) {
        if self.reporter != Some(id) {
            return;
        }
        let found = parse_metrics(line);
        if found.is_empty() {
            return;
        }
        for (name, value) in found {
            if PROGRESS_NAMES.contains(&name.as_str()) {
                if let Ok(p) = value.parse::<f64>() {
                    let p = p.clamp(0.0, 100.0);
                    self.progress = Some(p.floor() as i32);
                    self.remaining_s = (p > 0.0).then(|| (elapsed_s * (100.0 - p) / p).round() as i64);
                }
                continue;
            }
            if let Some(slot) = self.metrics.iter_mut().find(|(n, _)| *n == name) {
                slot.1 = value;
            } else if self.metrics.len() < METRICS_MAX {
                self.metrics.push((name, value));
            }
        }
        self.last_report = Some(now.to_string());
    }

    /// The TrainJob `status` now: conditions (`Created`, then `Complete`,
    /// `Failed` or `Suspended`), `jobsStatus` per replicated job (counts of
    /// Jobs, as upstream), and `trainerStatus` once the reporter printed
    /// metrics.
    pub fn status(&self) -> TrainJobStatus {
        let mut conditions = Vec::new();
        let suspended = self.outcome.as_ref().is_some_and(|o| o.reason == Reason::Suspended);
        if !suspended {
            conditions.push(condition(
                "Created",
                "JobsCreationSucceeded",
                "the TrainJob's processes were created",
                &self.created_at,
            ));
        }
        if let Some(o) = &self.outcome {
            conditions.push(condition(o.condition_type(), o.reason.as_str(), &o.message, &o.at));
        }
        TrainJobStatus {
            conditions: Some(conditions),
            jobs_status: Some(self.jobs_status(suspended)),
            trainer_status: self.last_report.as_ref().map(|at| TrainerStatus {
                progress_percentage: self.progress,
                estimated_remaining_seconds: self.remaining_s,
                metrics: (!self.metrics.is_empty()).then(|| {
                    self.metrics
                        .iter()
                        .map(|(n, v)| Metric { name: Some(n.clone()), value: Some(v.clone()), ..Default::default() })
                        .collect()
                }),
                last_updated_time: Some(at.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn jobs_status(&self, suspended: bool) -> Vec<JobStatus> {
        // Replicated job → Job index → task states, in first-seen order.
        let mut order: Vec<&str> = Vec::new();
        let mut jobs: BTreeMap<&str, BTreeMap<u32, Vec<&TaskState>>> = BTreeMap::new();
        for t in &self.tasks {
            if !order.contains(&t.replicated_job.as_str()) {
                order.push(&t.replicated_job);
            }
            jobs.entry(&t.replicated_job).or_default().entry(t.job_index).or_default().push(&t.state);
        }
        order
            .into_iter()
            .map(|name| {
                let mut s = JobStatus { name: Some(name.to_string()), ..Default::default() };
                let (mut active, mut ready, mut succeeded, mut failed, mut held) = (0, 0, 0, 0, 0);
                for states in jobs.get(name).into_iter().flat_map(|j| j.values()) {
                    let any = |f: fn(&TaskState) -> bool| states.iter().any(|s| f(s));
                    let all = |f: fn(&TaskState) -> bool| states.iter().all(|s| f(s));
                    if suspended {
                        held += 1;
                    } else if any(|s| matches!(s, TaskState::Failed { .. } | TaskState::Killed)) {
                        failed += 1;
                    } else if all(|s| *s == TaskState::Succeeded) {
                        succeeded += 1;
                    } else {
                        active += 1;
                        if all(|s| matches!(s, TaskState::Running | TaskState::Succeeded)) {
                            ready += 1;
                        }
                    }
                }
                s.active = Some(active);
                s.ready = Some(ready);
                s.succeeded = Some(succeeded);
                s.failed = Some(failed);
                s.suspended = Some(held);
                s
            })
            .collect()
    }
}

fn condition(type_: &str, reason: &str, message: &str, at: &str) -> Condition {
    Condition {
        type_: Some(type_.to_string()),
        status: Some("True".to_string()),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_transition_time: Some(at.to_string()),
        ..Default::default()
    }
}

/// The `name=value` pairs of a line whose value is a finite number, as
/// Katib's default metrics collector reads them (`loss=0.25`,
/// `val-acc = 9.1e-1`, `progress=40%`). Names are letters, digits, `_`, `-`,
/// `.` and `/`, at most 64 characters; values keep their printed form.
/// O(n) in the line length.
///
/// ```
/// let found = kf_train::local::parse_metrics("epoch 3: loss=0.25 acc = 9.1e-1 progress=40% lr=nan");
/// let names: Vec<_> = found.iter().map(|(n, v)| format!("{n}={v}")).collect();
/// assert_eq!(names, ["loss=0.25", "acc=9.1e-1", "progress=40"]);
/// ```
pub fn parse_metrics(line: &str) -> Vec<(String, String)> {
    let bytes = line.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/');
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(offset) = line[i..].find('=') {
        let eq = i + offset;
        // The name: the run of name bytes before `=`, spaces allowed between.
        let mut end = eq;
        while end > 0 && bytes[end - 1] == b' ' {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && is_name(bytes[start - 1]) {
            start -= 1;
        }
        // The value: the longest number after `=`.
        let mut v = eq + 1;
        while v < bytes.len() && bytes[v] == b' ' {
            v += 1;
        }
        let number_end = number_prefix(&line[v..]) + v;
        i = number_end.max(eq + 1);
        let name = &line[start..end];
        let value = &line[v..number_end];
        let numeric = value.parse::<f64>().is_ok_and(f64::is_finite);
        let first_is_letter = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if numeric && first_is_letter && name.len() <= METRIC_MAX_LEN && value.len() <= METRIC_MAX_LEN {
            out.push((name.to_string(), value.to_string()));
        }
    }
    out
}

/// Length of the longest prefix of `s` that reads as a decimal number
/// (sign, digits, fraction, exponent).
fn number_prefix(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && matches!(b[i], b'+' | b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        let frac = digits(&mut j);
        if frac > 0 || n > 0 {
            i = j;
            n += frac;
        }
    }
    if n == 0 {
        return 0;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < b.len() && matches!(b[j], b'+' | b'-') {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    i
}
