//! The plan of `delete` and `prune` as text for people: what goes, what
//! stays and why, and the bytes freed.

use super::PrunePlan;
use crate::report::human_bytes;
use std::fmt::Write;

/// The preview (or, after `--apply`, the plan that was carried out).
pub fn text(p: &PrunePlan) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} plan for {} (grace {}):",
        p.command,
        p.storage,
        humantime::format_duration(std::time::Duration::from_secs(p.grace_seconds))
    );
    for t in &p.tags_removed {
        let _ = writeln!(
            o,
            "  remove tag       {}:{}  {}  ({})",
            t.repository, t.tag, t.digest, t.reason
        );
    }
    for m in &p.manifests_removed {
        let _ = writeln!(
            o,
            "  remove manifest  {}@{}  ({})",
            m.repository, m.digest, m.reason
        );
    }
    for r in &p.repositories_removed {
        let _ = writeln!(o, "  remove repository {r}");
    }
    for k in &p.kept {
        match &k.tag {
            Some(t) => {
                let _ = writeln!(
                    o,
                    "  keep tag         {}:{}  {}  ({})",
                    k.repository, t, k.digest, k.reason
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  keep manifest    {}@{}  ({})",
                    k.repository, k.digest, k.reason
                );
            }
        }
    }
    let force = if p.command == "delete" {
        "; --force removes it anyway"
    } else {
        ""
    };
    for r in &p.refused {
        let _ = writeln!(
            o,
            "  refused          {}@{}  ({}{force})",
            r.repository, r.digest, r.reason
        );
    }
    let s = &p.summary;
    let _ = writeln!(
        o,
        "  {} tags, {} manifests, {} layer links, {} blobs removed; {} reclaimed; {} kept, {} held by the grace period",
        s.tags_removed,
        s.manifests_removed,
        s.layer_links_removed,
        s.blobs_removed,
        human_bytes(s.reclaimable_bytes),
        s.kept,
        s.held
    );
    if s.blocking_problems > 0 {
        let _ = writeln!(
            o,
            "  {} problem(s) make reachability uncertain: --apply refuses unless --ignore-problems is given",
            s.blocking_problems
        );
    }
    o
}

/// `--explain`: every image the plan decides, grouped by repository and
/// manifest, with its tags and what decided each.
pub fn explain(p: &PrunePlan) -> String {
    use std::collections::BTreeMap;
    // (repository, digest) → lines.
    let mut images: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for t in &p.tags_removed {
        images
            .entry((&t.repository, &t.digest))
            .or_default()
            .push(format!("tag {:<24} goes: {}", t.tag, t.reason));
    }
    for k in &p.kept {
        let what = match &k.tag {
            Some(t) => format!("tag {t:<24} stays: {}", k.reason),
            None => format!("untagged manifest stays: {}", k.reason),
        };
        images
            .entry((&k.repository, &k.digest))
            .or_default()
            .push(what);
    }
    for m in &p.manifests_removed {
        let why = if m.requested {
            m.reason.clone()
        } else {
            format!("collected: {}", m.reason)
        };
        images
            .entry((&m.repository, &m.digest))
            .or_default()
            .push(format!("manifest goes: {why}"));
    }
    for r in &p.refused {
        images
            .entry((&r.repository, &r.digest))
            .or_default()
            .push(format!("manifest stays (refused): {}", r.reason));
    }
    let mut o = String::from("decisions by image:\n");
    for ((repo, digest), lines) in images {
        let _ = writeln!(o, "  {repo}@{digest}");
        for l in lines {
            let _ = writeln!(o, "    {l}");
        }
    }
    o
}
