//! `regsweep sweep` and `restore` against the real reference registry
//! (distribution 2.8.x) on its S3 driver over moto_server. Every test gets
//! its own moto, registry and bucket, so they run in parallel. Needs
//! `bash scripts/setup.sh`.

mod common;

use common::sweep::*;
use common::*;

/// (1)+(2): regsweep's `sweep -m --apply` keeps every tag pullable and leaves
/// nothing to reclaim; the reference `garbage-collect -m` on the same
/// scenario breaks a multi-arch tag.
#[test]
fn s3_sweep_m_keeps_every_tag_where_reference_gc_m_breaks_multiarch() {
    let (mut ours, mut theirs) = start_two(Backend::S3);
    std::thread::scope(|sc| {
        let t = sc.spawn(|| check_reference_gc_m_breaks_multiarch(&mut theirs));
        check_sweep_keeps_every_tag(&mut ours);
        let broken = t.join().unwrap();
        eprintln!("reference garbage-collect -m broke: {broken:#?}");
    });
}

/// (3) SIGKILL part-way, then run again with the same journal.
#[test]
fn s3_killed_sweep_run_again_finishes_and_journals_each_removal_once() {
    let mut e = Env::start(Backend::S3, SEED);
    check_killed_sweep_then_rerun(&mut e);
}

/// (4) The grace period, and a saved plan overtaken by a push.
#[test]
fn s3_grace_period_and_saved_plan_recheck_keep_new_data() {
    let mut e = Env::start(Backend::S3, SEED);
    check_grace_and_late_push(&mut e);
}

/// (5) Quarantine into another prefix of the same bucket, then restore:
/// the same keys with the same ETags and sizes.
#[test]
fn s3_quarantine_then_restore_is_identical() {
    let mut e = Env::start(Backend::S3, SEED);
    let qprefix = "regsweep/quarantine";
    let dest = format!("s3://{BUCKET}/{qprefix}");
    let strip = format!("bucket:{qprefix}/");
    check_quarantine_restore(&mut e, &dest, &|e: &Env| {
        e.content_snapshot()
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&strip).map(|r| (r.to_string(), v)))
            .collect()
    });
}
