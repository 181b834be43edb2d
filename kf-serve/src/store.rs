//! A model repository in any object_store location (feature `store`): a
//! local directory or `file://` URL, `s3://bucket/prefix` (feature `s3`,
//! configured from the `AWS_*` environment like the AWS tools), laid out as
//! `<repo>/<model>/<version>/model.onnx` with an optional
//! `<repo>/<model>/config.toml` ([`crate::model_config`]).
//!
//! [`RepositoryStore`] reads the layout and loads each version with the
//! runtime function it was given (e.g. `OnnxModel::from_bytes`) into a
//! [`ModelRepository`], on tokio's blocking pool. It loads everything at
//! start ([`RepositoryStore::load_all`]) and one model again on demand
//! ([`RepositoryStore::load_model`], the `POST /v2/repository/models/{m}/load`
//! of the repository extension): versions that appeared are loaded, versions
//! that went away stop being served, and a version that was serving keeps
//! serving its old model when its new file fails to load.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kf_serve::store::RepositoryStore;
//! use kf_serve::{FnModel, ModelRepository};
//! use kf_serve::protocol::{InferenceResponse, ModelMetadata};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir_all(dir.path().join("echo/1"))?;
//! std::fs::write(dir.path().join("echo/1/model.onnx"), b"not really onnx")?;
//! // A stand-in runtime: any function from (name, bytes) to a model.
//! let store = RepositoryStore::open(&dir.path().display().to_string(), |name: &str, bytes: &[u8]| {
//!     let metadata = ModelMetadata { name: name.into(), versions: None, platform: format!("{} bytes", bytes.len()), inputs: vec![], outputs: vec![] };
//!     Ok(Arc::new(FnModel::new(metadata, |_: &_| Ok(InferenceResponse::default()))) as Arc<dyn kf_serve::Model>)
//! })?;
//! let repo = ModelRepository::new();
//! assert_eq!(store.load_all(&repo).await?, [("echo".to_string(), "1".to_string())]);
//! assert_eq!(repo.metadata("echo", None)?.platform, "15 bytes");
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::model::Model;
use crate::model_config::{self, CONFIG_FILES, ModelConfig};
use crate::repository::{MODEL_FILE, ModelRepository, ModelState};
use crate::{Error, Result};

/// A runtime: makes the model `name` from a model file's bytes.
pub type LoadFn = Arc<dyn Fn(&str, &[u8]) -> Result<Arc<dyn Model>> + Send + Sync>;

/// A model repository in an object store, and the runtime that loads its files.
#[derive(Clone)]
pub struct RepositoryStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    uri: String,
    load: LoadFn,
}

impl std::fmt::Debug for RepositoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryStore").field("uri", &self.uri).finish_non_exhaustive()
    }
}

/// What one (re)load did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// `(version, why)` of each version that failed to load.
    pub failed: Vec<(String, String)>,
    /// Versions no longer in the store, no longer served.
    pub removed: Vec<String>,
}

impl RepositoryStore {
    /// The repository at `location` (a directory path, `file://`, or with
    /// feature `s3` an `s3://bucket/prefix` URL configured from the `AWS_*`
    /// environment; `AWS_ENDPOINT_URL` names an S3-compatible server), whose
    /// files `load` turns into models. Nothing is read yet; a location that
    /// is not a usable URL or directory fails here, naming it.
    pub fn open(
        location: &str,
        load: impl Fn(&str, &[u8]) -> Result<Arc<dyn Model>> + Send + Sync + 'static,
    ) -> Result<Self> {
        Self::open_with(location, aws_environment(), load)
    }

    /// [`RepositoryStore::open`] with explicit object_store options for
    /// remote stores (e.g. `("aws_endpoint", "http://127.0.0.1:9000")`)
    /// instead of the environment.
    pub fn open_with(
        location: &str,
        options: impl IntoIterator<Item = (String, String)>,
        load: impl Fn(&str, &[u8]) -> Result<Arc<dyn Model>> + Send + Sync + 'static,
    ) -> Result<Self> {
        let bad = |message: String| Error::ModelLoad {
            model: location.to_string(),
            message: format!("not a usable model repository: {message}"),
        };
        let url = match url::Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            // a path (a one-letter "scheme" is a Windows drive)
            _ => {
                let absolute = std::path::absolute(location).map_err(|e| bad(e.to_string()))?;
                url::Url::from_directory_path(&absolute).map_err(|()| bad("not an absolute directory path".into()))?
            }
        };
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = if url.scheme() == "file" {
            let dir = url.to_file_path().map_err(|()| bad("not a local path".into()))?;
            let dir = std::fs::canonicalize(&dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
            (Arc::new(local), Path::default())
        } else {
            let (store, prefix) = object_store::parse_url_opts(&url, options).map_err(|e| bad(e.to_string()))?;
            (Arc::from(store), prefix)
        };
        Ok(RepositoryStore { store, prefix, uri: url.to_string(), load: Arc::new(load) })
    }

