//! `verify`: is this storage whole? A read-only audit of every repository
//! and tag, for disaster-recovery checks after a restore.
//!
//! Stages: a deep [`scan`] that lists every file, reads and
//! checks every revision, `_layers` and tag history link against its path
//! ([`crate::scan::ScanOptions::check_links`]) and, with `--rehash`, hashes blobs as it
//! lists them where the backend can ([`ScanOptions::hash_blobs`]: a
//! filesystem does, relative to the open blob directory) → the manifests
//! that the [`graph`](crate::graph) of `report` reads (their problems are
//! findings too), each hashed and kept with its descriptors' sizes as it is
//! read ([`graph::read_each`](crate::graph::read_each)) → with `--rehash`,
//! every blob not hashed yet is hashed
//! ([`StorageBatch::sha256_many`](crate::storage::StorageBatch::sha256_many))
//! → what anything references, by the mark's rules
//! ([`crate::reach::live::referenced`]: a corrupt blob outside it is an
//! orphan) → each repository is walked from its tags and
//! revision links (in parallel, one walker per repository, merged at the
//! end) → optionally the storage is compared with an
//! [`inventory`](crate::inventory).
//!
//! Every finding is typed ([`Finding`]: kind, severity, repository, tag,
//! digest, path, message, remedy). A tag is *broken* when its current link
//! is unusable or anything it reaches has an error finding.
//!
//! In files: `walker.rs` walks one repository from its tags and revision
//! links and attributes each broken tag to the errors it reaches;
//! `checks.rs` holds the walker's checks per object kind (manifests and
//! index children, blobs and their links, digest aliases); `content.rs`
//! checks content (manifests as the graph reads them, blobs rehashed);
//! `findings.rs` turns scan problems and inventory differences into
//! findings and says what to do about each kind; `output.rs` prints.

mod checks;
mod content;
pub mod findings;
pub mod output;
mod walker;

pub use findings::{locate, remedy};

use crate::digest::hex;
use crate::graph::GraphOptions;
use crate::inventory::InventoryDoc;
use crate::problem::{Kind, Severity};
use crate::progress::Progress;
use crate::scan::{self, ScanOptions};
use crate::storage::{Storage, StorageError};
use content::{check_manifest, rehash};
use findings::{against_findings, scan_findings};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use walker::{bad_links, Ctx, RepoOutcome, Walker};

/// Settings of a `verify` run.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Scan settings.
    pub scan: ScanOptions,
    /// Manifest size limit and batch size.
    pub graph: GraphOptions,
    /// Recompute the sha256 of every blob.
    pub rehash: bool,
    /// Compare the storage with this inventory.
    pub against: Option<InventoryDoc>,
}

/// One finding: something missing, corrupt or odd in the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of finding (the same names as `report`'s problems).
    pub kind: Kind,
    /// `Error`: something is missing or corrupt (the exit status says so).
    pub severity: Severity,
    /// The repository involved, when there is one.
    pub repository: Option<String>,
    /// The tag involved, when the finding is about a tag.
    pub tag: Option<String>,
    /// The digest involved (`sha256:…`), when there is one.
    pub digest: Option<String>,
    /// The key (relative to `docker/registry/v2/`) it concerns.
    pub path: String,
    /// What is wrong, for people.
    pub message: String,
    /// What to do about it.
    pub remedy: &'static str,
}

/// A tag that cannot be pulled whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenTag {
    /// Repository name.
    pub repository: String,
    /// Tag name.
    pub tag: String,
    /// The manifest its current link names, when it names one.
    pub digest: Option<String>,
    /// Indices into [`Verification::findings`]: the errors it reaches.
    pub causes: Vec<usize>,
}

/// Totals of what was checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    /// Repositories the registry can see.
    pub repositories: usize,
    /// Tags.
    pub tags: usize,
    /// Revision links.
    pub manifests: usize,
    /// Blobs stored.
    pub blobs: usize,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Link files read and checked.
    pub links: usize,
    /// Blobs hashed (manifests always; every blob with `--rehash`).
    pub hashed_blobs: usize,
    /// Their bytes.
    pub hashed_bytes: u64,
    /// Seconds spent hashing with `--rehash` (where blobs are hashed as
    /// they are listed, the time of that listing).
    pub rehash_seconds: Option<f64>,
}

