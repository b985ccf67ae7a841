//! Whether a measured pipeline can be believed: every figure against what physics allows (a
//! stage cannot start before the stage it depends on has ended, nor run much faster than it
//! does alone on the same SMs; elements of equal SMs run the model alike; a stressor cannot
//! speed a model up) and against an independent timer (the host saw each batch dispatched
//! before its first stage started and completed after its last stage ended, on one clock).

use serde::Serialize;

use super::{MeasuredPipeline, MeasuredRun};
use crate::pipeline::Policy;

/// Largest clock-map uncertainty a run may have, ns: beyond it the host and GPU times of a
/// batch cannot be compared at the scale of a stage.
pub const MAX_CLOCK_UNCERTAINTY_NS: i64 = 20_000;
/// How far the elements' solo spans may differ from their median (equal SMs, same model).
pub const ELEMENT_SPREAD: f64 = 0.05;
/// A stage may not run faster than this share of its solo time on its element.
pub const FASTEST_STAGE: f64 = 0.8;
/// How near the stressor's stamped launches must come to its episode's ends, ns.
pub const STRESS_EDGE_NS: i64 = 5_000_000;
/// A stressed model may not be faster than this share of its solo span.
pub const STRESSED_AT_LEAST: f64 = 0.97;
/// Most an element may be slowed by its busy neighbours alone in the unstressed pipeline
/// (1.04-1.25x measured on an H100): beyond it something else shares the GPU, and the
/// policies' basis would hide interference.
pub const NEIGHBOURS_AT_MOST: f64 = 1.5;

/// VALID, or INVALID with each reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_valid() {
            return write!(f, "VALID");
        }
        write!(f, "INVALID: {}", self.problems.join("; "))
    }
}

/// Judges the profiles and every run.
pub fn judge(m: &MeasuredPipeline) -> Verdict {
    let mut problems = Vec::new();
    let spans: Vec<f64> = m.profiles.iter().map(|p| p.span_us).collect();
    let median = coloc_kernels::stats::median_of(&spans);
    for p in &m.profiles {
        if (p.span_us / median - 1.0).abs() > ELEMENT_SPREAD {
            problems.push(format!(
                "element {} ({} SMs) runs the model in {:.1} us alone, {:.1}% from the elements' median {:.1} us: elements of equal SMs must agree within {:.0}% (another process on the GPU?)",
                p.element,
                p.granted_sms,
                p.span_us,
                100.0 * (p.span_us / median - 1.0),
                median,
                100.0 * ELEMENT_SPREAD
            ));
        }
    }
    if let Some(solo) = m.profiles.iter().find(|p| p.element == m.stressed.element) {
        if m.stressed.span_us < STRESSED_AT_LEAST * solo.span_us {
            problems.push(format!(
                "element {} runs the model in {:.1} us beside the stressor and {:.1} us alone: a stressor cannot make it faster",
                solo.element, m.stressed.span_us, solo.span_us
            ));
        }
    }
    judge_unstressed(m, &mut problems);
    judge_run(m, &m.unstressed, false, &mut problems);
    for run in &m.runs {
        judge_run(m, run, true, &mut problems);
    }
    Verdict { problems }
}

