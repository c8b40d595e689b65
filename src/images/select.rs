//! Which rows `images` shows and in what order: `--repo` and `--tag`
//! patterns ([`crate::select`]), `--filter` kinds and statuses (all must hold), `--sort`.

use super::{Entry, Flag, Images, RowKind};
use crate::select::Pattern;
use crate::Result;
use rayon::slice::ParallelSliceMut;
use std::cmp::Ordering;

/// A `--filter` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Filter {
    /// At least one tag names it.
    Tagged,
    /// No tag, and no live index or subject reaches it.
    Untagged,
    /// An index (multi-arch).
    Index,
    /// An image manifest.
    Image,
    /// An artifact.
    Artifact,
    /// A referrer (has a subject).
    Referrer,
    /// Not pulled within --stale-after.
    Stale,
    /// Pushed or pulled within 30 days.
    Active,
    /// What `report --delete-untagged` removes.
    Garbage,
}

impl Filter {
    fn holds(self, r: &Entry) -> bool {
        match self {
            Filter::Tagged => !r.tags.is_empty(),
            Filter::Untagged => r.has(Flag::Untagged),
            Filter::Index => r.kind == RowKind::Index,
            Filter::Image => r.kind == RowKind::Image,
            Filter::Artifact => r.kind == RowKind::Artifact,
            Filter::Referrer => r.kind == RowKind::Referrer,
            Filter::Stale => r.has(Flag::Stale),
            Filter::Active => r.has(Flag::Active),
            Filter::Garbage => r.has(Flag::Garbage),
        }
    }
}

/// A `--sort` key. Sizes and times sort largest or newest first; names
/// alphabetically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    /// `size`, largest first.
    Size,
    /// `reclaimable_bytes`, largest first.
    Reclaimable,
    /// `pushed_at`, newest first (unknown last).
    Pushed,
    /// `last_pulled_at`, newest first (never pulled last).
    Pulled,
    /// Repository, then first tag (untagged last), then digest.
    Name,
    /// Number of tags, most first.
    Tags,
}

impl Selection {
    /// True when what is shown depends on pulls: a `stale` or `active`
    /// filter (a decision about images, which an unreadable log must not
    /// make), as opposed to showing pull times.
    pub fn decides_by_pulls(&self) -> bool {
        self.filters
            .iter()
            .any(|f| matches!(f, Filter::Stale | Filter::Active))
    }
}

/// What to show.
#[derive(Debug, Default)]
pub struct Selection {
    /// Repositories shown (see [`crate::select`]; `None` = all).
    pub repos: Option<Pattern>,
    /// A pattern that some tag of the row must match whole.
    pub tag: Option<Pattern>,
    /// Filters; all must hold.
    pub filters: Vec<Filter>,
    /// Order.
    pub sort: Option<SortKey>,
    /// Flip the order.
    pub reverse: bool,
}

impl Selection {
    /// Compiles the `--repo` and `--tag` patterns ([`crate::select`]); an
    /// invalid one is an error that names it.
    pub fn new(
        repos: &[String],
        tag: Option<&str>,
        filters: Vec<Filter>,
        sort: Option<SortKey>,
        reverse: bool,
    ) -> Result<Selection> {
        let repos = Pattern::any_of("--repo", repos)?;
        let tag = Pattern::any_of(
            "--tag",
            &tag.map(str::to_string).into_iter().collect::<Vec<_>>(),
        )?;
        Ok(Selection {
            repos,
            tag,
            filters,
            sort,
            reverse,
        })
    }

    /// Whether a repository is shown.
    pub fn repo(&self, name: &str) -> bool {
        self.repos.as_ref().is_none_or(|p| p.matches(name))
    }

    /// Whether an entry is shown.
    pub fn row(&self, images: &Images<'_>, e: &Entry) -> bool {
        self.repo(images.repository(e))
            && self
                .tag
                .as_ref()
                .is_none_or(|p| images.tags(e).any(|t| p.matches(t)))
            && self.filters.iter().all(|f| f.holds(e))
    }

    /// Keeps the rows and repositories shown, in order. The summary stays
    /// that of the whole storage.
    pub fn apply(&self, images: &mut Images<'_>) {
        let mut entries = std::mem::take(&mut images.entries);
        entries.retain(|e| self.row(images, e));
        images.repositories.retain(|r| self.repo(&r.name));
        let key = self.sort.unwrap_or(SortKey::Name);
        let view: &Images<'_> = images;
        // Each row is one (repository, manifest) and the name order ends
        // with both: the order is total, so an unstable sort is exact.
        entries.par_sort_unstable_by(|a, b| {
            let o = compare(view, key, a, b).then_with(|| compare(view, SortKey::Name, a, b));
            if self.reverse {
                o.reverse()
            } else {
                o
            }
        });
        images.entries = entries;
        images.repositories.sort_by(|a, b| {
            let o = match key {
                SortKey::Size => b.size.cmp(&a.size),
                SortKey::Reclaimable => b.reclaimable_bytes.cmp(&a.reclaimable_bytes),
                SortKey::Pushed => newest(a.last_pushed_at, b.last_pushed_at),
                SortKey::Pulled => newest(a.last_pulled_at, b.last_pulled_at),
                SortKey::Tags => b.tags.cmp(&a.tags),
                SortKey::Name => Ordering::Equal,
            }
            .then_with(|| a.name.cmp(&b.name));
            if self.reverse {
                o.reverse()
            } else {
                o
            }
        });
    }
}

/// Newest first, unknown last.
fn newest(a: Option<std::time::SystemTime>, b: Option<std::time::SystemTime>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn compare(images: &Images<'_>, key: SortKey, a: &Entry, b: &Entry) -> Ordering {
    match key {
        SortKey::Size => b.size.cmp(&a.size),
        SortKey::Reclaimable => b.reclaimable_bytes.cmp(&a.reclaimable_bytes),
        SortKey::Pushed => newest(a.pushed_at, b.pushed_at),
        SortKey::Pulled => newest(a.last_pulled_at, b.last_pulled_at),
        SortKey::Tags => b.tags.len().cmp(&a.tags.len()),
        SortKey::Name => {
            let interner = &images.source.analysis.inventory.interner;
            images
                .repository(a)
                .cmp(images.repository(b))
                .then_with(|| a.tags.is_empty().cmp(&b.tags.is_empty()))
                .then_with(|| images.tags(a).next().cmp(&images.tags(b).next()))
                .then_with(|| interner.digest(a.id).cmp(&interner.digest(b.id)))
        }
    }
}
