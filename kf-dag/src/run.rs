//! Run state as data: task states and their legal transitions, the journal
//! entries a [`crate::store::RunStore`] appends, task outputs, and the replay
//! of a journal into a [`RunSnapshot`] — what a resumed run starts from.
//!
//! The journal is the source of truth: a run's state is the fold of its
//! entries, so a crash loses at most the entry being written, and resuming
//! means replaying, keeping completed tasks and re-running those in flight.
//! This module is pure: no clock (callers pass timestamps), no IO.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::{Error, Result};

/// The state of one task of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TaskState {
    /// Ready and waiting for a slot.
    Queued,
    /// Running (an attempt is in progress).
    Running,
    /// Failed an attempt and waits for its backoff before the next.
    Retrying,
    /// Finished with outputs.
    Succeeded,
    /// Finished without outputs, retries exhausted.
    Failed,
    /// Not run: its condition was false or an upstream task did not succeed.
    Skipped,
    /// Not run: an earlier result was reused.
    Cached,
    /// Stopped because the run was cancelled.
    Cancelled,
}

impl TaskState {
    /// Whether the task is done for this run (no transition leaves the state).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Skipped | TaskState::Cached | TaskState::Cancelled
        )
    }

    /// Whether the task produced outputs downstream tasks can read.
    pub fn has_outputs(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Cached)
    }

    /// Whether a task may move from `from` (`None`: never seen) to `to`.
    /// A running task may go back to `Queued`: that is a resumed run
    /// re-queueing work that was in flight when the process died.
    ///
    /// ```
    /// use kf_dag::run::TaskState::*;
    /// use kf_dag::run::TaskState;
    /// assert!(TaskState::can_transition(None, Queued));
    /// assert!(TaskState::can_transition(Some(Running), Retrying));
    /// assert!(!TaskState::can_transition(Some(Succeeded), Running));
    /// ```
    pub fn can_transition(from: Option<TaskState>, to: TaskState) -> bool {
        use TaskState::*;
        match from {
            None => matches!(to, Queued | Skipped | Cached | Cancelled),
            Some(Queued) => matches!(to, Running | Skipped | Cached | Cancelled),
            Some(Running) => matches!(to, Succeeded | Failed | Retrying | Cancelled | Queued),
            Some(Retrying) => matches!(to, Running | Cancelled | Queued),
            Some(_) => false,
        }
    }

    /// Lower-case name, e.g. `succeeded`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Skipped => "skipped",
            TaskState::Cached => "cached",
            TaskState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunState {
    /// Started (or resumed) and not finished.
    Running,
    /// Every task finished and none failed.
    Succeeded,
    /// At least one task failed.
    Failed,
    /// Cancelled by the user.
    Cancelled,
}

/// An artifact a task produced: where it is and what it contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    /// Location in the artifact store.
    pub uri: String,
    /// Content digest, e.g. `sha256:…` (what cache keys use).
    pub digest: String,
    /// Metadata written by the task (as JSON).
    pub metadata: BTreeMap<String, Value>,
}

/// What a finished task produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOutputs {
    /// Output parameters by name.
    pub parameters: BTreeMap<String, Value>,
    /// Output artifacts by name (several for an artifact list).
    pub artifacts: BTreeMap<String, Vec<ArtifactRef>>,
}

/// What one journal entry records.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A task changed state.
    Task {
        /// The task's execution path within the run, e.g. `train` or
        /// `sweep[2].train` (one per loop iteration).
        task: String,
        /// The new state.
        state: TaskState,
        /// Attempt number, 1 for the first.
        attempt: u32,
        /// Outputs, for `Succeeded` and `Cached`.
        outputs: Option<TaskOutputs>,
        /// Why (an error message, a skip reason).
        message: Option<String>,
    },
    /// The run changed state.
    Run(RunState),
}

impl Event {
    /// A task transition with no outputs and no message.
    pub fn task(task: impl Into<String>, state: TaskState, attempt: u32) -> Self {
        Event::Task { task: task.into(), state, attempt, outputs: None, message: None }
    }

