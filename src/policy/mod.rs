//! Retention policies for `regsweep prune`: which tags and untagged
//! manifests a policy removes, and why each of the others is kept.
//!
//! [`rules`] parses and validates a [`Policy`] (CLI flags or a YAML/JSON
//! file); [`evaluate()`] is the pure decision over plain [`RepoView`]s, with
//! no storage I/O. [`crate::prune`] turns a [`Decision`] into a plan (and
//! re-marks the state after the removals to count the bytes).
//! [`versions`] ranks semantic-version tags (`keep_versions`), [`in_use`]
//! reads the image references in use (`--keep-refs`), and [`formats`]
//! evaluates policies written for ECR, Harbor, zot, GitLab and `acr purge`
//! with each tool's own semantics (`docs/retention.md`).
//!
//! # Semantics
//!
//! * **Patterns** (`repo`, `tag`, `keep_tag`) are Rust `regex` syntax and
//!   must match the *whole* name (compiled as `\A(?:…)\z`), as GitLab does;
//!   `v1` does not match `v10`, write `v1.*` for a prefix. (ACR purge anchors
//!   the repository pattern but searches the tag pattern anywhere.)
//! * **Which rules apply**: every rule whose `repo` matches the repository.
//! * **Candidates of a rule**: the repository's tags that its `tag` pattern
//!   matches (all when absent), minus signature/referrer tags (below), minus
//!   the tags the rule itself keeps by `keep_tag` or `latest`.
//! * **Keep rules win**: a tag is kept when *any* applicable rule keeps it:
//!   its `keep_tag` matches, it is `latest` and the rule keeps latest (the
//!   default; `no_keep_latest` turns it off for that rule), or it is on one
//!   of the rule's `keep_last` newest digests.
//! * **`keep_last N`** ranks a rule's candidate tags newest first by the
//!   tag's `assigned_at` (unknown = oldest), ties by tag name descending; a
//!   digest's rank is that of its newest candidate tag, so tags on one digest
//!   count once. The candidate tags of the N best-ranked digests are kept.
//! * **Removal**: a tag goes when some applicable rule has it as a candidate,
//!   gives at least one remove criterion (`keep_last`, `older_than`,
//!   `not_pulled_for`) and *every* criterion it gives holds (AND), and no
//!   applicable rule keeps it. Rules OR with each other.
//! * **`older_than D`**: `assigned_at < now − D`. An unknown assignment time
//!   is *not* old (fail safe).
//! * **`not_pulled_for D`**: the last use of the tag's digest is before
//!   `now − D`, where the last use is the newest known of: any pull of the
//!   manifest (`last_pulled_at`, `pulled_by_digest_at`), its push
//!   (`pushed_at`) and the tag's assignment. So a never-pulled image counts
//!   from its push, and a re-push counts as use. Nothing known ⇒ kept.
//! * **Followers** (a tag's role is [`crate::reach::TagRole`]'s): tags named
//!   `sha256-<64 hex>.sig|.att|.sbom` (cosign), `sha256-<64 hex>` (the
//!   referrers tag schema's index), and
//!   tags or untagged manifests whose manifest has a `subject` are never
//!   candidates. They stay while their subject stays and go when it goes:
//!   a tagged subject goes when every one of its tags goes and it is not
//!   `reached` otherwise (a referrer's own `reached` is ignored: it means
//!   "its subject is live"); an untagged subject goes when it is removed as
//!   untagged (or follows its own subject). Chains resolve to a fixed point.
//!   `keep_referrers` on any applicable rule keeps them; `keep_tag` and
//!   `latest` protect follower tags too. A subject missing from the
//!   repository keeps its followers (fail safe; `delete` removes them).
//! * **Untagged** manifests (no tag in the repository, no `subject`) go when
//!   some applicable rule says `untagged`, they are not `reached`, their push
//!   time is known and older than the grace period, and the rule's
//!   `older_than` / `not_pulled_for` (when given) hold on their push and pull
//!   times. One pulled by digest within `not_pulled_for` is kept and named
//!   (`pulled_by_digest`).
//! * **Unit**: the engine decides tags and already-untagged manifests only.
//!   A removed tag whose digest keeps another tag is an untag; the manifest
//!   stays for the kept tag. A manifest whose tags all go is left for the
//!   caller's mark (run on the state after the removals) to collect, with
//!   what only it references.
//! * **Determinism**: every list is sorted by (repository, tag) or
//!   (repository, digest).
//!
//! | | regsweep | Harbor | zot | GitLab | ECR | ACR purge |
//! |---|---|---|---|---|---|---|
//! | pattern match | full (`\A…\z`) | doublestar globs | regex | full (`\A…\Z`) | prefix / wildcard | repo full, tag anywhere |
//! | rules combine | keep from any rule wins; a tag goes when one rule's criteria all hold | filters AND, rules OR, rest deleted | first matching repo policy, first keepTags entry | keep OR and wins, remove AND | by priority, one rule per image | AND, `--keep` N newest |
//! | keep N | per repo, per digest, ties by name desc | latest K pushed/pulled | mostRecentlyPushed/PulledCount | `keep_n` (random order on shared digest) | imageCountMoreThan | `--keep` over matched tags |
//! | age | tag assigned before now − D; unknown = not old | pushed within N days | pushedWithin | `older_than` | sinceImagePushed | `--ago` (last update) |
//! | not pulled | last pull, else push/assignment; unknown = kept | pulled within N days (never pulled = deleted) | pulledWithin | — | sinceImagePulled | — |
//! | `latest` | kept unless `no_keep_latest` | by rule | by rule | always kept | by rule | by rule |
//! | unit removed | tag (manifest via mark) | artifact with all tags | tag | tag | image with all tags | tag, then untagged manifest |
//! | shared digest | untag, manifest stays | kept | survives | tag level | per image | untag only |
//! | untagged | `untagged`, past grace, not pulled by digest in window | rule | deleteUntagged + delay | — | tagStatus untagged | `--untagged` |
//! | index children | kept via `reached`; mark frees the unshared | deleted with index | protected | registry GC | not followed | kept if a tagged index uses them |
//! | signatures, referrers | follow the subject; `keep_referrers` | never on their own, left dangling | `deleteReferrers` | — | can't target | kept |
//! | preview | exact plan | dry run undercounts | dryRun | — | preview | `--dry-run` |

