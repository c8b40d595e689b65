//! Reading the sources: each is opened (gzip detected by its magic bytes),
//! read in blocks of `block_size` bytes cut after the block's last newline
//! (the partial line is carried into the next block), and the blocks are
//! parsed in parallel by rayon's `par_bridge`, which takes one block per
//! thread at a time: memory stays at about (threads + 1) blocks whatever
//! the log's size. Sources are read one after the other, in order.

use super::parse::{parse_line, Line};
use super::{BadLine, LogError, LogOptions, LogSource, LogStats, Pull, SourceStats};
use flate2::bufread::MultiGzDecoder;
use rayon::prelude::*;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// About how many characters of a bad line are kept.
const BAD_LINE_CHARS: usize = 200;

/// Streams `sources` and folds every pull into accumulators made by `init`
/// (one per worker), merged with `merge` at the end.
///
/// Each [`Pull`] borrows its line: copy what you keep. A pull whose user
/// agent matches `opts.ignore_user_agent` is counted and not folded. Lines
/// that are not understood are counted, never fatal; a source that cannot
/// be opened or read, or a corrupt gzip stream, ends the run with an error
/// naming it.
pub fn read_logs<A: Send>(
    sources: &[LogSource],
    opts: &LogOptions,
    init: impl Fn() -> A + Sync,
    fold: impl Fn(&mut A, &Pull<'_>) + Sync,
    merge: impl Fn(A, A) -> A + Sync,
) -> Result<(A, LogStats), LogError> {
    let mut blocks = Blocks {
        sources,
        opts,
        next: 0,
        cur: None,
        stats: sources
            .iter()
            .map(|s| SourceStats {
                name: s.to_string(),
                ..SourceStats::default()
            })
            .collect(),
        error: None,
        bad: Counts::default(),
    };
    let folded = (&mut blocks)
        .par_bridge()
        .fold(
            || (init(), Counts::default()),
            |(mut acc, mut counts), block| {
                scan_block(&block, opts, &mut acc, &mut counts, &fold);
                (acc, counts)
            },
        )
        .reduce_with(|(a, ca), (b, cb)| (merge(a, b), ca.merge(cb)));
    if let Some(e) = blocks.error {
        return Err(e);
    }
    let (acc, counts) = folded.unwrap_or_else(|| (init(), Counts::default()));
    let counts = counts.merge(blocks.bad);
    let mut stats = blocks.stats;
    for (&source, (n, line_number, text)) in &counts.bad_by_source {
        let s = &mut stats[source];
        s.not_understood = *n;
        s.first_not_understood = Some(BadLine {
            source: s.name.clone(),
            line_number: *line_number,
            text: text.clone(),
        });
    }
    let first_not_understood = stats.iter().find_map(|s| s.first_not_understood.clone());
    Ok((
        acc,
        LogStats {
            sources: stats,
            pulls: counts.pulls,
            dropped_by_user_agent: counts.dropped,
            not_pulls: counts.not_pulls,
            not_understood: counts.not_understood,
            first_not_understood,
        },
    ))
}

/// Lines of one source, ending at a line end (or at the source's end).
struct Block {
    source: usize,
    /// 1-based number of its first line.
    first_line: u64,
    data: Vec<u8>,
}

/// Parses one block's lines, folding the pulls.
fn scan_block<A>(
    block: &Block,
    opts: &LogOptions,
    acc: &mut A,
    counts: &mut Counts,
    fold: &impl Fn(&mut A, &Pull<'_>),
) {
    let data = &block.data[..];
    let mut start = 0;
    let mut line_number = block.first_line;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let line = &data[start..end];
        match parse_line(line) {
            Line::Request(request) if request.is_pull() => {
                let ignored = opts.ignore_user_agent.as_ref().is_some_and(|re| {
                    request
                        .user_agent
                        .as_deref()
                        .is_some_and(|ua| re.is_match(ua))
                });
                if ignored {
                    counts.dropped += 1;
                } else {
                    counts.pulls += 1;
                    let pull = Pull {
                        request,
                        source: block.source,
                        line_number,
                    };
                    fold(acc, &pull);
                }
            }
            Line::Request(_) => counts.not_pulls += 1,
            Line::Other | Line::Blank => {}
            Line::NotUnderstood => counts.bad(block.source, line_number, line),
        }
        start = end + 1;
        line_number += 1;
    }
}

/// Per-worker counts.
#[derive(Default)]
struct Counts {
    pulls: u64,
    dropped: u64,
    not_pulls: u64,
    not_understood: u64,
    /// Per source index: lines not understood, and the (line number, text)
    /// of its earliest one seen.
    bad_by_source: std::collections::BTreeMap<usize, (u64, u64, String)>,
}

impl Counts {
    fn bad(&mut self, source: usize, line_number: u64, text: &[u8]) {
        self.not_understood += 1;
        let e = self
            .bad_by_source
            .entry(source)
            .or_insert_with(|| (0, line_number, cut(text)));
        e.0 += 1;
        if line_number < e.1 {
            (e.1, e.2) = (line_number, cut(text));
        }
    }

    fn merge(mut self, o: Counts) -> Counts {
        self.pulls += o.pulls;
        self.dropped += o.dropped;
        self.not_pulls += o.not_pulls;
        self.not_understood += o.not_understood;
        for (source, (n, line, text)) in o.bad_by_source {
            match self.bad_by_source.entry(source) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert((n, line, text));
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let e = e.get_mut();
                    e.0 += n;
                    if line < e.1 {
                        (e.1, e.2) = (line, text);
                    }
                }
            }
        }
        self
    }
}

