//! An `acr purge` command line (Azure/acr-cli), evaluated as the purge
//! does:
//!
//! * `--filter REPO:TAG` (repeatable): the repository regex is wrapped as
//!   the purge does, `^` + REPO + `$` — literally, so `app|web` means
//!   "starts with app or ends with web"; the tag regex matches anywhere in
//!   the tag (a search), so `v1` matches `v10`; repositories no filter
//!   matches are left alone; with `--untagged-only` and no filter, all;
//! * a tag goes when a filter of its repository matches it and it was last
//!   updated (its link time) strictly before now − `--ago` (an unknown time
//!   is not old); `--ago` is `Nd` followed by an optional Go duration
//!   (`2d3h`, `0d`, `30m`), required unless `--untagged-only` (then 0);
//! * `--keep N` keeps the N most recently updated of the tags that would go
//!   (ties: the name first in order, as the registry lists them);
//! * `--untagged` also removes the repository's untagged manifests updated
//!   at or before the cutoff, except the `--keep` newest of them (ties: the
//!   smaller digest kept) — those the purge leaves untagged go too; without
//!   it the purge only untags (a manifest whose tags all go stays);
//! * `--untagged-only` removes untagged manifests (same rule) and no tag.
//!
//! Manifests an index that stays needs, and referrers of what stays, are
//! kept, as the purge keeps them.

use super::load::field_error;
use super::{all_decided, Plain, Said};
use crate::policy::{PolicyError, Reason};
use regex::Regex;
use std::time::{Duration, SystemTime};

/// A validated purge.
#[derive(Debug, Clone)]
pub struct Purge {
    filters: Vec<(Regex, Regex, String)>,
    ago: Duration,
    ago_src: String,
    keep: usize,
    /// `--untagged`.
    pub untagged: bool,
    /// `--untagged-only`.
    pub untagged_only: bool,
}