pub mod evaluate;
pub mod formats;
pub mod in_use;
pub mod rules;
pub mod versions;

pub use evaluate::evaluate;
pub use rules::{Pattern, Policy, PolicyError, Rule, RuleFlags, RuleSpec};

use serde::{Serialize, Serializer};
use std::fmt;
use std::time::{Duration, SystemTime};

/// One repository as the engine sees it: its tags and its manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoView {
    /// Repository name, e.g. `team-x/api`.
    pub name: String,
    /// Current tags.
    pub tags: Vec<TagView>,
    /// Every manifest the repository links (tagged or not).
    pub manifests: Vec<ManifestView>,
}

/// A tag and the digest it currently names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagView {
    /// Tag name.
    pub name: String,
    /// `sha256:<hex>` of the manifest it names.
    pub digest: String,
    /// When the tag was last assigned (its current link's mtime), if known.
    pub assigned_at: Option<SystemTime>,
}

/// A manifest of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestView {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Revision link mtime.
    pub pushed_at: Option<SystemTime>,
    /// Any pull: by tag or digest, or of a child of this index.
    pub last_pulled_at: Option<SystemTime>,
    /// Last pull naming the digest itself.
    pub pulled_by_digest_at: Option<SystemTime>,
    /// OCI referrer: the manifest it refers to.
    pub subject: Option<String>,
    /// Kept alive by something other than its own tags (a tagged index's
    /// child, a live subject's referrer).
    pub reached: bool,
}

/// What a policy removes and keeps, each with its reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Tags to remove, sorted by (repository, tag).
    pub tags_removed: Vec<TagAction>,
    /// Tags kept, sorted by (repository, tag).
    pub tags_kept: Vec<TagAction>,
    /// Untagged manifests to remove, sorted by (repository, digest).
    pub untagged_removed: Vec<ManifestAction>,
    /// Untagged manifests kept, sorted by (repository, digest).
    pub untagged_kept: Vec<ManifestAction>,
    /// Manifests in use (`--keep-refs`): they stay roots of the mark after
    /// the removals, so an in-use child of a removed index stays too.
    pub pinned: Vec<ManifestAction>,
    /// Manifests whose tags all go stay, untagged (the policy only
    /// untags).
    pub untag_only: bool,
}

