//! One removal of a plan: what it removes (its kind) and the names its
//! storage key is made of, interned ([`super::names`]) so that an action is
//! 24 bytes whatever its key. The key, the file it removes and the JSON form
//! (`kind`, `key`, `repository`, `digest`, `bytes`) are derived from them.
//!
//! An action read from a saved plan is built only from a key that is the
//! one its kind, repository and digest name ([`Action::from_parts`]): an
//! edited plan cannot name anything else.

use super::names::{DigestId, Name, Tables};
use crate::digest::Digest;
use crate::scan::{valid_repository, valid_tag};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// What an action removes (also the order of the phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// `_manifests/tags/<tag>/`: a whole tag (its `current/link` and its
    /// history), as the registry's own tag delete removes it. The action's
    /// digest is the one the tag must still name when it is removed.
    Tag,
    /// `_manifests/tags/<tag>/index/sha256/<hex>/`: a tag history entry.
    TagHistory,
    /// `_manifests/revisions/sha256/<hex>/`: an untagged manifest's revision link.
    Revision,
    /// `_layers/sha256/<hex>/`: a layer link no live manifest of the repository needs.
    LayerLink,
    /// `_uploads/<id>/`: an upload older than the upload age.
    Upload,
    /// `blobs/sha256/<xx>/<hex>/`: a blob no live manifest references.
    Blob,
    /// A repository left with no tags, manifests or uploads.
    Repository,
}

