//! `verify`: is this storage whole? A read-only audit of every repository
//! and tag, for disaster-recovery checks after a restore.
//!
//! Stages: a deep [`scan`](crate::scan) that lists every file, reads and
//! checks every revision, `_layers` and tag history link against its path
//! ([`ScanOptions::check_links`]) and, with `--rehash`, hashes blobs as it
//! lists them where the backend can ([`ScanOptions::hash_blobs`]: a
//! filesystem does, relative to the open blob directory) → the manifests
//! that the [`graph`](crate::graph) of `report` reads (their problems are
//! findings too), each hashed and kept with its descriptors' sizes as it is
//! read ([`graph::read_each`](crate::graph::read_each)) → with `--rehash`,
//! every blob not hashed yet is hashed
//! ([`Storage::sha256_many`]) → each repository is walked from its tags and
//! revision links (in parallel, one walker per repository, merged at the
//! end) → optionally the storage is compared with an
//! [`inventory`](crate::inventory).
//!
//! Every finding is typed ([`Finding`]: kind, severity, repository, tag,
//! digest, path, message, remedy). A tag is *broken* when its current link
//! is unusable or anything it reaches has an error finding.

pub mod output;

use crate::digest::{hex, Digest, Interner};
use crate::graph::{GraphOptions, Seen};
use crate::inventory::{self, Difference, InventoryDoc};
use crate::manifest::{self, ParseError};
use crate::problem::{Kind, Problem, Severity};
use crate::progress::Progress;
use crate::scan::{self, Inventory, LinkKind, ScanOptions};
use crate::storage::{blob_data_key, Storage, StorageError};
use rayon::prelude::*;
use roaring::RoaringBitmap;
use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime};

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

/// What to do about a finding of this kind.
pub fn remedy(kind: Kind) -> &'static str {
    match kind {
        Kind::MissingBlob => "restore the blob from a backup, or re-push the image that contains it (a push uploads the blobs the registry lacks)",
        Kind::MissingLayerLink => "re-push the image to this repository (or mount the blob from another repository), which recreates the link; or restore the link from a backup",
        Kind::SizeMismatch => "the blob is damaged or the manifest is wrong: restore the blob from a backup, or delete its data and re-push the image",
        Kind::DigestMismatch => "the content is corrupt: restore it from a backup, or delete its data and re-push the image (a push skips blobs the registry says it has)",
        Kind::MissingManifestBlob => "restore the manifest blob from a backup or re-push the image; otherwise delete the revision link or tag that names it",
        Kind::DanglingTag => "re-push the tag, restore the manifest's revision link from a backup, or delete the tag",
        Kind::MissingIndexChild => "re-push the whole multi-platform image (e.g. skopeo copy --all) or restore the child's revision link (registry garbage-collect -m of distribution 2.8 deletes them)",
        Kind::DanglingReferrer => "delete the referrer (signature, SBOM, attestation) or restore its subject; report --delete-untagged treats an untagged dangling referrer as garbage",
        Kind::BadLink => "rewrite the link to hold exactly the digest of its path (sha256:<hex>, no newline), or restore it from a backup",
        Kind::UnparseableManifest | Kind::UnknownMediaType => "restore the manifest blob from a backup, or re-push the image",
        Kind::ManifestTooLarge => "inspect the manifest; raise --max-manifest-size if it is legitimately large",
        Kind::Unreadable => "fix the permission or I/O error, then verify again",
        Kind::Symlink => "replace the symlink by what it points to (the registry follows it; regsweep does not)",
        Kind::BadDigestDirectory | Kind::NonSha256Digest | Kind::UnexpectedEntry => "move the entry out of the storage; the registry ignores it",
        Kind::StrayTempFile => "remove it once no registry is writing (an interrupted write left it)",
        Kind::NotARepository => "restore the repository's _manifests from a backup, or remove the directory",
        Kind::InvalidName => "rename or remove it; the registry cannot serve it",
        Kind::UploadWithoutStartedAt => "remove the upload directory once no push is in flight",
        Kind::UnresolvedDigest => "restore the repository's _layers/<alg>/<hex>/link from a backup (it holds the sha256 digest the blob is stored as), or re-push the image",
        Kind::IndexTooDeep => "inspect the index chain; no client pulls an image nested this deep",
        Kind::NoRepositories => "check that the storage root is the registry's (and that repositories/ was restored); if every repository was really deleted, sweep with --ignore-problems",
        Kind::InventoryTagMissing => "restore the tag (and its repository) from the backup, or re-push it",
        Kind::InventoryTagChanged => "if the tag was not re-pushed since the inventory, restore its current link from the backup",
        Kind::InventoryManifestMissing => "restore the manifest's revision link from the backup, or re-push it",
        Kind::InventoryBlobMissing | Kind::InventoryBlobSizeChanged => "restore the blob from the backup",
        Kind::InventoryExtra => "nothing, if the storage was written to after the inventory was taken",
    }
}