/// A line for a message: about `BAD_LINE_CHARS` characters, with control
/// characters and bytes that are not UTF-8 escaped (`\u{1b}`, `\xff`), so
/// a binary file given as a log cannot write to the terminal.
pub(super) fn cut(text: &[u8]) -> String {
    let head = &text[..text.len().min(BAD_LINE_CHARS * 4)];
    let mut out = String::new();
    let mut chars = 0;
    'outer: for chunk in head.utf8_chunks() {
        for c in chunk.valid().chars() {
            if chars == BAD_LINE_CHARS {
                break 'outer;
            }
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
            chars += 1;
        }
        for b in chunk.invalid() {
            if chars == BAD_LINE_CHARS {
                break 'outer;
            }
            out.push_str(&format!("\\x{b:02x}"));
            chars += 1;
        }
    }
    if chars == BAD_LINE_CHARS || head.len() < text.len() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------- sources ----

/// Counts the bytes read through it (the compressed offset of a gzip error).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// One open source being cut into blocks.
struct Cur {
    index: usize,
    name: String,
    reader: Box<dyn Read + Send>,
    gzip: bool,
    compressed: Arc<AtomicU64>,
    /// The partial line after the last block's last newline.
    carry: Vec<u8>,
    /// Lines and (uncompressed) bytes handed out so far.
    lines: u64,
    bytes: u64,
    eof: bool,
}

fn open(index: usize, source: &LogSource) -> Result<Cur, LogError> {
    let name = source.to_string();
    let raw: Box<dyn Read + Send> = match source {
        LogSource::Path(p) => Box::new(File::open(p).map_err(|error| LogError::Open {
            source_name: name.clone(),
            error,
        })?),
        LogSource::Stdin => Box::new(io::stdin()),
    };
    let compressed = Arc::new(AtomicU64::new(0));
    let mut buffered = BufReader::with_capacity(
        256 << 10,
        Counting {
            inner: raw,
            count: compressed.clone(),
        },
    );
    let head = buffered.fill_buf().map_err(|error| LogError::Read {
        source_name: name.clone(),
        offset: 0,
        error,
    })?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    Ok(Cur {
        index,
        name,
        reader,
        gzip,
        compressed,
        carry: Vec::new(),
        lines: 0,
        bytes: 0,
        eof: false,
    })
}

impl Cur {
    fn error(&self, error: io::Error, offset: u64) -> LogError {
        if self.gzip {
            LogError::Gzip {
                source_name: self.name.clone(),
                compressed_offset: self.compressed.load(Ordering::Relaxed),
                offset,
                error,
            }
        } else {
            LogError::Read {
                source_name: self.name.clone(),
                offset,
                error,
            }
        }
    }

