//! Plans saved by `--plan FILE`: reading one back (either kind, told apart
//! by its `command` field), checking it fits the run that carries it out,
//! and the request a `delete` / `prune` plan made, re-read on a fresh
//! snapshot (a tag is removed only while it names the digest it named).

use super::Removal;
use crate::digest::Digest;
use crate::mark::Mode;
use crate::plan::{Action, ActionKind, Plan, PLAN_FORMAT_VERSION};
use crate::prune::{self, PrunePlan, Request};
use crate::scan::{valid_component, valid_tag};
use crate::Analysis;
use crate::Error;
use std::collections::HashMap;
use std::path::Path;

/// Reads the plan saved in `path`.
pub fn read(path: &Path) -> Result<Removal, Error> {
    let bad = |message: String| Error::Plan {
        file: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a plan: {e}")))?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    if value.get("command").is_some() {
        if version != Some(u64::from(prune::FORMAT_VERSION)) {
            return Err(bad(format!(
                "format version {}; this regsweep reads version {}",
                show(version),
                prune::FORMAT_VERSION
            )));
        }
        let p: PrunePlan =
            serde_json::from_value(value).map_err(|e| bad(format!("not a plan: {e}")))?;
        Ok(Removal::Prune(Box::new(p)))
    } else {
        if version != Some(u64::from(PLAN_FORMAT_VERSION)) {
            return Err(bad(format!(
                "format version {}; this regsweep reads version {}",
                show(version),
                PLAN_FORMAT_VERSION
            )));
        }
        let p: Plan = serde_json::from_value(value).map_err(|e| bad(format!("not a plan: {e}")))?;
        Ok(Removal::Sweep(p))
    }
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "missing".into(), |v| v.to_string())
}

/// Checks that `removal`, read from `path`, is a plan of `command` made for
/// `storage`; for `sweep`, `delete_untagged` says the run asked for that
/// mode.
pub fn check(
    removal: &Removal,
    path: &Path,
    command: &str,
    storage: &str,
    delete_untagged: bool,
) -> Result<(), Error> {
    let bad = |message: String| Error::Plan {
        file: path.to_path_buf(),
        message,
    };
    if removal.command() != command {
        return Err(bad(format!(
            "is a {} plan, not a {command} plan",
            removal.command()
        )));
    }
    if removal.storage() != storage {
        return Err(bad(format!(
            "was made for {}, not {storage}",
            removal.storage()
        )));
    }
    if let Removal::Sweep(p) = removal {
        if delete_untagged && p.mode != Mode::DeleteUntagged {
            return Err(bad(
                "was made without --delete-untagged; make a new plan to sweep in that mode".into(),
            ));
        }
    }
    check_actions(removal.plan(), path)
}

/// Checks that every action of a saved plan is a well-formed removal: its
/// key is the one its kind, repository and digest name (a tag, a history
/// entry, a revision or layer link, an upload, a blob or a repository of
/// the registry layout), so that an edited plan cannot name anything else.
/// The first malformed action is the error, before anything runs.
pub fn check_actions(plan: &Plan, path: &Path) -> Result<(), Error> {
    for (i, x) in plan.actions.iter().enumerate() {
        if let Err(why) = action_shape(x) {
            return Err(Error::Plan {
                file: path.to_path_buf(),
                message: format!("action {} ({:?} {:?}): {why}", i + 1, x.kind, x.key),
            });
        }
    }
    Ok(())
}

/// The tag an action of kind [`ActionKind::Tag`] removes, from its key.
fn tag_of<'k>(x: &'k Action, repo: &str) -> Option<&'k str> {
    x.key
        .strip_prefix("repositories/")?
        .strip_prefix(repo)?
        .strip_prefix("/_manifests/tags/")?
        .strip_suffix('/')
}

fn valid_repo(name: &str) -> bool {
    !name.is_empty() && name.split('/').all(valid_component)
}

