//! Plans saved by `--plan FILE`: reading one back (either kind, told apart
//! by its `command` field), checking it fits the run that carries it out,
//! and the request a `delete` / `prune` plan made, re-read on a fresh
//! snapshot (a tag is removed only while it names the digest it named).

use super::Removal;
use crate::mark::Mode;
use crate::plan::{Plan, PLAN_FORMAT_VERSION};
use crate::prune::{self, PrunePlan, Request};
use crate::Analysis;
use crate::Error;
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
    Ok(())
}

/// The request a saved plan made, on the fresh analysis `a`: its tags while
/// they still name the same digest, its requested manifests that are still
/// there, its whole repositories. What it skips is told in `notes`.
pub fn request(a: &Analysis, saved: &PrunePlan, notes: &mut Vec<String>) -> Request {
    let inv = &a.inventory;
    let mut req = Request::default();
    let find = |name: &str| inv.repos.iter().position(|r| r.name == name);
    for t in &saved.tags_removed {
        let Some(ri) = find(&t.repository) else {
            notes.push(format!(
                "skipped tag {}:{}: the repository is gone",
                t.repository, t.tag
            ));
            continue;
        };
        let r = &inv.repos[ri];
        match r.tags.binary_search_by(|x| x.name.as_str().cmp(&t.tag)) {
            Ok(ti) => {
                let now = r.tags[ti]
                    .current
                    .map(|c| inv.interner.digest(c).to_string());
                if now.as_deref() == Some(t.digest.as_str()) {
                    req.tags.insert((ri, ti), t.reason.clone());
                } else {
                    notes.push(format!(
                        "skipped tag {}:{}: it now names {}, not {} (pushed since the plan)",
                        t.repository,
                        t.tag,
                        now.as_deref().unwrap_or("nothing readable"),
                        t.digest
                    ));
                }
            }
            Err(_) => notes.push(format!(
                "skipped tag {}:{}: it is gone",
                t.repository, t.tag
            )),
        }
    }
    for m in saved.manifests_removed.iter().filter(|m| m.requested) {
        let (Some(ri), Ok(d)) = (find(&m.repository), crate::digest::Digest::parse(&m.digest))
        else {
            continue;
        };
        if let Some(id) = inv.interner.get(&d) {
            req.manifests.insert((ri, id), m.reason.clone());
        }
    }
    for name in &saved.repositories_removed {
        if let Some(ri) = find(name) {
            req.repositories.push(ri);
        }
    }
    req.kept = saved.kept.clone();
    req.untag_only = saved.untag_only;
    req
}
