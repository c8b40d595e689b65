//! Unit tests of the access-log reader: the line formats (lines copied from
//! a real distribution 2.8.2 registry's output, plus edge cases) and the
//! block reader (gzip, block boundaries, errors, counts).

use super::*;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::time::SystemTime;

const TEXT_HEAD: &str = r#"time="2026-12-03T07:42:33.954309628Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:5911" http.request.id=904884c0-5728-49ea-b0c4-54c12891a38b http.request.method=HEAD http.request.remoteaddr="127.0.0.1:37760" http.request.uri=/v2/a/manifests/v1 http.request.useragent=curl/7.88.1 http.response.contenttype=application/vnd.oci.image.manifest.v1+json http.response.duration=1.197651ms http.response.status=200 http.response.written=703"#;
const TEXT_DIGEST: &str = r#"time="2026-12-03T07:42:33.897697321Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:5911" http.request.id=30a92972-831e-46ab-a02c-4f6c5c3c81d0 http.request.method=GET http.request.remoteaddr="127.0.0.1:37716" http.request.uri="/v2/a/manifests/sha256:00dac6a2cd953576ccba6afc4339005870ccf79e83421e5bca03002a1f968dfc" http.request.useragent=skopeo/1.9.3 http.response.contenttype=application/vnd.oci.image.manifest.v1+json http.response.duration=1.981301ms http.response.status=200 http.response.written=703"#;
const TEXT_404: &str = r#"time="2026-12-03T07:44:02.818861781Z" level=error msg="response completed with error" err.code="manifest unknown" err.message="OCI manifest found, but accept header does not support OCI manifests" go.version=go1.19.8 http.request.host="127.0.0.1:5911" http.request.id=27be5039-eebd-47d7-b202-fdc9bd112c2f http.request.method=GET http.request.remoteaddr="127.0.0.1:37178" http.request.uri="/v2/team%2Da/svc/api/manifests/1.0" http.request.useragent=curl/7.88.1 http.response.contenttype="application/json; charset=utf-8" http.response.duration=2.836764ms http.response.status=404 http.response.written=122 vars.name=team-a/svc/api vars.reference=1.0"#;
const TEXT_PUT: &str = r#"time="2026-12-03T07:42:22.477645967Z" level=info msg="response completed" go.version=go1.19.8 http.request.contenttype=application/vnd.oci.image.manifest.v1+json http.request.host="127.0.0.1:5911" http.request.id=c5e9c855-287f-4b23-8894-7eea8e020fd6 http.request.method=PUT http.request.remoteaddr="127.0.0.1:37404" http.request.uri=/v2/a/manifests/v1 http.request.useragent=Python-urllib/3.11 http.response.duration=45.054772ms http.response.status=201 http.response.written=0"#;
const TEXT_304: &str = r#"time="2026-12-03T07:44:02.807173787Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:5911" http.request.id=dd93c5ee-9c7f-45ba-aa48-29453d5e5b3a http.request.method=GET http.request.remoteaddr="127.0.0.1:37168" http.request.uri=/v2/a/manifests/v1 http.request.useragent=curl/7.88.1 http.response.duration=2.920437ms http.response.status=304 http.response.written=0"#;
const TEXT_BLOB: &str = r#"time="2026-12-03T07:42:33.925787422Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:5911" http.request.id=fa0e7558-bbc3-4fa8-94bd-ade65f1ef222 http.request.method=GET http.request.remoteaddr="127.0.0.1:37724" http.request.uri="/v2/a/blobs/sha256:d06b36487bc243d4c06170f58e5e7cf31198ade613a096aba33970d526826d2f" http.request.useragent=skopeo/1.9.3 http.response.contenttype=application/octet-stream http.response.duration=27.163913ms http.response.status=200 http.response.written=326"#;
const TEXT_STARTUP: &str = r#"time="2026-12-03T07:42:17.463749088Z" level=info msg="listening on 127.0.0.1:5911" go.version=go1.19.8 instance.id=699b7cc2-43a7-4d7e-95a1-2630d5cd51c3 version=2.8.2+ds1"#;
const JSON_HEAD: &str = r#"{"go.version":"go1.19.8","http.request.host":"127.0.0.1:5912","http.request.id":"bda31337-4a66-495f-8713-eb8a592ec4d9","http.request.method":"HEAD","http.request.remoteaddr":"127.0.0.1:44580","http.request.uri":"/v2/a/manifests/v1","http.request.useragent":"curl/7.88.1","http.response.contenttype":"application/vnd.oci.image.manifest.v1+json","http.response.duration":"1.342897ms","http.response.status":200,"http.response.written":703,"level":"info","msg":"response completed","time":"2026-12-03T07:42:34.07640774Z"}"#;
const JSON_404: &str = r#"{"err.code":"manifest unknown","err.detail":"unknown tag=nope","err.message":"manifest unknown","go.version":"go1.19.8","http.request.host":"127.0.0.1:5912","http.request.id":"6ef1821d-70fa-4ea0-a5f1-88cb38eb2a09","http.request.method":"GET","http.request.remoteaddr":"127.0.0.1:44596","http.request.uri":"/v2/a/manifests/nope?x=1","http.request.useragent":"curl/7.88.1","http.response.contenttype":"application/json; charset=utf-8","http.response.duration":"1.106942ms","http.response.status":404,"http.response.written":94,"level":"error","msg":"response completed with error","time":"2026-12-03T07:42:34.101906034Z","vars.name":"a","vars.reference":"nope"}"#;
const LOGSTASH_HEAD: &str = r#"{"@timestamp":"2026-12-03T07:42:34.222343341Z","@version":"1","go.version":"go1.19.8","http.request.host":"127.0.0.1:5913","http.request.id":"9550a460-c4ff-4f08-9d69-e0c1f1f4d7f9","http.request.method":"HEAD","http.request.remoteaddr":"127.0.0.1:53994","http.request.uri":"/v2/a/manifests/v1","http.request.useragent":"curl/7.88.1","http.response.contenttype":"application/vnd.oci.image.manifest.v1+json","http.response.duration":"1.767787ms","http.response.status":200,"http.response.written":703,"level":"info","message":"response completed"}"#;
const COMBINED_DIGEST: &str = r#"127.0.0.1 - - [03/Dec/2026:07:42:33 +0000] "GET /v2/a/manifests/sha256:00dac6a2cd953576ccba6afc4339005870ccf79e83421e5bca03002a1f968dfc HTTP/1.1" 200 703 "" "skopeo/1.9.3""#;
const COMBINED_404: &str = r#"127.0.0.1 - - [03/Dec/2026:07:42:33 +0000] "GET /v2/a/manifests/nope?x=1 HTTP/1.1" 404 94 "" "curl/7.88.1""#;
const COMBINED_TAGS: &str = r#"127.0.0.1 - - [03/Dec/2026:07:42:33 +0000] "GET /v2/a/tags/list HTTP/1.1" 200 27 "" "skopeo/1.9.3""#;
const DIGEST: &str = "sha256:00dac6a2cd953576ccba6afc4339005870ccf79e83421e5bca03002a1f968dfc";

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

