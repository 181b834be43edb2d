//! The model repository: which models are served under which names and
//! versions, and in which state (loading, ready, failed). It answers the
//! protocol's metadata, readiness and inference calls by name and optional
//! version, and is the one place a request is checked against the model's
//! metadata before the model sees it.
//!
//! The core ([`ModelRepository`]) is plain data behind a lock and does no IO.
//! [`ModelRepository::load_dir`] is the thin adapter that reads the
//! `<repo>/<model>/<version>/model.onnx` layout from a local directory,
//! through a loader function, so it works with any runtime.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use crate::model::Model;
use crate::model_config::{self, CONFIG_FILES, ModelConfig};
use crate::protocol::{InferenceRequest, InferenceResponse, ModelMetadata};
use crate::{Error, Result};

/// The load state of one model version.
#[derive(Clone)]
pub enum ModelState {
    /// Being loaded: known, not yet serving (503).
    Loading,
    /// Serving.
    Ready(Arc<dyn Model>),
    /// Loading failed, with why (503 until reloaded or unloaded).
    Failed(String),
}

impl std::fmt::Debug for ModelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelState::Loading => f.write_str("Loading"),
            ModelState::Ready(m) => f.debug_tuple("Ready").field(&m.metadata().platform).finish(),
            ModelState::Failed(why) => f.debug_tuple("Failed").field(why).finish(),
        }
    }
}

impl ModelState {
    /// The state's name as the repository index reports it: `LOADING`,
    /// `READY` or `UNAVAILABLE` (Triton's words).
    pub fn as_str(&self) -> &'static str {
        match self {
            ModelState::Loading => "LOADING",
            ModelState::Ready(_) => "READY",
            ModelState::Failed(_) => "UNAVAILABLE",
        }
    }
}

/// One row of [`ModelRepository::index`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexEntry {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `LOADING`, `READY` or `UNAVAILABLE`.
    pub state: String,
    /// Why the version is not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Orders versions numerically when both are numbers (so `10` is newer than
/// `9`), otherwise as strings. Numbers sort before non-numbers so the order
/// is total.
fn version_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Models by name, each with versions in a load state.
///
/// Requests without a version go to the newest *ready* version (numeric
/// order when versions are numbers). Reads take a shared lock for the time of
/// a map lookup and clone an `Arc`; inference runs outside the lock, so a
/// load or unload never waits for a running request, and a request keeps the
/// model it started with.
///
/// ```
/// use std::sync::Arc;
/// use kf_serve::{FnModel, ModelRepository};
/// use kf_serve::protocol::{DataType, InferenceRequest, InferenceResponse, MetadataTensor, ModelMetadata, Tensor};
///
/// let meta = ModelMetadata {
///     name: "echo".into(), versions: None, platform: "closure".into(),
///     inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Int64, shape: vec![-1] }],
///     outputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Int64, shape: vec![-1] }],
/// };
/// let echo = FnModel::new(meta, |r: &InferenceRequest| Ok(InferenceResponse { outputs: r.inputs.clone(), ..Default::default() }));
/// let repo = ModelRepository::new();
/// repo.insert("echo", "1", Arc::new(echo));
///
/// let request = InferenceRequest { id: Some("a".into()), inputs: vec![Tensor::new("x", vec![1], vec![7i64])?], ..Default::default() };
/// let response = repo.infer("echo", None, &request)?;
/// assert_eq!((response.model_name.as_str(), response.model_version.as_deref(), response.id.as_deref()), ("echo", Some("1"), Some("a")));
/// assert_eq!(repo.metadata("echo", None)?.versions, Some(vec!["1".to_string()]));
/// assert_eq!(repo.infer("echo", Some("2"), &request).unwrap_err().class().http_status(), 404);
/// # Ok::<(), kf_serve::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ModelRepository {
    models: RwLock<BTreeMap<String, BTreeMap<String, ModelState>>>,
}

impl ModelRepository {
    /// An empty repository.
    pub fn new() -> Self {
        ModelRepository::default()
    }

