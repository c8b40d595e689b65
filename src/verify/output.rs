//! What `verify` prints: the versioned JSON document ([`VerifyReport`], its
//! own serialization types, documented in the README) and the text report
//! for people (findings grouped by severity and kind, then broken tags).

use super::{Finding, Verification};
use crate::problem::{Kind, Severity};
use crate::report::{counted, human_bytes};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

/// Version of the verify JSON format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// The JSON document written by `verify --format json`.
#[derive(Debug, Serialize)]
pub struct VerifyReport<'a> {
    /// Version of this format.
    pub format_version: u32,
    /// regsweep's version.
    pub tool_version: &'static str,
    /// The storage verified.
    pub storage: &'a str,
    /// When the run ended (RFC 3339, UTC).
    pub generated_at: String,
    /// Whether every blob was hashed (`--rehash`).
    pub rehash: bool,
    /// The inventory compared with (`--against`), when one was.
    pub against: Option<&'a str>,
    /// Totals.
    pub summary: SummaryJson,
    /// Every finding, errors first.
    pub findings: Vec<FindingJson<'a>>,
    /// Tags that cannot be pulled whole, by repository and tag.
    pub broken_tags: Vec<BrokenTagJson<'a>>,
}

/// Totals of a verify run.
#[derive(Debug, Serialize)]
pub struct SummaryJson {
    /// True when no finding is an error (exit status 0).
    pub whole: bool,
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
    /// Link files read and checked against their paths.
    pub links_checked: usize,
    /// Blobs whose sha256 was recomputed (manifests always, all with `--rehash`).
    pub blobs_hashed: usize,
    /// Their bytes.
    pub bytes_hashed: u64,
    /// Seconds the `--rehash` pass took (on a filesystem blobs are hashed as
    /// they are listed: the time of that listing).
    pub rehash_seconds: Option<f64>,
    /// Findings of severity `error`.
    pub errors: usize,
    /// Findings of severity `warning`.
    pub warnings: usize,
    /// Findings of severity `info`.
    pub notes: usize,
    /// Number of broken tags.
    pub broken_tags: usize,
    /// Findings per kind.
    pub by_kind: BTreeMap<String, usize>,
}

/// One finding.
#[derive(Debug, Serialize)]
pub struct FindingJson<'a> {
    /// Kind (stable snake_case name).
    pub kind: Kind,
    /// `error`, `warning` or `info`.
    pub severity: Severity,
    /// Repository involved, absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<&'a str>,
    /// Tag involved, absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<&'a str>,
    /// Digest involved, absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<&'a str>,
    /// Key relative to `docker/registry/v2/`.
    pub path: &'a str,
    /// What is wrong.
    pub message: &'a str,
    /// What to do about it.
    pub remedy: &'a str,
}

/// One broken tag.
#[derive(Debug, Serialize)]
pub struct BrokenTagJson<'a> {
    /// Repository name.
    pub repository: &'a str,
    /// Tag name.
    pub tag: &'a str,
    /// The manifest its current link names, absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<&'a str>,
    /// Why: the findings it reaches (indices into `findings`).
    pub causes: Vec<usize>,
}

