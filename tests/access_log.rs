//! The access-log reader against the real registry's output: the reference
//! registry (filesystem backend) is restarted with `log.level: info` and
//! the `text`, then the `json` formatter, its stdout+stderr going to a file;
//! two tags and one digest are pulled with `skopeo inspect --raw`; the
//! registry is stopped and `read_logs` must find exactly those pulls (in the
//! app log and in the access log), with times within the test's window,
//! and every line of the file understood. The same log gzip-compressed
//! gives the same answer; a garbled line appended is counted, not fatal.

mod common;

use common::*;
use flate2::write::GzEncoder;
use regsweep::access_log::{read_logs, Format, LogOptions, LogSource, LogStats, Pull};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// (repository, reference, format) → times seen.
type Seen = BTreeMap<(String, String, Format), Vec<SystemTime>>;

fn pulls(path: &Path) -> (Seen, LogStats) {
    read_logs(
        &[LogSource::Path(path.to_path_buf())],
        &LogOptions::default(),
        Seen::new,
        |m: &mut Seen, p: &Pull<'_>| {
            let r = &p.request;
            m.entry((r.repository.to_string(), r.reference.to_string(), r.format))
                .or_default()
                .push(r.time);
        },
        |mut a, b| {
            for (k, v) in b {
                a.entry(k).or_default().extend(v);
            }
            a
        },
    )
    .unwrap_or_else(|e| panic!("read_logs {}: {e}", path.display()))
}

fn skopeo_inspect(port: u16, image: &str) {
    let o = run(
        Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://127.0.0.1:{port}/{image}"),
        ]),
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "skopeo inspect {image}: {}", o.stderr);
}

fn check_formatter(e: &mut Env, formatter: &str, app_format: Format) {
    let log: PathBuf =
        e.restart_registry_with_log(&format!("log:\n  level: info\n  formatter: {formatter}\n"));
    // Two tags (one in a nested repository) and one digest of a third image.
    let tags = e.tags();
    let nested = tags.iter().find(|t| t.0.contains('/')).unwrap().clone();
    let flat = tags.iter().find(|t| !t.0.contains('/')).unwrap().clone();
    let by_digest = tags
        .iter()
        .find(|t| t.2 != nested.2 && t.2 != flat.2)
        .unwrap()
        .clone();
    // The access log has whole seconds: the window is widened to them.
    let start = SystemTime::now() - Duration::from_secs(1);
    skopeo_inspect(e.port, &format!("{}:{}", nested.0, nested.1));
    skopeo_inspect(e.port, &format!("{}:{}", flat.0, flat.1));
    skopeo_inspect(e.port, &format!("{}@{}", by_digest.0, by_digest.2));
    let end = SystemTime::now() + Duration::from_secs(1);
    e.stop_registry();
    // The harness' `sh` wrapper reports the kill ("Terminated") in the same
    // file: that line is not the registry's.
    let text = std::fs::read_to_string(&log).unwrap();
    if let Some(kept) = text.strip_suffix("Terminated\n") {
        std::fs::write(&log, kept).unwrap();
    }

    let (seen, stats) = pulls(&log);
    let mut want = Vec::new();
    for (repo, reference) in [
        (&nested.0, &nested.1),
        (&flat.0, &flat.1),
        (&by_digest.0, &by_digest.2),
    ] {
        for f in [app_format, Format::Combined] {
            want.push((repo.clone(), reference.clone(), f));
        }
    }
    want.sort();
    let got: Vec<_> = seen.keys().cloned().collect();
    assert_eq!(got, want, "{formatter}: pulls found in {}", log.display());
    for (k, times) in &seen {
        for t in times {
            assert!(
                *t >= start && *t <= end,
                "{formatter}: {k:?} at {t:?} is outside the test's window"
            );
        }
    }
    // Each request is on both streams, once each.
    for ((repo, reference, f), times) in &seen {
        if *f == app_format {
            let access = &seen[&(repo.clone(), reference.clone(), Format::Combined)];
            assert_eq!(times.len(), access.len(), "{repo}:{reference}");
        }
    }
    let lines = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    assert_eq!(stats.sources[0].lines, lines);
    assert_eq!(
        stats.not_understood, 0,
        "{formatter}: the real registry printed a line not understood: {:?}",
        stats.first_not_understood
    );
    assert_eq!(
        stats.pulls,
        seen.values().map(|v| v.len() as u64).sum::<u64>()
    );

    // The same log gzip-compressed.
    let gz = log.with_extension("log.gz");
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&std::fs::read(&log).unwrap()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let (seen_gz, stats_gz) = pulls(&gz);
    assert_eq!(seen_gz, seen, "{formatter}: gzip");
    assert!(stats_gz.sources[0].gzip);
    assert_eq!(stats_gz.sources[0].bytes, stats.sources[0].bytes);

    // A garbled line appended: counted and reported, the rest unchanged.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"\x00\x01 garbled {line\n").unwrap();
    drop(f);
    let (seen_bad, stats_bad) = pulls(&log);
    assert_eq!(seen_bad, seen, "{formatter}: with a garbled line");
    assert_eq!(stats_bad.not_understood, 1);
    let bad = stats_bad.first_not_understood.unwrap();
    assert_eq!(bad.line_number, lines + 1);
    assert!(bad.text.contains("garbled {line"), "{}", bad.text);
}

#[test]
fn read_logs_finds_the_pulls_in_the_real_registry_output() {
    let mut e = Env::start(Backend::Fs, SEED);
    check_formatter(&mut e, "text", Format::Text);
    check_formatter(&mut e, "json", Format::Json);
}