/// One removal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Action {
    /// Bytes reclaimed (blobs and uploads).
    pub bytes: u64,
    repo: Option<Name>,
    /// The tag (tags, history entries) or the upload id.
    name: Option<Name>,
    digest: Option<DigestId>,
    /// What it removes.
    pub kind: ActionKind,
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("kind", &self.kind)
            .field("key", &self.key())
            .field("digest", &self.digest())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Action {
    fn new(
        kind: ActionKind,
        repo: Option<Name>,
        name: Option<Name>,
        digest: Option<DigestId>,
        bytes: u64,
    ) -> Action {
        Action {
            bytes,
            repo,
            name,
            digest,
            kind,
        }
    }

    /// A whole tag, removed only while it names `names`.
    pub fn tag(repo: Name, tag: Name, names: Option<DigestId>) -> Action {
        Action::new(ActionKind::Tag, Some(repo), Some(tag), names, 0)
    }

    /// A tag history entry (`digest` is sha256).
    pub fn tag_history(repo: Name, tag: Name, digest: DigestId) -> Action {
        Action::new(
            ActionKind::TagHistory,
            Some(repo),
            Some(tag),
            Some(digest),
            0,
        )
    }

    /// A revision link (`digest` is sha256).
    pub fn revision(repo: Name, digest: DigestId) -> Action {
        Action::new(ActionKind::Revision, Some(repo), None, Some(digest), 0)
    }

    /// A layer link (`_layers/<algorithm>/<hex>/`).
    pub fn layer_link(repo: Name, digest: DigestId) -> Action {
        Action::new(ActionKind::LayerLink, Some(repo), None, Some(digest), 0)
    }

    /// An upload of `bytes`.
    pub fn upload(repo: Name, id: Name, bytes: u64) -> Action {
        Action::new(ActionKind::Upload, Some(repo), Some(id), None, bytes)
    }

    /// A blob (`digest` is sha256) of `bytes`.
    pub fn blob(digest: DigestId, bytes: u64) -> Action {
        Action::new(ActionKind::Blob, None, None, Some(digest), bytes)
    }

    /// A whole repository.
    pub fn repository_dir(repo: Name) -> Action {
        Action::new(ActionKind::Repository, Some(repo), None, None, 0)
    }

    /// The action with what tells it apart from every other removal only:
    /// its kind and key (no bytes; for a tag, not the digest it must name).
    pub fn identity(&self) -> Action {
        Action {
            bytes: 0,
            digest: if self.kind == ActionKind::Tag {
                None
            } else {
                self.digest
            },
            ..*self
        }
    }

    /// The repository, for repository-scoped actions.
    pub fn repository(&self) -> Option<&'static str> {
        self.repo.map(Name::as_str)
    }

    /// The repository's interned name.
    pub fn repository_name(&self) -> Option<Name> {
        self.repo
    }

    /// The tag of a tag or tag history action.
    pub fn tag_name(&self) -> Option<&'static str> {
        match self.kind {
            ActionKind::Tag | ActionKind::TagHistory => self.name.map(Name::as_str),
            _ => None,
        }
    }

    /// The digest: of the link or blob removed; for a tag, the one it must
    /// still name.
    pub fn digest(&self) -> Option<Digest> {
        self.digest.map(DigestId::digest)
    }

    /// The digest's interned id.
    pub fn digest_id(&self) -> Option<DigestId> {
        self.digest
    }

    /// The directory (key prefix, ending in `/`) it removes.
    pub fn key(&self) -> String {
        self.key_in(&Tables::read())
    }

    /// [`Action::key`] with both tables already locked for reading.
    pub fn key_in(&self, t: &Tables<'_>) -> String {
        let r = || self.repo.map_or("", |n| t.name(n));
        let n = || self.name.map_or("", |n| t.name(n));
        let d = || self.digest.map(|d| t.digest(d));
        let hex = || {
            self.digest
                .and_then(|d| t.sha256(d))
                .map(|b| crate::digest::hex(b))
                .unwrap_or_default()
        };
        match self.kind {
            ActionKind::Tag => format!("repositories/{}/_manifests/tags/{}/", r(), n()),
            ActionKind::TagHistory => format!(
                "repositories/{}/_manifests/tags/{}/index/sha256/{}/",
                r(),
                n(),
                hex()
            ),
            ActionKind::Revision => {
                format!(
                    "repositories/{}/_manifests/revisions/sha256/{}/",
                    r(),
                    hex()
                )
            }
            ActionKind::LayerLink => match d() {
                Some(d) => crate::scan::layer_link_dir(r(), &d),
                None => format!("repositories/{}/_layers/", r()),
            },
            ActionKind::Upload => format!("repositories/{}/_uploads/{}/", r(), n()),
            ActionKind::Blob => {
                let h = hex();
                format!("blobs/sha256/{}/{h}/", h.get(..2).unwrap_or(""))
            }
            ActionKind::Repository => format!("repositories/{}/", r()),
        }
    }

    /// The single file the action removes, when it is one (`link` or `data`);
    /// `None` when the whole directory is listed at execution time.
    pub fn file(&self) -> Option<String> {
        file_of(self.kind, &self.key())
    }

    /// The action of kind `kind` at `key`, from the key alone (a journal
    /// entry, a staged object): `None` when the key is not one of that
    /// kind. A tag's digest and the bytes are not in a key.
    pub fn parse_key(kind: ActionKind, key: &str) -> Option<Action> {
        let dir = key.strip_suffix('/')?;
        if kind == ActionKind::Blob {
            let rest = dir.strip_prefix("blobs/sha256/")?;
            let (shard, hex) = rest.split_once('/')?;
            let b = crate::digest::parse_sha256_hex(hex)?;
            return (hex.get(..2) == Some(shard)).then(|| Action::blob(DigestId::sha256(&b), 0));
        }
        let rest = dir.strip_prefix("repositories/")?;
        let (repo, rest) = match rest.split_once("/_") {
            Some((r, rest)) => (r, Some(rest)),
            None => (rest, None),
        };
        if !valid_repository(repo) {
            return None;
        }
        let r = Name::of(repo);
        let sha = |hex: &str| crate::digest::parse_sha256_hex(hex).map(|b| DigestId::sha256(&b));
        let a = match (kind, rest) {
            (ActionKind::Repository, None) => Action::repository_dir(r),
            (ActionKind::Tag, Some(rest)) => {
                let t = rest.strip_prefix("manifests/tags/")?;
                valid_tag(t).then_some(())?;
                Action::tag(r, Name::of(t), None)
            }
            (ActionKind::TagHistory, Some(rest)) => {
                let rest = rest.strip_prefix("manifests/tags/")?;
                let (t, hex) = rest.split_once("/index/sha256/")?;
                valid_tag(t).then_some(())?;
                Action::tag_history(r, Name::of(t), sha(hex)?)
            }
            (ActionKind::Revision, Some(rest)) => {
                Action::revision(r, sha(rest.strip_prefix("manifests/revisions/sha256/")?)?)
            }
            (ActionKind::LayerLink, Some(rest)) => {
                let (alg, hex) = rest.strip_prefix("layers/")?.split_once('/')?;
                let d = Digest::parse(&format!("{alg}:{hex}")).ok()?;
                Action::layer_link(r, DigestId::of(&d))
            }
            (ActionKind::Upload, Some(rest)) => {
                let id = rest.strip_prefix("uploads/")?;
                valid_upload_id(id).then_some(())?;
                Action::upload(r, Name::of(id), 0)
            }
            _ => return None,
        };
        Some(a)
    }

    /// The action a saved plan states: its key must be the one its kind,
    /// repository and digest name (a tag's or upload's name is read from
    /// the key and checked). The error says what is wrong.
    pub fn from_parts(
        kind: ActionKind,
        key: &str,
        repository: Option<&str>,
        digest: Option<&str>,
        bytes: u64,
    ) -> Result<Action, String> {
        let repo = || -> Result<&str, String> {
            let r = repository.ok_or("it names no repository")?;
            if valid_repository(r) {
                Ok(r)
            } else {
                Err(format!("{r:?} is not a repository name"))
            }
        };
        let digest = || -> Result<Digest, String> {
            let d = digest.ok_or("it names no digest")?;
            Digest::parse(d).map_err(|e| format!("{d:?} is not a digest: {e}"))
        };
        let sha = || -> Result<Digest, String> {
            let d = digest()?;
            match d {
                Digest::Sha256(_) => Ok(d),
                Digest::Other(_) => Err(format!("{d} is not a sha256 digest")),
            }
        };
        let a = match kind {
            ActionKind::Tag => {
                let r = repo()?;
                let d = digest()?;
                let t = key
                    .strip_prefix("repositories/")
                    .and_then(|k| k.strip_prefix(r))
                    .and_then(|k| k.strip_prefix("/_manifests/tags/"))
                    .and_then(|k| k.strip_suffix('/'))
                    .ok_or("the key is not a tag of its repository")?;
                if !valid_tag(t) {
                    return Err(format!("{t:?} is not a tag name"));
                }
                Action::tag(Name::of(r), Name::of(t), Some(DigestId::of(&d)))
            }
            ActionKind::TagHistory => {
                let r = repo()?;
                let d = sha()?;
                let hex = d.sha256_hex().unwrap_or_default();
                let t = key
                    .strip_prefix(&format!("repositories/{r}/_manifests/tags/"))
                    .and_then(|k| k.strip_suffix(&format!("/index/sha256/{hex}/")))
                    .ok_or("the key is not a tag history entry of its repository and digest")?;
                if !valid_tag(t) {
                    return Err(format!("{t:?} is not a tag name"));
                }
                Action::tag_history(Name::of(r), Name::of(t), DigestId::of(&d))
            }
            ActionKind::Revision => Action::revision(Name::of(repo()?), DigestId::of(&sha()?)),
            ActionKind::LayerLink => {
                Action::layer_link(Name::of(repo()?), DigestId::of(&digest()?))
            }
            ActionKind::Blob => Action::blob(DigestId::of(&sha()?), 0),
            ActionKind::Upload => {
                let r = repo()?;
                let id = key
                    .strip_prefix(&format!("repositories/{r}/_uploads/"))
                    .and_then(|k| k.strip_suffix('/'))
                    .ok_or("the key is not an upload of its repository")?;
                if !valid_upload_id(id) {
                    return Err(format!("{id:?} is not an upload id"));
                }
                Action::upload(Name::of(r), Name::of(id), 0)
            }
            ActionKind::Repository => Action::repository_dir(Name::of(repo()?)),
        };
        let want = a.key();
        if key != want {
            return Err(format!("the key should be {want:?}"));
        }
        Ok(Action { bytes, ..a })
    }
}

