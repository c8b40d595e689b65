//! The walker's checks per object kind: a manifest (its blob, content and
//! references), the blobs it references (stored, linked in the repository,
//! of the declared size and content, or reached through a digest alias),
//! an index's children and a referrer's subject.

use super::content::Refs;
use super::walker::Walker;
use crate::digest::hex;
use crate::problem::{Kind, Severity};
use crate::scan;

/// How many indexes deep the walk follows children (it recurses: a chain of
/// thousands of nested indexes overflowed the stack). Real images nest two
/// or three.
const MAX_INDEX_DEPTH: usize = 128;

impl<'a, 'c> Walker<'a, 'c> {
    /// Checks a manifest and everything it reaches; returns the local
    /// indices of the findings it reaches.
    pub(super) fn manifest(&mut self, m: u32) -> Vec<usize> {
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

    pub(super) fn references(&mut self, m: u32, refs: &Refs, causes: &mut Vec<usize>) {
        let d = self.digest(m);
        for &(b, size, foreign) in &refs.blobs {
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

    /// A blob referenced by a digest of another algorithm (`sha512:…`):
    /// the registry serves it in this repository through the alias link
    /// `_layers/<alg>/<hex>/link`, which names the sha256 blob it is stored
    /// as (no `_layers/sha256` link is needed then).
    pub(super) fn alias_reference(
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

    /// Size against the descriptor, and what hashing found.
    pub(super) fn blob_content(
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
