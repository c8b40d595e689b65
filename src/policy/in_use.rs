//! Images in use (`prune --keep-refs FILE`): the references a cluster or a
//! task list runs, kept whatever any rule says.
//!
//! A listing holds image references separated by whitespace or commas,
//! as `kubectl get pods -A -o jsonpath='{..image}'` prints them (all on
//! one line) or one per line; `#` starts a comment. Each is
//! `[host[:port]/]repository[:tag][@sha256:<hex>]`, as Docker reads it:
//! the first component is a host when it holds `.` or `:` or is
//! `localhost`, and is dropped (regsweep reads one registry's storage; a
//! reference to another registry with the same repository name keeps the
//! image here too, which errs on the side of keeping). No tag and no
//! digest means `latest`; a digest wins over a tag. Anything else is an
//! error naming the file and line, and nothing is pruned.

use crate::digest::Digest;
use std::collections::HashMap;
use std::io::BufRead;

/// Where a reference was listed, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The reference as written.
    pub reference: String,
    /// `file:line`.
    pub at: String,
}

/// Every image reference in use, by what it names.
#[derive(Debug, Clone, Default)]
pub struct InUse {
    /// (repository, tag) → the first listing of it.
    pub tags: HashMap<(String, String), Listed>,
    /// (repository, `sha256:<hex>`) → the first listing of it.
    pub digests: HashMap<(String, String), Listed>,
}

/// A listing that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct ListingError {
    /// The file (`-` is standard input).
    pub origin: String,
    /// Line, from 1.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl InUse {
    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.digests.is_empty()
    }

    /// Number of references.
    pub fn len(&self) -> usize {
        self.tags.len() + self.digests.len()
    }

    /// Reads one listing (`-` = standard input) into `self`.
    pub fn read(&mut self, origin: &str) -> Result<(), ListingError> {
        let err = |line: Option<usize>, message: String| ListingError {
            origin: origin.to_string(),
            line,
            message,
        };
        let reader: Box<dyn BufRead> = if origin == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let f =
                std::fs::File::open(origin).map_err(|e| err(None, format!("cannot read: {e}")))?;
            Box::new(std::io::BufReader::new(f))
        };
        self.read_from(reader, origin)
    }

    /// Reads a listing from `reader`; `origin` names it in errors.
    pub fn read_from(
        &mut self,
        mut reader: impl BufRead,
        origin: &str,
    ) -> Result<(), ListingError> {
        let mut buf = Vec::new();
        let mut n = 0;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| ListingError {
                    origin: origin.to_string(),
                    line: Some(n + 1),
                    message: format!("cannot read: {e}"),
                })?;
            if read == 0 {
                return Ok(());
            }
            n += 1;
            let err = |message: String| ListingError {
                origin: origin.to_string(),
                line: Some(n),
                message,
            };
            let line = std::str::from_utf8(&buf)
                .map_err(|_| err("not text (invalid UTF-8): not an image listing".into()))?;
            let line = line.split('#').next().unwrap_or_default();
            for token in line.split(|c: char| c.is_whitespace() || c == ',') {
                let token = token.trim_matches(|c| c == '"' || c == '\'');
                if token.is_empty() {
                    continue;
                }
                let (repo, what) = parse_ref(token).map_err(|m| err(format!("{token:?}: {m}")))?;
                let listed = Listed {
                    reference: token.to_string(),
                    at: format!("{origin}:{n}"),
                };
                match what {
                    Names::Tag(t) => self.tags.entry((repo, t)).or_insert(listed),
                    Names::Digest(d) => self.digests.entry((repo, d)).or_insert(listed),
                };
            }
        }
    }
}

/// What a reference names in its repository.
#[derive(Debug, PartialEq, Eq)]
enum Names {
    Tag(String),
    Digest(String),
}

/// Splits a reference into its repository (host dropped) and what it names.
fn parse_ref(token: &str) -> Result<(String, Names), String> {
    let (rest, digest) = match token.split_once('@') {
        Some((r, d)) => {
            let d = Digest::parse(d)
                .map_err(|e| format!("bad digest: {e}"))?
                .to_string();
            (r, Some(d))
        }
        None => (token, None),
    };
    let mut parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            parts.remove(0);
        }
    }
    let last = parts.pop().unwrap_or_default();
    let (name, tag) = match last.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (last, None),
    };
    parts.push(name);
    if parts.iter().any(|p| !crate::scan::valid_component(p)) {
        return Err("not an image reference ([host/]repository[:tag][@sha256:<hex>])".into());
    }
    let repo = parts.join("/");
    if let Some(t) = tag {
        if !crate::scan::valid_tag(t) {
            return Err(format!("invalid tag {t:?}"));
        }
    }
    Ok(match (digest, tag) {
        (Some(d), _) => (repo, Names::Digest(d)),
        (None, Some(t)) => (repo, Names::Tag(t.to_string())),
        (None, None) => (repo, Names::Tag("latest".into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn read(text: &str) -> Result<InUse, ListingError> {
        let mut u = InUse::default();
        u.read_from(text.as_bytes(), "pods.txt").map(|_| u)
    }

    #[test]
    fn kubectl_line_and_forms() {
        let u = read(&format!(
            "registry.example.com:5000/team/api:v1 nginx localhost/a/b:2 \"web@{D}\"\n\
             # comment\n\
             docker.io/library/redis:7,host.io/x:y@{D}\n"
        ))
        .unwrap();
        for (r, t) in [
            ("team/api", "v1"),
            ("nginx", "latest"),
            ("a/b", "2"),
            ("library/redis", "7"),
        ] {
            assert!(u.tags.contains_key(&(r.into(), t.into())), "{r}:{t}");
        }
        assert!(u.digests.contains_key(&("web".into(), D.into())));
        assert!(
            u.digests.contains_key(&("x".into(), D.into())),
            "digest wins over tag"
        );
        assert_eq!(u.tags[&("team/api".into(), "v1".into())].at, "pods.txt:1");
        assert_eq!(u.len(), 6);
    }

    #[test]
    fn garbage_names_line() {
        let e = read("ok:1\nNOT/Valid::ref\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.to_string()
                .starts_with("pods.txt line 2: \"NOT/Valid::ref\""),
            "{e}"
        );
        let e = read("a@sha256:zz\n").unwrap_err();
        assert!(e.to_string().contains("bad digest"), "{e}");
        let mut u = InUse::default();
        let e = u
            .read_from(&b"\xff\xfe\x00binary"[..], "x.bin")
            .unwrap_err();
        assert!(e.to_string().contains("not text"), "{e}");
    }
}
