//! The scan: list the registry's storage and turn it into an [`Inventory`] of
//! blobs, repositories, tags, links and uploads, with digests interned.
//!
//! Listing is read-only and concurrent: the 256 `blobs/sha256/xx/` prefixes and
//! every repository's `_manifests/`, `_layers/`, `_uploads/` are listed as
//! separate requests through [`Storage::list_many`]. Digests are taken from
//! directory names; only the links whose content matters (tags' `current`,
//! revision links of unexpected size) and `startedat` files are read.

use crate::digest::{Digest, Interner, SHA256_DIGEST_LEN};
use crate::problem::{Kind, Problem, Severity};
use crate::progress::Progress;
use crate::storage::hash::ContentHash;
use crate::storage::{
    DigestListing, DirListing, Entry, EntryKind, Fetch, Fetched, Meta, Probe, Probed, Storage,
    StorageError,
};
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// A blob found under `blobs/sha256/`.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Interned digest.
    pub id: u32,
    /// Size of its `data`: read from storage when `stat` is true, else the
    /// size a manifest's descriptor declares (0 when none does).
    pub size: u64,
    /// Modification time of its `data`, when known.
    pub modified: Option<SystemTime>,
    /// True when `size` and `modified` were read from storage.
    pub stat: bool,
    /// True when `size` is the length of the whole `data` as read from
    /// storage (a manifest the graph read), though `modified` is unknown.
    pub read: bool,
}

/// A tag of a repository.
#[derive(Debug, Clone, Default)]
pub struct Tag {
    /// Tag name.
    pub name: String,
    /// The manifest `current/link` points at; `None` when the link is missing or bad.
    pub current: Option<u32>,
    /// Every digest in the tag's `index/` history.
    pub history: Vec<u32>,
}

/// An upload under `_uploads/<id>/`.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The upload's id (a UUID).
    pub id: String,
    /// Total bytes of every file under it.
    pub size: u64,
    /// Its `startedat` time, when present and valid.
    pub started_at: Option<SystemTime>,
    /// Newest modification time of its files, when known.
    pub modified: Option<SystemTime>,
}

/// A repository (a directory with `_manifests`, or one holding only
/// `_layers`/`_uploads`, which the registry cannot see).
#[derive(Debug, Clone, Default)]
pub struct Repository {
    /// Name, e.g. `team-a/svc/api`.
    pub name: String,
    /// True when it has `_manifests` (the registry's catalog rule).
    pub visible: bool,
    /// Manifests with a revision link, sorted and deduplicated.
    pub revisions: Vec<u32>,
    /// Tags, sorted by name.
    pub tags: Vec<Tag>,
    /// Blobs with a `_layers/sha256/<hex>/link`, sorted.
    pub layers: Vec<u32>,
    /// Alias links `_layers/<alg>/<hex>/link` (`sha384`, `sha512`): the id
    /// of the alias digest (`alg:hex`) and of the sha256 blob its link
    /// names, sorted. The registry serves the blob by either digest.
    pub aliases: Vec<(u32, u32)>,
    /// Uploads in progress or abandoned.
    pub uploads: Vec<Upload>,
    /// With [`ScanOptions::link_times`], on a shallow scan: the modification
    /// times of the revision links the listing stat'ed, by manifest id,
    /// sorted (those it could not stat are missing).
    pub revision_times: Vec<(u32, SystemTime)>,
    /// With [`ScanOptions::link_times`], on a shallow scan: per tag (in
    /// [`Repository::tags`] order), the modification time of its
    /// `current/link` when the listing stat'ed it; otherwise empty.
    pub tag_times: Vec<Option<SystemTime>>,
}

impl Repository {
    /// The sha256 blobs this repository's alias links name for `alias`
    /// (pairs of [`Repository::aliases`], which is sorted).
    pub fn alias_targets(&self, alias: u32) -> impl Iterator<Item = u32> + '_ {
        let start = self.aliases.partition_point(|&(a, _)| a < alias);
        self.aliases[start..]
            .iter()
            .take_while(move |&&(a, _)| a == alias)
            .map(|&(_, c)| c)
    }
}

/// Everything the scan learnt about the storage.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Where it came from.
    pub storage: String,
    /// Digest ↔ id. Blob ids come first: `0..blobs.len()`.
    pub interner: Interner,
    /// Every blob in `blobs/sha256/`, indexed by id.
    pub blobs: Vec<Blob>,
    /// Every repository, sorted by name.
    pub repos: Vec<Repository>,
    /// Problems found while scanning.
    pub problems: Vec<Problem>,
    /// Blob directories found to have no `data` (not blobs after all).
    pub absent: roaring::RoaringBitmap,
    /// With [`ScanOptions::check_links`]: every link read and checked.
    pub links: LinkCheck,
    /// With [`ScanOptions::hash_blobs`]: the blobs hashed while listing.
    pub hashes: BlobHashes,
    /// Every alias digest any repository links (see
    /// [`Repository::aliases`]) and the sha256 blobs it names there: a
    /// manifest that references the alias keeps those blobs alive.
    pub aliases: HashMap<u32, Vec<u32>>,
}

/// The links a scan with [`ScanOptions::check_links`] read: how many, and
/// those that do not hold exactly the digest of their path.
#[derive(Debug, Default)]
pub struct LinkCheck {
    /// Links read and checked (revisions, `_layers`, tag history).
    pub checked: usize,
    /// The links that failed the check, by repository, then key.
    pub faults: Vec<LinkFault>,
}

/// Which link of a repository a [`LinkFault`] is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    /// `_manifests/revisions/sha256/<hex>/link`.
    Revision,
    /// `_layers/sha256/<hex>/link`.
    Layer,
    /// `_manifests/tags/<tag>/index/sha256/<hex>/link` of this tag.
    History(String),
}

/// A link that does not hold exactly the digest of its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFault {
    /// Index of its repository in [`Inventory::repos`].
    pub repo: usize,
    /// Which link it is.
    pub kind: LinkKind,
    /// The digest of its path.
    pub id: u32,
    /// Its key.
    pub key: String,
    /// What it holds instead, or why it cannot be read.
    pub message: String,
}

/// Blob contents hashed while listing, by a scan with
/// [`ScanOptions::hash_blobs`] on a backend that reads while it lists.
#[derive(Debug, Default)]
pub struct BlobHashes {
    /// Blobs with a result (hashed or failed), by id.
    pub done: roaring::RoaringBitmap,
    /// Bytes hashed, indexed by blob id (0 where not hashed).
    pub bytes: Vec<u64>,
    /// Blobs whose content has another sha256 than their digest: id → it.
    pub mismatched: HashMap<u32, [u8; 32]>,
    /// Blobs that could not be read: id → why.
    pub failed: HashMap<u32, String>,
    /// Seconds spent listing the blobs and hashing them.
    pub seconds: f64,
}

impl Inventory {
    /// The blob with this id, if it is stored.
    pub fn blob(&self, id: u32) -> Option<&Blob> {
        self.blobs.get(id as usize)
    }

    /// Ids of every stored blob.
    pub fn stored_blobs(&self) -> roaring::RoaringBitmap {
        let mut all: roaring::RoaringBitmap = (0..self.blobs.len() as u32).collect();
        all -= &self.absent;
        all
    }
}

/// Reads size and modification time of the blobs in `ids` that a shallow
/// scan left without them. A blob directory without `data` is recorded in
/// `absent`; one that cannot be read becomes a problem and is treated as absent.
/// With `ages` false, blobs whose size is already known from a whole read
/// (manifests) are not stat'ed again: only their modification time would
/// be learnt, and only a sweep plan's grace period needs that.
pub fn fill_blob_stats(
    storage: &dyn Storage,
    inv: &mut Inventory,
    ids: &roaring::RoaringBitmap,
    ages: bool,
) {
    let todo: Vec<u32> = ids
        .iter()
        .filter(|&id| inv.blob(id).is_some_and(|b| !b.stat && (ages || !b.read)))
        .collect();
    // In chunks: the keys of every garbage blob at once would cost more
    // memory than the whole inventory.
    for chunk in todo.chunks(STAT_CHUNK) {
        let keys: Vec<String> = {
            use rayon::prelude::*;
            let interner = &inv.interner;
            chunk.par_iter().map(|&id| interner.data_key(id)).collect()
        };
        for (&id, res) in chunk.iter().zip(storage.stat_many(&keys)) {
            let b = &mut inv.blobs[id as usize];
            match res {
                Ok(m) => {
                    b.size = m.size;
                    b.modified = m.modified;
                    b.stat = true;
                }
                Err(e) if e.is_not_found() => {
                    inv.absent.insert(id);
                }
                Err(e) => {
                    inv.absent.insert(id);
                    inv.problems.push(storage_problem(&e));
                }
            }
        }
    }
}

/// Blobs stat'ed per concurrent batch by [`fill_blob_stats`].
const STAT_CHUNK: usize = 8192;

