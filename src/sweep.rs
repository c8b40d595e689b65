//! Carrying out a plan: removals phase by phase (links before blobs), in
//! parallel, each one journaled before and after it happens, optionally moved
//! to a quarantine instead of deleted; and `restore`, which moves a
//! quarantine back.
//!
//! The journal is JSON lines, appended to: an `intent` line is written (and
//! synced) before an action's files are touched, a `done` or `failed` line
//! after. A sweep killed at any point is finished by running it again: the new
//! run first closes the previous run's open intents whose files are gone, then
//! plans afresh from a new scan.

use crate::plan::{file_of, Action, ActionKind, Plan};
use crate::progress::Progress;
use crate::storage::{Storage, StorageError, StorageExt};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Batches carried out by this process (for the crash-test hook).
static BATCHES_DONE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalEntry {
    /// When (RFC 3339).
    pub time: String,
    /// `intent`, `done`, `failed` or `skipped`.
    pub state: String,
    /// What the action removes.
    pub kind: ActionKind,
    /// The action's key (a directory prefix).
    pub key: String,
    /// Bytes reclaimed.
    #[serde(default)]
    pub bytes: u64,
    /// `delete` or `quarantine`.
    pub op: String,
    /// Error or reason, for `failed` and `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// True for a `done` written by a later run for a killed one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

/// An append-only, synced journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Journal {
    /// Opens (creating or appending to) the journal at `path`.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        // A run killed mid-write may have left a torn last line: end it.
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Reads every entry of a journal file (a missing file has none).
    pub fn read(path: &Path) -> Result<Vec<JournalEntry>> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let lines: Vec<String> = BufReader::new(f)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| Error::io(path, e))?;
        let mut out = Vec::new();
        for line in &lines {
            // A line cut short by a kill is skipped: it was an intent or an
            // outcome being written when the process died, and the action it
            // names was either not started or is re-checked by `recover`.
            if let Ok(e) = serde_json::from_str(line) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Appends entries and syncs them to disk.
    pub fn write(&self, entries: &[JournalEntry]) -> Result<()> {
        self.append(entries).map_err(|e| Error::io(&self.path, e))
    }

    fn append(&self, entries: &[JournalEntry]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut buf, e)?;
            buf.push(b'\n');
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&buf)?;
        f.sync_data()
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How to carry out a plan.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Move into this quarantine root instead of deleting.
    pub quarantine: Option<String>,
    /// Actions per journaled batch.
    pub batch: usize,
    /// The command carrying the plan out, for the quarantine's record.
    pub command: String,
    /// When set, a link written at or after this time (a push since the
    /// scan the plan comes from) is left alone: the registry is online.
    pub since: Option<SystemTime>,
    /// The quarantine's record of the run is written by the caller (one
    /// for a plan carried out in parts).
    pub recorded: bool,
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SweepOutcome {
    /// Actions carried out.
    pub done: usize,
    /// Objects removed or moved.
    pub objects: usize,
    /// Bytes reclaimed.
    pub bytes: u64,
    /// Actions that failed, with the error.
    pub failed: Vec<(String, String)>,
    /// Open intents of an earlier, killed run that this run closed.
    pub recovered: usize,
    /// Removals left alone, with why: a tag that no longer names the
    /// planned digest (or is gone), a link written since the scan, a blob
    /// that a link written during the run names again.
    pub skipped: Vec<(String, String)>,
    /// Removals not attempted because an earlier phase had failures: what
    /// a failed removal protects is kept, and a rerun finishes the job.
    pub held_back: usize,
    /// Objects moved back from the run's staging because a push during the
    /// run needs them again, with why.
    pub restored: Vec<(String, String)>,
}

impl SweepOutcome {
    /// Adds what another part of the same run did.
    pub fn merge(&mut self, o: SweepOutcome) {
        self.done += o.done;
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.failed.extend(o.failed);
        self.recovered += o.recovered;
        self.skipped.extend(o.skipped);
        self.held_back += o.held_back;
        self.restored.extend(o.restored);
    }
}

