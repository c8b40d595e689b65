//! The reclaim report: what the mark found, per storage and per repository,
//! as a versioned JSON document ([`Report`]) and as text for people.
//!
//! Bytes of a garbage blob are counted once however many repositories link
//! it; per repository, `unique_bytes` are the bytes of blobs only that
//! repository's live manifests need, `shared_bytes` those needed by others too.

use crate::mark::{Marked, Mode, RepoRoots};
use crate::problem::{Problem, Severity};
use crate::scan::Inventory;
use rayon::prelude::*;
use roaring::RoaringBitmap;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::SystemTime;

/// Version of the JSON format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// The whole report (the JSON document written by `report --format json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Version of this format.
    pub format_version: u32,
    /// regsweep's version.
    pub tool_version: String,
    /// The storage that was scanned.
    pub storage: String,
    /// `keep-untagged` (default) or `delete-untagged`.
    pub mode: Mode,
    /// When the scan ran (RFC 3339, UTC).
    pub generated_at: String,
    /// Totals.
    pub summary: Summary,
    /// Blobs that no live manifest references, sorted by digest.
    pub garbage_blobs: Vec<GarbageBlob>,
    /// Revision links that would be removed (only with `--delete-untagged`).
    pub garbage_manifests: Vec<GarbageManifest>,
    /// Uploads under `_uploads/`: in progress or abandoned.
    pub abandoned_uploads: Vec<UploadEntry>,
    /// One entry per repository, sorted by reclaimable bytes, then name.
    pub repositories: Vec<RepositoryEntry>,
    /// Everything odd or broken found in the storage.
    pub problems: Vec<Problem>,
}

/// Totals of a report.
#[derive(Debug, Serialize, Default)]
pub struct Summary {
    /// Repositories (directories with `_manifests`).
    pub repositories: usize,
    /// Tags, over all repositories.
    pub tags: usize,
    /// Revision links, over all repositories.
    pub manifests: usize,
    /// Distinct blobs stored (layers, configs and manifests).
    pub blobs: usize,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Blobs that stay.
    pub live_blobs: usize,
    /// Blobs that can be deleted.
    pub garbage_blobs: usize,
    /// Their bytes, each blob counted once.
    pub garbage_blob_bytes: u64,
    /// Garbage blobs linked into more than one repository (counted in no
    /// repository's `reclaimable_bytes`).
    pub garbage_shared_blobs: usize,
    /// Their bytes.
    pub garbage_shared_bytes: u64,
    /// Garbage blobs linked into no repository: no `_layers` or revision
    /// link names them (counted in no repository's `reclaimable_bytes`).
    pub garbage_unlinked_blobs: usize,
    /// Their bytes. The repositories' `reclaimable_bytes`, plus
    /// `garbage_shared_bytes`, plus these, are `reclaimable_bytes`.
    pub garbage_unlinked_bytes: u64,
    /// Revision links that would be removed.
    pub garbage_manifests: usize,
    /// Uploads found.
    pub uploads: usize,
    /// Their bytes.
    pub upload_bytes: u64,
    /// `garbage_blob_bytes + upload_bytes`.
    pub reclaimable_bytes: u64,
    /// Why `reclaimable_bytes` is uncertain, when it is: problems make
    /// reachability uncertain (a manifest that cannot be read may
    /// reference blobs counted here), and a sweep is blocked until they
    /// are fixed. `None` when the figure is what a sweep frees.
    pub reclaimable_uncertain: Option<String>,
    /// Problems found.
    pub problems: usize,
    /// Problems that make reachability uncertain.
    pub blocking_problems: usize,
    /// True when a sweep would refuse to run (some problem blocks it).
    pub sweep_blocked: bool,
    /// On an object store: the requests the run sent, by kind (absent on
    /// a filesystem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<crate::storage::RequestCounts>,
}

impl Summary {
    /// The reclaimable bytes no repository's row holds, as rows of their
    /// own (left out when zero): garbage linked into several repositories,
    /// and blobs no repository links. With them the repositories'
    /// `reclaimable_bytes` add up to `reclaimable_bytes`.
    pub fn unowned(&self) -> impl Iterator<Item = (String, u64)> {
        [
            (
                "(linked into several repositories)".to_string(),
                self.garbage_shared_bytes,
            ),
            ("(unlinked blobs)".to_string(), self.garbage_unlinked_bytes),
        ]
        .into_iter()
        .filter(|(_, b)| *b > 0)
    }
}

