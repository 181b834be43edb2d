//! [`LocalRuns`]: everything runs keep on this machine, under one directory —
//! what `kf pipeline run|resume|list --store` points at.
//!
//! ```text
//! <root>/artifacts/<run>/<task…>/<output>   artifacts (a file:// ArtifactStore)
//! <root>/runs/<run>/run.json, journal.jsonl  the durable journal (FileRunStore)
//! <root>/pipelines/<run>.json               the pipeline the run ran (kf format)
//! <root>/cache/<key>.json                    the step cache (ObjectStoreCache)
//! <root>/work/<run>/<task…>/attempt-N/       process work directories
//! ```
//!
//! It wires the adapters together; it holds no scheduling logic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::artifact::ArtifactStore;
use crate::cache::ObjectStoreCache;
use crate::exec::Executor;
use crate::ir::Pipeline;
use crate::journal::FileRunStore;
use crate::run::{RunState, TaskState};
use crate::runner::{ByExecutorKind, FunctionRunner, ProcessRunner};
use crate::store::{RunRecord, RunStore, RunStoreExt};
use crate::{Error, Result};

/// Runs kept in a local directory.
#[derive(Debug)]
pub struct LocalRuns {
    root: PathBuf,
    runs: Arc<FileRunStore>,
    artifacts: ArtifactStore,
}

/// One line of [`LocalRuns::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunListing {
    /// The run as created.
    pub record: RunRecord,
    /// Its last recorded state (`None` if it never started).
    pub state: Option<RunState>,
    /// Task instances by final state, e.g. `[("succeeded", 3)]`.
    pub tasks: Vec<(TaskState, usize)>,
}

impl LocalRuns {
    /// Opens (creating) the store at `location`: a directory path or a
    /// `file://` URL.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let runs = kf_dag::local::LocalRuns::open(&dir.path().display().to_string())?;
    /// assert!(runs.list()?.is_empty());
    /// # Ok::<(), kf_dag::Error>(())
    /// ```
    pub fn open(location: &str) -> Result<Self> {
        let path = match location.split_once("://") {
            Some(("file", rest)) => PathBuf::from(rest),
            Some((scheme, _)) => {
                return Err(Error::Store {
                    message: format!("{location}: local runs need a directory or a file:// URL, not {scheme}://"),
                });
            }
            None => PathBuf::from(location),
        };
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::Store { message: format!("{}: cannot create: {e}", path.display()) })?;
        let root = path
            .canonicalize()
            .map_err(|e| Error::Store { message: format!("{}: cannot resolve: {e}", path.display()) })?;
        let runs = Arc::new(FileRunStore::open(root.join("runs"))?);
        let artifacts = ArtifactStore::from_url(&format!("file://{}", root.join("artifacts").display()))?;
        Ok(LocalRuns { root, runs, artifacts })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run journal store.
    pub fn run_store(&self) -> Arc<FileRunStore> {
        self.runs.clone()
    }

    /// An executor over this store: container executors run as local
    /// processes, `functions` run Rust function executors; the step cache is
    /// on unless `cache` is false.
    pub fn executor(&self, functions: FunctionRunner, cache: bool) -> Result<Executor> {
        let runner = ByExecutorKind::new().containers(ProcessRunner::new(self.root.join("work"))).functions(functions);
        let mut executor = Executor::new(runner).store(self.runs.clone()).artifacts(self.artifacts.clone());
        if cache {
            let cache_store = object_store::local::LocalFileSystem::new_with_prefix(&self.root)
                .map_err(|e| Error::Store { message: format!("{}: {e}", self.root.display()) })?;
            executor = executor.cache(Arc::new(ObjectStoreCache::new(Arc::new(cache_store), "cache".into())));
        }
        Ok(executor)
    }

    fn pipeline_path(&self, run: &str) -> Result<PathBuf> {
        crate::artifact::check_segment(run)
            .map_err(|message| Error::Store { message: format!("run id {run:?}: {message}") })?;
        Ok(self.root.join("pipelines").join(format!("{run}.json")))
    }

    /// Keeps the pipeline run `run` is about to run, so `resume` needs only
    /// the run id. Fails if the id was used before (nothing is overwritten).
    pub fn save_pipeline(&self, run: &str, pipeline: &Pipeline) -> Result<()> {
        use std::io::Write;
        let path = self.pipeline_path(run)?;
        let failed = |e: std::io::Error| Error::Store { message: format!("{}: cannot write: {e}", path.display()) };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Store { message: format!("a run with id {run:?} already exists") }
            } else {
                failed(e)
            }
        })?;
        let text = serde_json::to_string_pretty(&crate::format::to_value(pipeline)).unwrap_or_default();
        file.write_all(text.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)
    }

    /// The pipeline run `run` ran.
    pub fn load_pipeline(&self, run: &str) -> Result<Pipeline> {
        let path = self.pipeline_path(run)?;
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Store {
            message: format!("run {run:?}: cannot read its pipeline at {}: {e}", path.display()),
        })?;
        crate::format::from_str(&text)
    }

    /// Every run, oldest first, with its state and task counts.
    pub fn list(&self) -> Result<Vec<RunListing>> {
        let mut out = Vec::new();
        for record in self.runs.runs()? {
            let snapshot = self.runs.snapshot(&record.id)?;
            let mut counts: std::collections::BTreeMap<TaskState, usize> = Default::default();
            for status in snapshot.tasks.values() {
                *counts.entry(status.state).or_default() += 1;
            }
            out.push(RunListing { record, state: snapshot.run, tasks: counts.into_iter().collect() });
        }
        Ok(out)
    }
}