/// The outcome of a `verify` run.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The storage verified.
    pub storage: String,
    /// True when every blob was hashed.
    pub rehash: bool,
    /// True when the storage was compared with an inventory.
    pub against: bool,
    /// What was checked.
    pub checked: Checked,
    /// Findings, errors first, then by kind, repository and path.
    pub findings: Vec<Finding>,
    /// Broken tags, by repository and tag.
    pub broken_tags: Vec<BrokenTag>,
}

impl Verification {
    /// Number of findings of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// True when no finding is an error.
    pub fn is_whole(&self) -> bool {
        self.count(Severity::Error) == 0
    }
}

/// Verifies the storage. Fails only when it cannot be listed at all.
pub fn verify(
    storage: &dyn Storage,
    opts: &VerifyOptions,
    progress: &Progress,
) -> Result<Verification, StorageError> {
    let scan_opts = ScanOptions {
        check_links: true,
        hash_blobs: opts.rehash,
        ..opts.scan.clone()
    };
    let mut inv = scan::scan(storage, &scan_opts, progress)?;
    // Every manifest the graph reads is also hashed and kept with its
    // descriptors' sizes here: nothing is read twice.
    let mut manifests = HashMap::new();
    let mut corrupt = HashMap::new();
    let (mut hashed_blobs, mut hashed_bytes) = (0, 0);
    let graph = crate::graph::read_each(
        storage,
        &mut inv,
        &opts.graph,
        progress,
        &mut |interner, id, seen| {
            let (read, hashed) = check_manifest(interner, id, seen, &mut corrupt);
            if let Some(size) = hashed {
                hashed_blobs += 1;
                hashed_bytes += size;
            }
            manifests.insert(id, read);
        },
    );
    // What anything references, by the rules the mark follows: a corrupt
    // or unreadable blob outside it is garbage (`report` counts it as
    // reclaimable), not a cause of a broken tag.
    let reached = crate::reach::live::referenced(&inv.repos, &graph.nodes);
    drop(graph);
    let mut checked = Checked {
        repositories: inv.repos.iter().filter(|r| r.visible).count(),
        tags: inv.repos.iter().map(|r| r.tags.len()).sum(),
        manifests: inv.repos.iter().map(|r| r.revisions.len()).sum(),
        blobs: inv.blobs.len(),
        blob_bytes: inv.blobs.iter().map(|b| b.size).sum(),
        hashed_blobs,
        hashed_bytes,
        ..Default::default()
    };

    let bad_links = bad_links(&mut inv);
    checked.links = inv.links.checked;

    let unhashable = if opts.rehash {
        rehash(
            storage,
            &mut inv,
            &manifests,
            &mut corrupt,
            &mut checked,
            progress,
        )
    } else {
        HashMap::new()
    };

    progress.phase("walking repositories");
    let problem_paths: HashSet<String> = inv.problems.iter().map(|p| p.path.clone()).collect();
    let ctx = Ctx {
        inv: &inv,
        manifests: &manifests,
        corrupt: &corrupt,
        unhashable: &unhashable,
        problem_paths: &problem_paths,
    };
    let outcomes: Vec<RepoOutcome> = inv
        .repos
        .par_iter()
        .zip(bad_links.par_iter())
        .map(|(repo, bad)| {
            Walker {
                ctx: &ctx,
                repo,
                revisions: repo.revisions.iter().copied().collect(),
                layers: repo.layers.iter().copied().collect(),
                bad,
                out: RepoOutcome::default(),
                seen: HashMap::new(),
                memo: HashMap::new(),
                in_progress: HashSet::new(),
            }
            .run()
        })
        .collect();

    // Merge the walkers' findings (ripgrep-style: per-thread, merged at the end).
    let mut findings = Vec::new();
    let mut broken: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    let mut unresolved = Vec::new();
    for (ri, o) in outcomes.into_iter().enumerate() {
        let base = findings.len();
        findings.extend(o.findings);
        for (ti, causes) in o.broken {
            broken.push((ri, ti, causes.into_iter().map(|i| i + base).collect()));
        }
        unresolved.extend(o.unresolved.into_iter().map(|ti| (ri, ti)));
    }
    // Corrupt or unreadable blobs that nothing references.
    let mut orphans: Vec<u32> = corrupt
        .keys()
        .chain(unhashable.keys())
        .copied()
        .filter(|id| !reached.contains(*id))
        .collect();
    orphans.sort_unstable();
    orphans.dedup();
    for id in orphans {
        let d = inv.interner.digest(id).to_string();
        let (kind, message) = match corrupt.get(&id) {
            Some(actual) => (
                Kind::DigestMismatch,
                format!(
                    "blob {d}: content hashes to sha256:{}; no manifest references it (garbage: `report` counts it as reclaimable)",
                    hex(actual)
                ),
            ),
            None => (
                Kind::Unreadable,
                format!("blob {d} could not be read: {}", unhashable[&id]),
            ),
        };
        findings.push(Finding {
            kind,
            severity: Severity::Warning,
            repository: None,
            tag: None,
            digest: Some(d),
            path: inv.interner.data_key(id),
            message,
            remedy: remedy(kind),
        });
    }
    // The scan's own problems, except what the walk re-derived.
    let mut rederived: HashSet<String> = findings.iter().map(|f| f.path.clone()).collect();
    for &id in manifests.keys() {
        rederived.insert(inv.interner.data_key(id));
    }
    let scan_base = findings.len();
    findings.extend(scan_findings(&inv.problems, &rederived));
    // Tags whose current link the scan found bad: their causes are those findings.
    for (ri, ti) in unresolved {
        let r = &inv.repos[ri];
        let prefix = format!(
            "repositories/{}/_manifests/tags/{}/current/",
            r.name, r.tags[ti].name
        );
        let causes: Vec<usize> = (scan_base..findings.len())
            .filter(|&i| findings[i].path.starts_with(&prefix))
            .collect();
        broken.push((ri, ti, causes));
    }
    let against = opts.against.is_some();
    if let Some(doc) = &opts.against {
        findings.extend(against_findings(doc, &inv));
    }

    // Final order: errors first, then kind, repository, path; remap causes.
    let mut order: Vec<usize> = (0..findings.len()).collect();
    let kind_name = |k: Kind| {
        serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    order.sort_by(|&a, &b| {
        let (x, y) = (&findings[a], &findings[b]);
        y.severity
            .cmp(&x.severity)
            .then_with(|| kind_name(x.kind).cmp(&kind_name(y.kind)))
            .then_with(|| x.repository.cmp(&y.repository))
            .then_with(|| x.path.cmp(&y.path))
    });
    let mut new_index = vec![0; findings.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut slots: Vec<Option<Finding>> = findings.into_iter().map(Some).collect();
    let findings: Vec<Finding> = order
        .iter()
        .map(|&i| slots[i].take().expect("each once"))
        .collect();
    let mut broken_tags: Vec<BrokenTag> = broken
        .into_iter()
        .map(|(ri, ti, causes)| {
            let r = &inv.repos[ri];
            let t = &r.tags[ti];
            let mut causes: Vec<usize> = causes.into_iter().map(|i| new_index[i]).collect();
            causes.sort_unstable();
            causes.dedup();
            BrokenTag {
                repository: r.name.clone(),
                tag: t.name.clone(),
                digest: t.current.map(|c| inv.interner.digest(c).to_string()),
                causes,
            }
        })
        .collect();
    broken_tags.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
    progress.finish();
    Ok(Verification {
        storage: inv.storage.clone(),
        rehash: opts.rehash,
        against,
        checked,
        findings,
        broken_tags,
    })
}
