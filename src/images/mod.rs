//! `images`: every manifest of every repository as a row — what it is, its
//! tags and platforms, what it needs (`size`), what deleting it would free
//! (`reclaimable_bytes`), when it was pushed and pulled, and its status —
//! with per-repository totals and a storage summary like `docker system df`.
//!
//! Built from the same [`crate::Analysis`] as `report` (scan, graph, the
//! `--delete-untagged` mark), the link times of [`crate::times`] and,
//! optionally, pulls attributed from the registry's logs ([`pulls`]).
//! The rows, repository totals and summary are built in `build.rs`
//! ([`build()`]); filtering, sorting and output live in [`select`] and
//! [`output`].

mod build;
pub mod output;
pub mod pulls;
pub mod select;

pub use build::{build, read_configs};

use crate::graph::Node;
use crate::manifest::Kind as ManifestKind;
use crate::reach::TagRole;
use crate::times::LinkTimes;
use crate::Analysis;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

/// Version of the JSON format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// A row is `active` when pushed or pulled within this long.
pub const ACTIVE_WITHIN: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a row is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// A container image manifest (OCI, Docker schema 2 or schema 1).
    Image,
    /// An OCI index or Docker manifest list.
    Index,
    /// An OCI artifact: an `artifactType`, a non-image config, or the
    /// artifact manifest draft.
    Artifact,
    /// A manifest with a `subject` (signature, SBOM, attestation).
    Referrer,
    /// A manifest that could not be read or parsed (see `problems`).
    #[default]
    Unknown,
}

/// A row's status in one word: the first of these that holds, in this
/// order of precedence. [`Flag`]s say everything that holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its manifest is missing, unreadable or unparseable, or it has no
    /// revision link (see `problems`).
    Problem,
    /// What `report --delete-untagged` removes: nothing tagged reaches it.
    Garbage,
    /// Not pulled within `--stale-after` (pushed before then when never
    /// pulled).
    Stale,
    /// Pushed or pulled within the last 30 days.
    Active,
    /// Neither: last used between 30 days and `--stale-after` ago.
    Idle,
    /// No push or pull time is known.
    Unknown,
}

impl Status {
    /// Every status, in order of precedence.
    pub const ALL: [Status; 6] = [
        Status::Problem,
        Status::Garbage,
        Status::Stale,
        Status::Active,
        Status::Idle,
        Status::Unknown,
    ];

    /// The word, as JSON, CSV and the table spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Problem => "problem",
            Status::Garbage => "garbage",
            Status::Stale => "stale",
            Status::Active => "active",
            Status::Idle => "idle",
            Status::Unknown => "unknown",
        }
    }
}

/// What holds of a row; several may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Pushed or pulled within the last 30 days.
    Active,
    /// Not pulled within `--stale-after` (pushed before then when never pulled).
    Stale,
    /// No tag, and no live index or subject reaches it.
    Untagged,
    /// What `report --delete-untagged` removes (its revision link).
    Garbage,
}

/// One manifest of one repository.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Repository name.
    pub repository: String,
    /// Manifest digest.
    pub digest: String,
    /// What it is.
    pub kind: RowKind,
    /// Its `mediaType`.
    pub media_type: Option<String>,
    /// Its `artifactType`, or its config's media type when that is not an image config.
    pub artifact_type: Option<String>,
    /// Every tag whose `current/link` names it, sorted.
    pub tags: Vec<String>,
    /// Per tag: when it was last assigned (its `current/link`'s mtime).
    #[serde(serialize_with = "ser_time_map")]
    pub tag_assigned_at: Vec<(String, Option<SystemTime>)>,
    /// Per tag: its role ([`TagRole`]): `version`, or a follower of a
    /// subject (`signature`, `attestation`, `sbom`, `referrers-index`,
    /// `referrer`), which retention never counts and which goes with its
    /// subject.
    #[serde(serialize_with = "ser_role_map")]
    pub tag_roles: Vec<(String, TagRole)>,
    /// `os/architecture[/variant]`: an index's entries', or an image's from its config.
    pub platforms: Vec<String>,
    /// An index's child digests.
    pub children: Vec<String>,
    /// The manifest this one refers to.
    pub subject: Option<String>,
    /// Bytes of every distinct blob it needs (manifest, config, layers,
    /// children's), each counted once.
    pub size: u64,
    /// Bytes that deleting it and its tags, then a `--delete-untagged`
    /// sweep, would free (blobs nothing else live needs).
    pub reclaimable_bytes: u64,
    /// When it was last pushed (its revision link's mtime).
    #[serde(serialize_with = "ser_time")]
    pub pushed_at: Option<SystemTime>,
    /// The image config's `created`, when it says.
    pub created: Option<String>,
    /// Last pull (by tag, by digest, or of one of its children), from the logs.
    #[serde(serialize_with = "ser_time")]
    pub last_pulled_at: Option<SystemTime>,
    /// Last pull by its own digest, from the logs.
    #[serde(serialize_with = "ser_time")]
    pub pulled_by_digest_at: Option<SystemTime>,
    /// Its status in one word ([`Status`]: the first that holds).
    pub status: Status,
    /// Everything that holds.
    pub flags: Vec<Flag>,
    /// What is wrong with it (missing or unreadable manifest, no revision link).
    pub problems: Vec<String>,
}