/// A blob that would be deleted.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct GarbageBlob {
    /// `sha256:<hex>` (blobs are stored only under sha256).
    pub digest: crate::digest::BlobDigest,
    /// Size of its data in storage.
    pub size: u64,
}

/// A revision link that would be removed.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct GarbageManifest {
    /// Repository name.
    pub repository: String,
    /// Manifest digest.
    pub digest: crate::digest::Digest,
}

/// An upload found under `_uploads/`.
#[derive(Debug, Serialize, Clone)]
pub struct UploadEntry {
    /// Repository name.
    pub repository: String,
    /// Upload id.
    pub id: String,
    /// Bytes of all its files.
    pub size: u64,
    /// Its `startedat`, when known (RFC 3339).
    pub started_at: Option<String>,
    /// Seconds since `startedat`, when known.
    pub age_seconds: Option<u64>,
}

/// Statistics of one repository.
#[derive(Debug, Serialize, Clone, Default)]
pub struct RepositoryEntry {
    /// Repository name.
    pub name: String,
    /// False for a directory with `_layers`/`_uploads` but no `_manifests`.
    pub visible: bool,
    /// Number of tags.
    pub tags: usize,
    /// Revision-linked manifests.
    pub manifests: usize,
    /// Revision-linked manifests that some tag points at.
    pub manifests_tagged: usize,
    /// Revision-linked manifests that no tag points at.
    pub manifests_untagged: usize,
    /// Revision links that would be removed.
    pub manifests_garbage: usize,
    /// `_layers` links.
    pub layer_links: usize,
    /// Bytes of blobs needed only by this repository.
    pub unique_bytes: u64,
    /// Bytes of blobs needed by this and other repositories.
    pub shared_bytes: u64,
    /// Bytes of garbage blobs linked into this repository and no other,
    /// plus its uploads (garbage linked into several repositories, or into
    /// none, is in the summary's `garbage_shared_bytes` and
    /// `garbage_unlinked_bytes`: the rows and those add up to
    /// `reclaimable_bytes`).
    pub reclaimable_bytes: u64,
    /// Uploads in this repository.
    pub uploads: usize,
}

/// `a + b` bytes, saturating: a total of sizes that a manifest declares
/// (and storage does not confirm) can never wrap around.
pub fn add_bytes(a: u64, b: u64) -> u64 {
    a.saturating_add(b)
}

/// The saturating sum of `sizes` (see [`add_bytes`]).
pub fn sum_bytes(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes.into_iter().fold(0, add_bytes)
}

/// A time as RFC 3339 in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Builds the report from the scan, the graph and the mark.
pub fn build(
    inv: &Inventory,
    roots: &[RepoRoots],
    marked: &Marked,
    mode: Mode,
    now: SystemTime,
) -> Report {
    build_with(inv, inv.problems.clone(), roots, marked, mode, now)
}

