//! What the listings hold before interning ([`RawRepo`]), whichever way the
//! storage was listed, and how it becomes the inventory's [`Repository`]s:
//! digests interned in a fixed order, so that ids do not depend on the
//! listing strategy or on thread timing.

use super::inventory::{Repository, Tag, Upload};
use super::LinkKind;
use crate::digest::{Digest, Interner};
use crate::storage::StorageError;
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// What one repository's listing holds, before interning.
#[derive(Default)]
pub(super) struct RawRepo {
    /// Its name.
    pub(super) name: String,
    /// True when it has `_manifests`.
    pub(super) visible: bool,
    /// The digests of its revision links.
    pub(super) revisions: Vec<[u8; 32]>,
    /// With `link_times`: the modification times of the revision links
    /// stat'ed (digest, time).
    pub(super) revision_times: Vec<([u8; 32], SystemTime)>,
    /// Revision links whose size is unknown or wrong: read and checked.
    pub(super) revision_links_to_check: Vec<(String, [u8; 32])>,
    /// Revision links already read while listing, by key.
    pub(super) prefetched: HashMap<String, Result<Vec<u8>, StorageError>>,
    /// Its tags, by name.
    pub(super) tags: BTreeMap<String, RawTag>,
    /// The digests of its `_layers/sha256/` links (but those in `layer_ids`).
    pub(super) layers: Vec<[u8; 32]>,
    /// The ids of `_layers/sha256/` links' digests that were listed blobs,
    /// when the listing looked them up as it went ([`RawRepo::look_up_layers`]).
    pub(super) layer_ids: Vec<u32>,
    /// Alias links (key, alias digest, content when the listing read it).
    pub(super) aliases: Vec<(String, Digest, Content)>,
    /// Its uploads, by id.
    pub(super) uploads: BTreeMap<String, Upload>,
    /// With `check_links`: links read while listing.
    pub(super) links_checked: usize,
    /// With `check_links`: the faults of those (kind, digest, key, message).
    pub(super) link_faults: Vec<(LinkKind, [u8; 32], String, String)>,
    /// With `check_links`: links the listing did not read (key, kind, digest).
    pub(super) links_unread: Vec<(String, LinkKind, [u8; 32])>,
}

impl RawRepo {
    /// Moves the layer links' digests that `interner` knows (the listed
    /// blobs) to [`RawRepo::layer_ids`]: 4 bytes each instead of 32. The
    /// rest stay, in order, and are interned as ever.
    pub(super) fn look_up_layers(&mut self, interner: &Interner) {
        self.layers.retain(|h| match interner.get_sha256(h) {
            Some(id) => {
                self.layer_ids.push(id);
                false
            }
            None => true,
        });
        self.layers.shrink_to_fit();
        self.layer_ids.shrink_to_fit();
    }
}

/// A tag as listed.
#[derive(Default)]
pub(super) struct RawTag {
    /// The key of its `current/link`, when there is one.
    pub(super) current: Option<String>,
    /// That link's content, when the listing read it.
    pub(super) content: Option<Result<Vec<u8>, StorageError>>,
    /// That link's modification time, when the listing stat'ed it.
    pub(super) modified: Option<SystemTime>,
    /// The digests in its `index/sha256/` (what it pointed at before).
    pub(super) history: Vec<[u8; 32]>,
}

/// What a deep listing of a repository's `_manifests/` or `_layers/`
/// brings for one entry besides the entry: its content, when the backend
/// read it while listing.
pub(super) type Content = Option<Result<Vec<u8>, StorageError>>;

/// Turns the listed repositories into the inventory's, interning every
/// digest they name: each repository's revisions, layers, aliases (the
/// alias, then the blob it names), then its tags' current digests and
/// history. `tag_currents` and `raw_aliases` are what
/// [`read_links`](super::links::read_links) and
/// [`resolve_aliases`](super::aliases::resolve_aliases) found, by
/// repository. Also returns every alias digest with the blobs it names.
pub(super) fn into_repositories(
    raw: Vec<RawRepo>,
    tag_currents: Vec<Vec<Option<[u8; 32]>>>,
    raw_aliases: Vec<Vec<(Digest, [u8; 32])>>,
    interner: &mut Interner,
    link_times: bool,
) -> (Vec<Repository>, HashMap<u32, Vec<u32>>) {
    // The digests that links name are nearly all blobs that the listing
    // interned: they are looked up in parallel, and only the others (links
    // to missing blobs) are interned one by one, in the same order as ever.
    let looked_up: Vec<(LookedUp, LookedUp, Vec<LookedUp>)> = {
        use rayon::prelude::*;
        let interner = &*interner;
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
        let revisions = revisions.finish(interner, &r.revisions);
        let mut layers = layers.finish(interner, &r.layers);
        if !r.layer_ids.is_empty() {
            layers.extend_from_slice(&r.layer_ids);
            layers.sort_unstable();
            layers.dedup();
        }
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
        let tag_times: Vec<Option<SystemTime>> = if link_times {
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
                history: found.finish(interner, &t.history),
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
    (repos, aliases)
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
