//! Problems found in the storage: typed, with a severity, the object they
//! concern, and a message for people.
//!
//! `Error` problems make reachability uncertain (an unreadable manifest, a
//! listing that failed, a symlink that may hide data): a sweep refuses to run
//! while any is present. `Warning`s are damage or oddities worth fixing that do
//! not change what is live; `Info` is for the record.

use serde::Serialize;

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record; changes nothing.
    Info,
    /// Damage or an oddity; what is live is still known.
    Warning,
    /// Reachability is uncertain: a sweep refuses to run.
    Error,
}

/// What kind of problem it is (stable names, used in JSON output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A `link` file that is empty, has a newline, or holds no valid digest,
    /// or whose digest disagrees with its path.
    BadLink,
    /// A manifest blob that is not valid JSON or not a manifest.
    UnparseableManifest,
    /// A manifest with a media type regsweep does not know.
    UnknownMediaType,
    /// A manifest blob larger than the manifest size limit.
    ManifestTooLarge,
    /// A revision link or tag whose manifest blob is missing.
    MissingManifestBlob,
    /// A tag whose current manifest has no revision link in its repository.
    DanglingTag,
    /// An index child that has no revision link in the index's repository.
    MissingIndexChild,
    /// An object or directory that could not be read or listed.
    Unreadable,
    /// A symlink inside the storage; never followed.
    Symlink,
    /// A digest directory whose name is not a valid sha256 hex digest.
    BadDigestDirectory,
    /// Blobs or links stored under an algorithm other than sha256.
    NonSha256Digest,
    /// A stray `*.tmp` file left by an interrupted write.
    StrayTempFile,
    /// A file or directory the layout does not have a place for.
    UnexpectedEntry,
    /// A directory with `_layers` or `_uploads` but no `_manifests`:
    /// invisible to the registry's catalog.
    NotARepository,
    /// A repository or tag name that the registry would refuse.
    InvalidName,
    /// An upload without `startedat`: its age is unknown.
    UploadWithoutStartedAt,
    /// A manifest references a digest of another algorithm than sha256
    /// (`sha512:…`) that no alias link resolves to a stored blob.
    UnresolvedDigest,
    /// A descriptor declares a size that disagrees with the stored blob's
    /// (totals count the stored size).
    DeclaredSizeMismatch,
    /// Blobs are stored but no repository was found: every blob would be
    /// garbage, which is far more likely a wrong root or a lost
    /// `repositories/` than an empty registry.
    NoRepositories,
    /// Manifests are stored but no repository has a single tag file: the
    /// tags live elsewhere (Harbor 2.15 and later keeps them only in its
    /// database), so every image would look untagged.
    NoTagFiles,
    /// A tag of a `--tags-from` file names a repository or a manifest that
    /// the storage does not hold.
    ExternalTagUnknown,
    /// An index nested deeper than `verify` follows (found by `verify`).
    IndexTooDeep,
    /// A config or layer blob that a manifest references is not stored
    /// (found by `verify`).
    MissingBlob,
    /// A blob that a manifest references has no `_layers` link in the
    /// manifest's repository: the registry answers "blob unknown" there.
    MissingLayerLink,
    /// A stored blob's size differs from the size its descriptor declares.
    SizeMismatch,
    /// A stored blob's content does not hash to its digest.
    DigestMismatch,
    /// A referrer (a manifest with a `subject`) whose subject is gone.
    DanglingReferrer,
    /// `verify --against`: a tag in the inventory that the storage lacks.
    InventoryTagMissing,
    /// `verify --against`: a tag that now points at another manifest.
    InventoryTagChanged,
    /// `verify --against`: a manifest (revision link) the storage lacks.
    InventoryManifestMissing,
    /// `verify --against`: a blob the storage lacks.
    InventoryBlobMissing,
    /// `verify --against`: a blob whose stored size changed.
    InventoryBlobSizeChanged,
    /// `verify --against`: a repository, tag, manifest or blob that the
    /// inventory does not list.
    InventoryExtra,
}

/// One problem found in the storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind of problem.
    pub kind: Kind,
    /// How serious.
    pub severity: Severity,
    /// The key (path relative to `docker/registry/v2/`) it concerns.
    pub path: String,
    /// What is wrong, for people.
    pub message: String,
}

impl Problem {
    /// Builds a problem.
    pub fn new(
        kind: Kind,
        severity: Severity,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            kind,
            severity,
            path: path.into(),
            message: message.into(),
        }
    }

    /// True when this problem makes a sweep unsafe.
    pub fn blocks_sweep(&self) -> bool {
        self.severity == Severity::Error
    }
}
