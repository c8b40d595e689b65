//! The registry's logs as a record of pulls: storage keeps no trace of who
//! read a manifest when, the registry's output stream does.
//!
//! [`read_logs`] streams one or more logs (plain or gzip, or stdin), in
//! blocks of a few MiB parsed in parallel, and folds every [`Pull`] into a
//! caller's accumulator. The formats understood (see [`parse`]) are the
//! logrus app log of distribution 2.8 in its `text`, `json` and `logstash`
//! formatters and the Apache combined access log; both go to the same
//! stream and usually both are on, so **the same request is usually seen
//! twice** (once per format, a few microseconds apart, the access line with
//! whole seconds only). Callers that want "last pulled" take the maximum
//! time, which is unaffected; callers that count pulls must pick one format
//! (see [`ManifestRequest::format`]).
//!
//! A pull is a `GET` or `HEAD` of `/v2/<name>/manifests/<reference>` that
//! succeeded: status 2xx, or 304 (a conditional GET of a manifest the client
//! already had: it is still a use of the manifest). Everything else about
//! manifests (PUT, DELETE, 4xx, 5xx) is counted as "not a pull"; blobs,
//! `tags/list`, the catalog and other lines are not manifest requests.
//! A request by tag names the tag, not the digest it pointed at then: the
//! caller resolves that with the tag's history.

pub mod parse;
mod read;

pub use parse::{parse_line, Line};
pub use read::read_logs;

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

/// Which format a line was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// logrus `text` formatter (`time="..." level=info msg="response completed" ...`).
    Text,
    /// logrus `json` formatter.
    Json,
    /// logrus `logstash` formatter (`@timestamp`, `message`).
    Logstash,
    /// Apache combined access log (time to the second).
    Combined,
}

/// HTTP method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `POST`
    Post,
    /// `PATCH`
    Patch,
    /// Anything else.
    Other,
}

impl Method {
    /// Parses a method name (case-sensitive, as HTTP is).
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// A completed request for a manifest, borrowing the log line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRequest<'a> {
    /// When it completed (app log: nanoseconds; access log: seconds).
    pub time: SystemTime,
    /// HTTP method.
    pub method: Method,
    /// Repository name (`team-a/svc/api`), percent-decoded.
    pub repository: Cow<'a, str>,
    /// Tag or digest (`sha256:<hex>`) as requested, percent-decoded.
    pub reference: Cow<'a, str>,
    /// HTTP status of the response.
    pub status: u16,
    /// The client's User-Agent, if the line has one.
    pub user_agent: Option<Cow<'a, str>>,
    /// Which format the line was in.
    pub format: Format,
    /// The whole line.
    pub line: &'a str,
}

impl ManifestRequest<'_> {
    /// Whether this request is a pull: `GET` or `HEAD` answered 2xx or 304.
    pub fn is_pull(&self) -> bool {
        matches!(self.method, Method::Get | Method::Head)
            && ((200..300).contains(&self.status) || self.status == 304)
    }

    /// Whether the reference is a digest (`algorithm:encoded`) rather than a tag.
    pub fn by_digest(&self) -> bool {
        self.reference.contains(':')
    }
}

/// A pull and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull<'a> {
    /// The request.
    pub request: ManifestRequest<'a>,
    /// Index of its source in the slice given to [`read_logs`].
    pub source: usize,
    /// 1-based line number in that source.
    pub line_number: u64,
}

/// Where a log is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// A file, plain or gzip-compressed (detected by its magic bytes).
    Path(PathBuf),
    /// Standard input (plain or gzip).
    Stdin,
}

impl LogSource {
    /// `-` is stdin, anything else a path.
    pub fn from_arg(arg: &str) -> LogSource {
        if arg == "-" {
            LogSource::Stdin
        } else {
            LogSource::Path(PathBuf::from(arg))
        }
    }
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogSource::Path(p) => write!(f, "{}", p.display()),
            LogSource::Stdin => f.write_str("<stdin>"),
        }
    }
}

/// Settings of [`read_logs`].
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Pulls whose user agent matches are dropped (and counted): scanners,
    /// mirroring jobs, health checks.
    pub ignore_user_agent: Option<regex::Regex>,
    /// Bytes read per block (each block is parsed by one thread; at most
    /// one block per thread, plus the one being read, is in memory).
    /// Clamped to 1 B ..= 1 GiB.
    pub block_size: usize,
    /// A line still without its end after this many bytes (or a block,
    /// whichever is more) is counted as not understood and skipped without
    /// being held in memory.
    pub max_line: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            ignore_user_agent: None,
            block_size: 4 << 20,
            max_line: 1 << 20,
        }
    }
}

