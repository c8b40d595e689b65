//! What the registry's names and files must look like (repository and tag
//! names, digest directories, link files, `startedat` times), and the
//! problems recorded for listed objects that do not fit.

use crate::digest::Digest;
use crate::problem::{Kind, Problem, Severity};
use crate::storage::{Entry, EntryKind, StorageError};
use std::time::SystemTime;

/// Why a `link` file's content is not a digest. Its messages describe the
/// content; the caller names the link (a [`Problem`]'s path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Nothing in it.
    #[error("link is empty")]
    Empty,
    /// Bytes that are not UTF-8.
    #[error("link is not UTF-8 text")]
    NotUtf8,
    /// A trailing newline (the registry writes none, and reads none).
    #[error("link ends with a newline: {0:?}")]
    Newline(String),
    /// Spaces or tabs around the digest.
    #[error("link has surrounding whitespace: {0:?}")]
    Whitespace(String),
    /// A valid digest of another algorithm.
    #[error("link holds a non-sha256 digest: {0:?}")]
    NotSha256(String),
    /// Not a digest at all.
    #[error("link holds no valid digest: {0}")]
    NoDigest(#[from] crate::digest::DigestError),
}

/// Parses a `link` file's content: exactly `sha256:<64 lowercase hex>`.
pub fn parse_link(bytes: &[u8]) -> Result<Digest, LinkError> {
    if bytes.is_empty() {
        return Err(LinkError::Empty);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| LinkError::NotUtf8)?;
    if text.ends_with('\n') || text.ends_with('\r') {
        return Err(LinkError::Newline(text.into()));
    }
    if text.trim() != text {
        return Err(LinkError::Whitespace(text.into()));
    }
    match Digest::parse(text)? {
        d @ Digest::Sha256(_) => Ok(d),
        _ => Err(LinkError::NotSha256(text.into())),
    }
}

/// A repository component per the distribution grammar.
pub fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // separator: '.', '_', '__', or one or more '-'
        let start = i;
        if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'_' {
            i += 1;
            if i < b.len() && b[i] == b'_' {
                i += 1;
            }
        } else if b[i] == b'-' {
            while i < b.len() && b[i] == b'-' {
                i += 1;
            }
        } else {
            return false;
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// A tag name per the distribution grammar.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

/// True for a repository name the registry accepts: one or more valid
/// components separated by `/`.
pub fn valid_repository(name: &str) -> bool {
    !name.is_empty() && name.split('/').all(valid_component)
}

/// True when `s` is only lowercase hex digits.
pub(super) fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The digest a directory named `hex` stands for, or a problem (keyed
/// `key`) when the name is not a sha256 digest.
pub(super) fn hex_dir(key: &str, hex: &str, problems: &mut Vec<Problem>) -> Option<[u8; 32]> {
    hex_dir_at(hex, || key.to_string(), problems)
}

/// [`hex_dir`] that builds the key only when it is needed for a problem.
pub(super) fn hex_dir_at(
    hex: &str,
    key: impl FnOnce() -> String,
    problems: &mut Vec<Problem>,
) -> Option<[u8; 32]> {
    let h = crate::digest::parse_sha256_hex(hex);
    if h.is_none() {
        problems.push(Problem::new(
            Kind::BadDigestDirectory,
            Severity::Warning,
            key(),
            format!("{hex:?} is not a sha256 digest (64 lowercase hex digits); ignored"),
        ));
    }
    h
}

/// An RFC 3339 time, as an upload's `startedat` holds it.
pub(super) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
}

/// The problem with a listed object that is not a regular file, if any.
pub(super) fn problem_for_entry(e: &Entry) -> Option<Problem> {
    match &e.kind {
        EntryKind::File => None,
        EntryKind::Symlink { target } => Some(Problem::new(
            Kind::Symlink,
            Severity::Error,
            &e.key,
            format!("symlink to {target:?}; not followed (the registry would follow it, so what it hides is unknown)"),
        )),
        EntryKind::Special => Some(Problem::new(
            Kind::UnexpectedEntry,
            Severity::Warning,
            &e.key,
            "not a regular file; ignored",
        )),
    }
}

/// The problem of an object that could not be listed or read.
pub(super) fn storage_problem(e: &StorageError) -> Problem {
    match e {
        StorageError::Symlink { key, target } => Problem::new(
            Kind::Symlink,
            Severity::Error,
            key,
            format!("symlink to {target:?}; not followed (what it hides is unknown)"),
        ),
        other => Problem::new(
            Kind::Unreadable,
            Severity::Error,
            other.key(),
            other.to_string(),
        ),
    }
}

/// The problem of a file where the layout has none: a temporary file left
/// by an interrupted write, or something unexpected in `what`.
pub(super) fn stray_or_unexpected(key: &str, what: &str) -> Problem {
    if key.ends_with(".tmp") {
        Problem::new(
            Kind::StrayTempFile,
            Severity::Info,
            key,
            "temporary file left by an interrupted write",
        )
    } else {
        Problem::new(
            Kind::UnexpectedEntry,
            Severity::Warning,
            key,
            format!("unexpected object in {what}; ignored"),
        )
    }
}

/// Problems of a repository directory `repositories/<name>/` as found:
/// without `_manifests/` the registry cannot see it; a name the registry
/// would refuse.
pub(super) fn repository_problems(name: &str, has_manifests: bool, problems: &mut Vec<Problem>) {
    let prefix = format!("repositories/{name}/");
    if !has_manifests {
        problems.push(Problem::new(
            Kind::NotARepository,
            Severity::Warning,
            &prefix,
            "has _layers or _uploads but no _manifests: the registry cannot see it",
        ));
    }
    if name.len() > 255 || !valid_repository(name) {
        problems.push(Problem::new(
            Kind::InvalidName,
            Severity::Warning,
            &prefix,
            format!("{name:?} is not a valid repository name"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parsing_is_exact() {
        let h = "a".repeat(64);
        assert!(parse_link(format!("sha256:{h}").as_bytes()).is_ok());
        assert_eq!(parse_link(b""), Err(LinkError::Empty));
        assert!(parse_link(format!("sha256:{h}\n").as_bytes())
            .unwrap_err()
            .to_string()
            .contains("newline"));
        assert!(parse_link(b"garbage").is_err());
        assert!(parse_link(b"sha512:abcd")
            .unwrap_err()
            .to_string()
            .contains("non-sha256"));
    }

    #[test]
    fn names_follow_the_distribution_grammar() {
        for ok in ["a", "team-a", "a.b", "a_b", "a__b", "a---b", "0x"] {
            assert!(valid_component(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a___b", "a..b", "_a", "a_"] {
            assert!(!valid_component(bad), "{bad}");
        }
        assert!(valid_tag("v1.0-rc_1") && valid_tag("_x") && !valid_tag(".x") && !valid_tag(""));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn rfc3339_with_offsets() {
        assert!(parse_rfc3339("2024-01-02T03:04:05Z").is_some());
        assert!(parse_rfc3339("2024-01-02T03:04:05+01:00").is_some());
        assert!(parse_rfc3339("2024-01-02T03:04:05.123456789Z").is_some());
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