    // A panic while holding the lock cannot leave the map half-written (every
    // write is one insert or remove), so a poisoned lock is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, BTreeMap<String, ModelState>>> {
        self.models.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, BTreeMap<String, ModelState>>> {
        self.models.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the state of `name` version `version`, replacing any previous
    /// state (this is how a reload swaps models without a gap). O(log n).
    pub fn set_state(&self, name: &str, version: &str, state: ModelState) {
        self.write().entry(name.to_string()).or_default().insert(version.to_string(), state);
    }

    /// Serves `model` as `name` version `version`. O(log n).
    pub fn insert(&self, name: &str, version: &str, model: Arc<dyn Model>) {
        self.set_state(name, version, ModelState::Ready(model));
    }

    /// Stops serving one version of `name`, or every version when `version`
    /// is `None`; requests already running finish on the model they hold.
    /// Unknown names or versions are 404-class errors. O(log n).
    pub fn remove(&self, name: &str, version: Option<&str>) -> Result<()> {
        let mut models = self.write();
        let not_found = || Error::ModelNotFound { model: name.to_string(), version: version.map(str::to_string) };
        match version {
            None => models.remove(name).map(|_| ()).ok_or_else(not_found),
            Some(v) => {
                let versions = models.get_mut(name).ok_or_else(not_found)?;
                versions.remove(v).ok_or_else(not_found)?;
                if versions.is_empty() {
                    models.remove(name);
                }
                Ok(())
            }
        }
    }

    /// The state of `name` at `version`, or of its newest ready version (else
    /// its newest version) when `version` is `None`, with the version chosen.
    /// O(log n + versions).
    pub fn state(&self, name: &str, version: Option<&str>) -> Result<(String, ModelState)> {
        let models = self.read();
        let not_found = || Error::ModelNotFound { model: name.to_string(), version: version.map(str::to_string) };
        let versions = models.get(name).ok_or_else(not_found)?;
        let chosen = match version {
            Some(v) => versions.get_key_value(v),
            None => versions
                .iter()
                .filter(|(_, s)| matches!(s, ModelState::Ready(_)))
                .max_by(|a, b| version_order(a.0, b.0))
                .or_else(|| versions.iter().max_by(|a, b| version_order(a.0, b.0))),
        };
        let (v, state) = chosen.ok_or_else(not_found)?;
        Ok((v.clone(), state.clone()))
    }

    /// The ready model serving `name` (at `version`, or the newest ready
    /// one), with its version: 404 when unknown, 503 when loading or failed.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<(String, Arc<dyn Model>)> {
        let (v, state) = self.state(name, version)?;
        match state {
            ModelState::Ready(model) if model.is_ready() => Ok((v, model)),
            ModelState::Ready(_) => Err(not_ready(name, &v, "the model reports it is not ready")),
            ModelState::Loading => Err(not_ready(name, &v, "loading")),
            ModelState::Failed(why) => Err(not_ready(name, &v, &format!("loading failed: {why}"))),
        }
    }

