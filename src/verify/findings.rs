//! Findings from outside the walk (the scan's problems, the differences
//! from an inventory), where a key points (repository, tag, digest), and
//! what to do about each kind of finding.

use super::Finding;
use crate::digest::Digest;
use crate::inventory::{self, Difference, InventoryDoc};
use crate::problem::{Kind, Problem, Severity};
use crate::scan::Inventory;
use crate::storage::blob_data_key;
use std::collections::HashSet;
use std::time::SystemTime;

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
        Kind::DeclaredSizeMismatch => "inspect the manifest: clients refuse a blob whose size disagrees with its descriptor; re-push the image",
        Kind::IndexTooDeep => "inspect the index chain; no client pulls an image nested this deep",
        Kind::NoRepositories => "check that the storage root is the registry's (and that repositories/ was restored); if every repository was really deleted, sweep with --ignore-problems",
        Kind::ExternalTagUnknown => "check that the --tags-from file is of this registry and current (export the tags again); a tag naming a manifest the storage lost needs that image pushed again",
        Kind::NoTagFiles => "the registry keeps its tags elsewhere (Harbor 2.15+: in its database): give them with --tags-from FILE (see `sweep --help`), or collect untagged manifests with the registry's own tools, or sweep without --delete-untagged; if the registry really has no tags, add --ignore-problems",
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

/// Scan problems that verify does not re-derive, as findings.
pub(super) fn scan_findings(problems: &[Problem], rederived: &HashSet<String>) -> Vec<Finding> {
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
pub(super) fn against_findings(expected: &InventoryDoc, inv: &Inventory) -> Vec<Finding> {
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