/// [`build`], with the scan's problems moved in rather than copied (the
/// caller took them out of `inv`: a storage with millions of problems is
/// not held twice).
pub fn build_with(
    inv: &Inventory,
    problems: Vec<crate::problem::Problem>,
    roots: &[RepoRoots],
    marked: &Marked,
    mode: Mode,
    now: SystemTime,
) -> Report {
    let stored = inv.stored_blobs();
    let garbage = &stored - &marked.blobs;
    // Sizes from storage where the scan read them (always for garbage
    // blobs), else the size a descriptor declares (see `graph::build`).
    let size = |id: u32| inv.blob(id).map_or(0, |b| b.size);

    let garbage_blobs = || {
        let mut v: Vec<GarbageBlob> = garbage
            .iter()
            .map(|id| GarbageBlob {
                digest: crate::digest::BlobDigest(
                    *inv.interner
                        .sha256(id)
                        .expect("a stored blob is named by a sha256 digest"),
                ),
                size: size(id),
            })
            .collect();
        v.sort_unstable_by_key(|b| b.digest);
        v
    };
    let garbage_manifests = || {
        let per_repo = marked.garbage_manifests(roots);
        let mut v = Vec::new();
        for (r, g) in inv.repos.iter().zip(&per_repo) {
            for id in g {
                v.push(GarbageManifest {
                    repository: r.name.clone(),
                    digest: inv.interner.digest(id),
                });
            }
        }
        (v, per_repo)
    };
    // Garbage blobs by the repositories that link them: a blob linked into
    // one repository is that repository's; into several, or none, the
    // summary's.
    let linked_garbage: Vec<RoaringBitmap> = inv
        .repos
        .par_iter()
        .map(|r| {
            let mut linked: RoaringBitmap = r.layers.iter().copied().collect();
            linked.extend(r.revisions.iter().copied());
            linked &= &garbage;
            linked
        })
        .collect();
    let (seen, multi) = linked_garbage.iter().fold(
        (RoaringBitmap::new(), RoaringBitmap::new()),
        |(mut seen, mut multi), g| {
            multi |= &seen & g;
            seen |= g;
            (seen, multi)
        },
    );
    let unlinked = &garbage - &seen;
    let repositories = |garbage_per_repo: &[RoaringBitmap]| {
        // How many repositories need each stored blob.
        let mut users = vec![0u32; inv.blobs.len()];
        for refs in &marked.repo_refs {
            let stored = users.len();
            for id in refs.iter().take_while(|&id| (id as usize) < stored) {
                users[id as usize] += 1;
            }
        }
        let mut v: Vec<RepositoryEntry> = inv
            .repos
            .par_iter()
            .enumerate()
            .map(|(i, r)| {
                let tagged: RoaringBitmap = r.tags.iter().filter_map(|t| t.current).collect();
                let revs: RoaringBitmap = r.revisions.iter().copied().collect();
                let manifests_tagged = (&revs & &tagged).len() as usize;
                let (mut unique, mut shared) = (0, 0);
                for id in &marked.repo_refs[i] {
                    match users.get(id as usize) {
                        Some(1) => unique = add_bytes(unique, size(id)),
                        Some(_) => shared = add_bytes(shared, size(id)),
                        None => {}
                    }
                }
                let reclaim = add_bytes(
                    sum_bytes((&linked_garbage[i] - &multi).iter().map(size)),
                    sum_bytes(r.uploads.iter().map(|u| u.size)),
                );
                RepositoryEntry {
                    name: r.name.clone(),
                    visible: r.visible,
                    tags: r.tags.len(),
                    manifests: r.revisions.len(),
                    manifests_tagged,
                    manifests_untagged: r.revisions.len() - manifests_tagged,
                    manifests_garbage: garbage_per_repo[i].len() as usize,
                    layer_links: r.layers.len(),
                    unique_bytes: unique,
                    shared_bytes: shared,
                    reclaimable_bytes: reclaim,
                    uploads: r.uploads.len(),
                }
            })
            .collect();
        v.sort_by(|a, b| {
            b.reclaimable_bytes
                .cmp(&a.reclaimable_bytes)
                .then_with(|| a.name.cmp(&b.name))
        });
        v
    };
    // The big parts in parallel: garbage blobs with the stored bytes, and
    // garbage manifests with the repositories (which need them).
    let ((garbage_blobs, blob_bytes), (garbage_manifests, repositories)) = rayon::join(
        || (garbage_blobs(), sum_bytes(stored.iter().map(size))),
        || {
            let (v, per_repo) = garbage_manifests();
            (v, repositories(&per_repo))
        },
    );

    let mut abandoned_uploads = Vec::new();
    for r in &inv.repos {
        for u in &r.uploads {
            abandoned_uploads.push(UploadEntry {
                repository: r.name.clone(),
                id: u.id.clone(),
                size: u.size,
                started_at: u.started_at.map(rfc3339),
                age_seconds: u
                    .started_at
                    .map(|t| now.duration_since(t).map_or(0, |d| d.as_secs())),
            });
        }
    }

    let mut problems = problems;
    problems.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.path.cmp(&b.path))
    });

    let garbage_blob_bytes = sum_bytes(garbage_blobs.iter().map(|b| b.size));
    let upload_bytes = sum_bytes(abandoned_uploads.iter().map(|u| u.size));
    let blocking = problems.iter().filter(|p| p.blocks_sweep()).count();
    let summary = Summary {
        repositories: inv.repos.iter().filter(|r| r.visible).count(),
        tags: inv.repos.iter().map(|r| r.tags.len()).sum(),
        manifests: inv.repos.iter().map(|r| r.revisions.len()).sum(),
        blobs: inv.blobs.len() - inv.absent.len() as usize,
        blob_bytes,
        live_blobs: inv.blobs.len() - inv.absent.len() as usize - garbage_blobs.len(),
        garbage_blobs: garbage_blobs.len(),
        garbage_blob_bytes,
        garbage_shared_blobs: multi.len() as usize,
        garbage_shared_bytes: sum_bytes(multi.iter().map(size)),
        garbage_unlinked_blobs: unlinked.len() as usize,
        garbage_unlinked_bytes: sum_bytes(unlinked.iter().map(size)),
        garbage_manifests: garbage_manifests.len(),
        uploads: abandoned_uploads.len(),
        upload_bytes,
        reclaimable_bytes: garbage_blob_bytes + upload_bytes,
        reclaimable_uncertain: (blocking > 0).then(|| {
            format!(
                "{blocking} problem(s) make reachability uncertain: what an unreadable \
                 manifest references may be counted here, and a sweep is blocked until they \
                 are fixed"
            )
        }),
        problems: problems.len(),
        blocking_problems: blocking,
        sweep_blocked: blocking > 0,
        requests: None,
    };
    Report {
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        storage: inv.storage.clone(),
        mode,
        generated_at: rfc3339(now),
        summary,
        garbage_blobs,
        garbage_manifests,
        abandoned_uploads,
        repositories,
        problems,
    }
}

