//! [`Storage`], [`StorageBatch`] and [`FsFastPaths`] for [`FsStorage`]: each
//! call on the descriptor machinery of the other files, each batch on the
//! I/O threads.

use super::beneath::{meta_of, rename_noreplace, stat_at};
use super::read::read_limited;
use super::{cstr, io_err, split_key, FsStorage};
use crate::storage::{
    DigestListing, DirListing, Fetch, FsFastPaths, Listing, Meta, Probe, Storage, StorageBatch,
    StorageError,
};
use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

impl Storage for FsStorage {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn batch(&self) -> Option<&dyn StorageBatch> {
        Some(self)
    }

    fn fast_paths(&self) -> Option<&dyn FsFastPaths> {
        Some(self)
    }

    fn list_dirs(&self, prefix: &str) -> Result<DirListing, StorageError> {
        self.list_dirs_probe(prefix, &[])
    }

    fn list(&self, prefix: &str, want_meta: bool) -> Result<Listing, StorageError> {
        self.walk(prefix, want_meta, Fetch::default())
    }

    fn read(&self, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        read_limited(self.open_beneath(key)?, key, limit)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        let (dir, name) = split_key(key);
        let dfd = match self.open_dir(dir, false) {
            Ok(fd) => fd,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let c = cstr(key, name)?;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid dirfd, NUL-terminated name, a stat buffer to fill.
        let r = unsafe {
            libc::fstatat(
                dfd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(io_err(key, e))
            };
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {}
            libc::S_IFLNK => {
                return Err(self.open_error(key, io::Error::from_raw_os_error(libc::ELOOP)))
            }
            _ => {
                return Err(StorageError::NotAFile {
                    key: key.to_string(),
                })
            }
        }
        // SAFETY: valid dirfd and NUL-terminated name.
        if unsafe { libc::unlinkat(dfd.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::NotFound {
                return Err(io_err(key, e));
            }
        }
        Ok(())
    }

    fn quarantine(&self, key: &str, q: &str) -> Result<(), StorageError> {
        let (dir, name) = split_key(key);
        let dfd = self.open_dir(dir, false)?;
        // Refuse anything but a regular file (never move a symlink).
        self.stat(key)?;
        let dest = Self::quarantine_path(q, key);
        let parent = dest.parent().expect("quarantine path has a parent");
        fs::create_dir_all(parent).map_err(|e| io_err(&dest.display().to_string(), e))?;
        let from = cstr(key, name)?;
        let to = CString::new(dest.as_os_str().as_bytes()).map_err(|_| StorageError::NotFound {
            key: key.to_string(),
        })?;
        // An earlier run may have staged the same key (the object was
        // written again since, and is removed again): the newer copy takes
        // its place.
        // SAFETY: valid descriptors and NUL-terminated names, per renameat(2).
        let r =
            unsafe { libc::renameat(dfd.as_raw_fd(), from.as_ptr(), libc::AT_FDCWD, to.as_ptr()) };
        if r == 0 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EXDEV) => {
                // Another filesystem: a whole copy under its own name (never
                // a partial one under the object's), then the original goes.
                let mut src = self.open_beneath(key)?;
                copy_whole(&mut src, &dest, true)
                    .map_err(|e| io_err(&dest.display().to_string(), e))?;
                self.delete(key)
            }
            e => Err(io_err(key, e)),
        }
    }

    fn write_to_quarantine(&self, key: &str, q: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let dest = Self::quarantine_path(q, key);
        let shown = dest.display().to_string();
        let parent = dest.parent().expect("quarantine path has a parent");
        fs::create_dir_all(parent).map_err(|e| io_err(&shown, e))?;
        // Written whole or not at all: a temporary file, synced, renamed.
        let tmp = dest.with_extension(format!("tmp-{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            io::Write::write_all(&mut f, bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &dest)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&shown, e)
        })
    }

