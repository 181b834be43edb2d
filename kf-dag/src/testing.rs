//! Conformance suites every [`RunStore`] and [`Cache`] implementation runs,
//! in the spirit of object_store's shared integration tests: one suite, all
//! backends. Each function panics with a message naming the broken promise.
//!
//! ```
//! use kf_dag::store::InMemoryRunStore;
//! kf_dag::testing::run_store_conformance(&InMemoryRunStore::new());
//! ```

use std::collections::BTreeMap;

use serde_json::json;

use crate::CacheKey;
use crate::cache::{Cache, CacheEntry};
use crate::run::{ArtifactRef, Event, RunState, TaskOutputs, TaskState};
use crate::store::{RunRecord, RunStore, RunStoreExt};

fn record(id: &str, created_ms: u64) -> RunRecord {
    RunRecord {
        id: id.to_owned(),
        pipeline: "conformance".to_owned(),
        created_ms,
        parameters: BTreeMap::from([("lr".to_owned(), json!(0.1)), ("tags".to_owned(), json!(["a", {"b": null}]))]),
    }
}

fn outputs() -> TaskOutputs {
    let artifact = ArtifactRef {
        uri: "memory://runs/r/train/model".to_owned(),
        digest: "sha256:00ff".to_owned(),
        metadata: BTreeMap::from([("accuracy".to_owned(), json!(0.93))]),
    };
    TaskOutputs {
        parameters: BTreeMap::from([("loss".to_owned(), json!(0.25)), ("note".to_owned(), json!("ünïcødé"))]),
        artifacts: BTreeMap::from([("model".to_owned(), vec![artifact])]),
    }
}

/// Checks the promises of [`RunStore`] on an empty store: runs are created
/// once and listed oldest first with their parameters; appends get
/// consecutive sequence numbers from 0 and come back in order, with every
/// field intact; journals of different runs are independent; unknown runs
/// are errors; concurrent appends are all kept, each with a distinct number.
pub fn run_store_conformance(store: &dyn RunStore) {
    assert!(
        store.runs().unwrap_or_else(|e| panic!("runs() on an empty store: {e}")).is_empty(),
        "a new store has no runs"
    );

    store.create_run(record("run-b", 2_000)).unwrap_or_else(|e| panic!("create_run: {e}"));
    store.create_run(record("run-a", 1_000)).unwrap_or_else(|e| panic!("create_run: {e}"));
    assert!(store.create_run(record("run-a", 3_000)).is_err(), "creating a run twice must fail");
    let runs = store.runs().unwrap_or_else(|e| panic!("runs(): {e}"));
    assert_eq!(runs, vec![record("run-a", 1_000), record("run-b", 2_000)], "runs are listed oldest first, intact");

    assert!(
        store.journal("run-a").unwrap_or_else(|e| panic!("journal: {e}")).is_empty(),
        "a new run has an empty journal"
    );
    assert!(store.journal("no-such-run").is_err(), "the journal of an unknown run is an error");
    assert!(
        store.append("no-such-run", 0, Event::Run(RunState::Running)).is_err(),
        "appending to an unknown run is an error"
    );

    let events = vec![
        Event::Run(RunState::Running),
        Event::task("train", TaskState::Queued, 1),
        Event::task("train", TaskState::Running, 1),
        Event::Task {
            task: "train".to_owned(),
            state: TaskState::Retrying,
            attempt: 1,
            outputs: None,
            message: Some("exit code 1".to_owned()),
        },
        Event::task("train", TaskState::Running, 2),
        Event::Task {
            task: "train".to_owned(),
            state: TaskState::Succeeded,
            attempt: 2,
            outputs: Some(outputs()),
            message: None,
        },
        Event::Run(RunState::Succeeded),
    ];
    for (i, event) in events.iter().enumerate() {
        let seq = store.append("run-a", 10 * i as u64, event.clone()).unwrap_or_else(|e| panic!("append: {e}"));
        assert_eq!(seq, i as u64, "sequence numbers start at 0 and are consecutive");
    }
    store.append("run-b", 5, Event::task("other", TaskState::Queued, 1)).unwrap_or_else(|e| panic!("append: {e}"));

    let journal = store.journal("run-a").unwrap_or_else(|e| panic!("journal: {e}"));
    assert_eq!(journal.len(), events.len(), "every appended entry is kept");
    for (i, (entry, event)) in journal.iter().zip(&events).enumerate() {
        assert_eq!(entry.seq, i as u64, "entries come back in sequence order");
        assert_eq!(entry.at_ms, 10 * i as u64, "timestamps are kept");
        assert_eq!(&entry.event, event, "entry {i} comes back intact");
    }
    assert_eq!(store.journal("run-b").unwrap_or_else(|e| panic!("journal: {e}")).len(), 1, "journals are per run");

    let snapshot = store.snapshot("run-a").unwrap_or_else(|e| panic!("replaying the journal: {e}"));
    assert_eq!(snapshot.run, Some(RunState::Succeeded));
    assert_eq!(snapshot.tasks["train"].outputs, Some(outputs()));

    store.create_run(record("run-c", 3_000)).unwrap_or_else(|e| panic!("create_run: {e}"));
    let (threads, per_thread) = (4, 50);
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                for i in 0..per_thread {
                    let event = Event::task(format!("t{t}-{i}"), TaskState::Queued, 1);
                    store.append("run-c", 0, event).unwrap_or_else(|e| panic!("concurrent append: {e}"));
                }
            });
        }
    });
    let journal = store.journal("run-c").unwrap_or_else(|e| panic!("journal: {e}"));
    assert_eq!(journal.len(), threads * per_thread, "concurrent appends are all kept");
    assert!(
        journal.iter().enumerate().all(|(i, e)| e.seq == i as u64),
        "concurrent appends get distinct, consecutive numbers"
    );
    for t in 0..threads {
        let mine: Vec<&str> = journal
            .iter()
            .filter_map(|e| match &e.event {
                Event::Task { task, .. } if task.starts_with(&format!("t{t}-")) => Some(task.as_str()),
                _ => None,
            })
            .collect();
        let expected: Vec<String> = (0..per_thread).map(|i| format!("t{t}-{i}")).collect();
        assert_eq!(mine, expected, "one writer's appends keep their order");
    }
}

/// Checks the promises of [`Cache`] on an empty cache: a miss is `None`, a
/// put is read back intact, keys do not interfere, and a second put replaces
/// the first.
pub fn cache_conformance(cache: &dyn Cache) {
    let (a, b) = (CacheKey::custom("conformance-a"), CacheKey::custom("conformance-b"));
    assert_eq!(cache.get(&a).unwrap_or_else(|e| panic!("get: {e}")), None, "a new cache misses");
    let first = CacheEntry { outputs: outputs(), created_ms: 1_000, run: "r1".to_owned(), task: "train".to_owned() };
    cache.put(&a, first.clone()).unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(cache.get(&a).unwrap_or_else(|e| panic!("get: {e}")), Some(first), "a put is read back intact");
    assert_eq!(cache.get(&b).unwrap_or_else(|e| panic!("get: {e}")), None, "keys do not interfere");
    let second = CacheEntry {
        outputs: TaskOutputs::default(),
        created_ms: 2_000,
        run: "r2".to_owned(),
        task: "train".to_owned(),
    };
    cache.put(&a, second.clone()).unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(cache.get(&a).unwrap_or_else(|e| panic!("get: {e}")), Some(second), "the newest put wins");
}
