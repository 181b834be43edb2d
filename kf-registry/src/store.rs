//! The [`RegistryStore`] trait — five operations on [`Record`]s — and
//! [`MemoryStore`], its in-memory implementation.
//!
//! A store owns persistence and the uniqueness rules that must hold under
//! concurrency (names per kind/subtype/parent, externalIds per kind). It does
//! not validate documents, resolve parents or sign page tokens: that is
//! [`crate::Registry`]'s job, once for every store. Every store runs the
//! conformance suite in [`crate::testing`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::query::ListQuery;
use crate::record::{Kind, NewRecord, Property, Record, properties};
use crate::{Error, Result};

/// Persistence for registry records.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Stores a new record and returns it with its id. A name taken in the
    /// same (kind, subtype, parent), or an externalId taken in the same kind,
    /// is [`Error::Conflict`] and stores nothing.
    async fn insert(&self, record: NewRecord) -> Result<Record>;

    /// Replaces the record with `record.id` (every field but `id`, `kind` and
    /// `create_time`). The same uniqueness rules as `insert`; a missing id is
    /// [`Error::NotFound`].
    async fn update(&self, record: Record) -> Result<Record>;

    /// The record with this id, of any kind.
    async fn get(&self, id: i64) -> Result<Option<Record>>;

    /// Records in the query's scope that pass its filter, strictly after its
    /// cursor, in its order, at most `limit` of them.
    async fn list(&self, query: &ListQuery) -> Result<Vec<Record>>;

    /// The secret this store signs page tokens with. It must stay the same
    /// for the life of the data (persistent stores persist it), so tokens
    /// survive a restart, and differ between stores, so a token from one
    /// registry is worthless in another.
    fn token_key(&self) -> &[u8; 32];
}

type NameKey = (Kind, String, i64, String);

#[derive(Default)]
struct Tables {
    next_id: i64,
    records: BTreeMap<i64, (Record, Vec<Property>)>,
    names: HashMap<NameKey, i64>,
    external_ids: HashMap<(Kind, String), i64>,
}

impl Tables {
    fn name_key(r: &Record) -> Option<NameKey> {
        let name = r.name.as_ref()?;
        r.kind.names_unique().then(|| (r.kind, r.subtype.clone(), r.parent, name.clone()))
    }

    /// Checks `r` against every record except itself.
    fn check_unique(&self, r: &Record) -> Result<()> {
        if let Some(key) = Self::name_key(r)
            && self.names.get(&key).is_some_and(|&id| id != r.id)
        {
            return Err(Error::Conflict {
                kind: r.kind.type_name(),
                message: format!("name {:?} is already taken{}", key.3, scope_text(r.parent)),
            });
        }
        if let Some(ext) = &r.external_id
            && self.external_ids.get(&(r.kind, ext.clone())).is_some_and(|&id| id != r.id)
        {
            return Err(Error::Conflict {
                kind: r.kind.type_name(),
                message: format!("externalId {ext:?} is already taken"),
            });
        }
        Ok(())
    }

    fn index(&mut self, r: &Record) {
        if let Some(key) = Self::name_key(r) {
            self.names.insert(key, r.id);
        }
        if let Some(ext) = &r.external_id {
            self.external_ids.insert((r.kind, ext.clone()), r.id);
        }
    }

    fn unindex(&mut self, r: &Record) {
        if let Some(key) = Self::name_key(r) {
            self.names.remove(&key);
        }
        if let Some(ext) = &r.external_id {
            self.external_ids.remove(&(r.kind, ext.clone()));
        }
    }
}

pub(crate) fn scope_text(parent: i64) -> String {
    if parent == 0 { String::new() } else { format!(" under parent {parent}") }
}

/// Records in a mutex-guarded map. Inserts, updates and gets are O(log n);
/// a list scans its kind, O(n log n) per page. Meant for tests, examples and
/// embedding, not for millions of records (use the SQLite store).
///
/// ```
/// use kf_registry::{MemoryStore, Registry, RegisteredModel};
///
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// rt.block_on(async {
///     let registry = Registry::new(MemoryStore::new());
///     let model: RegisteredModel = registry
///         .create(serde_json::json!({"name": "iris"}), None)
///         .await?;
///     assert_eq!(model.id.as_deref(), Some("1"));
///     Ok::<(), kf_registry::Error>(())
/// }).unwrap();
/// ```
pub struct MemoryStore {
    tables: Mutex<Tables>,
    key: [u8; 32],
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with a fresh random token key.
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key[..]);
        MemoryStore { tables: Mutex::new(Tables { next_id: 1, ..Tables::default() }), key }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the maps half-updated
        // (every mutation is checked before it starts), so a poisoned lock is safe to reuse.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl RegistryStore for MemoryStore {
    async fn insert(&self, new: NewRecord) -> Result<Record> {
        let mut t = self.lock();
        let record = new.into_record(t.next_id);
        t.check_unique(&record)?;
        t.next_id += 1;
        t.index(&record);
        let props = properties(&record.body);
        t.records.insert(record.id, (record.clone(), props));
        Ok(record)
    }

    async fn update(&self, mut record: Record) -> Result<Record> {
        let mut t = self.lock();
        let Some((old, _)) = t.records.get(&record.id).cloned() else {
            return Err(Error::NotFound { kind: record.kind.type_name(), key: format!("id {}", record.id) });
        };
        record.kind = old.kind;
        record.create_time = old.create_time;
        t.check_unique(&record)?;
        t.unindex(&old);
        t.index(&record);
        let props = properties(&record.body);
        t.records.insert(record.id, (record.clone(), props));
        Ok(record)
    }

    async fn get(&self, id: i64) -> Result<Option<Record>> {
        Ok(self.lock().records.get(&id).map(|(r, _)| r.clone()))
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Record>> {
        let t = self.lock();
        let mut rows: Vec<&Record> = t
            .records
            .values()
            .filter(|(r, props)| query.in_scope(r) && query.filter.as_ref().is_none_or(|f| f.matches(r, props)))
            .map(|(r, _)| r)
            .collect();
        rows.sort_by(|a, b| query.ordering(a, b));
        Ok(rows.into_iter().take(query.limit).cloned().collect())
    }

    fn token_key(&self) -> &[u8; 32] {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        crate::testing::run_all(super::MemoryStore::new(), "mem").await;
    }
}
