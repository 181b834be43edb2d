//! [`ArtifactStore`]: task outputs as objects in any `object_store` backend
//! (`file://` by default, `memory://`, and whatever URL schemes the enabled
//! object_store features support).
//!
//! An artifact produced by task `t` of run `r` as output `o` lives at
//! `<prefix>/<r>/<t…>/<o>`, where `<t…>` is one path segment per level of the
//! task's execution path (`sweep[2]`, `train`). Every segment is checked to be
//! a safe name (not empty, not `.`/`..`, no `/`, `\\` or control characters)
//! and object_store percent-encodes the rest, so no run id, task name or
//! output name can write outside the run's prefix. This module stores and
//! fetches bytes; it does not know about tasks' states or the cache.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::run::ArtifactRef;
use crate::{Error, Result};

/// Where artifacts are written and read.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// `scheme://authority`, prepended to object paths to form URIs.
    url_root: String,
}

impl ArtifactStore {
    /// A store over `store`, keeping everything under `prefix`; URIs are
    /// `url_root` + `/` + the object path (e.g. `memory://` + `/runs/r/t/o`).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, url_root: impl Into<String>) -> Self {
        ArtifactStore { store, prefix, url_root: url_root.into() }
    }

    /// An in-memory store (`memory:///`), for tests and throw-away runs.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), Path::default(), "memory://")
    }

    /// A store from a URL such as `file:///var/kf/artifacts`, `memory:///`
    /// or (feature `s3`) `s3://bucket/prefix`.
    ///
    /// An `s3://` store is configured from the environment as the AWS tools
    /// are: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`) for an S3-compatible server,
    /// `AWS_ALLOW_HTTP=true` for one without TLS; any `AWS_*` variable
    /// object_store knows is passed on.
    ///
    /// ```
    /// let store = kf_dag::artifact::ArtifactStore::from_url("memory:///artifacts")?;
    /// assert_eq!(store.root_uri(), "memory:///artifacts");
    /// # Ok::<(), kf_dag::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_url_with(url, aws_environment())
    }

    /// [`ArtifactStore::from_url`] with explicit object_store options (e.g.
    /// `("aws_endpoint", "http://127.0.0.1:9000")`) instead of the environment.
    pub fn from_url_with(url: &str, options: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let bad = |message: String| Error::Artifact { location: url.to_owned(), message };
        let parsed = url::Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
        match parsed.scheme() {
            // object_store's LocalFileSystem refuses prefixes that do not exist yet.
            "file" => {
                std::fs::create_dir_all(parsed.path()).map_err(|e| bad(format!("cannot create the directory: {e}")))?
            }
            "s3" | "s3a" if !cfg!(feature = "s3") => {
                return Err(bad("s3:// needs kf-dag's `s3` feature (this build does not have it)".into()));
            }
            _ => {}
        }
        let options: Vec<(String, String)> = match parsed.scheme() {
            "s3" | "s3a" => options.into_iter().collect(),
            _ => Vec::new(),
        };
        let (store, prefix) = object_store::parse_url_opts(&parsed, options).map_err(|e| bad(e.to_string()))?;
        let url_root = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
        Ok(Self::new(Arc::from(store), prefix, url_root))
    }

    /// The URI of the store's prefix.
    pub fn root_uri(&self) -> String {
        format!("{}/{}", self.url_root, self.prefix)
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix every object of this store lives under.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The location of output `output` of the task at `task` (one segment per
    /// level of its execution path) in run `run`. Fails, naming the segment,
    /// when a segment is not a safe path segment.
    ///
    /// ```
    /// use kf_dag::artifact::ArtifactStore;
    /// let store = ArtifactStore::in_memory();
    /// let at = store.location("run-1", &["sweep[2]".into(), "train".into()], "model")?;
    /// assert_eq!(store.uri(&at), "memory:///run-1/sweep%5B2%5D/train/model");
    /// assert!(store.location("run-1", &["..".into()], "model").is_err());
    /// assert!(store.location("../etc", &["t".into()], "model").is_err());
    /// # Ok::<(), kf_dag::Error>(())
    /// ```
    pub fn location(&self, run: &str, task: &[String], output: &str) -> Result<Path> {
        let mut path = self.run_prefix(run)?;
        for segment in task.iter().map(String::as_str).chain([output]) {
            check_segment(segment).map_err(|message| Error::Artifact { location: segment.to_owned(), message })?;
            path = path.join(segment);
        }
        Ok(path)
    }

    /// The prefix of run `run`: everything the run writes is under it.
    pub fn run_prefix(&self, run: &str) -> Result<Path> {
        check_segment(run).map_err(|message| Error::Artifact { location: run.to_owned(), message })?;
        Ok(self.prefix.clone().join(run))
    }

    /// The URI of an object of this store.
    pub fn uri(&self, path: &Path) -> String {
        format!("{}/{}", self.url_root, path)
    }

    /// Writes `bytes` as output `output` of task `task` of run `run` and
    /// returns its reference (URI and `sha256:` content digest).
    pub async fn put(&self, run: &str, task: &[String], output: &str, bytes: Bytes) -> Result<ArtifactRef> {
        let path = self.location(run, task, output)?;
        let digest = digest(&bytes);
        self.put_at(&path, bytes).await?;
        Ok(ArtifactRef { uri: self.uri(&path), digest, metadata: Default::default() })
    }

    /// Writes `bytes` at `path`, which must lie under this store's prefix.
    pub async fn put_at(&self, path: &Path, bytes: Bytes) -> Result<()> {
        if !path.prefix_matches(&self.prefix) {
            return Err(Error::Artifact { location: path.to_string(), message: "outside the store's prefix".into() });
        }
        self.store.put(path, PutPayload::from(bytes)).await.map_err(|e| store_error(path, e))?;
        Ok(())
    }

    /// Reads the object at `path`.
    pub async fn get_at(&self, path: &Path) -> Result<Bytes> {
        let result = self.store.get(path).await.map_err(|e| store_error(path, e))?;
        result.bytes().await.map_err(|e| store_error(path, e))
    }

    /// Reads an artifact of this store by its URI.
    pub async fn get(&self, artifact: &ArtifactRef) -> Result<Bytes> {
        let path = self.path_of(&artifact.uri)?;
        self.get_at(&path).await
    }

    /// The object path of a URI of this store; fails for URIs elsewhere.
    pub fn path_of(&self, uri: &str) -> Result<Path> {
        let outside = || Error::Artifact {
            location: uri.to_owned(),
            message: format!("not an object of this artifact store ({})", self.root_uri()),
        };
        let rest = uri.strip_prefix(&self.url_root).and_then(|r| r.strip_prefix('/')).ok_or_else(outside)?;
        let path =
            Path::parse(rest).map_err(|e| Error::Artifact { location: uri.to_owned(), message: e.to_string() })?;
        if path.prefix_matches(&self.prefix) { Ok(path) } else { Err(outside()) }
    }
}

/// The `AWS_*` environment variables as object_store options
/// (`AWS_ENDPOINT_URL` → `aws_endpoint`, the rest lower-cased).
fn aws_environment() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| {
            let key = if k == "AWS_ENDPOINT_URL" { "aws_endpoint".to_owned() } else { k.to_ascii_lowercase() };
            (key, v)
        })
        .collect()
}