fn kind_name(k: Kind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Verification {
    /// The JSON document; `against` names the inventory file, if any.
    pub fn to_json<'a>(&'a self, against: Option<&'a str>, now: SystemTime) -> VerifyReport<'a> {
        let c = &self.checked;
        let mut by_kind = BTreeMap::new();
        for f in &self.findings {
            *by_kind.entry(kind_name(f.kind)).or_insert(0) += 1;
        }
        VerifyReport {
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION"),
            storage: &self.storage,
            generated_at: chrono::DateTime::<chrono::Utc>::from(now)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            rehash: self.rehash,
            against,
            summary: SummaryJson {
                whole: self.is_whole(),
                repositories: c.repositories,
                tags: c.tags,
                manifests: c.manifests,
                blobs: c.blobs,
                blob_bytes: c.blob_bytes,
                links_checked: c.links,
                blobs_hashed: c.hashed_blobs,
                bytes_hashed: c.hashed_bytes,
                rehash_seconds: c.rehash_seconds,
                errors: self.count(Severity::Error),
                warnings: self.count(Severity::Warning),
                notes: self.count(Severity::Info),
                broken_tags: self.broken_tags.len(),
                by_kind,
            },
            findings: self.findings.iter().map(finding_json).collect(),
            broken_tags: self
                .broken_tags
                .iter()
                .map(|b| BrokenTagJson {
                    repository: &b.repository,
                    tag: &b.tag,
                    digest: b.digest.as_deref(),
                    causes: b.causes.clone(),
                })
                .collect(),
        }
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let c = &self.checked;
        let mut o = String::new();
        let _ = writeln!(o, "regsweep verify: {}", self.storage);
        let _ = writeln!(
            o,
            "  checked {} repositories, {} tags, {} manifests, {} links, {} blobs ({})",
            c.repositories,
            c.tags,
            c.manifests,
            c.links,
            c.blobs,
            human_bytes(c.blob_bytes)
        );
        match c.rehash_seconds {
            Some(s) => {
                let rate = if s > 0.0 {
                    format!(", {}/s", human_bytes((c.hashed_bytes as f64 / s) as u64))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    o,
                    "  rehashed {} blobs ({}) in {s:.2} s{rate}",
                    c.hashed_blobs,
                    human_bytes(c.hashed_bytes)
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  hashed {} manifests; layer and config contents not hashed (use --rehash)",
                    c.hashed_blobs
                );
            }
        }
        for (sev, title) in [
            (Severity::Error, "Errors"),
            (Severity::Warning, "Warnings"),
            (Severity::Info, "Notes"),
        ] {
            let group: Vec<&Finding> = self.findings.iter().filter(|f| f.severity == sev).collect();
            if group.is_empty() {
                continue;
            }
            let _ = writeln!(o, "\n{title} ({}):", group.len());
            let mut last_kind = None;
            for f in group {
                if last_kind != Some(f.kind) {
                    last_kind = Some(f.kind);
                    let _ = writeln!(o, "  {}:", kind_name(f.kind));
                }
                let repo = f
                    .repository
                    .as_deref()
                    .map(|r| format!("[{r}] "))
                    .unwrap_or_default();
                let _ = writeln!(o, "    {repo}{}", f.message);
                let _ = writeln!(o, "      at {}", f.path);
                let _ = writeln!(o, "      fix: {}", f.remedy);
            }
        }
        if !self.broken_tags.is_empty() {
            let _ = writeln!(o, "\nBroken tags ({}):", self.broken_tags.len());
            for b in &self.broken_tags {
                let why: Vec<String> = b
                    .causes
                    .iter()
                    .map(|&i| {
                        let f = &self.findings[i];
                        match &f.digest {
                            Some(d) => format!("{} {d}", kind_name(f.kind)),
                            None => kind_name(f.kind),
                        }
                    })
                    .collect();
                let _ = writeln!(o, "  {}:{}  ({})", b.repository, b.tag, why.join(", "));
            }
        }
        let (e, w, n) = (
            self.count(Severity::Error),
            self.count(Severity::Warning),
            self.count(Severity::Info),
        );
        if self.is_whole() {
            let _ = writeln!(
                o,
                "\nWhole: no errors ({}, {}).",
                counted(w, "warning", "warnings"),
                counted(n, "note", "notes")
            );
        } else {
            let _ = writeln!(
                o,
                "\nNOT WHOLE: {}, {}, {}; {}.",
                counted(e, "error", "errors"),
                counted(w, "warning", "warnings"),
                counted(n, "note", "notes"),
                counted(self.broken_tags.len(), "broken tag", "broken tags")
            );
        }
        o
    }
}

fn finding_json(f: &Finding) -> FindingJson<'_> {
    FindingJson {
        kind: f.kind,
        severity: f.severity,
        repository: f.repository.as_deref(),
        tag: f.tag.as_deref(),
        digest: f.digest.as_deref(),
        path: &f.path,
        message: &f.message,
        remedy: f.remedy,
    }
}