fn request(line: &str) -> ManifestRequest<'_> {
    match parse_line(line.as_bytes()) {
        Line::Request(r) => r,
        other => panic!("not a request ({other:?}): {line}"),
    }
}

#[test]
fn text_head_by_tag() {
    let r = request(TEXT_HEAD);
    assert_eq!(r.format, Format::Text);
    assert_eq!(r.method, Method::Head);
    assert_eq!((&*r.repository, &*r.reference), ("a", "v1"));
    assert_eq!(r.status, 200);
    assert_eq!(r.user_agent.as_deref(), Some("curl/7.88.1"));
    assert_eq!(r.time, at("2026-12-03T07:42:33.954309628Z"));
    assert!(r.is_pull());
    assert!(!r.by_digest());
    assert_eq!(r.line, TEXT_HEAD);
}

#[test]
fn text_get_by_digest_quoted_uri() {
    let r = request(TEXT_DIGEST);
    assert_eq!(r.method, Method::Get);
    assert_eq!((&*r.repository, &*r.reference), ("a", DIGEST));
    assert!(r.by_digest() && r.is_pull());
    assert_eq!(r.user_agent.as_deref(), Some("skopeo/1.9.3"));
    // Nothing escaped: nothing copied.
    assert!(matches!(r.repository, Cow::Borrowed(_)));
    assert!(matches!(r.reference, Cow::Borrowed(_)));
}

