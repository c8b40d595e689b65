//! The objects of an inventory, held compactly and sorted by key (relative
//! to the registry's `docker/registry/v2/`).
//!
//! Keys shaped around a digest (blobs' `data` and every digest-named link:
//! nearly all of a registry) are 20-byte rows (`rows.rs`), their digests held once
//! in a table of 32 bytes each; the others are held whole (`keys.rs`). A
//! registry's objects take about 20 bytes each, plus 32 per distinct
//! digest, never a `String` each.

mod keys;
mod rows;

use crate::storage::{Entry, EntryKind, Meta};
use keys::{KeyPart, Keys};
use rows::{Built, RowPart, Tables};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Objects added one by one, in any order, by one reader; the parts that
/// share their tables ([`Part::sharing`]) are joined by [`Index::build`].
#[derive(Default)]
pub struct Part {
    tables: Arc<Tables>,
    rows: RowPart,
    keys: KeyPart,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part").field("len", &self.len()).finish()
    }
}

impl Part {
    /// An empty part filling the same digest and shape tables as `other`.
    pub fn sharing(other: &Part) -> Part {
        Part {
            tables: other.tables.clone(),
            rows: RowPart::default(),
            keys: KeyPart::default(),
        }
    }

    /// Adds one object.
    pub fn push(&mut self, key: &[u8], size: u64, mtime_ms: Option<i64>) {
        self.rows
            .push(&self.tables, key, size, mtime_ms, &mut self.keys);
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.rows.rows.len() + self.keys.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorts this part alone.
    pub fn finish(self) -> Index {
        Index::build(vec![self])
    }
}

/// Every object of an inventory under the registry root, sorted by key.
#[derive(Debug, Default)]
pub struct Index {
    rows: Built,
    keys: Keys,
}

impl Index {
    /// Joins `parts` (all [`Part::sharing`] one's tables) and sorts them; a
    /// key listed twice keeps the row modified last.
    pub fn build(parts: Vec<Part>) -> Index {
        let Some(first) = parts.first() else {
            return Index::default();
        };
        let tables = first.tables.clone();
        assert!(
            parts.iter().all(|p| Arc::ptr_eq(&p.tables, &tables)),
            "parts of one index share their tables"
        );
        let n: usize = parts.iter().map(|p| p.rows.rows.len()).sum();
        let mut rows = Vec::with_capacity(n);
        let mut keys = KeyPart::default();
        for p in parts {
            rows.extend_from_slice(&p.rows.rows);
            keys.append(p.keys);
        }
        let tables = Arc::try_unwrap(tables)
            .unwrap_or_else(|_| panic!("every part was consumed; its tables are not shared"));
        let mut index = Index {
            rows: Built::from(tables, rows),
            keys: keys.finish(),
        };
        index.one_row_per_key();
        index
    }

    /// A key listed twice, once in the packed rows and once among the keys
    /// that did not fit them (a time outside the packed range), keeps the
    /// row modified last — one place where every duplicate is resolved.
    fn one_row_per_key(&mut self) {
        let mut rows_gone: Vec<usize> = Vec::new();
        let mut keys_gone: Vec<usize> = Vec::new();
        for i in 0..self.keys.len() {
            let Some(r) = self.rows.position(self.keys.key(i)) else {
                continue;
            };
            if self.keys.mtime_ms(i) > self.rows.rows[r].mtime_ms() {
                rows_gone.push(r);
            } else {
                keys_gone.push(i);
            }
        }
        rows_gone.sort_unstable();
        rows_gone.dedup();
        self.rows.remove(&rows_gone);
        self.keys.remove(&keys_gone);
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.rows.rows.len() + self.keys.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many distinct digests the keys name.
    pub fn digests(&self) -> usize {
        self.rows.digests.len()
    }

    /// How many objects have keys that start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.rows.range(prefix).len() + self.keys.range(prefix).len()
    }