    /// Whether `name` (at `version`) can answer: `Ok(false)` when it exists
    /// but is loading, failed or not ready; 404-class error when unknown.
    pub fn is_ready(&self, name: &str, version: Option<&str>) -> Result<bool> {
        match self.model(name, version) {
            Ok(_) => Ok(true),
            Err(Error::ModelNotReady { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether every known version of every model is ready (the server's
    /// readiness: a server still loading models is not ready). O(n).
    pub fn all_ready(&self) -> bool {
        self.read().values().flat_map(BTreeMap::values).all(|s| matches!(s, ModelState::Ready(m) if m.is_ready()))
    }

    /// The batching statistics of every ready model version that batches,
    /// as `(name, version, stats)`, by name and version. O(n).
    pub fn batch_stats(&self) -> Vec<(String, String, crate::router::batch::BatchStats)> {
        let models = self.read();
        let mut out = Vec::new();
        for (name, versions) in models.iter() {
            for (version, state) in versions {
                if let ModelState::Ready(model) = state
                    && let Some(stats) = model.batch_stats()
                {
                    out.push((name.clone(), version.clone(), stats));
                }
            }
        }
        out
    }

    /// The ready versions of `name`, oldest first.
    fn ready_versions(&self, name: &str) -> Vec<String> {
        let models = self.read();
        let mut versions: Vec<String> = models
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(_, s)| matches!(s, ModelState::Ready(_)))
            .map(|(v, _)| v.clone())
            .collect();
        versions.sort_by(|a, b| version_order(a, b));
        versions
    }

    /// The protocol metadata of `name` (at `version`): the model's platform,
    /// inputs and outputs under the served name, listing the ready versions.
    pub fn metadata(&self, name: &str, version: Option<&str>) -> Result<ModelMetadata> {
        let (_, model) = self.model(name, version)?;
        let mut meta = model.metadata().clone();
        meta.name = name.to_string();
        meta.versions = Some(self.ready_versions(name));
        Ok(meta)
    }

    /// Every model version with its state, by name then version order.
    pub fn index(&self) -> Vec<IndexEntry> {
        let models = self.read();
        let mut rows = Vec::new();
        for (name, versions) in models.iter() {
            let mut versions: Vec<_> = versions.iter().collect();
            versions.sort_by(|a, b| version_order(a.0, b.0));
            for (version, state) in versions {
                rows.push(IndexEntry {
                    name: name.clone(),
                    version: version.clone(),
                    state: state.as_str().to_string(),
                    reason: match state {
                        ModelState::Failed(why) => Some(why.clone()),
                        ModelState::Loading => Some("loading".into()),
                        ModelState::Ready(_) => None,
                    },
                });
            }
        }
        rows
    }

    /// Answers `request` with `name` (at `version`): checks the request
    /// against the model's metadata (400 on any mismatch, before the model
    /// runs), runs the model, echoes the id, names the model and version that
    /// answered, and keeps only the requested outputs. O(request + model).
    pub fn infer(&self, name: &str, version: Option<&str>, request: &InferenceRequest) -> Result<InferenceResponse> {
        let (v, model) = self.model(name, version)?;
        model.metadata().check_request(request)?;
        let mut response = model.infer(request)?;
        response.model_name = name.to_string();
        response.model_version = Some(v);
        response.id.clone_from(&request.id);
        response.retain_requested(request)?;
        Ok(response)
    }

    /// Loads every `<dir>/<model>/<version>/model.onnx` with `load` and serves
    /// it as `<model>` version `<version>` (directories that do not follow
    /// the layout are skipped), configured by `<dir>/<model>/config.toml`
    /// (or `.json`, see [`crate::model_config`]) when there is one. Each
    /// version is `LOADING` while `load` runs, then `READY`, or `UNAVAILABLE`
    /// with the loader's (or the config's) error, so one broken model never
    /// stops the others. Returns the versions found. For object stores and
    /// reloads, see `store::RepositoryStore` (feature `store`).
    ///
    /// O(directory entries) plus the loads.
    pub fn load_dir(
        &self,
        dir: &Path,
        load: impl Fn(&str, &Path) -> Result<Arc<dyn Model>>,
    ) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for (name, version, file) in model_files(dir)? {
            self.set_state(&name, &version, ModelState::Loading);
            let config = read_config(&dir.join(&name), &name);
            let state = match config.and_then(|config| config.apply(&name, load(&name, &file)?)) {
                Ok(model) => ModelState::Ready(model),
                Err(e) => ModelState::Failed(e.to_string()),
            };
            self.set_state(&name, &version, state);
            found.push((name, version));
        }
        Ok(found)
    }
}

fn not_ready(name: &str, version: &str, reason: &str) -> Error {
    Error::ModelNotReady { model: name.to_string(), reason: format!("version {version:?}: {reason}") }
}

/// The configuration in `model_dir`: the first of [`CONFIG_FILES`] there,
/// else the default.
fn read_config(model_dir: &Path, name: &str) -> Result<ModelConfig> {
    for file in CONFIG_FILES {
        match std::fs::read(model_dir.join(file)) {
            Ok(bytes) => return model_config::read(name, file, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::ModelLoad { model: name.to_string(), message: format!("{name}/{file}: {e}") }),
        }
    }
    Ok(ModelConfig::default())
}

/// The model file name in a repository layout.
pub const MODEL_FILE: &str = "model.onnx";

/// Lists `(model, version, path)` for every `<dir>/<model>/<version>/model.onnx`,
/// sorted. Names that are not UTF-8 are skipped.
fn model_files(dir: &Path) -> Result<Vec<(String, String, PathBuf)>> {
    let io = |path: &Path, e: std::io::Error| Error::ModelLoad {
        model: path.display().to_string(),
        message: format!("cannot read the model repository: {e}"),
    };
    let subdirs = |path: &Path| -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
            let entry = entry.map_err(|e| io(path, e))?;
            let p = entry.path();
            if let (true, Some(name)) = (p.is_dir(), entry.file_name().to_str()) {
                out.push((name.to_string(), p));
            }
        }
        Ok(out)
    };
    let mut files = Vec::new();
    for (model, model_dir) in subdirs(dir)? {
        for (version, version_dir) in subdirs(&model_dir)? {
            let file = version_dir.join(MODEL_FILE);
            if file.is_file() {
                files.push((model.clone(), version, file));
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use crate::model::FnModel;
    use crate::protocol::{DataType, MetadataTensor, RequestedOutput, Tensor};
    use proptest::prelude::*;

    fn meta() -> ModelMetadata {
        ModelMetadata {
            name: "inner".into(),
            versions: None,
            platform: "closure".into(),
            inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Int64, shape: vec![-1] }],
            outputs: vec![
                MetadataTensor { name: "x".into(), datatype: DataType::Int64, shape: vec![-1] },
                MetadataTensor { name: "tag".into(), datatype: DataType::Bytes, shape: vec![1] },
            ],
        }
    }

    /// A model echoing `x` and tagging the answer with `tag`.
    fn tagged(tag: &str) -> Arc<dyn Model> {
        let tag = tag.as_bytes().to_vec();
        Arc::new(FnModel::new(meta(), move |r: &InferenceRequest| {
            Ok(InferenceResponse {
                model_name: "ignored".into(),
                outputs: vec![r.inputs[0].clone(), Tensor::new("tag", vec![1], vec![tag.clone()])?],
                ..Default::default()
            })
        }))
    }

    fn request() -> InferenceRequest {
        InferenceRequest {
            id: Some("r1".into()),
            inputs: vec![Tensor::new("x", vec![2], vec![1i64, 2]).expect("t")],
            ..Default::default()
        }
    }

    fn tag_of(r: &InferenceResponse) -> String {
        match r.outputs.iter().find(|t| t.name() == "tag").map(Tensor::data) {
            Some(crate::protocol::TensorData::Bytes(v)) => String::from_utf8(v[0].clone()).expect("utf8"),
            other => panic!("no tag: {other:?}"),
        }
    }

    #[test]
    fn unversioned_requests_go_to_the_newest_ready_version() {
        let repo = ModelRepository::new();
        repo.insert("m", "9", tagged("nine"));
        repo.insert("m", "10", tagged("ten"));
        repo.set_state("m", "11", ModelState::Loading);
        let r = repo.infer("m", None, &request()).expect("infer");
        assert_eq!((tag_of(&r), r.model_version.as_deref(), r.model_name.as_str()), ("ten".into(), Some("10"), "m"));
        assert_eq!(tag_of(&repo.infer("m", Some("9"), &request()).expect("v9")), "nine");
        let err = repo.infer("m", Some("11"), &request()).expect_err("loading");
        assert_eq!(err.class(), ErrorClass::Unavailable);
        assert!(!repo.all_ready());
        assert!(!repo.is_ready("m", Some("11")).expect("known"));
        assert!(repo.is_ready("m", None).expect("known"));
        assert_eq!(repo.metadata("m", None).expect("meta").versions, Some(vec!["9".into(), "10".into()]));
    }

    #[test]
    fn unknown_models_and_versions_are_not_found() {
        let repo = ModelRepository::new();
        repo.insert("m", "1", tagged("one"));
        for (name, version) in [("nope", None), ("m", Some("2")), ("nope", Some("1"))] {
            let err = repo.infer(name, version, &request()).expect_err("unknown");
            assert_eq!(err.class(), ErrorClass::NotFound, "{name} {version:?}");
            assert_eq!(repo.is_ready(name, version).expect_err("unknown").class(), ErrorClass::NotFound);
        }
        assert_eq!(repo.remove("m", Some("2")).expect_err("unknown").class(), ErrorClass::NotFound);
    }

    #[test]
    fn requests_are_checked_and_outputs_selected() {
        let repo = ModelRepository::new();
        repo.insert("m", "1", tagged("one"));
        let mut bad = request();
        bad.inputs = vec![Tensor::new("x", vec![1], vec![1.0f32]).expect("t")];
        let err = repo.infer("m", None, &bad).expect_err("wrong datatype");
        assert_eq!(err.to_string(), "tensor \"x\": expected datatype INT64, found FP32");
        let mut only_tag = request();
        only_tag.outputs = Some(vec![RequestedOutput::new("tag")]);
        let r = repo.infer("m", None, &only_tag).expect("infer");
        assert_eq!(r.outputs.len(), 1);
        assert_eq!(r.id.as_deref(), Some("r1"));
    }

    #[test]
    fn failed_loads_are_unavailable_with_their_reason_and_reload_replaces_them() {
        let repo = ModelRepository::new();
        repo.set_state("m", "1", ModelState::Failed("bad file".into()));
        let err = repo.infer("m", None, &request()).expect_err("failed");
        assert_eq!(err.class(), ErrorClass::Unavailable);
        assert!(err.to_string().contains("bad file"), "{err}");
        assert_eq!(repo.index()[0].state, "UNAVAILABLE");
        repo.insert("m", "1", tagged("fixed"));
        assert_eq!(tag_of(&repo.infer("m", None, &request()).expect("reloaded")), "fixed");
        assert!(repo.all_ready());
    }

    #[test]
    fn unloading_removes_versions_then_the_model() {
        let repo = ModelRepository::new();
        repo.insert("m", "1", tagged("one"));
        repo.insert("m", "2", tagged("two"));
        let (_, held) = repo.model("m", Some("2")).expect("held");
        repo.remove("m", Some("2")).expect("unload v2");
        assert_eq!(tag_of(&repo.infer("m", None, &request()).expect("v1")), "one");
        assert!(held.infer(&request()).is_ok(), "a model already handed out keeps working");
        repo.remove("m", None).expect("unload all");
        assert!(repo.index().is_empty());
        assert_eq!(repo.metadata("m", None).expect_err("gone").class(), ErrorClass::NotFound);
    }

    #[test]
    fn directories_follow_the_model_version_layout() {
        let dir = std::env::temp_dir().join(format!("kf-serve-repo-{}", std::process::id()));
        for (model, version) in [("a", "1"), ("a", "2"), ("b", "7")] {
            std::fs::create_dir_all(dir.join(model).join(version)).expect("mkdir");
            std::fs::write(dir.join(model).join(version).join(MODEL_FILE), model).expect("write");
        }
        std::fs::create_dir_all(dir.join("c").join("1")).expect("no model file: skipped");
        let repo = ModelRepository::new();
        let found = repo
            .load_dir(&dir, |name, path| {
                if name == "b" {
                    return Err(Error::ModelLoad { model: name.into(), message: "unsupported".into() });
                }
                assert!(path.ends_with(MODEL_FILE));
                Ok(tagged(name))
            })
            .expect("reads");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(found, [("a".into(), "1".into()), ("a".into(), "2".into()), ("b".into(), "7".into())]);
        let states: Vec<_> = repo.index().into_iter().map(|e| (e.name, e.version, e.state)).collect();
        assert_eq!(
            states,
            [
                ("a".into(), "1".into(), "READY".into()),
                ("a".into(), "2".into(), "READY".into()),
                ("b".into(), "7".into(), "UNAVAILABLE".into())
            ]
        );
        assert!(repo.load_dir(Path::new("/nonexistent/kf-serve"), |_, _| Ok(tagged("x"))).is_err());
    }

    proptest! {
        #[test]
        fn version_order_is_a_total_order(a in "[0-9a-c]{0,3}", b in "[0-9a-c]{0,3}", c in "[0-9a-c]{0,3}") {
            prop_assert_eq!(version_order(&a, &b), version_order(&b, &a).reverse());
            prop_assert_eq!(version_order(&a, &b) == Ordering::Equal, a == b);
            if version_order(&a, &b) != Ordering::Greater && version_order(&b, &c) != Ordering::Greater {
                prop_assert_ne!(version_order(&a, &c), Ordering::Greater);
            }
        }

        #[test]
        fn the_default_version_is_the_newest_ready_one(versions in prop::collection::btree_map(0u32..50, any::<bool>(), 1..6)) {
            let repo = ModelRepository::new();
            for (v, ready) in &versions {
                let state = if *ready { ModelState::Ready(tagged(&v.to_string())) } else { ModelState::Loading };
                repo.set_state("m", &v.to_string(), state);
            }
            let newest_ready = versions.iter().filter(|(_, r)| **r).map(|(v, _)| *v).max();
            match (repo.infer("m", None, &request()), newest_ready) {
                (Ok(r), Some(v)) => prop_assert_eq!(r.model_version, Some(v.to_string())),
                (Err(e), None) => prop_assert_eq!(e.class(), ErrorClass::Unavailable),
                (got, want) => prop_assert!(false, "{:?} vs {:?}", got.map(|r| r.model_version), want),
            }
        }
    }
}
