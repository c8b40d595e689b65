//! Replays the fuzzers' inputs on stable: every file in
//! `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` is handed to the
//! function of `regsweep::untrusted` that the fuzz target `<target>` calls,
//! which must return (an input it refuses is fine; a panic is not). Every
//! target in `fuzz/fuzz_targets/` must have seeds and a function here, so
//! a target added without them fails. `scripts/fuzz.sh` does the fuzzing
//! and adds what crashed to `fuzz/regressions/`.
//!
//! Besides, damaged copies of a Parquet data file that regsweep writes must
//! read to an error naming the file.

use regsweep::untrusted;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The function each fuzz target calls.
fn function(target: &str) -> Option<fn(&[u8])> {
    Some(match target {
        "manifest" => untrusted::manifest,
        "conservative_refs" => untrusted::conservative_refs,
        "image_config" => untrusted::image_config,
        "link" => untrusted::link,
        "log_line" => untrusted::log_line,
        "log_file" => untrusted::log_file,
        "policy" => untrusted::policy,
        "registry_config" => untrusted::registry_config,
        "s3_manifest" => untrusted::s3_manifest,
        "s3_csv" => untrusted::s3_csv,
        "parquet" => untrusted::parquet,
        "saved_plan" => untrusted::saved_plan,
        "journal" => untrusted::journal,
        "inventory" => untrusted::inventory,
        _ => return None,
    })
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The fuzz targets: the names of `fuzz/fuzz_targets/*.rs`.
fn targets() -> Vec<String> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The files directly in `dir` (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// The text of a panic's payload.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

#[test]
fn every_target_has_seeds_and_a_function() {
    let targets = targets();
    assert!(!targets.is_empty(), "no fuzz targets found");
    for t in &targets {
        assert!(
            function(t).is_some(),
            "fuzz target {t} has no function in tests/fuzz_replay.rs"
        );
        let seeds = fuzz_dir().join("seeds").join(t);
        assert!(
            !files(&seeds).is_empty(),
            "fuzz target {t} has no seeds: add a few real files to {}",
            seeds.display()
        );
    }
    // And no seeds or regressions of a target that is gone.
    for kind in ["seeds", "regressions"] {
        for d in files_and_dirs(&fuzz_dir().join(kind)) {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                targets.contains(&name),
                "{}: no fuzz target {name}",
                d.display()
            );
        }
    }
}

fn files_and_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn seeds_and_regressions_do_not_panic() {
    let mut failed = Vec::new();
    let mut replayed = 0;
    for t in targets() {
        let Some(f) = function(&t) else { continue };
        for kind in ["seeds", "regressions"] {
            for path in files(&fuzz_dir().join(kind).join(&t)) {
                let data = std::fs::read(&path).unwrap();
                replayed += 1;
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(&data))) {
                    failed.push(format!("{t}: {}: {}", path.display(), message(&*p)));
                }
            }
        }
    }
    assert!(replayed > 0);
    assert!(
        failed.is_empty(),
        "{} of {replayed} inputs panicked:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn damaged_parquet_files_are_errors() {
    use regsweep::s3_inventory::{index::Part, parquet, Rows};
    let rows: Vec<(String, u64, i64)> = (0..3)
        .map(|i| {
            (
                format!("r/docker/registry/v2/blobs/sha256/0{i}/0{i}/data"),
                100 + i,
                1_700_000_000_000 + i as i64,
            )
        })
        .collect();
    let good = parquet::write("registry", &rows, true);
    let read = |bytes: Vec<u8>| {
        let mut part = Part::default();
        let r = parquet::read(
            bytes::Bytes::from(bytes),
            &mut Rows::new("r/docker/registry/v2/", &mut part),
            "d.parquet",
        );
        r.map(|()| part.finish().len())
    };
    assert_eq!(read(good.clone()).unwrap(), 3);
    let mut damaged: Vec<(String, Vec<u8>)> = Vec::new();
    for n in 0..good.len() {
        damaged.push((format!("cut to {n} bytes"), good[..n].to_vec()));
    }
    for i in 0..good.len() {
        for x in [0x01, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] ^= x;
            damaged.push((format!("byte {i} ^ {x:#04x}"), b));
        }
    }
    let mut panicked = Vec::new();
    for (what, bytes) in damaged {
        match catch_unwind(AssertUnwindSafe(|| read(bytes))) {
            Err(p) => panicked.push(format!("{what}: {}", message(&*p))),
            Ok(Err(e)) => {
                let e = e.to_string();
                assert!(e.starts_with("d.parquet: "), "{what}: {e}");
            }
            // A damaged byte the format does not notice (a value, a
            // statistic) still reads.
            Ok(Ok(_)) => {}
        }
    }
    assert!(
        panicked.is_empty(),
        "{} damaged files panicked:\n{}",
        panicked.len(),
        panicked.join("\n")
    );
}