/// Why an action must not run now: a tag that no longer names the digest
/// the plan was made for, or a link written at or after `since` (pushed
/// since the scan), or one whose state cannot be read.
fn must_skip(storage: &dyn Storage, a: &Action, since: Option<SystemTime>) -> Option<String> {
    let link = match a.kind {
        ActionKind::Tag => {
            if let Some(why) = tag_changed(storage, a) {
                return Some(why);
            }
            format!("{}current/link", a.key())
        }
        ActionKind::TagHistory | ActionKind::Revision | ActionKind::LayerLink => a.file()?,
        _ => return None,
    };
    let since = since?;
    match storage.stat(&link) {
        Ok(m) => match m.modified {
            Some(t) if t < since => None,
            Some(_) => Some(format!(
                "{link} was written since the scan (a push while the registry is online); left alone"
            )),
            None => Some(format!("{link} has no modification time; left alone")),
        },
        Err(e) if e.is_not_found() => None,
        Err(e) => Some(format!("cannot stat {link}: {e}; left alone")),
    }
}

/// Why a tag action must not run: its tag no longer names the digest the
/// plan was made for (re-pushed since), or cannot be read.
fn tag_changed(storage: &dyn Storage, a: &Action) -> Option<String> {
    let want = a.digest()?.to_string();
    let link = format!("{}current/link", a.key());
    match storage.read(&link, 1024) {
        Ok(b) => {
            let now = String::from_utf8_lossy(&b).trim().to_string();
            (now != want).then(|| {
                format!("the tag now names {now}, not {want} (pushed since the plan); left alone")
            })
        }
        Err(e) if e.is_not_found() => Some("the tag is gone".into()),
        Err(e) => Some(format!("cannot read {link}: {e}; left alone")),
    }
}

fn entry(a: &Action, state: &str, op: &str, message: Option<String>) -> JournalEntry {
    entry_at(a.kind, a.key(), a.bytes, state, op, message)
}

fn entry_at(
    kind: ActionKind,
    key: String,
    bytes: u64,
    state: &str,
    op: &str,
    message: Option<String>,
) -> JournalEntry {
    JournalEntry {
        time: now(),
        state: state.into(),
        kind,
        key,
        bytes,
        op: op.into(),
        message,
        recovered: false,
    }
}

/// The files the action of kind `kind` at `key` removes, as they are now.
fn files_of(
    storage: &dyn Storage,
    kind: ActionKind,
    key: &str,
) -> Result<Vec<String>, StorageError> {
    if let Some(f) = file_of(kind, key) {
        return Ok(vec![f]);
    }
    let prefixes: Vec<String> = match kind {
        ActionKind::Repository => ["_manifests/", "_layers/", "_uploads/"]
            .iter()
            .map(|s| format!("{key}{s}"))
            .collect(),
        _ => vec![key.to_string()],
    };
    let mut files = Vec::new();
    for p in prefixes {
        let l = storage.list(&p, false)?;
        if let Some(e) = l.errors.into_iter().next() {
            return Err(e);
        }
        for e in l.entries {
            if e.kind != crate::storage::EntryKind::File {
                return Err(StorageError::Symlink {
                    key: e.key,
                    target: "(not a regular file)".into(),
                });
            }
            files.push(e.key);
        }
    }
    if kind == ActionKind::Tag {
        // The tag's `current/link` goes last: a removal cut short leaves a
        // tag that still resolves, never one listed but unresolvable.
        files.sort_by_key(|f| f.ends_with("/current/link"));
    }
    Ok(files)
}

/// What a run removes whole: repositories and tags, whose directories may
/// go although the layout otherwise keeps them.
#[derive(Debug, Default)]
struct Whole {
    /// Repository names.
    repos: HashSet<String>,
    /// Tag directories, `repositories/<r>/_manifests/tags/<t>`.
    tags: HashSet<String>,
}