/// Settings of the scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Largest link file read (bytes).
    pub max_link_size: u64,
    /// List every file (a full audit: stray temp files, link files inside
    /// every digest directory). Without it, backends that prefer shallow
    /// listings (a filesystem) read only the directories whose names are
    /// digests, not the one-file directories below them.
    pub deep: bool,
    /// Stat every blob's `data` for its size and age. Without it, a shallow
    /// scan leaves blob sizes to [`fill_blob_stats`] (called for the blobs
    /// that matter: the garbage ones).
    pub stat_blobs: bool,
    /// With `deep`: read every revision, `_layers` and tag history link and
    /// check that it holds exactly the digest of its path
    /// ([`Inventory::links`]). A filesystem reads each one while its
    /// directory is open; other backends read them after listing.
    pub check_links: bool,
    /// With `deep`: hash blobs' content where the backend can while it
    /// lists them ([`Inventory::hashes`]; a filesystem hashes all but large
    /// ones). The rest is left to the caller.
    pub hash_blobs: bool,
    /// Read every tag's history (`index/`), which only a sweep plan needs.
    /// Without it, a shallow scan leaves [`Tag::history`] empty.
    pub tag_history: bool,
    /// Learn the modification time of every garbage blob, which only a
    /// sweep plan (its grace period) needs. Without it, garbage manifests'
    /// sizes come from reading them and they are not stat'ed again.
    pub blob_ages: bool,
    /// Keep the modification times of revision links (which a shallow scan
    /// stats anyway) and stat tags' `current/link` while their directory is
    /// open ([`Repository::revision_times`], [`Repository::tag_times`]):
    /// what [`crate::times`] would otherwise stat again by full path.
    pub link_times: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_link_size: 4096,
            deep: true,
            stat_blobs: true,
            check_links: false,
            hash_blobs: false,
            tag_history: true,
            blob_ages: true,
            link_times: false,
        }
    }
}

impl ScanOptions {
    /// The fast settings of `report` and `sweep`: shallow listings where the
    /// backend prefers them, blob sizes only where needed.
    pub fn fast() -> Self {
        ScanOptions {
            deep: false,
            stat_blobs: false,
            ..Default::default()
        }
    }
}

/// Parses a `link` file's content: exactly `sha256:<64 lowercase hex>`.
pub fn parse_link(bytes: &[u8]) -> Result<Digest, String> {
    if bytes.is_empty() {
        return Err("link is empty".into());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "link is not UTF-8 text".to_string())?;
    if text.ends_with('\n') || text.ends_with('\r') {
        return Err(format!("link ends with a newline: {text:?}"));
    }
    if text.trim() != text {
        return Err(format!("link has surrounding whitespace: {text:?}"));
    }
    match Digest::parse(text) {
        Ok(d @ Digest::Sha256(_)) => Ok(d),
        Ok(_) => Err(format!("link holds a non-sha256 digest: {text:?}")),
        Err(e) => Err(format!("link holds no valid digest: {e}")),
    }
}

/// A repository component per the distribution grammar.
pub fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // separator: '.', '_', '__', or one or more '-'
        let start = i;
        if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'_' {
            i += 1;
            if i < b.len() && b[i] == b'_' {
                i += 1;
            }
        } else if b[i] == b'-' {
            while i < b.len() && b[i] == b'-' {
                i += 1;
            }
        } else {
            return false;
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// A tag name per the distribution grammar.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

fn problem_for_entry(e: &Entry) -> Option<Problem> {
    match &e.kind {
        EntryKind::File => None,
        EntryKind::Symlink { target } => Some(Problem::new(
            Kind::Symlink,
            Severity::Error,
            &e.key,
            format!("symlink to {target:?}; not followed (the registry would follow it, so what it hides is unknown)"),
        )),
        EntryKind::Special => Some(Problem::new(
            Kind::UnexpectedEntry,
            Severity::Warning,
            &e.key,
            "not a regular file; ignored",
        )),
    }
}

fn storage_problem(e: &StorageError) -> Problem {
    match e {
        StorageError::Symlink { key, target } => Problem::new(
            Kind::Symlink,
            Severity::Error,
            key,
            format!("symlink to {target:?}; not followed (what it hides is unknown)"),
        ),
        other => Problem::new(
            Kind::Unreadable,
            Severity::Error,
            other.key(),
            other.to_string(),
        ),
    }
}

fn stray_or_unexpected(key: &str, what: &str) -> Problem {
    if key.ends_with(".tmp") {
        Problem::new(
            Kind::StrayTempFile,
            Severity::Info,
            key,
            "temporary file left by an interrupted write",
        )
    } else {
        Problem::new(
            Kind::UnexpectedEntry,
            Severity::Warning,
            key,
            format!("unexpected object in {what}; ignored"),
        )
    }
}

/// What one repository's listing holds, before interning.
#[derive(Default)]
struct RawRepo {
    name: String,
    visible: bool,
    revisions: Vec<[u8; 32]>,
    /// With `link_times`: the modification times of the revision links
    /// stat'ed (digest, time).
    revision_times: Vec<([u8; 32], SystemTime)>,
    /// Revision links whose size is unknown or wrong: read and checked.
    revision_links_to_check: Vec<(String, [u8; 32])>,
    /// Revision links already read while listing, by key.
    prefetched: HashMap<String, Result<Vec<u8>, StorageError>>,
    tags: BTreeMap<String, RawTag>,
    layers: Vec<[u8; 32]>,
    /// Alias links (key, alias digest, content when the listing read it).
    aliases: Vec<(String, Digest, Content)>,
    uploads: BTreeMap<String, Upload>,
    /// With `check_links`: links read while listing, and their faults.
    links_checked: usize,
    link_faults: Vec<(LinkKind, [u8; 32], String, String)>,
    /// With `check_links`: links the listing did not read (key, kind, digest).
    links_unread: Vec<(String, LinkKind, [u8; 32])>,
}

/// A tag as listed.
#[derive(Default)]
struct RawTag {
    /// The key of its `current/link`, when there is one.
    current: Option<String>,
    /// That link's content, when the listing read it.
    content: Option<Result<Vec<u8>, StorageError>>,
    /// That link's modification time, when the listing stat'ed it.
    modified: Option<SystemTime>,
    /// The digests in its `index/sha256/` (what it pointed at before).
    history: Vec<[u8; 32]>,
}

/// Why a link's content (or the attempt to read it) is not exactly
/// `sha256:<want>`; `None` when it is.
fn link_fault(res: &Result<Vec<u8>, StorageError>, want: &[u8; 32]) -> Option<String> {
    let want = Digest::Sha256(*want);
    Some(match res {
        Ok(bytes) => match parse_link(bytes) {
            Ok(got) if got == want => return None,
            Ok(got) => format!("link holds {got}, which disagrees with its path ({want})"),
            Err(e) => e,
        },
        Err(e) if e.is_not_found() => format!("link vanished during the run: {e}"),
        Err(e) => format!("link cannot be read: {e}"),
    })
}

/// What a deep listing says about one link of a repository: checked now
/// when its content came with the listing, else remembered to be read.
fn note_link(
    repo: &mut RawRepo,
    check: bool,
    key: &str,
    kind: LinkKind,
    h: [u8; 32],
    content: Option<&Result<Vec<u8>, StorageError>>,
) {
    if !check {
        return;
    }
    match content {
        Some(res) => {
            repo.links_checked += 1;
            if let Some(msg) = link_fault(res, &h) {
                repo.link_faults.push((kind, h, key.to_string(), msg));
            }
        }
        None => repo.links_unread.push((key.to_string(), kind, h)),
    }
}

/// What a deep listing of a repository's `_manifests/` or `_layers/`
/// brings for one entry besides the entry: its content, when the backend
/// read it while listing.
type Content = Option<Result<Vec<u8>, StorageError>>;

fn hex_dir(key: &str, hex: &str, problems: &mut Vec<Problem>) -> Option<[u8; 32]> {
    hex_dir_at(hex, || key.to_string(), problems)
}

/// [`hex_dir`] that builds the key only when it is needed for a problem.
fn hex_dir_at(
    hex: &str,
    key: impl FnOnce() -> String,
    problems: &mut Vec<Problem>,
) -> Option<[u8; 32]> {
    let h = crate::digest::parse_sha256_hex(hex);
    if h.is_none() {
        problems.push(Problem::new(
            Kind::BadDigestDirectory,
            Severity::Warning,
            key(),
            format!("{hex:?} is not a sha256 digest (64 lowercase hex digits); ignored"),
        ));
    }
    h
}

fn classify_manifests(
    repo: &mut RawRepo,
    e: &Entry,
    rest: &str,
    content: Content,
    check: bool,
    problems: &mut Vec<Problem>,
) {
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["revisions", "sha256", hex, "link"] => {
            if let Some(h) = hex_dir(&e.key, hex, problems) {
                repo.revisions.push(h);
                match content {
                    // A link that vanished: `read_links` drops the revision.
                    Some(Err(err)) if err.is_not_found() => {
                        repo.revision_links_to_check.push((e.key.clone(), h));
                        repo.prefetched.insert(e.key.clone(), Err(err));
                    }
                    Some(res) => {
                        note_link(repo, check, &e.key, LinkKind::Revision, h, Some(&res));
                        let good = matches!(&res, Ok(b) if parse_link(b) == Ok(Digest::Sha256(h)));
                        if !good {
                            repo.revision_links_to_check.push((e.key.clone(), h));
                            repo.prefetched.insert(e.key.clone(), res);
                        }
                    }
                    None => {
                        note_link(repo, check, &e.key, LinkKind::Revision, h, None);
                        if e.size != Some(SHA256_DIGEST_LEN as u64) {
                            repo.revision_links_to_check.push((e.key.clone(), h));
                        }
                    }
                }
            }
        }
        ["revisions", alg, _, "link"] if *alg != "sha256" => problems.push(Problem::new(
            Kind::NonSha256Digest,
            Severity::Warning,
            &e.key,
            format!("revision under algorithm {alg:?}; the registry writes only sha256; ignored"),
        )),
        ["tags", tag, "current", "link"] => {
            let t = repo.tags.entry(tag.to_string()).or_default();
            t.current = Some(e.key.clone());
            t.content = content;
        }
        ["tags", tag, "index", "sha256", hex, "link"] => {
            let t = repo.tags.entry(tag.to_string()).or_default();
            if let Some(h) = hex_dir(&e.key, hex, problems) {
                t.history.push(h);
                let kind = LinkKind::History(tag.to_string());
                note_link(repo, check, &e.key, kind, h, content.as_ref());
            }
        }
        _ => problems.push(stray_or_unexpected(&e.key, "_manifests")),
    }
}

