//! Filesystem backend: a registry `rootdirectory` read through directory
//! descriptors (`openat2`, `getdents64`).
//!
//! Nothing below the root is ever reached through a symlink: listings report
//! symlinks as [`EntryKind::Symlink`] without following them, and reads open
//! files with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the
//! root (falling back to `O_NOFOLLOW` on kernels without `openat2`).

use super::{
    DigestListing, DirListing, Entry, EntryKind, Fetch, Fetched, Listing, Meta, Probe, Probed,
    Storage, StorageError, V2_PREFIX,
};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How many levels of directory descriptors a walk keeps open (like
/// walkdir's `max_open`); deeper directories are opened from the root.
const MAX_HELD_DIRS: usize = 16;

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
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = |n: usize, name: &'static str| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(move |i| format!("regsweep-{name}-{i}"))
                .build()
                .map_err(|e| StorageError::Backend {
                    key: key.clone(),
                    message: format!("cannot start I/O threads: {e}"),
                })
        };
        let io = pool(threads.unwrap_or((cores * 8).clamp(8, 64)), "io")?;
        let io_warm = match threads {
            Some(_) => None,
            None => Some(pool((cores * 2).clamp(2, 64), "iow")?),
        };
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

    fn path(&self, key: &str) -> PathBuf {
        self.v2.join(key.trim_end_matches('/'))
    }

    /// `f(0..n)` on the I/O threads, each taking the next index from a
    /// shared counter (no work stealing: threads blocked in system calls are
    /// the point, and idle ones do not spin); results in order.
    ///
    /// Which threads take part follows the disk: every I/O thread when the
    /// previous batch read from it (a cold cache: blocked threads keep its
    /// queue full), those of [`FsStorage::io_warm`] when it did not (calls
    /// answered from the cache never block). Disk reads are this process's
    /// block input count (`getrusage`), taken before and after each batch.
    fn each<T: Send>(&self, n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        if n <= 1 {
            return (0..n).map(f).collect();
        }
        let pool = match &self.io_warm {
            Some(warm) if !self.cold.load(Ordering::Relaxed) => warm,
            _ => &self.io,
        };
        let before = blocks_read();
        let next = AtomicUsize::new(0);
        let parts: Vec<Vec<(usize, T)>> = pool.broadcast(|_| {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return done;
                }
                done.push((i, f(i)));
            }
        });
        if let (Some(before), Some(after)) = (before, blocks_read()) {
            self.cold
                .store(after - before >= COLD_BATCH_BLOCKS, Ordering::Relaxed);
        }
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
        let Some(fd) = self.open_listed(prefix)? else {
            return Ok(DirListing::default());
        };
        let mut out = list_fd(&fd, prefix)?;
        out.probes = self.probe_each(&fd, prefix, out.dirs.iter().map(String::as_str), probes);
        Ok(out)
    }

    /// The directory `prefix`, opened for listing; `None` when it does not
    /// exist (an empty listing, as on an object store).
    fn open_listed(&self, prefix: &str) -> Result<Option<OwnedFd>, StorageError> {
        match self.open_dir(prefix.trim_end_matches('/'), false) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Each of `probes` applied to each of the child directories `dirs` of
    /// the open directory `fd` (whose key is `prefix`), in that order.
    fn probe_each<'d>(
        &self,
        fd: &OwnedFd,
        prefix: &str,
        dirs: impl ExactSizeIterator<Item = &'d str>,
        probes: &[Probe<'_>],
    ) -> Vec<Result<Probed, StorageError>> {
        if probes.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(dirs.len() * probes.len());
        for d in dirs {
            for &probe in probes {
                out.push(self.probe_at(fd, prefix, d, probe));
            }
        }
        out
    }

    /// Lists directory `prefix`, whose children are named by sha256 digests,
    /// as [`FsStorage::list_dirs_probe`] does, parsing those names straight
    /// from the kernel's buffer; `probes` are applied to the digest
    /// directories only.
    fn list_digest_dirs(
        &self,
        prefix: &str,
        probes: &[Probe<'_>],
    ) -> Result<DigestListing, StorageError> {
        use std::os::unix::ffi::OsStringExt;
        let Some(fd) = self.open_listed(prefix)? else {
            return Ok(DigestListing::default());
        };
        let mut out = DigestListing::default();
        let mut others = Vec::new();
        each_dir_entry(&fd, |name, kind| {
            match (&kind, crate::digest::parse_sha256_hex_bytes(name)) {
                (DirEntryKind::Dir, Some(h)) => out.digests.push(h),
                _ => others.push((std::ffi::OsString::from_vec(name.to_vec()), kind)),
            }
        })
        .map_err(|e| io_err(prefix, e))?;
        out.digests.sort_unstable();
        out.rest = listing_of(&fd, prefix, others)?;
        if !probes.is_empty() {
            let names: Vec<_> = out
                .digests
                .iter()
                .map(crate::digest::Sha256Text::new)
                .collect();
            out.probes = self.probe_each(&fd, prefix, names.iter().map(|n| n.hex()), probes);
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
        let file = probe.file();
        let key = || format!("{prefix}{d}/{file}");
        // `<d>/<file>` and its NUL on the stack: probes run once per child.
        let mut buf = [0u8; 256];
        let len = d.len() + 1 + file.len();
        let owned;
        let c: &std::ffi::CStr = if len < buf.len() {
            buf[..d.len()].copy_from_slice(d.as_bytes());
            buf[d.len()] = b'/';
            buf[d.len() + 1..len].copy_from_slice(file.as_bytes());
            std::ffi::CStr::from_bytes_with_nul(&buf[..=len])
                .map_err(|_| StorageError::NotFound { key: key() })?
        } else {
            owned = CString::new(format!("{d}/{file}"))
                .map_err(|_| StorageError::NotFound { key: key() })?;
            &owned
        };
        match probe {
            Probe::Stat(_) => {
                let st = stat_at(fd.as_raw_fd(), c).map_err(|e| io_err(&key(), e))?;
                meta_of(&st, key).map(Probed::Meta)
            }
            Probe::Read(_, limit) => {
                let f = openat2_beneath(fd.as_raw_fd(), c, 0)
                    .map_err(|e| self.open_error(&key(), e))?;
                // SAFETY: `f` is a freshly opened descriptor that we own.
                let f = unsafe { File::from_raw_fd(f) };
                read_limited(f, &key(), limit).map(Probed::Content)
            }
            Probe::List(_) => {
                let sub = match openat2_beneath(fd.as_raw_fd(), c, libc::O_DIRECTORY) {
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

    /// Lists everything below `prefix` recursively through directory
    /// descriptors (each directory is opened relative to its parent, without
    /// following symlinks), fetching the files `fetch` names relative to
    /// their open directory.
    fn walk(
        &self,
        prefix: &str,
        want_meta: bool,
        fetch: Fetch<'_>,
    ) -> Result<Listing, StorageError> {
        let dir = prefix.trim_end_matches('/');
        let mut out = Listing::default();
        let opened = if dir.is_empty() {
            dup_fd(self.v2_fd.as_raw_fd())
        } else {
            if dir
                .split('/')
                .any(|c| c == "." || c == ".." || c.is_empty())
            {
                return Err(StorageError::NotFound {
                    key: prefix.to_string(),
                });
            }
            let c = cstr(prefix, dir)?;
            match openat2_beneath(self.v2_fd.as_raw_fd(), &c, libc::O_DIRECTORY) {
                // SAFETY: a freshly opened descriptor that we own.
                Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
                Err(e) => Err(e),
            }
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::ENOENT) => Ok(out),
                    Some(libc::ELOOP) | Some(libc::EXDEV) => Err(self.open_error(dir, e)),
                    // A file where a directory was expected: it is the listing.
                    Some(libc::ENOTDIR) => {
                        let c = cstr(prefix, dir)?;
                        let st =
                            stat_at(self.v2_fd.as_raw_fd(), &c).map_err(|e| io_err(prefix, e))?;
                        let kind = match st.st_mode & libc::S_IFMT {
                            libc::S_IFREG => EntryKind::File,
                            _ => EntryKind::Special,
                        };
                        let meta = meta_of(&st, || dir.to_string()).ok().filter(|_| want_meta);
                        out.entries.push(Entry {
                            key: dir.to_string(),
                            kind,
                            size: meta.map(|m| m.size),
                            modified: meta.and_then(|m| m.modified),
                        });
                        Ok(out)
                    }
                    // It exists but cannot be read: an incomplete listing.
                    _ => {
                        out.errors.push(io_err(dir, e));
                        Ok(out)
                    }
                };
            }
        };
        let top = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.walk_dir(fd, &top, 0, want_meta, fetch, &mut out);
        Ok(out)
    }

    /// [`FsStorage::walk`] below the open directory `fd`, whose key is
    /// `prefix` (empty or ending with `/`), `depth` levels below the top.
    fn walk_dir(
        &self,
        fd: OwnedFd,
        prefix: &str,
        depth: usize,
        want_meta: bool,
        fetch: Fetch<'_>,
        out: &mut Listing,
    ) {
        let dir_key = || prefix.trim_end_matches('/').to_string();
        let mut names = match read_dir_fd(&fd) {
            Ok(n) => n,
            Err(e) => {
                out.errors.push(io_err(&dir_key(), e));
                return;
            }
        };
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, kind) in names {
            let name = match name.into_string() {
                Ok(n) => n,
                Err(raw) => {
                    out.errors.push(StorageError::Backend {
                        key: format!("{prefix}{}", raw.to_string_lossy()),
                        message: "path is not UTF-8".into(),
                    });
                    continue;
                }
            };
            match kind {
                DirEntryKind::Dir => subdirs.push(name),
                DirEntryKind::Other(mode) => {
                    self.walk_file(&fd, prefix, name, mode, want_meta, fetch, out)
                }
            }
        }
        if subdirs.is_empty() {
            return;
        }
        // Deep down, children are opened from the root by key, so that a
        // walk holds at most MAX_HELD_DIRS descriptors.
        let parent = (depth < MAX_HELD_DIRS).then_some(fd);
        for d in subdirs {
            let key = format!("{prefix}{d}");
            let (dirfd, rel) = match &parent {
                Some(p) => (p.as_raw_fd(), d.as_str()),
                None => (self.v2_fd.as_raw_fd(), key.as_str()),
            };
            let c = match cstr(&key, rel) {
                Ok(c) => c,
                Err(e) => {
                    out.errors.push(e);
                    continue;
                }
            };
            match openat2_beneath(dirfd, &c, libc::O_DIRECTORY) {
                Ok(sub) => self.walk_dir(
                    // SAFETY: a freshly opened descriptor that we own.
                    unsafe { OwnedFd::from_raw_fd(sub) },
                    &format!("{key}/"),
                    depth + 1,
                    want_meta,
                    fetch,
                    out,
                ),
                // Gone since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => out.errors.push(self.open_error(&key, e)),
            }
        }
    }

    /// One non-directory entry `name` of the open directory `fd` (key
    /// `prefix`), of type `mode` (`S_IFMT` bits): listed, and fetched when
    /// `fetch` names it.
    #[allow(clippy::too_many_arguments)]
    fn walk_file(
        &self,
        fd: &OwnedFd,
        prefix: &str,
        name: String,
        mode: libc::mode_t,
        want_meta: bool,
        fetch: Fetch<'_>,
        out: &mut Listing,
    ) {
        let key = format!("{prefix}{name}");
        let kind = match mode {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFLNK => EntryKind::Symlink {
                target: readlink_at(fd, &name).unwrap_or_default(),
            },
            _ => EntryKind::Special,
        };
        let read = fetch
            .read
            .filter(|(n, _)| *n == name)
            .map(|(_, limit)| limit);
        let hash = fetch.hash.is_some_and(|n| n == name);
        let mut entry = Entry {
            key,
            kind,
            size: None,
            modified: None,
        };
        if entry.kind != EntryKind::File || !(want_meta || read.is_some() || hash) {
            out.entries.push(entry);
            return;
        }
        let c = match cstr(&entry.key, &name) {
            Ok(c) => c,
            Err(e) => {
                out.errors.push(e);
                return;
            }
        };
        let mut fetched = None;
        if read.is_some() || hash {
            let opened = openat2_beneath(fd.as_raw_fd(), &c, 0)
                .map(|f| {
                    // SAFETY: a freshly opened descriptor that we own.
                    unsafe { File::from_raw_fd(f) }
                })
                .map_err(|e| self.open_error(&entry.key, e));
            fetched = match (opened, read) {
                (Err(e), _) if e.is_not_found() => return, // gone since it was listed
                (Err(e), _) => Some(Err(e)),
                (Ok(f), Some(limit)) => {
                    Some(read_listed(f, &entry.key, limit).map(Fetched::Content))
                }
                (Ok(f), None) => {
                    let (meta, hashed) = hash_open(&f, &entry.key);
                    if let Some(m) = meta.filter(|_| want_meta) {
                        entry.size = Some(m.size);
                        entry.modified = m.modified;
                    }
                    hashed
                }
            };
        }
        if want_meta && entry.size.is_none() {
            match stat_at(fd.as_raw_fd(), &c) {
                Ok(st) => {
                    if let Ok(m) = meta_of(&st, || entry.key.clone()) {
                        entry.size = Some(m.size);
                        entry.modified = m.modified;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => {
                    out.errors.push(io_err(&entry.key, e));
                    return;
                }
            }
        }
        if let Some(f) = fetched {
            out.fetched.push((out.entries.len(), f));
        }
        out.entries.push(entry);
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

/// Blocks (512 bytes) read from the disk during one batch of
/// [`FsStorage::each`] from which the cache counts as cold: 64 KiB, more
/// than the odd directory block a warm scan may still fetch.
const COLD_BATCH_BLOCKS: i64 = 128;

/// Blocks this process has read from disk so far (`ru_inblock`), `None` if
/// `getrusage` fails.
// `c_long` is `i64` only on 64-bit targets.
#[allow(clippy::useless_conversion)]
fn blocks_read() -> Option<i64> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF is always valid.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    // SAFETY: getrusage filled `ru` when it returned 0.
    (r == 0).then(|| i64::from(unsafe { ru.assume_init() }.ru_inblock))
}

/// `openat2(dirfd, path, O_RDONLY, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.
fn openat2_beneath(dirfd: i32, path: &std::ffi::CStr, extra_flags: i32) -> io::Result<i32> {
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
    listing_of(fd, prefix, read_dir_fd(fd).map_err(|e| io_err(prefix, e))?)
}

/// The listing of `entries`, read from the open directory `fd` (whose key
/// is `prefix`): directories by name (sorted), everything else as entries.
fn listing_of(
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
enum DirEntryKind {
    Dir,
    Other(libc::mode_t),
}

/// The entries of an open directory (without `.` and `..`), read with
/// `getdents64` straight from `fd` (no `fdopendir`, whose `dup`, `fcntl` and
/// `fstat` would triple the system calls per directory). Types come from
/// `d_type`, or from `fstatat` where the filesystem does not fill it in.
fn read_dir_fd(fd: &OwnedFd) -> io::Result<Vec<(std::ffi::OsString, DirEntryKind)>> {
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
fn each_dir_entry(fd: &OwnedFd, f: impl FnMut(&[u8], DirEntryKind)) -> io::Result<()> {
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

/// Hashes the open file `f` (key `key`) unless it is large (left to
/// [`Storage::sha256_many`]); also returns its size and age.
fn hash_open(f: &File, key: &str) -> (Option<Meta>, Option<Result<Fetched, StorageError>>) {
    // SAFETY: zeroed is a valid bit pattern for the plain C struct `stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a descriptor we own and a stat buffer to fill.
    if unsafe { libc::fstat(f.as_raw_fd(), &mut st) } != 0 {
        return (None, Some(Err(io_err(key, io::Error::last_os_error()))));
    }
    let meta = match meta_of(&st, || key.to_string()) {
        Ok(m) => m,
        Err(e) => return (None, Some(Err(e))),
    };
    if meta.size >= super::hash::MMAP_MIN {
        return (Some(meta), None);
    }
    let hashed = super::hash::sha256_read(f, meta.size, key).map(Fetched::Hash);
    (Some(meta), Some(hashed))
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

/// Reads the open file `f`, listed as a regular file, whole, refusing more
/// than `limit` bytes: [`read_limited`] without the `fstat` (the listing said
/// what it is) and with one buffer per thread; a small file takes one `read`.
fn read_listed(f: File, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    LINK_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.is_empty() {
            buf.resize(16 * 1024, 0);
        }
        let mut out: Vec<u8> = Vec::new();
        let mut f = &f;
        loop {
            let want = buf.len().min(cap - out.len());
            match f.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.len() as u64 > limit {
                        let size = f.metadata().map_or(out.len() as u64, |m| m.len());
                        return Err(StorageError::TooLarge {
                            key: key.to_string(),
                            size,
                            limit,
                        });
                    }
                    // A short read of a regular file is its end.
                    if n < want {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // It became a directory since it was listed.
                Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                    return Err(StorageError::NotAFile {
                        key: key.to_string(),
                    })
                }
                Err(e) => return Err(io_err(key, e)),
            }
        }
        Ok(out)
    })
}

thread_local! {
    /// The read buffer of [`read_listed`], one per thread.
    static LINK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
            error: e,
        }
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

    fn list_digest_dirs_many(
        &self,
        prefixes: &[String],
        probes: &[Probe<'_>],
    ) -> Vec<Result<DigestListing, StorageError>> {
        self.each(prefixes.len(), |i| {
            self.list_digest_dirs(&prefixes[i], probes)
        })
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
        self.each(keys.len(), |i| self.stat(&keys[i]))
    }

    fn list_dirs(&self, prefix: &str) -> Result<DirListing, StorageError> {
        self.list_dirs_probe(prefix, &[])
    }

    fn list(&self, prefix: &str, want_meta: bool) -> Result<Listing, StorageError> {
        self.walk(prefix, want_meta, Fetch::default())
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
        // On the I/O threads: a cold disk is read with a deep queue.
        self.each(keys.len(), |i| {
            let k = &keys[i];
            let h = super::hash::sha256_file(&self.open_beneath(k)?, k)?;
            done(h.size);
            Ok(h)
        })
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
    fn batches_run_in_order_on_the_cold_and_the_warm_pool() {
        use std::sync::atomic::Ordering;
        let (dir, s) = tree();
        assert!(s.cold.load(Ordering::Relaxed), "a scan starts as if cold");
        let want: Vec<usize> = (0..5000).map(|i| i * 3).collect();
        for cold in [true, false, true] {
            s.cold.store(cold, Ordering::Relaxed);
            let threads = std::sync::Mutex::new(std::collections::HashSet::new());
            let got = s.each(want.len(), |i| {
                let name = std::thread::current().name().unwrap_or("").to_string();
                threads.lock().unwrap().insert(name);
                i * 3
            });
            assert_eq!(got, want);
            let names = threads.into_inner().unwrap();
            let prefix = if cold {
                "regsweep-io-"
            } else {
                "regsweep-iow-"
            };
            assert!(
                names.iter().all(|n| n.starts_with(prefix)),
                "cold={cold}: ran on {names:?}"
            );
        }
        assert!(blocks_read().is_some());
        // A thread count given by the user is used for every batch.
        let fixed = FsStorage::open_with_threads(dir.path(), Some(3)).unwrap();
        assert!(fixed.io_warm.is_none());
        assert_eq!(fixed.io.current_num_threads(), 3);
        fixed.cold.store(false, Ordering::Relaxed);
        assert_eq!(fixed.each(want.len(), |i| i * 3), want);
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

    /// The filesystem's own digest listing (names parsed from the kernel's
    /// buffer) agrees with the generic one built on `list_dirs_probe_many`.
    #[test]
    fn digest_listing_parses_names_and_keeps_the_rest() {
        let (_d, s) = tree();
        let dir = s
            .v2_path()
            .join("repositories/r/_manifests/revisions/sha256");
        let (a, b) = ("a".repeat(64), format!("0{}", "f".repeat(63)));
        for (name, link) in [(&a, Some(&b"sha256:x"[..])), (&b, None)] {
            fs::create_dir_all(dir.join(name)).unwrap();
            if let Some(l) = link {
                fs::write(dir.join(name).join("link"), l).unwrap();
            }
        }
        fs::create_dir_all(dir.join("A".repeat(64))).unwrap();
        fs::create_dir_all(dir.join("abc")).unwrap();
        fs::write(dir.join("stray"), b"").unwrap();
        // A file named like a digest is not a digest directory.
        fs::write(dir.join("1".repeat(64)), b"").unwrap();
        let prefix = "repositories/r/_manifests/revisions/sha256/".to_string();
        let probes = [Probe::Stat("link")];
        let own = s.list_digest_dirs_many(std::slice::from_ref(&prefix), &probes);
        let own = own[0].as_ref().unwrap();
        let h = |x: &str| crate::digest::parse_sha256_hex(x).unwrap();
        // Sorted by bytes, as the names sort.
        assert_eq!(own.digests, vec![h(&b), h(&a)]);
        assert!(own.probes[0].as_ref().is_err_and(|e| e.is_not_found()));
        assert!(matches!(&own.probes[1], Ok(Probed::Meta(m)) if m.size == 8));
        assert_eq!(own.rest.dirs, vec!["A".repeat(64), "abc".to_string()]);
        assert!(own.rest.probes.is_empty());
        let mut files: Vec<&str> = own.rest.files.iter().map(|f| f.key.as_str()).collect();
        files.sort_unstable();
        let digest_named = format!("{prefix}{}", "1".repeat(64));
        assert_eq!(
            files,
            vec![digest_named.as_str(), &format!("{prefix}stray")]
        );
        // The trait's default: a plain probing listing, split.
        let generic = DigestListing::split(s.list_dirs_probe(&prefix, &probes).unwrap(), 1);
        assert_eq!(generic.digests, own.digests);
        assert_eq!(generic.rest.dirs, own.rest.dirs);
        assert_eq!(generic.probes.len(), own.probes.len());
        assert!(matches!(&generic.probes[1], Ok(Probed::Meta(m)) if m.size == 8));
        // A missing directory is empty, as with list_dirs.
        let none = s.list_digest_dirs_many(&["repositories/none/".to_string()], &probes);
        assert!(none[0].as_ref().unwrap().digests.is_empty());
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
    fn walks_through_descriptors_and_fetches_named_files() {
        let (d, s) = tree();
        let v2 = d.path().join(V2_PREFIX);
        let dir = v2.join("repositories/r/_layers/sha256/abcd");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("link"), b"sha256:abcd").unwrap();
        fs::write(dir.join("link.1.tmp"), b"x").unwrap();
        symlink(
            "/etc/hostname",
            v2.join("repositories/r/_layers/sha256/link"),
        )
        .unwrap();
        let big = v2.join("repositories/r/_layers/sha256/big");
        fs::create_dir_all(&big).unwrap();
        fs::write(big.join("link"), vec![b'a'; 100]).unwrap();
        let fetch = Fetch {
            read: Some(("link", 50)),
            hash: Some("data"),
        };
        let prefixes = ["repositories/r/".to_string(), "blobs/".to_string()];
        let got = s.list_fetching_many(&prefixes, true, fetch);
        let repo = got[0].as_ref().unwrap();
        let keys: Vec<&str> = repo.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "repositories/r/_layers/sha256/link",
                "repositories/r/_layers/sha256/abcd/link",
                "repositories/r/_layers/sha256/abcd/link.1.tmp",
                "repositories/r/_layers/sha256/big/link",
            ]
        );
        assert!(matches!(repo.entries[0].kind, EntryKind::Symlink { .. }));
        assert_eq!(repo.entries[1].size, Some(11));
        let fetched: Vec<(usize, String)> = repo
            .fetched
            .iter()
            .map(|(i, r)| (*i, format!("{r:?}")))
            .collect();
        assert_eq!(fetched.len(), 2, "{fetched:?}");
        assert!(matches!(&repo.fetched[0], (1, Ok(Fetched::Content(c))) if c == b"sha256:abcd"));
        assert!(matches!(
            &repo.fetched[1],
            (
                3,
                Err(StorageError::TooLarge {
                    size: 100,
                    limit: 50,
                    ..
                })
            )
        ));
        let blobs = got[1].as_ref().unwrap();
        assert_eq!(blobs.entries.len(), 1);
        assert_eq!(blobs.entries[0].size, Some(5));
        let want = crate::storage::hash::sha256_bytes(b"hello");
        assert!(matches!(&blobs.fetched[..], [(0, Ok(Fetched::Hash(h)))] if *h == want));
        // A plain listing fetches nothing; a missing prefix is empty.
        let plain = s.list("repositories/", false).unwrap();
        assert_eq!(plain.entries.len(), 4);
        assert!(plain.fetched.is_empty() && plain.entries[1].size.is_none());
        assert!(s
            .list("repositories/nope/", true)
            .unwrap()
            .entries
            .is_empty());
    }

    #[test]
    fn walks_deeper_than_the_descriptors_it_holds() {
        let (d, s) = tree();
        let mut dir = d.path().join(V2_PREFIX).join("deep");
        let mut key = "deep".to_string();
        for i in 0..MAX_HELD_DIRS + 5 {
            dir.push(format!("d{i}"));
            key.push_str(&format!("/d{i}"));
        }
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("f"), b"x").unwrap();
        let l = s.list("deep/", true).unwrap();
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].key, format!("{key}/f"));
        assert_eq!(l.entries[0].size, Some(1));
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
