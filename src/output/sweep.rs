//! `sweep`'s metrics: the plan, whether it was applied or refused, and what
//! was removed.

use super::metrics::{MetricError, Metrics};
use crate::plan::Plan;
use crate::sweep::SweepOutcome;

/// How a sweep run ended.
#[derive(Debug, Clone, Copy)]
pub enum SweepRun<'a> {
    /// Without `--apply`: the plan was printed.
    DryRun,
    /// `--apply` refused: problems make reachability uncertain.
    Refused,
    /// `--apply` carried out the plan.
    Applied(&'a SweepOutcome),
}

/// Adds a sweep's metrics. `regsweep_removed_bytes` and
/// `regsweep_removed_objects` are gauges of what this run removed (0 on a
/// dry run or a refusal): a run's value, not a count that accumulates.
pub fn add_metrics(m: &mut Metrics, plan: &Plan, run: SweepRun<'_>) -> Result<(), MetricError> {
    let s = &plan.summary;
    for (object, n) in [
        ("tag", s.tags),
        ("tag_history", s.tag_history),
        ("revision", s.revisions),
        ("layer_link", s.layer_links),
        ("upload", s.uploads),
        ("blob", s.blobs),
        ("repository", s.repositories),
    ] {
        m.gauge(
            "regsweep_sweep_planned_removals",
            "Removals in the sweep plan, by kind of object.",
            &[("object", object)],
            n as f64,
        )?;
    }
    m.gauge(
        "regsweep_sweep_planned_bytes",
        "Bytes the sweep plan frees (blobs and uploads).",
        &[],
        s.bytes as f64,
    )?;
    m.gauge(
        "regsweep_sweep_held",
        "Unreachable entries kept by the grace period or for lack of an age.",
        &[],
        s.held as f64,
    )?;
    m.gauge(
        "regsweep_sweep_applied",
        "1 when the sweep ran with --apply and carried out its plan.",
        &[],
        f64::from(u8::from(matches!(run, SweepRun::Applied(_)))),
    )?;
    m.gauge(
        "regsweep_sweep_refused",
        "1 when --apply was refused because problems make reachability uncertain.",
        &[],
        f64::from(u8::from(matches!(run, SweepRun::Refused))),
    )?;
    let (bytes, objects, failed) = match run {
        SweepRun::Applied(o) => (o.bytes, o.objects, o.failed.len()),
        _ => (0, 0, 0),
    };
    m.gauge(
        "regsweep_removed_bytes",
        "Bytes the last sweep removed (or moved to quarantine).",
        &[],
        bytes as f64,
    )?;
    m.gauge(
        "regsweep_removed_objects",
        "Objects the last sweep removed (or moved to quarantine).",
        &[],
        objects as f64,
    )?;
    m.gauge(
        "regsweep_sweep_failed_removals",
        "Removals of the last sweep that failed (see the journal).",
        &[],
        failed as f64,
    )
}