fn classify_layers(
    repo: &mut RawRepo,
    e: &Entry,
    rest: &str,
    content: Content,
    check: bool,
    problems: &mut Vec<Problem>,
) {
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["sha256", hex, "link"] => {
            if let Some(h) = hex_dir(&e.key, hex, problems) {
                if let Some(size) = e.size.filter(|&s| s != SHA256_DIGEST_LEN as u64) {
                    problems.push(Problem::new(
                        Kind::BadLink,
                        Severity::Warning,
                        &e.key,
                        format!("layer link is {size} bytes, a valid link is {SHA256_DIGEST_LEN}"),
                    ));
                }
                repo.layers.push(h);
                note_link(repo, check, &e.key, LinkKind::Layer, h, content.as_ref());
            }
        }
        // sha384/sha512 aliases hold the canonical sha256 digest.
        [alg, hex, "link"] if *alg != "sha256" => {
            if let Some(d) = alias_digest(alg, hex, &e.key, problems) {
                repo.aliases.push((e.key.clone(), d, content));
            }
        }
        _ => problems.push(stray_or_unexpected(&e.key, "_layers")),
    }
}

/// True when `s` is only lowercase hex digits.
fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The directory of a repository's layer link for digest `d`:
/// `repositories/<repo>/_layers/<alg>/<hex>/` (`sha256`, or an alias's
/// algorithm).
pub fn layer_link_dir(repo: &str, d: &Digest) -> String {
    let text = d.to_string();
    let (alg, hex) = text.split_once(':').unwrap_or(("", &text));
    format!("repositories/{repo}/_layers/{alg}/{hex}/")
}

/// The alias digest `alg:hex` of `_layers/<alg>/<hex>/`, or a problem
/// when the name is not a well-formed digest.
fn alias_digest(alg: &str, hex: &str, key: &str, problems: &mut Vec<Problem>) -> Option<Digest> {
    let want = match alg {
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    };
    match Digest::parse(&format!("{alg}:{hex}")) {
        Ok(d @ Digest::Other(_)) if want.is_none_or(|n| hex.len() == n) && lower_hex(hex) => {
            Some(d)
        }
        _ => {
            problems.push(Problem::new(
                Kind::BadDigestDirectory,
                Severity::Warning,
                key,
                format!("{alg}:{hex} is not a digest the registry writes (sha384 or sha512, lowercase hex); ignored"),
            ));
            None
        }
    }
}

/// Reads the alias links that the listing did not read, then checks each:
/// it must name a sha256 digest. An alias that cannot be resolved is an
/// error: a manifest may reference the blob by it, so which blob that is
/// stays unknown.
fn resolve_aliases(
    storage: &dyn Storage,
    max_link_size: u64,
    raw: &mut [RawRepo],
    problems: &mut Vec<Problem>,
) -> Vec<Vec<(Digest, [u8; 32])>> {
    let unread: Vec<(usize, usize)> = raw
        .iter()
        .enumerate()
        .flat_map(|(r, repo)| {
            repo.aliases
                .iter()
                .enumerate()
                .filter(|(_, a)| a.2.is_none())
                .map(move |(i, _)| (r, i))
        })
        .collect();
    let keys: Vec<String> = unread
        .iter()
        .map(|&(r, i)| raw[r].aliases[i].0.clone())
        .collect();
    for (&(r, i), res) in unread.iter().zip(storage.read_many(&keys, max_link_size)) {
        raw[r].aliases[i].2 = Some(res);
    }
    raw.iter_mut()
        .map(|repo| {
            let mut out = Vec::new();
            for (key, alias, content) in repo.aliases.drain(..) {
                let why = match content.expect("every alias link was read") {
                    Ok(bytes) => match parse_link(&bytes) {
                        Ok(Digest::Sha256(h)) => {
                            out.push((alias, h));
                            continue;
                        }
                        Ok(other) => format!("link holds {other}, not a sha256 digest"),
                        Err(e) => e,
                    },
                    Err(e) => format!("link cannot be read: {e}"),
                };
                problems.push(Problem::new(
                    Kind::BadLink,
                    Severity::Error,
                    &key,
                    format!(
                        "alias link of {alias}: {why}; the blob that manifests reference as {alias} cannot be identified, so none can be proven garbage"
                    ),
                ));
            }
            out
        })
        .collect()
}

fn classify_uploads(repo: &mut RawRepo, e: &Entry, rest: &str, problems: &mut Vec<Problem>) {
    let Some((id, _file)) = rest.split_once('/') else {
        problems.push(stray_or_unexpected(&e.key, "_uploads"));
        return;
    };
    let u = repo
        .uploads
        .entry(id.to_string())
        .or_insert_with(|| Upload {
            id: id.to_string(),
            size: 0,
            started_at: None,
            modified: None,
        });
    u.size += e.size.unwrap_or(0);
    u.modified = u.modified.max(e.modified);
}

fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
}

