//! The walk of one repository: its links whose content is bad, then each
//! tag from its current link (a tag is broken when the link is unusable or
//! anything it reaches has an error finding: those findings are its causes),
//! then every revision. The checks per object kind are in `checks.rs`.

use super::content::ManifestRead;
use super::{locate, remedy, Finding};
use crate::problem::{Kind, Severity};
use crate::scan::{self, Inventory, LinkKind};
use roaring::RoaringBitmap;
use std::collections::{HashMap, HashSet};

/// Per repository: links whose content is bad, by digest id.
#[derive(Debug, Default)]
pub(super) struct BadLinks {
    pub(super) revisions: HashMap<u32, (String, String)>,
    pub(super) layers: HashMap<u32, (String, String)>,
    /// Tag history links: (tag, key, message).
    pub(super) history: Vec<(String, String, String)>,
}

/// The links the scan found not to hold exactly the digest of their path,
/// by repository (taken out of `inv.links`).
pub(super) fn bad_links(inv: &mut Inventory) -> Vec<BadLinks> {
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

/// Everything the walkers share (read-only).
pub(super) struct Ctx<'a> {
    pub(super) inv: &'a Inventory,
    pub(super) manifests: &'a HashMap<u32, ManifestRead>,
    /// Blob id → the sha256 its content actually has.
    pub(super) corrupt: &'a HashMap<u32, [u8; 32]>,
    /// Blob id → why it could not be hashed.
    pub(super) unhashable: &'a HashMap<u32, String>,
    /// Keys of scan problems (to tell whether a tag's link was reported).
    pub(super) problem_paths: &'a HashSet<String>,
}

/// One repository's findings, with indices local to it.
#[derive(Default)]
pub(super) struct RepoOutcome {
    pub(super) findings: Vec<Finding>,
    /// (tag index, local finding indices)
    pub(super) broken: Vec<(usize, Vec<usize>)>,
    /// Tags without a current digest: (tag index): causes resolved by path later.
    pub(super) unresolved: Vec<usize>,
}

/// One repository's walker: what it reaches, memoized per manifest.
pub(super) struct Walker<'a, 'c> {
    pub(super) ctx: &'c Ctx<'a>,
    pub(super) repo: &'a scan::Repository,
    pub(super) revisions: RoaringBitmap,
    pub(super) layers: RoaringBitmap,
    pub(super) bad: &'c BadLinks,
    pub(super) out: RepoOutcome,
    pub(super) seen: HashMap<(Kind, String), usize>,
    pub(super) memo: HashMap<u32, Vec<usize>>,
    pub(super) in_progress: HashSet<u32>,
}

impl<'a, 'c> Walker<'a, 'c> {
    pub(super) fn digest(&self, id: u32) -> String {
        self.ctx.inv.interner.digest(id).to_string()
    }

    pub(super) fn blob_key(&self, id: u32) -> String {
        self.ctx.inv.interner.data_key(id)
    }

    pub(super) fn stored(&self, id: u32) -> Option<u64> {
        self.ctx.inv.blob(id).map(|b| b.size)
    }

    pub(super) fn link_key(&self, sub: &str, id: u32) -> String {
        let d = self.ctx.inv.interner.digest(id);
        let hex = d.sha256_hex().unwrap_or_else(|| d.to_string());
        format!("repositories/{}/{sub}/sha256/{hex}/link", self.repo.name)
    }

    pub(super) fn has_revision(&self, id: u32) -> bool {
        self.revisions.contains(id) && !self.bad.revisions.contains_key(&id)
    }

    pub(super) fn emit(
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

    pub(super) fn run(mut self) -> RepoOutcome {
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
}
