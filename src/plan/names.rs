//! The names and digests plan actions are made of, interned once per
//! process: an [`Action`](super::Action) holds three 4-byte ids instead of
//! three strings (a plan of a large registry holds hundreds of thousands of
//! actions), and the actions of two plans compare by value.
//!
//! Repository names, tag names and upload ids are [`Name`]s; digests are
//! [`DigestId`]s in one [`Interner`]. Interned text is never freed: a run
//! interns what its plans name, and the process ends with the run.

use crate::digest::{Digest, Interner};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{LazyLock, RwLock, RwLockReadGuard};

/// An interned repository name, tag name or upload id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name(NonZeroU32);

/// An interned digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DigestId(NonZeroU32);

#[derive(Default)]
struct Names {
    list: Vec<&'static str>,
    ids: HashMap<&'static str, Name>,
}

static NAMES: LazyLock<RwLock<Names>> = LazyLock::new(Default::default);
static DIGESTS: LazyLock<RwLock<Interner>> = LazyLock::new(Default::default);

fn nonzero(i: u32) -> NonZeroU32 {
    NonZeroU32::new(i + 1).expect("fewer than 2^32 - 1 interned names")
}

impl Name {
    /// Interns `s`.
    pub fn of(s: &str) -> Name {
        if let Some(&n) = NAMES.read().expect("names lock").ids.get(s) {
            return n;
        }
        let mut t = NAMES.write().expect("names lock");
        if let Some(&n) = t.ids.get(s) {
            return n;
        }
        let s: &'static str = Box::leak(s.to_string().into_boxed_str());
        let n = Name(nonzero(t.list.len() as u32));
        t.list.push(s);
        t.ids.insert(s, n);
        n
    }

    /// Its position among all interned names (dense, from 0).
    pub fn index(self) -> usize {
        self.0.get() as usize - 1
    }

    /// The text.
    pub fn as_str(self) -> &'static str {
        NAMES.read().expect("names lock").list[self.0.get() as usize - 1]
    }
}

impl DigestId {
    /// Interns `d`.
    pub fn of(d: &Digest) -> DigestId {
        if let Some(i) = DIGESTS.read().expect("digests lock").get(d) {
            return DigestId(nonzero(i));
        }
        DigestId(nonzero(DIGESTS.write().expect("digests lock").intern(d)))
    }

    /// Interns the sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8; 32]) -> DigestId {
        if let Some(i) = DIGESTS.read().expect("digests lock").get_sha256(bytes) {
            return DigestId(nonzero(i));
        }
        DigestId(nonzero(
            DIGESTS.write().expect("digests lock").intern_sha256(bytes),
        ))
    }

    /// The digest.
    pub fn digest(self) -> Digest {
        DIGESTS.read().expect("digests lock").digest(self.index())
    }

    fn index(self) -> u32 {
        self.0.get() - 1
    }
}

/// A read view of both tables, for work over many actions at once (a sort
/// compares names and digests millions of times).
pub struct Tables<'a> {
    names: RwLockReadGuard<'a, Names>,
    digests: RwLockReadGuard<'a, Interner>,
}

impl Tables<'_> {
    /// Locks both tables for reading (no interning while it lives).
    pub fn read() -> Tables<'static> {
        Tables {
            names: NAMES.read().expect("names lock"),
            digests: DIGESTS.read().expect("digests lock"),
        }
    }

    /// The text of `n`.
    pub fn name(&self, n: Name) -> &'static str {
        self.names.list[n.0.get() as usize - 1]
    }

    /// How many names are interned.
    pub fn names(&self) -> usize {
        self.names.list.len()
    }

    /// The sha256 bytes of `d`, when it is a sha256 digest.
    pub fn sha256(&self, d: DigestId) -> Option<&[u8; 32]> {
        self.digests.sha256(d.index())
    }

    /// The digest `d`.
    pub fn digest(&self, d: DigestId) -> Digest {
        self.digests.digest(d.index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_digests_intern_once_and_read_back() {
        let a = Name::of("team/app");
        assert_eq!(Name::of("team/app"), a);
        assert_ne!(Name::of("team/app2"), a);
        assert_eq!(a.as_str(), "team/app");
        let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let id = DigestId::of(&d);
        assert_eq!(DigestId::sha256(&[0xab; 32]), id);
        assert_eq!(id.digest(), d);
        let other = Digest::parse(&format!("sha512:{}", "cd".repeat(64))).unwrap();
        let o = DigestId::of(&other);
        assert_ne!(o, id);
        let t = Tables::read();
        assert_eq!(t.digest(o), other);
        assert_eq!(t.sha256(o), None);
        assert_eq!(t.sha256(id), Some(&[0xab; 32]));
    }
}
