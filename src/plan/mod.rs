//! The sweep plan: what a sweep would remove, built from the mark, checked
//! against the grace period, serializable so that an operator can review it
//! and apply it later (after a fresh scan re-checks every entry).
//!
//! Actions come in the order they are carried out — tags (`delete` and
//! `prune`), tag history entries, revision links, layer links, uploads,
//! blobs, empty repositories — so that a crash never leaves a link to a
//! missing blob.
//!
//! [`build`] makes a plan from an analysis; an [`Action`] holds interned
//! ids of the names its key is made of ([`names`]), and writes its key and
//! JSON form from them.

mod action;
mod build;
pub mod names;

pub use action::{file_of, sort, Action, ActionKind, RawAction};
pub use build::{build, build_on, State};

use crate::mark::Mode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Version of the plan format.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// A removal of a saved plan that the fresh plan does not make.
#[derive(Debug, Clone)]
pub struct Dropped {
    /// The removal.
    pub action: Action,
    /// Why it is not made.
    pub reason: String,
}

/// Something the plan keeps although the mark found it unreachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// What it is.
    pub kind: ActionKind,
    /// Its key.
    pub key: String,
    /// Why it is kept.
    pub reason: String,
}

/// Totals of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Whole tags to remove (`delete`, `prune`).
    #[serde(default)]
    pub tags: usize,
    /// Tag history entries to remove.
    pub tag_history: usize,
    /// Revision links to remove.
    pub revisions: usize,
    /// Layer links to remove.
    pub layer_links: usize,
    /// Uploads to remove.
    pub uploads: usize,
    /// Blobs to remove.
    pub blobs: usize,
    /// Empty repositories to remove.
    pub repositories: usize,
    /// Bytes reclaimed (blobs and uploads).
    pub bytes: u64,
    /// Entries kept by the grace period or for lack of an age.
    pub held: usize,
    /// Problems that make reachability uncertain (a sweep refuses to apply).
    pub blocking_problems: usize,
}

/// A sweep plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Version of this format.
    pub format_version: u32,
    /// The storage it was made for.
    pub storage: String,
    /// The mark mode.
    pub mode: Mode,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Grace period, seconds.
    pub grace_seconds: u64,
    /// Uploads older than this (by `startedat`) are removed, seconds.
    pub upload_max_age_seconds: u64,
    /// Whether empty repositories are removed.
    pub prune_empty_repositories: bool,
    /// Totals.
    pub summary: PlanSummary,
    /// Removals, in execution order.
    pub actions: Vec<Action>,
    /// What is kept although unreachable, and why.
    pub held: Vec<Held>,
}

/// Settings of a plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Nothing modified more recently than this is removed.
    pub grace: Duration,
    /// Uploads started longer ago than this are removed.
    pub upload_max_age: Duration,
    /// Remove repositories left with no tags, manifests or uploads.
    pub prune_empty_repositories: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            grace: Duration::from_secs(3600),
            upload_max_age: Duration::from_secs(168 * 3600),
            prune_empty_repositories: false,
        }
    }
}

/// The totals of `actions` (in execution order), with `held` entries kept
/// and `blocking` problems.
pub fn summarize(actions: &[Action], held: usize, blocking: usize) -> PlanSummary {
    let count = |k| actions.iter().filter(|x: &&Action| x.kind == k).count();
    PlanSummary {
        tags: count(ActionKind::Tag),
        tag_history: count(ActionKind::TagHistory),
        revisions: count(ActionKind::Revision),
        layer_links: count(ActionKind::LayerLink),
        uploads: count(ActionKind::Upload),
        blobs: count(ActionKind::Blob),
        repositories: count(ActionKind::Repository),
        bytes: crate::report::sum_bytes(actions.iter().map(|x| x.bytes)),
        held,
        blocking_problems: blocking,
    }
}

impl Plan {
    /// Recomputes the totals after the actions or held entries changed.
    pub fn resummarize(&mut self) {
        self.summary = summarize(
            &self.actions,
            self.held.len(),
            self.summary.blocking_problems,
        );
    }

    /// The settings this plan was made with.
    pub fn options(&self) -> PlanOptions {
        PlanOptions {
            grace: Duration::from_secs(self.grace_seconds),
            upload_max_age: Duration::from_secs(self.upload_max_age_seconds),
            prune_empty_repositories: self.prune_empty_repositories,
        }
    }

    /// Keeps only the actions that `fresh` (a plan from a new scan) also
    /// has, as `fresh` has them (its digests and sizes, not the saved
    /// ones), in this plan's order; returns the others, each with why the
    /// fresh plan does not make it.
    pub fn recheck(&mut self, fresh: &Plan) -> Vec<Dropped> {
        let now: HashMap<Action, &Action> =
            fresh.actions.iter().map(|x| (x.identity(), x)).collect();
        let held: HashMap<(ActionKind, &str), &str> = fresh
            .held
            .iter()
            .map(|h| ((h.kind, h.key.as_str()), h.reason.as_str()))
            .collect();
        let mut dropped = Vec::new();
        for x in std::mem::take(&mut self.actions) {
            match now.get(&x.identity()) {
                Some(f) => self.actions.push(**f),
                None => {
                    let key = x.key();
                    let reason = held.get(&(x.kind, key.as_str())).map_or(
                        "a fresh scan does not remove it (referenced, pushed again, or gone since the plan)",
                        |r| r,
                    );
                    dropped.push(Dropped {
                        reason: reason.to_string(),
                        action: x,
                    });
                }
            }
        }
        dropped
    }

    /// The plan as text for people.
    pub fn to_text(&self) -> String {
        let s = &self.summary;
        let mut o = format!(
            "sweep plan for {} (mode: {}, grace {}):\n  remove {} tag history entries, {} revision links, {} layer links, {} uploads, {} blobs, {} empty repositories\n  reclaim {}\n  kept by grace or unknown age: {}\n",
            self.storage,
            self.mode,
            humantime::format_duration(Duration::from_secs(self.grace_seconds)),
            s.tag_history,
            s.revisions,
            s.layer_links,
            s.uploads,
            s.blobs,
            s.repositories,
            crate::report::human_bytes(s.bytes),
            s.held
        );
        if s.blocking_problems > 0 {
            o.push_str(&format!(
                "  {} problem(s) make reachability uncertain: --apply refuses unless --ignore-problems is given\n",
                s.blocking_problems
            ));
        }
        o
    }
}
