//! The library's error: one enum whose every variant names the file,
//! object, row or argument it concerns, so that its message alone tells the
//! user what to look at.
//!
//! Errors of one domain keep their own types ([`StorageError`],
//! [`crate::digest::DigestError`], [`crate::manifest::ParseError`],
//! [`crate::access_log::LogError`], [`crate::policy::PolicyError`]);
//! [`Error`] is what the library's fallible entry points return, and a
//! [`StorageError`] converts into it with `?`.
//!
//! Like [`StorageError`], a variant that holds an underlying error prints
//! it in its own message and does not also return it as its
//! [`source`](std::error::Error::source): a chain printed with `{:#}` would
//! repeat it. [`Error::io_error`] reaches the operating system's error of
//! the variants that hold one.

use crate::storage::StorageError;
use std::fmt::Display;
use std::path::{Path, PathBuf};

/// For a directory given one or more levels inside a registry root (its
/// `docker/`, `docker/registry` or `docker/registry/v2`), or one level
/// above it: the root to give instead.
fn root_hint(path: &Path) -> String {
    let tail = ["v2", "registry", "docker"];
    let mut p = path;
    for name in tail {
        if p.file_name().is_some_and(|n| n == name) {
            p = p.parent().unwrap_or(p);
            if p.join(crate::storage::V2_PREFIX).is_dir() {
                return format!(" (give the directory that holds docker/: {})", p.display());
            }
        }
    }
    let below: Vec<PathBuf> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|d| d.join(crate::storage::V2_PREFIX).is_dir())
        .take(2)
        .collect();
    match below.as_slice() {
        [one] => format!(" (did you mean {}?)", one.display()),
        _ => String::new(),
    }
}

/// [`std::result::Result`] with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a library call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local file (an inventory, a registry config, a journal, a
    /// quarantine directory, an S3 Inventory's files) could not be read,
    /// written or created.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// An object of the registry's storage; the error names its key.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A STORAGE directory that does not hold `docker/registry/v2`.
    #[error(
        "{} is not a registry root (no docker/registry/v2 directory): {error}{}",
        .path.display(),
        root_hint(.path)
    )]
    NotARegistry {
        /// The directory given.
        path: PathBuf,
        /// Why its `docker/registry/v2` could not be opened.
        error: StorageError,
    },
    /// An object store could not be set up or an object of it read
    /// (credentials, endpoint, network, HTTP status).
    #[error("{url}: {error}")]
    ObjectStore {
        /// The bucket or object, as a URL (`s3://bucket/key`).
        url: String,
        /// The object store's error.
        error: object_store::Error,
    },
    /// The threads that drive object-store requests could not be started.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(std::io::Error),
    /// The reference registry's `config.yml` cannot be used.
    #[error("{}: {message}", .file.display())]
    Config {
        /// The config file.
        file: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A file, object or row whose content is not what it must be: an
    /// inventory, an S3 Inventory's `manifest.json` or one of its data files
    /// (including one it names that is missing).
    #[error("{what}: {message}")]
    Parse {
        /// The file or object, with the row or line when known
        /// (`data/a.csv.gz: row 12`).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A value given on the command line that cannot be used: a storage
    /// URL, a `--listing`, a glob or regex, an image reference (or one that
    /// does not exist), a quarantine that overlaps the registry. The
    /// message quotes the value.
    #[error("{0}")]
    Invalid(String),
    /// A plan saved by `--plan FILE` that is unreadable or does not fit
    /// the run that would carry it out.
    #[error("plan {}: {message}", .file.display())]
    Plan {
        /// The plan file.
        file: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An access log could not be read; the error names it.
    #[error(transparent)]
    Log(#[from] crate::access_log::LogError),
    /// A quarantine could not be moved back whole.
    #[error("quarantine {quarantine}: {message}")]
    Quarantine {
        /// The quarantine (a directory or a prefix of the bucket).
        quarantine: String,
        /// What failed: its listing, or the objects left in it.
        message: String,
    },
}

impl Error {
    /// An I/O error on the file or directory `path`.
    pub fn io(path: impl AsRef<Path>, error: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    /// The content of `what` (a file, object or row) is wrong: `message`.
    pub fn parse(what: impl Display, message: impl Display) -> Error {
        Error::Parse {
            what: what.to_string(),
            message: message.to_string(),
        }
    }

    /// An object-store error on `url`.
    pub fn object_store(url: impl Display, error: object_store::Error) -> Error {
        Error::ObjectStore {
            url: url.to_string(),
            error,
        }
    }

    /// The operating system's error this one holds, if any (to tell, say,
    /// a closed output pipe from other failures).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            Error::Io { error, .. } | Error::Runtime(error) => Some(error),
            Error::Storage(StorageError::Io { error, .. })
            | Error::NotARegistry {
                error: StorageError::Io { error, .. },
                ..
            } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_name_what_they_concern_once() {
        let e = Error::io(
            "/srv/inv.json",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.to_string(), "/srv/inv.json: entity not found");
        // The cause is in the message, not repeated as a source.
        assert!(e.source().is_none());
        assert_eq!(
            e.io_error().map(|e| e.kind()),
            Some(std::io::ErrorKind::NotFound)
        );
        let e = Error::parse("data/a.csv.gz: row 3", "Size \"x\" is not a number");
        assert_eq!(
            e.to_string(),
            "data/a.csv.gz: row 3: Size \"x\" is not a number"
        );
        assert!(e.io_error().is_none());
        let e: Error = StorageError::NotFound {
            key: "blobs/sha256/ab".into(),
        }
        .into();
        assert_eq!(e.to_string(), "blobs/sha256/ab: not found");
    }
}
