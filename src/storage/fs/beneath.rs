//! Keys resolved beneath the root: `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` from the root's descriptor or a blob shard's, and
//! the other `*at` system calls the backend makes on a directory descriptor.

use super::{cstr, io_err, FsStorage};
use crate::storage::{Meta, StorageError, V2_PREFIX};
use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

impl FsStorage {
    /// For a key below `blobs/sha256/xx/`: the shard's open descriptor and
    /// the rest of the key, relative to it.
    pub(super) fn in_shard<'k>(&self, key: &'k str) -> Option<(i32, &'k str)> {
        let rest = key.strip_prefix("blobs/sha256/")?;
        let (shard, rel) = rest.split_at_checked(2)?;
        let rel = rel.strip_prefix('/')?;
        let idx = u8::from_str_radix(shard, 16).ok()?;
        if shard.bytes().any(|c| c.is_ascii_uppercase())
            || self.dirs_removed.load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let fd = self.shards[idx as usize]
            .get_or_init(|| self.open_dir(&format!("blobs/sha256/{shard}"), false).ok());
        fd.as_ref().map(|fd| (fd.as_raw_fd(), rel))
    }

    /// Opens `key` beneath the root without following any symlink.
    pub(super) fn open_beneath(&self, key: &str) -> Result<File, StorageError> {
        if key.split('/').any(|c| c == ".." || c == ".") || key.starts_with('/') {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        }
        let (dirfd, rel) = self.in_shard(key).unwrap_or((self.v2_fd.as_raw_fd(), key));
        let c = CString::new(rel).map_err(|_| StorageError::NotFound {
            key: key.to_string(),
        })?;
        let fd = openat2_beneath(dirfd, &c, 0);
        let fd = match fd {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                // SAFETY: valid dirfd and NUL-terminated relative path.
                let fd = unsafe {
                    libc::openat(
                        self.v2_fd.as_raw_fd(),
                        c.as_ptr(),
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
                    )
                };
                if fd < 0 {
                    return Err(self.open_error(key, io::Error::last_os_error()));
                }
                fd
            }
            Err(e) => return Err(self.open_error(key, e)),
        };
        // SAFETY: `fd` is a freshly opened descriptor that we own.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Opens directory `dir` (a key, `""` for the root) beneath the root
    /// without following symlinks; with `create`, makes missing components.
    pub(super) fn open_dir(&self, dir: &str, create: bool) -> Result<OwnedFd, StorageError> {
        if dir.is_empty() {
            // A new open file description of the root: a dup of the root's
            // descriptor would share its read offset, and a second listing
            // of the root would come back empty.
            // SAFETY: valid dirfd, NUL-terminated relative path.
            let fd = unsafe {
                libc::openat(
                    self.v2_fd.as_raw_fd(),
                    c".".as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io_err(dir, io::Error::last_os_error()));
            }
            // SAFETY: `fd` is a freshly opened descriptor that we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        if !create && !dir.is_empty() {
            // One openat2 resolves the whole path beneath the root.
            if dir
                .split('/')
                .any(|c| c == "." || c == ".." || c.is_empty())
            {
                return Err(StorageError::NotFound {
                    key: dir.to_string(),
                });
            }
            let c = cstr(dir, dir)?;
            let fd = openat2_beneath(self.v2_fd.as_raw_fd(), &c, libc::O_DIRECTORY)
                .map_err(|e| self.open_error(dir, e))?;
            // SAFETY: `fd` is a freshly opened descriptor that we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let mut cur = dup_fd(self.v2_fd.as_raw_fd()).map_err(|e| io_err(dir, e))?;
        for comp in dir.split('/').filter(|c| !c.is_empty()) {
            if comp == "." || comp == ".." {
                return Err(StorageError::NotFound {
                    key: dir.to_string(),
                });
            }
            let c = CString::new(comp).map_err(|_| StorageError::NotFound {
                key: dir.to_string(),
            })?;
            if create {
                // SAFETY: valid dirfd and NUL-terminated name.
                let r = unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), 0o755) };
                if r != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(io_err(dir, e));
                    }
                }
            }
            let fd = openat2_beneath(cur.as_raw_fd(), &c, libc::O_DIRECTORY)
                .map_err(|e| self.open_error(dir, e))?;
            // SAFETY: `fd` is a freshly opened descriptor that we own.
            cur = unsafe { OwnedFd::from_raw_fd(fd) };
        }
        Ok(cur)
    }

    pub(super) fn quarantine_path(q: &str, key: &str) -> PathBuf {
        Path::new(q).join(V2_PREFIX).join(key)
    }

    pub(super) fn open_error(&self, key: &str, e: io::Error) -> StorageError {
        match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EXDEV) => StorageError::Symlink {
                key: key.to_string(),
                target: fs::read_link(self.path(key))
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "a symlink in its path".to_string()),
            },
            _ => io_err(key, e),
        }
    }
}

/// `openat2(dirfd, path, O_RDONLY, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.
pub(super) fn openat2_beneath(
    dirfd: i32,
    path: &std::ffi::CStr,
    extra_flags: i32,
) -> io::Result<i32> {
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    const RESOLVE_BENEATH: u64 = 0x08;
    /// `struct open_how` of openat2(2).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | extra_flags) as u64,
        mode: 0,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: arguments follow openat2(2): a dirfd, a NUL-terminated path, a
    // pointer to a properly initialised `open_how` and its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd as i32)
    }
}

pub(super) fn dup_fd(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: duplicating a descriptor we hold open.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if d < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: `d` is a fresh descriptor that we own.
        Ok(unsafe { OwnedFd::from_raw_fd(d) })
    }
}

/// `fstatat(dirfd, path, AT_SYMLINK_NOFOLLOW)`.
pub(super) fn stat_at(dirfd: i32, path: &std::ffi::CStr) -> io::Result<libc::stat> {
    // SAFETY: zeroed is a valid bit pattern for the plain C struct `stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, NUL-terminated path, a stat buffer to fill.
    let r = unsafe { libc::fstatat(dirfd, path.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(st)
    }
}

/// The [`Meta`] of a regular file; symlinks and anything else are errors.
pub(super) fn meta_of(st: &libc::stat, key: impl Fn() -> String) -> Result<Meta, StorageError> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Ok(Meta {
            size: st.st_size as u64,
            modified: Some(
                std::time::UNIX_EPOCH
                    + std::time::Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32),
            ),
        }),
        libc::S_IFLNK => Err(StorageError::Symlink {
            key: key(),
            target: "a symlink".to_string(),
        }),
        _ => Err(StorageError::NotAFile { key: key() }),
    }
}

/// The target of symlink `name` in the open directory `fd`.
pub(super) fn readlink_at(fd: &OwnedFd, name: &str) -> Option<String> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid dirfd, NUL-terminated name, a buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// `renameat2(…, RENAME_NOREPLACE)`: fails with EEXIST instead of overwriting.
pub(super) fn rename_noreplace(
    from_dir: i32,
    from: &CString,
    to_dir: i32,
    to: &CString,
) -> io::Result<()> {
    const RENAME_NOREPLACE: u32 = 1;
    // SAFETY: valid descriptors and NUL-terminated names, per renameat2(2).
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            from_dir,
            from.as_ptr(),
            to_dir,
            to.as_ptr(),
            RENAME_NOREPLACE,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
