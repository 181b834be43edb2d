//! The JSON forms of run data that leave the process: journal entries and run
//! records (the file journal, [`crate::journal`]) and cache entries (the
//! object_store cache). Serde lives here, on private mirror types, so the
//! run model in [`crate::run`] stays plain data.
//!
//! A journal line looks like
//! `{"seq":3,"at_ms":1700000000000,"kind":"task","task":"train","state":"succeeded","attempt":1,"outputs":{…}}`.
//! Reading never panics: an error says which field of which line is wrong.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::CacheEntry;
use crate::run::{ArtifactRef, Entry, Event, RunState, TaskOutputs, TaskState};
use crate::store::RunRecord;
use crate::{Error, Result};

#[derive(Serialize, Deserialize)]
struct EntryWire {
    seq: u64,
    at_ms: u64,
    #[serde(flatten)]
    event: EventWire,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum EventWire {
    Task {
        task: String,
        state: String,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outputs: Option<OutputsWire>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Run {
        state: String,
    },
}

#[derive(Serialize, Deserialize, Default)]
struct OutputsWire {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    parameters: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    artifacts: BTreeMap<String, Vec<ArtifactWire>>,
}

#[derive(Serialize, Deserialize)]
struct ArtifactWire {
    uri: String,
    digest: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct RecordWire {
    id: String,
    pipeline: String,
    created_ms: u64,
    #[serde(default)]
    parameters: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct CacheEntryWire {
    outputs: OutputsWire,
    created_ms: u64,
    run: String,
    task: String,
}

const TASK_STATES: [TaskState; 8] = [
    TaskState::Queued,
    TaskState::Running,
    TaskState::Retrying,
    TaskState::Succeeded,
    TaskState::Failed,
    TaskState::Skipped,
    TaskState::Cached,
    TaskState::Cancelled,
];

/// The lower-case name of a run state, e.g. `succeeded`.
pub fn run_state_str(state: RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Cancelled => "cancelled",
    }
}

fn run_state(s: &str) -> Option<RunState> {
    [RunState::Running, RunState::Succeeded, RunState::Failed, RunState::Cancelled]
        .into_iter()
        .find(|r| run_state_str(*r) == s)
}

fn outputs_to_wire(outputs: &TaskOutputs) -> OutputsWire {
    OutputsWire {
        parameters: outputs.parameters.clone(),
        artifacts: outputs
            .artifacts
            .iter()
            .map(|(name, refs)| {
                let refs = refs
                    .iter()
                    .map(|a| ArtifactWire {
                        uri: a.uri.clone(),
                        digest: a.digest.clone(),
                        metadata: a.metadata.clone(),
                    })
                    .collect();
                (name.clone(), refs)
            })
            .collect(),
    }
}

fn outputs_from_wire(wire: OutputsWire) -> TaskOutputs {
    TaskOutputs {
        parameters: wire.parameters,
        artifacts: wire
            .artifacts
            .into_iter()
            .map(|(name, refs)| {
                let refs = refs
                    .into_iter()
                    .map(|a| ArtifactRef { uri: a.uri, digest: a.digest, metadata: a.metadata })
                    .collect();
                (name, refs)
            })
            .collect(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { what.to_owned() } else { format!("{what}.{path}") };
        Error::invalid(at, e.into_inner().to_string())
    })
}

/// One journal entry as one line of JSON (no newline).
///
/// ```
/// use kf_dag::encoding::{entry_from_json, entry_to_json};
/// use kf_dag::run::{Entry, Event, TaskState};
/// let entry = Entry { seq: 0, at_ms: 5, event: Event::task("train", TaskState::Queued, 1) };
/// let line = entry_to_json(&entry);
/// assert_eq!(line, r#"{"seq":0,"at_ms":5,"kind":"task","task":"train","state":"queued","attempt":1}"#);
/// assert_eq!(entry_from_json("journal[0]", &line)?, entry);
/// # Ok::<(), kf_dag::Error>(())
/// ```
pub fn entry_to_json(entry: &Entry) -> String {
    let event = match &entry.event {
        Event::Task { task, state, attempt, outputs, message } => EventWire::Task {
            task: task.clone(),
            state: state.as_str().to_owned(),
            attempt: *attempt,
            outputs: outputs.as_ref().map(outputs_to_wire),
            message: message.clone(),
        },
        Event::Run(state) => EventWire::Run { state: run_state_str(*state).to_owned() },
    };
    // Serialising plain strings, numbers and JSON values cannot fail.
    serde_json::to_string(&EntryWire { seq: entry.seq, at_ms: entry.at_ms, event }).unwrap_or_default()
}

/// Reads a journal line; errors are prefixed with `what` (e.g. `journal[7]`).
pub fn entry_from_json(what: &str, line: &str) -> Result<Entry> {
    let wire: EntryWire = parse(what, line)?;
    let event = match wire.event {
        EventWire::Task { task, state, attempt, outputs, message } => {
            let state = TASK_STATES.into_iter().find(|s| s.as_str() == state).ok_or_else(|| {
                Error::invalid(format!("{what}.state"), format!("expected a task state, found {state:?}"))
            })?;
            Event::Task { task, state, attempt, outputs: outputs.map(outputs_from_wire), message }
        }
        EventWire::Run { state } => Event::Run(run_state(&state).ok_or_else(|| {
            Error::invalid(format!("{what}.state"), format!("expected a run state, found {state:?}"))
        })?),
    };
    Ok(Entry { seq: wire.seq, at_ms: wire.at_ms, event })
}

/// A run record as JSON.
pub fn record_to_json(record: &RunRecord) -> String {
    let wire = RecordWire {
        id: record.id.clone(),
        pipeline: record.pipeline.clone(),
        created_ms: record.created_ms,
        parameters: record.parameters.clone(),
    };
    serde_json::to_string_pretty(&wire).unwrap_or_default()
}

/// Reads a run record.
pub fn record_from_json(what: &str, text: &str) -> Result<RunRecord> {
    let wire: RecordWire = parse(what, text)?;
    Ok(RunRecord { id: wire.id, pipeline: wire.pipeline, created_ms: wire.created_ms, parameters: wire.parameters })
}

/// A cache entry as JSON.
pub fn cache_entry_to_json(entry: &CacheEntry) -> String {
    let wire = CacheEntryWire {
        outputs: outputs_to_wire(&entry.outputs),
        created_ms: entry.created_ms,
        run: entry.run.clone(),
        task: entry.task.clone(),
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Reads a cache entry.
pub fn cache_entry_from_json(what: &str, text: &str) -> Result<CacheEntry> {
    let wire: CacheEntryWire = parse(what, text)?;
    Ok(CacheEntry {
        outputs: outputs_from_wire(wire.outputs),
        created_ms: wire.created_ms,
        run: wire.run,
        task: wire.task,
    })
}

/// Task outputs as a JSON value (for `--output json`).
pub fn outputs_to_value(outputs: &TaskOutputs) -> Value {
    serde_json::to_value(outputs_to_wire(outputs)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_name_the_field() {
        let err = entry_from_json("journal[3]", r#"{"seq":0,"at_ms":"x","kind":"run","state":"running"}"#).unwrap_err();
        assert!(err.to_string().starts_with("journal[3]"), "{err}");
        let err = entry_from_json("journal[3]", r#"{"seq":0,"at_ms":1,"kind":"run","state":"exploded"}"#).unwrap_err();
        assert_eq!(err.path(), Some("journal[3].state"));
        assert!(entry_from_json("journal[0]", "{\"seq\":0,").is_err());
    }
}
