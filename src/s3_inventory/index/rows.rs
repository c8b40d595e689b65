//! Keys shaped around a digest, held as 20-byte [`Row`]s.
//!
//! Nearly every object of a registry's bucket is named by a sha256 digest:
//! `blobs/sha256/ab/<hex>/data`, `repositories/<name>/_layers/sha256/<hex>/link`,
//! `…/_manifests/revisions/sha256/<hex>/link`, `…/tags/<tag>/index/sha256/<hex>/link`.
//! Such a key is split at its last path component of 64 lowercase hex
//! digits: the digest becomes an id into one table of 32-byte digests (a
//! digest named by a blob and by its links is held once), and what comes
//! before and after it (the *shape*, shared by all the links of one
//! directory) an id into a table of shapes. While the data files are read,
//! both tables are filled by every reader at once ([`Tables`]); once all are
//! read, [`Built::from`] numbers digests and shapes in key order, so that
//! comparing two rows rarely needs their text.

use super::keys::KeyPart;
use crate::digest::Interner;
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Mutex;

/// Digests are interned in this many shards, by their top bits.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// One object whose key is shaped around a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(super) struct Row {
    /// The digest's id (while reading: shard in the low bits, index in the
    /// shard above; once built: its rank among all digests).
    pub(super) digest: u32,
    /// The shape's id (while reading: order of arrival; once built: rank).
    pub(super) shape: u32,
    size_lo: u32,
    secs: u32,
    /// The size's high 22 bits above the time's milliseconds (10 bits).
    hi: u32,
}

impl Row {
    fn pack(digest: u32, shape: u32, size: u64, mtime_ms: Option<i64>) -> Option<Row> {
        let ms = mtime_ms?;
        if ms < 0 || size >> 54 != 0 {
            return None;
        }
        let secs = u32::try_from(ms / 1000).ok()?;
        Some(Row {
            digest,
            shape,
            size_lo: size as u32,
            secs,
            hi: (((size >> 32) as u32) << 10) | (ms % 1000) as u32,
        })
    }

    /// The object's size.
    pub(super) fn size(&self) -> u64 {
        ((self.hi >> 10) as u64) << 32 | self.size_lo as u64
    }

    /// Its modification time, in milliseconds since 1970.
    pub(super) fn mtime_ms(&self) -> i64 {
        self.secs as i64 * 1000 + (self.hi & 1023) as i64
    }
}

/// Where a key splits around its digest: the byte ranges of the 64 hex
/// digits (its last path component of 64 lowercase hex digits).
pub(super) fn digest_at(key: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut end = key.len();
    loop {
        let start = key[..end]
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |p| p + 1);
        if end - start == 64
            && key[start..end]
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Some(start..end);
        }
        if start == 0 {
            return None;
        }
        end = start - 1;
    }
}

/// The digest and shape tables, filled by every reader of data files.
pub(super) struct Tables {
    digests: Vec<Mutex<Interner>>,
    shapes: Mutex<Shapes>,
}

#[derive(Default)]
struct Shapes {
    /// `prefix \0 suffix` → id.
    ids: HashMap<Box<[u8]>, u32>,
    /// (prefix, suffix) by id.
    list: Vec<(Box<str>, Box<str>)>,
}

impl Default for Tables {
    fn default() -> Tables {
        Tables {
            digests: (0..SHARDS).map(|_| Mutex::new(Interner::new())).collect(),
            shapes: Mutex::default(),
        }
    }
}

/// One reader's rows, with its last shape remembered (the links of one
/// directory come one after another).
#[derive(Default)]
pub(super) struct RowPart {
    pub(super) rows: Vec<Row>,
    last: Option<(Vec<u8>, u32)>,
    buf: Vec<u8>,
}

impl RowPart {
    /// Adds `key` as a row when it is shaped around a digest and its size
    /// and time fit; else to `keys`.
    pub(super) fn push(
        &mut self,
        tables: &Tables,
        key: &[u8],
        size: u64,
        mtime_ms: Option<i64>,
        keys: &mut KeyPart,
    ) {
        let Some(at) = digest_at(key) else {
            return keys.push(key, size, mtime_ms);
        };
        if std::str::from_utf8(key).is_err() {
            return keys.push(key, size, mtime_ms);
        }
        let Some(bytes) = crate::digest::parse_sha256_hex_bytes(&key[at.clone()]) else {
            return keys.push(key, size, mtime_ms);
        };
        // The shape's text: prefix, a zero byte, suffix.
        self.buf.clear();
        self.buf.extend_from_slice(&key[..at.start]);
        self.buf.push(0);
        self.buf.extend_from_slice(&key[at.end..]);
        let shape = match &self.last {
            Some((b, id)) if *b == self.buf => *id,
            _ => {
                let id = {
                    let mut s = tables.shapes.lock().expect("not poisoned");
                    match s.ids.get(&self.buf[..]) {
                        Some(&id) => id,
                        None => {
                            let id = u32::try_from(s.list.len()).expect("fewer than 2^32 shapes");
                            let text = |b: &[u8]| -> Box<str> {
                                std::str::from_utf8(b).expect("checked UTF-8").into()
                            };
                            s.list.push((text(&key[..at.start]), text(&key[at.end..])));
                            s.ids.insert(self.buf.clone().into_boxed_slice(), id);
                            id
                        }
                    }
                };
                self.last = Some((self.buf.clone(), id));
                id
            }
        };
        let shard = (bytes[0] >> (8 - SHARD_BITS)) as usize;
        let local = tables.digests[shard]
            .lock()
            .expect("not poisoned")
            .intern_sha256(&bytes);
        assert!(
            local < 1 << (32 - SHARD_BITS),
            "too many digests in one shard"
        );
        let digest = (local << SHARD_BITS) | shard as u32;
        match Row::pack(digest, shape, size, mtime_ms) {
            Some(r) => self.rows.push(r),
            None => keys.push(key, size, mtime_ms),
        }
    }
}

