//! Retention policies in the formats operators already have — an ECR
//! lifecycle policy, Harbor tag retention rules, a zot `retention` block, a
//! GitLab cleanup policy, an `acr purge` command line — each evaluated with
//! its own semantics (see `docs/retention.md`), not translated into
//! regsweep's rules.
//!
//! A format decides the *plain* tags and untagged manifests of a
//! repository ([`Plain`]); what every format shares stays in
//! [`crate::policy::evaluate()`]: signatures and referrers follow their
//! subject, untagged manifests that an index or a live subject needs, of
//! unknown push time or within the grace period are never offered, and
//! images in use (`--keep-refs`) stay.

pub mod acr;
pub mod ecr;
pub mod gitlab;
pub mod harbor;
mod load;
pub mod zot;

pub use load::{detect, load, Format};

use super::{ManifestView, Reason, TagView};
use std::collections::HashMap;
use std::time::SystemTime;

/// A policy in a vendor's format.
#[derive(Debug, Clone)]
pub enum Vendor {
    /// An ECR lifecycle policy.
    Ecr(ecr::Lifecycle),
    /// Harbor tag retention rules.
    Harbor(harbor::Retention),
    /// zot's `storage.retention`.
    Zot(zot::Retention),
    /// A GitLab cleanup policy.
    Gitlab(gitlab::Cleanup),
    /// An `acr purge` command line.
    Acr(acr::Purge),
}

/// What a format sees of one repository.
pub struct Plain<'a> {
    /// Repository name.
    pub repo: &'a str,
    /// Its tags, signatures and referrer tags left out.
    pub tags: &'a [&'a TagView],
    /// Untagged manifests the format may remove (no subject, not needed by
    /// anything live, pushed before the grace period).
    pub untagged: &'a [&'a ManifestView],
    /// Every manifest of the repository by digest.
    pub manifests: &'a HashMap<&'a str, &'a ManifestView>,
}

/// A format's verdicts, one per tag and per untagged manifest of a
/// [`Plain`], in its order.
#[derive(Debug, Default)]
pub struct Said {
    /// Per tag.
    pub tags: Vec<Reason>,
    /// Per untagged manifest.
    pub untagged: Vec<Reason>,
}

/// Verdicts a format filled in slot by slot, once every slot is decided.
pub(crate) fn all_decided(v: Vec<Option<Reason>>) -> Vec<Reason> {
    v.into_iter()
        .map(|r| r.expect("a format decides every slot"))
        .collect()
}

impl Vendor {
    /// The format's name as `--policy-format` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Vendor::Ecr(_) => "ecr",
            Vendor::Harbor(_) => "harbor",
            Vendor::Zot(_) => "zot",
            Vendor::Gitlab(_) => "gitlab",
            Vendor::Acr(_) => "acr",
        }
    }

    /// Decides a repository, or `None` when the policy does not apply to it.
    pub fn decide(&self, p: &Plain<'_>, now: SystemTime) -> Option<Said> {
        match self {
            Vendor::Ecr(v) => Some(v.decide(p, now)),
            Vendor::Harbor(v) => v.decide(p, now),
            Vendor::Zot(v) => v.decide(p, now),
            Vendor::Gitlab(v) => Some(v.decide(p, now)),
            Vendor::Acr(v) => v.decide(p, now),
        }
    }

    /// What keeps a repository's signatures and referrers whatever happens
    /// to their subjects, in the format's words.
    pub fn keeps_referrers(&self, repo: &str) -> Option<String> {
        match self {
            Vendor::Zot(z) => z.keeps_referrers(repo),
            _ => None,
        }
    }

    /// True when the policy only untags: a manifest whose tags all go stays,
    /// untagged (`acr purge` without `--untagged`).
    pub fn untag_only(&self) -> bool {
        matches!(self, Vendor::Acr(a) if a.untag_only())
    }

    /// True when the policy looks at pull times (it then needs
    /// `--access-log`).
    pub fn uses_pulls(&self) -> bool {
        match self {
            Vendor::Ecr(v) => v.uses_pulls(),
            Vendor::Harbor(v) => v.uses_pulls(),
            Vendor::Zot(v) => v.uses_pulls(),
            Vendor::Gitlab(_) | Vendor::Acr(_) => false,
        }
    }
}

/// The tags of a [`Plain`] grouped by the manifest they name: the image
/// unit of ECR and Harbor. Images are in order of first tag.
pub(crate) struct Images<'a> {
    /// (digest, indices into `Plain::tags`).
    pub images: Vec<(&'a str, Vec<usize>)>,
}

impl<'a> Images<'a> {
    /// Groups `p`'s tags.
    pub fn of(p: &Plain<'a>) -> Images<'a> {
        let mut at: HashMap<&str, usize> = HashMap::new();
        let mut images: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, t) in p.tags.iter().enumerate() {
            let k = *at.entry(t.digest.as_str()).or_insert_with(|| {
                images.push((t.digest.as_str(), Vec::new()));
                images.len() - 1
            });
            images[k].1.push(i);
        }
        Images { images }
    }
}

/// When an image was pushed: its revision link's time, else the newest
/// assignment of one of its tags.
pub(crate) fn pushed_at(p: &Plain<'_>, digest: &str, tags: &[usize]) -> Option<SystemTime> {
    p.manifests
        .get(digest)
        .and_then(|m| m.pushed_at)
        .or_else(|| tags.iter().filter_map(|&i| p.tags[i].assigned_at).max())
}

/// When an image was last pulled (by tag, by digest, or a child of it).
pub(crate) fn pulled_at(p: &Plain<'_>, digest: &str) -> Option<SystemTime> {
    p.manifests
        .get(digest)
        .and_then(|m| m.last_pulled_at.max(m.pulled_by_digest_at))
}

/// `now − days`.
pub(crate) fn days_ago(now: SystemTime, days: u64) -> Option<SystemTime> {
    now.checked_sub(std::time::Duration::from_secs(days.saturating_mul(86_400)))
}

#[cfg(test)]
mod golden;