    /// The objects whose keys start with `prefix`, in key order, as
    /// listing entries.
    pub fn entries<'a>(&'a self, prefix: &str) -> impl Iterator<Item = Entry> + 'a {
        Merge {
            index: self,
            rows: self.rows.range(prefix),
            keys: self.keys.range(prefix),
            row_key: None,
        }
    }

    /// What the inventory says about one key.
    pub fn get(&self, key: &str) -> Option<Meta> {
        match self.rows.get(key) {
            Some(r) => Some(Meta {
                size: r.size(),
                modified: Some(ms_time(r.mtime_ms())),
            }),
            None => self.keys.get(key),
        }
    }

    /// Bytes held, roughly.
    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes() + self.keys.heap_bytes()
    }
}

/// Rows and whole keys of one range, merged in key order.
struct Merge<'a> {
    index: &'a Index,
    rows: std::ops::Range<usize>,
    keys: std::ops::Range<usize>,
    /// The key of the next row, once built.
    row_key: Option<String>,
}

impl Iterator for Merge<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        let built = &self.index.rows;
        if self.row_key.is_none() && !self.rows.is_empty() {
            self.row_key = Some(built.key(&built.rows[self.rows.start]));
        }
        let take_row = match (&self.row_key, self.keys.is_empty()) {
            (None, true) => return None,
            (None, false) => false,
            (Some(_), true) => true,
            (Some(k), false) => k.as_str() < self.index.keys.key(self.keys.start),
        };
        if take_row {
            let r = &built.rows[self.rows.start];
            self.rows.start += 1;
            Some(Entry {
                key: self.row_key.take().expect("built above"),
                kind: EntryKind::File,
                size: Some(r.size()),
                modified: Some(ms_time(r.mtime_ms())),
            })
        } else {
            let i = self.keys.start;
            self.keys.start += 1;
            let m = self.index.keys.meta(i);
            Some(Entry {
                key: self.index.keys.key(i).to_string(),
                kind: EntryKind::File,
                size: Some(m.size),
                modified: m.modified,
            })
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rows.len() + self.keys.len();
        (n, Some(n))
    }
}

