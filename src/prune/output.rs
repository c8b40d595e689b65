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
