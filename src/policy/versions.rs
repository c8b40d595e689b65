//! Semantic versions in tag names, for `keep_versions`: which tags are
//! versions, and their rank (1 = highest) in a repository.
//!
//! A tag is a version when, after an optional leading `v`, it is a full
//! semantic version (`MAJOR.MINOR.PATCH`, optional `-pre-release`). Tags
//! cannot hold `+`, so build metadata written after `_` (`1.2.3_build.5`,
//! the convention of Helm and others) is read as `+build.5`. `1.2`,
//! `latest` and `2024-01-01` are not versions. Pre-releases rank below
//! their release (`1.0.0-rc.1` < `1.0.0`); versions that differ only in
//! build metadata (or in the `v`) are one version and share a rank.

use semver::Version;
use std::cmp::Ordering;
use std::collections::HashMap;

/// The version a tag names, if it is one.
pub fn parse(tag: &str) -> Option<Version> {
    let s = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let s = match s.split_once('_') {
        Some((v, build)) => format!("{v}+{build}"),
        None => s.to_string(),
    };
    Version::parse(&s).ok()
}

/// Semantic-version precedence: build metadata does not count.
fn precedence(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

/// Ranks the version tags among `tags`, highest first: tag → rank, with
/// equal versions sharing a rank. With `per_major`, each major version is
/// ranked on its own. Tags that are not versions are absent.
pub fn rank<'a>(
    tags: impl IntoIterator<Item = &'a str>,
    per_major: bool,
) -> HashMap<&'a str, usize> {
    let mut versions: Vec<(&str, Version)> = tags
        .into_iter()
        .filter_map(|t| parse(t).map(|v| (t, v)))
        .collect();
    versions.sort_by(|(ta, a), (tb, b)| precedence(b, a).then_with(|| ta.cmp(tb)));
    let mut ranks = HashMap::with_capacity(versions.len());
    // Per group (major, or all): the rank and the version it was given to.
    let mut groups: HashMap<Option<u64>, (usize, Version)> = HashMap::new();
    for (tag, v) in versions {
        let group = per_major.then_some(v.major);
        let rank = match groups.get_mut(&group) {
            Some((rank, last)) => {
                if precedence(&v, last) != Ordering::Equal {
                    *rank += 1;
                    *last = v;
                }
                *rank
            }
            None => {
                groups.insert(group, (1, v));
                1
            }
        };
        ranks.insert(tag, rank);
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_not() {
        assert!(parse("1.2.3").is_some());
        assert!(parse("v1.2.3-rc.1").is_some());
        assert_eq!(parse("1.2.3_build.7").unwrap().build.as_str(), "build.7");
        for t in [
            "latest",
            "1.2",
            "v",
            "2024-01-01",
            "sha256-abc",
            "1.2.3.4",
            "main",
        ] {
            assert!(parse(t).is_none(), "{t}");
        }
    }

    #[test]
    fn ranks_highest_first_prerelease_below_release() {
        let tags = [
            "1.0.0",
            "1.0.0-rc.1",
            "v1.2.0",
            "1.10.0",
            "0.9.9",
            "latest",
            "1.2.0_b2",
        ];
        let r = rank(tags, false);
        assert_eq!(r["1.10.0"], 1);
        assert_eq!(r["v1.2.0"], 2);
        assert_eq!(
            r["1.2.0_b2"], 2,
            "build metadata does not make another version"
        );
        assert_eq!(r["1.0.0"], 3);
        assert_eq!(r["1.0.0-rc.1"], 4);
        assert_eq!(r["0.9.9"], 5);
        assert!(!r.contains_key("latest"));
    }

    #[test]
    fn per_major_ranks_each_major() {
        let r = rank(["2.1.0", "2.0.0", "1.9.0", "1.8.0", "0.1.0"], true);
        assert_eq!(
            (r["2.1.0"], r["2.0.0"], r["1.9.0"], r["1.8.0"], r["0.1.0"]),
            (1, 2, 1, 2, 1)
        );
    }
}