/// Removes the elements of `v` at `positions` (sorted, distinct).
fn remove_positions<T>(v: &mut Vec<T>, positions: &[usize]) {
    if positions.is_empty() {
        return;
    }
    let mut next = positions.iter().peekable();
    let mut i = 0;
    v.retain(|_| {
        let drop = next.next_if_eq(&&i).is_some();
        i += 1;
        !drop
    });
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

    fn keys(ix: &Index, prefix: &str) -> Vec<String> {
        ix.entries(prefix).map(|e| e.key).collect()
    }

    #[test]
    fn a_key_packed_once_and_unpacked_once_is_listed_once() {
        let h = "b".repeat(64);
        let link = format!("repositories/r/_layers/sha256/{h}/link");
        // The same key: a time the packed rows hold, and one they do not
        // (after 2106, or unknown).
        for (late, kept) in [
            (Some(1i64 << 42), (2, Some(ms_time(1 << 42)))),
            (None, (1, Some(ms_time(5_000)))),
        ] {
            let mut a = Part::default();
            a.push(link.as_bytes(), 1, Some(5_000));
            let mut b = Part::sharing(&a);
            b.push(link.as_bytes(), 2, late);
            let ix = Index::build(vec![a, b]);
            assert_eq!(ix.len(), 1, "{late:?}");
            assert_eq!(keys(&ix, ""), vec![link.clone()]);
            assert_eq!(ix.count("repositories/"), 1);
            let m = ix.get(&link).unwrap();
            assert_eq!((m.size, m.modified), kept, "{late:?}: modified last");
        }
    }

    #[test]
    fn sorted_ranges_and_lookups() {
        let h = |c: char| c.to_string().repeat(64);
        let mut a = Part::default();
        a.push(b"repositories/b/x", 1, Some(5));
        a.push(
            format!("blobs/sha256/aa/{}/data", h('a')).as_bytes(),
            10,
            None,
        );
        let mut b = Part::sharing(&a);
        b.push(b"repositories/a/y", 2, Some(7));
        b.push(b"repositories/b/x", 3, Some(9));
        b.push(
            format!("repositories/b/_layers/sha256/{}/link", h('a')).as_bytes(),
            71,
            Some(11),
        );
        b.push(
            format!("repositories/b/_layers/sha256/{}/link", h('a')).as_bytes(),
            71,
            Some(10),
        );
        let ix = Index::build(vec![a, b]);
        assert_eq!(ix.len(), 4, "a key listed twice is held once");
        assert_eq!(ix.digests(), 1, "a digest named twice is held once");
        assert_eq!(
            keys(&ix, ""),
            vec![
                format!("blobs/sha256/aa/{}/data", h('a')),
                "repositories/a/y".to_string(),
                format!("repositories/b/_layers/sha256/{}/link", h('a')),
                "repositories/b/x".to_string(),
            ]
        );
        assert_eq!(ix.count("repositories/"), 3);
        assert_eq!(ix.count("repositories/b/"), 2);
        assert_eq!(ix.count("zzz"), 0);
        let m = ix.get("repositories/b/x").unwrap();
        assert_eq!((m.size, m.modified), (3, Some(ms_time(9))), "modified last");
        let link = format!("repositories/b/_layers/sha256/{}/link", h('a'));
        let m = ix.get(&link).unwrap();
        assert_eq!(
            (m.size, m.modified),
            (71, Some(ms_time(11))),
            "modified last"
        );
        assert!(ix.get("repositories/b").is_none());
        assert!(ix
            .get(&format!("repositories/c/_layers/sha256/{}/link", h('a')))
            .is_none());
        let blob = ix.get(&format!("blobs/sha256/aa/{}/data", h('a'))).unwrap();
        assert_eq!((blob.size, blob.modified), (10, None), "held whole");
    }

    /// The order of rows is the order of their keys as text, whatever the
    /// shapes: against a plain sort of the same keys, with prefixes that
    /// begin others and suffixes that differ.
    #[test]
    fn rows_are_in_the_order_of_their_keys() {
        rows_in_order(false);
        rows_in_order(true);
    }

    fn rows_in_order(nested: bool) {
        let digests: Vec<String> = (0..40u32)
            .map(|i| crate::digest::hex(&sha2_of(i)))
            .collect();
        let mut all = Vec::new();
        for (i, d) in digests.iter().enumerate() {
            all.push(format!("blobs/sha256/{}/{d}/data", &d[..2]));
            all.push(format!("repositories/r{}/_layers/sha256/{d}/link", i % 3));
            all.push(format!("repositories/r{}/_layers/sha256/{d}", i % 3));
            if nested {
                all.push(format!(
                    "repositories/r{}/_layers/sha256/{d}/x/{}/link",
                    i % 2,
                    digests[0]
                ));
            }
            all.push(format!(
                "repositories/r-{}/_manifests/revisions/sha256/{d}/link",
                i % 2
            ));
            all.push(format!("{d}/zz"));
            all.push(format!(
                "repositories/r{}/_manifests/tags/t{}/current/link",
                i % 3,
                i % 4
            ));
        }
        let mut part = Part::default();
        for (i, k) in all.iter().enumerate().rev() {
            part.push(k.as_bytes(), i as u64, Some(1_000 + i as i64));
        }
        let ix = part.finish();
        let mut want = all.clone();
        want.sort();
        want.dedup();
        assert_eq!(keys(&ix, ""), want);
        for p in [
            "repositories/r1/",
            "repositories/r",
            "blobs/",
            &digests[3][..5],
        ] {
            let w: Vec<String> = want.iter().filter(|k| k.starts_with(p)).cloned().collect();
            assert_eq!(keys(&ix, p), w, "{p}");
        }
        for k in &all {
            assert!(ix.get(k).is_some(), "{k}");
        }
    }

    fn sha2_of(i: u32) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(i.to_le_bytes()).into()
    }
}