#[test]
fn text_escapes_are_decoded() {
    let line = r#"time="2026-01-02T03:04:05.5+01:00" level=info msg="response completed" http.request.method=GET http.request.uri="/v2/x/y/manifests/latest" http.request.useragent="Mozilla \"quoted\" a\\b \u00e9\x41" http.response.status=200"#;
    let r = request(line);
    assert_eq!(
        r.user_agent.as_deref(),
        Some("Mozilla \"quoted\" a\\b \u{e9}A")
    );
    assert_eq!((&*r.repository, &*r.reference), ("x/y", "latest"));
    // The offset is honoured: 03:04:05.5+01:00 is 02:04:05.5 UTC.
    assert_eq!(r.time, at("2026-01-02T02:04:05.500000000Z"));
}

#[test]
fn json_and_logstash() {
    let r = request(JSON_HEAD);
    assert_eq!(r.format, Format::Json);
    assert_eq!(r.method, Method::Head);
    assert_eq!((&*r.repository, &*r.reference, r.status), ("a", "v1", 200));
    assert_eq!(r.time, at("2026-12-03T07:42:34.07640774Z"));
    assert!(r.is_pull());

    let r = request(LOGSTASH_HEAD);
    assert_eq!(r.format, Format::Logstash);
    assert_eq!(r.time, at("2026-12-03T07:42:34.222343341Z"));
    assert_eq!(r.user_agent.as_deref(), Some("curl/7.88.1"));
    assert!(r.is_pull());

    let r = request(JSON_404);
    assert_eq!(
        (&*r.repository, &*r.reference, r.status),
        ("a", "nope", 404)
    );
    assert!(!r.is_pull());
}

#[test]
fn combined_access_log() {
    let r = request(COMBINED_DIGEST);
    assert_eq!(r.format, Format::Combined);
    assert_eq!((&*r.repository, &*r.reference), ("a", DIGEST));
    assert_eq!(r.time, at("2026-12-03T07:42:33Z"));
    assert_eq!(r.user_agent.as_deref(), Some("skopeo/1.9.3"));
    assert!(r.is_pull());

    let r = request(COMBINED_404);
    assert_eq!((&*r.reference, r.status), ("nope", 404));
    assert!(!r.is_pull());

    // Common format (no referer/agent), a user, a zone offset, HEAD.
    let r = request(
        r#"::1 - alice [03/Dec/2026:08:42:33 +0100] "HEAD /v2/lib/x/manifests/1 HTTP/1.1" 200 -"#,
    );
    assert_eq!(r.method, Method::Head);
    assert_eq!(r.time, at("2026-12-03T07:42:33Z"));
    assert_eq!(r.user_agent, None);
    assert!(r.is_pull());
    assert_eq!(parse_line(COMBINED_TAGS.as_bytes()), Line::Other);
}

#[test]
fn statuses_and_methods_that_are_not_pulls() {
    let r = request(TEXT_404);
    assert_eq!((&*r.repository, &*r.reference), ("team-a/svc/api", "1.0"));
    assert!(!r.is_pull());
    let r = request(TEXT_PUT);
    assert_eq!((r.method, r.status), (Method::Put, 201));
    assert!(!r.is_pull());
    // A 304 answers a conditional GET of a manifest the client had: a use.
    assert!(request(TEXT_304).is_pull());
    let del = COMBINED_DIGEST
        .replace("\"GET ", "\"DELETE ")
        .replace(" 200 703", " 202 0");
    assert!(!request(&del).is_pull());
}

