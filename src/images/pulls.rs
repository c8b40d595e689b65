//! Pulls attributed to manifests: a manifest GET or HEAD (status 200) from
//! the registry's logs names a repository and a reference. A reference by
//! digest is a pull of that digest; by tag, of the digest the tag named at
//! that moment (from its history's link times, [`LinkTimes::tag_at`]), or
//! of every digest it may have named when the times cannot tell (ties, no
//! history times). A pull of an index's
//! child counts for the index too. Requests for repositories, tags or
//! digests that the storage does not hold any more are counted, not
//! attributed.

use crate::digest::Digest;
use crate::graph::Node;
use crate::scan::Inventory;
use crate::times::LinkTimes;
use serde::Serialize;
use std::collections::HashMap;
use std::time::SystemTime;

/// When a manifest of a repository was last pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullTimes {
    /// Last pull by tag or by digest.
    pub any: Option<SystemTime>,
    /// Last pull by its digest.
    pub by_digest: Option<SystemTime>,
}

impl PullTimes {
    fn merge(&mut self, o: PullTimes) {
        self.any = self.any.max(o.any);
        self.by_digest = self.by_digest.max(o.by_digest);
    }
}

/// What the logs held, for the listing's `access_logs` section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogSummary {
    /// The files read (`-` for standard input).
    pub sources: Vec<String>,
    /// Bytes read (after decompression).
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Manifest pulls found (GET or HEAD, status 200); a request logged by
    /// both the app log and the access log counts twice.
    pub pulls: u64,
    /// Of those, pulls attributed to a manifest the storage holds.
    pub attributed: u64,
    /// Pulls of a repository, tag or digest the storage does not hold.
    pub unattributed: u64,
    /// Pulls dropped by `--ignore-user-agent`.
    pub ignored_user_agent: u64,
    /// Lines in none of the registry's log formats.
    pub unparsed_lines: u64,
    /// The first of them: `file:line: text`.
    pub first_unparsed: Option<String>,
    /// Oldest and newest pull seen (RFC 3339).
    pub first_pull_at: Option<String>,
    /// Newest pull seen.
    pub last_pull_at: Option<String>,
}

/// Pull times per repository (inventory order) and manifest id.
pub type PullMap = HashMap<(u32, u32), PullTimes>;

/// Attributes pull events to manifests: shared, read-only lookups that
/// many threads use at once, each folding into its own [`Tally`].
pub struct Attributor<'a> {
    inv: &'a Inventory,
    times: &'a LinkTimes,
    repos: HashMap<&'a str, usize>,
    tags: Vec<HashMap<&'a str, usize>>,
}

/// One thread's pulls, merged at the end.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Pull times by (repository index, manifest id).
    pub map: PullMap,
    /// Pulls attributed.
    pub attributed: u64,
    /// Pulls not attributed.
    pub unattributed: u64,
    /// Oldest pull seen.
    pub first: Option<SystemTime>,
    /// Newest pull seen.
    pub last: Option<SystemTime>,
}

impl Tally {
    /// Merges another thread's tally into this one.
    pub fn merge(mut self, o: Tally) -> Tally {
        for (k, v) in o.map {
            self.map.entry(k).or_default().merge(v);
        }
        self.attributed += o.attributed;
        self.unattributed += o.unattributed;
        self.first = match (self.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = self.last.max(o.last);
        self
    }
}

impl<'a> Attributor<'a> {
    /// Lookups over the scanned storage.
    pub fn new(inv: &'a Inventory, times: &'a LinkTimes) -> Self {
        Attributor {
            inv,
            times,
            repos: inv
                .repos
                .iter()
                .enumerate()
                .filter(|(_, r)| r.visible)
                .map(|(i, r)| (r.name.as_str(), i))
                .collect(),
            tags: inv
                .repos
                .iter()
                .map(|r| {
                    r.tags
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (t.name.as_str(), i))
                        .collect()
                })
                .collect(),
        }
    }

    /// Records one pull of `repository`'s `reference` (a tag or a digest) at `at`.
    pub fn add(&self, tally: &mut Tally, repository: &str, reference: &str, at: SystemTime) {
        tally.first = Some(tally.first.map_or(at, |f| f.min(at)));
        tally.last = tally.last.max(Some(at));
        let Some(&ri) = self.repos.get(repository) else {
            tally.unattributed += 1;
            return;
        };
        let (ids, by_digest) = if reference.contains(':') {
            let id = Digest::parse(reference)
                .ok()
                .and_then(|d| self.inv.interner.get(&d));
            (id.into_iter().collect(), true)
        } else {
            let ids = self.tags[ri].get(reference).map_or_else(Vec::new, |&ti| {
                let t = &self.inv.repos[ri].tags[ti];
                self.times.tag_at(ri, ti, at, &t.history, t.current)
            });
            (ids, false)
        };
        if ids.is_empty() {
            tally.unattributed += 1;
            return;
        }
        tally.attributed += 1;
        for id in ids {
            let e = tally.map.entry((ri as u32, id)).or_default();
            e.any = e.any.max(Some(at));
            if by_digest {
                e.by_digest = e.by_digest.max(Some(at));
            }
        }
    }
}

/// Pull times of every manifest, with what the logs held.
#[derive(Debug, Clone, Default)]
pub struct Pulls {
    /// Pull times by (repository index, manifest id).
    pub map: PullMap,
    /// What the logs held.
    pub summary: LogSummary,
    /// Per source: lines, and lines not understood.
    pub sources: Vec<crate::access_log::SourceStats>,
}