/// Scans the storage into an [`Inventory`]. Fails only when the storage
/// cannot be listed at all; everything else becomes a [`Problem`].
pub fn scan(
    storage: &dyn Storage,
    opts: &ScanOptions,
    progress: &Progress,
) -> Result<Inventory, StorageError> {
    let mut problems = Vec::new();
    // Nothing at all under `docker/registry/v2/`: a wrong bucket prefix or
    // root (an object store has no directory to be missing), never a
    // storage to call clean or whole.
    let nothing_here = || StorageError::Backend {
        key: format!("{}/{}/", storage.describe(), crate::storage::V2_PREFIX),
        message: "nothing is stored here: not a registry root (check the path, bucket \
                  or prefix), or a registry nothing was ever pushed to"
            .into(),
    };
    // An object store lists `blobs/` and `repositories/` whole (in pages,
    // split as they turn out to need), at once; the root is looked at only
    // when both are empty.
    let flat = !storage.prefers_shallow();
    if !flat {
        let top = storage.list_dirs("")?;
        if top.dirs.is_empty() && top.files.is_empty() {
            return Err(nothing_here());
        }
    }
    let shallow = !opts.deep && storage.prefers_shallow();
    progress.phase(if flat {
        "listing blobs and repositories"
    } else {
        "listing blobs"
    });
    // Intern while listing: blobs first, so that blob ids are dense 0..n.
    let mut interner = Interner::new();
    let mut blob_vec: Vec<Blob> = Vec::new();
    let mut hashes = BlobHashes::default();
    let hash = opts.deep && opts.hash_blobs;
    let start = std::time::Instant::now();
    let expected = std::cell::Cell::new(0);
    let record = |h: [u8; 32],
                  size: Option<u64>,
                  modified: Option<SystemTime>,
                  hashed: Option<Result<ContentHash, StorageError>>| {
        // Room for all blobs at once: no table grown and rehashed
        // again and again, no vector of digests copied as it doubles.
        let more = expected.take();
        if more > 0 {
            interner.reserve(more);
            blob_vec.reserve(more);
        }
        let id = interner.intern_sha256(&h);
        if id as usize == blob_vec.len() {
            blob_vec.push(Blob {
                id,
                size: size.unwrap_or(0),
                modified,
                stat: size.is_some(),
                read: false,
            });
            if let Some(res) = hashed {
                hashes.done.insert(id);
                hashes.bytes.resize(id as usize + 1, 0);
                match res {
                    Ok(c) => {
                        hashes.bytes[id as usize] = c.size;
                        if c.sha256 != h {
                            hashes.mismatched.insert(id, c.sha256);
                        }
                    }
                    Err(e) => {
                        hashes.failed.insert(id, e.to_string());
                    }
                }
            }
        }
    };
    let mut flat_repos = None;
    if flat {
        let (blobs, repos) = std::thread::scope(|sc| {
            let repos = sc.spawn(|| {
                let mut found = Vec::new();
                let r = list_repositories_flat(storage, opts, &mut found);
                (r, found)
            });
            let blobs = scan_blobs_flat(storage, &mut problems, &expected, record);
            (
                blobs,
                repos.join().expect("the repository listing does not panic"),
            )
        });
        let listed = blobs?;
        let (repos, found) = repos;
        let (repos, entries) = repos?;
        problems.extend(found);
        if listed == 0 && entries == 0 {
            let top = storage.list_dirs("")?;
            if top.dirs.is_empty() && top.files.is_empty() {
                return Err(nothing_here());
            }
        }
        flat_repos = Some(repos);
    } else {
        scan_blobs(storage, shallow, hash, &mut problems, &expected, record)?;
    }
    if hash {
        hashes.seconds = start.elapsed().as_secs_f64();
    }
    blob_vec.shrink_to_fit();
    let mut raw = match flat_repos {
        Some(repos) => repos,
        None => {
            progress.phase("listing repositories");
            let names = discover_repositories(storage, &mut problems)?;
            progress.phase("listing repository links");
            list_repositories(storage, names, shallow, opts, &mut problems)
        }
    };
    progress.phase("reading links");
    let tag_currents = read_links(storage, opts, &mut raw, &mut problems);
    let raw_aliases = resolve_aliases(storage, opts.max_link_size, &mut raw, &mut problems);
    let link_counts: Vec<(usize, LinkCounts)> = raw
        .iter_mut()
        .enumerate()
        .map(|(i, r)| {
            let counts = (
                r.links_checked,
                std::mem::take(&mut r.link_faults),
                std::mem::take(&mut r.links_unread),
            );
            (i, counts)
        })
        .collect();

    // The digests that links name are nearly all blobs that the listing
    // interned: they are looked up in parallel, and only the others (links
    // to missing blobs) are interned one by one, in the same order as ever.
    let looked_up: Vec<(LookedUp, LookedUp, Vec<LookedUp>)> = {
        use rayon::prelude::*;
        let interner = &interner;
        raw.par_iter()
            .map(|r| {
                (
                    LookedUp::new(interner, &r.revisions),
                    LookedUp::new(interner, &r.layers),
                    r.tags
                        .values()
                        .map(|t| LookedUp::new(interner, &t.history))
                        .collect(),
                )
            })
            .collect()
    };
    let mut repos = Vec::with_capacity(raw.len());
    let mut aliases: HashMap<u32, Vec<u32>> = HashMap::new();
    for (((r, currents), raw_aliases), (revisions, layers, history)) in raw
        .into_iter()
        .zip(tag_currents)
        .zip(raw_aliases)
        .zip(looked_up)
    {
        let revisions = revisions.finish(&mut interner, &r.revisions);
        let layers = layers.finish(&mut interner, &r.layers);
        let mut repo_aliases: Vec<(u32, u32)> = raw_aliases
            .iter()
            .map(|(alias, h)| (interner.intern(alias), interner.intern_sha256(h)))
            .collect();
        repo_aliases.sort_unstable();
        repo_aliases.dedup();
        for &(a, c) in &repo_aliases {
            let targets = aliases.entry(a).or_default();
            if !targets.contains(&c) {
                targets.push(c);
            }
        }
        let tag_times: Vec<Option<SystemTime>> = if opts.link_times {
            r.tags.values().map(|t| t.modified).collect()
        } else {
            Vec::new()
        };
        let tags = r
            .tags
            .into_iter()
            .zip(currents)
            .zip(history)
            .map(|(((name, t), cur), found)| Tag {
                name,
                current: cur.map(|h| interner.intern_sha256(&h)),
                history: found.finish(&mut interner, &t.history),
            })
            .collect();
        // Every digest of a revision link is interned by now.
        let mut revision_times: Vec<(u32, SystemTime)> = r
            .revision_times
            .iter()
            .filter_map(|(h, t)| interner.get_sha256(h).map(|id| (id, *t)))
            .collect();
        revision_times.sort_unstable_by_key(|&(id, _)| id);
        repos.push(Repository {
            name: r.name,
            visible: r.visible,
            revisions,
            tags,
            layers,
            aliases: repo_aliases,
            uploads: r.uploads.into_values().collect(),
            revision_times,
            tag_times,
        });
    }
    let mut inv = Inventory {
        storage: storage.describe(),
        interner,
        blobs: blob_vec,
        repos,
        problems,
        absent: Default::default(),
        links: LinkCheck::default(),
        hashes,
        aliases,
    };
    if opts.deep && opts.check_links {
        check_unread_links(storage, opts, &mut inv, link_counts);
    }
    if opts.stat_blobs {
        let all = inv.stored_blobs();
        fill_blob_stats(storage, &mut inv, &all, true);
    }
    Ok(inv)
}

/// The ids of a list of digests, as far as the interner already knew them:
/// sorted and deduplicated when it knew them all.
struct LookedUp {
    ids: Vec<u32>,
    /// Positions (in the list) of the digests it did not know.
    unknown: Vec<usize>,
}

impl LookedUp {
    fn new(interner: &Interner, hs: &[[u8; 32]]) -> LookedUp {
        let mut unknown = Vec::new();
        let mut ids: Vec<u32> = hs
            .iter()
            .enumerate()
            .map(|(i, h)| {
                interner.get_sha256(h).unwrap_or_else(|| {
                    unknown.push(i);
                    u32::MAX
                })
            })
            .collect();
        if unknown.is_empty() {
            ids.sort_unstable();
            ids.dedup();
        }
        LookedUp { ids, unknown }
    }

    /// Interns the digests of `hs` that were unknown (in list order) and
    /// returns the sorted, deduplicated ids of all of them.
    fn finish(mut self, interner: &mut Interner, hs: &[[u8; 32]]) -> Vec<u32> {
        if self.unknown.is_empty() {
            return self.ids;
        }
        for &i in &self.unknown {
            self.ids[i] = interner.intern_sha256(&hs[i]);
        }
        self.ids.sort_unstable();
        self.ids.dedup();
        self.ids
    }
}

/// Prefixes listed per concurrent batch: bounds the memory that listings
/// hold at once.
const LIST_BATCH: usize = 128;

/// Blob shards listed per concurrent batch (each holds thousands of names).
const BLOB_SHARD_BATCH: usize = 16;

/// Blob shards listed in full per concurrent batch: as many as a filesystem
/// has I/O threads, so that a cold disk's queue stays full.
const DEEP_BLOB_SHARD_BATCH: usize = 64;

/// `list` over `prefixes` in concurrent batches of `batch`, on another
/// thread, one batch ahead of `f`, which gets each result with its index in
/// `prefixes`: the caller's own work (parsing names, interning digests)
/// overlaps the listing.
fn in_batches<T: Send>(
    prefixes: &[String],
    batch: usize,
    list: impl Fn(&[String]) -> Vec<T> + Sync,
    mut f: impl FnMut(usize, T),
) {
    let mut hand_over = |b: usize, results: Vec<T>| {
        for (i, res) in results.into_iter().enumerate() {
            f(b * batch + i, res);
        }
    };
    if prefixes.len() <= batch {
        hand_over(0, list(prefixes));
        return;
    }
    std::thread::scope(|s| {
        // One batch waits in the channel at most: memory stays bounded.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let list = &list;
        s.spawn(move || {
            for (b, chunk) in prefixes.chunks(batch).enumerate() {
                if tx.send((b, list(chunk))).is_err() {
                    return;
                }
            }
        });
        for (b, results) in rx {
            hand_over(b, results);
        }
    });
}

