//! [`ArtifactStore`]: the bytes of model files, in any object_store backend
//! (a local directory by default, `memory://`, and `s3://` with feature `s3`).
//!
//! A file is stored at `<prefix>/models/<model id>/versions/<version id>/<name>`.
//! The ids are the registry's (decimal numbers), and the name must pass
//! [`FileName::parse`]: one segment of letters, digits, `.`, `_`, `-` and `+`
//! that does not start with `.`. No part of a key comes from a client's path,
//! so no request can address an object outside the store's root — `..`,
//! absolute paths and percent-encoded separators are all refused before
//! object_store is asked. The key rules ([`FileName`], [`FileKey`]) are plain
//! functions; this module owns bytes only and never touches the registry's
//! records (the server links a stored file to a `ModelArtifact`).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Largest file [`ArtifactStore::put`] accepts unless told otherwise: 4 GiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;
/// Longest file name accepted, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 200;
/// Parts kept in flight while a large file is written.
const UPLOAD_CONCURRENCY: usize = 4;

/// A model file's name: one safe path segment.
///
/// ```
/// use kf_registry::artifact_store::FileName;
/// assert_eq!(FileName::parse("model.onnx")?.as_str(), "model.onnx");
/// for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\\b", ".hidden", "a b", "%2e%2e", "x#1"] {
///     assert!(FileName::parse(bad).is_err(), "{bad:?}");
/// }
/// # Ok::<(), kf_registry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(String);

impl FileName {
    /// Accepts 1 to [`MAX_FILE_NAME_BYTES`] ASCII letters, digits, `.`, `_`,
    /// `-` and `+`, not starting with `.` (so neither `.`, `..` nor hidden
    /// files). Everything else — separators, `%`, `#`, spaces, non-ASCII — is
    /// refused rather than encoded, so a name means the same on every backend.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid("file", format!("{text:?} is not a file name: {why}"));
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.len() > MAX_FILE_NAME_BYTES {
            return Err(bad(&format!("longer than {MAX_FILE_NAME_BYTES} bytes")));
        }
        if text.starts_with('.') {
            return Err(bad("it starts with '.'"));
        }
        if let Some(c) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))) {
            return Err(bad(&format!("{c:?} is not allowed (letters, digits, '.', '_', '-', '+')")));
        }
        Ok(FileName(text.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a file of a model version lives, relative to the store's prefix.
///
/// ```
/// use kf_registry::artifact_store::{FileKey, FileName};
/// let key = FileKey { model: 3, version: 7, file: FileName::parse("model.onnx")? };
/// assert_eq!(key.relative(), "models/3/versions/7/model.onnx");
/// # Ok::<(), kf_registry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKey {
    /// Id of the registered model.
    pub model: i64,
    /// Id of the model version.
    pub version: i64,
    /// The file's name.
    pub file: FileName,
}

impl FileKey {
    /// The directory of a version's files, relative to the store's prefix.
    pub fn version_dir(model: i64, version: i64) -> String {
        format!("models/{model}/versions/{version}")
    }

    /// The key relative to the store's prefix.
    pub fn relative(&self) -> String {
        format!("{}/{}", Self::version_dir(self.model, self.version), self.file)
    }
}

/// A stored file, as [`ArtifactStore::put`] and [`ArtifactStore::list`] describe it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelFile {
    /// The file's name.
    pub name: String,
    /// Where it is, as a URL of the store (`file:///…`, `s3://…`, `memory:///…`).
    pub uri: String,
    /// Its length in bytes.
    pub size: u64,
    /// `sha256:` and the hex digest, when known (after an upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A file being read: its length and its bytes as a stream.
pub struct FileStream {
    /// Length in bytes.
    pub size: u64,
    /// The bytes, in chunks.
    pub bytes: BoxStream<'static, Result<Bytes>>,
}

/// Where model files are written and read: an object store, a prefix in it,
/// and the URL that prefix has (for the `uri` recorded in the registry).
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The URL of `prefix`, without a trailing `/`.
    root_uri: String,
    max_file_bytes: u64,
}

