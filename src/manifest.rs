//! Manifest parsing: every media type the registry stores, reduced to the
//! digests a manifest references.
//!
//! A manifest references blobs (config, layers, schema 1 `fsLayers`, artifact
//! `blobs`) and child manifests (index entries); it may name a `subject` (it
//! is then a referrer of that manifest). Anything that cannot be understood is
//! an error, and [`conservative_refs`] recovers every digest-looking string
//! from it so that a caller can keep all of them alive.

use crate::digest::Digest;
use serde::Deserialize;
use std::borrow::Cow;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-arch).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 manifest.
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 signed manifest.
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-arch).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI artifact manifest (withdrawn draft, still found in the wild).
pub const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// The shape of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// OCI or Docker schema 2 image manifest.
    Image,
    /// OCI index or Docker manifest list.
    Index,
    /// Docker schema 1.
    Schema1,
    /// OCI artifact manifest.
    Artifact,
}

/// One reference from a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// The referenced digest.
    pub digest: Digest,
    /// The size the descriptor declares, when it has one.
    pub size: Option<i64>,
    /// The descriptor lists `urls`: a foreign layer that may live elsewhere.
    pub foreign: bool,
}

/// What a manifest references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its shape.
    pub kind: Kind,
    /// Its `mediaType` field, when present.
    pub media_type: Option<String>,
    /// Config and layer blobs (image), `fsLayers` (schema 1), `blobs` (artifact).
    pub blobs: Vec<Ref>,
    /// Child manifests (index).
    pub children: Vec<Ref>,
    /// The manifest this one refers to (signature, SBOM, attestation…).
    pub subject: Option<Ref>,
}

/// Why a manifest could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or JSON of the wrong shape for its media type.
    #[error("not a valid manifest: {0}")]
    Invalid(String),
    /// A media type regsweep does not know.
    #[error("unknown manifest media type {0:?}")]
    UnknownMediaType(String),
    /// No media type and a shape that matches none.
    #[error("no mediaType and no recognisable shape (config/layers, manifests, fsLayers, blobs)")]
    UnknownShape,
    /// A descriptor whose digest does not parse.
    #[error("bad digest {digest:?} in {field}: {reason}")]
    BadDigest {
        /// Which field held it.
        field: &'static str,
        /// The digest as written.
        digest: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Strings are `Cow`s: borrowed from the input unless they hold JSON escapes
/// (`"sha256\u003a…"` is a valid way to write a digest, and the registry,
/// which parses with Go's `encoding/json`, accepts it).
#[derive(Deserialize)]
struct RawDescriptor<'a> {
    #[serde(borrow, default)]
    digest: Option<Cow<'a, str>>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    urls: Option<Vec<serde::de::IgnoredAny>>,
}

/// What parsing needs of a descriptor; [`crate::describe`] reads a richer
/// one in the same pass.
pub(crate) trait Descriptor {
    /// `digest`, as written.
    fn digest(&self) -> Option<&str>;
    /// `size`.
    fn size(&self) -> Option<i64>;
    /// Whether it lists `urls` (a foreign layer).
    fn foreign(&self) -> bool;
}

impl Descriptor for RawDescriptor<'_> {
    fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
    fn size(&self) -> Option<i64> {
        self.size
    }
    fn foreign(&self) -> bool {
        self.urls.as_ref().is_some_and(|u| !u.is_empty())
    }
}

#[derive(Deserialize)]
struct RawFsLayer<'a> {
    #[serde(rename = "blobSum", borrow)]
    blob_sum: Cow<'a, str>,
}

