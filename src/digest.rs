//! Content digests (`algorithm:hex`) and their interning into dense `u32` ids.
//!
//! The registry names every blob by a digest. The mark phase works on dense
//! ids so that sets of digests are roaring bitmaps; [`Interner`] hands those ids
//! out once per distinct digest.

use hashbrown::HashTable;
use std::collections::HashMap;
use std::fmt;

/// Length of a serialized sha256 digest: `sha256:` plus 64 hex characters.
pub const SHA256_DIGEST_LEN: usize = 7 + 64;

/// A parsed content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Digest {
    /// The only algorithm the registry stores blobs under.
    Sha256([u8; 32]),
    /// Any other well-formed digest (`sha512:…`, `sha384:…`), kept verbatim.
    Other(Box<str>),
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` separating algorithm and hex.
    #[error("not a digest (expected algorithm:hex): {0:?}")]
    Malformed(String),
    /// `sha256:` with a hex part that is not exactly 64 lowercase hex digits.
    #[error("bad sha256 hex (need 64 lowercase hex digits): {0:?}")]
    BadHex(String),
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const UNHEX: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Parses 64 lowercase hex digits into 32 bytes (a table lookup per digit,
/// one check at the end: this runs for every digest name in the storage).
pub fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    parse_sha256_hex_bytes(hex.as_bytes())
}

/// [`parse_sha256_hex`] of raw bytes (a file name as the kernel lists it).
pub fn parse_sha256_hex_bytes(hex: &[u8]) -> Option<[u8; 32]> {
    let b: &[u8; 64] = hex.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (hi, lo) = (UNHEX[pair[0] as usize], UNHEX[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(out)
}

impl Digest {
    /// Parses `algorithm:hex`. `sha256` must have 64 lowercase hex digits;
    /// other algorithms need `[a-z0-9+._-]+:[a-zA-Z0-9=_-]+` (OCI grammar).
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_string()))?;
        if alg == "sha256" {
            return parse_sha256_hex(hex)
                .map(Digest::Sha256)
                .ok_or_else(|| DigestError::BadHex(s.to_string()));
        }
        let alg_ok = !alg.is_empty()
            && alg
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+._-".contains(&c));
        let hex_ok = !hex.is_empty()
            && hex
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"=_-".contains(&c));
        if alg_ok && hex_ok {
            Ok(Digest::Other(s.into()))
        } else {
            Err(DigestError::Malformed(s.to_string()))
        }
    }

    /// Builds a sha256 digest from the hex found in a path component.
    pub fn from_sha256_hex(hex: &str) -> Option<Digest> {
        parse_sha256_hex(hex).map(Digest::Sha256)
    }

    /// The lowercase hex of a sha256 digest, `None` for other algorithms.
    pub fn sha256_hex(&self) -> Option<String> {
        match self {
            Digest::Sha256(b) => Some(hex(b)),
            Digest::Other(_) => None,
        }
    }
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let [hi, lo] = hex_pair(*b);
        s.push(hi as char);
        s.push(lo as char);
    }
    s
}

/// The two lowercase hex digits of one byte.
#[inline]
fn hex_pair(b: u8) -> [u8; 2] {
    const H: &[u8; 16] = b"0123456789abcdef";
    [H[(b >> 4) as usize], H[(b & 15) as usize]]
}

/// The key of a blob's data: `blobs/sha256/<hex[0:2]>/<hex>/data` (the
/// storage's layout, kept here so that digests need nothing from
/// [`storage`](crate::storage)).
pub fn blob_data_key(hex: &str) -> String {
    format!("blobs/sha256/{}/{}/data", &hex[..2], hex)
}

/// `sha256:<hex>` of 32 digest bytes, written into a buffer on the stack
/// (no allocation: reports write hundreds of thousands of digests).
pub struct Sha256Text([u8; 71]);

impl Sha256Text {
    /// The text of `bytes`.
    pub fn new(bytes: &[u8; 32]) -> Sha256Text {
        let mut t = [0u8; 71];
        t[..7].copy_from_slice(b"sha256:");
        for (i, b) in bytes.iter().enumerate() {
            t[7 + 2 * i..9 + 2 * i].copy_from_slice(&hex_pair(*b));
        }
        Sha256Text(t)
    }

    /// `sha256:<64 hex>`.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into the buffer.
        std::str::from_utf8(&self.0).expect("ASCII")
    }

    /// The 64 hex digits alone.
    pub fn hex(&self) -> &str {
        &self.as_str()[7..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Digest::Sha256(b) => f.write_str(Sha256Text::new(b).as_str()),
            Digest::Other(s) => f.write_str(s),
        }
    }
}

/// A sha256 digest held as its 32 bytes, written `sha256:<hex>`: what a
/// stored blob is named by, in 32 bytes where a [`Digest`] takes 40.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobDigest(pub [u8; 32]);

impl fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Sha256Text::new(&self.0).as_str())
    }
}

impl fmt::Debug for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for BlobDigest {
    /// As its text, `sha256:hex`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Sha256Text::new(&self.0).as_str())
    }
}

impl serde::Serialize for Digest {
    /// As its text, `algorithm:hex`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Digest::Sha256(b) => s.serialize_str(Sha256Text::new(b).as_str()),
            Digest::Other(t) => s.serialize_str(t),
        }
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Hands out one dense `u32` id per distinct digest.
///
/// sha256 digests (nearly all of them) are stored as their 32 bytes in one
/// vector indexed by id, with a hash table of ids over it (4 bytes a slot);
/// other algorithms are kept by their text on the side.
#[derive(Clone)]
pub struct Interner {
    /// Ids of sha256 digests, hashed by `Interner::hash` of their bytes.
    table: HashTable<u32>,
    /// The bytes of every id's sha256 digest (zero for other algorithms).
    sha256: Vec<[u8; 32]>,
    /// Ids of digests of other algorithms, by text.
    other: HashMap<Box<str>, u32>,
    /// The text of other algorithms' digests, by id.
    other_by_id: HashMap<u32, Box<str>>,
    /// Per-process key of the hash (digest names in storage are not trusted
    /// to be real hashes, so they must not choose their buckets).
    key: [u64; 4],
}

impl Default for Interner {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl fmt::Debug for Interner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Folded 64×64→128 multiply: the mixing step of foldhash and wyhash.
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty interner with room for `n` sha256 digests.
    pub fn with_capacity(n: usize) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let rs = std::collections::hash_map::RandomState::new();
        let mut key = [0u64; 4];
        for (i, k) in key.iter_mut().enumerate() {
            let mut h = rs.build_hasher();
            h.write_usize(i);
            *k = h.finish();
        }
        Interner {
            table: HashTable::with_capacity(n),
            sha256: Vec::with_capacity(n),
            other: HashMap::new(),
            other_by_id: HashMap::new(),
            key,
        }
    }

    /// Makes room for `n` more digests.
    pub fn reserve(&mut self, n: usize) {
        self.sha256.reserve(n);
        let key = self.key;
        let sha = &self.sha256;
        self.table
            .reserve(n, |&id| Self::hash_with(&key, &sha[id as usize]));
    }

    fn hash_with(key: &[u64; 4], b: &[u8; 32]) -> u64 {
        let w = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        fold_mul(w(0) ^ key[0], w(1) ^ key[1]) ^ fold_mul(w(2) ^ key[2], w(3) ^ key[3])
    }

    /// The id of the sha256 digest with these bytes, allocating one if new.
    pub fn intern_sha256(&mut self, b: &[u8; 32]) -> u32 {
        let hash = Self::hash_with(&self.key, b);
        let sha = &self.sha256;
        if let Some(&id) = self.table.find(hash, |&id| &sha[id as usize] == b) {
            return id;
        }
        let id = u32::try_from(self.sha256.len()).expect("fewer than 2^32 digests");
        self.sha256.push(*b);
        let key = self.key;
        let sha = &self.sha256;
        self.table
            .insert_unique(hash, id, |&i| Self::hash_with(&key, &sha[i as usize]));
        id
    }

    /// The bytes of every sha256 digest, indexed by id (zero for other
    /// algorithms' ids); the hash table over them is dropped.
    pub fn into_sha256(self) -> Vec<[u8; 32]> {
        self.sha256
    }

    /// The id of `d`, allocating one if it is new.
    pub fn intern(&mut self, d: &Digest) -> u32 {
        match d {
            Digest::Sha256(b) => self.intern_sha256(b),
            Digest::Other(s) => {
                if let Some(&id) = self.other.get(s) {
                    return id;
                }
                let id = u32::try_from(self.sha256.len()).expect("fewer than 2^32 digests");
                self.sha256.push([0; 32]);
                self.other.insert(s.clone(), id);
                self.other_by_id.insert(id, s.clone());
                id
            }
        }
    }

    /// The id of `d` if it was interned.
    pub fn get(&self, d: &Digest) -> Option<u32> {
        match d {
            Digest::Sha256(b) => self.get_sha256(b),
            Digest::Other(s) => self.other.get(s).copied(),
        }
    }

    /// The id of the sha256 digest with these bytes, if it was interned.
    pub fn get_sha256(&self, b: &[u8; 32]) -> Option<u32> {
        let hash = Self::hash_with(&self.key, b);
        self.table
            .find(hash, |&id| &self.sha256[id as usize] == b)
            .copied()
    }

    /// The bytes of a sha256 digest's id, `None` for other algorithms.
    pub fn sha256(&self, id: u32) -> Option<&[u8; 32]> {
        if !self.other_by_id.is_empty() && self.other_by_id.contains_key(&id) {
            return None;
        }
        Some(&self.sha256[id as usize])
    }

    /// The digest behind an id.
    pub fn digest(&self, id: u32) -> Digest {
        match self.sha256(id) {
            Some(b) => Digest::Sha256(*b),
            None => Digest::Other(self.other_by_id[&id].clone()),
        }
    }

    /// The storage key of a blob's data (`blobs/sha256/xx/<hex>/data`), or
    /// the digest itself for algorithms the registry does not store under.
    pub fn data_key(&self, id: u32) -> String {
        match self.sha256(id) {
            Some(b) => blob_data_key(Sha256Text::new(b).hex()),
            None => self.digest(id).to_string(),
        }
    }

    /// Number of distinct digests.
    pub fn len(&self) -> usize {
        self.sha256.len()
    }

    /// True when nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_text_on_the_stack_matches_its_parse() {
        let d = Digest::parse(&format!("sha256:{H}")).expect("valid");
        let Digest::Sha256(b) = d else {
            panic!("not sha256")
        };
        let t = Sha256Text::new(&b);
        assert_eq!(t.as_str(), format!("sha256:{H}"));
        assert_eq!(t.hex(), H);
        assert_eq!(d.to_string(), format!("sha256:{H}"));
        assert_eq!(
            serde_json::to_string(&d).expect("serializes"),
            format!("\"sha256:{H}\"")
        );
        let mut all = [0u8; 32];
        for (i, b) in all.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(53) ^ 0xa5;
        }
        assert_eq!(Sha256Text::new(&all).hex(), hex(&all));
    }

    #[test]
    fn sha256_hex_accepts_only_64_lowercase_hex_digits() {
        for i in 0..=255u8 {
            let mut b = [i.wrapping_mul(37); 32];
            b[31] = i;
            assert_eq!(parse_sha256_hex(&hex(&b)), Some(b));
        }
        assert!(parse_sha256_hex(&H[..63]).is_none());
        assert!(parse_sha256_hex(&format!("{H}0")).is_none());
        for (pos, bad) in [
            (0, 'E'),
            (63, 'g'),
            (10, ':'),
            (33, ' '),
            (40, '/'),
            (5, '\u{7f}'),
        ] {
            let mut s = H.to_string();
            s.replace_range(pos..pos + 1, &bad.to_string());
            assert!(parse_sha256_hex(&s).is_none(), "{s}");
        }
        // A multi-byte character of the right byte length is not hex either.
        assert!(parse_sha256_hex(&format!("é{}", &H[2..])).is_none());
    }

    #[test]
    fn parses_and_prints_sha256() {
        let d = Digest::parse(&format!("sha256:{H}")).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{H}"));
        assert_eq!(d.sha256_hex().as_deref(), Some(H));
    }

    #[test]
    fn refuses_bad_sha256() {
        assert!(Digest::parse(&format!("sha256:{}", H.to_uppercase())).is_err());
        assert!(Digest::parse(&format!("sha256:{H}\n")).is_err());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("").is_err());
        assert!(Digest::parse(H).is_err());
    }

    #[test]
    fn keeps_other_algorithms_verbatim() {
        let d = Digest::parse("sha512:abcdef").unwrap();
        assert_eq!(d, Digest::Other("sha512:abcdef".into()));
        assert!(d.sha256_hex().is_none());
        assert!(Digest::parse("sha512:").is_err());
    }

    #[test]
    fn interner_is_dense_and_stable() {
        let mut i = Interner::new();
        let a = Digest::parse(&format!("sha256:{H}")).unwrap();
        let b = Digest::parse("sha512:ff").unwrap();
        assert_eq!(i.intern(&a), 0);
        assert_eq!(i.intern(&b), 1);
        assert_eq!(i.intern(&a), 0);
        assert_eq!(i.digest(1), b);
        assert_eq!(i.digest(0), a);
        assert_eq!(i.get(&a), Some(0));
        assert_eq!(i.sha256(1), None);
        assert_eq!(i.len(), 2);
    }
}
