//! Selecting repositories and tags: the one syntax behind every `--repo`
//! and `--tag` (`images`, `prune`, policy files in regsweep's format).
//!
//! A pattern is Rust `regex` syntax matched against the **whole** name, as
//! if written `^(?:…)$`: `--repo 'team-a/.*'` selects every repository
//! under `team-a/`, `--repo team-a` only `team-a` itself, `--tag 'v1\..*'`
//! the tags starting with `v1.`. Several `--repo` flags select what any of
//! them matches.

use regex::Regex;
use std::fmt;

/// A compiled pattern that must match a whole name (`\A(?:…)\z`).
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    /// Compiles `source` anchored at both ends. It is compiled alone first,
    /// so that an error shows the pattern as written.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        Regex::new(source)?;
        let regex = Regex::new(&format!(r"\A(?:{source})\z"))?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    /// Compiles the patterns of a flag given several times into one that
    /// matches what any of them matches; each is checked alone first so
    /// that an error names the one at fault. `None` when none is given.
    pub fn any_of(flag: &str, sources: &[String]) -> crate::Result<Option<Pattern>> {
        for s in sources {
            Pattern::new(s).map_err(|e| invalid(flag, s, &e))?;
        }
        let joined = match sources {
            [] => return Ok(None),
            [one] => one.clone(),
            many => many
                .iter()
                .map(|s| format!("(?:{s})"))
                .collect::<Vec<_>>()
                .join("|"),
        };
        Pattern::new(&joined)
            .map(Some)
            .map_err(|e| invalid(flag, &joined, &e))
    }

    /// True when the pattern matches all of `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn invalid(flag: &str, source: &str, e: &regex::Error) -> crate::Error {
    crate::Error::Invalid(format!(
        "{flag} {source:?} is not a valid regex (whole-name match, as in README \"Selecting repositories and tags\"): {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names() {
        let p = Pattern::new("team-a/.*").unwrap();
        assert!(p.matches("team-a/web"));
        assert!(p.matches("team-a/x/y"));
        assert!(!p.matches("team-a"));
        assert!(!p.matches("x/team-a/web"));
        let t = Pattern::new(r"v1\..*").unwrap();
        assert!(t.matches("v1.2"));
        assert!(!t.matches("av1.2"));
    }

    #[test]
    fn several_flags_select_what_any_matches() {
        let p = Pattern::any_of("--repo", &["a|b".into(), "c/.*".into()])
            .unwrap()
            .unwrap();
        for yes in ["a", "b", "c/d"] {
            assert!(p.matches(yes), "{yes}");
        }
        for no in ["ab", "c", "d"] {
            assert!(!p.matches(no), "{no}");
        }
        assert!(Pattern::any_of("--repo", &[]).unwrap().is_none());
    }

    #[test]
    fn an_invalid_pattern_is_named_with_its_flag() {
        let e = Pattern::any_of("--repo", &["ok".into(), "a/[b".into()]).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("--repo") && m.contains("a/[b"), "{m}");
    }
}