/// Lists `blobs/`: hands (digest, size, mtime) of every blob's `data` to
/// `out`; a shallow listing knows neither size nor mtime. Once the first
/// batch of shards is listed, `expected` is set to an estimate of the blobs
/// still to come (digests spread evenly over the shards).
fn scan_blobs(
    storage: &dyn Storage,
    shallow: bool,
    hash: bool,
    problems: &mut Vec<Problem>,
    expected: &std::cell::Cell<usize>,
    mut out: impl FnMut(
        [u8; 32],
        Option<u64>,
        Option<SystemTime>,
        Option<Result<ContentHash, StorageError>>,
    ),
) -> Result<(), StorageError> {
    let top = storage.list_dirs("blobs/")?;
    for f in &top.files {
        problems
            .push(problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/")));
    }
    for d in top.dirs.iter().filter(|d| *d != "sha256") {
        problems.push(Problem::new(
            Kind::NonSha256Digest,
            Severity::Warning,
            format!("blobs/{d}/"),
            "blobs are stored only under sha256; this directory is not examined",
        ));
    }
    let shards = storage.list_dirs("blobs/sha256/")?;
    for f in &shards.files {
        problems.push(
            problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/sha256/")),
        );
    }
    let prefixes: Vec<String> = shards
        .dirs
        .iter()
        .filter(|d| {
            let ok = d.len() == 2 && lower_hex(d);
            if !ok {
                problems.push(Problem::new(
                    Kind::BadDigestDirectory,
                    Severity::Warning,
                    format!("blobs/sha256/{d}/"),
                    "not a two-hex-digit shard directory; not examined",
                ));
            }
            ok
        })
        .map(|d| format!("blobs/sha256/{d}/"))
        .collect();
    if shallow {
        // The blob directories' names are the digests: no need to enter them.
        let list = |chunk: &[String]| storage.list_digest_dirs_many(chunk, &[]);
        let mut listed = 0usize;
        let sample = BLOB_SHARD_BATCH.min(prefixes.len());
        in_batches(&prefixes, BLOB_SHARD_BATCH, list, |i, res| {
            let prefix = &prefixes[i];
            let listing = match res {
                Ok(l) => l,
                Err(e) => {
                    problems.push(storage_problem(&e));
                    return;
                }
            };
            let shard = &prefix["blobs/sha256/".len()..prefix.len() - 1];
            let shard_byte = u8::from_str_radix(shard, 16).ok();
            listed += listing.digests.len();
            if i + 1 == sample {
                // The first batch of shards, scaled up, with 5 % to spare:
                // at most 16 times too many for a tree whose digests all
                // share their first hex digit.
                let all = listed.saturating_mul(prefixes.len()) / sample;
                expected.set((all.saturating_mul(21) / 20).saturating_sub(listed));
            }
            for f in &listing.rest.files {
                problems.push(
                    problem_for_entry(f)
                        .unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/sha256/")),
                );
            }
            for hex in &listing.rest.dirs {
                hex_dir_at(hex, || format!("{prefix}{hex}/"), problems);
            }
            for h in listing.digests {
                if Some(h[0]) == shard_byte {
                    out(h, None, None, None);
                } else {
                    let hex = crate::digest::hex(&h);
                    problems.push(Problem::new(
                        Kind::BadDigestDirectory,
                        Severity::Warning,
                        format!("{prefix}{hex}/"),
                        format!(
                            "blob {hex} is in shard {shard}; the registry cannot find it there"
                        ),
                    ));
                }
            }
        });
        return Ok(());
    }
    let fetch = Fetch {
        read: None,
        hash: hash.then_some("data"),
    };
    for chunk in prefixes.chunks(DEEP_BLOB_SHARD_BATCH) {
        for (prefix, res) in chunk
            .iter()
            .zip(storage.list_fetching_many(chunk, true, fetch))
        {
            let listing = match res {
                Ok(l) => l,
                Err(e) => {
                    problems.push(storage_problem(&e));
                    continue;
                }
            };
            problems.extend(listing.errors.iter().map(storage_problem));
            shard_entries(prefix, listing.entries, listing.fetched, problems, &mut out);
        }
    }
    Ok(())
}

/// Hands the blobs among `entries`, a recursive listing of the shard
/// `prefix` (`blobs/sha256/xx/`), to `out`; anything else is a problem.
fn shard_entries(
    prefix: &str,
    entries: Vec<Entry>,
    fetched: Vec<(usize, Result<Fetched, StorageError>)>,
    problems: &mut Vec<Problem>,
    out: &mut impl FnMut(
        [u8; 32],
        Option<u64>,
        Option<SystemTime>,
        Option<Result<ContentHash, StorageError>>,
    ),
) {
    let shard = &prefix["blobs/sha256/".len()..prefix.len() - 1];
    let mut fetched = fetched.into_iter().peekable();
    for (n, e) in entries.into_iter().enumerate() {
        let hashed = match fetched.next_if(|(j, _)| *j == n) {
            Some((_, Ok(Fetched::Hash(c)))) => Some(Ok(c)),
            Some((_, Ok(Fetched::Content(_)))) | None => None,
            Some((_, Err(err))) => Some(Err(err)),
        };
        if let Some(p) = problem_for_entry(&e) {
            problems.push(p);
            continue;
        }
        let rest = &e.key[prefix.len()..];
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [hex, "data"] => {
                if let Some(h) = hex_dir(&e.key, hex, problems) {
                    if !hex.starts_with(shard) {
                        problems.push(Problem::new(
                            Kind::BadDigestDirectory,
                            Severity::Warning,
                            &e.key,
                            format!(
                                "blob {hex} is in shard {shard}; the registry cannot find it there"
                            ),
                        ));
                        continue;
                    }
                    match e.size {
                        Some(size) => out(h, Some(size), e.modified, hashed),
                        None => problems.push(Problem::new(
                            Kind::Unreadable,
                            Severity::Error,
                            &e.key,
                            "size of blob unknown",
                        )),
                    }
                }
            }
            _ => problems.push(stray_or_unexpected(&e.key, "blobs/sha256/")),
        }
    }
}

/// Lists `blobs/` as [`scan_blobs`] does, in one recursive listing split
/// where [`blob_cuts`] says ([`Storage::list_split`]): a bucket of a few
/// hundred blobs takes one request instead of one per shard.
fn scan_blobs_flat(
    storage: &dyn Storage,
    problems: &mut Vec<Problem>,
    expected: &std::cell::Cell<usize>,
    mut out: impl FnMut(
        [u8; 32],
        Option<u64>,
        Option<SystemTime>,
        Option<Result<ContentHash, StorageError>>,
    ),
) -> Result<usize, StorageError> {
    let listing = storage.list_split("blobs/", &blob_cuts)?;
    let listed = listing.entries.len();
    expected.set(listed);
    problems.extend(listing.errors.iter().map(storage_problem));
    let mut other_dirs = std::collections::BTreeSet::new();
    let mut bad_shards = std::collections::BTreeSet::new();
    let mut top_files = Vec::new();
    let mut shard_files = Vec::new();
    let mut shards: Vec<(String, Vec<Entry>)> = Vec::new();
    for e in listing.entries {
        let rest = &e.key["blobs/".len()..];
        match rest.split_once('/') {
            None => top_files.push(e),
            Some((d, _)) if d != "sha256" => {
                other_dirs.insert(d.to_string());
            }
            Some((_, r)) => match r.split_once('/') {
                None => shard_files.push(e),
                Some((d, _)) if !(d.len() == 2 && lower_hex(d)) => {
                    bad_shards.insert(d.to_string());
                }
                Some((d, _)) => {
                    let prefix = format!("blobs/sha256/{d}/");
                    match shards.last_mut() {
                        Some((p, v)) if *p == prefix => v.push(e),
                        _ => shards.push((prefix, vec![e])),
                    }
                }
            },
        }
    }
    // The problems of scan_blobs, in its order.
    for f in &top_files {
        problems
            .push(problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/")));
    }
    for d in other_dirs {
        problems.push(Problem::new(
            Kind::NonSha256Digest,
            Severity::Warning,
            format!("blobs/{d}/"),
            "blobs are stored only under sha256; this directory is not examined",
        ));
    }
    for f in &shard_files {
        problems.push(
            problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "blobs/sha256/")),
        );
    }
    for d in bad_shards {
        problems.push(Problem::new(
            Kind::BadDigestDirectory,
            Severity::Warning,
            format!("blobs/sha256/{d}/"),
            "not a two-hex-digit shard directory; not examined",
        ));
    }
    for (prefix, entries) in shards {
        shard_entries(&prefix, entries, Vec::new(), problems, &mut out);
    }
    Ok(listed)
}

/// How many ranges to list the rest of a listing in, when it is estimated
/// at `pages` more pages: one (page after page) for a page or two; else as
/// many as are listed at once, up to one per page; and for a bucket of
/// more than 25 pages per request in flight, one range per 25 pages, so
/// that the pages that end ranges early stay within 4 % of all of them.
fn ranges_for(pages: f64, parallel: usize) -> usize {
    // (NaN too.)
    if pages.is_nan() || pages < 1.5 {
        return 1;
    }
    let pages = pages.min(1e7);
    (pages.ceil() as usize)
        .min(parallel.max(1))
        .max((pages / 25.0) as usize)
}

/// [`Cuts`](crate::storage::Cuts) for `blobs/`: digests are uniform, so
/// the share of the sha256 space that the first page covered (up to
/// `last`) tells how many pages are left; the rest of the space is cut
/// into [`ranges_for`] equal parts.
fn blob_cuts(last: &str, parallel: usize) -> Vec<String> {
    const SPACE: f64 = (1u64 << 32) as f64;
    let covered = match last.strip_prefix("blobs/sha256/") {
        // Before the sha256 space (other directories first): no estimate.
        None if last < "blobs/sha256/" => 0.0,
        None => return Vec::new(),
        Some(r) => {
            let hex: String = r
                .split('/')
                .nth(1)
                .unwrap_or(r)
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .take(8)
                .collect();
            if hex.is_empty() {
                return Vec::new();
            }
            let v = u64::from_str_radix(&hex, 16).unwrap_or(0) << (4 * (8 - hex.len()));
            (v as f64 + 1.0) / SPACE
        }
    };
    let pages = if covered > 0.0 {
        (1.0 - covered) / covered
    } else {
        f64::INFINITY
    };
    let n = if pages.is_finite() {
        ranges_for(pages, parallel)
    } else {
        parallel.max(1)
    };
    (1..n)
        .map(|i| {
            let x = covered + (1.0 - covered) * i as f64 / n as f64;
            let h = format!("{:08x}", ((x * SPACE) as u64).min(u32::MAX as u64));
            format!("blobs/sha256/{}/{h}", &h[..2])
        })
        .collect()
}