/// `sha256:` + the hex SHA-256 of `bytes`: an artifact's content digest.
///
/// ```
/// assert!(kf_dag::artifact::digest(b"").starts_with("sha256:e3b0c442"));
/// ```
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Checks that `segment` is one safe path segment.
pub(crate) fn check_segment(segment: &str) -> std::result::Result<(), String> {
    if segment.is_empty() {
        Err("a path segment is empty".into())
    } else if segment == "." || segment == ".." {
        Err(format!("{segment:?} may not be a path segment"))
    } else if segment.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        Err(format!("{segment:?} holds '/', '\\' or a control character"))
    } else {
        Ok(())
    }
}

fn store_error(path: &Path, e: object_store::Error) -> Error {
    Error::Artifact { location: path.to_string(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn artifacts_round_trip_with_their_digest() {
        let store = ArtifactStore::in_memory();
        let a = store.put("r", &["t".into()], "o", Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(a.uri, "memory:///r/t/o");
        assert_eq!(a.digest, digest(b"hello"));
        assert_eq!(store.get(&a).await.unwrap(), Bytes::from_static(b"hello"));
        let elsewhere = ArtifactRef { uri: "file:///etc/passwd".into(), ..a };
        assert!(store.get(&elsewhere).await.is_err());
    }

    #[tokio::test]
    async fn a_file_store_writes_under_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/artifacts", dir.path().display());
        let store = ArtifactStore::from_url(&url).unwrap();
        let a = store.put("r", &["loop[0]".into(), "t".into()], "model", Bytes::from_static(b"m")).await.unwrap();
        assert!(a.uri.starts_with(&format!("file://{}/artifacts/r/", dir.path().display())), "{}", a.uri);
        assert_eq!(store.get(&a).await.unwrap(), Bytes::from_static(b"m"));
    }

    proptest! {
        /// Whatever the names, a location is under the run's prefix or refused.
        #[test]
        fn locations_never_leave_the_run_prefix(
            run in "[a-z.]{1,3}|\\.\\.|\\PC{0,6}",
            task in proptest::collection::vec("\\PC{0,6}|\\.\\.|\\.", 0..4),
            output in "\\PC{0,6}|\\.\\.",
        ) {
            let store = ArtifactStore::new(Arc::new(object_store::memory::InMemory::new()), Path::from("root"), "memory://");
            if let Ok(path) = store.location(&run, &task, &output) {
                let prefix = store.run_prefix(&run).unwrap();
                prop_assert!(path.prefix_matches(&prefix));
                prop_assert_eq!(path.parts_count(), prefix.parts_count() + task.len() + 1);
                prop_assert!(path.parts().all(|p| p.as_ref() != ".." && p.as_ref() != "."));
            }
        }
    }
}
