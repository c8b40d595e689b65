//! Tags kept outside the storage. Harbor 2.15 and later no longer writes
//! tag files (its tags live only in its database), so its storage shows
//! every image untagged. `--tags-from FILE` gives the tags back: they are
//! added to the inventory as the storage's own `current/link`s would be,
//! and the mark keeps what they name.
//!
//! Two formats, told apart by the first character that is not white space:
//!
//! * **Lines** `REPOSITORY:TAG@DIGEST`, one per tag (a registry host in
//!   front of the repository is dropped; blank lines and `#` comments are
//!   skipped).
//! * **Harbor's artifact listings** as JSON: an object whose keys are
//!   repository names (`project/name`) and whose values are what Harbor's
//!   `GET /api/v2.0/projects/{project}/repositories/{name}/artifacts?with_tag=true`
//!   prints for it — an array of artifacts with `digest` and `tags` (each
//!   with a `name`; `null` for none).
//!
//! A tag whose repository or manifest the storage lacks is an `Error`
//! problem (the file is not of this registry, or not of now): a sweep
//! refuses while it stands.

use super::inventory::{Inventory, Tag};
use crate::digest::Digest;
use crate::problem::{Kind, Problem, Severity};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Largest file read.
const LIMIT: u64 = 1 << 30;

/// One tag the file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTag {
    /// Repository name as stored (`project/name`).
    pub repository: String,
    /// Tag name.
    pub tag: String,
    /// The manifest it names.
    pub digest: Digest,
    /// Where the file says it (`FILE: line 3`, `FILE: library/nginx[2]`).
    pub at: String,
}

/// The tags of a `--tags-from` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTags {
    /// The file they were read from.
    pub source: PathBuf,
    /// Every tag, in the file's order.
    pub tags: Vec<ExternalTag>,
}

impl ExternalTags {
    /// Reads `path` (either format).
    pub fn read(path: &Path) -> Result<ExternalTags> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(f, LIMIT), &mut text).map_err(
            |e| Error::Parse {
                what: path.display().to_string(),
                message: format!("not a tags file (UTF-8 text): {e}"),
            },
        )?;
        Self::parse(&text, path)
    }

    /// Parses the text of a tags file read from `source`.
    pub fn parse(text: &str, source: &Path) -> Result<ExternalTags> {
        let name = source.display().to_string();
        let tags = if text.trim_start().starts_with('{') {
            harbor(text, &name)?
        } else {
            lines(text, &name)?
        };
        if tags.is_empty() {
            return Err(Error::Parse {
                what: name,
                message: "names no tag".into(),
            });
        }
        Ok(ExternalTags {
            source: source.to_path_buf(),
            tags,
        })
    }

    /// Adds the tags to `inv`'s repositories (a tag of the same name that
    /// the storage holds wins), and an `Error` problem for each tag whose
    /// repository or manifest (revision link) the storage lacks.
    pub fn apply(&self, inv: &mut Inventory) {
        let by_name: HashMap<String, usize> = inv
            .repos
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        let mut touched = Vec::new();
        for t in &self.tags {
            let shown = format!("{}:{}@{}", t.repository, t.tag, t.digest);
            let missing = |why: &str| {
                Problem::new(
                    Kind::ExternalTagUnknown,
                    Severity::Error,
                    format!("repositories/{}/", t.repository),
                    format!("{}: {shown}: {why}", t.at),
                )
            };
            let Some(&i) = by_name.get(&t.repository) else {
                inv.problems
                    .push(missing("the storage holds no such repository"));
                continue;
            };
            let id = inv.interner.get(&t.digest);
            let repo = &mut inv.repos[i];
            let Some(id) = id.filter(|id| repo.revisions.binary_search(id).is_ok()) else {
                inv.problems.push(missing(
                    "the repository holds no such manifest (no revision link)",
                ));
                continue;
            };
            if repo.tags.iter().any(|x| x.name == t.tag) {
                continue;
            }
            repo.tags.push(Tag {
                name: t.tag.clone(),
                current: Some(id),
                history: vec![id],
            });
            if !repo.tag_times.is_empty() {
                repo.tag_times.push(None);
            }
            touched.push(i);
        }
        touched.sort_unstable();
        touched.dedup();
        for i in touched {
            let repo = &mut inv.repos[i];
            // Sorted by name, with their times (when kept) alike.
            let mut order: Vec<usize> = (0..repo.tags.len()).collect();
            order.sort_by(|&a, &b| repo.tags[a].name.cmp(&repo.tags[b].name));
            repo.tags = order.iter().map(|&k| repo.tags[k].clone()).collect();
            if !repo.tag_times.is_empty() {
                repo.tag_times = order.iter().map(|&k| repo.tag_times[k]).collect();
            }
        }
    }
}

