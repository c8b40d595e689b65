//! Listing an object store: pages (each counted as it is sent; a store
//! without paginated listing is read in pages of [`PAGE`] keys), ranges of
//! keys listed page after page, and a recursive listing split into ranges
//! listed in parallel ([`ObjectStorage::list_split_ranges`], behind
//! [`ScanHints::list_split`](crate::storage::ScanHints::list_split)).

use super::{backend, ObjectStorage, PAGE};
use crate::storage::{Cuts, DirListing, Entry, Listing, RequestKind, StorageError};
use futures::{StreamExt, TryStreamExt};
use object_store::list::PaginatedListOptions;
use object_store::path::Path as ObjPath;
use object_store::{ListResult, ObjectMeta};

impl ObjectStorage {
    /// One page of the listing of `dir` (a full prefix ending with `/`),
    /// recursive or by `/`, of keys after `offset`, continuing after
    /// `token`: what it found, and the token of the next page when there is
    /// one.
    pub(super) async fn page(
        &self,
        dir: &str,
        delimiter: bool,
        offset: Option<&str>,
        token: Option<String>,
    ) -> object_store::Result<(ListResult, Option<String>)> {
        self.counter.add(RequestKind::List, 1);
        if let Some(p) = &self.pager {
            let r = p
                .list_paginated(
                    Some(dir),
                    PaginatedListOptions {
                        offset: offset.map(str::to_string),
                        delimiter: delimiter.then_some("/".into()),
                        page_token: token,
                        ..Default::default()
                    },
                )
                .await?;
            return Ok((r.result, r.page_token));
        }
        // A store without paginated listing: pages of PAGE keys, the next
        // one beginning after the last key of this one.
        let path = ObjPath::from(dir);
        if delimiter {
            let r = self.store.list_with_delimiter(Some(&path)).await?;
            let n = r.objects.len() + r.common_prefixes.len();
            self.counter
                .add(RequestKind::List, (n.saturating_sub(1) / PAGE) as u64);
            return Ok((r, None));
        }
        let stream = match token.as_deref().or(offset) {
            Some(after) => self
                .store
                .list_with_offset(Some(&path), &ObjPath::from(after)),
            None => self.store.list(Some(&path)),
        };
        let objects: Vec<ObjectMeta> = stream.take(PAGE).try_collect().await?;
        let next = (objects.len() == PAGE)
            .then(|| objects.last().map(|m| m.location.to_string()))
            .flatten();
        Ok((
            ListResult {
                common_prefixes: Vec::new(),
                objects,
            },
            next,
        ))
    }

    /// Every key below `dir` (a full prefix ending with `/`) after `after`
    /// and up to `until` (full keys), page after page; the page that passes
    /// `until` is the last one asked for.
    pub(super) async fn list_range(
        &self,
        dir: &str,
        after: Option<&str>,
        until: Option<&str>,
    ) -> object_store::Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (r, next) = self.page(dir, false, after, token).await?;
            for m in r.objects {
                if until.is_some_and(|u| m.location.as_ref() > u) {
                    return Ok(out);
                }
                out.push(m);
            }
            match next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The immediate children of `prefix`, page after page (a missing
    /// prefix is empty).
    pub(super) async fn list_dirs_async(&self, prefix: &str) -> Result<DirListing, StorageError> {
        let dir = self.dir(prefix);
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        let mut token = None;
        loop {
            let (r, next) = match self.page(&dir, true, None, token).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(backend(prefix, e)),
            };
            dirs.extend(
                r.common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string)),
            );
            files.extend(r.objects.iter().map(|m| self.entry(m)));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        dirs.sort();
        dirs.dedup();
        Ok(DirListing {
            dirs,
            files,
            probes: Vec::new(),
        })
    }

    /// Every key below `prefix`, with sizes, page after page (a missing
    /// prefix is empty).
    pub(super) async fn list_async(&self, prefix: &str) -> Result<Listing, StorageError> {
        let metas = match self.list_range(&self.dir(prefix), None, None).await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(backend(prefix, e)),
        };
        Ok(Listing {
            entries: metas.iter().map(|m| self.entry(m)).collect(),
            ..Default::default()
        })
    }

    /// [`ScanHints::list_split`](crate::storage::ScanHints::list_split): one
    /// page first; when that page holds everything it is the whole
    /// listing, else the rest is listed as ranges that begin at the keys
    /// `cuts` gives, in parallel, each page after page until the next
    /// range begins.
    pub(super) fn list_split_ranges(
        &self,
        prefix: &str,
        cuts: &Cuts<'_>,
    ) -> Result<Listing, StorageError> {
        let dir = self.dir(prefix);
        let first = self.block(self.page(&dir, false, None, None));
        let (first, token) = match first {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(Listing::default()),
            Err(e) => return Err(backend(prefix, e)),
        };
        let mut entries: Vec<Entry> = first.objects.iter().map(|m| self.entry(m)).collect();
        let (Some(_), Some(last)) = (token, first.objects.last()) else {
            return Ok(Listing {
                entries,
                ..Default::default()
            });
        };
        // The rest, from the key after the first page's last: ranges that
        // begin where `cuts` says, each listed page after page.
        let last_key = self.entry(last).key;
        let mut starts: Vec<String> = cuts(&last_key, self.concurrency)
            .into_iter()
            .filter(|c| *c > last_key && c.starts_with(prefix))
            .collect();
        starts.sort();
        starts.dedup();
        let full = |k: &str| format!("{}/{k}", self.base);
        let mut bounds = vec![last.location.to_string()];
        bounds.extend(starts.iter().map(|c| full(c)));
        let ranges: Vec<(&str, Option<&str>)> = bounds
            .iter()
            .enumerate()
            .map(|(i, b)| (b.as_str(), bounds.get(i + 1).map(String::as_str)))
            .collect();
        let dir = &dir;
        let results: Vec<_> = self.block(
            futures::stream::iter(
                ranges
                    .iter()
                    .map(|&(after, until)| self.list_range(dir, Some(after), until)),
            )
            .buffered(self.concurrency)
            .collect(),
        );
        let mut errors = Vec::new();
        for (r, (after, _)) in results.into_iter().zip(&ranges) {
            match r {
                Ok(metas) => entries.extend(metas.iter().map(|m| self.entry(m))),
                Err(e) => errors.push(backend(&format!("{prefix} (keys after {after})"), e)),
            }
        }
        Ok(Listing {
            entries,
            errors,
            fetched: Vec::new(),
        })
    }
}
