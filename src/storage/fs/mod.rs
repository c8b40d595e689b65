//! Filesystem backend: a registry `rootdirectory` read through directory
//! descriptors (`openat2`, `getdents64`).
//!
//! Nothing below the root is ever reached through a symlink: listings report
//! symlinks as [`EntryKind::Symlink`](super::EntryKind::Symlink) without
//! following them, and reads open files with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the root
//! (falling back to `O_NOFOLLOW` on kernels without `openat2`).
//!
//! The seams: `beneath.rs` resolves keys beneath the root (`openat2`, the
//! shard descriptors, the other `*at` system calls); `dents.rs` reads
//! directories with `getdents64`; `listing.rs` lists (one level with probes,
//! digest directories, recursive walks); `read.rs` reads and hashes open
//! files; `pool.rs` runs batches on the I/O threads; `storage.rs` implements
//! [`Storage`](super::Storage) with them.

mod beneath;
mod dents;
mod listing;
mod pool;
mod read;
mod storage;
#[cfg(test)]
mod tests;

use super::{StorageError, V2_PREFIX};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A registry tree on a local filesystem.
#[derive(Debug)]
pub struct FsStorage {
    /// The user's root directory (the one holding `docker/registry/v2`).
    root: PathBuf,
    /// `<root>/docker/registry/v2`.
    v2: PathBuf,
    /// An open descriptor of `v2`, the anchor for every read.
    v2_fd: OwnedFd,
    /// Threads for blocking filesystem calls: more than cores, so that a cold
    /// cache keeps the disk's queue full.
    io: rayon::ThreadPool,
    /// The threads a batch runs on while the disk is not being read (the
    /// cache is warm): two per core, since calls that never block gain
    /// nothing from more and lose to their switching and spinning. `None`
    /// when the thread count was given.
    io_warm: Option<rayon::ThreadPool>,
    /// Whether the last batch read from the disk (see [`FsStorage::each`]):
    /// then the next one runs on every I/O thread. Starts true.
    cold: std::sync::atomic::AtomicBool,
    /// Open descriptors of the 256 `blobs/sha256/xx/` shards, opened on first
    /// use: blob reads and stats resolve two path components, not five.
    /// `None` when a shard could not be opened (the full path is used).
    shards: Vec<std::sync::OnceLock<Option<OwnedFd>>>,
    /// Set once this process removes directories: shard descriptors may then
    /// be stale, and are no longer used.
    dirs_removed: std::sync::atomic::AtomicBool,
}

impl FsStorage {
    /// Opens the registry tree under `root`. Fails when `root/docker/registry/v2`
    /// is not a directory.
    pub fn open(root: &Path) -> Result<FsStorage, StorageError> {
        Self::open_with_threads(root, None)
    }

    /// [`FsStorage::open`] with `threads` threads for filesystem calls
    /// (default: 8 per core, between 8 and 64).
    pub fn open_with_threads(
        root: &Path,
        threads: Option<usize>,
    ) -> Result<FsStorage, StorageError> {
        let v2 = root.join(V2_PREFIX);
        let key = v2.display().to_string();
        let meta = fs::metadata(&v2).map_err(|e| io_err(&key, e))?;
        if !meta.is_dir() {
            return Err(StorageError::NotAFile { key });
        }
        let c = CString::new(v2.as_os_str().as_bytes())
            .map_err(|_| StorageError::NotFound { key: key.clone() })?;
        // SAFETY: `c` is a valid NUL-terminated path; the returned fd is checked.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io_err(&key, io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a freshly opened descriptor that we own.
        let v2_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let (io, io_warm) = pool::io_pools(threads, &key)?;
        Ok(FsStorage {
            root: root.to_path_buf(),
            v2,
            v2_fd,
            io,
            io_warm,
            cold: std::sync::atomic::AtomicBool::new(true),
            shards: (0..256).map(|_| std::sync::OnceLock::new()).collect(),
            dirs_removed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The absolute path of `<root>/docker/registry/v2`.
    pub fn v2_path(&self) -> &Path {
        &self.v2
    }

    pub(super) fn path(&self, key: &str) -> PathBuf {
        self.v2.join(key.trim_end_matches('/'))
    }
}

pub(super) fn split_key(key: &str) -> (&str, &str) {
    match key.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", key),
    }
}

pub(super) fn cstr(key: &str, s: &str) -> Result<CString, StorageError> {
    CString::new(s).map_err(|_| StorageError::NotFound {
        key: key.to_string(),
    })
}

pub(super) fn io_err(key: &str, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::NotFound {
        StorageError::NotFound {
            key: key.to_string(),
        }
    } else {
        StorageError::Io {
            key: key.to_string(),
            error: e,
        }
    }
}
