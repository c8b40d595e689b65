//! Keys held whole: those of an inventory that are not shaped around a
//! digest (tags' `current/link`, uploads, strays) and rows whose size or
//! time do not fit a [`Row`](super::rows::Row). One byte arena for the
//! keys, their size and modification time in parallel vectors, and one
//! sorted permutation: about 28 bytes per object besides the key.

use crate::storage::Meta;
use rayon::prelude::*;

/// Keys added one by one, in any order.
#[derive(Debug, Default)]
pub(super) struct KeyPart {
    arena: Vec<u8>,
    /// Where each key starts in `arena` (it ends where the next begins).
    starts: Vec<u64>,
    sizes: Vec<u64>,
    /// Milliseconds since 1970 (`i64::MIN`: unknown).
    mtimes: Vec<i64>,
}

impl KeyPart {
    /// Adds one object.
    pub(super) fn push(&mut self, key: &[u8], size: u64, mtime_ms: Option<i64>) {
        self.starts.push(self.arena.len() as u64);
        self.arena.extend_from_slice(key);
        self.sizes.push(size);
        self.mtimes.push(mtime_ms.unwrap_or(i64::MIN));
    }

    /// How many objects it holds.
    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }

    /// Moves `other`'s objects after this part's.
    pub(super) fn append(&mut self, other: KeyPart) {
        if self.starts.is_empty() {
            *self = other;
            return;
        }
        let base = self.arena.len() as u64;
        self.arena.extend_from_slice(&other.arena);
        self.starts.extend(other.starts.iter().map(|s| s + base));
        self.sizes.extend_from_slice(&other.sizes);
        self.mtimes.extend_from_slice(&other.mtimes);
    }

    /// Sorts by key; of a key listed twice, the row modified last is kept.
    pub(super) fn finish(mut self) -> Keys {
        self.arena.shrink_to_fit();
        self.starts.shrink_to_fit();
        self.sizes.shrink_to_fit();
        self.mtimes.shrink_to_fit();
        let n = self.starts.len();
        assert!(n < u32::MAX as usize, "at most 4 billion objects");
        let mut order: Vec<u32> = (0..n as u32).collect();
        {
            let key = |i: u32| key_at(&self.arena, &self.starts, i as usize);
            order.par_sort_unstable_by(|&a, &b| key(a).cmp(key(b)));
            let mut kept: Vec<u32> = Vec::with_capacity(n);
            for i in order {
                match kept.last_mut() {
                    Some(l) if key(*l) == key(i) => {
                        if self.mtimes[i as usize] >= self.mtimes[*l as usize] {
                            *l = i;
                        }
                    }
                    _ => kept.push(i),
                }
            }
            order = kept;
        }
        order.shrink_to_fit();
        Keys { part: self, order }
    }
}

fn key_at<'a>(arena: &'a [u8], starts: &[u64], i: usize) -> &'a [u8] {
    let s = starts[i] as usize;
    let e = starts.get(i + 1).map_or(arena.len(), |&e| e as usize);
    &arena[s..e]
}

/// Keys sorted.
#[derive(Debug, Default)]
pub(super) struct Keys {
    part: KeyPart,
    order: Vec<u32>,
}

impl Keys {
    /// How many.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// The `i`-th key in key order.
    pub(super) fn key(&self, i: usize) -> &str {
        let k = key_at(&self.part.arena, &self.part.starts, self.order[i] as usize);
        // Keys were checked to be UTF-8 when they were added.
        std::str::from_utf8(k).unwrap_or_default()
    }

    /// Size and modification time of the `i`-th key in key order.
    pub(super) fn meta(&self, i: usize) -> Meta {
        let j = self.order[i] as usize;
        let m = self.part.mtimes[j];
        Meta {
            size: self.part.sizes[j],
            modified: (m != i64::MIN).then(|| super::ms_time(m)),
        }
    }

    /// The position of the first key not less than `key`.
    fn lower_bound(&self, key: &[u8]) -> usize {
        self.order
            .partition_point(|&i| key_at(&self.part.arena, &self.part.starts, i as usize) < key)
    }

    /// The positions of the keys that start with `prefix`.
    pub(super) fn range(&self, prefix: &str) -> std::ops::Range<usize> {
        let lo = self.lower_bound(prefix.as_bytes());
        let hi = lo
            + self.order[lo..].partition_point(|&i| {
                key_at(&self.part.arena, &self.part.starts, i as usize)
                    .starts_with(prefix.as_bytes())
            });
        lo..hi
    }

    /// Removes the keys at `positions` (in key order, sorted).
    pub(super) fn remove(&mut self, positions: &[usize]) {
        super::remove_positions(&mut self.order, positions);
    }

    /// Milliseconds since 1970 of the `i`-th key (`i64::MIN`: unknown).
    pub(super) fn mtime_ms(&self, i: usize) -> i64 {
        self.part.mtimes[self.order[i] as usize]
    }

    /// What is held about one key.
    pub(super) fn get(&self, key: &str) -> Option<Meta> {
        let i = self.lower_bound(key.as_bytes());
        (i < self.len() && self.key(i) == key).then(|| self.meta(i))
    }

    /// Bytes held, roughly.
    pub(super) fn heap_bytes(&self) -> usize {
        self.part.arena.capacity()
            + 8 * (self.part.starts.capacity()
                + self.part.sizes.capacity()
                + self.part.mtimes.capacity())
            + 4 * self.order.capacity()
    }
}
