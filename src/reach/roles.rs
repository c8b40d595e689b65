//! The role of every tag, decided in one place: a version of the
//! repository's image, or a tag that belongs to another manifest (its
//! *subject*) and follows it.
//!
//! * cosign names its signature, attestation and SBOM manifests of subject
//!   `sha256:<hex>` by the tags `sha256-<hex>.sig`, `.att` and `.sbom`;
//! * the OCI distribution spec's referrers tag schema: on a registry without
//!   the referrers API, oras and notation keep an OCI index tagged
//!   `sha256-<hex>` (no suffix) whose entries are the referrers of
//!   `sha256:<hex>`;
//! * a tag naming a manifest whose `subject` field names another manifest
//!   (an artifact pushed with a tag) follows that subject.
//!
//! A follower is never counted as a version by a retention rule; it stays
//! while its subject stays and goes with it when `delete` or `prune` remove
//! the subject.

use serde::Serialize;

/// What a cosign tag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CosignKind {
    /// `.sig`
    Signature,
    /// `.att`
    Attestation,
    /// `.sbom`
    Sbom,
}

/// The role of one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagRole {
    /// A version of the repository's image: what retention counts.
    Version,
    /// A cosign tag `sha256-<hex>.sig|.att|.sbom` of subject `sha256:<hex>`.
    Cosign {
        /// Which of the three.
        kind: CosignKind,
        /// The subject's digest, `sha256:<hex>`.
        subject: String,
    },
    /// The referrers tag schema's index `sha256-<hex>` of subject
    /// `sha256:<hex>`.
    ReferrersIndex {
        /// The subject's digest, `sha256:<hex>`.
        subject: String,
    },
    /// A tag naming a manifest whose `subject` field names another.
    Referrer {
        /// The subject's digest, as the manifest gives it.
        subject: String,
    },
}

impl TagRole {
    /// The role of tag `name`, whose target's `subject` field (when it has
    /// one, and the target could be read) is `target_subject`. The name
    /// decides the kind (a cosign or referrers-schema name makes a
    /// follower); the subject is the target's own `subject` field when it
    /// has one — what the manifest says it refers to — else the one the
    /// name states.
    pub fn of(name: &str, target_subject: Option<&str>) -> TagRole {
        if let Some(mut role) = TagRole::of_name(name) {
            if let (
                Some(s),
                TagRole::Cosign { subject, .. } | TagRole::ReferrersIndex { subject },
            ) = (target_subject, &mut role)
            {
                *subject = s.to_string();
            }
            return role;
        }
        match target_subject {
            Some(s) => TagRole::Referrer {
                subject: s.to_string(),
            },
            None => TagRole::Version,
        }
    }

    /// The role a tag's name alone gives: `None` for an ordinary name.
    pub fn of_name(name: &str) -> Option<TagRole> {
        let rest = name.strip_prefix("sha256-")?;
        let (hex, suffix) = match rest.split_once('.') {
            Some((hex, suffix)) => (hex, Some(suffix)),
            None => (rest, None),
        };
        let hex_ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return None;
        }
        let subject = format!("sha256:{hex}");
        match suffix {
            None => Some(TagRole::ReferrersIndex { subject }),
            Some("sig") => Some(TagRole::Cosign {
                kind: CosignKind::Signature,
                subject,
            }),
            Some("att") => Some(TagRole::Cosign {
                kind: CosignKind::Attestation,
                subject,
            }),
            Some("sbom") => Some(TagRole::Cosign {
                kind: CosignKind::Sbom,
                subject,
            }),
            Some(_) => None,
        }
    }

    /// The subject a follower follows; `None` for a version.
    pub fn subject(&self) -> Option<&str> {
        match self {
            TagRole::Version => None,
            TagRole::Cosign { subject, .. }
            | TagRole::ReferrersIndex { subject }
            | TagRole::Referrer { subject } => Some(subject),
        }
    }

    /// Whether the tag follows a subject (is not a version).
    pub fn is_follower(&self) -> bool {
        !matches!(self, TagRole::Version)
    }

    /// Its name in listings: `version`, `signature`, `attestation`, `sbom`,
    /// `referrers-index` or `referrer`.
    pub fn name(&self) -> &'static str {
        match self {
            TagRole::Version => "version",
            TagRole::Cosign {
                kind: CosignKind::Signature,
                ..
            } => "signature",
            TagRole::Cosign {
                kind: CosignKind::Attestation,
                ..
            } => "attestation",
            TagRole::Cosign {
                kind: CosignKind::Sbom,
                ..
            } => "sbom",
            TagRole::ReferrersIndex { .. } => "referrers-index",
            TagRole::Referrer { .. } => "referrer",
        }
    }
}

impl Serialize for TagRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decide_the_kind_and_the_subject_field_the_subject() {
        let hex = "ab".repeat(32);
        let d = format!("sha256:{hex}");
        assert_eq!(
            TagRole::of(&format!("sha256-{hex}.sig"), None),
            TagRole::Cosign {
                kind: CosignKind::Signature,
                subject: d.clone()
            }
        );
        assert_eq!(
            TagRole::of(&format!("sha256-{hex}.att"), None).name(),
            "attestation"
        );
        assert_eq!(
            TagRole::of(&format!("sha256-{hex}.sbom"), None).name(),
            "sbom"
        );
        assert_eq!(
            TagRole::of(&format!("sha256-{hex}"), None),
            TagRole::ReferrersIndex { subject: d.clone() }
        );
        // A manifest says what it refers to: its subject wins over the name's.
        assert_eq!(
            TagRole::of(&format!("sha256-{hex}.sig"), Some("sha256:00")),
            TagRole::Cosign {
                kind: CosignKind::Signature,
                subject: "sha256:00".into()
            }
        );
        assert_eq!(
            TagRole::of("v1", Some(&d)),
            TagRole::Referrer { subject: d.clone() }
        );
        assert_eq!(TagRole::of("v1", None), TagRole::Version);
        // Near misses are versions.
        for name in [
            format!("sha256-{}", &hex[..63]),
            format!("sha256-{}.sig", "AB".repeat(32)),
            format!("sha256-{hex}.txt"),
            format!("sha512-{hex}"),
            format!("sha256-{hex}0"),
            "latest".to_string(),
        ] {
            assert_eq!(TagRole::of(&name, None), TagRole::Version, "{name}");
        }
        assert!(!TagRole::Version.is_follower());
        assert_eq!(
            TagRole::of(&format!("sha256-{hex}"), None).subject(),
            Some(d.as_str())
        );
    }
}