    fn unquarantine(&self, key: &str, q: &str) -> Result<(), StorageError> {
        // Shard directories may be created anew below: stop using the cache.
        self.dirs_removed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (dir, name) = split_key(key);
        let src = Self::quarantine_path(q, key);
        let dfd = self.open_dir(dir, true)?;
        let from =
            CString::new(src.as_os_str().as_bytes()).map_err(|_| StorageError::NotFound {
                key: key.to_string(),
            })?;
        let to = cstr(key, name)?;
        match rename_noreplace(libc::AT_FDCWD, &from, dfd.as_raw_fd(), &to) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let mut input =
                    File::open(&src).map_err(|e| io_err(&src.display().to_string(), e))?;
                copy_whole(&mut input, &self.path(key), false).map_err(|e| {
                    match e.raw_os_error() {
                        Some(libc::EEXIST) => StorageError::Exists {
                            key: key.to_string(),
                        },
                        _ => io_err(key, e),
                    }
                })?;
                fs::remove_file(&src).map_err(|e| io_err(&src.display().to_string(), e))
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(StorageError::Exists {
                key: key.to_string(),
            }),
            Err(e) => Err(io_err(key, e)),
        }
    }

    fn remove_empty_dirs(&self, dirs: &[String], keep: &(dyn Fn(&str) -> bool + Sync)) {
        self.dirs_removed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut dirs: Vec<&str> = dirs.iter().map(|d| d.trim_end_matches('/')).collect();
        // Deepest first, so that a parent is tried after its children.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        dirs.dedup();
        for d in dirs {
            let mut cur = d;
            while !cur.is_empty() && !keep(cur) {
                let (parent, name) = split_key(cur);
                let Ok(pfd) = self.open_dir(parent, false) else {
                    break;
                };
                let Ok(c) = cstr(cur, name) else { break };
                // SAFETY: valid dirfd and NUL-terminated name; AT_REMOVEDIR
                // removes only an empty directory (never a symlink's target).
                if unsafe { libc::unlinkat(pfd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
                    break;
                }
                cur = parent;
            }
        }
    }

    fn stat(&self, key: &str) -> Result<Meta, StorageError> {
        let (dirfd, rel) = self.in_shard(key).unwrap_or((self.v2_fd.as_raw_fd(), key));
        self.stat_in(dirfd, key, rel)
    }
}

impl FsStorage {
    /// The [`Meta`] of `key`, stat'ed as `rel` relative to `dirfd`.
    fn stat_in(&self, dirfd: i32, key: &str, rel: &str) -> Result<Meta, StorageError> {
        let c = cstr(key, rel)?;
        let st = stat_at(dirfd, &c).map_err(|e| io_err(key, e))?;
        match meta_of(&st, || key.to_string()) {
            Err(StorageError::Symlink { .. }) => {
                Err(self.open_error(key, io::Error::from_raw_os_error(libc::ELOOP)))
            }
            other => other,
        }
    }

    /// Stats `keys`, which share the directory `base`: `base` is opened
    /// once (beneath the root, no symlinks) and each key stat'ed relative
    /// to it. Should `base` not open, each key is stat'ed on its own.
    fn stat_run(&self, base: &str, keys: &[String]) -> Vec<Result<Meta, StorageError>> {
        match self.open_dir(base, false) {
            Ok(fd) => keys
                .iter()
                .map(|k| self.stat_in(fd.as_raw_fd(), k, &k[base.len() + 1..]))
                .collect(),
            Err(_) => keys.iter().map(|k| self.stat(k)).collect(),
        }
    }
}

/// Runs of consecutive keys (start, end, directory) that lie two levels
/// below one directory outside the blob shards (a repository's
/// `_layers/sha256/`, `_manifests/revisions/sha256/`): a run's keys are
/// stat'ed relative to that directory, a path walk of two components in
/// place of seven or more.
fn stat_runs(keys: &[String]) -> Vec<(usize, usize, Option<&str>)> {
    fn base(k: &str) -> Option<&str> {
        if k.starts_with("blobs/") {
            return None;
        }
        let mut it = k.rsplitn(3, '/');
        let (_, _, b) = (it.next()?, it.next()?, it.next()?);
        Some(b).filter(|b| !b.is_empty())
    }
    let mut runs: Vec<(usize, usize, Option<&str>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let b = base(k);
        match runs.last_mut() {
            Some(r) if b.is_some() && r.2 == b => r.1 = i + 1,
            _ => runs.push((i, i + 1, b)),
        }
    }
    runs
}