impl Whole {
    /// Notes a removal of kind `kind` at `key`.
    fn add(&mut self, kind: ActionKind, key: &str) {
        match kind {
            ActionKind::Repository => {
                if let Some(name) = key.strip_prefix("repositories/") {
                    self.repos.insert(name.trim_end_matches('/').to_string());
                }
            }
            ActionKind::Tag => {
                self.tags.insert(key.trim_end_matches('/').to_string());
            }
            _ => {}
        }
    }
}

/// Directories that must survive however empty they are.
fn keep_dir(dir: &str, whole: &Whole) -> bool {
    if matches!(dir, "blobs" | "blobs/sha256" | "repositories") {
        return true;
    }
    if whole.tags.contains(dir) {
        return false;
    }
    let pruned = &whole.repos;
    let Some(rest) = dir.strip_prefix("repositories/") else {
        return false;
    };
    let Some(pos) = rest.find("/_") else {
        // A repository or namespace directory: only a pruned repository goes.
        return !pruned.iter().any(|p| p == rest);
    };
    let repo = &rest[..pos];
    if pruned.contains(repo) {
        return false;
    }
    let inner = &rest[pos + 1..];
    matches!(
        inner,
        "_manifests"
            | "_manifests/revisions"
            | "_manifests/revisions/sha256"
            | "_manifests/tags"
            | "_layers"
            | "_layers/sha256"
    ) || inner.starts_with("_manifests/tags/") && inner.matches('/').count() == 2
}

/// Every directory below `dir` (breadth first; none on object stores).
fn subdirs(storage: &dyn Storage, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut level = vec![format!("{}/", dir.trim_end_matches('/'))];
    while !level.is_empty() {
        let mut next = Vec::new();
        for (p, res) in level.iter().zip(storage.list_dirs_many(&level)) {
            if let Ok(l) = res {
                for d in l.dirs {
                    out.push(format!("{p}{d}"));
                    next.push(format!("{p}{d}/"));
                }
            }
        }
        level = next;
    }
    out
}

/// Closes the open intents of an earlier run whose files are gone, and
/// removes the directories earlier runs' removals left empty.
pub fn recover(storage: &dyn Storage, journal: &Journal) -> Result<usize> {
    let entries = Journal::read(journal.path())?;
    let mut open: HashMap<(ActionKind, String), JournalEntry> = HashMap::new();
    // Directories a killed run may have emptied without removing them.
    let mut dirs: Vec<String> = Vec::new();
    let mut whole = Whole::default();
    for e in &entries {
        if e.state == "done" {
            dirs.extend(dirs_of(
                e.kind,
                &e.key,
                &file_of(e.kind, &e.key).into_iter().collect::<Vec<_>>(),
            ));
            whole.add(e.kind, &e.key);
        }
    }
    for e in entries {
        let k = (e.kind, e.key.clone());
        match e.state.as_str() {
            "intent" => {
                open.insert(k, e);
            }
            _ => {
                open.remove(&k);
            }
        }
    }
    let mut closed = Vec::new();
    for ((kind, key), e) in open {
        let gone = match files_of(storage, kind, &key) {
            Ok(files) => files
                .iter()
                .all(|f| matches!(storage.stat(f), Err(ref x) if x.is_not_found())),
            Err(_) => false,
        };
        if gone {
            whole.add(kind, &key);
            let mut d = entry_at(kind, key, e.bytes, "done", &e.op, None);
            d.recovered = true;
            closed.push(d);
        }
    }
    journal.write(&closed)?;
    for c in &closed {
        dirs.extend(dirs_of(
            c.kind,
            &c.key,
            &file_of(c.kind, &c.key).into_iter().collect::<Vec<_>>(),
        ));
    }
    // Directory-listed removals (uploads, repositories) may have left a
    // tree of empty directories: find its leaves.
    let trees: Vec<String> = dirs
        .iter()
        .filter(|d| {
            d.contains("/_uploads/")
                || d.starts_with("repositories/") && !d.contains("/_")
                || whole.tags.contains(d.as_str())
        })
        .cloned()
        .collect();
    for d in trees {
        dirs.extend(subdirs(storage, &d));
    }
    storage.remove_empty_dirs(&dirs, &|d: &str| keep_dir(d, &whole));
    Ok(closed.len())
}