/// A decision about one tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagAction {
    /// Repository name.
    pub repository: String,
    /// Tag name.
    pub tag: String,
    /// The digest the tag names.
    pub digest: String,
    /// Why.
    pub reason: Reason,
}

/// A decision about one untagged manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestAction {
    /// Repository name.
    pub repository: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Why.
    pub reason: Reason,
}

/// Why a tag or manifest is removed or kept. `rule` numbers count from 1
/// in policy order, as in error messages. JSON: `{"kind": "keep_last",
/// "rule": 1, "rank": 2}`; times are RFC 3339, durations humantime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Removed: every criterion of this rule holds.
    RemovedBy {
        /// Rule number.
        rule: usize,
    },
    /// Kept: the tag matches the rule's `keep_tag`.
    KeepTag {
        /// Rule number.
        rule: usize,
        /// The pattern that matched.
        regex: String,
    },
    /// Kept: `latest`, and the rule keeps latest.
    KeepLatest {
        /// Rule number.
        rule: usize,
    },
    /// Kept: the digest is among the rule's `keep_last` newest.
    KeepLast {
        /// Rule number.
        rule: usize,
        /// The digest's rank, 1 = newest.
        rank: usize,
    },
    /// Kept: a signature/referrer, and the rule says `keep_referrers`.
    KeepReferrers {
        /// Rule number.
        rule: usize,
        /// The subject it refers to.
        subject: String,
    },
    /// Removed: a signature/referrer whose subject goes.
    FollowsSubject {
        /// The subject's digest.
        subject: String,
    },
    /// Kept: a signature/referrer whose subject stays.
    SubjectStays {
        /// The subject's digest.
        subject: String,
    },
    /// Kept: a signature/referrer whose subject is not in the repository.
    SubjectMissing {
        /// The subject's digest.
        subject: String,
    },
    /// Kept: no rule's `repo` matches the repository.
    NoRuleApplies,
    /// Kept: no applicable rule with a remove criterion has the tag as a
    /// candidate (`tag` pattern, or no criterion given).
    NotMatched,
    /// Kept: untagged, and no applicable rule says `untagged`.
    UntaggedNotSelected,
    /// Kept: untagged but reached (an index's child, a live referrer).
    Reached,
    /// Kept: assigned (tag) or pushed (manifest) within `older_than`.
    TooNew {
        /// Rule number.
        rule: usize,
        /// The rule's `older_than`.
        #[serde(serialize_with = "ser_duration")]
        older_than: Duration,
    },
    /// Kept: the rule has `older_than` and the time is unknown.
    AgeUnknown {
        /// Rule number.
        rule: usize,
    },
    /// Kept: pulled within `not_pulled_for`.
    PulledRecently {
        /// Rule number.
        rule: usize,
        /// Last pull.
        #[serde(serialize_with = "ser_time")]
        at: SystemTime,
    },
    /// Kept: untagged, pulled by digest within `not_pulled_for`.
    PulledByDigest {
        /// Rule number.
        rule: usize,
        /// Last pull by digest.
        #[serde(serialize_with = "ser_time")]
        at: SystemTime,
    },
    /// Kept: not pulled, but pushed or assigned within `not_pulled_for`.
    PushedRecently {
        /// Rule number.
        rule: usize,
        /// Last push or assignment.
        #[serde(serialize_with = "ser_time")]
        at: SystemTime,
    },
    /// Kept: the rule has `not_pulled_for` and no pull, push or assignment
    /// time is known.
    UsageUnknown {
        /// Rule number.
        rule: usize,
    },
    /// Kept: untagged, pushed within the grace period.
    WithinGrace {
        /// Push time.
        #[serde(serialize_with = "ser_time")]
        pushed_at: SystemTime,
    },
    /// Kept: untagged with an unknown push time (fail safe).
    PushTimeUnknown,
    /// Kept: among the rule's `keep_versions` highest semantic versions.
    KeepVersions {
        /// Rule number.
        rule: usize,
        /// The version's rank, 1 = highest.
        rank: usize,
    },
    /// Kept: the rule ranks only semantic versions and this tag is none.
    NotVersion {
        /// Rule number.
        rule: usize,
    },
    /// Removed by a rule of a vendor's policy, named in the format's own
    /// words, e.g. `ecr rule 2 (imageCountMoreThan 5)`.
    Expired {
        /// The rule.
        by: String,
    },
    /// Kept by a vendor's policy, in the format's own words.
    Retained {
        /// The rule or default that keeps it.
        by: String,
    },
    /// Kept: the image is in use (`--keep-refs`), whatever any rule says.
    InUse {
        /// The reference as listed.
        reference: String,
        /// `file:line` of the listing.
        at: String,
    },
}

