//! Directory reading with `getdents64` straight from a descriptor, and the
//! one-level listing built from it.

use super::beneath::{readlink_at, stat_at};
use super::io_err;
use crate::storage::{DirListing, Entry, EntryKind, StorageError};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// The listing of the open directory `fd`, whose key is `prefix`.
pub(super) fn list_fd(fd: &OwnedFd, prefix: &str) -> Result<DirListing, StorageError> {
    listing_of(fd, prefix, read_dir_fd(fd).map_err(|e| io_err(prefix, e))?)
}

/// The listing of `entries`, read from the open directory `fd` (whose key
/// is `prefix`): directories by name (sorted), everything else as entries.
pub(super) fn listing_of(
    fd: &OwnedFd,
    prefix: &str,
    entries: Vec<(std::ffi::OsString, DirEntryKind)>,
) -> Result<DirListing, StorageError> {
    let mut out = DirListing::default();
    for (name, kind) in entries {
        let Ok(name) = name.into_string() else {
            return Err(StorageError::Backend {
                key: prefix.to_string(),
                message: "a file name in this directory is not UTF-8".into(),
            });
        };
        match kind {
            DirEntryKind::Dir => out.dirs.push(name),
            DirEntryKind::Other(k) => {
                let kind = match k {
                    libc::S_IFREG => EntryKind::File,
                    libc::S_IFLNK => EntryKind::Symlink {
                        target: readlink_at(fd, &name).unwrap_or_default(),
                    },
                    _ => EntryKind::Special,
                };
                out.files.push(Entry {
                    key: format!("{prefix}{name}"),
                    kind,
                    size: None,
                    modified: None,
                });
            }
        }
    }
    out.dirs.sort_unstable();
    Ok(out)
}

/// What `read_dir_fd` learnt of an entry: a directory, or the `S_IFMT`
/// bits of anything else.
pub(super) enum DirEntryKind {
    Dir,
    Other(libc::mode_t),
}

/// The entries of an open directory (without `.` and `..`), read with
/// `getdents64` straight from `fd` (no `fdopendir`, whose `dup`, `fcntl` and
/// `fstat` would triple the system calls per directory). Types come from
/// `d_type`, or from `fstatat` where the filesystem does not fill it in.
pub(super) fn read_dir_fd(fd: &OwnedFd) -> io::Result<Vec<(std::ffi::OsString, DirEntryKind)>> {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::new();
    each_dir_entry(fd, |name, kind| {
        out.push((std::ffi::OsString::from_vec(name.to_vec()), kind))
    })?;
    Ok(out)
}

/// Calls `f` with the name and type of every entry of the open directory
/// `fd` (without `.` and `..`), as [`read_dir_fd`] lists them, without
/// copying the names out of the kernel's buffer (a thread's own).
pub(super) fn each_dir_entry(fd: &OwnedFd, f: impl FnMut(&[u8], DirEntryKind)) -> io::Result<()> {
    thread_local! {
        static DENTS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    DENTS.with(|b| {
        let mut b = b.borrow_mut();
        b.resize(64 * 1024, 0);
        read_dir_into(fd, &mut b, f)
    })
}

/// [`each_dir_entry`] with `buf` for the raw entries.
fn read_dir_into(
    fd: &OwnedFd,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8], DirEntryKind),
) -> io::Result<()> {
    /// `struct linux_dirent64` up to its name: ino, off, reclen, type.
    const HEADER: usize = 8 + 8 + 2 + 1;
    loop {
        // SAFETY: getdents64(2) fills at most `buf.len()` bytes of `buf`
        // from the open directory `fd`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(());
        }
        let mut pos = 0usize;
        while pos < n as usize {
            let rec = &buf[pos..n as usize];
            if rec.len() < HEADER {
                return Err(io::Error::other("truncated directory entry"));
            }
            let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
            if reclen < HEADER || reclen > rec.len() {
                return Err(io::Error::other("bad directory entry length"));
            }
            let d_type = rec[18];
            let name_bytes = &rec[HEADER..reclen];
            let name_len = name_bytes
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_bytes.len());
            let name = &name_bytes[..name_len];
            pos += reclen;
            if name == b"." || name == b".." || name.is_empty() {
                continue;
            }
            let kind = match d_type {
                libc::DT_DIR => DirEntryKind::Dir,
                libc::DT_REG => DirEntryKind::Other(libc::S_IFREG),
                libc::DT_LNK => DirEntryKind::Other(libc::S_IFLNK),
                libc::DT_UNKNOWN => {
                    let c = CString::new(name).map_err(io::Error::other)?;
                    match stat_at(fd.as_raw_fd(), &c) {
                        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => DirEntryKind::Dir,
                        Ok(st) => DirEntryKind::Other(st.st_mode & libc::S_IFMT),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                }
                _ => DirEntryKind::Other(0),
            };
            f(name, kind);
        }
    }
}