/// Repository, tag and digest named by a key, as far as its shape says.
pub fn locate(path: &str) -> (Option<String>, Option<String>, Option<String>) {
    let digest_in = |rest: &str| -> Option<String> {
        let mut parts = rest.split('/');
        while let Some(p) = parts.next() {
            if p == "sha256" {
                return parts
                    .next()
                    .and_then(Digest::from_sha256_hex)
                    .map(|d| d.to_string());
            }
        }
        None
    };
    if let Some(rest) = path.strip_prefix("blobs/sha256/") {
        let hex = rest.split('/').nth(1);
        return (
            None,
            None,
            hex.and_then(Digest::from_sha256_hex).map(|d| d.to_string()),
        );
    }
    let Some(rest) = path.strip_prefix("repositories/") else {
        return (None, None, None);
    };
    for marker in ["/_manifests/", "/_layers/", "/_uploads/"] {
        if let Some(i) = rest.find(marker) {
            let repo = Some(rest[..i].to_string());
            let tail = &rest[i + marker.len()..];
            if marker == "/_uploads/" {
                return (repo, None, None);
            }
            if let Some(t) = tail.strip_prefix("tags/") {
                let (tag, after) = t.split_once('/').unwrap_or((t, ""));
                return (repo, Some(tag.to_string()), digest_in(after));
            }
            return (repo, None, digest_in(tail));
        }
    }
    (
        Some(rest.trim_end_matches('/').to_string()).filter(|r| !r.is_empty()),
        None,
        None,
    )
}

/// A manifest as the walk needs it: references with descriptor sizes.
#[derive(Debug, Default)]
struct Refs {
    /// (id, declared size, foreign)
    blobs: Vec<(u32, Option<i64>, bool)>,
    /// (id, declared size)
    children: Vec<(u32, Option<i64>)>,
    subject: Option<u32>,
}

/// What reading one manifest blob gave.
#[derive(Debug, Default)]
struct ManifestRead {
    refs: Option<Refs>,
    /// Why it cannot be used: (kind, message).
    fault: Option<(Kind, String)>,
}

/// Per repository: links whose content is bad, by digest id.
#[derive(Debug, Default)]
struct BadLinks {
    revisions: HashMap<u32, (String, String)>,
    layers: HashMap<u32, (String, String)>,
    /// Tag history links: (tag, key, message).
    history: Vec<(String, String, String)>,
}

/// Everything the walkers share (read-only).
struct Ctx<'a> {
    inv: &'a Inventory,
    manifests: &'a HashMap<u32, ManifestRead>,
    /// Blob id → the sha256 its content actually has.
    corrupt: &'a HashMap<u32, [u8; 32]>,
    /// Blob id → why it could not be hashed.
    unhashable: &'a HashMap<u32, String>,
    /// Keys of scan problems (to tell whether a tag's link was reported).
    problem_paths: &'a HashSet<String>,
}

/// One repository's findings, with indices local to it.
#[derive(Default)]
struct RepoOutcome {
    findings: Vec<Finding>,
    /// (tag index, local finding indices)
    broken: Vec<(usize, Vec<usize>)>,
    /// Tags without a current digest: (tag index): causes resolved by path later.
    unresolved: Vec<usize>,
    /// Every digest id the walk reached (manifests and blobs).
    reached: RoaringBitmap,
}