/// Finds every repository below `repositories/`, breadth first, one
/// concurrent batch of directory listings per level. Returns (name, visible).
fn discover_repositories(
    storage: &dyn Storage,
    problems: &mut Vec<Problem>,
) -> Result<Vec<(String, bool, bool, bool)>, StorageError> {
    // Fail the run when the top cannot be listed at all.
    let root = storage.list_dirs("repositories/")?;
    let mut found = Vec::new();
    let mut level: Vec<String> = Vec::new();
    let mut pending = vec![("repositories/".to_string(), Ok(root))];
    loop {
        for (prefix, res) in pending.drain(..) {
            let listing = match res {
                Ok(l) => l,
                Err(e) => {
                    problems.push(storage_problem(&e));
                    continue;
                }
            };
            let name = prefix["repositories/".len()..]
                .trim_end_matches('/')
                .to_string();
            let has = |d: &str| listing.dirs.iter().any(|x| x == d);
            let (m, l, u) = (has("_manifests"), has("_layers"), has("_uploads"));
            if !name.is_empty() && (m || l || u) {
                if !m {
                    problems.push(Problem::new(
                        Kind::NotARepository,
                        Severity::Warning,
                        &prefix,
                        "has _layers or _uploads but no _manifests: the registry cannot see it",
                    ));
                }
                if name.len() > 255 || !name.split('/').all(valid_component) {
                    problems.push(Problem::new(
                        Kind::InvalidName,
                        Severity::Warning,
                        &prefix,
                        format!("{name:?} is not a valid repository name"),
                    ));
                }
                found.push((name.clone(), m, l, u));
            }
            for f in &listing.files {
                problems.push(
                    problem_for_entry(f)
                        .unwrap_or_else(|| stray_or_unexpected(&f.key, "repositories/")),
                );
            }
            for d in &listing.dirs {
                if d.starts_with('_') {
                    if !matches!(d.as_str(), "_manifests" | "_layers" | "_uploads")
                        || name.is_empty()
                    {
                        problems.push(Problem::new(
                            Kind::UnexpectedEntry,
                            Severity::Warning,
                            format!("{prefix}{d}/"),
                            "unexpected directory; not examined",
                        ));
                    }
                } else {
                    level.push(format!("{prefix}{d}/"));
                }
            }
        }
        if level.is_empty() {
            break;
        }
        let results = storage.list_dirs_many(&level);
        pending.extend(level.drain(..).zip(results));
    }
    found.sort();
    Ok(found)
}

/// What `list_repositories_shallow` does with one listing of a repository's
/// prefix.
type ListingHandler<'a> = dyn FnMut(&str, &mut RawRepo, DirListing, &mut Vec<Problem>) + 'a;

/// What [`list_repositories_shallow`] does with each digest listing.
type DigestHandler<'a> = dyn FnMut(&str, &mut RawRepo, DigestListing, &mut Vec<Problem>) + 'a;

/// Lists the prefixes of `list` (each with the index of its repository) in
/// batches with `lister`, and hands each listing to `f` with its prefix and
/// repository; a prefix that cannot be listed is a problem.
fn each_listing<T: Send>(
    repos: &mut [RawRepo],
    problems: &mut Vec<Problem>,
    list: &[(String, usize)],
    lister: impl Fn(&[String]) -> Vec<Result<T, StorageError>> + Sync,
    mut f: impl FnMut(&str, &mut RawRepo, T, &mut Vec<Problem>),
) {
    let prefixes: Vec<String> = list.iter().map(|(p, _)| p.clone()).collect();
    in_batches(&prefixes, LIST_BATCH, lister, |n, res| {
        let (prefix, i) = (&list[n].0, list[n].1);
        match res {
            Ok(listing) => f(prefix, &mut repos[i], listing, problems),
            Err(e) => problems.push(storage_problem(&e)),
        }
    });
}

