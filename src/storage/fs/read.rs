//! Reading open files whole (bounded by a limit, with per-thread buffers)
//! and hashing them while they are open.

use super::beneath::meta_of;
use super::io_err;
use crate::storage::{Fetched, Meta, StorageError};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;

/// Hashes the open file `f` (key `key`) unless it is large (left to
/// [`crate::storage::StorageBatch::sha256_many`]); also returns its size and age.
pub(super) fn hash_open(
    f: &File,
    key: &str,
) -> (Option<Meta>, Option<Result<Fetched, StorageError>>) {
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
    if meta.size >= crate::storage::hash::MMAP_MIN {
        return (Some(meta), None);
    }
    let hashed = crate::storage::hash::sha256_read(f, meta.size, key).map(Fetched::Hash);
    (Some(meta), Some(hashed))
}

/// Reads an open regular file whole, refusing more than `limit` bytes.
pub(super) fn read_limited(mut f: File, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
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
pub(super) fn read_listed(f: File, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
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
