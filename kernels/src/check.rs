//! `coloc kernels check`: every operator on fresh random inputs against its f64 CPU
//! reference, with outputs poisoned first so an unwritten element fails; run once bare and
//! once instrumented, which must give identical bits; stamps checked against events.

use std::sync::Arc;

use serde::Serialize;

use crate::error::Result;
use crate::gpu::{Device, Event};
use crate::instance::{OpInstance, prepare};
use crate::ops::{HostTensor, LaunchEnv, Op, OpSpec, Role, StampSlots};
use crate::timing::{StampArena, fill_library_spans, span_of};

/// Slack allowed between a stamp interval and the enclosing event interval: the timers tick
/// differently (events about 0.5 us, %globaltimer as the inventory reports).
const STAMP_SLACK_US: f64 = 2.0;

#[derive(Clone, Debug, Serialize)]
pub struct OutputCheck {
    pub name: String,
    pub elements: usize,
    pub rel_l2_error: f64,
    pub max_abs_error: f64,
    /// Elements that are NaN or infinite (poison left unwritten, or a real NaN).
    pub non_finite: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub label: String,
    pub kernels: Vec<String>,
    pub seed: u64,
    pub tolerance: f64,
    pub outputs: Vec<OutputCheck>,
    /// The instrumented run wrote exactly the same bits as the bare one.
    pub instrumented_identical: bool,
    pub event_us: f64,
    pub stamp_us: Option<f64>,
    pub passed: bool,
    /// Why it failed, in words.
    pub failure: Option<String>,
}

/// Relative L2 error of `got` against `want` (absolute when `want` is all zeros), the
/// largest absolute difference, and the count of non-finite values in `got`.
pub fn compare(got: &[f64], want: &[f64]) -> (f64, f64, usize) {
    assert_eq!(got.len(), want.len(), "output and reference differ in length");
    let mut num = 0.0;
    let mut den = 0.0;
    let mut max_abs: f64 = 0.0;
    let mut non_finite = 0;
    for (g, w) in got.iter().zip(want) {
        if !g.is_finite() {
            non_finite += 1;
            continue;
        }
        let d = g - w;
        num += d * d;
        den += w * w;
        max_abs = max_abs.max(d.abs());
    }
    let rel = if den > 0.0 { (num / den).sqrt() } else { num.sqrt() };
    (rel, max_abs, non_finite)
}

/// Checks one operator on `device` with inputs drawn from `seed`.
pub fn check_op(device: &Arc<Device>, env: &LaunchEnv, op: Op, seed: u64) -> Result<CheckResult> {
    let label = op.label();
    let kernels: Vec<String> = op.kernels().iter().map(|k| k.c_name()).collect();
    prepare(env, &op)?;
    let inst = OpInstance::allocate(device, op)?;
    let ctx = env.stream.context();

    inst.fill(env, seed)?;
    env.stream.synchronize()?;
    let inputs = inst.download(&[Role::Input, Role::Weight, Role::InOut])?;
    inst.launch(env, StampSlots::NONE)?;
    env.stream.synchronize()?;
    let bare = inst.download(&[Role::Output, Role::InOut])?;

    // Same inputs again (in/out tensors were overwritten), outputs poisoned again.
    inst.fill(env, seed)?;
    let launches = inst.op.launches().len();
    let arena = StampArena::new(device, launches)?;
    arena.reset(env.stream)?;
    let (start, end) = (Event::new(ctx)?, Event::new(ctx)?);
    start.record(env.stream)?;
    inst.launch(env, arena.op_slots(0))?;
    end.record(env.stream)?;
    end.synchronize()?;
    let event_us = end.elapsed_ms_since(&start)? as f64 * 1e3;
    let mut per_launch = arena.read(launches)?;
    let unstamped = per_launch.iter().filter(|s| s.start_ns.is_none() && s.end_ns.is_none()).count();
    fill_library_spans(&mut per_launch);
    let stamp = span_of(&per_launch);
    let stamped = inst.download(&[Role::Output, Role::InOut])?;

    let reference = inst.op.reference(&inputs);
    let tolerance = inst.op.tolerance();
    let mut outputs = Vec::new();
    let mut failures = Vec::new();
    for (name, want) in &reference {
        let got: &HostTensor = &stamped[name];
        let (rel, max_abs, non_finite) = compare(&got.data, &want.data);
        if non_finite > 0 {
            failures.push(format!("{name}: {non_finite} of {} elements not finite", got.data.len()));
        } else if rel > tolerance {
            failures.push(format!("{name}: relative L2 error {rel:.3e} above {tolerance:.1e}"));
        }
        outputs.push(OutputCheck {
            name: name.to_string(),
            elements: got.data.len(),
            rel_l2_error: rel,
            max_abs_error: max_abs,
            non_finite,
        });
    }
    let instrumented_identical =
        bare.iter().all(|(name, t)| stamped[name].data.iter().zip(&t.data).all(|(a, b)| a.to_bits() == b.to_bits()));
    if !instrumented_identical {
        failures.push("instrumented run differs from the bare run".into());
    }
    let stamp_us = stamp.duration_ns().map(|ns| ns as f64 / 1e3);
    if per_launch.iter().any(|s| s.duration_ns().is_none()) {
        failures.push(format!(
            "{unstamped} of {launches} launches wrote no stamp and could not be bracketed: {per_launch:?}"
        ));
    }
    match stamp_us {
        None => failures.push(format!("stamp slot not written in order: {stamp:?}")),
        Some(s) if s > event_us + STAMP_SLACK_US => {
            failures.push(format!("stamp interval {s:.2} us exceeds the event interval {event_us:.2} us"))
        }
        _ => {}
    }
    Ok(CheckResult {
        label,
        kernels,
        seed,
        tolerance,
        outputs,
        instrumented_identical,
        event_us,
        stamp_us,
        passed: failures.is_empty(),
        failure: (!failures.is_empty()).then(|| failures.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_reports_relative_error_and_non_finite_values() {
        let (rel, max_abs, nf) = compare(&[1.0, 2.0, f64::NAN], &[1.0, 2.5, 3.0]);
        assert_eq!(nf, 1);
        assert!((max_abs - 0.5).abs() < 1e-12);
        // finite part: |(0, -0.5)| / |(1, 2.5)|
        assert!((rel - 0.5 / (1.0f64 + 6.25).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn compare_of_identical_outputs_is_exact() {
        let v = [0.25, -3.0, 7.5];
        assert_eq!(compare(&v, &v), (0.0, 0.0, 0));
    }
}