/// Lists the directories whose names are digests (revisions, layer links,
/// tag history) without entering them. The storage probes inside each one
/// relative to the open directory: a revision's `link` is stat'ed (an API
/// delete removes the link and leaves the directory), a tag's
/// `current/link` is read. Uploads are listed in full.
fn list_repositories_shallow(
    storage: &dyn Storage,
    names: Vec<(String, bool, bool, bool)>,
    opts: &ScanOptions,
    problems: &mut Vec<Problem>,
) -> Vec<RawRepo> {
    let max_link_size = opts.max_link_size;
    let mut repos: Vec<RawRepo> = Vec::with_capacity(names.len());
    let mut up_prefixes = Vec::new();
    let mut up_owner = Vec::new();
    let (mut revs, mut tags, mut layers) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (name, m, l, u)) in names.into_iter().enumerate() {
        if m {
            revs.push((
                format!("repositories/{name}/_manifests/revisions/sha256/"),
                i,
            ));
            tags.push((format!("repositories/{name}/_manifests/tags/"), i));
        }
        if l {
            layers.push((format!("repositories/{name}/_layers/"), i));
        }
        if u {
            up_prefixes.push(format!("repositories/{name}/_uploads/"));
            up_owner.push(i);
        }
        repos.push(RawRepo {
            name,
            visible: m,
            ..Default::default()
        });
    }
    // Files directly in a digest-directory level are unexpected.
    let strays = |listing: &DirListing, prefix: &str, problems: &mut Vec<Problem>| {
        for f in &listing.files {
            problems
                .push(problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, prefix)));
        }
    };
    let each = |repos: &mut [RawRepo],
                problems: &mut Vec<Problem>,
                list: &[(String, usize)],
                probes: &[Probe<'_>],
                f: &mut ListingHandler<'_>| {
        let lister = |chunk: &[String]| storage.list_dirs_probe_many(chunk, probes);
        each_listing(
            repos,
            problems,
            list,
            lister,
            |prefix, repo, l, problems| {
                strays(&l, prefix, problems);
                f(prefix, repo, l, problems);
            },
        );
    };
    // Directories of digest directories: names other than digests are
    // problems (keyed `<prefix><name>/link`), the digests go to `f`.
    let each_digest = |repos: &mut [RawRepo],
                       problems: &mut Vec<Problem>,
                       list: &[(String, usize)],
                       probes: &[Probe<'_>],
                       f: &mut DigestHandler<'_>| {
        let lister = |chunk: &[String]| storage.list_digest_dirs_many(chunk, probes);
        each_listing(
            repos,
            problems,
            list,
            lister,
            |prefix, repo, l, problems| {
                strays(&l.rest, prefix, problems);
                for d in &l.rest.dirs {
                    hex_dir_at(d, || format!("{prefix}{d}/link"), problems);
                }
                f(prefix, repo, l, problems);
            },
        );
    };
    // `_layers/` holds `sha256/` and, for blobs pushed by a sha384 or
    // sha512 digest, alias directories whose links name the sha256 blob.
    let owner: HashMap<&str, usize> = layers.iter().map(|(p, i)| (p.as_str(), *i)).collect();
    let (mut sha256_layers, mut alias_layers) = (Vec::new(), Vec::new());
    each(
        &mut repos,
        problems,
        &layers,
        &[],
        &mut |prefix, _, listing, _| {
            let i = owner[prefix];
            for alg in listing.dirs {
                let dirs = if alg == "sha256" {
                    &mut sha256_layers
                } else {
                    &mut alias_layers
                };
                dirs.push((format!("{prefix}{alg}/"), i));
            }
        },
    );
    each_digest(
        &mut repos,
        problems,
        &sha256_layers,
        &[],
        &mut |_, repo, listing, _| {
            if repo.layers.is_empty() {
                repo.layers = listing.digests;
            } else {
                repo.layers.extend(listing.digests);
            }
        },
    );
    each(
        &mut repos,
        problems,
        &alias_layers,
        &[Probe::Read("link", max_link_size)],
        &mut |prefix, repo, listing, problems| {
            let alg = prefix
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            for (d, probed) in listing.dirs.iter().zip(listing.probes) {
                let key = format!("{prefix}{d}/link");
                let Some(alias) = alias_digest(alg, d, &key, problems) else {
                    continue;
                };
                let content = match probed {
                    Ok(Probed::Content(c)) => Ok(c),
                    Ok(_) => Err(StorageError::NotAFile { key: key.clone() }),
                    Err(e) => Err(e),
                };
                repo.aliases.push((key, alias, Some(content)));
            }
        },
    );
    let link_times = opts.link_times;
    each_digest(
        &mut repos,
        problems,
        &revs,
        &[Probe::Stat("link")],
        &mut |prefix, repo, listing, problems| {
            repo.revisions.reserve_exact(listing.digests.len());
            if link_times {
                repo.revision_times.reserve_exact(listing.digests.len());
            }
            for (h, probed) in listing.digests.into_iter().zip(listing.probes) {
                let key = || format!("{prefix}{}/link", crate::digest::hex(&h));
                if let (
                    true,
                    Ok(Probed::Meta(Meta {
                        modified: Some(t), ..
                    })),
                ) = (link_times, &probed)
                {
                    repo.revision_times.push((h, *t));
                }
                match probed {
                    Ok(Probed::Meta(m)) if m.size == SHA256_DIGEST_LEN as u64 => {
                        repo.revisions.push(h)
                    }
                    Ok(_) => {
                        repo.revisions.push(h);
                        repo.revision_links_to_check.push((key(), h));
                    }
                    // The directory of a deleted manifest: not a revision.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        problems.push(storage_problem(&e));
                        repo.revisions.push(h);
                    }
                }
            }
        },
    );
    let history = opts.tag_history;
    let mut tag_probes = vec![Probe::Read("current/link", max_link_size)];
    if history {
        tag_probes.push(Probe::List("index/sha256"));
    }
    if link_times {
        tag_probes.push(Probe::Stat("current/link"));
    }
    each(
        &mut repos,
        problems,
        &tags,
        &tag_probes,
        &mut |prefix, repo, listing, problems| {
            let mut probes = listing.probes.into_iter();
            for d in &listing.dirs {
                let current = probes.next();
                let index = if history {
                    probes.next().expect("a probe of index/ per tag")
                } else {
                    Ok(Probed::Listing(DirListing::default()))
                };
                // A link that cannot be stat'ed here is left to `times`.
                let modified = if link_times {
                    match probes.next().expect("a stat of current/link per tag") {
                        Ok(Probed::Meta(m)) => m.modified,
                        _ => None,
                    }
                } else {
                    None
                };
                let key = format!("{prefix}{d}/current/link");
                let content = match current.expect("a probe of current/link per tag") {
                    Ok(Probed::Content(c)) => Ok(c),
                    Ok(_) => Err(StorageError::NotAFile { key: key.clone() }),
                    Err(e) => Err(e),
                };
                let t = repo.tags.entry(d.clone()).or_default();
                t.current = Some(key);
                t.content = Some(content);
                t.modified = modified;
                let index_prefix = format!("{prefix}{d}/index/sha256/");
                match index {
                    Ok(Probed::Listing(history)) => {
                        strays(&history, &index_prefix, problems);
                        for h in &history.dirs {
                            let key = || format!("{index_prefix}{h}/link");
                            if let Some(h) = hex_dir_at(h, key, problems) {
                                t.history.push(h);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => problems.push(storage_problem(&e)),
                }
            }
        },
    );
    for ((prefix, i), res) in up_prefixes
        .iter()
        .zip(up_owner)
        .zip(storage.list_many(&up_prefixes, true))
    {
        match res {
            Ok(listing) => {
                problems.extend(listing.errors.iter().map(storage_problem));
                for e in &listing.entries {
                    if let Some(p) = problem_for_entry(e) {
                        problems.push(p);
                        continue;
                    }
                    classify_uploads(&mut repos[i], e, &e.key[prefix.len()..], problems);
                }
            }
            Err(e) => problems.push(storage_problem(&e)),
        }
    }
    repos
}

fn list_repositories(
    storage: &dyn Storage,
    names: Vec<(String, bool, bool, bool)>,
    shallow: bool,
    opts: &ScanOptions,
    problems: &mut Vec<Problem>,
) -> Vec<RawRepo> {
    if shallow {
        return list_repositories_shallow(storage, names, opts, problems);
    }
    let mut parts: [(Part, Vec<(String, usize)>); 3] = [
        (Part::Manifests, Vec::new()),
        (Part::Layers, Vec::new()),
        (Part::Uploads, Vec::new()),
    ];
    for (i, (name, m, l, u)) in names.iter().enumerate() {
        for (present, sub, part) in [(m, "_manifests", 0), (l, "_layers", 1), (u, "_uploads", 2)] {
            if *present {
                parts[part]
                    .1
                    .push((format!("repositories/{name}/{sub}/"), i));
            }
        }
    }
    let mut repos: Vec<RawRepo> = names
        .into_iter()
        .map(|(name, visible, _, _)| RawRepo {
            name,
            visible,
            ..Default::default()
        })
        .collect();
    let check = opts.check_links;
    let link = Fetch {
        read: Some(("link", opts.max_link_size)),
        hash: None,
    };
    for (part, list) in &parts {
        // Uploads need sizes; links do not (a filesystem would stat each
        // one). Links are read while listing where the backend can: tags'
        // current links and revision links always, layer links to check them.
        let (want_meta, fetch) = match part {
            Part::Manifests => (false, link),
            Part::Layers if check => (false, link),
            Part::Layers => (false, Fetch::default()),
            Part::Uploads => (true, Fetch::default()),
        };
        for chunk in list.chunks(LIST_BATCH) {
            let prefixes: Vec<String> = chunk.iter().map(|(p, _)| p.clone()).collect();
            let results = if fetch.is_empty() {
                storage.list_many(&prefixes, want_meta)
            } else {
                storage.list_fetching_many(&prefixes, want_meta, fetch)
            };
            for ((prefix, i), res) in chunk.iter().zip(results) {
                match res {
                    Ok(l) => classify_listing(*part, prefix, &mut repos[*i], l, check, problems),
                    Err(e) => problems.push(storage_problem(&e)),
                }
            }
        }
    }
    repos
}

/// Which part of a repository a prefix lists.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Part {
    Manifests,
    Layers,
    Uploads,
}

/// Sorts the recursive listing of one part of a repository (`prefix` is
/// `repositories/<name>/_manifests/`, `_layers/` or `_uploads/`) into `repo`.
fn classify_listing(
    part: Part,
    prefix: &str,
    repo: &mut RawRepo,
    listing: crate::storage::Listing,
    check: bool,
    problems: &mut Vec<Problem>,
) {
    problems.extend(listing.errors.iter().map(storage_problem));
    let mut fetched = listing.fetched.into_iter().peekable();
    for (n, e) in listing.entries.iter().enumerate() {
        let content = match fetched.next_if(|(j, _)| *j == n) {
            Some((_, Ok(Fetched::Content(c)))) => Some(Ok(c)),
            Some((_, Ok(Fetched::Hash(_)))) | None => None,
            Some((_, Err(err))) => Some(Err(err)),
        };
        if let Some(p) = problem_for_entry(e) {
            problems.push(p);
            continue;
        }
        let rest = &e.key[prefix.len()..];
        match part {
            Part::Manifests => classify_manifests(repo, e, rest, content, check, problems),
            Part::Layers => classify_layers(repo, e, rest, content, check, problems),
            Part::Uploads => classify_uploads(repo, e, rest, problems),
        }
    }
}

/// Lists `repositories/` in one recursive listing split where
/// [`repository_cuts`] says ([`Storage::list_split`]), and finds in it what
/// [`discover_repositories`] and [`list_repositories`] find by listing
/// directory after directory: the repositories (a directory with a
/// `_manifests`, `_layers` or `_uploads` child), the same problems, and
/// each repository's parts. A bucket of a few hundred links takes one
/// request instead of four per repository.
fn list_repositories_flat(
    storage: &dyn Storage,
    opts: &ScanOptions,
    problems: &mut Vec<Problem>,
) -> Result<(Vec<RawRepo>, usize), StorageError> {
    let listing = storage.list_split("repositories/", &|last, parallel| {
        repository_cuts(storage, last, parallel)
    })?;
    let listed = listing.entries.len();
    problems.extend(listing.errors.iter().map(storage_problem));
    // Each repository's parts, by name; directories that hold something
    // unexpected; files where directories were expected.
    let mut found: BTreeMap<String, [Vec<Entry>; 3]> = BTreeMap::new();
    let mut unexpected = std::collections::BTreeSet::new();
    let mut stray = Vec::new();
    for e in listing.entries {
        let rest = &e.key["repositories/".len()..];
        let comps: Vec<&str> = rest.split('/').collect();
        let dirs = &comps[..comps.len() - 1];
        // The first directory named `_…` ends the walk: its parent is a
        // repository when it is `_manifests`, `_layers` or `_uploads`.
        match dirs.iter().position(|d| d.starts_with('_')) {
            None => stray.push(e),
            Some(i) => {
                let part = match dirs[i] {
                    "_manifests" => 0,
                    "_layers" => 1,
                    "_uploads" => 2,
                    _ => usize::MAX,
                };
                let name = dirs[..i].join("/");
                if part == usize::MAX || name.is_empty() {
                    let parent = if name.is_empty() {
                        "repositories/".to_string()
                    } else {
                        format!("repositories/{name}/")
                    };
                    unexpected.insert(format!("{parent}{}/", dirs[i]));
                } else {
                    found.entry(name).or_default()[part].push(e);
                }
            }
        }
    }
    for (name, parts) in &found {
        let prefix = format!("repositories/{name}/");
        if parts[0].is_empty() {
            problems.push(Problem::new(
                Kind::NotARepository,
                Severity::Warning,
                &prefix,
                "has _layers or _uploads but no _manifests: the registry cannot see it",
            ));
        }
        if name.len() > 255 || !name.split('/').all(valid_component) {
            problems.push(Problem::new(
                Kind::InvalidName,
                Severity::Warning,
                &prefix,
                format!("{name:?} is not a valid repository name"),
            ));
        }
    }
    for f in &stray {
        problems.push(
            problem_for_entry(f).unwrap_or_else(|| stray_or_unexpected(&f.key, "repositories/")),
        );
    }
    for d in unexpected {
        problems.push(Problem::new(
            Kind::UnexpectedEntry,
            Severity::Warning,
            d,
            "unexpected directory; not examined",
        ));
    }
    let check = opts.check_links;
    let mut repos = Vec::with_capacity(found.len());
    for (name, parts) in found {
        let mut repo = RawRepo {
            visible: !parts[0].is_empty(),
            name,
            ..Default::default()
        };
        for (entries, (sub, part)) in parts.into_iter().zip([
            ("_manifests", Part::Manifests),
            ("_layers", Part::Layers),
            ("_uploads", Part::Uploads),
        ]) {
            if entries.is_empty() {
                continue;
            }
            let prefix = format!("repositories/{}/{sub}/", repo.name);
            let listing = crate::storage::Listing {
                entries,
                ..Default::default()
            };
            classify_listing(part, &prefix, &mut repo, listing, check, problems);
        }
        repos.push(repo);
    }
    Ok((repos, listed))
}

/// [`Cuts`](crate::storage::Cuts) for `repositories/`: the names of the
/// directories at the level where the rest of the listing spreads over
/// several of them (one `/`-delimited listing per level: the top, or one
/// level down where a single namespace holds the rest), the share of them
/// the first page covered telling how many pages are left ([`ranges_for`]).
/// Ranges begin at names spread evenly over those not listed yet.
fn repository_cuts(storage: &dyn Storage, last: &str, parallel: usize) -> Vec<String> {
    let mut dir = "repositories/".to_string();
    for _ in 0..4 {
        let Some((cur, _)) = last
            .strip_prefix(dir.as_str())
            .and_then(|r| r.split_once('/'))
        else {
            return Vec::new();
        };
        if cur.starts_with('_') {
            return Vec::new();
        }
        let Ok(listing) = storage.list_dirs(&dir) else {
            return Vec::new();
        };
        let names: Vec<&String> = listing
            .dirs
            .iter()
            .filter(|d| !d.starts_with('_'))
            .collect();
        let done = names.partition_point(|n| n.as_str() <= cur);
        let later = &names[done..];
        if later.is_empty() {
            // Everything left is inside `cur`.
            dir = format!("{dir}{cur}/");
            continue;
        }
        let pages = later.len() as f64 / (done as f64 - 0.5).max(0.5);
        let n = ranges_for(pages, parallel).min(later.len() + 1);
        return (1..n)
            .map(|i| format!("{dir}{}", later[(i - 1) * later.len() / (n - 1)]))
            .collect();
    }
    Vec::new()
}

/// With [`ScanOptions::check_links`]: reads the links that the listing did
/// not (in chunks, concurrently), checks them, and gathers every repository's
/// faults into `inv.links`. Revisions dropped since (their link vanished)
/// are not checked.
fn check_unread_links(
    storage: &dyn Storage,
    opts: &ScanOptions,
    inv: &mut Inventory,
    raw: Vec<(usize, LinkCounts)>,
) {
    let mut faults = Vec::new();
    let mut checked = 0;
    let mut unread = Vec::new();
    for (ri, (n, found, not_read)) in raw {
        checked += n;
        for (kind, h, key, message) in found {
            let id = inv.interner.intern_sha256(&h);
            faults.push(LinkFault {
                repo: ri,
                kind,
                id,
                key,
                message,
            });
        }
        let revisions = &inv.repos[ri].revisions;
        for (key, kind, h) in not_read {
            let id = inv.interner.intern_sha256(&h);
            if kind == LinkKind::Revision && revisions.binary_search(&id).is_err() {
                continue;
            }
            unread.push((ri, kind, id, h, key));
        }
    }
    for chunk in unread.chunks(LINK_READ_CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|u| u.4.clone()).collect();
        for ((ri, kind, id, h, key), res) in chunk
            .iter()
            .zip(storage.read_many(&keys, opts.max_link_size))
        {
            checked += 1;
            if let Some(message) = link_fault(&res, h) {
                faults.push(LinkFault {
                    repo: *ri,
                    kind: kind.clone(),
                    id: *id,
                    key: key.clone(),
                    message,
                });
            }
        }
    }
    faults.sort_by(|a, b| (a.repo, &a.kind, a.id).cmp(&(b.repo, &b.kind, b.id)));
    inv.links = LinkCheck { checked, faults };
}