    /// Whether a crash that lost this entry would lose work: a task's own
    /// results (`Succeeded` with its outputs, `Failed`, `Retrying` with its
    /// attempt count, `Cancelled`) and the run's end. The others are derived
    /// again when the run resumes — `Queued` and `Running` from the plan (a
    /// task not known to have finished runs again), `Cached` from the
    /// content-addressed cache, `Skipped` from its condition and upstream
    /// results, the run's start from its record — so a durable store may
    /// buffer them until the next entry that must be durable (an `fsync` per
    /// entry is what makes a warm, fully cached run slow).
    ///
    /// ```
    /// use kf_dag::run::{Event, RunState, TaskState};
    /// assert!(Event::task("train", TaskState::Succeeded, 1).must_be_durable());
    /// assert!(!Event::task("train", TaskState::Cached, 1).must_be_durable());
    /// assert!(Event::Run(RunState::Succeeded).must_be_durable());
    /// assert!(!Event::Run(RunState::Running).must_be_durable());
    /// ```
    pub fn must_be_durable(&self) -> bool {
        match self {
            Event::Task { state, .. } => {
                matches!(state, TaskState::Succeeded | TaskState::Failed | TaskState::Retrying | TaskState::Cancelled)
            }
            Event::Run(state) => *state != RunState::Running,
        }
    }
}

/// One journal entry: a sequence number the store assigns, a timestamp the
/// caller gives, and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Position in the run's journal, starting at 0, without gaps.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, from the caller's clock.
    pub at_ms: u64,
    /// What happened.
    pub event: Event,
}

/// The latest known state of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    /// Current state.
    pub state: TaskState,
    /// Current attempt, 1 for the first.
    pub attempt: u32,
    /// Outputs, once succeeded or cached.
    pub outputs: Option<TaskOutputs>,
    /// The last message recorded.
    pub message: Option<String>,
    /// When the task entered its current state.
    pub since_ms: u64,
}

/// A run's state, replayed from its journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSnapshot {
    /// The run's latest state, if one was recorded.
    pub run: Option<RunState>,
    /// Every task seen, by execution path.
    pub tasks: BTreeMap<String, TaskStatus>,
}

impl RunSnapshot {
    /// Replays a journal. Rejects entries out of sequence and illegal
    /// transitions, naming the entry (`journal[7]`), so a corrupted journal is
    /// never silently resumed. Linear in the number of entries (times log of
    /// the number of tasks).
    pub fn replay(entries: &[Entry]) -> Result<Self> {
        let mut snapshot = RunSnapshot::default();
        for (i, entry) in entries.iter().enumerate() {
            snapshot.apply(i, entry)?;
        }
        Ok(snapshot)
    }

    /// Applies entry number `i` of a journal.
    pub fn apply(&mut self, i: usize, entry: &Entry) -> Result<()> {
        let path = || format!("journal[{i}]");
        if entry.seq != i as u64 {
            return Err(Error::invalid(path(), format!("expected sequence number {i}, found {}", entry.seq)));
        }
        match &entry.event {
            Event::Run(state) => self.run = Some(*state),
            Event::Task { task, state, attempt, outputs, message } => {
                let previous = self.tasks.get(task).map(|s| s.state);
                if !TaskState::can_transition(previous, *state) {
                    let from = previous.map_or("never seen".to_owned(), |s| s.to_string());
                    return Err(Error::invalid(path(), format!("task {task:?} cannot go from {from} to {state}")));
                }
                if state.has_outputs() && outputs.is_none() {
                    return Err(Error::invalid(path(), format!("task {task:?} is {state} but records no outputs")));
                }
                let status = TaskStatus {
                    state: *state,
                    attempt: *attempt,
                    outputs: outputs.clone(),
                    message: message.clone(),
                    since_ms: entry.at_ms,
                };
                self.tasks.insert(task.clone(), status);
            }
        }
        Ok(())
    }

    /// Tasks that are done for this run; a resumed run does not touch them.
    pub fn completed(&self) -> impl Iterator<Item = (&str, &TaskStatus)> {
        self.tasks.iter().filter(|(_, s)| s.state.is_terminal()).map(|(t, s)| (t.as_str(), s))
    }

