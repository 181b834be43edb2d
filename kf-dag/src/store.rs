//! [`RunStore`]: where run journals live, with an in-memory implementation.
//!
//! A store is an append-only log per run: it assigns sequence numbers and
//! keeps entries in order; it does not interpret them (that is
//! [`RunSnapshot::replay`]). Durable stores (a file, SQLite) implement the
//! same trait and pass the same suite, [`crate::testing::run_store_conformance`].
//!
//! The trait is synchronous: appends are small and a durable store flushes
//! each one before returning, which an async executor wraps in
//! `spawn_blocking`; keeping it sync keeps it object-safe and testable
//! without a runtime.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::run::{Entry, Event, RunSnapshot};
use crate::{Error, Result};

/// What a store knows about a run besides its journal.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Unique id, chosen by the caller (`kf pipeline run --run-id`) or generated.
    pub id: String,
    /// Name of the pipeline run.
    pub pipeline: String,
    /// Milliseconds since the Unix epoch when the run was created.
    pub created_ms: u64,
    /// The pipeline parameters the run was started with.
    pub parameters: BTreeMap<String, Value>,
}

/// An append-only journal of task state transitions, one per run.
pub trait RunStore: Send + Sync {
    /// Records a new run with an empty journal; fails if the id is taken.
    fn create_run(&self, run: RunRecord) -> Result<()>;

    /// Every run, oldest first (ties by id).
    fn runs(&self) -> Result<Vec<RunRecord>>;

    /// Appends `event` to run `run`'s journal and returns its sequence
    /// number (0 for the first entry, then consecutive). Once this returns,
    /// the entry survives whatever the store promises to survive (for a
    /// durable store: a crash of the process, or of the machine for entries
    /// that [must be durable](crate::run::Event::must_be_durable); a store
    /// may hold the others until the next such entry, since a resume derives
    /// them again). Entries survive in order: never a later one without
    /// the earlier.
    fn append(&self, run: &str, at_ms: u64, event: Event) -> Result<u64>;

    /// Run `run`'s journal, in sequence order; fails for an unknown run.
    fn journal(&self, run: &str) -> Result<Vec<Entry>>;
}

/// Conveniences over any [`RunStore`].
pub trait RunStoreExt: RunStore {
    /// The run's state, replayed from its journal.
    fn snapshot(&self, run: &str) -> Result<RunSnapshot> {
        RunSnapshot::replay(&self.journal(run)?)
    }
}

impl<S: RunStore + ?Sized> RunStoreExt for S {}

/// A [`RunStore`] in memory: for tests and runs that need not survive the process.
#[derive(Debug, Default)]
pub struct InMemoryRunStore {
    runs: Mutex<BTreeMap<String, (RunRecord, Vec<Entry>)>>,
}

impl InMemoryRunStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, (RunRecord, Vec<Entry>)>> {
        // A panic while holding the lock cannot leave a half-written entry
        // (each operation is one push or insert), so a poisoned lock is safe to reuse.
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn no_run(run: &str) -> Error {
    Error::Store { message: format!("no run with id {run:?}") }
}

impl RunStore for InMemoryRunStore {
    fn create_run(&self, run: RunRecord) -> Result<()> {
        let mut runs = self.lock();
        if runs.contains_key(&run.id) {
            return Err(Error::Store { message: format!("a run with id {:?} already exists", run.id) });
        }
        runs.insert(run.id.clone(), (run, Vec::new()));
        Ok(())
    }

    fn runs(&self) -> Result<Vec<RunRecord>> {
        let mut records: Vec<RunRecord> = self.lock().values().map(|(r, _)| r.clone()).collect();
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(records)
    }

    fn append(&self, run: &str, at_ms: u64, event: Event) -> Result<u64> {
        let mut runs = self.lock();
        let (_, journal) = runs.get_mut(run).ok_or_else(|| no_run(run))?;
        let seq = journal.len() as u64;
        journal.push(Entry { seq, at_ms, event });
        Ok(seq)
    }

    fn journal(&self, run: &str) -> Result<Vec<Entry>> {
        self.lock().get(run).map(|(_, journal)| journal.clone()).ok_or_else(|| no_run(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_memory_store_passes_the_conformance_suite() {
        crate::testing::run_store_conformance(&InMemoryRunStore::new());
    }

    /// A store that loses the last entry of every journal: the suite must notice.
    struct LossyStore(InMemoryRunStore);

    impl RunStore for LossyStore {
        fn create_run(&self, run: RunRecord) -> Result<()> {
            self.0.create_run(run)
        }
        fn runs(&self) -> Result<Vec<RunRecord>> {
            self.0.runs()
        }
        fn append(&self, run: &str, at_ms: u64, event: Event) -> Result<u64> {
            self.0.append(run, at_ms, event)
        }
        fn journal(&self, run: &str) -> Result<Vec<Entry>> {
            let mut journal = self.0.journal(run)?;
            journal.pop();
            Ok(journal)
        }
    }

    #[test]
    #[should_panic(expected = "every appended entry is kept")]
    fn the_suite_catches_a_store_that_loses_entries() {
        crate::testing::run_store_conformance(&LossyStore(InMemoryRunStore::new()));
    }
}
