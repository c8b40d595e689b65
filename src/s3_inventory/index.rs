//! The objects of an inventory, held compactly: every key (relative to the
//! registry's `docker/registry/v2/`) in one byte arena, with its size and
//! modification time in parallel vectors and one sorted permutation. About
//! 28 bytes per object besides the key itself, never a `String` each.

use crate::storage::{Entry, EntryKind, Meta};
use rayon::prelude::*;
use std::time::{Duration, SystemTime};

/// Objects added one by one, in any order; [`Part::append`] joins parts
/// read in parallel.
#[derive(Debug, Default)]
pub struct Part {
    arena: Vec<u8>,
    /// Where each key starts in `arena` (it ends where the next begins).
    starts: Vec<u64>,
    sizes: Vec<u64>,
    /// Milliseconds since 1970 (`i64::MIN`: unknown).
    mtimes: Vec<i64>,
}

impl Part {
    /// Adds one object.
    pub fn push(&mut self, key: &[u8], size: u64, mtime_ms: Option<i64>) {
        self.starts.push(self.arena.len() as u64);
        self.arena.extend_from_slice(key);
        self.sizes.push(size);
        self.mtimes.push(mtime_ms.unwrap_or(i64::MIN));
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Moves `other`'s objects after this part's.
    pub fn append(&mut self, other: Part) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let base = self.arena.len() as u64;
        self.arena.extend_from_slice(&other.arena);
        self.starts.extend(other.starts.iter().map(|s| s + base));
        self.sizes.extend_from_slice(&other.sizes);
        self.mtimes.extend_from_slice(&other.mtimes);
    }

    /// Sorts by key; a key listed twice keeps its last row.
    pub fn finish(mut self) -> Index {
        self.arena.shrink_to_fit();
        self.starts.shrink_to_fit();
        self.sizes.shrink_to_fit();
        self.mtimes.shrink_to_fit();
        let n = self.starts.len();
        assert!(n < u32::MAX as usize, "at most 4 billion objects");
        let mut order: Vec<u32> = (0..n as u32).collect();
        {
            let key = |i: u32| key_at(&self.arena, &self.starts, i as usize);
            order.par_sort_by(|&a, &b| key(a).cmp(key(b)));
            // Stable sort: of equal keys the last read is last; keep it.
            let mut kept: Vec<u32> = Vec::with_capacity(n);
            for i in order {
                match kept.last_mut() {
                    Some(l) if key(*l) == key(i) => *l = i,
                    _ => kept.push(i),
                }
            }
            order = kept;
        }
        order.shrink_to_fit();
        Index { part: self, order }
    }
}

fn key_at<'a>(arena: &'a [u8], starts: &[u64], i: usize) -> &'a [u8] {
    let s = starts[i] as usize;
    let e = starts.get(i + 1).map_or(arena.len(), |&e| e as usize);
    &arena[s..e]
}

/// Every object of an inventory under the registry root, sorted by key.
#[derive(Debug, Default)]
pub struct Index {
    part: Part,
    order: Vec<u32>,
}

impl Index {
    /// How many objects.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The key of the `i`-th object in key order.
    pub fn key(&self, i: usize) -> &str {
        let k = key_at(&self.part.arena, &self.part.starts, self.order[i] as usize);
        // Keys were checked to be UTF-8 when they were added.
        std::str::from_utf8(k).unwrap_or_default()
    }

    /// Size and modification time of the `i`-th object in key order.
    pub fn meta(&self, i: usize) -> Meta {
        let j = self.order[i] as usize;
        let m = self.part.mtimes[j];
        Meta {
            size: self.part.sizes[j],
            modified: (m != i64::MIN).then(|| ms_time(m)),
        }
    }

    /// The position of the first key not less than `key`.
    pub fn lower_bound(&self, key: &str) -> usize {
        self.order.partition_point(|&i| {
            key_at(&self.part.arena, &self.part.starts, i as usize) < key.as_bytes()
        })
    }

    /// The positions of the keys that start with `prefix`.
    pub fn range(&self, prefix: &str) -> std::ops::Range<usize> {
        let lo = self.lower_bound(prefix);
        let hi = lo
            + self.order[lo..].partition_point(|&i| {
                key_at(&self.part.arena, &self.part.starts, i as usize)
                    .starts_with(prefix.as_bytes())
            });
        lo..hi
    }

    /// What the inventory says about one key.
    pub fn get(&self, key: &str) -> Option<Meta> {
        let i = self.lower_bound(key);
        (i < self.len() && self.key(i) == key).then(|| self.meta(i))
    }

    /// The `i`-th object as a listing entry.
    pub fn entry(&self, i: usize) -> Entry {
        let m = self.meta(i);
        Entry {
            key: self.key(i).to_string(),
            kind: EntryKind::File,
            size: Some(m.size),
            modified: m.modified,
        }
    }

    /// Bytes held, roughly.
    pub fn heap_bytes(&self) -> usize {
        self.part.arena.capacity()
            + 8 * (self.part.starts.capacity()
                + self.part.sizes.capacity()
                + self.part.mtimes.capacity())
            + 4 * self.order.capacity()
    }
}

/// Milliseconds since 1970 as a time.
pub fn ms_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// A time as milliseconds since 1970.
pub fn time_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_ranges_and_lookups() {
        let mut a = Part::default();
        a.push(b"repositories/b/x", 1, Some(5));
        a.push(b"blobs/sha256/ab/abcd/data", 10, None);
        let mut b = Part::default();
        b.push(b"repositories/a/y", 2, Some(7));
        b.push(b"repositories/b/x", 3, Some(9));
        a.append(b);
        let ix = a.finish();
        assert_eq!(ix.len(), 3, "the duplicate keeps its last row");
        assert_eq!(ix.key(0), "blobs/sha256/ab/abcd/data");
        assert_eq!(ix.range("repositories/"), 1..3);
        assert_eq!(ix.range("repositories/b/"), 2..3);
        assert_eq!(ix.range("zzz"), 3..3);
        let m = ix.get("repositories/b/x").unwrap();
        assert_eq!((m.size, m.modified), (3, Some(ms_time(9))));
        assert!(ix.get("repositories/b").is_none());
        assert_eq!(ix.meta(0).modified, None);
    }
}