/// How many indexes deep the walk follows children (it recurses: a chain of
/// thousands of nested indexes overflowed the stack). Real images nest two
/// or three.
const MAX_INDEX_DEPTH: usize = 128;

struct Walker<'a, 'c> {
    ctx: &'c Ctx<'a>,
    repo: &'a scan::Repository,
    revisions: RoaringBitmap,
    layers: RoaringBitmap,
    bad: &'c BadLinks,
    out: RepoOutcome,
    seen: HashMap<(Kind, String), usize>,
    memo: HashMap<u32, Vec<usize>>,
    in_progress: HashSet<u32>,
}

impl<'a, 'c> Walker<'a, 'c> {
    fn digest(&self, id: u32) -> String {
        self.ctx.inv.interner.digest(id).to_string()
    }

    fn blob_key(&self, id: u32) -> String {
        self.ctx.inv.interner.data_key(id)
    }

    fn stored(&self, id: u32) -> Option<u64> {
        self.ctx.inv.blob(id).map(|b| b.size)
    }

    fn link_key(&self, sub: &str, id: u32) -> String {
        let d = self.ctx.inv.interner.digest(id);
        let hex = d.sha256_hex().unwrap_or_else(|| d.to_string());
        format!("repositories/{}/{sub}/sha256/{hex}/link", self.repo.name)
    }

    /// A blob referenced by a digest of another algorithm (`sha512:…`):
    /// the registry serves it in this repository through the alias link
    /// `_layers/<alg>/<hex>/link`, which names the sha256 blob it is stored
    /// as (no `_layers/sha256` link is needed then).
    fn alias_reference(
        &mut self,
        m: u32,
        alias: u32,
        size: Option<i64>,
        foreign: bool,
        causes: &mut Vec<usize>,
    ) {
        let d = self.digest(m);
        let ad = self.digest(alias);
        let targets: Vec<u32> = self.repo.alias_targets(alias).collect();
        if targets.is_empty() {
            if foreign {
                return; // a foreign layer lives at its urls
            }
            let dir = scan::layer_link_dir(&self.repo.name, &self.ctx.inv.interner.digest(alias));
            let key = format!("{dir}link");
            causes.push(self.emit(
                Kind::MissingLayerLink,
                Severity::Error,
                None,
                Some(alias),
                key,
                format!(
                    "blob {ad}, referenced by manifest {d}, has no usable alias link in {} (one that names the sha256 blob it is stored as): the registry answers \"blob unknown\"",
                    self.repo.name
                ),
            ));
            return;
        }
        for c in targets {
            self.out.reached.insert(c);
            let cd = self.digest(c);
            match self.stored(c) {
                Some(stored) => {
                    self.blob_content(c, stored, size, &format!("manifest {d} (as {ad})"), causes)
                }
                None => {
                    let key = self.blob_key(c);
                    causes.push(self.emit(
                        Kind::MissingBlob,
                        Severity::Error,
                        None,
                        Some(c),
                        key,
                        format!("blob {cd} (referenced by manifest {d} as {ad}) is not stored"),
                    ));
                }
            }
        }
    }

    fn has_revision(&self, id: u32) -> bool {
        self.revisions.contains(id) && !self.bad.revisions.contains_key(&id)
    }

    fn emit(
        &mut self,
        kind: Kind,
        severity: Severity,
        tag: Option<&str>,
        digest: Option<u32>,
        path: String,
        message: String,
    ) -> usize {
        if let Some(&i) = self.seen.get(&(kind, path.clone())) {
            return i;
        }
        let i = self.out.findings.len();
        self.seen.insert((kind, path.clone()), i);
        self.out.findings.push(Finding {
            kind,
            severity,
            repository: Some(self.repo.name.clone()),
            tag: tag.map(str::to_string),
            digest: digest.map(|d| self.digest(d)),
            path,
            message,
            remedy: remedy(kind),
        });
        i
    }