impl Purge {
    /// Validates the flags; errors name the flag.
    pub fn new(
        filters: &[String],
        ago: Option<&str>,
        keep: Option<i64>,
        untagged: bool,
        untagged_only: bool,
    ) -> Result<Purge, PolicyError> {
        let err = |field: &str, message: String| field_error("command line", Some(field), message);
        if filters.is_empty() && !untagged_only {
            return Err(err(
                "--acr-filter",
                "give at least one REPO-REGEX:TAG-REGEX (or --untagged-only)".into(),
            ));
        }
        let ago = match (ago, untagged_only) {
            (Some(a), _) => a,
            (None, true) => "0d",
            (None, false) => return Err(err("--ago", "required (e.g. 30d, 2d12h)".into())),
        };
        let filters = filters
            .iter()
            .map(|f| {
                let (repo, tag) = split_filter(f).ok_or_else(|| {
                    err(
                        "--acr-filter",
                        format!(
                            "{f:?}: write REPO-REGEX:TAG-REGEX with one separating colon, \
                             e.g. 'team/.*:.*'"
                        ),
                    )
                })?;
                if repo.is_empty() {
                    return Err(err(
                        "--acr-filter",
                        format!("{f:?}: missing repository name/expression"),
                    ));
                }
                if tag.is_empty() && !untagged_only {
                    return Err(err(
                        "--acr-filter",
                        format!("{f:?}: missing tag name/expression"),
                    ));
                }
                let repo_re = Regex::new(&format!("^{repo}$")).map_err(|e| {
                    err(
                        "--acr-filter",
                        format!("{f:?}: invalid repository regex: {e}"),
                    )
                })?;
                let tag_re = Regex::new(tag)
                    .map_err(|e| err("--acr-filter", format!("{f:?}: invalid tag regex: {e}")))?;
                Ok((repo_re, tag_re, f.clone()))
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        let ago_d = parse_ago(ago).map_err(|m| err("--ago", format!("{ago:?}: {m}")))?;
        let keep = match keep {
            None => 0,
            Some(k) if k >= 0 => k as usize,
            Some(k) => return Err(err("--keep", format!("{k}: give 0 or more"))),
        };
        if untagged && untagged_only {
            return Err(err(
                "--untagged-only",
                "give --untagged or --untagged-only, not both".into(),
            ));
        }
        Ok(Purge {
            filters,
            ago: ago_d,
            ago_src: ago.to_string(),
            keep,
            untagged,
            untagged_only,
        })
    }

    /// Decides one repository, or `None` when no filter matches it.
    pub fn decide(&self, p: &Plain<'_>, now: SystemTime) -> Option<Said> {
        let filters: Vec<&(Regex, Regex, String)> = self
            .filters
            .iter()
            .filter(|(r, _, _)| r.is_match(p.repo))
            .collect();
        if filters.is_empty() && !(self.untagged_only && self.filters.is_empty()) {
            return None;
        }
        let by = |what: String| Reason::Retained {
            by: format!("acr purge: {what}"),
        };
        let cut = now.checked_sub(self.ago);
        let old = |t: Option<SystemTime>| matches!((t, cut), (Some(t), Some(c)) if t < c);
        let mut tags: Vec<Option<Reason>> = p
            .tags
            .iter()
            .map(|t| {
                if self.untagged_only {
                    return Some(by("--untagged-only removes no tag".into()));
                }
                if !filters.iter().any(|(_, tr, _)| tr.is_match(&t.name)) {
                    return Some(by("no --filter matches the tag".into()));
                }
                (!old(t.assigned_at)).then(|| by(format!("updated within --ago {}", self.ago_src)))
            })
            .collect();
        let mut going: Vec<usize> = (0..p.tags.len()).filter(|&i| tags[i].is_none()).collect();
        going.sort_by(|&a, &b| {
            let (a, b) = (p.tags[a], p.tags[b]);
            b.assigned_at
                .cmp(&a.assigned_at)
                .then_with(|| a.name.cmp(&b.name))
        });
        let words = self
            .filters
            .iter()
            .map(|(_, _, s)| format!("--filter {s:?}"))
            .collect::<Vec<_>>()
            .join(" ");
        for (rank, &i) in going.iter().enumerate() {
            tags[i] = Some(if rank < self.keep {
                by(format!("--keep {} (rank {})", self.keep, rank + 1))
            } else {
                Reason::Expired {
                    by: format!("acr purge {words} --ago {}", self.ago_src),
                }
            });
        }
        let mode = if self.untagged_only {
            "--untagged-only"
        } else {
            "--untagged"
        };
        let mut untagged: Vec<Option<Reason>> = p
            .untagged
            .iter()
            .map(|m| {
                if !(self.untagged || self.untagged_only) {
                    return Some(by("untagged manifests need --untagged".into()));
                }
                let old = matches!((m.pushed_at, cut), (Some(t), Some(c)) if t <= c);
                (!old).then(|| by(format!("updated within --ago {}", self.ago_src)))
            })
            .collect();
        let mut going: Vec<usize> = (0..p.untagged.len())
            .filter(|&i| untagged[i].is_none())
            .collect();
        going.sort_by(|&a, &b| {
            let (a, b) = (p.untagged[a], p.untagged[b]);
            b.pushed_at
                .cmp(&a.pushed_at)
                .then_with(|| a.digest.cmp(&b.digest))
        });
        let keep_untagged = if going.len() <= self.keep {
            going.len()
        } else {
            self.keep
        };
        for (rank, &i) in going.iter().enumerate() {
            untagged[i] = Some(if rank < keep_untagged {
                by(format!("--keep {} (rank {})", self.keep, rank + 1))
            } else {
                Reason::Expired {
                    by: format!("acr purge {mode} --ago {}", self.ago_src),
                }
            });
        }
        Some(Said {
            tags: all_decided(tags),
            untagged: all_decided(untagged),
        })
    }

    /// Without `--untagged` the purge only untags.
    pub fn untag_only(&self) -> bool {
        !self.untagged && !self.untagged_only
    }
}

/// Splits `REPO:TAG` as the purge does: at the one colon that is neither
/// part of a group's flags (`(?:`, `(?i:`) nor inside a character class;
/// `None` unless there is exactly one.
pub fn split_filter(f: &str) -> Option<(&str, &str)> {
    let b = f.as_bytes();
    let mut class = false;
    let mut at = None;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !class => class = true,
            b']' if class => class = false,
            b':' if !class => {
                let head = &f[..i];
                let flags = head
                    .rfind("(?")
                    .is_some_and(|g| head[g + 2..].bytes().all(|c| b"imsU-".contains(&c)));
                if !flags {
                    if at.is_some() {
                        return None;
                    }
                    at = Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    at.map(|i| (&f[..i], &f[i + 1..]))
}

/// `--ago`: days (`Nd`) then an optional Go duration (`3h20m`, `90s`), or
/// a Go duration alone.
pub fn parse_ago(s: &str) -> Result<Duration, String> {
    let (days, rest) = match s.find('d') {
        Some(i) => {
            let n: u64 = s[..i]
                .parse()
                .map_err(|_| "write Nd and/or a duration such as 2d3h, 12h30m".to_string())?;
            (n, &s[i + 1..])
        }
        None => (0, s),
    };
    let mut total = Duration::from_secs(days.saturating_mul(86_400));
    let mut rest = rest;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or("a number needs a unit (h, m, s, ms)")?;
        if end == 0 {
            return Err("write Nd and/or a duration such as 2d3h, 12h30m".into());
        }
        let n: f64 = rest[..end].parse().map_err(|_| "bad number".to_string())?;
        let unit_end = rest[end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map(|i| end + i)
            .unwrap_or(rest.len());
        let secs = match &rest[end..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            u => return Err(format!("unknown unit {u:?} (use d, h, m, s)")),
        };
        total += Duration::from_secs_f64(n * secs);
        rest = &rest[unit_end..];
    }
    if s.is_empty() {
        return Err("empty".into());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_split_at_the_separating_colon() {
        assert_eq!(split_filter("app:.*"), Some(("app", ".*")));
        assert_eq!(
            split_filter("(?:a|b):(?i:v1)"),
            Some(("(?:a|b)", "(?i:v1)"))
        );
        assert_eq!(split_filter("app:[:digit:]"), Some(("app", "[:digit:]")));
        assert_eq!(split_filter("a:b:c"), None);
        assert_eq!(split_filter("app"), None);
    }

    #[test]
    fn ago_forms() {
        assert_eq!(parse_ago("2d").unwrap(), Duration::from_secs(2 * 86400));
        assert_eq!(
            parse_ago("1d3h6m").unwrap(),
            Duration::from_secs(86400 + 3 * 3600 + 360)
        );
        assert_eq!(parse_ago("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ago("0d").unwrap(), Duration::ZERO);
        for bad in ["", "d", "3x", "1.5d", "h3"] {
            assert!(parse_ago(bad).is_err(), "{bad}");
        }
    }
}
