//! Plans saved by `--plan FILE`: reading one back (either kind, told apart
//! by its `command` field), checking it fits the run that carries it out,
//! and the request a `delete` / `prune` plan made, re-read on a fresh
//! snapshot (a tag is removed only while it names the digest it named).

use super::Removal;
use crate::mark::Mode;
use crate::plan::{Action, ActionKind, Plan, RawAction, PLAN_FORMAT_VERSION};
use crate::prune::{self, PrunePlan, Request};
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
    let mut value: serde_json::Value =
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
        let actions = take_actions(value.get_mut("plan"), path)?;
        let mut p: PrunePlan =
            serde_json::from_value(value).map_err(|e| bad(format!("not a plan: {e}")))?;
        p.plan.actions = actions;
        Ok(Removal::Prune(Box::new(p)))
    } else {
        if version != Some(u64::from(PLAN_FORMAT_VERSION)) {
            return Err(bad(format!(
                "format version {}; this regsweep reads version {}",
                show(version),
                PLAN_FORMAT_VERSION
            )));
        }
        let actions = take_actions(Some(&mut value), path)?;
        let mut p: Plan =
            serde_json::from_value(value).map_err(|e| bad(format!("not a plan: {e}")))?;
        p.actions = actions;
        Ok(Removal::Sweep(p))
    }
}

/// Takes the `actions` out of a saved plan's sweep plan (`plan`), each
/// checked to be a well-formed removal: its key the one its kind,
/// repository and digest name (a tag, a history entry, a revision or layer
/// link, an upload, a blob or a repository of the registry layout), so that
/// an edited plan cannot name anything else. The first malformed action is
/// the error, naming its position and key.
fn take_actions(plan: Option<&mut serde_json::Value>, path: &Path) -> Result<Vec<Action>, Error> {
    let bad = |message: String| Error::Plan {
        file: path.to_path_buf(),
        message,
    };
    let Some(list) = plan.and_then(|p| p.get_mut("actions")) else {
        return Err(bad("not a plan: it has no actions".into()));
    };
    let list = std::mem::replace(list, serde_json::Value::Array(Vec::new()));
    let serde_json::Value::Array(items) = list else {
        return Err(bad("not a plan: its actions are not a list".into()));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let raw: RawAction = serde_json::from_value(v)
                .map_err(|e| bad(format!("action {}: not an action: {e}", i + 1)))?;
            raw.action().map_err(|why| {
                bad(format!(
                    "action {} ({:?} {:?}): {why}",
                    i + 1,
                    raw.kind,
                    raw.key
                ))
            })
        })
        .collect()
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
    Ok(())
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
        let (Some(repo), Some(tag), Some(digest)) = (x.repository(), x.tag_name(), x.digest())
        else {
            continue; // a tag action names all three
        };
        let digest = digest.to_string();
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
                if now.as_deref() == Some(digest.as_str()) {
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
        let (Some(repo), Some(d)) = (x.repository(), x.digest()) else {
            continue;
        };
        let text = d.to_string();
        let Some(why) = asked.get(&(repo, text.as_str())) else {
            continue; // collected by the mark, if the fresh one collects it
        };
        let Some(ri) = find(repo) else {
            continue;
        };
        if let Some(id) = inv.interner.get(&d) {
            req.manifests.insert((ri, id), why.to_string());
        }
    }
    for x in of_kind(ActionKind::Repository) {
        if let Some(ri) = x.repository().and_then(find) {
            req.repositories.push(ri);
        }
    }
    req.kept = saved.kept.clone();
    req.untag_only = saved.untag_only;
    req
}