    fn run(mut self) -> RepoOutcome {
        // Links whose content is bad: reported first, causes of what needs them.
        let mut bad_rev: Vec<_> = self
            .bad
            .revisions
            .iter()
            .map(|(&id, v)| (id, v.clone()))
            .collect();
        bad_rev.sort();
        for (id, (key, msg)) in bad_rev {
            self.emit(Kind::BadLink, Severity::Error, None, Some(id), key, msg);
        }
        let mut bad_layers: Vec<_> = self
            .bad
            .layers
            .iter()
            .map(|(&id, v)| (id, v.clone()))
            .collect();
        bad_layers.sort();
        for (id, (key, msg)) in bad_layers {
            self.emit(Kind::BadLink, Severity::Error, None, Some(id), key, msg);
        }
        for (tag, key, msg) in self.bad.history.clone() {
            let i = self.emit(Kind::BadLink, Severity::Warning, Some(&tag), None, key, msg);
            self.out.findings[i].digest = locate(&self.out.findings[i].path).2;
        }
        let repo = self.repo;
        for (ti, tag) in repo.tags.iter().enumerate() {
            let tag_key = format!(
                "repositories/{}/_manifests/tags/{}/current/link",
                repo.name, tag.name
            );
            let Some(m) = tag.current else {
                if !self.ctx.problem_paths.contains(&tag_key) {
                    let i = self.emit(
                        Kind::DanglingTag,
                        Severity::Error,
                        Some(&tag.name),
                        None,
                        tag_key,
                        format!("tag {:?} has no current link: the registry lists it but cannot resolve it", tag.name),
                    );
                    self.out.broken.push((ti, vec![i]));
                } else {
                    self.out.unresolved.push(ti);
                }
                continue;
            };
            let mut causes = Vec::new();
            let stored = self.stored(m).is_some();
            if !self.has_revision(m) {
                let why = if self.revisions.contains(m) {
                    "whose revision link is bad"
                } else {
                    "which has no revision link in the repository"
                };
                let blob = if stored {
                    ""
                } else {
                    " (and whose blob is missing)"
                };
                let d = self.digest(m);
                causes.push(self.emit(
                    Kind::DanglingTag,
                    Severity::Error,
                    Some(&tag.name),
                    Some(m),
                    tag_key,
                    format!(
                        "tag {:?} names manifest {d}, {why}{blob}: pulling it fails with \"manifest unknown\"",
                        tag.name
                    ),
                ));
            }
            if stored || self.has_revision(m) {
                causes.extend(self.manifest(m));
            }
            causes.sort_unstable();
            causes.dedup();
            causes.retain(|&i| self.out.findings[i].severity == Severity::Error);
            if !causes.is_empty() {
                self.out.broken.push((ti, causes));
            }
        }
        for &r in &repo.revisions {
            self.manifest(r);
        }
        self.out
    }

    /// Checks a manifest and everything it reaches; returns the local
    /// indices of the findings it reaches.
    fn manifest(&mut self, m: u32) -> Vec<usize> {
        if let Some(c) = self.memo.get(&m) {
            return c.clone();
        }
        if self.in_progress.len() >= MAX_INDEX_DEPTH {
            let d = self.digest(m);
            let key = self.blob_key(m);
            return vec![self.emit(
                Kind::IndexTooDeep,
                Severity::Error,
                None,
                Some(m),
                key,
                format!(
                    "manifest {d} is nested more than {MAX_INDEX_DEPTH} indexes deep; not checked further"
                ),
            )];
        }
        if !self.in_progress.insert(m) {
            return Vec::new();
        }
        self.out.reached.insert(m);
        let ctx = self.ctx;
        let mut causes = Vec::new();
        let key = self.blob_key(m);
        let d = self.digest(m);
        if self.stored(m).is_none() {
            causes.push(self.emit(
                Kind::MissingManifestBlob,
                Severity::Error,
                None,
                Some(m),
                key,
                format!("manifest {d} is linked in the repository but its blob is missing"),
            ));
        } else if let Some(read) = ctx.manifests.get(&m) {
            // One finding per manifest: why it cannot be used, else a digest mismatch.
            let mismatch = ctx
                .corrupt
                .get(&m)
                .map(|actual| format!("content hashes to sha256:{}", hex(actual)));
            if let Some((kind, msg)) = &read.fault {
                let also = mismatch.map(|x| format!("; its {x}")).unwrap_or_default();
                causes.push(self.emit(
                    *kind,
                    Severity::Error,
                    None,
                    Some(m),
                    key.clone(),
                    format!("manifest {d}: {msg}{also}"),
                ));
            } else if let Some(x) = mismatch {
                causes.push(self.emit(
                    Kind::DigestMismatch,
                    Severity::Error,
                    None,
                    Some(m),
                    key.clone(),
                    format!("manifest {d}: {x} (it still parses); clients refuse it"),
                ));
            }
            if let Some(refs) = &read.refs {
                self.references(m, refs, &mut causes);
            }
        }
        causes.sort_unstable();
        causes.dedup();
        causes.retain(|&i| self.out.findings[i].severity == Severity::Error);
        self.in_progress.remove(&m);
        self.memo.insert(m, causes.clone());
        causes
    }

