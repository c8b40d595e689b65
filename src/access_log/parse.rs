//! One line of the registry's output stream, classified and, when it is a
//! request for a manifest, parsed without copying: the logrus app log in its
//! `text`, `json` and `logstash` formatters (`msg="response completed"` and
//! `msg="response completed with error"` lines) and the Apache combined
//! access log. Everything else is either an understood line that is not a
//! request (another logrus message, a blob request), a blank line, or not
//! understood (garbage, a Go panic's lines).

use super::{Format, ManifestRequest, Method};
use chrono::{DateTime, FixedOffset, NaiveDate};
use memchr::memmem;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::SystemTime;

/// What one line of the log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A completed request for a manifest (any method, any status).
    Request(ManifestRequest<'a>),
    /// A line in one of the known formats that is not a manifest request
    /// (another app-log message, a blob or catalog request, ...).
    Other,
    /// Empty or only whitespace.
    Blank,
    /// In none of the known formats.
    NotUnderstood,
}

/// The cheap pre-filter: only lines holding this are parsed in full.
static MANIFESTS: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"/manifests/"));
static MANIFESTS_REV: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(b"/manifests/"));
/// Around the access log's time: ` [` and `] "`.
static TIME_OPEN: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b" ["));
static TIME_CLOSE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"] \""));

const COMPLETED: &str = "response completed";
const COMPLETED_WITH_ERROR: &str = "response completed with error";

/// Classifies one line (without its `\n`; trailing whitespace such as a
/// `\r` is ignored) and parses it when it is a manifest request.
///
/// Lines without `/manifests/` are only checked shallowly: a logrus text
/// line by its first key, a JSON line by its braces, an access-log line by
/// its `host ident user [time] "` head.
pub fn parse_line(line: &[u8]) -> Line<'_> {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let line = &line[..end];
    let Some(first) = line.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Line::Blank;
    };
    let kind = match line[first] {
        b'{' => Format::Json,
        _ if line.starts_with(b"time=")
            || line.starts_with(b"level=")
            || line.starts_with(b"msg=") =>
        {
            Format::Text
        }
        _ => Format::Combined,
    };
    if MANIFESTS.find(line).is_none() {
        let known = match kind {
            Format::Json | Format::Logstash => line.ends_with(b"}"),
            Format::Text => true,
            Format::Combined => combined_head(line).is_some(),
        };
        return if known {
            Line::Other
        } else {
            Line::NotUnderstood
        };
    }
    let Ok(s) = std::str::from_utf8(line) else {
        return Line::NotUnderstood;
    };
    let parsed = match kind {
        Format::Json | Format::Logstash => json(s),
        Format::Text => text(s),
        Format::Combined => combined(s),
    };
    parsed.unwrap_or(Line::NotUnderstood)
}

// ------------------------------------------------------------- text ----

/// logrus' text formatter: `key=value` pairs, values quoted Go-style (`%q`)
/// when they hold anything but `[A-Za-z0-9-._/@^+]`.
fn text(s: &str) -> Option<Line<'_>> {
    let mut found = 0;
    let (mut time, mut msg, mut method, mut uri, mut ua, mut status) =
        (None, None, None, None, None, None);
    for pair in (Logfmt { rest: s }) {
        let (key, raw) = pair?;
        let slot = match key {
            "time" => &mut time,
            "msg" => &mut msg,
            "http.request.method" => &mut method,
            "http.request.uri" => &mut uri,
            "http.request.useragent" => &mut ua,
            "http.response.status" => &mut status,
            _ => continue,
        };
        found += usize::from(slot.replace(raw).is_none());
        if found == 6 {
            break;
        }
    }
    // A line without a message is understood; it is just not a request.
    let Some(msg) = msg else {
        return Some(Line::Other);
    };
    let msg = go_unquote(msg)?;
    if msg != COMPLETED && msg != COMPLETED_WITH_ERROR {
        return Some(Line::Other);
    }
    let uri = go_unquote(uri?)?;
    let Some((repository, reference)) = manifest_path(uri) else {
        return Some(Line::Other);
    };
    Some(Line::Request(ManifestRequest {
        time: rfc3339(&go_unquote(time?)?)?,
        method: Method::parse(&go_unquote(method?)?),
        repository,
        reference,
        status: go_unquote(status?)?.parse().ok()?,
        user_agent: ua.and_then(go_unquote).and_then(non_empty),
        format: Format::Text,
        line: s,
    }))
}