impl ArtifactStore {
    /// A store over `store` keeping everything under `prefix`, whose URL is `root_uri`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, root_uri: impl Into<String>) -> Self {
        let mut root_uri = root_uri.into();
        // `file:///dir/` → `file:///dir`, but `memory://` keeps its authority slashes
        while root_uri.ends_with('/') && !root_uri.ends_with("://") {
            root_uri.pop();
        }
        ArtifactStore { store, prefix, root_uri, max_file_bytes: DEFAULT_MAX_FILE_BYTES }
    }

    /// An in-memory store (`memory://`): files live as long as the process.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), Path::default(), "memory://")
    }

    /// A store at `location`: a directory path (created if missing), a
    /// `file:///` URL (the same), `memory:///`, or (feature `s3`)
    /// `s3://bucket/prefix`, configured from the environment like the AWS
    /// tools (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …).
    ///
    /// A local store is rooted at the directory itself, so even a key that
    /// slipped past [`FileName`] could not leave it.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = kf_registry::artifact_store::ArtifactStore::from_url(&dir.path().display().to_string())?;
    /// assert!(store.root_uri().starts_with("file:///"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_url(location: &str) -> Result<Self> {
        Self::from_url_with(location, aws_environment())
    }

    /// [`ArtifactStore::from_url`] with explicit object_store options for
    /// remote stores (e.g. `("aws_endpoint", "http://127.0.0.1:9000")`)
    /// instead of the environment.
    pub fn from_url_with(location: &str, options: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let bad = |message: String| Error::invalid("artifacts", format!("{location}: {message}"));
        let url = match url::Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            // a path (a one-letter "scheme" is a Windows drive)
            _ => {
                let absolute = std::path::absolute(location).map_err(|e| bad(format!("not a usable path: {e}")))?;
                url::Url::from_directory_path(&absolute).map_err(|()| bad("not an absolute directory path".into()))?
            }
        };
        match url.scheme() {
            "file" => {
                let dir = url.to_file_path().map_err(|()| bad("not a local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(format!("cannot create the directory: {e}")))?;
                let dir = std::fs::canonicalize(&dir).map_err(|e| bad(format!("cannot resolve the directory: {e}")))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| bad(e.to_string()))?
                    .with_automatic_cleanup(true);
                let root = url::Url::from_directory_path(&dir).map_err(|()| bad("not an absolute path".into()))?;
                Ok(Self::new(Arc::new(local), Path::default(), root.as_str()))
            }
            "memory" => {
                let (store, prefix) = object_store::parse_url(&url).map_err(|e| bad(e.to_string()))?;
                Ok(Self::new(Arc::from(store), prefix, url.as_str()))
            }
            _ => {
                let (store, prefix) = object_store::parse_url_opts(&url, options).map_err(|e| bad(e.to_string()))?;
                Ok(Self::new(Arc::from(store), prefix, url.as_str()))
            }
        }
    }

    /// The same store, refusing files over `limit` bytes.
    pub fn with_max_file_bytes(mut self, limit: u64) -> Self {
        self.max_file_bytes = limit;
        self
    }

    /// The largest file [`ArtifactStore::put`] accepts, in bytes.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }

    /// The URL of the store's root.
    pub fn root_uri(&self) -> &str {
        &self.root_uri
    }

    /// The URI a file is recorded under.
    pub fn uri(&self, key: &FileKey) -> String {
        format!("{}/{}", self.root_uri, key.relative())
    }

    fn location(&self, relative: &str) -> Path {
        // Every segment is a decimal id, a fixed word or a `FileName`, all
        // valid object_store path parts, so `parse` cannot fail on them.
        relative.split('/').fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// Writes a file from a stream of chunks, as the chunks arrive (a
    /// multipart upload, so a large file is never held in memory), and
    /// returns its description with the SHA-256 of the bytes. More than
    /// [`ArtifactStore::max_file_bytes`] is [`Error::TooLarge`]; a stream
    /// that fails is [`Error::Invalid`]. Either way the upload is aborted and
    /// nothing is left at the key (an existing file there stays as it was).
    pub async fn put<S, E>(&self, key: &FileKey, mut chunks: S) -> Result<ModelFile>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: fmt::Display,
    {
        let location = self.location(&key.relative());
        let upload = self.store.put_multipart(&location).await.map_err(|e| storage(&location, e))?;
        let mut writer = WriteMultipart::new(upload);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let failure = match chunk {
                Ok(chunk) => {
                    size += chunk.len() as u64;
                    if size > self.max_file_bytes {
                        Error::TooLarge { what: format!("file {}", key.file), limit: self.max_file_bytes }
                    } else {
                        hasher.update(&chunk);
                        match writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                            Ok(()) => {
                                writer.put(chunk);
                                continue;
                            }
                            Err(e) => storage(&location, e),
                        }
                    }
                }
                Err(e) => {
                    Error::invalid("body", format!("the upload of {} broke off after {size} bytes: {e}", key.file))
                }
            };
            let _ = writer.abort().await;
            return Err(failure);
        }
        if size == 0 {
            // some stores refuse a multipart upload without parts
            writer.abort().await.map_err(|e| storage(&location, e))?;
            self.store.put(&location, PutPayload::new()).await.map_err(|e| storage(&location, e))?;
        } else {
            writer.finish().await.map_err(|e| storage(&location, e))?;
        }
        Ok(ModelFile {
            name: key.file.to_string(),
            uri: self.uri(key),
            size,
            sha256: Some(format!("sha256:{}", hex::encode(hasher.finalize()))),
        })
    }

    /// [`ArtifactStore::put`] from a local file, read in 1 MiB chunks.
    pub async fn put_file(&self, key: &FileKey, path: &std::path::Path) -> Result<ModelFile> {
        use tokio::io::AsyncReadExt;
        let unreadable = |e: std::io::Error| Error::invalid("file", format!("cannot read {}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let chunks = futures::stream::try_unfold(file, |mut file| async move {
            let mut chunk = vec![0u8; 1 << 20];
            let n = file.read(&mut chunk).await?;
            chunk.truncate(n);
            Ok::<_, std::io::Error>((n > 0).then(|| (Bytes::from(chunk), file)))
        });
        self.put(key, Box::pin(chunks)).await
    }

    /// Writes a stored file to the local path `to` (replacing what is
    /// there) and returns its size. A failed copy removes the partial file.
    pub async fn save(&self, key: &FileKey, to: &std::path::Path) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut source = self.get(key).await?;
        let unwritable = |e: std::io::Error| Error::invalid("output", format!("cannot write {}: {e}", to.display()));
        let mut out = tokio::fs::File::create(to).await.map_err(unwritable)?;
        let copied = async {
            while let Some(chunk) = source.bytes.next().await {
                out.write_all(&chunk?).await.map_err(unwritable)?;
            }
            out.flush().await.map_err(unwritable)
        }
        .await;
        if copied.is_err() {
            let _ = tokio::fs::remove_file(to).await;
        }
        copied.map(|()| source.size)
    }

    /// Reads a file; [`Error::NotFound`] when there is none at the key.
    pub async fn get(&self, key: &FileKey) -> Result<FileStream> {
        let location = self.location(&key.relative());
        let result = self.store.get(&location).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                Error::NotFound { kind: "file", key: format!("{} of model version {}", key.file, key.version) }
            }
            e => storage(&location, e),
        })?;
        let size = result.meta.size;
        let bytes = result.into_stream().map_err(move |e| storage(&location, e)).boxed();
        Ok(FileStream { size, bytes })
    }

    /// The files of a model version, by name.
    pub async fn list(&self, model: i64, version: i64) -> Result<Vec<ModelFile>> {
        let dir = self.location(&FileKey::version_dir(model, version));
        let objects: Vec<_> = self.store.list(Some(&dir)).try_collect().await.map_err(|e| storage(&dir, e))?;
        let mut files: Vec<ModelFile> = objects
            .into_iter()
            .filter_map(|meta| {
                // only direct children with names this store could have written
                let rest = meta.location.prefix_match(&dir)?.collect::<Vec<_>>();
                let [name] = rest.as_slice() else { return None };
                let file = FileName::parse(name.as_ref()).ok()?;
                let key = FileKey { model, version, file };
                Some(ModelFile { name: key.file.to_string(), uri: self.uri(&key), size: meta.size, sha256: None })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}

/// The `AWS_*` environment variables as object_store options
/// (`AWS_ENDPOINT_URL` → `aws_endpoint`, the rest lower-cased), as kf-dag reads them.
fn aws_environment() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| {
            let key = if k == "AWS_ENDPOINT_URL" { "aws_endpoint".to_owned() } else { k.to_ascii_lowercase() };
            (key, v)
        })
        .collect()
}