    fn references(&mut self, m: u32, refs: &Refs, causes: &mut Vec<usize>) {
        let d = self.digest(m);
        for &(b, size, foreign) in &refs.blobs {
            self.out.reached.insert(b);
            let bd = self.digest(b);
            if self.ctx.inv.interner.sha256(b).is_none() {
                self.alias_reference(m, b, size, foreign, causes);
                continue;
            }
            let Some(stored) = self.stored(b) else {
                if foreign {
                    continue; // a foreign layer lives at its urls
                }
                let key = self.blob_key(b);
                causes.push(self.emit(
                    Kind::MissingBlob,
                    Severity::Error,
                    None,
                    Some(b),
                    key,
                    format!("blob {bd}, referenced by manifest {d}, is not stored"),
                ));
                continue;
            };
            if !self.layers.contains(b) {
                let key = self.link_key("_layers", b);
                causes.push(self.emit(
                    Kind::MissingLayerLink,
                    Severity::Error,
                    None,
                    Some(b),
                    key,
                    format!(
                        "blob {bd}, referenced by manifest {d}, has no _layers link in {}: the registry answers \"blob unknown\"",
                        self.repo.name
                    ),
                ));
            } else if let Some((key, _)) = self.bad.layers.get(&b) {
                let key = key.clone();
                if let Some(&i) = self.seen.get(&(Kind::BadLink, key)) {
                    causes.push(i);
                }
            }
            self.blob_content(b, stored, size, &format!("manifest {d}"), causes);
        }
        for &(c, size) in &refs.children {
            self.out.reached.insert(c);
            let cd = self.digest(c);
            let stored = self.stored(c);
            if !self.has_revision(c) {
                let key = self.link_key("_manifests/revisions", c);
                let blob = if stored.is_some() {
                    ""
                } else {
                    " (and its blob is missing)"
                };
                causes.push(self.emit(
                    Kind::MissingIndexChild,
                    Severity::Error,
                    None,
                    Some(c),
                    key,
                    format!(
                        "index {d} lists manifest {cd}, which has no usable revision link in {}{blob}: pulling the index fails with \"manifest unknown\"",
                        self.repo.name
                    ),
                ));
            }
            if let Some(stored) = stored {
                self.blob_content(c, stored, size, &format!("index {d}"), causes);
                causes.extend(self.manifest(c));
            } else if self.has_revision(c) {
                causes.extend(self.manifest(c));
            }
        }
        if let Some(s) = refs.subject {
            if !self.has_revision(s) || self.stored(s).is_none() {
                let key = self.link_key("_manifests/revisions", m);
                let sd = self.digest(s);
                self.emit(
                    Kind::DanglingReferrer,
                    Severity::Warning,
                    None,
                    Some(m),
                    key,
                    format!(
                        "manifest {d} is a referrer of {sd}, which is not in {}",
                        self.repo.name
                    ),
                );
            }
        }
    }

