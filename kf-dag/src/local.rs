//! [`LocalRuns`]: everything runs keep on this machine, under one directory —
//! what `kf pipeline run|resume|list --store` points at.
//!
//! ```text
//! <root>/artifacts/<run>/<task…>/<output>   artifacts (a file:// ArtifactStore)
//! <root>/runs/<run>/run.json, journal.jsonl  the durable journal (FileRunStore)
//! <root>/pipelines/<run>.json               the pipeline the run ran (kf format)
//! <root>/pipelines/<run>.kfp.json           … or, for a kfp-compiled one, its KFP documents
//! <root>/cache/<key>.json                    the step cache (ObjectStoreCache)
//! <root>/work/<run>/<task…>/attempt-N/       process work directories
//! ```
//!
//! It wires the adapters together; it holds no scheduling logic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::artifact::ArtifactStore;
use crate::cache::ObjectStoreCache;
use crate::exec::Executor;
use crate::ir::Pipeline;
use crate::journal::FileRunStore;
use crate::kfp::KfpPipeline;
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
    /// Where cache entries live: an object store and the prefix in it.
    cache: ArtifactStore,
}

/// The artifact store (`<url>/artifacts`) and the cache store (`<url>/cache`) under `url`.
fn object_stores(url: &str) -> Result<(ArtifactStore, ArtifactStore)> {
    let url = url.trim_end_matches('/');
    Ok((ArtifactStore::from_url(&format!("{url}/artifacts"))?, ArtifactStore::from_url(&format!("{url}/cache"))?))
}

/// The pipeline a run ran, in the form it was given.
#[derive(Debug, Clone, PartialEq)]
pub enum SavedPipeline {
    /// kf's own format.
    Kf(Box<Pipeline>),
    /// Compiled by kfp: its containers speak KFP's executor contract.
    Kfp(Box<KfpPipeline>),
}

impl SavedPipeline {
    /// The pipeline as IR.
    pub fn to_pipeline(&self) -> Result<Pipeline> {
        match self {
            SavedPipeline::Kf(p) => Ok((**p).clone()),
            SavedPipeline::Kfp(k) => k.to_pipeline(),
        }
    }
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
        let (artifacts, cache) = object_stores(&format!("file://{}", root.display()))?;
        Ok(LocalRuns { root, runs, artifacts, cache })
    }

    /// Keeps artifacts and the step cache in the object store at `url`
    /// (`<url>/artifacts/…`, `<url>/cache/…`; e.g. `s3://bucket/kf` with
    /// feature `s3`, configured from `AWS_*` variables as
    /// [`ArtifactStore::from_url`] says) instead of under the root; journals
    /// and work directories stay local.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let runs = kf_dag::local::LocalRuns::open(&dir.path().display().to_string())?
    ///     .with_objects("memory:///kf")?;
    /// assert_eq!(runs.artifacts().root_uri(), "memory:///kf/artifacts");
    /// # Ok::<(), kf_dag::Error>(())
    /// ```
    pub fn with_objects(self, url: &str) -> Result<Self> {
        let (artifacts, cache) = object_stores(url)?;
        Ok(self.with_object_stores(artifacts, cache))
    }

    /// Keeps artifacts in `artifacts` and cache entries in `cache` (each
    /// under its prefix), e.g. stores built with
    /// [`ArtifactStore::from_url_with`] and explicit options.
    pub fn with_object_stores(mut self, artifacts: ArtifactStore, cache: ArtifactStore) -> Self {
        self.artifacts = artifacts;
        self.cache = cache;
        self
    }

    /// Where artifacts are kept.
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
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
        self.executor_with(ProcessRunner::new(self.work_dir()), functions, cache)
    }

    /// Where runners keep per-attempt work directories (`<root>/work`).
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    /// An executor over this store whose container executors run with
    /// `containers` (e.g. a [`crate::runner::KfpRunner`] on
    /// [`LocalRuns::work_dir`] for pipelines compiled by kfp).
    pub fn executor_with(
        &self,
        containers: impl crate::runner::TaskRunner + 'static,
        functions: FunctionRunner,
        cache: bool,
    ) -> Result<Executor> {
        let runner = ByExecutorKind::new().containers(containers).functions(functions);
        let mut executor = Executor::new(runner).store(self.runs.clone()).artifacts(self.artifacts.clone());
        if cache {
            let store = self.cache.object_store().clone();
            executor = executor.cache(Arc::new(ObjectStoreCache::new(store, self.cache.prefix().clone())));
        }
        Ok(executor)
    }

    fn pipeline_path(&self, run: &str, suffix: &str) -> Result<PathBuf> {
        crate::artifact::check_segment(run)
            .map_err(|message| Error::Store { message: format!("run id {run:?}: {message}") })?;
        Ok(self.root.join("pipelines").join(format!("{run}{suffix}")))
    }

    /// Keeps the pipeline run `run` is about to run, so `resume` needs only
    /// the run id. Fails if the id was used before (nothing is overwritten).
    pub fn save_pipeline(&self, run: &str, pipeline: &SavedPipeline) -> Result<()> {
        use std::io::Write;
        let (path, value) = match pipeline {
            SavedPipeline::Kf(p) => (self.pipeline_path(run, ".json")?, crate::format::to_value(p)),
            SavedPipeline::Kfp(k) => (self.pipeline_path(run, ".kfp.json")?, Value::Array(k.to_values())),
        };
        let failed = |e: std::io::Error| Error::Store { message: format!("{}: cannot write: {e}", path.display()) };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        for suffix in [".json", ".kfp.json"] {
            if self.pipeline_path(run, suffix)?.exists() {
                return Err(Error::Store { message: format!("a run with id {run:?} already exists") });
            }
        }
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Store { message: format!("a run with id {run:?} already exists") }
            } else {
                failed(e)
            }
        })?;
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        file.write_all(text.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)
    }

    /// The pipeline run `run` ran.
    pub fn load_pipeline(&self, run: &str) -> Result<SavedPipeline> {
        let kfp = self.pipeline_path(run, ".kfp.json")?;
        let (path, is_kfp) = if kfp.exists() { (kfp, true) } else { (self.pipeline_path(run, ".json")?, false) };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Store {
            message: format!("run {run:?}: cannot read its pipeline at {}: {e}", path.display()),
        })?;
        if !is_kfp {
            return crate::format::from_str(&text).map(|p| SavedPipeline::Kf(Box::new(p)));
        }
        let docs: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| Error::Store { message: format!("{}: not a saved KFP pipeline: {e}", path.display()) })?;
        KfpPipeline::from_values(&docs).map(|k| SavedPipeline::Kfp(Box::new(k)))
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
