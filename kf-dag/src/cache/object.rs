//! [`ObjectStoreCache`]: cache entries as small JSON objects in any
//! object_store backend, at `<prefix>/<key hex>.json`.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{Cache, CacheEntry};
use crate::{CacheKey, Error, Result, encoding};

/// A [`Cache`] over an object store, shared by every run (and process)
/// that uses the same store and prefix. Freshness is the reader's decision
/// ([`CacheEntry::is_fresh`]), so a TTL needs no background clean-up.
///
/// The [`Cache`] trait is synchronous (see its module); this adapter waits
/// for each object_store call with `futures::executor::block_on`, which is
/// right for the local file system and memory stores it is used with here.
///
/// ```
/// use kf_dag::cache::ObjectStoreCache;
/// let cache = ObjectStoreCache::new(std::sync::Arc::new(object_store::memory::InMemory::new()), "cache".into());
/// kf_dag::testing::cache_conformance(&cache);
/// ```
#[derive(Debug, Clone)]
pub struct ObjectStoreCache {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl ObjectStoreCache {
    /// A cache keeping its entries under `prefix` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        ObjectStoreCache { store, prefix }
    }

    fn path(&self, key: &CacheKey) -> Path {
        self.prefix.clone().join(format!("{key}.json"))
    }
}

impl Cache for ObjectStoreCache {
    fn get(&self, key: &CacheKey) -> Result<Option<CacheEntry>> {
        let path = self.path(key);
        let fetched = futures::executor::block_on(async {
            match self.store.get(&path).await {
                Ok(result) => result.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        let bytes = fetched.map_err(|e| Error::Artifact { location: path.to_string(), message: e.to_string() })?;
        let Some(bytes) = bytes else { return Ok(None) };
        let text = String::from_utf8_lossy(&bytes);
        encoding::cache_entry_from_json(path.as_ref(), &text).map(Some)
    }

    fn put(&self, key: &CacheKey, entry: CacheEntry) -> Result<()> {
        let path = self.path(key);
        let bytes = Bytes::from(encoding::cache_entry_to_json(&entry));
        futures::executor::block_on(self.store.put(&path, PutPayload::from(bytes)))
            .map_err(|e| Error::Artifact { location: path.to_string(), message: e.to_string() })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_system_cache_passes_the_conformance_suite_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
            ObjectStoreCache::new(Arc::new(fs), Path::from("cache"))
        };
        crate::testing::cache_conformance(&open());
        let key = CacheKey::custom("conformance-a");
        assert!(open().get(&key).unwrap().is_some(), "entries are files, not process memory");
    }

    #[test]
    fn a_corrupt_entry_is_an_error_not_a_hit() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let cache = ObjectStoreCache::new(store.clone(), Path::from("c"));
        let key = CacheKey::custom("k");
        futures::executor::block_on(store.put(&cache.path(&key), PutPayload::from_static(b"{}"))).unwrap();
        assert!(cache.get(&key).is_err());
    }
}