    /// Size against the descriptor, and what hashing found.
    fn blob_content(
        &mut self,
        b: u32,
        stored: u64,
        declared: Option<i64>,
        by: &str,
        causes: &mut Vec<usize>,
    ) {
        let bd = self.digest(b);
        let key = self.blob_key(b);
        if let Some(want) = declared {
            if want != stored as i64 {
                causes.push(self.emit(
                    Kind::SizeMismatch,
                    Severity::Error,
                    None,
                    Some(b),
                    key.clone(),
                    format!("blob {bd} is {stored} bytes in storage; {by} says {want}"),
                ));
            }
        }
        // Manifests' own content is checked by `manifest`.
        if self.ctx.manifests.contains_key(&b) {
            return;
        }
        if let Some(actual) = self.ctx.corrupt.get(&b) {
            causes.push(self.emit(
                Kind::DigestMismatch,
                Severity::Error,
                None,
                Some(b),
                key,
                format!(
                    "blob {bd} (used by {by}): content hashes to sha256:{}",
                    hex(actual)
                ),
            ));
        } else if let Some(msg) = self.ctx.unhashable.get(&b) {
            causes.push(self.emit(
                Kind::Unreadable,
                Severity::Error,
                None,
                Some(b),
                key,
                format!("blob {bd} (used by {by}) could not be read: {msg}"),
            ));
        }
    }
}

/// The links the scan found not to hold exactly the digest of their path,
/// by repository (taken out of `inv.links`).
fn bad_links(inv: &mut Inventory) -> Vec<BadLinks> {
    let mut out: Vec<BadLinks> = inv.repos.iter().map(|_| BadLinks::default()).collect();
    for f in std::mem::take(&mut inv.links.faults) {
        let b = &mut out[f.repo];
        let msg = f.message;
        match f.kind {
            LinkKind::Revision => {
                b.revisions.insert(
                    f.id,
                    (
                        f.key,
                        format!("revision link: {msg}; the registry cannot serve this manifest"),
                    ),
                );
            }
            LinkKind::Layer => {
                b.layers.insert(
                    f.id,
                    (
                        f.key,
                        format!("layer link: {msg}; the registry cannot serve this blob here"),
                    ),
                );
            }
            LinkKind::History(tag) => {
                let msg = format!("tag {tag:?} history link: {msg}");
                b.history.push((tag, f.key, msg));
            }
        }
    }
    out
}

/// What verify keeps of a manifest the graph read: its references with
/// their declared sizes, or why it cannot be used (also when it could not
/// be read: too large, unreadable); and the bytes hashed, when it was read.
/// A content that does not hash to its digest goes into `corrupt`.
fn check_manifest(
    interner: &mut Interner,
    id: u32,
    seen: Seen<'_>,
    corrupt: &mut HashMap<u32, [u8; 32]>,
) -> (ManifestRead, Option<u64>) {
    let (read, bytes) = match seen {
        Seen::Parsed { bytes, manifest } => (
            ManifestRead {
                refs: Some(to_refs(interner, manifest)),
                fault: None,
            },
            bytes,
        ),
        Seen::Unparsed { bytes, error } => {
            let kind = match error {
                ParseError::UnknownMediaType(_) => Kind::UnknownMediaType,
                _ => Kind::UnparseableManifest,
            };
            let read = ManifestRead {
                refs: None,
                fault: Some((kind, error.to_string())),
            };
            (read, bytes)
        }
        Seen::Failed(e) => {
            let kind = match e {
                StorageError::TooLarge { .. } => Kind::ManifestTooLarge,
                StorageError::Symlink { .. } => Kind::Symlink,
                _ => Kind::Unreadable,
            };
            let read = ManifestRead {
                refs: None,
                fault: Some((kind, format!("could not be read: {e}"))),
            };
            return (read, None);
        }
    };
    let h = crate::storage::hash::sha256_bytes(bytes);
    if let Digest::Sha256(want) = interner.digest(id) {
        if want != h.sha256 {
            corrupt.insert(id, h.sha256);
        }
    }
    (read, Some(h.size))
}

fn to_refs(interner: &mut Interner, m: &manifest::Manifest) -> Refs {
    Refs {
        blobs: m
            .blobs
            .iter()
            .map(|r| (interner.intern(&r.digest), r.size, r.foreign))
            .collect(),
        children: m
            .children
            .iter()
            .map(|r| (interner.intern(&r.digest), r.size))
            .collect(),
        subject: m.subject.as_ref().map(|r| interner.intern(&r.digest)),
    }
}