    /// Reads into `buf` until it holds `target` bytes or the source ends
    /// (`read_to_end` on a `Take`: no zeroing of the buffer first).
    fn fill(&mut self, buf: &mut Vec<u8>, target: usize) -> Result<(), LogError> {
        let want = target.saturating_sub(buf.len());
        buf.reserve(want);
        match (&mut self.reader).take(want as u64).read_to_end(buf) {
            Ok(n) if n < want => self.eof = true,
            Ok(_) => {}
            Err(e) => return Err(self.error(e, self.bytes + buf.len() as u64)),
        }
        Ok(())
    }

    /// The next block, `None` at the end. An over-long line is skipped and
    /// reported to `bad`.
    fn next_block(
        &mut self,
        opts: &LogOptions,
        bad: &mut Counts,
    ) -> Result<Option<Block>, LogError> {
        let block_size = opts.block_size.clamp(1, 1 << 30);
        let mut buf = std::mem::take(&mut self.carry);
        // The carry holds no newline: search only what is read after it.
        let mut searched = buf.len();
        loop {
            if !self.eof {
                // A block's worth, or a block more while a line is longer.
                let target = if buf.len() < block_size {
                    block_size
                } else {
                    buf.len() + block_size
                };
                self.fill(&mut buf, target)?;
            }
            if let Some(i) = memchr::memrchr(b'\n', &buf[searched..]) {
                self.carry = buf[searched + i + 1..].to_vec();
                buf.truncate(searched + i + 1);
                return Ok(Some(self.emit(buf)));
            }
            if self.eof {
                return Ok((!buf.is_empty()).then(|| self.emit(buf)));
            }
            if buf.len() >= opts.max_line.max(block_size) {
                self.skip_long_line(buf, bad)?;
                buf = std::mem::take(&mut self.carry);
                searched = buf.len();
                continue;
            }
            searched = buf.len();
        }
    }

    fn emit(&mut self, data: Vec<u8>) -> Block {
        let mut n = memchr::memchr_iter(b'\n', &data).count() as u64;
        if data.last() != Some(&b'\n') {
            n += 1;
        }
        let block = Block {
            source: self.index,
            first_line: self.lines + 1,
            data,
        };
        self.lines += n;
        self.bytes += block.data.len() as u64;
        block
    }

    /// `head` is the start of a line longer than `max_line` and a block: report it,
    /// read past its end, keep what follows as the carry.
    fn skip_long_line(&mut self, head: Vec<u8>, bad: &mut Counts) -> Result<(), LogError> {
        bad.bad(self.index, self.lines + 1, &head);
        self.bytes += head.len() as u64;
        let mut chunk = head;
        loop {
            chunk.clear();
            self.fill(&mut chunk, 64 << 10)?;
            if let Some(i) = memchr::memchr(b'\n', &chunk) {
                self.bytes += i as u64 + 1;
                self.carry = chunk[i + 1..].to_vec();
                break;
            }
            self.bytes += chunk.len() as u64;
            if self.eof {
                break;
            }
        }
        self.lines += 1;
        Ok(())
    }
}

/// The iterator of blocks over all sources, handed to `par_bridge`. It
/// stops at the first error, which `read_logs` then returns.
struct Blocks<'s> {
    sources: &'s [LogSource],
    opts: &'s LogOptions,
    next: usize,
    cur: Option<Cur>,
    stats: Vec<SourceStats>,
    error: Option<LogError>,
    /// Over-long lines found while reading.
    bad: Counts,
}

impl Iterator for Blocks<'_> {
    type Item = Block;

    fn next(&mut self) -> Option<Block> {
        loop {
            if self.error.is_some() {
                return None;
            }
            let cur = match &mut self.cur {
                Some(c) => c,
                None => {
                    let index = self.next;
                    let source = self.sources.get(index)?;
                    self.next += 1;
                    match open(index, source) {
                        Ok(c) => self.cur.insert(c),
                        Err(e) => {
                            self.error = Some(e);
                            return None;
                        }
                    }
                }
            };
            let result = cur.next_block(self.opts, &mut self.bad);
            let stats = &mut self.stats[cur.index];
            stats.gzip = cur.gzip;
            stats.bytes = cur.bytes;
            stats.lines = cur.lines;
            match result {
                Ok(Some(block)) => return Some(block),
                Ok(None) => self.cur = None,
                Err(e) => self.error = Some(e),
            }
        }
    }
}