/// The unstressed run is the balanced pipeline, unchanged, on at least two windows of batches
/// that all arrived before the episode, and the basis it gives is within what neighbours can do.
fn judge_unstressed(m: &MeasuredPipeline, problems: &mut Vec<String>) {
    let u = &m.unstressed;
    if u.policy != Policy::Static || u.layouts.len() != 1 || !u.responses.is_empty() {
        problems.push(format!(
            "the unstressed pipeline ran {} with {} layouts and {} responses: it must be static, one layout",
            u.policy.name(),
            u.layouts.len(),
            u.responses.len()
        ));
    }
    let late = u.batches.iter().filter(|b| b.arrival_ns >= m.stress.from_ns()).count();
    if late > 0 {
        problems
            .push(format!("the unstressed pipeline has {late} batches that arrived in the stress episode or after"));
    }
    if u.batches.len() < 2 * m.params.window {
        problems.push(format!(
            "the unstressed pipeline ran {} batches, fewer than two windows ({})",
            u.batches.len(),
            2 * m.params.window
        ));
    }
    match m.basis() {
        Ok(basis) => {
            for (e, b) in basis.into_iter().enumerate() {
                if !(FASTEST_STAGE..=NEIGHBOURS_AT_MOST).contains(&b) {
                    problems.push(format!(
                        "element {e} ran its stages at {b:.3}x their solo time in the unstressed pipeline: beside neighbours on other SMs it must be {FASTEST_STAGE}-{NEIGHBOURS_AT_MOST}x (something else on the GPU, or a timing error)"
                    ));
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
}

/// Judges one run; `stressed`: the stressor was to run its episode in it (else not at all).
fn judge_run(m: &MeasuredPipeline, run: &MeasuredRun, stressed: bool, problems: &mut Vec<String>) {
    let name = if stressed { run.policy.name() } else { "the unstressed pipeline" };
    let u = run.clock.uncertainty_ns;
    if u > MAX_CLOCK_UNCERTAINTY_NS {
        problems.push(format!(
            "{name}: the clock map is uncertain by {:.1} us (at most {:.0} us): calibrate again on an idle GPU",
            u as f64 / 1e3,
            MAX_CLOCK_UNCERTAINTY_NS as f64 / 1e3
        ));
    }
    // per kind of problem: how many, and the first one's details
    let mut found: Vec<(&str, usize, String)> = Vec::new();
    let mut note = |kind: &'static str, what: String| match found.iter_mut().find(|(k, _, _)| *k == kind) {
        Some((_, n, _)) => *n += 1,
        None => found.push((kind, 1, what)),
    };
    const UNSTAMPED: &str = "stages without usable stamps";
    const OVERLAPPING: &str = "stages that start before the stage they depend on ends";
    const TOO_FAST: &str = "stages faster than 80% of their solo time on the same SMs";
    const BEFORE_DISPATCH: &str = "batches started on the GPU before the host dispatched them";
    const AFTER_NOTICE: &str = "batches ended on the GPU after the host saw them complete";
    const DISORDER: &str = "batches whose arrival, dispatch and completion are out of order";
    const STUCK: &str = "batches still on the GPU when the run ended (10 s after its window)";
    for b in &run.batches {
        if b.layout >= run.layouts.len() {
            problems.push(format!("{name}: batch {} names layout {} of {}", b.batch, b.layout, run.layouts.len()));
            continue;
        }
        let Some(dispatch) = b.dispatch_ns else { continue };
        let Some(noticed) = b.noticed_ns else {
            note(STUCK, format!("batch {} dispatched at {dispatch} ns", b.batch));
            continue;
        };
        if !(b.arrival_ns <= dispatch && dispatch <= noticed) {
            note(
                DISORDER,
                format!(
                    "batch {} arrived at {} ns, dispatched at {dispatch} ns, noticed at {noticed} ns",
                    b.batch, b.arrival_ns
                ),
            );
        }
        let mut previous_end: Option<u64> = None;
        for (j, s) in b.stages.iter().enumerate() {
            let (Some(start), Some(end)) = (s.start_gpu_ns, s.end_gpu_ns) else {
                note(UNSTAMPED, format!("batch {} stage {j} has no stamps", b.batch));
                continue;
            };
            if end < start {
                note(UNSTAMPED, format!("batch {} stage {j} ends before it starts", b.batch));
                continue;
            }
            if previous_end.is_some_and(|p| start < p) {
                note(OVERLAPPING, format!("batch {} stage {j} starts before stage {} ends", b.batch, j - 1));
            }
            previous_end = Some(end);
            let span_us = (end - start) as f64 / 1e3;
            if span_us < FASTEST_STAGE * s.solo_us {
                note(
                    TOO_FAST,
                    format!(
                        "batch {} stage {j} took {span_us:.1} us on element {}, {:.0}% of its solo {:.1} us",
                        b.batch,
                        s.element,
                        100.0 * span_us / s.solo_us,
                        s.solo_us
                    ),
                );
            }
            if j == 0 && run.clock.to_host(start) - run.window_start_host_ns < dispatch - u {
                note(BEFORE_DISPATCH, format!("batch {} started on the GPU before the host dispatched it", b.batch));
            }
        }
        match b.done_ns {
            None if b.stages.is_empty() => note(UNSTAMPED, format!("batch {} was noticed without its stages", b.batch)),
            None => {}
            Some(done) if done > noticed + u => note(
                AFTER_NOTICE,
                format!("batch {} ended on the GPU {} ns after the host saw it complete", b.batch, done - noticed),
            ),
            Some(_) => {}
        }
    }
    for r in &run.responses {
        let Some(applied) = r.applied_ns else { continue };
        let early =
            run.batches.iter().filter(|b| b.layout == r.to_layout && b.dispatch_ns.is_some_and(|d| d < applied));
        let early = early.count();
        if applied < r.at_ns || early > 0 {
            problems.push(format!(
                "{name}: the response at {} ns took effect at {applied} ns, and {early} batches ran its layout before that",
                r.at_ns
            ));
        }
    }
    for (what, n, first) in found {
        problems.push(format!("{name}: {n} {what} (first: {first})"));
    }
    if !stressed {
        if run.stressor_launches > 0 {
            problems.push(format!("{name}: the stressor launched {} times in it", run.stressor_launches));
        }
        return;
    }
    let (from, to) = (m.stress.from_ns(), m.stress.to_ns());
    let covered = match (run.stressor_first_start_ns, run.stressor_last_end_ns) {
        (Some(a), Some(z)) => a <= from + STRESS_EDGE_NS && z >= to - STRESS_EDGE_NS,
        _ => false,
    };
    if !covered {
        problems.push(format!(
            "{name}: the stressor's {} launches span {:?}..{:?} ns, not its episode {from}..{to} ns (within {} ms)",
            run.stressor_launches,
            run.stressor_first_start_ns,
            run.stressor_last_end_ns,
            STRESS_EDGE_NS / 1_000_000
        ));
    }
}