/// `n` and the noun, singular for one: "1 upload", "3 uploads".
pub(crate) fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Bytes for people: `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Report {
    /// The report as text for people: totals, top repositories, problems.
    pub fn to_text(&self, top: usize) -> String {
        let s = &self.summary;
        let mut o = String::new();
        let _ = writeln!(o, "regsweep report: {} (mode: {})", self.storage, self.mode);
        let _ = writeln!(
            o,
            "  {}, {}, {}, {} ({})",
            counted(s.repositories, "repository", "repositories"),
            counted(s.tags, "tag", "tags"),
            counted(s.manifests, "manifest", "manifests"),
            counted(s.blobs, "blob", "blobs"),
            human_bytes(s.blob_bytes)
        );
        let _ = writeln!(
            o,
            "  reclaimable: {} — {} ({}), {} ({}), {} to remove",
            human_bytes(s.reclaimable_bytes),
            counted(s.garbage_blobs, "garbage blob", "garbage blobs"),
            human_bytes(s.garbage_blob_bytes),
            counted(s.uploads, "upload", "uploads"),
            human_bytes(s.upload_bytes),
            counted(
                s.garbage_manifests,
                "manifest revision",
                "manifest revisions"
            )
        );
        if let Some(why) = &s.reclaimable_uncertain {
            let _ = writeln!(o, "  reclaimable is uncertain: {why}");
        }
        let with_bytes: Vec<_> = self
            .repositories
            .iter()
            .filter(|r| r.reclaimable_bytes > 0)
            .collect();
        let shown = &with_bytes[..with_bytes.len().min(top)];
        if s.reclaimable_bytes > 0 {
            let _ = writeln!(o, "\nTop repositories by reclaimable bytes:");
            let _ = writeln!(
                o,
                "  {:>12}  {:>6}  {:>9}  {:>9}  {:>12}  {:>12}  name",
                "reclaimable", "tags", "manifests", "untagged", "unique", "shared"
            );
            for r in shown {
                let _ = writeln!(
                    o,
                    "  {:>12}  {:>6}  {:>9}  {:>9}  {:>12}  {:>12}  {}",
                    human_bytes(r.reclaimable_bytes),
                    r.tags,
                    r.manifests,
                    r.manifests_untagged,
                    human_bytes(r.unique_bytes),
                    human_bytes(r.shared_bytes),
                    r.name
                );
            }
            // The rest, so that the column adds up to the headline.
            let rest = &with_bytes[shown.len()..];
            let others = std::iter::once((
                format!(
                    "({})",
                    counted(rest.len(), "other repository", "other repositories")
                ),
                sum_bytes(rest.iter().map(|r| r.reclaimable_bytes)),
            ))
            .chain(s.unowned());
            for (name, bytes) in others.filter(|(_, b)| *b > 0) {
                let _ = writeln!(o, "  {:>12}  {:>56}  {name}", human_bytes(bytes), "");
            }
            let _ = writeln!(
                o,
                "  {:>12}  {:>56}  (total)",
                human_bytes(s.reclaimable_bytes),
                ""
            );
        }
        if self.problems.is_empty() {
            let _ = writeln!(o, "\nNo problems found.");
        } else {
            let count = |sev| self.problems.iter().filter(|p| p.severity == sev).count();
            let _ = writeln!(
                o,
                "\nProblems: {} errors, {} warnings, {} notes",
                count(Severity::Error),
                count(Severity::Warning),
                count(Severity::Info)
            );
            for p in &self.problems {
                let sev = match p.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "note",
                };
                let kind = serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let _ = writeln!(o, "  {sev}[{kind}] {}: {}", p.path, p.message);
            }
            if s.sweep_blocked {
                let _ = writeln!(
                    o,
                    "\nA sweep would refuse to run: {} problem(s) make reachability uncertain.",
                    s.blocking_problems
                );
            }
        }
        o
    }
}