/// Totals of one repository.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RepoRow {
    /// Repository name.
    pub name: String,
    /// Rows (manifests).
    pub images: usize,
    /// Tags.
    pub tags: usize,
    /// Bytes of every distinct blob its manifests need.
    pub size: u64,
    /// Of those, bytes no other repository's manifests need.
    pub unique_bytes: u64,
    /// Of those, bytes other repositories' manifests need too.
    pub shared_bytes: u64,
    /// Bytes that deleting the whole repository, then a
    /// `--delete-untagged` sweep, would free.
    pub reclaimable_bytes: u64,
    /// Newest `pushed_at` of its manifests.
    #[serde(serialize_with = "ser_time")]
    pub last_pushed_at: Option<SystemTime>,
    /// Newest `last_pulled_at` of its manifests.
    #[serde(serialize_with = "ser_time")]
    pub last_pulled_at: Option<SystemTime>,
}

/// The storage as `docker system df` would put it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// Repositories.
    pub repositories: usize,
    /// Rows.
    pub images: usize,
    /// Rows per kind.
    pub by_kind: BTreeMap<String, usize>,
    /// Tags.
    pub tags: usize,
    /// Blobs stored.
    pub stored_blobs: usize,
    /// Their bytes.
    pub stored_bytes: u64,
    /// Bytes that some manifest with a revision link or tag needs.
    pub referenced_bytes: u64,
    /// Sum of the rows' `size` (what the images would take without sharing).
    pub sum_of_image_sizes: u64,
    /// `sum_of_image_sizes / referenced_bytes`: how much sharing layers saves.
    pub deduplication_ratio: f64,
    /// Bytes `report --delete-untagged` would free (blobs only).
    pub garbage_bytes: u64,
    /// Rows with each status.
    pub by_status: BTreeMap<String, usize>,
}

/// A row as kept in memory: ids and indices into the analysis, which
/// [`Images::row`] spells out one at a time (a listing of 100,000s of
/// manifests is never held as strings).
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// Repository index in the inventory.
    pub repo: u32,
    /// Manifest id.
    pub id: u32,
    /// What it is.
    pub kind: RowKind,
    /// Indices of its tags in the repository's tag list, by tag name.
    pub tags: Vec<u32>,
    /// See [`Row::size`].
    pub size: u64,
    /// See [`Row::reclaimable_bytes`].
    pub reclaimable_bytes: u64,
    /// See [`Row::pushed_at`].
    pub pushed_at: Option<SystemTime>,
    /// See [`Row::last_pulled_at`].
    pub last_pulled_at: Option<SystemTime>,
    /// See [`Row::pulled_by_digest_at`].
    pub pulled_by_digest_at: Option<SystemTime>,
    /// Flags, one bit each ([`Flag`] as `1 << flag`).
    pub flag_bits: u8,
    /// Whether it has a revision link.
    pub revision: bool,
    /// What is wrong with it.
    pub problems: Vec<String>,
}

impl Entry {
    /// Whether a flag holds.
    pub fn has(&self, s: Flag) -> bool {
        self.flag_bits & (1 << s as u8) != 0
    }

    /// Its status in one word: problem, garbage, stale, active, idle,
    /// unknown — the first that holds.
    pub fn status(&self) -> Status {
        if !self.problems.is_empty() {
            Status::Problem
        } else if self.has(Flag::Garbage) {
            Status::Garbage
        } else if self.has(Flag::Stale) {
            Status::Stale
        } else if self.has(Flag::Active) {
            Status::Active
        } else if self.pushed_at.or(self.last_pulled_at).is_some() {
            Status::Idle
        } else {
            Status::Unknown
        }
    }

    /// The flags that hold, in order.
    pub fn flags(&self) -> Vec<Flag> {
        [Flag::Active, Flag::Stale, Flag::Untagged, Flag::Garbage]
            .into_iter()
            .filter(|&s| self.has(s))
            .collect()
    }
}