/// `REPOSITORY:TAG@DIGEST` lines.
fn lines(text: &str, name: &str) -> Result<Vec<ExternalTag>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{name}: line {}", n + 1);
        let bad = |message: String| Error::Parse {
            what: at.clone(),
            message,
        };
        let (reference, digest) = line.rsplit_once('@').ok_or_else(|| {
            bad(format!(
                "{line:?} is not REPOSITORY:TAG@DIGEST (no @DIGEST)"
            ))
        })?;
        let (repository, tag) = reference
            .rsplit_once(':')
            .filter(|(r, t)| !r.is_empty() && !t.contains('/'))
            .ok_or_else(|| bad(format!("{line:?} is not REPOSITORY:TAG@DIGEST (no :TAG)")))?;
        out.push(tag_of(without_host(repository), tag, digest, at.clone())?);
    }
    Ok(out)
}

/// Harbor's artifact listings by repository.
fn harbor(text: &str, name: &str) -> Result<Vec<ExternalTag>> {
    let bad = |what: String, message: String| Error::Parse { what, message };
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(name.to_string(), format!("not JSON: {e}")))?;
    let repos = v.as_object().ok_or_else(|| {
        bad(
            name.to_string(),
            "not an object of repository names to artifact listings".into(),
        )
    })?;
    let mut out = Vec::new();
    for (repository, artifacts) in repos {
        let artifacts = artifacts.as_array().ok_or_else(|| {
            bad(
                format!("{name}: {repository}"),
                "not an array of artifacts (Harbor's artifact listing)".into(),
            )
        })?;
        for (i, a) in artifacts.iter().enumerate() {
            let at = format!("{name}: {repository}[{i}]");
            let digest = a["digest"]
                .as_str()
                .ok_or_else(|| bad(at.clone(), "an artifact without a \"digest\"".into()))?;
            let tags = match &a["tags"] {
                serde_json::Value::Null => continue,
                serde_json::Value::Array(t) => t,
                _ => return Err(bad(at, "\"tags\" is neither an array nor null".into())),
            };
            for t in tags {
                let tag = t["name"]
                    .as_str()
                    .ok_or_else(|| bad(at.clone(), "a tag without a \"name\"".into()))?;
                out.push(tag_of(repository, tag, digest, at.clone())?);
            }
        }
    }
    Ok(out)
}

/// One tag, its names checked as the registry checks them.
fn tag_of(repository: &str, tag: &str, digest: &str, at: String) -> Result<ExternalTag> {
    let bad = |message: String| Error::Parse {
        what: at.clone(),
        message,
    };
    if !super::valid_repository(repository) {
        return Err(bad(format!("{repository:?} is not a repository name")));
    }
    if !super::valid_tag(tag) {
        return Err(bad(format!("{tag:?} is not a tag name")));
    }
    let digest = Digest::parse(digest).map_err(|e| bad(format!("{digest:?}: {e}")))?;
    Ok(ExternalTag {
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest,
        at,
    })
}

/// `repository` without a registry host in front (a first component with
/// a `.` or a `:`, or `localhost`).
fn without_host(repository: &str) -> &str {
    match repository.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => repository,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e2b529a2d1a51a5ed45b6c343e06ce039eb964f3d8cc75020e99d64f61f0f671";

    #[test]
    fn lines_with_and_without_host() {
        let text = format!(
            "# tags\n\nlibrary/nginx:1.25@{D}\nharbor.example.com:8443/library/nginx:latest@{D}\n"
        );
        let t = ExternalTags::parse(&text, Path::new("t.txt")).unwrap();
        let got: Vec<(&str, &str)> = t
            .tags
            .iter()
            .map(|t| (t.repository.as_str(), t.tag.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("library/nginx", "1.25"), ("library/nginx", "latest")]
        );
        assert_eq!(t.tags[1].at, "t.txt: line 4");
    }

    #[test]
    fn harbor_listing() {
        let text = format!(
            r#"{{"library/nginx": [
                {{"digest": "{D}", "tags": [{{"name": "1.25"}}, {{"name": "latest"}}]}},
                {{"digest": "{D}", "tags": null}}
            ]}}"#
        );
        let t = ExternalTags::parse(&text, Path::new("h.json")).unwrap();
        assert_eq!(t.tags.len(), 2);
        assert_eq!(t.tags[0].at, "h.json: library/nginx[0]");
    }

    #[test]
    fn bad_files_name_the_line() {
        for (text, want) in [
            (format!("library/nginx@{D}\n"), "line 1"),
            ("a/b:v1\n".to_string(), "no @DIGEST"),
            (format!("x\nA/B:v1@{D}\n"), "line 1"),
            (format!("a/b:v1@{D}\na/b:-x@{D}\n"), "line 2"),
            ("a/b:v1@sha256:zz\n".to_string(), "line 1"),
            ("{\"a\": 3}".to_string(), "h: a"),
            ("\n# nothing\n".to_string(), "names no tag"),
        ] {
            let e = ExternalTags::parse(&text, Path::new("h")).unwrap_err();
            assert!(e.to_string().contains(want), "{text:?}: {e}");
        }
    }
}