    /// Tasks that were queued, running or waiting to retry: a resumed run
    /// re-queues them.
    pub fn in_flight(&self) -> impl Iterator<Item = (&str, &TaskStatus)> {
        self.tasks.iter().filter(|(_, s)| !s.state.is_terminal()).map(|(t, s)| (t.as_str(), s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;
    use proptest::prelude::*;

    const ALL: [TaskState; 8] = [Queued, Running, Retrying, Succeeded, Failed, Skipped, Cached, Cancelled];

    fn entry(seq: u64, event: Event) -> Entry {
        Entry { seq, at_ms: seq * 10, event }
    }

    fn with_outputs(task: &str, state: TaskState) -> Event {
        let outputs = state.has_outputs().then(TaskOutputs::default);
        Event::Task { task: task.into(), state, attempt: 1, outputs, message: None }
    }

    #[test]
    fn a_journal_replays_into_completed_and_in_flight_tasks() {
        let journal = vec![
            entry(0, Event::Run(RunState::Running)),
            entry(1, Event::task("a", Queued, 1)),
            entry(2, Event::task("a", Running, 1)),
            entry(3, with_outputs("a", Succeeded)),
            entry(4, Event::task("b", Queued, 1)),
            entry(5, Event::task("b", Running, 1)),
            entry(6, with_outputs("c", Cached)),
        ];
        let s = RunSnapshot::replay(&journal).unwrap();
        assert_eq!(s.run, Some(RunState::Running));
        assert_eq!(s.completed().map(|(t, _)| t).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(s.in_flight().map(|(t, _)| t).collect::<Vec<_>>(), ["b"]);
        assert_eq!(s.tasks["b"].since_ms, 50);
    }

    #[test]
    fn corrupted_journals_are_rejected_with_the_entry() {
        let gap = vec![entry(0, Event::task("a", Queued, 1)), entry(2, Event::task("a", Running, 1))];
        assert_eq!(RunSnapshot::replay(&gap).unwrap_err().path(), Some("journal[1]"));
        let rerun = vec![entry(0, with_outputs("a", Cached)), entry(1, Event::task("a", Running, 1))];
        let err = RunSnapshot::replay(&rerun).unwrap_err();
        assert!(err.to_string().contains("cannot go from cached to running"), "{err}");
        let no_outputs = vec![entry(0, Event::task("a", Cached, 1))];
        assert_eq!(RunSnapshot::replay(&no_outputs).unwrap_err().path(), Some("journal[0]"));
    }

    proptest! {
        /// Random walks through the state machine replay to their last
        /// state; appending any illegal transition is rejected.
        #[test]
        fn replay_follows_the_state_machine(
            walks in proptest::collection::vec(proptest::collection::vec(0usize..8, 1..8), 1..6),
            bad in 0usize..8,
        ) {
            let mut journal = Vec::new();
            let mut last = BTreeMap::new();
            for (t, walk) in walks.iter().enumerate() {
                let task = format!("t{t}");
                let mut state: Option<TaskState> = None;
                for &pick in walk {
                    // Take the first legal state at or after `pick`.
                    let Some(next) = (0..8).map(|k| ALL[(pick + k) % 8]).find(|s| TaskState::can_transition(state, *s)) else { break };
                    journal.push(entry(journal.len() as u64, with_outputs(&task, next)));
                    state = Some(next);
                }
                if let Some(s) = state { last.insert(task, s); }
            }
            let snapshot = RunSnapshot::replay(&journal).unwrap();
            for (task, state) in &last {
                prop_assert_eq!(snapshot.tasks[task].state, *state);
            }
            prop_assert_eq!(snapshot.completed().count() + snapshot.in_flight().count(), last.len());
            let (task, state) = last.iter().next().unwrap();
            let illegal = ALL[bad];
            prop_assume!(!TaskState::can_transition(Some(*state), illegal));
            journal.push(entry(journal.len() as u64, with_outputs(task, illegal)));
            prop_assert!(RunSnapshot::replay(&journal).is_err());
        }
    }
}
