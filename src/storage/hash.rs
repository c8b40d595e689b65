//! Content hashing for `verify --rehash`: the sha256 of a whole object,
//! computed without holding it in memory (files are memory-mapped or read in
//! chunks; object-store backends stream their objects through [`Hasher`]).

use super::StorageError;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Read};

/// The sha256 and length of an object's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentHash {
    /// sha256 of the content.
    pub sha256: [u8; 32],
    /// Bytes hashed.
    pub size: u64,
}

/// Files at least this large are memory-mapped; smaller ones are read.
pub const MMAP_MIN: u64 = 1 << 20;

/// An incremental sha256 that counts the bytes it was given.
#[derive(Default)]
pub struct Hasher {
    inner: Sha256,
    size: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more content.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The hash of everything fed so far.
    pub fn finish(self) -> ContentHash {
        ContentHash {
            sha256: self.inner.finalize().into(),
            size: self.size,
        }
    }
}

/// The hash of an in-memory buffer.
pub fn sha256_bytes(bytes: &[u8]) -> ContentHash {
    let mut h = Hasher::new();
    h.update(bytes);
    h.finish()
}

/// A read-only memory map of a whole file.
struct Mmap(memmap2::Mmap);

impl Mmap {
    /// Maps `file` read-only.
    ///
    /// # Safety
    ///
    /// The mapping is only sound while no one truncates or rewrites the file:
    /// a truncation makes reads of the lost pages fault (SIGBUS), and a
    /// concurrent write changes the bytes being hashed. The registry never
    /// modifies a blob's `data` in place (it writes uploads elsewhere and
    /// renames them; deletion unlinks, which leaves the mapping intact), so
    /// the caller's obligation is that nothing else rewrites blob files while
    /// regsweep runs — the maintenance-window assumption of this tool.
    unsafe fn map(file: &File) -> io::Result<Mmap> {
        // SAFETY: forwarded to the caller, see above.
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Mmap(map))
    }
}

/// The hash of an open regular file: memory-mapped when large, read in
/// chunks otherwise.
pub fn sha256_file(file: &File, key: &str) -> Result<ContentHash, StorageError> {
    let meta = file.metadata().map_err(|e| io_err(key, e))?;
    if !meta.is_file() {
        return Err(StorageError::NotAFile {
            key: key.to_string(),
        });
    }
    if meta.len() >= MMAP_MIN {
        // SAFETY: blob files are never modified in place (see `Mmap::map`).
        if let Ok(map) = unsafe { Mmap::map(file) } {
            return Ok(sha256_bytes(&map.0));
        }
        // Some filesystems cannot map; fall through to reading.
    }
    sha256_read(file, meta.len(), key)
}

/// Bytes read at a time by [`sha256_read`], into a buffer each thread keeps.
const READ_CHUNK: usize = 64 << 10;

thread_local! {
    /// The read buffer of [`sha256_read`]: one per thread, not one per file.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The hash of an open regular file of `size` bytes (as `fstat` said), read
/// to its end through a per-thread buffer. A file of up to 64 KiB takes one
/// `read`: a short read that reaches `size` is its end.
pub fn sha256_read(file: &File, size: u64, key: &str) -> Result<ContentHash, StorageError> {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.is_empty() {
            buf.resize(READ_CHUNK, 0);
        }
        let mut h = Hasher::new();
        let mut f = file;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    h.update(&buf[..n]);
                    if n < buf.len() && h.size >= size {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(key, e)),
            }
        }
        Ok(h.finish())
    })
}

fn io_err(key: &str, error: io::Error) -> StorageError {
    StorageError::Io {
        key: key.to_string(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn files_small_and_large_hash_like_buffers() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0usize,
            5,
            READ_CHUNK,
            READ_CHUNK + 7,
            (MMAP_MIN as usize) + 3,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            let got = sha256_file(&File::open(&p).unwrap(), "k").unwrap();
            assert_eq!(got, sha256_bytes(&data));
            assert_eq!(got.size, len as u64);
            // Read in chunks (also past a stale, smaller size), never mapped.
            for hint in [len as u64, 0] {
                let read = sha256_read(&File::open(&p).unwrap(), hint, "k").unwrap();
                assert_eq!(read, got);
            }
        }
        assert_eq!(crate::digest::hex(&sha256_bytes(b"").sha256), EMPTY);
    }
}