/// A repository's links as the listing left them: how many were checked,
/// their faults (kind, digest, key, message), and those still to read
/// (key, kind, digest).
type LinkCounts = (
    usize,
    Vec<(LinkKind, [u8; 32], String, String)>,
    Vec<(String, LinkKind, [u8; 32])>,
);

/// Links read per concurrent batch by [`check_unread_links`].
const LINK_READ_CHUNK: usize = 8192;

/// Reads tags' `current` links, suspicious revision links and `startedat`
/// files. Returns each repository's tags' current digests, in tag order.
fn read_links(
    storage: &dyn Storage,
    opts: &ScanOptions,
    repos: &mut [RawRepo],
    problems: &mut Vec<Problem>,
) -> Vec<Vec<Option<[u8; 32]>>> {
    let mut keys = Vec::new();
    for r in repos.iter() {
        keys.extend(
            r.tags
                .values()
                .filter(|t| t.content.is_none())
                .filter_map(|t| t.current.clone()),
        );
        keys.extend(r.revision_links_to_check.iter().map(|(k, _)| k.clone()));
        keys.extend(
            r.uploads
                .keys()
                .map(|id| format!("repositories/{}/_uploads/{id}/startedat", r.name)),
        );
    }
    let mut contents: HashMap<String, Result<Vec<u8>, StorageError>> = keys
        .iter()
        .cloned()
        .zip(storage.read_many(&keys, opts.max_link_size))
        .collect();
    for r in repos.iter_mut() {
        contents.extend(std::mem::take(&mut r.prefetched));
    }
    let mut out = Vec::with_capacity(repos.len());
    for r in repos.iter_mut() {
        let mut currents = Vec::with_capacity(r.tags.len());
        for (tag, t) in &mut r.tags {
            let tag_key = || format!("repositories/{}/_manifests/tags/{tag}/", r.name);
            if !valid_tag(tag) {
                problems.push(Problem::new(
                    Kind::InvalidName,
                    Severity::Warning,
                    tag_key(),
                    format!("{tag:?} is not a valid tag name"),
                ));
            }
            // A tag directory without `current/link` (a deep listing sees
            // the tag only through its history): the registry lists the tag
            // but cannot resolve it, and what it pointed at is unknown.
            let no_current = |key: String| {
                Problem::new(
                    Kind::DanglingTag,
                    Severity::Error,
                    key,
                    format!(
                        "tag {tag:?} has no current link: the registry lists it but cannot \
                         resolve it, and what it pointed at is unknown (its index/ history \
                         names what it held)"
                    ),
                )
            };
            let Some(key) = &t.current else {
                problems.push(no_current(format!("{}current/link", tag_key())));
                currents.push(None);
                continue;
            };
            // Read while listing, or just now.
            let content = t.content.take().or_else(|| contents.remove(key));
            currents.push(match content {
                Some(Ok(bytes)) => match parse_link(&bytes) {
                    Ok(Digest::Sha256(h)) => Some(h),
                    Ok(_) => None,
                    Err(msg) => {
                        problems.push(Problem::new(
                            Kind::BadLink,
                            Severity::Error,
                            key,
                            format!("tag {tag:?}: {msg}; the tag's manifest is unknown"),
                        ));
                        None
                    }
                },
                Some(Err(e)) if e.is_not_found() => {
                    problems.push(no_current(key.clone()));
                    None
                }
                Some(Err(e)) => {
                    problems.push(storage_problem(&e));
                    None
                }
                None => None,
            });
        }
        out.push(currents);
        let mut gone = Vec::new();
        for (key, h) in std::mem::take(&mut r.revision_links_to_check) {
            match contents.remove(&key) {
                Some(Ok(bytes)) => match parse_link(&bytes) {
                    Ok(Digest::Sha256(got)) if got == h => {}
                    Ok(other) => problems.push(Problem::new(
                        Kind::BadLink,
                        Severity::Error,
                        &key,
                        format!("revision link holds {other}, which disagrees with its path"),
                    )),
                    Err(msg) => problems.push(Problem::new(
                        Kind::BadLink,
                        Severity::Error,
                        &key,
                        format!("{msg}; the registry cannot serve this manifest (kept as live)"),
                    )),
                },
                // A digest directory without its link: not a revision (the
                // registry and its garbage collector see only link files).
                Some(Err(e)) if e.is_not_found() => gone.push(h),
                Some(Err(e)) => problems.push(storage_problem(&e)),
                None => {}
            }
        }
        if !gone.is_empty() {
            r.revisions.retain(|h| !gone.contains(h));
        }
        for (id, u) in r.uploads.iter_mut() {
            let key = format!("repositories/{}/_uploads/{id}/startedat", r.name);
            match contents.remove(&key) {
                Some(Ok(bytes)) => {
                    u.started_at = std::str::from_utf8(&bytes).ok().and_then(parse_rfc3339);
                    if u.started_at.is_none() {
                        problems.push(Problem::new(
                            Kind::UploadWithoutStartedAt,
                            Severity::Warning,
                            &key,
                            format!("startedat is not an RFC 3339 time: {:?}", String::from_utf8_lossy(&bytes)),
                        ));
                    }
                }
                Some(Err(e)) if e.is_not_found() => problems.push(Problem::new(
                    Kind::UploadWithoutStartedAt,
                    Severity::Warning,
                    format!("repositories/{}/_uploads/{id}/", r.name),
                    "upload has no startedat: its age is unknown (the reference purger never removes it)",
                )),
                Some(Err(e)) => problems.push(storage_problem(&e)),
                None => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parsing_is_exact() {
        let h = "a".repeat(64);
        assert!(parse_link(format!("sha256:{h}").as_bytes()).is_ok());
        assert!(parse_link(b"").unwrap_err().contains("empty"));
        assert!(parse_link(format!("sha256:{h}\n").as_bytes())
            .unwrap_err()
            .contains("newline"));
        assert!(parse_link(b"garbage").is_err());
        assert!(parse_link(b"sha512:abcd")
            .unwrap_err()
            .contains("non-sha256"));
    }

    #[test]
    fn names_follow_the_distribution_grammar() {
        for ok in ["a", "team-a", "a.b", "a_b", "a__b", "a---b", "0x"] {
            assert!(valid_component(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a___b", "a..b", "_a", "a_"] {
            assert!(!valid_component(bad), "{bad}");
        }
        assert!(valid_tag("v1.0-rc_1") && valid_tag("_x") && !valid_tag(".x") && !valid_tag(""));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn rfc3339_with_offsets() {
        assert!(parse_rfc3339("2024-01-02T03:04:05Z").is_some());
        assert!(parse_rfc3339("2024-01-02T03:04:05+01:00").is_some());
        assert!(parse_rfc3339("2024-01-02T03:04:05.123456789Z").is_some());
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