/// What rows are spelled out from.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The scan, graph and mark.
    pub analysis: &'a Analysis,
    /// Link times.
    pub times: &'a LinkTimes,
    /// Image configs read.
    pub configs: &'a Configs,
}

/// The whole listing (the JSON document of `images --format json`).
pub struct Images<'a> {
    /// When it was made.
    pub generated_at: SystemTime,
    /// The storage scanned.
    pub storage: String,
    /// One entry per manifest per repository (see [`Images::row`]).
    pub entries: Vec<Entry>,
    /// One entry per repository.
    pub repositories: Vec<RepoRow>,
    /// Totals.
    pub summary: Summary,
    /// What the access logs held, when some were given.
    pub access_logs: Option<pulls::LogSummary>,
    /// What rows are spelled out from.
    pub source: Source<'a>,
}

impl Images<'_> {
    /// The repository name of an entry.
    pub fn repository(&self, e: &Entry) -> &str {
        &self.source.analysis.inventory.repos[e.repo as usize].name
    }

    /// The tag names of an entry, sorted.
    pub fn tags<'s>(&'s self, e: &'s Entry) -> impl Iterator<Item = &'s str> + 's {
        let r = &self.source.analysis.inventory.repos[e.repo as usize];
        e.tags
            .iter()
            .map(move |&t| r.tags[t as usize].name.as_str())
    }

    /// An entry spelled out.
    pub fn row(&self, e: &Entry) -> Row {
        self.row_ref(e).to_row()
    }

    /// Every row spelled out, in order (for tests and small listings).
    pub fn rows(&self) -> Vec<Row> {
        self.entries.iter().map(|e| self.row(e)).collect()
    }
}

impl Serialize for Images<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        struct Rows<'b, 'a>(&'b Images<'a>);
        impl Serialize for Rows<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.entries.len()))?;
                for e in &self.0.entries {
                    seq.serialize_element(&self.0.row(e))?;
                }
                seq.end()
            }
        }
        let mut st = s.serialize_struct("Images", 8)?;
        st.serialize_field("format_version", &FORMAT_VERSION)?;
        st.serialize_field("tool_version", env!("CARGO_PKG_VERSION"))?;
        st.serialize_field("generated_at", &rfc3339(self.generated_at))?;
        st.serialize_field("storage", &self.storage)?;
        st.serialize_field("images", &Rows(self))?;
        st.serialize_field("repositories", &self.repositories)?;
        st.serialize_field("summary", &self.summary)?;
        st.serialize_field("access_logs", &self.access_logs)?;
        st.end()
    }
}

/// Settings of the listing.
#[derive(Debug, Clone)]
pub struct ImagesOptions {
    /// `stale`: not pulled (or pushed, when never pulled) within this long.
    pub stale_after: Duration,
    /// The time ages are measured from.
    pub now: SystemTime,
}

/// RFC 3339 (UTC, seconds) of a time.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ser_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

fn ser_time_map<S: serde::Serializer>(
    m: &[(String, Option<SystemTime>)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(k, &v.map(rfc3339))?;
    }
    map.end()
}

/// What an image config told (see [`crate::describe::image_config`]), by config id.
pub type Configs = HashMap<u32, crate::describe::ImageConfig>;

/// A row borrowed from the analysis: serializes to exactly what its
/// [`Row`] does, without a `String` per field (the JSON writer's rows).
#[derive(Serialize)]
pub struct RowRef<'a> {
    repository: &'a str,
    digest: DigestText,
    kind: RowKind,
    media_type: Option<&'a str>,
    artifact_type: Option<&'a str>,
    tags: Vec<&'a str>,
    tag_assigned_at: TagTimes<'a>,
    #[serde(serialize_with = "ser_role_pairs")]
    tag_roles: Vec<(&'a str, TagRole)>,
    platforms: Vec<&'a str>,
    children: Vec<DigestText>,
    subject: Option<DigestText>,
    size: u64,
    reclaimable_bytes: u64,
    #[serde(serialize_with = "ser_time")]
    pushed_at: Option<SystemTime>,
    created: Option<&'a str>,
    #[serde(serialize_with = "ser_time")]
    last_pulled_at: Option<SystemTime>,
    #[serde(serialize_with = "ser_time")]
    pulled_by_digest_at: Option<SystemTime>,
    status: Status,
    flags: Vec<Flag>,
    problems: &'a [String],
}