/// Iterator over `key=value` pairs; the value is raw (still quoted if it
/// was). `None` from `next` ends it, `Some(None)` is a malformed pair.
struct Logfmt<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Logfmt<'a> {
    type Item = Option<(&'a str, &'a str)>;

    fn next(&mut self) -> Option<Self::Item> {
        // Only ASCII bytes (' ', '=', '"') are cut at: every index is a
        // char boundary.
        let s = self.rest;
        let b = s.as_bytes();
        let start = b.iter().position(|&c| c != b' ')?;
        let Some(eq) = b[start..]
            .iter()
            .position(|&c| c == b'=' || c == b' ')
            .map(|i| start + i)
            .filter(|&i| b[i] == b'=')
        else {
            self.rest = "";
            return Some(None);
        };
        let v = eq + 1;
        let end = if b.get(v) == Some(&b'"') {
            match quoted_len(&s[v..]) {
                Some(n) => v + n,
                None => {
                    self.rest = "";
                    return Some(None);
                }
            }
        } else {
            memchr::memchr(b' ', &b[v..]).map_or(b.len(), |i| v + i)
        };
        self.rest = &s[end..];
        Some(Some((&s[start..eq], &s[v..end])))
    }
}

/// Length of the quoted string at the start of `s` (which starts with `"`),
/// closing quote included; backslash escapes are skipped.
fn quoted_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// A logfmt value: as is when bare, unquoted (Go `strconv.Unquote` rules)
/// when quoted. Borrows unless the value has escapes.
fn go_unquote(raw: &str) -> Option<Cow<'_, str>> {
    let Some(inner) = raw.strip_prefix('"') else {
        return Some(Cow::Borrowed(raw));
    };
    let inner = inner.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut bytes: Vec<u8> = Vec::new(); // pending \x / octal bytes (may form UTF-8)
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush_bytes(&mut bytes, &mut out)?;
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' | '"' | '\'' => Some(e),
            _ => None,
        };
        if let Some(c) = simple {
            flush_bytes(&mut bytes, &mut out)?;
            out.push(c);
            continue;
        }
        match e {
            'x' => bytes.push(hex_digits(&mut chars, 2)? as u8),
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let v = u32::from_str_radix(&format!("{e}{rest}"), 8).ok()?;
                bytes.push(u8::try_from(v).ok()?);
            }
            'u' | 'U' => {
                flush_bytes(&mut bytes, &mut out)?;
                let n = if e == 'u' { 4 } else { 8 };
                out.push(char::from_u32(hex_digits(&mut chars, n)?)?);
            }
            _ => return None,
        }
    }
    flush_bytes(&mut bytes, &mut out)?;
    Some(Cow::Owned(out))
}

fn hex_digits(chars: &mut std::str::Chars<'_>, n: usize) -> Option<u32> {
    let digits: String = chars.by_ref().take(n).collect();
    (digits.len() == n)
        .then(|| u32::from_str_radix(&digits, 16).ok())
        .flatten()
}

/// Appends escaped bytes that must together be UTF-8 (else: lossy).
fn flush_bytes(bytes: &mut Vec<u8>, out: &mut String) -> Option<()> {
    if !bytes.is_empty() {
        out.push_str(&String::from_utf8_lossy(bytes));
        bytes.clear();
    }
    Some(())
}

fn non_empty(s: Cow<'_, str>) -> Option<Cow<'_, str>> {
    (!s.is_empty() && s != "-").then_some(s)
}

// ------------------------------------------------------------- json ----

/// The fields of a logrus JSON (or logstash) line that matter here.
#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(rename = "@timestamp", borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    msg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(rename = "http.request.method", borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(rename = "http.request.uri", borrow, default)]
    uri: Option<Cow<'a, str>>,
    #[serde(rename = "http.request.useragent", borrow, default)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(rename = "http.response.status", default)]
    status: Option<u16>,
}

fn json(s: &str) -> Option<Line<'_>> {
    if !s.ends_with('}') {
        return None;
    }
    if MANIFESTS.find(s.as_bytes()).is_none() {
        return Some(Line::Other);
    }
    let j: JsonLine<'_> = serde_json::from_str(s).ok()?;
    let logstash = j.timestamp.is_some();
    let Some(msg) = j.msg.or(j.message) else {
        return Some(Line::Other);
    };
    if msg != COMPLETED && msg != COMPLETED_WITH_ERROR {
        return Some(Line::Other);
    }
    let Some((repository, reference)) = manifest_path(j.uri?) else {
        return Some(Line::Other);
    };
    Some(Line::Request(ManifestRequest {
        time: rfc3339(&j.time.or(j.timestamp)?)?,
        method: Method::parse(&j.method?),
        repository,
        reference,
        status: j.status?,
        user_agent: j.user_agent.and_then(non_empty),
        format: if logstash {
            Format::Logstash
        } else {
            Format::Json
        },
        line: s,
    }))
}

fn rfc3339(s: &str) -> Option<SystemTime> {
    DateTime::parse_from_rfc3339(s).ok().map(SystemTime::from)
}

// --------------------------------------------------------- combined ----

