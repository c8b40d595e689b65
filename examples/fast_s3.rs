//! A read-only S3 endpoint serving a directory tree from memory, with an
//! optional latency added to every request: the store of
//! `scripts/latency_bench.py --tree`.
//!
//! ```text
//! cargo build --release --example fast_s3
//! target/release/examples/fast_s3 --tree DIR --bucket B [--prefix P] [--port 0] [--latency-ms 20]
//! ```
//!
//! Every file under DIR is the object `P/<path relative to DIR>` of bucket
//! B, read once at start. Prints the port on stdout once it listens (a free
//! one with `--port 0`). It answers what `regsweep` sends to read a bucket:
//! ListObjectsV2 (prefix, delimiter, start-after, continuation-token,
//! max-keys up to 1,000; a page found by bisection in the sorted keys),
//! GET and HEAD (with the object's length, ETag and Last-Modified), path
//! style. Signatures are not checked; nothing can be written. Each
//! connection has its own thread (HTTP/1.1 keep-alive), so requests sent
//! in parallel wait out their latency in parallel.
//!
//! Why it exists: moto_server scans every key of the bucket for each
//! ListObjects page and serves one request at a time; s3s-fs 0.14 (the
//! s3s project's filesystem server) walks the whole bucket directory for
//! each page (1.7 s a page for 10,172 objects on 2 vCPUs) and cannot store
//! the registry's longer keys by PUT; a server in Python answers about
//! 1,200 requests a second on these cores, less than 64 requests in flight
//! at 50 ms ask for. This one costs tens of microseconds a request.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One object: its content, ETag and modification time.
struct Object {
    body: Vec<u8>,
    etag: String,
    modified: SystemTime,
}

/// The bucket: every object by key, in key order.
struct Bucket {
    name: String,
    objects: BTreeMap<String, Object>,
}

fn load(dir: &Path, rel: &str, prefix: &str, out: &mut BTreeMap<String, Object>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            load(&e.path(), &rel, prefix, out);
        } else if ft.is_file() {
            let Ok(body) = std::fs::read(e.path()) else {
                continue;
            };
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            // Not an MD5: a tag that changes with the content is enough here.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&body, &mut h);
            let etag = format!("\"{:016x}\"", std::hash::Hasher::finish(&h));
            let key = if prefix.is_empty() {
                rel
            } else {
                format!("{prefix}/{rel}")
            };
            out.insert(
                key,
                Object {
                    body,
                    etag,
                    modified,
                },
            );
        }
    }
}

/// Decodes `%XX` escapes (and `+` in a query) of a URL component.
fn decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Seconds since the epoch as (days since the epoch, seconds of the day).
fn days_secs(t: SystemTime) -> (i64, i64) {
    let s = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    (s.div_euclid(86400), s.rem_euclid(86400))
}