fn action_shape(x: &Action) -> Result<(), String> {
    let repo = || -> Result<&str, String> {
        let r = x.repository.as_deref().ok_or("it names no repository")?;
        if valid_repo(r) {
            Ok(r)
        } else {
            Err(format!("{r:?} is not a repository name"))
        }
    };
    let digest = || -> Result<Digest, String> {
        let d = x.digest.as_deref().ok_or("it names no digest")?;
        Digest::parse(d).map_err(|e| format!("{d:?} is not a digest: {e}"))
    };
    let sha = || -> Result<String, String> {
        let d = digest()?;
        d.sha256_hex()
            .map(|h| h.to_string())
            .ok_or_else(|| format!("{d} is not a sha256 digest"))
    };
    let want = match x.kind {
        ActionKind::Tag => {
            let r = repo()?;
            digest()?;
            let t = tag_of(x, r).ok_or("the key is not a tag of its repository")?;
            if !valid_tag(t) {
                return Err(format!("{t:?} is not a tag name"));
            }
            return Ok(());
        }
        ActionKind::TagHistory => {
            let r = repo()?;
            let hex = sha()?;
            let rest = x
                .key
                .strip_prefix(&format!("repositories/{r}/_manifests/tags/"))
                .and_then(|k| k.strip_suffix(&format!("/index/sha256/{hex}/")))
                .ok_or("the key is not a tag history entry of its repository and digest")?;
            if !valid_tag(rest) {
                return Err(format!("{rest:?} is not a tag name"));
            }
            return Ok(());
        }
        ActionKind::Revision => {
            format!(
                "repositories/{}/_manifests/revisions/sha256/{}/",
                repo()?,
                sha()?
            )
        }
        ActionKind::LayerLink => crate::scan::layer_link_dir(repo()?, &digest()?),
        ActionKind::Blob => {
            let hex = sha()?;
            format!("blobs/sha256/{}/{hex}/", &hex[..2])
        }
        ActionKind::Upload => {
            let r = repo()?;
            let id = x
                .key
                .strip_prefix(&format!("repositories/{r}/_uploads/"))
                .and_then(|k| k.strip_suffix('/'))
                .ok_or("the key is not an upload of its repository")?;
            let ok = !id.is_empty()
                && id != "."
                && id != ".."
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(format!("{id:?} is not an upload id"));
            }
            return Ok(());
        }
        ActionKind::Repository => format!("repositories/{}/", repo()?),
    };
    if x.key == want {
        Ok(())
    } else {
        Err(format!("the key should be {want:?}"))
    }
}

/// The request a saved plan made, re-derived on the fresh analysis `a` from
/// the plan's actions alone (its lists only lend the reasons): a tag action
/// while the tag still names the action's digest, a revision action of a
/// manifest the plan asked for while it is still there, a repository
/// action. Nothing is taken from the plan's summaries or lists that its
/// actions do not also say. What it skips is told in `notes`.
pub fn request(a: &Analysis, saved: &PrunePlan, notes: &mut Vec<String>) -> Request {
    let inv = &a.inventory;
    let mut req = Request::default();
    let find = |name: &str| inv.repos.iter().position(|r| r.name == name);
    let reasons: HashMap<(&str, &str), &str> = saved
        .tags_removed
        .iter()
        .map(|t| ((t.repository.as_str(), t.tag.as_str()), t.reason.as_str()))
        .collect();
    let of_kind = |k: ActionKind| saved.plan.actions.iter().filter(move |x| x.kind == k);
    for x in of_kind(ActionKind::Tag) {
        let (Some(repo), Some(digest)) = (x.repository.as_deref(), x.digest.as_deref()) else {
            continue; // refused by `check_actions`
        };
        let Some(tag) = tag_of(x, repo) else { continue };
        let Some(ri) = find(repo) else {
            notes.push(format!("skipped tag {repo}:{tag}: the repository is gone"));
            continue;
        };
        let r = &inv.repos[ri];
        match r.tags.binary_search_by(|t| t.name.as_str().cmp(tag)) {
            Ok(ti) => {
                let now = r.tags[ti]
                    .current
                    .map(|c| inv.interner.digest(c).to_string());
                if now.as_deref() == Some(digest) {
                    let why = reasons
                        .get(&(repo, tag))
                        .copied()
                        .unwrap_or("in the saved plan");
                    req.tags.insert((ri, ti), why.to_string());
                } else {
                    notes.push(format!(
                        "skipped tag {repo}:{tag}: it now names {}, not {digest} (pushed since the plan)",
                        now.as_deref().unwrap_or("nothing readable"),
                    ));
                }
            }
            Err(_) => notes.push(format!("skipped tag {repo}:{tag}: it is gone")),
        }
    }
    let asked: HashMap<(&str, &str), &str> = saved
        .manifests_removed
        .iter()
        .filter(|m| m.requested)
        .map(|m| {
            (
                (m.repository.as_str(), m.digest.as_str()),
                m.reason.as_str(),
            )
        })
        .collect();
    for x in of_kind(ActionKind::Revision) {
        let (Some(repo), Some(digest)) = (x.repository.as_deref(), x.digest.as_deref()) else {
            continue;
        };
        let Some(why) = asked.get(&(repo, digest)) else {
            continue; // collected by the mark, if the fresh one collects it
        };
        let (Some(ri), Ok(d)) = (find(repo), Digest::parse(digest)) else {
            continue;
        };
        if let Some(id) = inv.interner.get(&d) {
            req.manifests.insert((ri, id), why.to_string());
        }
    }
    for x in of_kind(ActionKind::Repository) {
        if let Some(ri) = x.repository.as_deref().and_then(find) {
            req.repositories.push(ri);
        }
    }
    req.kept = saved.kept.clone();
    req.untag_only = saved.untag_only;
    req
}