/// Hashes every stored blob that is not a manifest (those are hashed by
/// [`check_manifest`]); takes what the scan hashed while listing, hashes the
/// rest. Returns the unreadable ones.
fn rehash(
    storage: &dyn Storage,
    inv: &mut Inventory,
    skip: &HashMap<u32, ManifestRead>,
    corrupt: &mut HashMap<u32, [u8; 32]>,
    checked: &mut Checked,
    progress: &Progress,
) -> HashMap<u32, String> {
    let listed = std::mem::take(&mut inv.hashes);
    let mut unreadable = HashMap::new();
    let mut todo: Vec<(u32, u64)> = Vec::new();
    for b in &inv.blobs {
        if skip.contains_key(&b.id) {
            continue;
        }
        if !listed.done.contains(b.id) {
            todo.push((b.id, b.size));
        } else if let Some(why) = listed.failed.get(&b.id) {
            unreadable.insert(b.id, why.clone());
        } else {
            checked.hashed_blobs += 1;
            checked.hashed_bytes += listed.bytes.get(b.id as usize).copied().unwrap_or(0);
            if let Some(actual) = listed.mismatched.get(&b.id) {
                corrupt.insert(b.id, *actual);
            }
        }
    }
    // Largest first, so that one huge blob does not finish last alone.
    todo.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    progress.start("hashing blobs (bytes)", todo.iter().map(|t| t.1).sum());
    let start = Instant::now();
    for chunk in todo.chunks(HASH_CHUNK) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|&(id, _)| inv.interner.data_key(id))
            .collect();
        let results = storage.sha256_many(&keys, &|n| progress.inc(n));
        for (&(id, _), res) in chunk.iter().zip(results) {
            match res {
                Ok(h) => {
                    checked.hashed_blobs += 1;
                    checked.hashed_bytes += h.size;
                    if let Digest::Sha256(want) = inv.interner.digest(id) {
                        if want != h.sha256 {
                            corrupt.insert(id, h.sha256);
                        }
                    }
                }
                Err(e) => {
                    unreadable.insert(id, e.to_string());
                }
            }
        }
    }
    checked.rehash_seconds = Some(listed.seconds + start.elapsed().as_secs_f64());
    progress.finish();
    unreadable
}

/// Blobs hashed per concurrent batch by [`rehash`] (bounds the keys held).
const HASH_CHUNK: usize = 8192;

/// Scan problems that verify does not re-derive, as findings.
fn scan_findings(problems: &[Problem], rederived: &HashSet<String>) -> Vec<Finding> {
    problems
        .iter()
        .filter(|p| {
            let manifest_content = matches!(
                p.kind,
                Kind::MissingManifestBlob
                    | Kind::UnparseableManifest
                    | Kind::UnknownMediaType
                    | Kind::ManifestTooLarge
            );
            let link_or_read = matches!(p.kind, Kind::BadLink | Kind::Unreadable);
            let rederived_here = link_or_read && rederived.contains(&p.path);
            !(manifest_content || rederived_here)
        })
        .map(|p| {
            let (repository, tag, digest) = locate(&p.path);
            Finding {
                kind: p.kind,
                severity: p.severity,
                repository,
                tag,
                digest,
                path: p.path.clone(),
                message: p.message.clone(),
                remedy: remedy(p.kind),
            }
        })
        .collect()
}

