//! The initializers, locally: copy what a `storageUri` names into the
//! workspace through object_store.

use std::path::Path;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::{Error, Result};

/// Copies the object or the tree of objects `uri` names into `dest` (a
/// directory, created), and returns how many files and bytes it copied.
///
/// `file:///abs/path` (a file or a directory) and plain absolute paths are
/// read from this host. Remote schemes need the network this backend does
/// not assume: `hf://` (the Hugging Face Hub) and any scheme object_store
/// was not built for fail with an error naming the URI. O(total bytes).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let src = tempfile::tempdir()?;
/// std::fs::write(src.path().join("train.csv"), "x,y\n1,2\n")?;
/// let dest = tempfile::tempdir()?;
/// let uri = format!("file://{}", src.path().display());
/// let (files, bytes) = kf_train::local::fetch(&uri, dest.path()).await?;
/// assert_eq!((files, bytes), (1, 8));
/// assert!(dest.path().join("train.csv").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn fetch(uri: &str, dest: &Path) -> Result<(usize, u64)> {
    let fail = |message: String| Error::Storage { uri: uri.to_string(), message };
    let url = if uri.starts_with('/') {
        Url::from_file_path(uri).map_err(|()| fail("not an absolute file path".into()))?
    } else {
        Url::parse(uri).map_err(|e| fail(format!("not a URI: {e}")))?
    };
    match url.scheme() {
        "file" => {}
        "hf" => {
            return Err(fail(
                "hf:// downloads from the Hugging Face Hub, which a local run does not reach; download the files \
                 and give their file:// path"
                    .into(),
            ));
        }
        other => {
            return Err(fail(format!(
                "the local backend reads file:// URIs and absolute paths; {other}:// needs a storage client it \
                 was not built with"
            )));
        }
    }
    let (store, root) = object_store::parse_url(&url).map_err(|e| fail(e.to_string()))?;
    tokio::fs::create_dir_all(dest).await.map_err(|e| fail(format!("cannot create {}: {e}", dest.display())))?;
    let listed: Vec<_> = store.list(Some(&root)).try_collect().await.map_err(|e| fail(e.to_string()))?;
    let objects = if listed.is_empty() {
        // Not a directory: the URI may name one object.
        match store.head(&root).await {
            Ok(meta) => vec![meta],
            Err(object_store::Error::NotFound { .. }) => {
                return Err(fail("nothing there: no such file or directory".into()));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    } else {
        listed
    };
    let (mut files, mut bytes) = (0, 0);
    for meta in objects {
        let relative = relative_to(&root, &meta.location);
        let target = match relative.as_deref() {
            Some("") | None => dest.join(meta.location.filename().unwrap_or("data")),
            Some(rel) => dest.join(rel),
        };
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
        }
        let data = store.get(&meta.location).await.map_err(|e| fail(e.to_string()))?.bytes().await;
        let data = data.map_err(|e| fail(e.to_string()))?;
        tokio::fs::write(&target, &data).await.map_err(|e| fail(format!("cannot write {}: {e}", target.display())))?;
        files += 1;
        bytes += data.len() as u64;
    }
    Ok((files, bytes))
}

/// `location` relative to `root`, with `/` separators; `None` if it is not below.
fn relative_to(root: &ObjectPath, location: &ObjectPath) -> Option<String> {
    let parts: Vec<_> = location.prefix_match(root)?.map(|p| p.as_ref().to_string()).collect();
    Some(parts.join("/"))
}