/// The single file an action of kind `kind` at `key` removes, when it is
/// one (see [`Action::file`]).
pub fn file_of(kind: ActionKind, key: &str) -> Option<String> {
    match kind {
        ActionKind::TagHistory | ActionKind::Revision | ActionKind::LayerLink => {
            Some(format!("{key}link"))
        }
        ActionKind::Blob => Some(format!("{key}data")),
        ActionKind::Tag | ActionKind::Upload | ActionKind::Repository => None,
    }
}

fn valid_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `a` and `b` compared as `a<then>` and `b<then>` are: the order of two
/// keys that differ first in these names, `then` being what follows the
/// name in the key.
fn cmp_then(a: &str, b: &str, then: &str) -> Ordering {
    a.bytes()
        .chain(then.bytes())
        .cmp(b.bytes().chain(then.bytes()))
}

/// [`cmp_then`] for a name followed by `/` (a tag, an upload id, a
/// digest's algorithm, a repository at the end of its key).
fn slash_cmp(a: &str, b: &str) -> Ordering {
    cmp_then(a, b, "/")
}

/// Sorts `actions` by kind, then key (the order they are carried out in),
/// without writing the keys out.
pub fn sort(actions: &mut [Action]) {
    let t = Tables::read();
    // Each name's rank in key order, so that a comparison reads no text. In
    // a key a repository name is followed by `/_` (`_manifests`, `_layers`,
    // `_uploads`), or by `/` alone for a whole repository; a tag or upload
    // id by `/`.
    let mut used: Vec<Name> = actions
        .iter()
        .flat_map(|a| [a.repo, a.name])
        .flatten()
        .collect();
    used.sort_unstable_by_key(|n| n.index());
    used.dedup();
    let ranks = |then: &str| {
        let mut order = used.clone();
        order.sort_by(|&x, &y| cmp_then(t.name(x), t.name(y), then));
        let mut rank = vec![0u32; t.names()];
        for (r, n) in order.iter().enumerate() {
            rank[n.index()] = r as u32 + 1;
        }
        rank
    };
    let (in_dir, at_end) = (ranks("/_"), ranks("/"));
    let rank_of = |rank: &[u32], n: Option<Name>| n.map_or(0, |n| rank[n.index()]);
    let repo_rank = |a: &Action| {
        let rank = if a.kind == ActionKind::Repository {
            &at_end
        } else {
            &in_dir
        };
        rank_of(rank, a.repo)
    };
    let digest = |a: &Action, b: &Action| -> Ordering {
        if a.kind == ActionKind::Tag {
            return Ordering::Equal; // not part of a tag's key
        }
        match (a.digest, b.digest) {
            (Some(x), Some(y)) if x == y => Ordering::Equal,
            (Some(x), Some(y)) => match (t.sha256(x), t.sha256(y)) {
                (Some(p), Some(q)) => p.cmp(q),
                _ => {
                    let (p, q) = (t.digest(x).to_string(), t.digest(y).to_string());
                    let split = |s: &str| {
                        let (alg, hex) = s.split_once(':').unwrap_or(("", s));
                        (alg.to_string(), hex.to_string())
                    };
                    let ((pa, ph), (qa, qh)) = (split(&p), split(&q));
                    slash_cmp(&pa, &qa).then_with(|| slash_cmp(&ph, &qh))
                }
            },
            (x, y) => x.is_some().cmp(&y.is_some()),
        }
    };
    // A stable sort: a sorted plan with a few actions added sorts in
    // about one pass.
    actions.sort_by(|a, b| {
        a.kind
            .cmp(&b.kind)
            .then_with(|| repo_rank(a).cmp(&repo_rank(b)))
            .then_with(|| rank_of(&at_end, a.name).cmp(&rank_of(&at_end, b.name)))
            .then_with(|| digest(a, b))
    });
}

