//! The I/O thread pools of [`FsStorage`]: batches of blocking calls run on
//! many threads while the disk is being read (a cold cache), on few while
//! it is not.

use super::FsStorage;
use crate::storage::StorageError;
use rayon::ThreadPool;

/// The pools of a new [`FsStorage`] (`key` names its root in errors): with
/// `threads` given, that many threads for every batch; otherwise 8 per core
/// (between 8 and 64) for a cold cache and 2 per core for a warm one.
pub(super) fn io_pools(
    threads: Option<usize>,
    key: &str,
) -> Result<(ThreadPool, Option<ThreadPool>), StorageError> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = |n: usize, name: &'static str| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(move |i| format!("regsweep-{name}-{i}"))
            .build()
            .map_err(|e| StorageError::Backend {
                key: key.to_string(),
                message: format!("cannot start I/O threads: {e}"),
            })
    };
    let io = pool(threads.unwrap_or((cores * 8).clamp(8, 64)), "io")?;
    let io_warm = match threads {
        Some(_) => None,
        None => Some(pool((cores * 2).clamp(2, 64), "iow")?),
    };
    Ok((io, io_warm))
}

impl FsStorage {
    /// `f(0..n)` on the I/O threads, each taking the next index from a
    /// shared counter (no work stealing: threads blocked in system calls are
    /// the point, and idle ones do not spin); results in order.
    ///
    /// Which threads take part follows the disk: every I/O thread when the
    /// previous batch read from it (a cold cache: blocked threads keep its
    /// queue full), those of [`FsStorage::io_warm`] when it did not (calls
    /// answered from the cache never block). Disk reads are this process's
    /// block input count (`getrusage`), taken before and after each batch.
    pub(super) fn each<T: Send>(&self, n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
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
}

/// Blocks (512 bytes) read from the disk during one batch of
/// [`FsStorage::each`] from which the cache counts as cold: 64 KiB, more
/// than the odd directory block a warm scan may still fetch.
const COLD_BATCH_BLOCKS: i64 = 128;

/// Blocks this process has read from disk so far (`ru_inblock`), `None` if
/// `getrusage` fails.
// `c_long` is `i64` only on 64-bit targets.
#[allow(clippy::useless_conversion)]
pub(super) fn blocks_read() -> Option<i64> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF is always valid.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    // SAFETY: getrusage filled `ru` when it returned 0.
    (r == 0).then(|| i64::from(unsafe { ru.assume_init() }.ru_inblock))
}
