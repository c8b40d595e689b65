//! A removal plan (`sweep`, `delete`, `prune`) as one CSV table: a row per
//! decision, in the plan's words — what goes (`remove`, in execution
//! order), what stays although a rule or the mark named it (`keep`, `hold`,
//! `refuse`), and why.

use super::csv::write_rows;
use crate::plan::ActionKind;
use crate::removal::Removal;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

/// The columns of `--format csv` for a plan.
pub const PLAN_COLUMNS: [&str; 8] = [
    "decision",
    "kind",
    "repository",
    "tag",
    "digest",
    "bytes",
    "reason",
    "key",
];

/// One decision of a plan.
#[derive(Debug, Serialize)]
pub struct PlanRow<'a> {
    /// `remove`, `keep` (a rule's candidate that stays), `hold` (kept by the
    /// grace period or for lack of an age) or `refuse` (`delete` named it,
    /// something kept needs it).
    pub decision: &'static str,
    /// What it is: the plan's action kinds (`tag`, `revision`, `blob`, …),
    /// or `manifest` for a kept or refused image.
    pub kind: &'a str,
    /// Repository, for repository-scoped rows.
    pub repository: Option<&'a str>,
    /// Tag, for tag rows.
    pub tag: Option<&'a str>,
    /// Digest of the manifest, link or blob.
    pub digest: Option<Cow<'a, str>>,
    /// Bytes freed (blobs and uploads).
    pub bytes: u64,
    /// Why.
    pub reason: &'a str,
    /// The storage key (directory) it concerns, when it is one.
    pub key: Option<Cow<'a, str>>,
}

fn kind_name(k: ActionKind) -> &'static str {
    match k {
        ActionKind::Tag => "tag",
        ActionKind::TagHistory => "tag_history",
        ActionKind::Revision => "revision",
        ActionKind::LayerLink => "layer_link",
        ActionKind::Upload => "upload",
        ActionKind::Blob => "blob",
        ActionKind::Repository => "repository",
    }
}

/// The tag a tag action's key names (`…/_manifests/tags/<tag>/…`).
fn tag_of(key: &str) -> Option<&str> {
    key.split_once("/_manifests/tags/")
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|t| !t.is_empty())
}

/// Writes `removal` as the plan table ([`PLAN_COLUMNS`]).
pub fn write_csv(w: &mut dyn Write, removal: &Removal) -> Result<(), csv::Error> {
    let plan = removal.plan();
    let prune = match removal {
        Removal::Prune(p) => Some(p.as_ref()),
        Removal::Sweep(_) => None,
    };
    // A delete's or prune's reasons, by what they concern.
    let mut tag_reason: HashMap<(&str, &str), &str> = HashMap::new();
    let mut manifest_reason: HashMap<(&str, &str), &str> = HashMap::new();
    if let Some(p) = prune {
        for t in &p.tags_removed {
            tag_reason.insert((&t.repository, &t.tag), &t.reason);
        }
        for m in &p.manifests_removed {
            manifest_reason.insert((&m.repository, &m.digest), &m.reason);
        }
    }
    let removed = plan.actions.iter().map(|a| {
        let repository = a.repository();
        let tag = a.tag_name();
        let digest = a.digest().map(|d| d.to_string());
        let reason = match (a.kind, repository, tag, digest.as_deref()) {
            (ActionKind::Tag, Some(r), Some(t), _) => tag_reason.get(&(r, t)).copied(),
            (ActionKind::Revision, Some(r), _, Some(d)) => manifest_reason.get(&(r, d)).copied(),
            _ => None,
        };
        PlanRow {
            decision: "remove",
            kind: kind_name(a.kind),
            repository,
            tag,
            digest: digest.map(Cow::Owned),
            bytes: a.bytes,
            reason: reason.unwrap_or(match a.kind {
                ActionKind::Upload => "upload older than the upload age",
                ActionKind::Repository => "repository left empty",
                ActionKind::Tag => "tag removed",
                _ => "nothing kept needs it",
            }),
            key: Some(Cow::Owned(a.key())),
        }
    });
    let held = plan.held.iter().map(|h| PlanRow {
        decision: "hold",
        kind: kind_name(h.kind),
        repository: None,
        tag: tag_of(&h.key),
        digest: None,
        bytes: 0,
        reason: &h.reason,
        key: Some(Cow::Borrowed(&h.key)),
    });
    let kept = prune.into_iter().flat_map(|p| {
        p.kept.iter().map(|k| PlanRow {
            decision: "keep",
            kind: if k.tag.is_some() { "tag" } else { "manifest" },
            repository: Some(&k.repository),
            tag: k.tag.as_deref(),
            digest: Some(Cow::Borrowed(&k.digest)),
            bytes: 0,
            reason: &k.reason,
            key: None,
        })
    });
    let refused = prune.into_iter().flat_map(|p| {
        p.refused.iter().map(|r| PlanRow {
            decision: "refuse",
            kind: "manifest",
            repository: Some(&r.repository),
            tag: None,
            digest: Some(Cow::Borrowed(&r.digest)),
            bytes: 0,
            reason: &r.reason,
            key: None,
        })
    });
    write_rows(
        w,
        &PLAN_COLUMNS,
        removed.chain(held).chain(kept).chain(refused),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_their_keys() {
        assert_eq!(
            tag_of("docker/registry/v2/repositories/a/b/_manifests/tags/v1.0/"),
            Some("v1.0")
        );
        assert_eq!(
            tag_of("docker/registry/v2/repositories/a/_manifests/tags/x/index/sha256/ab/"),
            Some("x")
        );
        assert_eq!(tag_of("docker/registry/v2/blobs/sha256/ab/abcd/"), None);
    }
}