/// The rows of a whole inventory, sorted by key, with their tables.
#[derive(Debug, Default)]
pub(super) struct Built {
    /// Every digest, sorted (a row's digest id is its rank here).
    pub(super) digests: Vec<[u8; 32]>,
    /// Every shape (prefix, suffix), sorted.
    pub(super) shapes: Vec<(Box<str>, Box<str>)>,
    /// Per shape, the rank of its prefix among the distinct prefixes.
    prefix_rank: Vec<u32>,
    /// True when no prefix begins another: then comparing prefixes' ranks
    /// orders keys of different prefixes.
    prefix_free: bool,
    /// The rows, sorted by key; a key listed twice keeps the row modified last.
    pub(super) rows: Vec<Row>,
}

impl Built {
    /// Numbers the digests and shapes of `tables` in order and sorts `rows`.
    pub(super) fn from(tables: Tables, mut rows: Vec<Row>) -> Built {
        // Digests: shards hold disjoint ranges of the digest space, in order.
        let shards: Vec<Vec<[u8; 32]>> = tables
            .digests
            .into_iter()
            .map(|m| m.into_inner().expect("not poisoned").into_sha256())
            .collect();
        let sorted: Vec<(Vec<[u8; 32]>, Vec<u32>)> = shards
            .into_par_iter()
            .map(|v| {
                let mut order: Vec<u32> = (0..v.len() as u32).collect();
                order.sort_unstable_by(|&a, &b| v[a as usize].cmp(&v[b as usize]));
                let mut rank = vec![0u32; v.len()];
                for (r, &i) in order.iter().enumerate() {
                    rank[i as usize] = r as u32;
                }
                let sorted = order.iter().map(|&i| v[i as usize]).collect();
                (sorted, rank)
            })
            .collect();
        let total: usize = sorted.iter().map(|(v, _)| v.len()).sum();
        assert!(total < u32::MAX as usize, "fewer than 2^32 digests");
        let mut digests = Vec::with_capacity(total);
        let mut remap: Vec<Vec<u32>> = Vec::with_capacity(SHARDS);
        for (v, rank) in sorted {
            let base = digests.len() as u32;
            digests.extend_from_slice(&v);
            drop(v);
            remap.push(rank.into_iter().map(|r| r + base).collect());
        }
        // Shapes.
        let list = tables.shapes.into_inner().expect("not poisoned").list;
        let mut order: Vec<u32> = (0..list.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| list[a as usize].cmp(&list[b as usize]));
        let mut shape_rank = vec![0u32; list.len()];
        for (r, &i) in order.iter().enumerate() {
            shape_rank[i as usize] = r as u32;
        }
        let mut list: Vec<Option<(Box<str>, Box<str>)>> = list.into_iter().map(Some).collect();
        let shapes: Vec<(Box<str>, Box<str>)> = order
            .iter()
            .map(|&i| list[i as usize].take().expect("each shape once"))
            .collect();
        drop(list);
        let mut prefix_rank = Vec::with_capacity(shapes.len());
        let mut prefix_free = true;
        let mut rank = 0u32;
        for (i, (p, _)) in shapes.iter().enumerate() {
            if i > 0 {
                let prev = &shapes[i - 1].0;
                if prev != p {
                    rank += 1;
                    if p.starts_with(&**prev) {
                        prefix_free = false;
                    }
                }
            }
            prefix_rank.push(rank);
        }
        rows.par_iter_mut().for_each(|r| {
            let shard = (r.digest & (SHARDS as u32 - 1)) as usize;
            r.digest = remap[shard][(r.digest >> SHARD_BITS) as usize];
            r.shape = shape_rank[r.shape as usize];
        });
        drop(remap);
        let mut built = Built {
            digests,
            shapes,
            prefix_rank,
            prefix_free,
            rows: Vec::new(),
        };
        rows.par_sort_unstable_by(|a, b| built.cmp(a, b));
        rows.dedup_by(|later, kept| {
            let same = later.shape == kept.shape && later.digest == kept.digest;
            if same && later.mtime_ms() > kept.mtime_ms() {
                *kept = *later;
            }
            same
        });
        rows.shrink_to_fit();
        built.rows = rows;
        built
    }

