//! The vendors' own documented examples as golden tests: each test builds
//! the images an example describes (tags, push and pull times relative to
//! a fixed "now"), evaluates the example's policy, and compares what goes
//! with what the vendor's documentation says goes. Each test cites its
//! source.

mod acr;
mod ecr;
mod gitlab;
mod harbor;
mod zot;

use crate::policy::formats::Vendor;
use crate::policy::{evaluate, Decision, ManifestView, Policy, Reason, RepoView, TagView};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// The fixed evaluation time.
pub(super) fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub(super) const MIN: u64 = 60;
pub(super) const HOUR: u64 = 3600;
pub(super) const DAY: u64 = 86_400;

/// `now − secs`.
pub(super) fn ago(secs: u64) -> SystemTime {
    now() - Duration::from_secs(secs)
}

/// The digest standing for image `id`.
pub(super) fn dg(id: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(id.as_bytes()))
}

/// A repository built image by image.
#[derive(Clone)]
pub(super) struct Repo {
    view: RepoView,
    ids: Vec<String>,
}

impl Repo {
    pub fn new(name: &str) -> Repo {
        Repo {
            view: RepoView {
                name: name.into(),
                ..RepoView::default()
            },
            ids: Vec::new(),
        }
    }

    /// Image `id` with `tags` (none: untagged), pushed (and its tags
    /// assigned) `pushed` seconds ago; `None` = unknown.
    pub fn image(mut self, id: &str, tags: &[&str], pushed: Option<u64>) -> Repo {
        let at = pushed.map(ago);
        self.view.manifests.push(ManifestView {
            digest: dg(id),
            pushed_at: at,
            last_pulled_at: None,
            pulled_by_digest_at: None,
            subject: None,
            reached: false,
        });
        for t in tags {
            self.view.tags.push(TagView {
                name: (*t).into(),
                digest: dg(id),
                assigned_at: at,
            });
        }
        self.ids.push(id.into());
        self
    }

    /// Image `id` pushed `secs` ago.
    pub fn at(self, id: &str, tags: &[&str], secs: u64) -> Repo {
        self.image(id, tags, Some(secs))
    }

    /// One image per tag, named by the tag.
    pub fn tags(mut self, tags: &[(&str, u64)]) -> Repo {
        for (t, secs) in tags {
            self = self.at(t, &[t], *secs);
        }
        self
    }

    /// Image `id` was last pulled `secs` ago.
    pub fn pulled(mut self, id: &str, secs: u64) -> Repo {
        let m = self
            .view
            .manifests
            .iter_mut()
            .find(|m| m.digest == dg(id))
            .unwrap_or_else(|| panic!("no image {id}"));
        m.last_pulled_at = Some(ago(secs));
        self
    }
}

/// Evaluates `v` over `repos` at [`now`], with no grace period of
/// regsweep's own.
pub(super) fn run(v: Vendor, repos: &[&Repo]) -> Decision {
    let views: Vec<RepoView> = repos.iter().map(|r| r.view.clone()).collect();
    evaluate(&Policy::vendor("golden", v), &views, now(), Duration::ZERO)
}

/// The images of `repo` that go: every tag removed, or removed untagged.
pub(super) fn gone(d: &Decision, repo: &Repo) -> BTreeSet<String> {
    let name = &repo.view.name;
    let mut out = BTreeSet::new();
    for id in &repo.ids {
        let digest = dg(id);
        let tags: Vec<&TagView> = repo
            .view
            .tags
            .iter()
            .filter(|t| t.digest == digest)
            .collect();
        let removed = if tags.is_empty() {
            d.untagged_removed
                .iter()
                .any(|a| &a.repository == name && a.digest == digest)
        } else {
            tags.iter().all(|t| {
                d.tags_removed
                    .iter()
                    .any(|a| &a.repository == name && a.tag == t.name)
            })
        };
        if removed {
            out.insert(id.clone());
        }
    }
    out
}

/// The tags of `repo` that go.
pub(super) fn gone_tags(d: &Decision, repo: &Repo) -> BTreeSet<String> {
    d.tags_removed
        .iter()
        .filter(|a| a.repository == repo.view.name)
        .map(|a| a.tag.clone())
        .collect()
}

/// `ids` as a set.
pub(super) fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The reason given for tag `tag` of `repo`.
pub(super) fn tag_reason<'a>(d: &'a Decision, repo: &str, tag: &str) -> &'a Reason {
    &d.tags_removed
        .iter()
        .chain(&d.tags_kept)
        .find(|a| a.repository == repo && a.tag == tag)
        .unwrap_or_else(|| panic!("{repo}:{tag} not decided"))
        .reason
}

/// The reason given for untagged image `id` of `repo`.
pub(super) fn untagged_reason<'a>(d: &'a Decision, repo: &str, id: &str) -> &'a Reason {
    &d.untagged_removed
        .iter()
        .chain(&d.untagged_kept)
        .find(|a| a.repository == repo && a.digest == dg(id))
        .unwrap_or_else(|| panic!("{repo}@{id} not decided"))
        .reason
}
