//! Listings through directory descriptors: one level with probes of each
//! child directory, digest-named directories parsed from the kernel's
//! buffer, and recursive walks that fetch named files on the way.

use super::beneath::{meta_of, openat2_beneath, readlink_at, stat_at};
use super::dents::{each_dir_entry, list_fd, listing_of, read_dir_fd, DirEntryKind};
use super::read::{hash_open, read_limited, read_listed};
use super::{cstr, io_err, FsStorage};
use crate::storage::{
    DigestListing, DirListing, Entry, EntryKind, Fetch, Fetched, Listing, Probe, Probed,
    StorageError,
};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How many levels of directory descriptors a walk keeps open (like
/// walkdir's `max_open`); deeper directories are opened from the root.
pub(super) const MAX_HELD_DIRS: usize = 16;

impl FsStorage {
    /// Lists directory `prefix` through a descriptor opened beneath the root
    /// (no symlink is followed on the way), and applies `probes` to each
    /// child directory relative to that descriptor.
    pub(super) fn list_dirs_probe(
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
    pub(super) fn open_listed(&self, prefix: &str) -> Result<Option<OwnedFd>, StorageError> {
        match self.open_dir(prefix.trim_end_matches('/'), false) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Each of `probes` applied to each of the child directories `dirs` of
    /// the open directory `fd` (whose key is `prefix`), in that order.
    pub(super) fn probe_each<'d>(
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
    pub(super) fn list_digest_dirs(
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
    pub(super) fn probe_at(
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
    pub(super) fn walk(
        &self,
        prefix: &str,
        want_meta: bool,
        fetch: Fetch<'_>,
    ) -> Result<Listing, StorageError> {
        let dir = prefix.trim_end_matches('/');
        let mut out = Listing::default();
        let opened = if dir.is_empty() {
            // A new open file description (see `open_dir`), not a dup that
            // shares the root's read offset with every earlier listing.
            openat2_beneath(self.v2_fd.as_raw_fd(), c".", libc::O_DIRECTORY)
                // SAFETY: a freshly opened descriptor that we own.
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
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
    pub(super) fn walk_dir(
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
    pub(super) fn walk_file(
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
}