/// What was read from one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// The source, as given.
    pub name: String,
    /// Whether it was gzip-compressed.
    pub gzip: bool,
    /// Bytes of log read (uncompressed).
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Lines in none of the known formats.
    pub not_understood: u64,
    /// The first of them.
    pub first_not_understood: Option<BadLine>,
}

impl SourceStats {
    /// True when (almost) no line of the source is in a known format: at
    /// least 9 lines in 10 are not understood. Such a source is not a
    /// registry log (a binary, another program's log, the wrong file), and
    /// decisions that rely on pulls refuse it.
    pub fn is_not_a_log(&self) -> bool {
        self.not_understood > 0
            && self.not_understood.saturating_mul(10) >= self.lines.saturating_mul(9)
    }

    /// [`LogError::NotALog`] for this source, when [`Self::is_not_a_log`].
    pub fn not_a_log(&self) -> Option<LogError> {
        let first = self.first_not_understood.as_ref()?;
        self.is_not_a_log().then(|| LogError::NotALog {
            source_name: self.name.clone(),
            lines: self.lines,
            not_understood: self.not_understood,
            line_number: first.line_number,
            text: first.text.clone(),
        })
    }
}

/// A line that was in none of the known formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Its source.
    pub source: String,
    /// Its 1-based line number.
    pub line_number: u64,
    /// Its text, cut to about 200 characters, invalid UTF-8 replaced.
    pub text: String,
}

/// Counts of a [`read_logs`] run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Per source, in the order given.
    pub sources: Vec<SourceStats>,
    /// Pulls passed to the fold.
    pub pulls: u64,
    /// Pulls dropped because their user agent matched `ignore_user_agent`.
    pub dropped_by_user_agent: u64,
    /// Manifest requests that were not pulls (PUT, DELETE, errors).
    pub not_pulls: u64,
    /// Lines in none of the known formats (blank lines are not counted).
    pub not_understood: u64,
    /// The first of those (lowest source index, then line number).
    pub first_not_understood: Option<BadLine>,
}

/// Why a log could not be read. A line that cannot be parsed is never one
/// (it is counted in [`LogStats::not_understood`]); a source of which
/// almost no line parses is one for the callers that ask
/// ([`LogError::NotALog`]).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be opened.
    #[error("{source_name}: cannot open: {error}")]
    Open {
        /// The source.
        source_name: String,
        /// The cause (in the message, not also the source: a chain printed
        /// with `{:#}` would repeat it).
        error: std::io::Error,
    },
    /// Reading failed.
    #[error("{source_name}: read error after {offset} bytes: {error}")]
    Read {
        /// The source.
        source_name: String,
        /// Bytes read before the error.
        offset: u64,
        /// The cause (in the message, not also the source: a chain printed
        /// with `{:#}` would repeat it).
        error: std::io::Error,
    },
    /// (Almost) no line is in one of the registry's log formats
    /// ([`SourceStats::is_not_a_log`]).
    #[error(
        "{source_name}: not a registry log: {not_understood} of {lines} lines are in none of \
         the registry's log formats (line {line_number}: {text})"
    )]
    NotALog {
        /// The source.
        source_name: String,
        /// Lines read.
        lines: u64,
        /// Lines not understood.
        not_understood: u64,
        /// The first of them: its number…
        line_number: u64,
        /// …and its text, non-printable characters escaped.
        text: String,
    },
    /// The gzip stream is corrupt or truncated.
    #[error(
        "{source_name}: corrupt gzip stream near compressed byte {compressed_offset} \
         (after {offset} uncompressed bytes): {error}"
    )]
    Gzip {
        /// The source.
        source_name: String,
        /// Compressed bytes read when the error was found (the damage is
        /// at or before this offset).
        compressed_offset: u64,
        /// Uncompressed bytes read before the error.
        offset: u64,
        /// The cause (in the message, not also the source: a chain printed
        /// with `{:#}` would repeat it).
        error: std::io::Error,
    },
}

#[cfg(test)]
mod tests;