/// The civil date of a day since the epoch (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn iso8601(t: SystemTime) -> String {
    let (days, s) = days_secs(t);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn http_date(t: SystemTime) -> String {
    let (days, s) = days_secs(t);
    let (y, m, d) = civil(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        MON[(m - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A ListObjectsV2 page.
fn list(b: &Bucket, query: &BTreeMap<String, String>) -> String {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    let prefix = get("prefix");
    let delimiter = get("delimiter");
    let after = get("start-after").max(get("continuation-token"));
    let max_keys: usize = get("max-keys").parse().unwrap_or(1000).min(1000);
    let mut contents = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last = String::new();
    let mut truncated = false;
    // Keys after `after` (the prefix itself included when it is the start).
    let from = if after >= prefix {
        std::ops::Bound::Excluded(after)
    } else {
        std::ops::Bound::Included(prefix)
    };
    let pending = b
        .objects
        .range::<str, _>((from, std::ops::Bound::Unbounded));
    for (k, o) in pending {
        if !k.starts_with(prefix) {
            break;
        }
        if delimiter.is_empty() {
            if contents.len() >= max_keys {
                truncated = true;
                break;
            }
            last = k.clone();
            contents.push((k, o));
            continue;
        }
        match k[prefix.len()..].find(delimiter) {
            Some(j) => {
                let cp = &k[..prefix.len() + j + delimiter.len()];
                if prefixes.last().map(String::as_str) == Some(cp) || cp <= after {
                    continue;
                }
                if contents.len() + prefixes.len() >= max_keys {
                    truncated = true;
                    break;
                }
                last = cp.to_string();
                prefixes.push(cp.to_string());
            }
            None => {
                if contents.len() + prefixes.len() >= max_keys {
                    truncated = true;
                    break;
                }
                last = k.clone();
                contents.push((k, o));
            }
        }
    }
    let mut x = String::with_capacity(256 + contents.len() * 256);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    x.push_str(&format!(
        "<Name>{}</Name><Prefix>{}</Prefix><MaxKeys>{max_keys}</MaxKeys><KeyCount>{}</KeyCount><IsTruncated>{truncated}</IsTruncated>",
        xml(&b.name),
        xml(prefix),
        contents.len() + prefixes.len()
    ));
    if !delimiter.is_empty() {
        x.push_str(&format!("<Delimiter>{}</Delimiter>", xml(delimiter)));
    }
    if truncated {
        x.push_str(&format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            xml(&last)
        ));
    }
    for (k, o) in contents {
        x.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            xml(k),
            iso8601(o.modified),
            xml(&o.etag),
            o.body.len()
        ));
    }
    for p in prefixes {
        x.push_str(&format!(
            "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
            xml(&p)
        ));
    }
    x.push_str("</ListBucketResult>");
    x
}

fn respond(
    w: &mut impl Write,
    status: &str,
    ctype: &str,
    headers: &[(&str, String)],
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let mut h = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    let mut out = h.into_bytes();
    if !head {
        out.extend_from_slice(body);
    }
    w.write_all(&out)?;
    w.flush()
}

fn error(w: &mut impl Write, status: &str, code: &str, head: bool) -> std::io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
    );
    respond(w, status, "application/xml", &[], body.as_bytes(), head)
}

fn serve(stream: TcpStream, b: &Bucket, latency: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        if length > 0 {
            let mut skip = vec![0; length];
            r.read_exact(&mut skip)?;
        }
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let head = method == "HEAD";
        if method != "GET" && !head {
            error(&mut w, "405 Method Not Allowed", "MethodNotAllowed", false)?;
            continue;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let path = decode(path.trim_start_matches('/'), false);
        let (bucket, key) = path.split_once('/').unwrap_or((&path, ""));
        if bucket != b.name {
            error(&mut w, "404 Not Found", "NoSuchBucket", head)?;
            continue;
        }
        if key.is_empty() {
            let q: BTreeMap<String, String> = query
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k, true), decode(v, true))
                })
                .collect();
            let body = list(b, &q);
            respond(
                &mut w,
                "200 OK",
                "application/xml",
                &[],
                body.as_bytes(),
                head,
            )?;
            continue;
        }
        match b.objects.get(key) {
            None => error(&mut w, "404 Not Found", "NoSuchKey", head)?,
            Some(o) => respond(
                &mut w,
                "200 OK",
                "application/octet-stream",
                &[
                    ("ETag", o.etag.clone()),
                    ("Last-Modified", http_date(o.modified)),
                ],
                &o.body,
                head,
            )?,
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut tree, mut bucket, mut prefix, mut port, mut latency_ms) =
        (None, None, String::new(), 0u16, 0f64);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--tree" => tree = Some(val()),
            "--bucket" => bucket = Some(val()),
            "--prefix" => prefix = val().trim_matches('/').to_string(),
            "--port" => port = val().parse().expect("--port: a number"),
            "--latency-ms" => latency_ms = val().parse().expect("--latency-ms: a number"),
            _ => {
                eprintln!(
                    "usage: fast_s3 --tree DIR --bucket B [--prefix P] [--port 0] [--latency-ms MS]"
                );
                std::process::exit(2);
            }
        }
    }
    let (Some(tree), Some(name)) = (tree, bucket) else {
        eprintln!("fast_s3: --tree and --bucket are required");
        std::process::exit(2);
    };
    let mut objects = BTreeMap::new();
    load(Path::new(&tree), "", &prefix, &mut objects);
    eprintln!("fast_s3: {} objects in s3://{name}/{prefix}", objects.len());
    let b = Arc::new(Bucket { name, objects });
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
    println!("{}", listener.local_addr().expect("local address").port());
    std::io::stdout().flush().ok();
    let latency = Duration::from_secs_f64(latency_ms / 1000.0);
    for s in listener.incoming().flatten() {
        let b = b.clone();
        std::thread::spawn(move || {
            let _ = serve(s, &b, latency);
        });
    }
}