impl RowRef<'_> {
    /// The owned [`Row`] of the same fields.
    pub fn to_row(&self) -> Row {
        let owned = |v: &Option<&str>| v.map(str::to_string);
        Row {
            repository: self.repository.to_string(),
            digest: self.digest.0.to_string(),
            kind: self.kind,
            media_type: owned(&self.media_type),
            artifact_type: owned(&self.artifact_type),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
            tag_assigned_at: self
                .tag_assigned_at
                .0
                .iter()
                .map(|(t, at)| (t.to_string(), *at))
                .collect(),
            tag_roles: self
                .tag_roles
                .iter()
                .map(|(t, role)| (t.to_string(), role.clone()))
                .collect(),
            platforms: self.platforms.iter().map(|p| p.to_string()).collect(),
            children: self.children.iter().map(|c| c.0.to_string()).collect(),
            subject: self.subject.as_ref().map(|s| s.0.to_string()),
            size: self.size,
            reclaimable_bytes: self.reclaimable_bytes,
            pushed_at: self.pushed_at,
            created: owned(&self.created),
            last_pulled_at: self.last_pulled_at,
            pulled_by_digest_at: self.pulled_by_digest_at,
            status: self.status,
            flags: self.flags.clone(),
            problems: self.problems.to_vec(),
        }
    }
}

/// Tag names and roles, serialized as a map of name to role.
fn ser_role_pairs<S: serde::Serializer>(v: &[(&str, TagRole)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(t, r)| (*t, r)))
}

/// [`ser_role_pairs`] of owned names.
fn ser_role_map<S: serde::Serializer>(v: &[(String, TagRole)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(t, r)| (t.as_str(), r)))
}

/// A digest, serialized as its text.
struct DigestText(crate::digest::Digest);

impl Serialize for DigestText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Tag names and when each was assigned, serialized as [`ser_time_map`] does.
struct TagTimes<'a>(Vec<(&'a str, Option<SystemTime>)>);

impl Serialize for TagTimes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, &v.map(rfc3339))?;
        }
        map.end()
    }
}

impl Images<'_> {
    /// An entry spelled out as borrowed text: serializes as [`Images::row`].
    pub fn row_ref<'s>(&'s self, e: &'s Entry) -> RowRef<'s> {
        let src = self.source;
        let a = src.analysis;
        let inv = &a.inventory;
        let r = &inv.repos[e.repo as usize];
        let m = e.id;
        let node: Option<&Node> = a.graph.nodes.get(&m);
        let desc = a.graph.descriptions.get(&m);
        let digest = |id: u32| DigestText(inv.interner.digest(id));
        let rt = src.times.repos.get(e.repo as usize);
        let tags: Vec<&str> = e
            .tags
            .iter()
            .map(|&t| r.tags[t as usize].name.as_str())
            .collect();
        let tag_assigned_at = TagTimes(
            e.tags
                .iter()
                .map(|&t| {
                    let at = rt.and_then(|rt| rt.tags.get(t as usize).copied().flatten());
                    (r.tags[t as usize].name.as_str(), at)
                })
                .collect(),
        );
        let subject_text = node
            .and_then(|n| n.subject)
            .map(|s| inv.interner.digest(s).to_string());
        let tag_roles = tags
            .iter()
            .map(|&t| (t, TagRole::of(t, subject_text.as_deref())))
            .collect();
        let config = node
            .filter(|n| n.kind == Some(ManifestKind::Image))
            .and_then(|n| n.blobs.first())
            .and_then(|c| src.configs.get(c));
        let mut platforms: Vec<&str> = match (e.kind, desc) {
            (RowKind::Index, Some(d)) => d.platforms.iter().map(|p| p.as_ref()).collect(),
            _ => config
                .and_then(|c| c.platform.as_deref())
                .into_iter()
                .collect(),
        };
        platforms.dedup();
        let artifact_type = desc.and_then(|d| {
            d.artifact_type.as_deref().or_else(|| {
                d.is_artifact()
                    .then_some(d.config_media_type.as_deref())
                    .flatten()
            })
        });
        RowRef {
            repository: &r.name,
            digest: digest(m),
            kind: e.kind,
            media_type: desc.and_then(|d| d.media_type.as_deref()),
            artifact_type,
            tags,
            tag_assigned_at,
            tag_roles,
            platforms,
            children: node
                .filter(|n| n.kind == Some(ManifestKind::Index))
                .map(|n| n.children.iter().map(|&c| digest(c)).collect())
                .unwrap_or_default(),
            subject: node.and_then(|n| n.subject).map(digest),
            size: e.size,
            reclaimable_bytes: e.reclaimable_bytes,
            pushed_at: e.pushed_at,
            created: config.and_then(|c| c.created.as_deref()),
            last_pulled_at: e.last_pulled_at,
            pulled_by_digest_at: e.pulled_by_digest_at,
            status: e.status(),
            flags: e.flags(),
            problems: &e.problems,
        }
    }
}
