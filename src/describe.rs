//! What a manifest says about itself beyond what it references: its media
//! type, artifact type, config media type and the platforms of an index's
//! entries; and what an image config says (platform, creation time). The
//! `images` listing shows these; the mark never needs them.

use serde::Deserialize;
use std::borrow::Cow;

/// Config media types of container images (anything else makes an image
/// manifest an artifact: Helm charts, WASM modules, signatures…).
pub const IMAGE_CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A manifest's self-description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// `mediaType`, when present.
    pub media_type: Option<Cow<'static, str>>,
    /// `artifactType`, when present.
    pub artifact_type: Option<Cow<'static, str>>,
    /// The config descriptor's `mediaType` (image manifests).
    pub config_media_type: Option<Cow<'static, str>>,
    /// Index entries' platforms (`os/architecture[/variant]`), in order,
    /// for the entries that have one.
    pub platforms: Vec<Cow<'static, str>>,
}

/// Media types and platforms that recur in every registry, kept once.
const KNOWN: &[&str] = &[
    crate::manifest::OCI_MANIFEST,
    crate::manifest::OCI_INDEX,
    crate::manifest::DOCKER_MANIFEST_V2,
    crate::manifest::DOCKER_MANIFEST_LIST,
    crate::manifest::DOCKER_MANIFEST_V1,
    crate::manifest::DOCKER_MANIFEST_V1_SIGNED,
    crate::manifest::OCI_ARTIFACT,
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.empty.v1+json",
    "linux/amd64",
    "linux/arm64",
    "linux/arm64/v8",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
    "windows/amd64",
    "unknown/unknown",
];

/// A string of the input, shared when it is a well-known one.
pub fn shared(s: &str) -> Cow<'static, str> {
    match KNOWN.iter().find(|k| **k == s) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(s.to_string()),
    }
}

impl Description {
    /// An image manifest whose config is not a container image config, or
    /// any manifest with an `artifactType`.
    pub fn is_artifact(&self) -> bool {
        self.artifact_type.is_some()
            || self
                .config_media_type
                .as_deref()
                .is_some_and(|m| !IMAGE_CONFIGS.contains(&m))
    }
}

#[derive(Deserialize)]
struct RawPlatform<'a> {
    #[serde(borrow, default)]
    os: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    architecture: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    variant: Option<Cow<'a, str>>,
}

impl RawPlatform<'_> {
    fn text(&self) -> Option<Cow<'static, str>> {
        let os = self.os.as_deref().filter(|s| !s.is_empty())?;
        let arch = self.architecture.as_deref().filter(|s| !s.is_empty())?;
        Some(shared(
            &match self.variant.as_deref().filter(|s| !s.is_empty()) {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            },
        ))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry<'a> {
    #[serde(borrow, default)]
    platform: Option<RawPlatform<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfigDescriptor<'a> {
    #[serde(borrow, default)]
    media_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescription<'a> {
    #[serde(borrow, default)]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    artifact_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    config: Option<RawConfigDescriptor<'a>>,
    #[serde(borrow, default)]
    manifests: Option<Vec<RawEntry<'a>>>,
}

/// Describes a manifest's bytes; `None` when they are not a JSON object of
/// that shape (the graph reports such manifests as problems already).
pub fn describe(bytes: &[u8]) -> Option<Description> {
    let raw: RawDescription<'_> = serde_json::from_slice(bytes).ok()?;
    Some(description(
        raw.media_type.as_deref(),
        raw.artifact_type.as_deref(),
        raw.config.as_ref().and_then(|c| c.media_type.as_deref()),
        raw.manifests.iter().flatten().map(|e| e.platform.as_ref()),
    ))
}

/// A description from the fields read: the manifest's media type and
/// artifact type, its config's media type, its entries' platforms.
fn description<'p, 'a: 'p>(
    media_type: Option<&str>,
    artifact_type: Option<&str>,
    config_media_type: Option<&str>,
    platforms: impl Iterator<Item = Option<&'p RawPlatform<'a>>>,
) -> Description {
    Description {
        media_type: media_type.map(shared),
        artifact_type: artifact_type.map(shared),
        config_media_type: config_media_type.map(shared),
        platforms: platforms
            .filter_map(|p| p.and_then(RawPlatform::text))
            .collect(),
    }
}

/// A descriptor with what [`describe`] reads of it besides what parsing
/// needs: an index entry's `platform`, the config's `mediaType`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribedDescriptor<'a> {
    #[serde(borrow, default)]
    digest: Option<Cow<'a, str>>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    urls: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(borrow, default)]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    platform: Option<RawPlatform<'a>>,
}

impl crate::manifest::Descriptor for DescribedDescriptor<'_> {
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