/// A manifest's fields, with descriptors of type `D`; `A` reads
/// `artifactType` (ignored by plain parsing, which accepts any value there).
#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "D: Deserialize<'de>, A: Deserialize<'de>")
)]
pub(crate) struct RawManifest<'a, D, A> {
    #[serde(borrow, default)]
    pub(crate) media_type: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) artifact_type: Option<A>,
    #[serde(default)]
    pub(crate) config: Option<D>,
    #[serde(default)]
    pub(crate) layers: Option<Vec<D>>,
    #[serde(default)]
    pub(crate) manifests: Option<Vec<D>>,
    #[serde(borrow, default)]
    fs_layers: Option<Vec<RawFsLayer<'a>>>,
    #[serde(default)]
    pub(crate) blobs: Option<Vec<D>>,
    #[serde(default)]
    pub(crate) subject: Option<D>,
}

fn to_ref(field: &'static str, d: &impl Descriptor) -> Result<Ref, ParseError> {
    let raw = d.digest().ok_or_else(|| ParseError::BadDigest {
        field,
        digest: String::new(),
        reason: "descriptor has no digest".into(),
    })?;
    let digest = Digest::parse(raw).map_err(|e| ParseError::BadDigest {
        field,
        digest: raw.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Ref {
        digest,
        size: d.size(),
        foreign: d.foreign(),
    })
}

fn refs<D: Descriptor>(field: &'static str, ds: &[D]) -> Result<Vec<Ref>, ParseError> {
    ds.iter().map(|d| to_ref(field, d)).collect()
}

/// Refuses what is not a JSON object before serde sees it: serde would read
/// a JSON array into a struct field by field (`["application/vnd.oci…",
/// {…}]` would pass for a manifest), which the registry never accepts.
pub(crate) fn check_object(bytes: &[u8]) -> Result<(), ParseError> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(ParseError::Invalid(
            "starts with a UTF-8 byte-order mark (not JSON)".into(),
        ));
    }
    match bytes.iter().find(|b| !b" \t\r\n".contains(b)) {
        Some(b'{') => Ok(()),
        Some(_) => Err(ParseError::Invalid("not a JSON object".into())),
        None => Err(ParseError::Invalid("empty".into())),
    }
}

/// What an image manifest's `config` (when there is one) and `layers` name.
fn image_refs<D: Descriptor, A>(raw: &RawManifest<'_, D, A>) -> Result<Vec<Ref>, ParseError> {
    let mut v = Vec::new();
    if let Some(c) = &raw.config {
        v.push(to_ref("config", c)?);
    }
    v.extend(refs("layers", raw.layers.as_deref().unwrap_or_default())?);
    Ok(v)
}

/// Parses a manifest's bytes.
pub fn parse(bytes: &[u8]) -> Result<Manifest, ParseError> {
    check_object(bytes)?;
    let raw: RawManifest<'_, RawDescriptor<'_>, serde::de::IgnoredAny> =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Invalid(e.to_string()))?;
    from_raw(&raw)
}

