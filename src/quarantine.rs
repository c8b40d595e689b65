//! The quarantine's records: `sweep`, `prune` and `delete` with
//! `--quarantine DEST` write one before they move anything (which command,
//! which storage, which objects), and `restore` moves back only what the
//! records of a quarantine list — a directory or prefix without one is not a
//! quarantine, and nothing is moved out of it.
//!
//! Records live under [`RECORDS`] in the quarantine root, beside the
//! registry layout of the moved objects (`docker/registry/v2/…`), one per
//! run, written whole (a temporary file renamed, or one PUT).

use crate::plan::Plan;
use crate::progress::Progress;
use crate::storage::{EntryKind, Storage, StorageError, StorageExt};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a quarantine keeps its records, relative to its registry root.
pub const RECORDS: &str = "regsweep-quarantine/";

/// Version of the record format.
pub const RECORD_FORMAT_VERSION: u32 = 1;

/// Largest record read back, in bytes.
const RECORD_LIMIT: u64 = 1 << 30;

/// What one run moved into a quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Version of this format.
    pub format_version: u32,
    /// `sweep`, `prune` or `delete`.
    pub command: String,
    /// The storage the objects were moved out of.
    pub storage: String,
    /// When the run started moving (RFC 3339).
    pub created_at: String,
    /// The keys moved: a file, or a directory (ending in `/`) whose files
    /// were all moved.
    pub objects: Vec<String>,
    /// In an online apply's staging: until when (Unix seconds) later runs
    /// leave these objects staged (`--keep-quarantine`); absent, the next
    /// run that finds them deletes what is not needed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_until: Option<u64>,
}

impl Record {
    /// The record of carrying out `plan` by `command` on `storage`.
    pub fn of(command: &str, storage: &dyn Storage, plan: &Plan, now: SystemTime) -> Record {
        Record {
            format_version: RECORD_FORMAT_VERSION,
            command: command.to_string(),
            storage: storage.describe(),
            created_at: crate::report::rfc3339(now),
            objects: plan
                .actions
                .iter()
                .map(|a| a.file().unwrap_or_else(|| a.key()))
                .collect(),
            keep_until: None,
        }
    }
}

/// `key` is in the storage and in the quarantine: the quarantined copy is
/// deleted when both hold the same bytes (sha256 and length); otherwise
/// nothing is overwritten and the object is reported.
fn already_back(
    storage: &dyn Storage,
    quarantine: &dyn Storage,
    key: &str,
) -> std::result::Result<(), StorageError> {
    let keys = [key.to_string()];
    let here = storage.sha256_many(&keys, &|_| {}).remove(0)?;
    let there = quarantine.sha256_many(&keys, &|_| {}).remove(0)?;
    if here == there {
        quarantine.delete(key)
    } else {
        Err(StorageError::Exists {
            key: key.to_string(),
        })
    }
}

/// The objects `records` list: the directories (ending in `/`) and the
/// files, for [`listed`].
pub(crate) fn objects_of(records: &[(String, Record)]) -> (Vec<&str>, BTreeSet<&str>) {
    let mut dirs: Vec<&str> = Vec::new();
    let mut files: BTreeSet<&str> = BTreeSet::new();
    for (_, r) in records {
        for o in &r.objects {
            if o.ends_with('/') {
                dirs.push(o);
            } else {
                files.insert(o);
            }
        }
    }
    (dirs, files)
}

/// True when the file `key` is one of `files` or lies in one of `dirs`.
pub(crate) fn listed(dirs: &[&str], files: &BTreeSet<&str>, key: &str) -> bool {
    files.contains(key) || dirs.iter().any(|d| key.starts_with(d))
}

/// Writes `record` into the quarantine root `q` of `storage`; returns its key.
pub fn write(storage: &dyn Storage, q: &str, record: &Record) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let key = format!(
        "{RECORDS}{}.{:09}-{}.json",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    );
    let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::Quarantine {
        quarantine: q.to_string(),
        message: format!("cannot write its record: {e}"),
    })?;
    bytes.push(b'\n');
    storage
        .write_to_quarantine(&key, q, &bytes)
        .map_err(|e| Error::Quarantine {
            quarantine: q.to_string(),
            message: format!("cannot write its record {key}: {e}"),
        })?;
    Ok(key)
}