/// The JSON form of an action, as a saved plan holds it.
#[derive(Deserialize)]
pub struct RawAction {
    /// What it removes.
    pub kind: ActionKind,
    /// The directory (key prefix, ending in `/`) it removes.
    pub key: String,
    /// The repository, for repository-scoped actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The digest, for links, blobs and tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Bytes reclaimed (blobs and uploads).
    #[serde(default)]
    pub bytes: u64,
}

impl RawAction {
    /// The action this states, checked (see [`Action::from_parts`]).
    pub fn action(&self) -> Result<Action, String> {
        Action::from_parts(
            self.kind,
            &self.key,
            self.repository.as_deref(),
            self.digest.as_deref(),
            self.bytes,
        )
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let t = Tables::read();
        let repo = self.repo.map(|n| t.name(n));
        let digest = self.digest.map(|d| t.digest(d).to_string());
        let mut st = s.serialize_struct(
            "Action",
            3 + usize::from(repo.is_some()) + usize::from(digest.is_some()),
        )?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("key", &self.key_in(&t))?;
        drop(t);
        if let Some(r) = repo {
            st.serialize_field("repository", r)?;
        }
        if let Some(d) = &digest {
            st.serialize_field("digest", d)?;
        }
        st.serialize_field("bytes", &self.bytes)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        let raw = RawAction::deserialize(d)?;
        raw.action().map_err(|why| {
            serde::de::Error::custom(format!("action {:?} {:?}: {why}", raw.kind, raw.key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: u8) -> DigestId {
        DigestId::sha256(&[b; 32])
    }

    /// A plan holds one action per object it removes: they stay small.
    #[test]
    fn an_action_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Action>(), 24);
    }

    #[test]
    fn keys_parse_back_to_the_same_action() {
        let r = Name::of("team/app");
        let t = Name::of("_v1.0");
        let sha512 = Digest::parse(&format!("sha512:{}", "ef".repeat(64))).unwrap();
        let all = [
            Action::tag(r, t, None),
            Action::tag_history(r, t, sha(1)),
            Action::revision(r, sha(2)),
            Action::layer_link(r, sha(3)),
            Action::layer_link(r, DigestId::of(&sha512)),
            Action::upload(r, Name::of("0f-a_b.c"), 0),
            Action::blob(sha(4), 0),
            Action::repository_dir(r),
        ];
        for a in all {
            let key = a.key();
            assert_eq!(Action::parse_key(a.kind, &key), Some(a), "{key}");
            let raw: RawAction = serde_json::from_value(serde_json::to_value(a).unwrap()).unwrap();
            assert_eq!(raw.key, key);
            if a.kind != ActionKind::Tag {
                assert_eq!(raw.action(), Ok(a), "{key}");
            }
        }
        assert_eq!(
            Action::blob(sha(4), 0).key(),
            format!("blobs/sha256/04/{}/", "04".repeat(32))
        );
        assert_eq!(
            Action::parse_key(ActionKind::Blob, "blobs/sha256/05/x/"),
            None
        );
        assert_eq!(
            Action::parse_key(ActionKind::Tag, "repositories/a/_manifests/tags/a/b/"),
            None
        );
        assert_eq!(
            Action::parse_key(ActionKind::Repository, "repositories/../"),
            None
        );
    }

    #[test]
    fn a_key_that_its_parts_do_not_name_is_refused() {
        let hex = "ab".repeat(32);
        let d = format!("sha256:{hex}");
        let e = Action::from_parts(ActionKind::Blob, "repositories/a/", None, Some(&d), 0);
        assert!(e.unwrap_err().contains("the key should be"));
        let e = Action::from_parts(
            ActionKind::Tag,
            "repositories/a/_manifests/tags/../",
            Some("a"),
            Some(&d),
            0,
        );
        assert!(e.unwrap_err().contains("not a tag name"));
        let e = Action::from_parts(ActionKind::Revision, "x", Some("A"), Some(&d), 0);
        assert!(e.unwrap_err().contains("not a repository name"));
        let ok = Action::from_parts(
            ActionKind::Revision,
            &format!("repositories/a/_manifests/revisions/sha256/{hex}/"),
            Some("a"),
            Some(&d),
            0,
        )
        .unwrap();
        assert_eq!(ok, Action::revision(Name::of("a"), sha(0xab)));
    }

    #[test]
    fn sorting_follows_the_keys() {
        let names = [
            "a", "a-b", "a/b", "a.b", "b", "a_b", "a/1b", "a/b/c", "a/zz",
        ];
        let mut actions: Vec<Action> = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let r = Name::of(n);
            actions.push(Action::repository_dir(r));
            actions.push(Action::layer_link(r, sha(9 - i as u8)));
            actions.push(Action::layer_link(r, sha(i as u8)));
            actions.push(Action::tag(r, Name::of("v1"), None));
            actions.push(Action::tag(r, Name::of("v1-rc"), None));
            actions.push(Action::tag(r, Name::of("v1.0"), None));
            actions.push(Action::blob(sha(30 + i as u8), 0));
        }
        let sha512 = Digest::parse(&format!("sha512:{}", "ef".repeat(64))).unwrap();
        actions.push(Action::layer_link(Name::of("a"), DigestId::of(&sha512)));
        actions.push(Action::upload(Name::of("a"), Name::of("u-1"), 0));
        actions.push(Action::upload(Name::of("a"), Name::of("u"), 0));
        actions.push(Action::upload(Name::of("a/b"), Name::of("u"), 0));
        let mut want: Vec<(ActionKind, String)> =
            actions.iter().map(|a| (a.kind, a.key())).collect();
        want.sort();
        for reversed in [false, true] {
            let mut mine = actions.clone();
            if reversed {
                mine.reverse();
            }
            sort(&mut mine);
            let got: Vec<(ActionKind, String)> = mine.iter().map(|a| (a.kind, a.key())).collect();
            assert_eq!(got, want, "reversed: {reversed}");
        }
    }
}