/// Differences from an inventory, as findings.
fn against_findings(expected: &InventoryDoc, inv: &Inventory) -> Vec<Finding> {
    let actual = inventory::record(inv, SystemTime::now());
    let blob_key = |d: &str| {
        Digest::parse(d)
            .ok()
            .and_then(|d| d.sha256_hex())
            .map_or_else(|| d.to_string(), |h| blob_data_key(&h))
    };
    let rev_key = |r: &str, d: &str| {
        let hex = d.strip_prefix("sha256:").unwrap_or(d);
        format!("repositories/{r}/_manifests/revisions/sha256/{hex}/link")
    };
    let tag_key = |r: &str, t: &str| format!("repositories/{r}/_manifests/tags/{t}/current/link");
    let f = |kind,
             severity,
             repository: Option<&str>,
             tag: Option<&str>,
             digest: Option<&str>,
             path: String,
             message: String| Finding {
        kind,
        severity,
        repository: repository.map(str::to_string),
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
        path,
        message,
        remedy: remedy(kind),
    };
    inventory::compare(expected, &actual)
        .into_iter()
        .map(|d| match d {
            Difference::TagMissing {
                repository,
                tag,
                digest,
                repository_missing,
            } => f(
                Kind::InventoryTagMissing,
                Severity::Error,
                Some(&repository),
                Some(&tag),
                Some(&digest),
                tag_key(&repository, &tag),
                format!(
                    "tag {repository}:{tag} (was {digest}) is missing{}",
                    if repository_missing {
                        "; the whole repository is gone"
                    } else {
                        ""
                    }
                ),
            ),
            Difference::TagChanged {
                repository,
                tag,
                was,
                now,
            } => f(
                Kind::InventoryTagChanged,
                Severity::Error,
                Some(&repository),
                Some(&tag),
                Some(&was),
                tag_key(&repository, &tag),
                format!("tag {repository}:{tag} was {was}, now names {now}"),
            ),
            Difference::ManifestMissing { repository, digest } => f(
                Kind::InventoryManifestMissing,
                Severity::Error,
                Some(&repository),
                None,
                Some(&digest),
                rev_key(&repository, &digest),
                format!("manifest {digest} is no longer linked in {repository}"),
            ),
            Difference::BlobMissing { digest, size } => f(
                Kind::InventoryBlobMissing,
                Severity::Error,
                None,
                None,
                Some(&digest),
                blob_key(&digest),
                format!("blob {digest} ({size} bytes) is missing"),
            ),
            Difference::BlobSizeChanged { digest, was, now } => f(
                Kind::InventoryBlobSizeChanged,
                Severity::Error,
                None,
                None,
                Some(&digest),
                blob_key(&digest),
                format!("blob {digest} was {was} bytes, is {now}"),
            ),
            Difference::Extra {
                repository,
                tag,
                digest,
            } => {
                let (path, what) = match (&repository, &tag, &digest) {
                    (Some(r), Some(t), _) => (tag_key(r, t), format!("tag {r}:{t}")),
                    (Some(r), None, Some(d)) => (rev_key(r, d), format!("manifest {d} in {r}")),
                    (Some(r), None, None) => {
                        (format!("repositories/{r}/"), format!("repository {r}"))
                    }
                    (None, _, Some(d)) => (blob_key(d), format!("blob {d}")),
                    (None, _, None) => (String::new(), "an object".to_string()),
                };
                f(
                    Kind::InventoryExtra,
                    Severity::Info,
                    repository.as_deref(),
                    tag.as_deref(),
                    digest.as_deref(),
                    path,
                    format!("{what} is not in the inventory"),
                )
            }
        })
        .collect()
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
    crate::graph::read_each(
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
    let mut reached = RoaringBitmap::new();
    for (ri, o) in outcomes.into_iter().enumerate() {
        let base = findings.len();
        findings.extend(o.findings);
        for (ti, causes) in o.broken {
            broken.push((ri, ti, causes.into_iter().map(|i| i + base).collect()));
        }
        unresolved.extend(o.unresolved.into_iter().map(|ti| (ri, ti)));
        reached |= o.reached;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_reads_repository_tag_and_digest_from_keys() {
        let h = "a".repeat(64);
        assert_eq!(
            locate(&format!("blobs/sha256/aa/{h}/data")),
            (None, None, Some(format!("sha256:{h}")))
        );
        assert_eq!(
            locate(&format!("repositories/team-a/svc/_layers/sha256/{h}/link")),
            (Some("team-a/svc".into()), None, Some(format!("sha256:{h}")))
        );
        assert_eq!(
            locate("repositories/a/b/_manifests/tags/v1/current/link"),
            (Some("a/b".into()), Some("v1".into()), None)
        );
        assert_eq!(
            locate("repositories/x/_uploads/u/startedat"),
            (Some("x".into()), None, None)
        );
        assert_eq!(locate("repositories/x/"), (Some("x".into()), None, None));
        assert_eq!(locate("elsewhere"), (None, None, None));
    }
}
