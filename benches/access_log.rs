//! Criterion benchmark of the access-log reader: MB/s of uncompressed log
//! through `read_logs` (read, split into blocks, parse in parallel, fold
//! "last pulled" per repository and reference), on logs written by
//! `scripts/gen_access_log.py` (64 MiB each; `REGSWEEP_BENCH_LOG_MB` changes
//! that): the text formatter, the json formatter, and the text log gzipped.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::write::GzEncoder;
use regsweep::access_log::{read_logs, LogOptions, LogSource, LogStats, Pull};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

type LastPulled = HashMap<(String, String), SystemTime>;

/// Runs the generator; returns its summary line (bytes, lines, pulls, garbage).
fn generate(formatter: &str, mb: &str, out: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen_access_log.py");
    let o = Command::new("python3")
        .arg(script)
        .args(["--mb", mb, "--formatter", formatter, "--out"])
        .arg(out)
        .output()
        .expect("run python3 scripts/gen_access_log.py");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("generator summary")
}

fn last_pulled(src: &[LogSource]) -> (LastPulled, LogStats) {
    read_logs(
        src,
        &LogOptions::default(),
        LastPulled::new,
        |m: &mut LastPulled, p: &Pull<'_>| {
            let r = &p.request;
            let key = (r.repository.to_string(), r.reference.to_string());
            let t = m.entry(key).or_insert(r.time);
            *t = (*t).max(r.time);
        },
        |mut a, b| {
            for (k, t) in b {
                let e = a.entry(k).or_insert(t);
                *e = (*e).max(t);
            }
            a
        },
    )
    .expect("read the generated log")
}

fn bench(c: &mut Criterion) {
    let mb = std::env::var("REGSWEEP_BENCH_LOG_MB").unwrap_or_else(|_| "64".into());
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("access_log");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    for formatter in ["text", "json", "text-gzip"] {
        let base = formatter.trim_end_matches("-gzip");
        let path: PathBuf = dir.path().join(format!("{base}.log"));
        if !path.exists() {
            let summary = generate(base, &mb, &path);
            // The reader must find what the generator wrote.
            let (_, stats) = last_pulled(&[LogSource::Path(path.clone())]);
            assert_eq!(stats.pulls, summary["manifest_pulls"].as_u64().unwrap());
            assert_eq!(stats.not_understood, summary["garbage"].as_u64().unwrap());
            assert_eq!(stats.sources[0].lines, summary["lines"].as_u64().unwrap());
        }
        let bytes = std::fs::metadata(&path).unwrap().len();
        let src = if formatter.ends_with("-gzip") {
            let gz = dir.path().join(format!("{base}.log.gz"));
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&std::fs::read(&path).unwrap()).unwrap();
            std::fs::write(&gz, e.finish().unwrap()).unwrap();
            gz
        } else {
            path
        };
        let src = [LogSource::Path(src)];
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(formatter, |b| b.iter(|| last_pulled(&src).0.len()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