    /// Writes the key of `r` into `out`.
    pub(super) fn key_into(&self, r: &Row, out: &mut String) {
        let (p, s) = &self.shapes[r.shape as usize];
        out.clear();
        out.push_str(p);
        out.push_str(crate::digest::Sha256Text::new(&self.digests[r.digest as usize]).hex());
        out.push_str(s);
    }

    /// The key of `r`.
    pub(super) fn key(&self, r: &Row) -> String {
        let mut s = String::with_capacity(128);
        self.key_into(r, &mut s);
        s
    }

    /// Orders two rows as their keys.
    fn cmp(&self, a: &Row, b: &Row) -> Ordering {
        if a.shape == b.shape {
            return a.digest.cmp(&b.digest);
        }
        let (pa, pb) = (
            self.prefix_rank[a.shape as usize],
            self.prefix_rank[b.shape as usize],
        );
        if pa == pb {
            // One prefix: the digests, then the suffixes.
            return a.digest.cmp(&b.digest).then_with(|| {
                self.shapes[a.shape as usize]
                    .1
                    .cmp(&self.shapes[b.shape as usize].1)
            });
        }
        if self.prefix_free {
            return pa.cmp(&pb);
        }
        self.key(a).cmp(&self.key(b))
    }

    /// The positions of the rows whose keys start with `prefix`.
    pub(super) fn range(&self, prefix: &str) -> std::ops::Range<usize> {
        let mut buf = String::with_capacity(128);
        let lo = self.rows.partition_point(|r| {
            self.key_into(r, &mut buf);
            buf.as_str() < prefix
        });
        let hi = lo
            + self.rows[lo..].partition_point(|r| {
                self.key_into(r, &mut buf);
                buf.starts_with(prefix)
            });
        lo..hi
    }

    /// The row of `key`, if there is one.
    pub(super) fn get(&self, key: &str) -> Option<&Row> {
        self.position(key).map(|i| &self.rows[i])
    }

    /// The index in `rows` of the row of `key`.
    pub(super) fn position(&self, key: &str) -> Option<usize> {
        let at = digest_at(key.as_bytes())?;
        let bytes = crate::digest::parse_sha256_hex(&key[at.clone()])?;
        let digest = self.digests.binary_search(&bytes).ok()? as u32;
        let (p, s) = (&key[..at.start], &key[at.end..]);
        let shape = self
            .shapes
            .binary_search_by(|(sp, ss)| (&**sp, &**ss).cmp(&(p, s)))
            .ok()? as u32;
        let probe = Row {
            digest,
            shape,
            size_lo: 0,
            secs: 0,
            hi: 0,
        };
        let i = self
            .rows
            .partition_point(|r| self.cmp(r, &probe) == Ordering::Less);
        self.rows
            .get(i)
            .is_some_and(|r| r.digest == digest && r.shape == shape)
            .then_some(i)
    }

    /// Removes the rows at `positions` (sorted).
    pub(super) fn remove(&mut self, positions: &[usize]) {
        super::remove_positions(&mut self.rows, positions);
    }

    /// Bytes held, roughly.
    pub(super) fn heap_bytes(&self) -> usize {
        32 * self.digests.capacity()
            + std::mem::size_of::<Row>() * self.rows.capacity()
            + 4 * self.prefix_rank.capacity()
            + self
                .shapes
                .iter()
                .map(|(p, s)| 32 + p.len() + s.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_splits_at_its_last_digest_component() {
        let h = "ab".repeat(32);
        let k = format!("blobs/sha256/ab/{h}/data");
        assert_eq!(&k[digest_at(k.as_bytes()).unwrap()], h);
        let k = format!("repositories/{h}/_layers/sha256/{}/link", "cd".repeat(32));
        assert_eq!(&k[digest_at(k.as_bytes()).unwrap()], "cd".repeat(32));
        assert!(digest_at(b"repositories/a/_manifests/tags/t/current/link").is_none());
        assert!(digest_at(format!("x/{}/link", "AB".repeat(32)).as_bytes()).is_none());
        assert_eq!(digest_at(h.as_bytes()), Some(0..64));
    }

    #[test]
    fn sizes_and_times_that_do_not_fit_are_refused() {
        let r = Row::pack(1, 2, (1 << 40) + 5, Some(1_700_000_000_123)).unwrap();
        assert_eq!((r.size(), r.mtime_ms()), ((1 << 40) + 5, 1_700_000_000_123));
        assert!(Row::pack(0, 0, 1, None).is_none());
        assert!(Row::pack(0, 0, 1, Some(-1)).is_none());
        assert!(Row::pack(0, 0, 1 << 54, Some(0)).is_none());
        assert!(Row::pack(0, 0, 1, Some((u32::MAX as i64 + 1) * 1000)).is_none());
        assert_eq!(std::mem::size_of::<Row>(), 20);
    }
}