/// Carries out `plan` (already re-checked against a fresh scan).
pub fn execute(
    storage: &dyn Storage,
    plan: &Plan,
    journal: &Journal,
    opts: &SweepOptions,
    progress: &Progress,
) -> Result<SweepOutcome> {
    let mut out = SweepOutcome::default();
    let op = if opts.quarantine.is_some() {
        "quarantine"
    } else {
        "delete"
    };
    if let (Some(q), false, false) = (&opts.quarantine, plan.actions.is_empty(), opts.recorded) {
        // Before anything moves: what `restore` may move back.
        let record = crate::quarantine::Record::of(
            &opts.command,
            storage,
            plan,
            std::time::SystemTime::now(),
        );
        crate::quarantine::write(storage, q, &record)?;
    }
    let mut whole = Whole::default();
    for a in &plan.actions {
        if matches!(a.kind, ActionKind::Repository | ActionKind::Tag) {
            whole.add(a.kind, &a.key());
        }
    }
    progress.start("sweeping", plan.actions.len() as u64);
    let batch = opts.batch.max(1);
    let pause_after: Option<usize> = std::env::var("REGSWEEP_PAUSE_AFTER_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut dirs_touched: Vec<String> = Vec::new();
    // Phases in order; a phase finishes before the next starts.
    let mut phases: Vec<Vec<&Action>> = Vec::new();
    for a in &plan.actions {
        match phases.last_mut() {
            Some(p) if p[0].kind == a.kind => p.push(a),
            _ => phases.push(vec![a]),
        }
    }
    for phase in phases {
        if let Some((key, e)) = out.failed.first() {
            // What a failed removal protects stays: nothing of a later phase
            // (blobs after links, manifests after tags) is removed.
            let why = format!("not removed: an earlier removal failed ({key}: {e}); run again");
            hold_back(&phase, &why, op, journal, &mut out)?;
            continue;
        }
        // Once a move finds no room (a full quarantine), every later one
        // of the phase would fail alike: they are not attempted.
        let mut full: Option<String> = None;
        for chunk in phase.chunks(batch) {
            if let Some(e) = &full {
                hold_back(
                    chunk,
                    &format!("not attempted: no room ({e}); run again"),
                    op,
                    journal,
                    &mut out,
                )?;
                progress.inc(chunk.len() as u64);
                continue;
            }
            // A tag is removed only while it still names the planned
            // digest; online, a link only while no push has written it since.
            let check = chunk[0].kind == ActionKind::Tag
                || opts.since.is_some()
                    && matches!(
                        chunk[0].kind,
                        ActionKind::TagHistory | ActionKind::Revision | ActionKind::LayerLink
                    );
            let chunk: Vec<&Action> = if check {
                let changed: Vec<Option<String>> = chunk
                    .par_iter()
                    .map(|a| must_skip(storage, a, opts.since))
                    .collect();
                let mut keep = Vec::with_capacity(chunk.len());
                let mut lines = Vec::new();
                for (a, c) in chunk.iter().zip(changed) {
                    match c {
                        None => keep.push(*a),
                        Some(why) => {
                            lines.push(entry(a, "skipped", op, Some(why.clone())));
                            out.skipped.push((a.key(), why));
                        }
                    }
                }
                journal.write(&lines)?;
                keep
            } else {
                chunk.to_vec()
            };
            let chunk = chunk.as_slice();
            if chunk.is_empty() {
                continue;
            }
            // Each key written once for the journal, the removal and its
            // directories.
            let keys: Vec<String> = {
                let t = crate::plan::names::Tables::read();
                chunk.iter().map(|a| a.key_in(&t)).collect()
            };
            let intents: Vec<JournalEntry> = chunk
                .iter()
                .zip(&keys)
                .map(|(a, k)| entry_at(a.kind, k.clone(), a.bytes, "intent", op, None))
                .collect();
            journal.write(&intents)?;
            let results: Vec<Result<Vec<String>, StorageError>> = match &opts.quarantine {
                None => delete_chunk(storage, chunk, &keys),
                Some(q) => chunk
                    .par_iter()
                    .zip(&keys)
                    .map(|(a, k)| {
                        let files = files_of(storage, a.kind, k)?;
                        for f in &files {
                            match storage.quarantine(f, q) {
                                Ok(()) => {}
                                Err(e) if e.is_not_found() => {}
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(files)
                    })
                    .collect(),
            };
            let mut lines = Vec::with_capacity(chunk.len());
            for ((a, r), k) in chunk.iter().zip(results).zip(keys) {
                match r {
                    Ok(files) => {
                        out.done += 1;
                        out.objects += files.len();
                        out.bytes += a.bytes;
                        dirs_touched.extend(dirs_of(a.kind, &k, &files));
                        lines.push(entry_at(a.kind, k, a.bytes, "done", op, None));
                    }
                    Err(e) => {
                        if e.is_out_of_space() && full.is_none() {
                            full = Some(e.to_string());
                        }
                        out.failed.push((k.clone(), e.to_string()));
                        lines.push(entry_at(
                            a.kind,
                            k,
                            a.bytes,
                            "failed",
                            op,
                            Some(e.to_string()),
                        ));
                    }
                }
            }
            if chunk[0].kind == ActionKind::Tag {
                // A tag's directory goes at once, before its `done` line: the
                // registry lists tags by directory, and an emptied one would
                // be listed but not resolve until the end of the run. A run
                // killed in between leaves the intent open, and `recover`
                // removes the directory.
                let dirs: Vec<String> = std::mem::take(&mut dirs_touched);
                storage.remove_empty_dirs(&dirs, &|d: &str| keep_dir(d, &whole));
            }
            journal.write(&lines)?;
            progress.inc(chunk.len() as u64);
            // Counted over the whole process: an online apply carries a plan
            // out in several parts.
            let batches_done = BATCHES_DONE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if pause_after == Some(batches_done) {
                // Crash-test hook: park here so a test can SIGKILL a sweep
                // part-way at a known point.
                eprintln!("regsweep: pausing after {batches_done} batch(es) (REGSWEEP_PAUSE_AFTER_BATCHES)");
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
    progress.phase("removing empty directories");
    // Leaf directories of removed files (deepest first is handled by the backend).
    let mut leaves: Vec<String> = Vec::new();
    for d in dirs_touched {
        leaves.push(d);
    }
    storage.remove_empty_dirs(&leaves, &|d: &str| keep_dir(d, &whole));
    progress.finish();
    Ok(out)
}

/// Journals `actions` as skipped for `why` and counts them held back: what
/// a failure protects is not attempted.
fn hold_back(
    actions: &[&Action],
    why: &str,
    op: &str,
    journal: &Journal,
    out: &mut SweepOutcome,
) -> Result<()> {
    let lines: Vec<JournalEntry> = actions
        .iter()
        .map(|a| entry(a, "skipped", op, Some(why.to_string())))
        .collect();
    journal.write(&lines)?;
    out.held_back += actions.len();
    Ok(())
}

/// Deletes the files of a chunk of actions: directory-listed actions are
/// expanded first, then every file goes in one batched call.
/// Every directory an action's removal may have left empty: the parents of
/// its files, and its own directory (or a repository's three).
fn dirs_of(kind: ActionKind, key: &str, files: &[String]) -> Vec<String> {
    let mut dirs: Vec<String> = files
        .iter()
        .filter_map(|f| f.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    dirs.push(key.trim_end_matches('/').to_string());
    if kind == ActionKind::Repository {
        for sub in ["_manifests", "_layers", "_uploads"] {
            dirs.push(format!("{key}{sub}"));
        }
    }
    dirs
}

fn delete_chunk(
    storage: &dyn Storage,
    chunk: &[&Action],
    keys: &[String],
) -> Vec<Result<Vec<String>, StorageError>> {
    let expanded: Vec<Result<Vec<String>, StorageError>> = chunk
        .par_iter()
        .zip(keys)
        .map(|(a, k)| files_of(storage, a.kind, k))
        .collect();
    let mut all = Vec::new();
    let mut owner = Vec::new();
    for (i, r) in expanded.iter().enumerate() {
        if let Ok(files) = r {
            for f in files {
                all.push(f.clone());
                owner.push(i);
            }
        }
    }
    let mut results = expanded;
    // Tags: their history first, then (only where that worked) their
    // `current/link`s.
    let last = |f: &String| chunk[0].kind == ActionKind::Tag && f.ends_with("/current/link");
    type Files = Vec<(String, usize)>;
    let (late, early): (Files, Files) = all.into_iter().zip(owner).partition(|(f, _)| last(f));
    for pass in [early, late] {
        let pass: Vec<(String, usize)> = pass
            .into_iter()
            .filter(|(_, i)| results[*i].is_ok())
            .collect();
        let keys: Vec<String> = pass.iter().map(|(f, _)| f.clone()).collect();
        for ((_, i), r) in pass.iter().zip(storage.delete_many(&keys)) {
            if let Err(e) = r {
                if results[*i].is_ok() {
                    results[*i] = Err(e);
                }
            }
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_structural_directories() {
        let none = Whole::default();
        for d in [
            "blobs/sha256",
            "repositories/a/b/_manifests/revisions/sha256",
            "repositories/a/_layers/sha256",
            "repositories/a/_manifests/tags/v1",
            "repositories/a",
        ] {
            assert!(keep_dir(d, &none), "{d}");
        }
        for d in [
            "blobs/sha256/ab",
            "blobs/sha256/ab/abcd",
            "repositories/a/_manifests/tags/v1/index/sha256",
            "repositories/a/_manifests/tags/v1/index",
            "repositories/a/_uploads/123",
            "repositories/a/_uploads",
        ] {
            assert!(!keep_dir(d, &none), "{d}");
        }
        let mut pruned = Whole::default();
        pruned.add(ActionKind::Repository, "repositories/a/b/");
        pruned.add(ActionKind::Tag, "repositories/a/_manifests/tags/v1/");
        assert!(!keep_dir("repositories/a/b/_manifests", &pruned));
        assert!(!keep_dir("repositories/a/b", &pruned));
        assert!(keep_dir("repositories/a", &pruned));
        // A tag removed whole takes its directory; the others stay.
        assert!(!keep_dir("repositories/a/_manifests/tags/v1", &pruned));
        assert!(keep_dir("repositories/a/_manifests/tags/v2", &pruned));
        assert!(keep_dir("repositories/a/_manifests/tags", &pruned));
    }

    /// A run killed after a tag's files went but before its directory did
    /// (the registry would list the tag and answer 404): the next run's
    /// recovery closes the intent and removes the directory, and leaves the
    /// other tags alone.
    #[test]
    fn recovery_removes_a_tag_directory_left_empty() {
        let dir = tempfile::tempdir().unwrap();
        let tags = dir
            .path()
            .join("docker/registry/v2/repositories/a/_manifests/tags");
        std::fs::create_dir_all(tags.join("v1/current")).unwrap();
        std::fs::create_dir_all(tags.join("v1/index/sha256/ab")).unwrap();
        std::fs::create_dir_all(tags.join("v2/current")).unwrap();
        std::fs::write(tags.join("v2/current/link"), "sha256:ab").unwrap();
        let storage = crate::storage::fs::FsStorage::open(dir.path()).unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::open(&path).unwrap();
        use crate::plan::names::Name;
        let a = Action::tag(Name::of("a"), Name::of("v1"), None);
        journal
            .write(&[entry(&a, "intent", "delete", None)])
            .unwrap();
        assert_eq!(recover(&storage, &journal).unwrap(), 1);
        assert!(!tags.join("v1").exists());
        assert!(tags.join("v2/current/link").exists());
        let lines = Journal::read(&path).unwrap();
        assert!(lines.iter().any(|l| l.state == "done" && l.recovered));
    }
}