/// The records of a quarantine opened as a storage of its own, by key.
pub fn records(quarantine: &dyn Storage, q: &str) -> Result<Vec<(String, Record)>> {
    let failed = |message: String| Error::Quarantine {
        quarantine: q.to_string(),
        message,
    };
    let listing = quarantine
        .list(RECORDS, false)
        .map_err(|e| failed(format!("cannot be listed: {e}")))?;
    if let Some(e) = listing.errors.first() {
        return Err(failed(format!("cannot be listed: {e}")));
    }
    let mut out = Vec::new();
    for e in listing
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File && e.key.ends_with(".json"))
    {
        let bytes = quarantine
            .read(&e.key, RECORD_LIMIT)
            .map_err(|err| failed(format!("cannot read its record {}: {err}", e.key)))?;
        let r: Record = serde_json::from_slice(&bytes)
            .map_err(|err| failed(format!("{} is not a quarantine record: {err}", e.key)))?;
        if r.format_version != RECORD_FORMAT_VERSION {
            return Err(failed(format!(
                "{}: record format version {}; this regsweep reads version {RECORD_FORMAT_VERSION}",
                e.key, r.format_version
            )));
        }
        out.push((e.key.clone(), r));
    }
    Ok(out)
}

/// What [`restore`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Objects moved back.
    pub objects: usize,
    /// Files in the quarantine that no record lists: left where they are.
    pub unlisted: Vec<String>,
}

/// Moves the objects that the records of the quarantine root `q` list back
/// into `storage`. `quarantine` is the quarantine opened as a storage of its
/// own (it is laid out as a registry root). Refuses, changing nothing, a
/// quarantine without records, or with records of another storage. When
/// everything listed is back and nothing else is left, the records go too
/// and the emptied directories with them.
pub fn restore(
    storage: &dyn Storage,
    quarantine: &dyn Storage,
    q: &str,
    progress: &Progress,
) -> Result<Restored> {
    let failed = |message: String| Error::Quarantine {
        quarantine: q.to_string(),
        message,
    };
    let records = records(quarantine, q)?;
    if records.is_empty() {
        return Err(failed(format!(
            "is not a regsweep quarantine: it holds no record ({RECORDS}*.json) of a \
             sweep, prune or delete --quarantine run; nothing was moved"
        )));
    }
    let here = storage.describe();
    if let Some((key, r)) = records.iter().find(|(_, r)| r.storage != here) {
        return Err(failed(format!(
            "its record {key} says its objects came from {}, not {here}; nothing was moved",
            r.storage
        )));
    }
    let listing = quarantine
        .list("", false)
        .map_err(|e| failed(format!("cannot be listed: {e}")))?;
    if let Some(e) = listing.errors.first() {
        return Err(failed(format!("cannot be listed: {e}")));
    }
    let (dirs, files) = objects_of(&records);
    let (keys, unlisted): (Vec<String>, Vec<String>) = listing
        .entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::File && !e.key.starts_with(RECORDS))
        .map(|e| e.key)
        .partition(|k| listed(&dirs, &files, k));
    progress.start("restoring", keys.len() as u64);
    let errors: Vec<String> = keys
        .par_iter()
        .filter_map(|k| {
            let r = match storage.unquarantine(k, q) {
                // Back already (a push wrote it again, or a run moved it
                // back): the quarantined copy goes when it is the same.
                Err(StorageError::Exists { .. }) => already_back(storage, quarantine, k),
                r => r,
            };
            progress.inc(1);
            r.err().map(|e| e.to_string())
        })
        .collect();
    let emptied: Vec<String> = keys
        .iter()
        .filter_map(|k| k.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    quarantine.remove_empty_dirs(&emptied, &|_| false);
    progress.finish();
    if !errors.is_empty() {
        return Err(failed(format!(
            "{} object(s) could not be restored:\n  {}",
            errors.len(),
            errors.join("\n  ")
        )));
    }
    if unlisted.is_empty() {
        for (key, _) in &records {
            quarantine
                .delete(key)
                .map_err(|e| failed(format!("cannot remove its record {key}: {e}")))?;
        }
        quarantine.remove_empty_dirs(&[RECORDS.trim_end_matches('/').to_string()], &|_| false);
    }
    Ok(Restored {
        objects: keys.len(),
        unlisted,
    })
}