/// Batches on the I/O threads, which a cold disk keeps busy with a deep
/// queue; deletes are the generic ones.
impl StorageBatch for FsStorage {
    fn list_dirs_many(&self, prefixes: &[String]) -> Vec<Result<DirListing, StorageError>> {
        self.each(prefixes.len(), |i| self.list_dirs(&prefixes[i]))
    }

    fn list_many(
        &self,
        prefixes: &[String],
        want_meta: bool,
    ) -> Vec<Result<Listing, StorageError>> {
        self.each(prefixes.len(), |i| self.list(&prefixes[i], want_meta))
    }

    fn read_many(&self, keys: &[String], limit: u64) -> Vec<Result<Vec<u8>, StorageError>> {
        self.each(keys.len(), |i| self.read(&keys[i], limit))
    }

    fn read_each(
        &self,
        keys: &[String],
        limit: u64,
        then: &(dyn Fn(usize, Result<Vec<u8>, StorageError>) + Sync),
    ) {
        self.each(keys.len(), |i| then(i, self.read(&keys[i], limit)));
    }

    fn stat_many(&self, keys: &[String]) -> Vec<Result<Meta, StorageError>> {
        let runs = stat_runs(keys);
        if runs.len() * 4 > keys.len() {
            // Few keys share a directory: one stat each.
            return self.each(keys.len(), |i| self.stat(&keys[i]));
        }
        self.each(runs.len(), |r| {
            let (start, end, base) = runs[r];
            match base {
                Some(b) if end - start > 1 => self.stat_run(b, &keys[start..end]),
                _ => keys[start..end].iter().map(|k| self.stat(k)).collect(),
            }
        })
        .into_iter()
        .flatten()
        .collect()
    }

    fn sha256_many(
        &self,
        keys: &[String],
        done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Result<crate::storage::hash::ContentHash, StorageError>> {
        // On the I/O threads: a cold disk is read with a deep queue.
        self.each(keys.len(), |i| {
            let k = &keys[i];
            let h = crate::storage::hash::sha256_file(&self.open_beneath(k)?, k)?;
            done(h.size);
            Ok(h)
        })
    }
}

impl FsFastPaths for FsStorage {
    fn list_dirs_probe_many(
        &self,
        prefixes: &[String],
        probes: &[Probe<'_>],
    ) -> Vec<Result<DirListing, StorageError>> {
        self.each(prefixes.len(), |i| {
            self.list_dirs_probe(&prefixes[i], probes)
        })
    }

    fn list_digest_dirs_many(
        &self,
        prefixes: &[String],
        probes: &[Probe<'_>],
    ) -> Vec<Result<DigestListing, StorageError>> {
        self.each(prefixes.len(), |i| {
            self.list_digest_dirs(&prefixes[i], probes)
        })
    }

    fn list_fetching_many(
        &self,
        prefixes: &[String],
        want_meta: bool,
        fetch: Fetch<'_>,
    ) -> Vec<Result<Listing, StorageError>> {
        self.each(prefixes.len(), |i| {
            self.walk(&prefixes[i], want_meta, fetch)
        })
    }
}

/// Copies `src` to `dest` whole or not at all: into a temporary name beside
/// it, synced, then renamed into place — replacing what is there when
/// `replace`, else failing with EEXIST when `dest` exists. A failed copy (a
/// full disk) leaves nothing behind.
fn copy_whole(src: &mut File, dest: &std::path::Path, replace: bool) -> io::Result<()> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut copy = || -> io::Result<()> {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        io::copy(src, &mut out)?;
        out.sync_all()?;
        let from = CString::new(tmp.as_os_str().as_bytes())?;
        let to = CString::new(dest.as_os_str().as_bytes())?;
        if replace {
            fs::rename(&tmp, dest)
        } else {
            rename_noreplace(libc::AT_FDCWD, &from, libc::AT_FDCWD, &to)
        }
    };
    copy().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}
