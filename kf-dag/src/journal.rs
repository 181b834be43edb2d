//! [`FileRunStore`]: a durable [`RunStore`] in a directory — one folder per
//! run with `run.json` (the record) and `journal.jsonl` (one entry per line,
//! appended before `append` returns, and fsynced then when the entry
//! [must be durable](crate::run::Event::must_be_durable); the others — a
//! cache hit, a task starting — are made durable by the next sync, and a
//! crash that loses them only makes the resume derive them again).
//!
//! A crash can leave at most a torn last line (the entry being written when
//! the process died, never acknowledged): reading ignores a last line without
//! its newline and the next append cuts it off. Anything else that does not
//! parse is an error naming the line (`<dir>/journal.jsonl:12`), never
//! silently skipped. This module only stores entries; replay is
//! [`crate::run::RunSnapshot`]'s.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::encoding;
use crate::run::{Entry, Event};
use crate::store::{RunRecord, RunStore};
use crate::{Error, Result};

/// Run journals in a directory, durable across crashes.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = kf_dag::journal::FileRunStore::open(dir.path())?;
/// kf_dag::testing::run_store_conformance(&store);
/// # Ok::<(), kf_dag::Error>(())
/// ```
#[derive(Debug)]
pub struct FileRunStore {
    dir: PathBuf,
    open: Mutex<HashMap<String, Arc<Mutex<Writer>>>>,
}

#[derive(Debug)]
struct Writer {
    file: File,
    next_seq: u64,
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Store { message: format!("{}: cannot {what}: {e}", path.display()) }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Writers hold consistent state between operations (the sequence number
    // is bumped only after a write is synced), so a poisoned lock is safe to reuse.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FileRunStore {
    /// Opens (creating if needed) a store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io(&dir, "create the store directory", e))?;
        Ok(FileRunStore { dir, open: Mutex::new(HashMap::new()) })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn run_dir(&self, run: &str) -> Result<PathBuf> {
        crate::artifact::check_segment(run)
            .map_err(|message| Error::Store { message: format!("run id {run:?}: {message}") })?;
        Ok(self.dir.join(run))
    }

    /// Reads a journal: the complete lines and the byte length they cover.
    fn read(&self, run: &str) -> Result<(Vec<Entry>, u64)> {
        let dir = self.run_dir(run)?;
        if !dir.join("run.json").is_file() {
            return Err(Error::Store { message: format!("no run with id {run:?}") });
        }
        let path = dir.join("journal.jsonl");
        let text = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&path, "read the journal", e)),
        };
        // A last line without its newline is a torn write: never acknowledged, ignored.
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut entries = Vec::new();
        for (i, line) in text[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let what = format!("{}:{}", path.display(), i + 1);
            let line = std::str::from_utf8(line).map_err(|e| Error::invalid(what.clone(), e.to_string()))?;
            entries.push(encoding::entry_from_json(&what, line)?);
        }
        Ok((entries, complete as u64))
    }

    fn writer(&self, run: &str) -> Result<Arc<Mutex<Writer>>> {
        let mut open = lock(&self.open);
        if let Some(w) = open.get(run) {
            return Ok(w.clone());
        }
        let (entries, length) = self.read(run)?;
        let path = self.run_dir(run)?.join("journal.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, "open the journal", e))?;
        // Cut off a torn last line so the next entry starts on a line of its own.
        file.set_len(length).map_err(|e| io(&path, "truncate a torn entry", e))?;
        file.seek(SeekFrom::End(0)).map_err(|e| io(&path, "seek", e))?;
        let writer = Arc::new(Mutex::new(Writer { file, next_seq: entries.len() as u64 }));
        open.insert(run.to_owned(), writer.clone());
        Ok(writer)
    }
}