impl Reason {
    /// True for the reasons that remove.
    pub fn removes(&self) -> bool {
        matches!(
            self,
            Reason::RemovedBy { .. } | Reason::FollowsSubject { .. } | Reason::Expired { .. }
        )
    }
}

/// RFC 3339 UTC, seconds precision.
fn rfc3339(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::RemovedBy { rule } => write!(f, "removed by rule {rule}"),
            Reason::KeepTag { rule, regex } => write!(f, "kept by rule {rule}: keep_tag {regex:?}"),
            Reason::KeepLatest { rule } => write!(f, "kept by rule {rule}: latest"),
            Reason::KeepLast { rule, rank } => {
                write!(f, "kept by rule {rule}: keep_last, rank {rank}")
            }
            Reason::KeepReferrers { rule, subject } => {
                write!(f, "kept by rule {rule}: keep_referrers (subject {subject})")
            }
            Reason::FollowsSubject { subject } => write!(f, "removed with its subject {subject}"),
            Reason::SubjectStays { subject } => write!(f, "kept: its subject {subject} stays"),
            Reason::SubjectMissing { subject } => {
                write!(f, "kept: its subject {subject} is not in the repository")
            }
            Reason::NoRuleApplies => write!(f, "kept: no rule applies to the repository"),
            Reason::NotMatched => write!(f, "kept: no rule selects it for removal"),
            Reason::UntaggedNotSelected => {
                write!(f, "kept: no rule removes untagged manifests here")
            }
            Reason::Reached => write!(f, "kept: referenced (an index's child or a live referrer)"),
            Reason::TooNew { rule, older_than } => write!(
                f,
                "kept by rule {rule}: not older than {}",
                humantime::format_duration(*older_than)
            ),
            Reason::AgeUnknown { rule } => write!(f, "kept by rule {rule}: age unknown"),
            Reason::PulledRecently { rule, at } => {
                write!(f, "kept by rule {rule}: pulled {}", rfc3339(*at))
            }
            Reason::PulledByDigest { rule, at } => {
                write!(f, "kept by rule {rule}: pulled by digest {}", rfc3339(*at))
            }
            Reason::PushedRecently { rule, at } => {
                write!(
                    f,
                    "kept by rule {rule}: never pulled since its push {}",
                    rfc3339(*at)
                )
            }
            Reason::UsageUnknown { rule } => {
                write!(f, "kept by rule {rule}: pull and push times unknown")
            }
            Reason::WithinGrace { pushed_at } => {
                write!(
                    f,
                    "kept: pushed {} (within the grace period)",
                    rfc3339(*pushed_at)
                )
            }
            Reason::PushTimeUnknown => write!(f, "kept: push time unknown"),
            Reason::KeepVersions { rule, rank } => {
                write!(f, "kept by rule {rule}: keep_versions, rank {rank}")
            }
            Reason::NotVersion { rule } => {
                write!(f, "kept by rule {rule}: not a semantic version")
            }
            Reason::Expired { by } => write!(f, "removed by {by}"),
            Reason::Retained { by } => write!(f, "kept by {by}"),
            Reason::InUse { reference, at } => write!(f, "kept: in use ({reference}, {at})"),
        }
    }
}