/// Apache combined (or common) format, as gorilla/handlers writes it:
/// `host ident user [02/Jan/2006:15:04:05 -0700] "METHOD URI PROTO" status size "referer" "agent"`.
fn combined(s: &str) -> Option<Line<'_>> {
    let (open, close) = combined_head(s.as_bytes())?;
    let time = &s[open + 2..close];
    let rest = &s[close + 2..];
    let req_len = quoted_len(rest)?;
    let request = &rest[1..req_len - 1];
    let mut tail = &rest[req_len..];
    let status: u16 = token(&mut tail)?.parse().ok()?;
    let size = token(&mut tail)?;
    if size != "-" && size.parse::<u64>().is_err() {
        return None;
    }
    let mut parts = request.split(' ');
    let (method, uri) = (parts.next()?, parts.next()?);
    let uri = go_unquote_body(uri)?;
    let Some((repository, reference)) = manifest_path(uri) else {
        return Some(Line::Other);
    };
    // The combined format goes on with the referer and the user agent.
    let _referer = quoted(&mut tail);
    let user_agent = quoted(&mut tail).and_then(go_unquote).and_then(non_empty);
    Some(Line::Request(ManifestRequest {
        time: clf_time(time)?,
        method: Method::parse(method),
        repository,
        reference,
        status,
        user_agent,
        format: Format::Combined,
        line: s,
    }))
}

/// Where ` [` and `] "` are in `host ident user [time] "request" ...`.
fn combined_head(b: &[u8]) -> Option<(usize, usize)> {
    let open = TIME_OPEN.find(b)?;
    // host, ident and user: three fields without spaces.
    let fields = b[..open]
        .split(|&c| c == b' ')
        .filter(|f| !f.is_empty())
        .count();
    if fields != 3 {
        return None;
    }
    let close = open + 2 + TIME_CLOSE.find(&b[open + 2..])?;
    Some((open, close))
}

/// The next space-separated token of `s`, which is advanced past it.
fn token<'a>(s: &mut &'a str) -> Option<&'a str> {
    let t = s.trim_start_matches(' ');
    let end = t.find(' ').unwrap_or(t.len());
    *s = &t[end..];
    (end > 0).then(|| &t[..end])
}

/// The next quoted string of `s` (quotes included), which is advanced past it.
fn quoted<'a>(s: &mut &'a str) -> Option<&'a str> {
    let t = s.trim_start_matches(' ');
    if !t.starts_with('"') {
        return None;
    }
    let n = quoted_len(t)?;
    *s = &t[n..];
    Some(&t[..n])
}

/// Unescapes the body of a quoted string (no surrounding quotes).
fn go_unquote_body(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('\\') {
        return Some(Cow::Borrowed(s));
    }
    go_unquote(&format!("\"{s}\"")).map(|c| Cow::Owned(c.into_owned()))
}

/// `02/Dec/2026:20:57:56 +0000`, read by position (chrono's strftime
/// parser would re-read its format string on every line).
fn clf_time(s: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    let shape = b.len() == 26
        && b[2] == b'/'
        && b[6] == b'/'
        && b[11] == b':'
        && b[14] == b':'
        && b[17] == b':'
        && b[20] == b' ';
    if !shape {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        let d = &b[from..to];
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
    };
    let month = MONTHS.iter().position(|m| m.as_bytes() == &b[3..6])? as u32 + 1;
    let date = NaiveDate::from_ymd_opt(num(7, 11)? as i32, month, num(0, 2)?)?;
    let local = date.and_hms_opt(num(12, 14)?, num(15, 17)?, num(18, 20)?)?;
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset = FixedOffset::east_opt(sign * (num(22, 24)? * 3600 + num(24, 26)? * 60) as i32)?;
    let t = local.and_local_timezone(offset).single()?;
    Some(SystemTime::from(t))
}

// -------------------------------------------------------------- URI ----

/// `/v2/<name>/manifests/<reference>` (query and fragment dropped, the path
/// percent-decoded as the registry's router sees it) → (name, reference).
/// `None` for any other URI.
pub fn manifest_path(uri: Cow<'_, str>) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
    match uri {
        Cow::Borrowed(u) => split_manifest_path(u),
        Cow::Owned(u) => split_manifest_path(&u).map(|(n, r)| (own(n), own(r))),
    }
}

fn own(c: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(c.into_owned())
}

fn split_manifest_path(uri: &str) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
    let mut path = uri.split(['?', '#']).next().unwrap_or(uri);
    // An absolute-form request target: http://host/v2/...
    if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        path = &rest[rest.find('/')?..];
    }
    let decoded = if memchr::memchr(b'%', path.as_bytes()).is_none() {
        Cow::Borrowed(path)
    } else {
        percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .ok()?
    };
    match decoded {
        Cow::Borrowed(p) => {
            let (n, r) = split_decoded(p)?;
            Some((Cow::Borrowed(n), Cow::Borrowed(r)))
        }
        Cow::Owned(p) => {
            let (n, r) = split_decoded(&p)?;
            Some((Cow::Owned(n.to_string()), Cow::Owned(r.to_string())))
        }
    }
}

fn split_decoded(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    let i = MANIFESTS_REV.rfind(rest.as_bytes())?;
    let (name, reference) = (&rest[..i], &rest[i + "/manifests/".len()..]);
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && !reference.is_empty()
        && !reference.contains('/');
    ok.then_some((name, reference))
}