/// What a manifest's deserialized fields reference (see [`parse`]).
pub(crate) fn from_raw<D: Descriptor, A>(
    raw: &RawManifest<'_, D, A>,
) -> Result<Manifest, ParseError> {
    let media_type = raw.media_type.as_deref().map(str::to_string);
    let kind = match media_type.as_deref() {
        Some(DOCKER_MANIFEST_V2) | Some(OCI_MANIFEST) => Kind::Image,
        Some(DOCKER_MANIFEST_LIST) | Some(OCI_INDEX) => Kind::Index,
        Some(DOCKER_MANIFEST_V1) | Some(DOCKER_MANIFEST_V1_SIGNED) => Kind::Schema1,
        Some(OCI_ARTIFACT) => Kind::Artifact,
        Some(other) => return Err(ParseError::UnknownMediaType(other.to_string())),
        None => {
            if raw.manifests.is_some() {
                Kind::Index
            } else if raw.config.is_some() || raw.layers.is_some() {
                Kind::Image
            } else if raw.fs_layers.is_some() {
                Kind::Schema1
            } else if raw.blobs.is_some() {
                Kind::Artifact
            } else {
                return Err(ParseError::UnknownShape);
            }
        }
    };
    let mut m = Manifest {
        kind,
        media_type,
        blobs: Vec::new(),
        children: Vec::new(),
        subject: raw
            .subject
            .as_ref()
            .map(|s| to_ref("subject", s))
            .transpose()?,
    };
    match kind {
        Kind::Image => {
            if raw.config.is_none() {
                return Err(ParseError::Invalid("image manifest without config".into()));
            }
            m.blobs = image_refs(raw)?;
        }
        Kind::Index => {
            let ms = raw
                .manifests
                .as_deref()
                .ok_or_else(|| ParseError::Invalid("index without manifests".into()))?;
            m.children = refs("manifests", ms)?;
            // Without a mediaType the registry serves this as an index (it
            // has `manifests`), but a client may read it as an image: what
            // its `config` and `layers` name stays live too (fail closed).
            if m.media_type.is_none() {
                m.blobs = image_refs(raw)?;
            }
        }
        Kind::Schema1 => {
            let ls = raw
                .fs_layers
                .as_deref()
                .ok_or_else(|| ParseError::Invalid("schema 1 manifest without fsLayers".into()))?;
            for l in ls {
                let digest = Digest::parse(&l.blob_sum).map_err(|e| ParseError::BadDigest {
                    field: "fsLayers",
                    digest: l.blob_sum.to_string(),
                    reason: e.to_string(),
                })?;
                m.blobs.push(Ref {
                    digest,
                    size: None,
                    foreign: false,
                });
            }
        }
        Kind::Artifact => {
            m.blobs = refs("blobs", raw.blobs.as_deref().unwrap_or_default())?;
        }
    }
    Ok(m)
}