fn storage(location: &Path, e: object_store::Error) -> Error {
    Error::Storage(format!("artifact store at {location}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(name: &str) -> FileKey {
        FileKey { model: 1, version: 2, file: FileName::parse(name).unwrap() }
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = std::result::Result<Bytes, String>> + Unpin + Send {
        futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    async fn read(store: &ArtifactStore, key: &FileKey) -> Vec<u8> {
        let file = store.get(key).await.unwrap();
        let parts: Vec<Bytes> = file.bytes.try_collect().await.unwrap();
        parts.concat()
    }

    #[tokio::test]
    async fn a_memory_store_passes_the_suite() {
        crate::testing::artifact_store_suite(&ArtifactStore::in_memory(), 1).await;
        let prefixed = ArtifactStore::from_url("memory:///registry/files").unwrap();
        assert_eq!(prefixed.root_uri(), "memory:///registry/files");
        crate::testing::artifact_store_suite(&prefixed, 1).await;
    }

    #[tokio::test]
    async fn a_directory_store_writes_only_under_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("artifacts");
        let store = ArtifactStore::from_url(&format!("file://{}", root.display())).unwrap();
        let file = store.put(&key("model.onnx"), chunks(&[b"onnx"])).await.unwrap();
        let canonical = std::fs::canonicalize(&root).unwrap();
        assert_eq!(file.uri, format!("file://{}/models/1/versions/2/model.onnx", canonical.display()));
        assert_eq!(std::fs::read(canonical.join("models/1/versions/2/model.onnx")).unwrap(), b"onnx");
        // a bare path means the same directory
        let again = ArtifactStore::from_url(&root.display().to_string()).unwrap();
        assert_eq!(read(&again, &key("model.onnx")).await, b"onnx");
        assert_eq!(again.list(1, 2).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_directory_store_passes_the_suite_and_leaves_no_part_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::from_url(&dir.path().join("files").display().to_string()).unwrap();
        crate::testing::artifact_store_suite(&store, 7).await;
        let copy = dir.path().join("copy.bin");
        assert_eq!(store.save(&key("x"), &copy).await.unwrap_err().status(), 404);
        assert!(!copy.exists(), "a failed save leaves no file");
        let big = FileKey { model: 7, version: 2, file: FileName::parse("big.bin").unwrap() };
        assert_eq!(store.save(&big, &copy).await.unwrap(), (11 << 20) + 1);
        assert!(std::fs::read(&copy).unwrap() == read(&store, &big).await);
        assert_eq!(
            tree_names(dir.path()),
            [
                "copy.bin",
                "files/models/7/versions/1/empty",
                "files/models/7/versions/1/model.onnx",
                "files/models/7/versions/2/big.bin"
            ],
            "no part files left behind"
        );
    }

    fn tree_names(root: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    proptest! {
        /// Whatever the name, an accepted one is a single plain segment, and
        /// the key is exactly the version's directory plus that segment.
        #[test]
        fn accepted_names_stay_in_their_directory(name in "\\PC{0,12}", model in 0i64..1000, version in 0i64..1000) {
            if let Ok(file) = FileName::parse(&name) {
                prop_assert!(!file.as_str().contains(['/', '\\', '%', '#']));
                prop_assert!(file.as_str() != "." && file.as_str() != "..");
                let key = FileKey { model, version, file };
                let relative = key.relative();
                prop_assert_eq!(relative.matches('/').count(), 4);
                let path = Path::parse(&relative).unwrap();
                prop_assert_eq!(path.as_ref(), relative.as_str());
            }
        }
    }
}
