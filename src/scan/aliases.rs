//! Digest aliases: blobs pushed by a sha384 or sha512 digest get a link
//! `_layers/<alg>/<hex>/link` in their repository, holding the sha256
//! digest under which the blob is stored. A manifest may name the blob by
//! its alias, so the alias keeps the blob alive.

use super::layout::{lower_hex, parse_link};
use super::raw::RawRepo;
use crate::digest::Digest;
use crate::problem::{Kind, Problem, Severity};
use crate::storage::{Storage, StorageExt};

/// The directory of a repository's layer link for digest `d`:
/// `repositories/<repo>/_layers/<alg>/<hex>/` (`sha256`, or an alias's
/// algorithm).
pub fn layer_link_dir(repo: &str, d: &Digest) -> String {
    let text = d.to_string();
    let (alg, hex) = text.split_once(':').unwrap_or(("", &text));
    format!("repositories/{repo}/_layers/{alg}/{hex}/")
}

/// The alias digest `alg:hex` of `_layers/<alg>/<hex>/`, or a problem
/// when the name is not a well-formed digest.
pub(super) fn alias_digest(
    alg: &str,
    hex: &str,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<Digest> {
    let want = match alg {
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    };
    match Digest::parse(&format!("{alg}:{hex}")) {
        Ok(d @ Digest::Other(_)) if want.is_none_or(|n| hex.len() == n) && lower_hex(hex) => {
            Some(d)
        }
        _ => {
            problems.push(Problem::new(
                Kind::BadDigestDirectory,
                Severity::Warning,
                key,
                format!("{alg}:{hex} is not a digest the registry writes (sha384 or sha512, lowercase hex); ignored"),
            ));
            None
        }
    }
}

/// Reads the alias links that the listing did not read, then checks each:
/// it must name a sha256 digest. An alias that cannot be resolved is an
/// error: a manifest may reference the blob by it, so which blob that is
/// stays unknown.
pub(super) fn resolve_aliases(
    storage: &dyn Storage,
    max_link_size: u64,
    raw: &mut [RawRepo],
    problems: &mut Vec<Problem>,
) -> Vec<Vec<(Digest, [u8; 32])>> {
    let unread: Vec<(usize, usize)> = raw
        .iter()
        .enumerate()
        .flat_map(|(r, repo)| {
            repo.aliases
                .iter()
                .enumerate()
                .filter(|(_, a)| a.2.is_none())
                .map(move |(i, _)| (r, i))
        })
        .collect();
    let keys: Vec<String> = unread
        .iter()
        .map(|&(r, i)| raw[r].aliases[i].0.clone())
        .collect();
    for (&(r, i), res) in unread.iter().zip(storage.read_many(&keys, max_link_size)) {
        raw[r].aliases[i].2 = Some(res);
    }
    raw.iter_mut()
        .map(|repo| {
            let mut out = Vec::new();
            for (key, alias, content) in repo.aliases.drain(..) {
                let why = match content.expect("every alias link was read") {
                    Ok(bytes) => match parse_link(&bytes) {
                        Ok(Digest::Sha256(h)) => {
                            out.push((alias, h));
                            continue;
                        }
                        Ok(other) => format!("link holds {other}, not a sha256 digest"),
                        Err(e) => e.to_string(),
                    },
                    Err(e) => format!("link cannot be read: {e}"),
                };
                problems.push(Problem::new(
                    Kind::BadLink,
                    Severity::Error,
                    &key,
                    format!(
                        "alias link of {alias}: {why}; the blob that manifests reference as {alias} cannot be identified, so none can be proven garbage"
                    ),
                ));
            }
            out
        })
        .collect()
}