impl Pulls {
    /// When manifest `m` of repository `ri` was last pulled: by tag or
    /// digest, or (for an index) through any of its children, recursively;
    /// and by its own digest.
    pub fn of(
        &self,
        ri: usize,
        m: u32,
        node: Option<&Node>,
        nodes: &HashMap<u32, Node>,
    ) -> PullTimes {
        let mut out = self.map.get(&(ri as u32, m)).copied().unwrap_or_default();
        let mut stack: Vec<u32> = node.map(|n| n.children.clone()).unwrap_or_default();
        let mut seen = vec![m];
        while let Some(c) = stack.pop() {
            if seen.contains(&c) {
                continue;
            }
            seen.push(c);
            if let Some(p) = self.map.get(&(ri as u32, c)) {
                out.any = out.any.max(p.any);
            }
            if let Some(n) = nodes.get(&c) {
                stack.extend(n.children.iter().copied());
            }
        }
        out
    }
}

/// Reads the logs at `paths` (`-`: standard input) and attributes every
/// pull to the manifests of the scanned storage. With `strict` (a decision
/// relies on the pulls), a source of which (almost) no line is in a
/// registry log format is an error naming it and its first bad line
/// ([`crate::access_log::LogError::NotALog`]); without, it is only counted.
pub fn from_logs(
    inv: &Inventory,
    times: &LinkTimes,
    paths: &[String],
    ignore_user_agent: Option<&regex::Regex>,
    strict: bool,
) -> Result<Pulls, crate::access_log::LogError> {
    use crate::access_log::{read_logs, LogOptions, LogSource};
    let sources: Vec<LogSource> = paths.iter().map(|p| LogSource::from_arg(p)).collect();
    let opts = LogOptions {
        ignore_user_agent: ignore_user_agent.cloned(),
        ..Default::default()
    };
    let attr = Attributor::new(inv, times);
    let (tally, stats) = read_logs(
        &sources,
        &opts,
        Tally::default,
        |t, p| {
            let r = &p.request;
            attr.add(t, &r.repository, &r.reference, r.time);
        },
        Tally::merge,
    )?;
    if strict {
        if let Some(e) = stats.sources.iter().find_map(|s| s.not_a_log()) {
            return Err(e);
        }
    }
    let summary = LogSummary {
        sources: stats.sources.iter().map(|s| s.name.clone()).collect(),
        bytes: stats.sources.iter().map(|s| s.bytes).sum(),
        lines: stats.sources.iter().map(|s| s.lines).sum(),
        pulls: stats.pulls,
        attributed: tally.attributed,
        unattributed: tally.unattributed,
        ignored_user_agent: stats.dropped_by_user_agent,
        unparsed_lines: stats.not_understood,
        first_unparsed: stats
            .first_not_understood
            .as_ref()
            .map(|b| format!("{}:{}: {}", b.source, b.line_number, b.text)),
        first_pull_at: tally.first.map(super::rfc3339),
        last_pull_at: tally.last.map(super::rfc3339),
    };
    Ok(Pulls {
        map: tally.map,
        summary,
        sources: stats.sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Interner;
    use crate::scan::{Repository, Tag};
    use crate::times::RepoTimes;
    use std::time::Duration;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn pulls_by_tag_follow_the_tag_history() {
        let mut interner = Interner::new();
        let a = interner.intern_sha256(&[1; 32]);
        let b = interner.intern_sha256(&[2; 32]);
        let inv = Inventory {
            storage: "x".into(),
            interner,
            blobs: Vec::new(),
            repos: vec![Repository {
                name: "app".into(),
                visible: true,
                revisions: vec![a, b],
                tags: vec![Tag {
                    name: "v1".into(),
                    current: Some(b),
                    history: vec![a, b],
                }],
                layers: Vec::new(),
                aliases: Vec::new(),
                uploads: Vec::new(),
                ..Default::default()
            }],
            problems: Vec::new(),
            absent: Default::default(),
            links: Default::default(),
            hashes: Default::default(),
            aliases: Default::default(),
        };
        let times = LinkTimes {
            repos: vec![RepoTimes {
                history: vec![vec![(a, t(100)), (b, t(200))]],
                ..Default::default()
            }],
        };
        let attr = Attributor::new(&inv, &times);
        let mut tally = Tally::default();
        attr.add(&mut tally, "app", "v1", t(150)); // a then
        attr.add(&mut tally, "app", "v1", t(250)); // b then
        attr.add(
            &mut tally,
            "app",
            &inv.interner.digest(a).to_string(),
            t(300),
        );
        attr.add(&mut tally, "gone", "v1", t(300));
        attr.add(&mut tally, "app", "nosuchtag", t(300));
        assert_eq!(tally.attributed, 3);
        assert_eq!(tally.unattributed, 2);
        let pa = tally.map[&(0, a)];
        assert_eq!(pa.any, Some(t(300)));
        assert_eq!(pa.by_digest, Some(t(300)));
        let pb = tally.map[&(0, b)];
        assert_eq!((pb.any, pb.by_digest), (Some(t(250)), None));
        // A pull of a child counts for its index.
        let pulls = Pulls {
            map: tally.map.clone(),
            ..Default::default()
        };
        let mut nodes = HashMap::new();
        let index = Node {
            children: vec![b],
            ..Default::default()
        };
        nodes.insert(99, index.clone());
        assert_eq!(pulls.of(0, 99, Some(&index), &nodes).any, Some(t(250)));
        assert_eq!(pulls.of(0, 99, Some(&index), &nodes).by_digest, None);
    }
}