    /// The repository's URL.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Every `(model, version)` with a model file, sorted. Objects outside
    /// the layout are ignored. O(objects under the prefix).
    pub async fn scan(&self) -> Result<Vec<(String, String)>> {
        let objects: Vec<_> = self.store.list(Some(&self.prefix)).try_collect().await.map_err(|e| self.storage(&e))?;
        let depth = self.prefix.parts().count();
        let mut found: Vec<(String, String)> = objects
            .iter()
            .filter_map(|meta| {
                let parts: Vec<_> = meta.location.parts().skip(depth).collect();
                match parts.as_slice() {
                    [model, version, file] if file.as_ref() == MODEL_FILE => {
                        Some((model.as_ref().to_string(), version.as_ref().to_string()))
                    }
                    _ => None,
                }
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// Loads every model version of the repository into `repo`: each is
    /// `LOADING`, then `READY` or `UNAVAILABLE` with the reason, so one bad
    /// file never stops the others. Returns the versions found. Fails only
    /// when the store cannot be listed.
    pub async fn load_all(&self, repo: &ModelRepository) -> Result<Vec<(String, String)>> {
        let found = self.scan().await?;
        let mut by_model: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (model, version) in &found {
            by_model.entry(model).or_default().push(version.clone());
        }
        for (model, versions) in by_model {
            self.load_versions(repo, model, &versions).await;
        }
        Ok(found)
    }

    /// Loads `model` again from the store: new versions are loaded, versions
    /// gone from the store are removed, versions already serving are
    /// swapped without a gap — or keep their old model when the new one
    /// fails. A model the store does not have is a 404-class error (and,
    /// if it was being served, it is unloaded).
    pub async fn load_model(&self, repo: &ModelRepository, model: &str) -> Result<LoadReport> {
        let versions: Vec<String> =
            self.scan().await?.into_iter().filter(|(m, _)| m == model).map(|(_, v)| v).collect();
        let served: Vec<String> = repo.index().into_iter().filter(|e| e.name == model).map(|e| e.version).collect();
        let mut report = LoadReport::default();
        for gone in served.iter().filter(|v| !versions.contains(v)) {
            if repo.remove(model, Some(gone)).is_ok() {
                report.removed.push(gone.clone());
            }
        }
        if versions.is_empty() {
            return Err(Error::ModelNotFound { model: model.to_string(), version: None });
        }
        report.failed = self.load_versions(repo, model, &versions).await;
        Ok(report)
    }

    /// Loads each version of `model` (with its config); returns the failures.
    async fn load_versions(&self, repo: &ModelRepository, model: &str, versions: &[String]) -> Vec<(String, String)> {
        for version in versions {
            if !matches!(repo.state(model, Some(version)), Ok((_, ModelState::Ready(_)))) {
                repo.set_state(model, version, ModelState::Loading);
            }
        }
        let config = self.config(model).await;
        let mut failed = Vec::new();
        for version in versions {
            let outcome = match &config {
                Ok(config) => self.load_version(model, version, config.clone()).await,
                Err(e) => Err(Error::ModelLoad { model: model.to_string(), message: e.to_string() }),
            };
            match outcome {
                Ok(loaded) => repo.insert(model, version, loaded),
                Err(e) => {
                    let why = e.to_string();
                    // A serving version keeps its model; the failure is reported.
                    if !matches!(repo.state(model, Some(version)), Ok((_, ModelState::Ready(_)))) {
                        repo.set_state(model, version, ModelState::Failed(why.clone()));
                    }
                    failed.push((version.clone(), why));
                }
            }
        }
        failed
    }

    /// Reads, loads and configures one version, on the blocking pool.
    async fn load_version(&self, model: &str, version: &str, config: ModelConfig) -> Result<Arc<dyn Model>> {
        let location = self.prefix.clone().join(model).join(version).join(MODEL_FILE);
        let bytes = self.store.get(&location).await.map_err(|e| self.storage(&e))?;
        let bytes = bytes.bytes().await.map_err(|e| self.storage(&e))?;
        let (load, name) = (Arc::clone(&self.load), model.to_string());
        tokio::task::spawn_blocking(move || config.apply(&name, load(&name, &bytes)?))
            .await
            .map_err(|e| Error::Internal { message: format!("loading {model:?} stopped: {e}") })?
    }

    /// The model's config file, the first of [`CONFIG_FILES`] that exists;
    /// the default when none does.
    async fn config(&self, model: &str) -> Result<ModelConfig> {
        for file in CONFIG_FILES {
            let location = self.prefix.clone().join(model).join(file);
            let bytes = match self.store.get(&location).await {
                Ok(got) => got.bytes().await.map_err(|e| self.storage(&e))?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.storage(&e)),
            };
            return model_config::read(model, file, &bytes);
        }
        Ok(ModelConfig::default())
    }

    fn storage(&self, e: &object_store::Error) -> Error {
        Error::ModelLoad { model: self.uri.clone(), message: format!("cannot read the model repository: {e}") }
    }
}

#[cfg(feature = "server")]
impl crate::server::RepositoryLoader for RepositoryStore {
    /// [`RepositoryStore::load_model`]; a version that failed is an
    /// [`Error::ModelLoad`] naming it (the others are loaded).
    fn load<'a>(
        &'a self,
        repo: &'a ModelRepository,
        model: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let report = self.load_model(repo, model).await?;
            match report.failed.first() {
                None => Ok(()),
                Some((version, why)) => {
                    Err(Error::ModelLoad { model: model.to_string(), message: format!("version {version}: {why}") })
                }
            }
        })
    }
}

/// object_store's S3 options from the `AWS_*` environment (`AWS_ENDPOINT_URL`
/// as `aws_endpoint`), as the AWS command-line tools read them.
fn aws_environment() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| {
            let key = if k == "AWS_ENDPOINT_URL" { "aws_endpoint".to_owned() } else { k.to_ascii_lowercase() };
            (key, v)
        })
        .collect()
}