impl RunStore for FileRunStore {
    fn create_run(&self, run: RunRecord) -> Result<()> {
        let dir = self.run_dir(&run.id)?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Store { message: format!("a run with id {:?} already exists", run.id) });
            }
            Err(e) => return Err(io(&dir, "create the run directory", e)),
        }
        // Write-then-rename: a run.json is whole or absent.
        let (tmp, path) = (dir.join("run.json.tmp"), dir.join("run.json"));
        let mut file = File::create(&tmp).map_err(|e| io(&tmp, "create", e))?;
        file.write_all(encoding::record_to_json(&run).as_bytes()).map_err(|e| io(&tmp, "write", e))?;
        file.sync_all().map_err(|e| io(&tmp, "sync", e))?;
        fs::rename(&tmp, &path).map_err(|e| io(&path, "rename into place", e))?;
        if let Ok(d) = File::open(&dir) {
            // Make the new directory entry durable too (best effort where directories cannot be synced).
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn runs(&self) -> Result<Vec<RunRecord>> {
        let mut records = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| io(&self.dir, "list runs", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io(&self.dir, "list runs", e))?;
            let path = entry.path().join("run.json");
            let Ok(text) = fs::read_to_string(&path) else { continue };
            records.push(encoding::record_from_json(&path.display().to_string(), &text)?);
        }
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(records)
    }

    fn append(&self, run: &str, at_ms: u64, event: Event) -> Result<u64> {
        let writer = self.writer(run)?;
        let mut w = lock(&writer);
        let seq = w.next_seq;
        let event_must_be_durable = event.must_be_durable();
        let mut line = encoding::entry_to_json(&Entry { seq, at_ms, event });
        line.push('\n');
        let path = || self.dir.join(run).join("journal.jsonl");
        w.file.write_all(line.as_bytes()).map_err(|e| io(&path(), "append", e))?;
        // Entries the run derives again on resume wait for the next that
        // must survive: its sync covers every earlier write to the file.
        if event_must_be_durable {
            w.file.sync_data().map_err(|e| io(&path(), "sync", e))?;
        }
        w.next_seq += 1;
        Ok(seq)
    }

    fn journal(&self, run: &str) -> Result<Vec<Entry>> {
        // Hold the writer (if any) so a concurrent append is not read half-written.
        let writer = lock(&self.open).get(run).cloned();
        let _guard = writer.as_ref().map(|w| lock(w));
        Ok(self.read(run)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::TaskState;
    use std::collections::BTreeMap;

    fn record(id: &str) -> RunRecord {
        RunRecord { id: id.into(), pipeline: "p".into(), created_ms: 1, parameters: BTreeMap::new() }
    }

    #[test]
    fn the_file_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        crate::testing::run_store_conformance(&FileRunStore::open(dir.path()).unwrap());
    }

    #[test]
    fn journals_survive_reopening_and_a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRunStore::open(dir.path()).unwrap();
        store.create_run(record("r")).unwrap();
        store.append("r", 1, Event::task("a", TaskState::Queued, 1)).unwrap();
        store.append("r", 2, Event::task("a", TaskState::Running, 1)).unwrap();
        drop(store);
        let path = dir.path().join("r/journal.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":2,"at_ms":3,"kind":"ta"#).unwrap();
        drop(f);

        let store = FileRunStore::open(dir.path()).unwrap();
        assert_eq!(store.journal("r").unwrap().len(), 2, "the torn line is not an entry");
        assert_eq!(store.append("r", 4, Event::task("a", TaskState::Succeeded, 1)).unwrap(), 2);
        let journal = store.journal("r").unwrap();
        assert_eq!(journal.len(), 3);
        assert_eq!(journal[2].at_ms, 4);
        assert_eq!(store.runs().unwrap(), vec![record("r")]);
    }

    #[test]
    fn a_corrupt_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRunStore::open(dir.path()).unwrap();
        store.create_run(record("r")).unwrap();
        fs::write(dir.path().join("r/journal.jsonl"), "not json\n").unwrap();
        let err = FileRunStore::open(dir.path()).unwrap().journal("r").unwrap_err();
        assert!(err.to_string().contains("journal.jsonl:1"), "{err}");
    }

    #[test]
    fn run_ids_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRunStore::open(dir.path().join("runs")).unwrap();
        assert!(store.create_run(record("..")).is_err());
        assert!(store.create_run(record("a/b")).is_err());
        assert!(store.journal("../runs").is_err());
    }
}
