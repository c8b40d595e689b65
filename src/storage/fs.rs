//! Filesystem backend: a registry `rootdirectory` read with std::fs and walkdir.
//!
//! Nothing below the root is ever reached through a symlink: listings report
//! symlinks as [`EntryKind::Symlink`] without following them, and reads open
//! files with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the
//! root (falling back to `O_NOFOLLOW` on kernels without `openat2`).

use super::{
    DirListing, Entry, EntryKind, Listing, Meta, Probe, Probed, Storage, StorageError, V2_PREFIX,
};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

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
        let threads = threads.unwrap_or_else(|| {
            (std::thread::available_parallelism().map_or(2, |n| n.get()) * 8).clamp(8, 64)
        });
        let io = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("regsweep-io-{i}"))
            .build()
            .map_err(|e| StorageError::Backend {
                key: key.clone(),
                message: format!("cannot start I/O threads: {e}"),
            })?;
        Ok(FsStorage {
            root: root.to_path_buf(),
            v2,
            v2_fd,
            io,
            shards: (0..256).map(|_| std::sync::OnceLock::new()).collect(),
            dirs_removed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The absolute path of `<root>/docker/registry/v2`.
    pub fn v2_path(&self) -> &Path {
        &self.v2
    }

    fn path(&self, key: &str) -> PathBuf {
        self.v2.join(key.trim_end_matches('/'))
    }

    fn key_of(&self, path: &Path) -> Option<String> {
        path.strip_prefix(&self.v2)
            .ok()
            .and_then(|p| p.to_str())
            .map(str::to_string)
    }

    /// `f(0..n)` on every I/O thread at once, each taking the next index
    /// from a shared counter (no work stealing: threads blocked in system
    /// calls are the point, and idle ones do not spin); results in order.
    fn each<T: Send>(&self, n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        if n <= 1 {
            return (0..n).map(f).collect();
        }
        let next = AtomicUsize::new(0);
        let parts: Vec<Vec<(usize, T)>> = self.io.broadcast(|_| {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return done;
                }
                done.push((i, f(i)));
            }
        });
        let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None).take(n).collect();
        for (i, t) in parts.into_iter().flatten() {
            slots[i] = Some(t);
        }
        slots
            .into_iter()
            .map(|t| t.expect("every index is done once"))
            .collect()
    }

    /// For a key below `blobs/sha256/xx/`: the shard's open descriptor and
    /// the rest of the key, relative to it.
    fn in_shard<'k>(&self, key: &'k str) -> Option<(i32, &'k str)> {
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
    fn open_beneath(&self, key: &str) -> Result<File, StorageError> {
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
    fn open_dir(&self, dir: &str, create: bool) -> Result<OwnedFd, StorageError> {
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

    /// Lists directory `prefix` through a descriptor opened beneath the root
    /// (no symlink is followed on the way), and applies `probes` to each
    /// child directory relative to that descriptor.
    fn list_dirs_probe(
        &self,
        prefix: &str,
        probes: &[Probe<'_>],
    ) -> Result<DirListing, StorageError> {
        let dir = prefix.trim_end_matches('/');
        let fd = match self.open_dir(dir, false) {
            Ok(fd) => fd,
            Err(e) if e.is_not_found() => return Ok(DirListing::default()),
            Err(e) => return Err(e),
        };
        let mut out = list_fd(&fd, prefix)?;
        if !probes.is_empty() {
            out.probes = Vec::with_capacity(out.dirs.len() * probes.len());
            for d in &out.dirs {
                for &probe in probes {
                    out.probes.push(self.probe_at(&fd, prefix, d, probe));
                }
            }
        }
        Ok(out)
    }

    /// Applies `probe` to `<d>/<file>` relative to the open directory `fd`
    /// (whose key is `prefix`); `d` was listed as a directory.
    fn probe_at(
        &self,
        fd: &OwnedFd,
        prefix: &str,
        d: &str,
        probe: Probe<'_>,
    ) -> Result<Probed, StorageError> {
        let rel = format!("{d}/{}", probe.file());
        let key = || format!("{prefix}{rel}");
        let c = CString::new(rel.as_str()).map_err(|_| StorageError::NotFound { key: key() })?;
        match probe {
            Probe::Stat(_) => {
                let st = stat_at(fd.as_raw_fd(), &c).map_err(|e| io_err(&key(), e))?;
                meta_of(&st, key).map(Probed::Meta)
            }
            Probe::Read(_, limit) => {
                let f = openat2_beneath(fd.as_raw_fd(), &c, 0)
                    .map_err(|e| self.open_error(&key(), e))?;
                // SAFETY: `f` is a freshly opened descriptor that we own.
                let f = unsafe { File::from_raw_fd(f) };
                read_limited(f, &key(), limit).map(Probed::Content)
            }
            Probe::List(_) => {
                let sub = match openat2_beneath(fd.as_raw_fd(), &c, libc::O_DIRECTORY) {
                    // SAFETY: a freshly opened descriptor that we own.
                    Ok(sub) => unsafe { OwnedFd::from_raw_fd(sub) },
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Ok(Probed::Listing(DirListing::default()))
                    }
                    Err(e) => return Err(self.open_error(&key(), e)),
                };
                list_fd(&sub, &format!("{}/", key())).map(Probed::Listing)
            }
        }
    }

    fn quarantine_path(q: &str, key: &str) -> PathBuf {
        Path::new(q).join(V2_PREFIX).join(key)
    }

    fn open_error(&self, key: &str, e: io::Error) -> StorageError {
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
fn openat2_beneath(dirfd: i32, path: &CString, extra_flags: i32) -> io::Result<i32> {
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

fn dup_fd(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: duplicating a descriptor we hold open.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if d < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: `d` is a fresh descriptor that we own.
        Ok(unsafe { OwnedFd::from_raw_fd(d) })
    }
}

/// The listing of the open directory `fd`, whose key is `prefix`.
fn list_fd(fd: &OwnedFd, prefix: &str) -> Result<DirListing, StorageError> {
    let mut out = DirListing::default();
    for (name, kind) in read_dir_fd(fd).map_err(|e| io_err(prefix, e))? {
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
enum DirEntryKind {
    Dir,
    Other(libc::mode_t),
}

/// The entries of an open directory (without `.` and `..`), read with
/// `getdents64` straight from `fd` (no `fdopendir`, whose `dup`, `fcntl` and
/// `fstat` would triple the system calls per directory). Types come from
/// `d_type`, or from `fstatat` where the filesystem does not fill it in.
fn read_dir_fd(fd: &OwnedFd) -> io::Result<Vec<(std::ffi::OsString, DirEntryKind)>> {
    thread_local! {
        static DENTS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    DENTS.with(|b| {
        let mut b = b.borrow_mut();
        b.resize(64 * 1024, 0);
        read_dir_into(fd, &mut b)
    })
}

/// [`read_dir_fd`] with `buf` for the raw entries.
fn read_dir_into(
    fd: &OwnedFd,
    buf: &mut [u8],
) -> io::Result<Vec<(std::ffi::OsString, DirEntryKind)>> {
    use std::os::unix::ffi::OsStringExt;
    /// `struct linux_dirent64` up to its name: ino, off, reclen, type.
    const HEADER: usize = 8 + 8 + 2 + 1;
    let mut out = Vec::new();
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
            return Ok(out);
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
            out.push((std::ffi::OsString::from_vec(name.to_vec()), kind));
        }
    }
}

/// `fstatat(dirfd, path, AT_SYMLINK_NOFOLLOW)`.
fn stat_at(dirfd: i32, path: &std::ffi::CStr) -> io::Result<libc::stat> {
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
fn meta_of(st: &libc::stat, key: impl Fn() -> String) -> Result<Meta, StorageError> {
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
fn readlink_at(fd: &OwnedFd, name: &str) -> Option<String> {
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

/// Reads an open regular file whole, refusing more than `limit` bytes.
fn read_limited(mut f: File, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
    const SCRATCH: usize = 64 * 1024;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let not_a_file = || StorageError::NotAFile {
        key: key.to_string(),
    };
    let read = |f: &mut File, buf: &mut [u8]| loop {
        match f.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Err(not_a_file()),
            Err(e) => return Err(io_err(key, e)),
            Ok(n) => return Ok(n),
        }
    };
    // Small files (links, manifests) take one read into a per-thread buffer
    // and no fstat: a short read of a regular file is its end.
    let first = BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.resize(SCRATCH, 0);
        let n = read(&mut f, &mut b)?;
        Ok::<_, StorageError>((n < SCRATCH && n as u64 <= limit).then(|| b[..n].to_vec()))
    })?;
    if first.as_ref().is_some_and(|s| !s.is_empty()) {
        return Ok(first.expect("checked above"));
    }
    // Empty, or too large for one read: is it a regular file at all?
    let meta = f.metadata().map_err(|e| io_err(key, e))?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    if let Some(empty) = first {
        return Ok(empty);
    }
    if meta.len() > limit {
        return Err(StorageError::TooLarge {
            key: key.to_string(),
            size: meta.len(),
            limit,
        });
    }
    // A large file: read it whole from the start, up to one byte past the limit.
    use std::io::Seek;
    f.rewind().map_err(|e| io_err(key, e))?;
    let mut buf = vec![0u8; (meta.len().min(limit) as usize).saturating_add(1)];
    let mut got = 0;
    loop {
        match read(&mut f, &mut buf[got..])? {
            0 => break,
            n => {
                got += n;
                if got < buf.len() {
                    continue;
                }
                if got as u64 > limit {
                    return Err(StorageError::TooLarge {
                        key: key.to_string(),
                        size: got as u64,
                        limit,
                    });
                }
                // The file grew since fstat: read on, up to one byte past the limit.
                let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
                buf.resize(buf.len().saturating_mul(2).min(cap), 0);
            }
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn split_key(key: &str) -> (&str, &str) {
    match key.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", key),
    }
}

fn cstr(key: &str, s: &str) -> Result<CString, StorageError> {
    CString::new(s).map_err(|_| StorageError::NotFound {
        key: key.to_string(),
    })
}

/// `renameat2(…, RENAME_NOREPLACE)`: fails with EEXIST instead of overwriting.
fn rename_noreplace(from_dir: i32, from: &CString, to_dir: i32, to: &CString) -> io::Result<()> {
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

fn io_err(key: &str, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::NotFound {
        StorageError::NotFound {
            key: key.to_string(),
        }
    } else {
        StorageError::Io {
            key: key.to_string(),
            source: e,
        }
    }
}

fn kind_of(ft: fs::FileType, path: &Path) -> EntryKind {
    if ft.is_file() {
        EntryKind::File
    } else if ft.is_symlink() {
        EntryKind::Symlink {
            target: fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default(),
        }
    } else {
        EntryKind::Special
    }
}

impl Storage for FsStorage {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn prefers_shallow(&self) -> bool {
        true
    }

    fn list_dirs_many(&self, prefixes: &[String]) -> Vec<Result<DirListing, StorageError>> {
        self.each(prefixes.len(), |i| self.list_dirs(&prefixes[i]))
    }

    fn list_dirs_probe_many(
        &self,
        prefixes: &[String],
        probes: &[Probe<'_>],
    ) -> Vec<Result<DirListing, StorageError>> {
        self.each(prefixes.len(), |i| {
            self.list_dirs_probe(&prefixes[i], probes)
        })
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

    fn stat_many(&self, keys: &[String]) -> Vec<Result<Meta, StorageError>> {
        self.each(keys.len(), |i| self.stat(&keys[i]))
    }

    fn list_dirs(&self, prefix: &str) -> Result<DirListing, StorageError> {
        self.list_dirs_probe(prefix, &[])
    }

    fn list(&self, prefix: &str, want_meta: bool) -> Result<Listing, StorageError> {
        let top = self.path(prefix);
        match fs::symlink_metadata(&top) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(io_err(prefix, e)),
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StorageError::Symlink {
                    key: prefix.trim_end_matches('/').to_string(),
                    target: fs::read_link(&top)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default(),
                })
            }
            Ok(_) => {}
        }
        let mut out = Listing::default();
        let walk = WalkDir::new(&top)
            .follow_links(false)
            .follow_root_links(false);
        for item in walk {
            let ent = match item {
                Ok(ent) => ent,
                Err(e) => {
                    let key = e
                        .path()
                        .and_then(|p| self.key_of(p))
                        .unwrap_or_else(|| prefix.to_string());
                    let source = e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("filesystem loop"));
                    out.errors.push(io_err(&key, source));
                    continue;
                }
            };
            let ft = ent.file_type();
            if ft.is_dir() {
                continue;
            }
            let Some(key) = self.key_of(ent.path()) else {
                out.errors.push(StorageError::Backend {
                    key: ent.path().to_string_lossy().into_owned(),
                    message: "path is not UTF-8".into(),
                });
                continue;
            };
            let (size, modified) = if want_meta && ft.is_file() {
                match ent.metadata() {
                    Ok(m) => (Some(m.len()), m.modified().ok()),
                    Err(e) => {
                        out.errors.push(StorageError::Io {
                            key,
                            source: e
                                .into_io_error()
                                .unwrap_or_else(|| io::Error::other("stat failed")),
                        });
                        continue;
                    }
                }
            } else {
                (None, None)
            };
            out.entries.push(Entry {
                kind: kind_of(ft, ent.path()),
                key,
                size,
                modified,
            });
        }
        Ok(out)
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
        match rename_noreplace(dfd.as_raw_fd(), &from, libc::AT_FDCWD, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                // Another filesystem: copy, sync, then delete the original.
                let mut src = self.open_beneath(key)?;
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&dest)
                    .map_err(|e| io_err(&dest.display().to_string(), e))?;
                io::copy(&mut src, &mut out).map_err(|e| io_err(key, e))?;
                out.sync_all().map_err(|e| io_err(key, e))?;
                self.delete(key)
            }
            Err(e) => Err(io_err(key, e)),
        }
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
                let path = self.path(key);
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| io_err(key, e))?;
                io::copy(&mut input, &mut out).map_err(|e| io_err(key, e))?;
                out.sync_all().map_err(|e| io_err(key, e))?;
                fs::remove_file(&src).map_err(|e| io_err(&src.display().to_string(), e))
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(StorageError::Backend {
                key: key.to_string(),
                message: "already exists in the storage; not overwritten".into(),
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
        let c = cstr(key, rel)?;
        let st = stat_at(dirfd, &c).map_err(|e| io_err(key, e))?;
        match meta_of(&st, || key.to_string()) {
            Err(StorageError::Symlink { .. }) => {
                Err(self.open_error(key, io::Error::from_raw_os_error(libc::ELOOP)))
            }
            other => other,
        }
    }

    fn sha256_many(
        &self,
        keys: &[String],
        done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Result<super::hash::ContentHash, StorageError>> {
        use rayon::prelude::*;
        keys.par_iter()
            .map(|k| {
                let h = super::hash::sha256_file(&self.open_beneath(k)?, k)?;
                done(h.size);
                Ok(h)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, FsStorage) {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join(V2_PREFIX);
        fs::create_dir_all(v2.join("blobs/sha256/ab/abcd")).unwrap();
        fs::write(v2.join("blobs/sha256/ab/abcd/data"), b"hello").unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn reads_only_regular_files_whole_and_bounded() {
        let (d, s) = tree();
        let v2 = d.path().join(V2_PREFIX);
        fs::write(v2.join("empty"), b"").unwrap();
        assert_eq!(s.read("empty", 10).unwrap(), b"");
        // Larger than one read into the scratch buffer.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(v2.join("big"), &big).unwrap();
        assert_eq!(s.read("big", 1 << 20).unwrap(), big);
        assert!(matches!(
            s.read("big", 100_000),
            Err(StorageError::TooLarge { size: 200_000, .. })
        ));
        // Between the limit and the scratch buffer's size.
        assert!(matches!(
            s.read("blobs/sha256/ab/abcd/data", 3),
            Err(StorageError::TooLarge { .. })
        ));
        assert!(matches!(
            s.read("blobs/sha256/ab", 10),
            Err(StorageError::NotAFile { .. })
        ));
        let fifo = CString::new(v2.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            s.read("fifo", 10),
            Err(StorageError::NotAFile { .. })
        ));
        // Probes read and stat relative to the listed directory.
        let l = s
            .list_dirs_probe_many(
                &["blobs/sha256/ab/".to_string()],
                &[
                    Probe::Read("data", 10),
                    Probe::Stat("data"),
                    Probe::Stat("nope"),
                ],
            )
            .pop()
            .unwrap()
            .unwrap();
        assert_eq!(l.dirs, ["abcd"]);
        assert!(matches!(&l.probes[0], Ok(Probed::Content(c)) if c == b"hello"));
        assert!(matches!(&l.probes[1], Ok(Probed::Meta(m)) if m.size == 5));
        assert!(matches!(&l.probes[2], Err(e) if e.is_not_found()));
    }

    #[test]
    fn lists_and_reads() {
        let (_d, s) = tree();
        let l = s.list("blobs/", true).unwrap();
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].key, "blobs/sha256/ab/abcd/data");
        assert_eq!(l.entries[0].size, Some(5));
        assert_eq!(s.read("blobs/sha256/ab/abcd/data", 10).unwrap(), b"hello");
        assert!(matches!(
            s.read("blobs/sha256/ab/abcd/data", 4),
            Err(StorageError::TooLarge { .. })
        ));
        assert!(s.read("nope", 10).unwrap_err().is_not_found());
        assert!(s.list("missing/", false).unwrap().entries.is_empty());
    }

    #[test]
    fn never_follows_symlinks_out_of_the_root() {
        let (d, s) = tree();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"outside").unwrap();
        let v2 = d.path().join(V2_PREFIX);
        symlink(outside.path(), v2.join("blobs/sha256/cd")).unwrap();
        symlink(
            outside.path().join("secret"),
            v2.join("blobs/sha256/ab/link"),
        )
        .unwrap();
        let l = s.list("blobs/", false).unwrap();
        let kinds: Vec<_> = l.entries.iter().map(|e| (&e.key, &e.kind)).collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert!(l.entries.iter().all(|e| !e.key.contains("secret")));
        assert!(matches!(
            s.read("blobs/sha256/ab/link", 100),
            Err(StorageError::Symlink { .. })
        ));
        assert!(matches!(
            s.read("blobs/sha256/cd/secret", 100),
            Err(StorageError::Symlink { .. })
        ));
        assert!(s.read("../../../../etc/passwd", 100).is_err());
    }
}