/// Every `sha256:<64 hex>` string found anywhere in `bytes`, in order of first
/// appearance. Used for manifests that cannot be parsed: anything they might
/// reference is kept alive. When `bytes` are valid JSON (of the wrong shape),
/// the decoded strings are searched too, so that a digest written with JSON
/// escapes (`sha256\u003a…`) is found.
pub fn conservative_refs(bytes: &[u8]) -> Vec<Digest> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    find_sha256(bytes, &mut out, &mut seen);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let mut stack = vec![&v];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::String(s) => find_sha256(s.as_bytes(), &mut out, &mut seen),
                serde_json::Value::Array(a) => stack.extend(a),
                serde_json::Value::Object(o) => {
                    for (k, v) in o {
                        find_sha256(k.as_bytes(), &mut out, &mut seen);
                        stack.push(v);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Appends every `sha256:<64 hex>` in `bytes` not in `seen` to `out`.
fn find_sha256(bytes: &[u8], out: &mut Vec<Digest>, seen: &mut std::collections::HashSet<Digest>) {
    const PAT: &[u8] = b"sha256:";
    let mut i = 0;
    while i + PAT.len() + 64 <= bytes.len() {
        if &bytes[i..i + PAT.len()] == PAT {
            let hex = &bytes[i + PAT.len()..i + PAT.len() + 64];
            if let Some(d) = std::str::from_utf8(hex)
                .ok()
                .and_then(Digest::from_sha256_hex)
            {
                if seen.insert(d.clone()) {
                    out.push(d);
                }
                i += PAT.len() + 64;
                continue;
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest_references_config_and_layers() {
        let j = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}},
            "layers":[{{"digest":"{}","size":2}},{{"digest":"{}","size":3,"urls":["http://x"]}}],
            "subject":{{"digest":"{}","size":4}}}}"#,
            d('a'),
            d('b'),
            d('c'),
            d('e')
        );
        let m = parse(j.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::Image);
        assert_eq!(m.blobs.len(), 3);
        assert!(!m.blobs[1].foreign && m.blobs[2].foreign);
        assert_eq!(m.subject.unwrap().digest.to_string(), d('e'));
    }

    #[test]
    fn index_and_shapes_without_media_type() {
        let j = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}"}}]}}"#,
            d('a')
        );
        let m = parse(j.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::Index);
        assert_eq!(m.children.len(), 1);
        assert!(m.blobs.is_empty());
        // Both shapes at once, no mediaType: an index to the registry, and
        // what the image half names is kept too.
        let j = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}"}}],
            "config":{{"digest":"{}"}},"layers":[{{"digest":"{}"}}]}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let m = parse(j.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::Index);
        assert_eq!(m.children[0].digest.to_string(), d('a'));
        let kept: Vec<String> = m.blobs.iter().map(|r| r.digest.to_string()).collect();
        assert_eq!(kept, [d('b'), d('c')]);
        // With a mediaType the index's stray fields are not references.
        let j = format!(
            r#"{{"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"{}"}}],
            "layers":[{{"digest":"{}"}}]}}"#,
            d('a'),
            d('c')
        );
        assert!(parse(j.as_bytes()).unwrap().blobs.is_empty());
        let j = format!(
            r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{}"}}]}}"#,
            d('f')
        );
        assert_eq!(parse(j.as_bytes()).unwrap().kind, Kind::Schema1);
        let j = format!(
            r#"{{"mediaType":"{OCI_ARTIFACT}","blobs":[{{"digest":"{}"}}]}}"#,
            d('1')
        );
        assert_eq!(parse(j.as_bytes()).unwrap().blobs.len(), 1);
    }

    #[test]
    fn refuses_what_it_cannot_understand() {
        assert!(matches!(parse(b"{not json"), Err(ParseError::Invalid(_))));
        assert!(matches!(parse(b"{}"), Err(ParseError::UnknownShape)));
        assert!(matches!(
            parse(br#"{"mediaType":"application/x-foo","config":{}}"#),
            Err(ParseError::UnknownMediaType(_))
        ));
        let j = r#"{"config":{"digest":"sha256:XYZ"},"layers":[]}"#;
        assert!(matches!(
            parse(j.as_bytes()),
            Err(ParseError::BadDigest { .. })
        ));
    }

    /// JSON escapes in a digest are valid JSON; the registry accepts them.
    #[test]
    fn escaped_digest_strings_parse() {
        let j = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"digest":"sha256\u003a{}"}},
            "layers":[{{"digest":"sha256:{}\u0061"}}]}}"#,
            "a".repeat(64),
            "b".repeat(63)
        );
        let m = parse(j.as_bytes()).unwrap();
        assert_eq!(m.blobs[0].digest.to_string(), d('a'));
        assert_eq!(
            m.blobs[1].digest.to_string(),
            format!("sha256:{}a", "b".repeat(63))
        );
        let j = format!(
            r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"sha256\u003a{}"}}]}}"#,
            "f".repeat(64)
        );
        assert_eq!(
            parse(j.as_bytes()).unwrap().blobs[0].digest.to_string(),
            d('f')
        );
    }

    /// A JSON array is not a manifest, even one whose elements line up
    /// with a manifest's fields.
    #[test]
    fn json_array_is_not_a_manifest() {
        let j = format!(
            r#"["{OCI_MANIFEST}", {{"digest":"{}"}}, [{{"digest":"{}"}}]]"#,
            d('a'),
            d('b')
        );
        let e = parse(j.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
        let bom = [&b"\xEF\xBB\xBF"[..], br#"{"manifests":[]}"#].concat();
        assert!(parse(&bom)
            .unwrap_err()
            .to_string()
            .contains("byte-order mark"));
    }

    #[test]
    fn conservative_refs_finds_digests_in_garbage() {
        let text = format!("garbage{}\"x{}{}", d('a'), d('b'), d('a'));
        let got = conservative_refs(text.as_bytes());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].to_string(), d('a'));
        // Valid JSON of the wrong shape: escaped digests are decoded first.
        let text = format!(r#"{{"layers":"sha256\u003a{}"}}"#, "c".repeat(64));
        assert_eq!(
            conservative_refs(text.as_bytes()),
            vec![Digest::parse(&d('c')).unwrap()]
        );
    }
}