#[test]
fn names_with_slashes_escapes_and_queries() {
    let line = |uri: &str| {
        format!(r#"10.0.0.1 - - [03/Dec/2026:07:42:33 +0000] "GET {uri} HTTP/1.1" 200 1 "" "c""#)
    };
    let l = line("/v2/team%2Da/svc/api/manifests/1.0?ns=docker.io#x");
    let r = request(&l);
    assert_eq!((&*r.repository, &*r.reference), ("team-a/svc/api", "1.0"));
    // A repository may have a path component named "manifests".
    let l = line("/v2/x/manifests/y/manifests/v1");
    let r = request(&l);
    assert_eq!((&*r.repository, &*r.reference), ("x/manifests/y", "v1"));
    let l = line("http://reg.example:5000/v2/abs/manifests/v2");
    assert_eq!(&*request(&l).repository, "abs");
    for other in [
        "/v2/x/manifests/blobs/sha256:ab",
        "/v2/x/manifests/",
        "/v2//manifests/v1",
        "/v1/x/manifests/v1",
        "/v2/x/blobs/uploads/?from=manifests/",
    ] {
        assert_eq!(parse_line(line(other).as_bytes()), Line::Other, "{other}");
    }
}

#[test]
fn other_blank_and_not_understood_lines() {
    for other in [
        TEXT_BLOB,
        TEXT_STARTUP,
        r#"time="2026-12-03T07:42:17Z" level=warning msg="No HTTP secret provided - generated random secret" go.version=go1.19.8"#,
        r#"time="2026-12-03T07:42:17Z" level=info msg="authorized request" http.request.uri=/v2/a/manifests/v1 http.request.method=GET"#,
        r#"{"level":"info","msg":"listening on 127.0.0.1:5000","time":"2026-12-03T07:42:17Z"}"#,
        COMBINED_TAGS,
        r#"{"level":"info","http.request.uri":"/v2/a/manifests/v1","time":"2026-12-03T07:42:17Z"}"#,
        r#"time="2026-12-03T07:42:17Z" level=info http.request.uri=/v2/a/manifests/v1"#,
    ] {
        assert_eq!(parse_line(other.as_bytes()), Line::Other, "{other}");
    }
    for blank in ["", "   ", "\r", "\t \r"] {
        assert_eq!(parse_line(blank.as_bytes()), Line::Blank);
    }
    for bad in [
        "panic: runtime error: invalid memory address or nil pointer dereference",
        "goroutine 1 [running]:",
        "\tgithub.com/docker/distribution/registry.(*Registry).ListenAndServe()",
        r#"{"msg":"response completed","http.request.uri":"/v2/a/manifests/v1""#,
        r#"{"msg":"response completed","http.request.uri":"/v2/a/manifests/v1","time":12}"#,
        r#"time="2026-12-03T07:42:33Z" msg="response completed" http.request.uri="/v2/a/manifests/v1 unterminated"#,
        r#"time="not a time" msg="response completed" http.request.method=GET http.request.uri=/v2/a/manifests/v1 http.response.status=200"#,
        r#"127.0.0.1 - - [03/Dec/2026:07:42:33 +0000] "GET /v2/a/manifests/v1 HTTP/1.1" OK 1"#,
        "\u{0}\u{1}garbage",
    ] {
        assert_eq!(parse_line(bad.as_bytes()), Line::NotUnderstood, "{bad}");
    }
    assert_eq!(parse_line(b"\xff\xfe time="), Line::NotUnderstood);
}

// ------------------------------------------------------------ reading ----

/// A log mixing every kind of line; returns it and the pulls it holds as
/// (line number, repository, reference, format).
fn mixed_log() -> (String, Vec<(u64, String, String, Format)>) {
    let lines = [
        TEXT_STARTUP,
        TEXT_HEAD,
        "",
        COMBINED_DIGEST,
        TEXT_PUT,
        "garbage line one",
        JSON_HEAD,
        TEXT_BLOB,
        TEXT_404,
        COMBINED_404,
        LOGSTASH_HEAD,
        "goroutine 7 [running]:",
        TEXT_304,
        TEXT_DIGEST,
    ];
    let mut log = String::new();
    for _ in 0..3 {
        for l in lines {
            log.push_str(l);
            log.push('\n');
        }
    }
    log.push_str(TEXT_HEAD); // the last line has no newline
    let mut want = Vec::new();
    for (i, l) in log.lines().enumerate() {
        if let Line::Request(r) = parse_line(l.as_bytes()) {
            if r.is_pull() {
                want.push((
                    i as u64 + 1,
                    r.repository.to_string(),
                    r.reference.to_string(),
                    r.format,
                ));
            }
        }
    }
    (log, want)
}

type Found = Vec<(usize, u64, String, String, Format)>;

fn collect(sources: &[LogSource], opts: &LogOptions) -> Result<(Found, LogStats), LogError> {
    let (mut v, stats) = read_logs(
        sources,
        opts,
        Vec::new,
        |v: &mut Found, p| {
            v.push((
                p.source,
                p.line_number,
                p.request.repository.to_string(),
                p.request.reference.to_string(),
                p.request.format,
            ))
        },
        |mut a, b| {
            a.extend(b);
            a
        },
    )?;
    v.sort();
    Ok((v, stats))
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> LogSource {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    LogSource::Path(p)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn reads_a_mixed_log_with_counts_and_the_first_bad_line() {
    let (log, want) = mixed_log();
    let dir = tempfile::tempdir().unwrap();
    let src = write(&dir, "registry.log", log.as_bytes());
    let (got, stats) = collect(&[src], &LogOptions::default()).unwrap();
    let want: Found = want
        .into_iter()
        .map(|(l, r, t, f)| (0, l, r, t, f))
        .collect();
    assert_eq!(got, want);
    // Per round: TEXT_HEAD, COMBINED_DIGEST, JSON_HEAD, LOGSTASH_HEAD,
    // TEXT_304, TEXT_DIGEST are pulls; PUT and the two 404s are not.
    assert_eq!(stats.pulls, 3 * 6 + 1);
    assert_eq!(stats.not_pulls, 3 * 3);
    assert_eq!(stats.not_understood, 3 * 2);
    let bad = stats.first_not_understood.unwrap();
    assert_eq!(
        (bad.line_number, bad.text.as_str()),
        (6, "garbage line one")
    );
    assert!(bad.source.ends_with("registry.log"), "{}", bad.source);
    assert_eq!(stats.sources.len(), 1);
    assert_eq!(stats.sources[0].bytes, log.len() as u64);
    assert_eq!(stats.sources[0].lines, log.lines().count() as u64);
    assert!(!stats.sources[0].gzip);
}

#[test]
fn block_boundaries_inside_lines_change_nothing() {
    let (log, _) = mixed_log();
    let dir = tempfile::tempdir().unwrap();
    let src = [write(&dir, "r.log", log.as_bytes())];
    let reference = collect(&src, &LogOptions::default()).unwrap();
    for block_size in [1, 7, 64, 200, 333, 1000, 4096] {
        let opts = LogOptions {
            block_size,
            ..LogOptions::default()
        };
        let got = collect(&src, &opts).unwrap();
        assert_eq!(got, reference, "block size {block_size}");
    }
}

#[test]
fn gzip_is_read_transparently_also_concatenated_members() {
    let (log, _) = mixed_log();
    let dir = tempfile::tempdir().unwrap();
    let plain = [write(&dir, "r.log", log.as_bytes())];
    let (want, want_stats) = collect(&plain, &LogOptions::default()).unwrap();
    // Two gzip members back to back (what `gzip -c >> log.gz` makes), and a
    // name without .gz: detected by its magic bytes.
    let (a, b) = log.split_at(log.len() / 2);
    let mut gz = gzip(a.as_bytes());
    gz.extend(gzip(b.as_bytes()));
    let opts = LogOptions {
        block_size: 100,
        ..LogOptions::default()
    };
    for name in ["r.log.gz", "r.log.1"] {
        let (got, stats) = collect(&[write(&dir, name, &gz)], &opts).unwrap();
        assert_eq!(got, want);
        assert_eq!(stats.sources[0].bytes, want_stats.sources[0].bytes);
        assert_eq!(stats.sources[0].lines, want_stats.sources[0].lines);
        assert!(stats.sources[0].gzip);
    }
}

#[test]
fn corrupt_or_truncated_gzip_is_an_error_naming_the_file() {
    let (log, _) = mixed_log();
    let dir = tempfile::tempdir().unwrap();
    let gz = gzip(log.as_bytes());
    let mut corrupt = gz.clone();
    for b in &mut corrupt[20..60] {
        *b ^= 0x5a;
    }
    let truncated = &gz[..gz.len() / 2];
    for (name, bytes) in [("corrupt.gz", &corrupt[..]), ("truncated.gz", truncated)] {
        let err = collect(&[write(&dir, name, bytes)], &LogOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LogError::Gzip { .. }), "{name}: {msg}");
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(&dir, "ok.log", TEXT_HEAD.as_bytes());
    let missing = LogSource::Path(dir.path().join("nope.log"));
    let err = collect(&[ok, missing], &LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Open { .. }));
    assert!(err.to_string().contains("nope.log"), "{err}");
    // The cause is printed once: in the message, not again as the source.
    assert!(std::error::Error::source(&err).is_none());
}

#[test]
fn several_sources_and_user_agent_filter() {
    let dir = tempfile::tempdir().unwrap();
    let one = write(
        &dir,
        "one.log",
        format!("{TEXT_HEAD}\n{TEXT_DIGEST}\n").as_bytes(),
    );
    let two = write(
        &dir,
        "two.log.gz",
        &gzip(format!("x\n{COMBINED_DIGEST}\n").as_bytes()),
    );
    let opts = LogOptions {
        ignore_user_agent: Some(regex::Regex::new("^curl/").unwrap()),
        ..LogOptions::default()
    };
    let (got, stats) = collect(&[one, two], &opts).unwrap();
    let want: Found = vec![
        (0, 2, "a".into(), DIGEST.into(), Format::Text),
        (1, 2, "a".into(), DIGEST.into(), Format::Combined),
    ];
    assert_eq!(got, want);
    assert_eq!((stats.pulls, stats.dropped_by_user_agent), (2, 1));
    assert_eq!(stats.sources[1].lines, 2);
    assert!(stats.sources[1].gzip && !stats.sources[0].gzip);
    let bad = stats.first_not_understood.unwrap();
    assert!(bad.source.ends_with("two.log.gz") && bad.line_number == 1);
}

#[test]
fn an_over_long_line_is_counted_and_cut() {
    let long = "z".repeat(5000);
    let log = format!("{TEXT_HEAD}\n{long}\n{TEXT_DIGEST}\n{long}");
    let dir = tempfile::tempdir().unwrap();
    let src = [write(&dir, "long.log", log.as_bytes())];
    for (block_size, max_line) in [(64, 1000), (1000, 1000), (4 << 20, 1 << 20)] {
        let opts = LogOptions {
            block_size,
            max_line,
            ..LogOptions::default()
        };
        let (got, stats) = collect(&src, &opts).unwrap();
        assert_eq!(got.len(), 2, "{block_size}/{max_line}");
        assert_eq!(got[1].1, 3);
        assert_eq!(stats.not_understood, 2);
        assert_eq!(stats.sources[0].lines, 4);
        assert_eq!(stats.sources[0].bytes, log.len() as u64);
        let bad = stats.first_not_understood.unwrap();
        assert_eq!(bad.line_number, 2);
        assert!(bad.text.chars().count() <= 201, "{}", bad.text.len());
        assert!(bad.text.ends_with('…'));
    }
}