/// [`crate::manifest::parse`] and, when it succeeds, [`describe`], in one
/// pass over the bytes. Manifests whose extra fields are not of the shape
/// `describe` reads (rare) take both passes, so the results are always
/// those of the two functions.
pub fn parse_and_describe(
    bytes: &[u8],
) -> (
    Result<crate::manifest::Manifest, crate::manifest::ParseError>,
    Option<Description>,
) {
    use crate::manifest::{check_object, from_raw, RawManifest};
    let one_pass = check_object(bytes).ok().and_then(|()| {
        serde_json::from_slice::<RawManifest<'_, DescribedDescriptor<'_>, Cow<'_, str>>>(bytes).ok()
    });
    let Some(raw) = one_pass else {
        let parsed = crate::manifest::parse(bytes);
        let description = parsed.as_ref().ok().and_then(|_| describe(bytes));
        return (parsed, description);
    };
    let parsed = from_raw(&raw);
    let description = parsed.as_ref().ok().map(|_| {
        description(
            raw.media_type.as_deref(),
            raw.artifact_type.as_deref(),
            raw.config.as_ref().and_then(|c| c.media_type.as_deref()),
            raw.manifests.iter().flatten().map(|e| e.platform.as_ref()),
        )
    });
    (parsed, description)
}

/// What an image config says about the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `os/architecture[/variant]`.
    pub platform: Option<Cow<'static, str>>,
    /// The `created` field (RFC 3339), as written.
    pub created: Option<Box<str>>,
}

#[derive(Deserialize)]
struct RawConfig<'a> {
    #[serde(borrow, default)]
    os: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    architecture: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    variant: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    created: Option<Cow<'a, str>>,
}

/// Reads an image config blob; `None` when it is not a JSON object.
pub fn image_config(bytes: &[u8]) -> Option<ImageConfig> {
    let raw: RawConfig<'_> = serde_json::from_slice(bytes).ok()?;
    let p = RawPlatform {
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant,
    };
    Some(ImageConfig {
        platform: p.text(),
        created: raw.created.map(|c| c.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_platforms_and_artifacts() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
          "manifests":[{"digest":"sha256:aa","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
                       {"digest":"sha256:bb","platform":{"os":"linux","architecture":"amd64"}},
                       {"digest":"sha256:cc"}]}"#;
        let d = describe(idx).unwrap();
        assert_eq!(d.platforms, vec!["linux/arm64/v8", "linux/amd64"]);
        assert!(
            matches!(d.platforms[1], Cow::Borrowed(_)),
            "shared, not copied"
        );
        assert!(!d.is_artifact());
        let helm = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","size":5,"digest":"sha256:dd"},"layers":[]}"#;
        let d = describe(helm).unwrap();
        assert!(d.is_artifact());
        let img = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":5,"digest":"sha256:dd"},"layers":[]}"#;
        assert!(!describe(img).unwrap().is_artifact());
        assert!(describe(b"[1,2]").is_none());
    }

    /// The one-pass parse gives what parsing then describing gives, on
    /// every blob of the fixture and on manifests whose extra fields are
    /// of odd shapes (the fallback's cases).
    #[test]
    fn one_pass_equals_parse_then_describe() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry");
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    dirs.push(e.path());
                } else if t.is_file() && e.file_name() == "data" {
                    inputs.push(std::fs::read(e.path()).unwrap());
                }
            }
        }
        assert!(inputs.len() > 10, "the fixture has blobs");
        let d = format!("sha256:{}", "a".repeat(64));
        for odd in [
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"digest":"{d}","platform":"linux"}}]}}"#
            ),
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"digest":"{d}","platform":{{"os":1}}}}]}}"#
            ),
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":7,"config":{{"digest":"{d}"}},"layers":[]}}"#
            ),
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x.sbom","config":{{"digest":"{d}","mediaType":["x"]}},"layers":[{{"digest":"{d}","mediaType":5}}]}}"#
            ),
            format!(
                r#"{{"config":{{"digest":"{d}"}},"layers":[{{"digest":"{d}","urls":["https://x"]}}],"subject":{{"digest":"{d}"}}}}"#
            ),
            format!(
                r#"{{"manifests":[{{"digest":"{d}","platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}}]}}"#
            ),
            r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:zz"}]}"#.to_string(),
            r#"{"mediaType":"text/plain"}"#.to_string(),
            "[1,2]".to_string(),
            "not json".to_string(),
            String::new(),
        ] {
            inputs.push(odd.into_bytes());
        }
        for b in &inputs {
            let parsed = crate::manifest::parse(b);
            let described = parsed.as_ref().ok().and_then(|_| describe(b));
            assert_eq!(
                parse_and_describe(b),
                (parsed, described),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn config_platform() {
        let c = image_config(br#"{"architecture":"arm","os":"linux","variant":"v7","created":"2026-01-02T03:04:05Z","rootfs":{}}"#).unwrap();
        assert_eq!(c.platform.as_deref(), Some("linux/arm/v7"));
        assert_eq!(c.created.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert!(matches!(
            image_config(br#"{"architecture":"amd64","os":"linux"}"#)
                .unwrap()
                .platform,
            Some(Cow::Borrowed("linux/amd64"))
        ));
        assert_eq!(image_config(b"{}").unwrap().platform, None);
    }
}
