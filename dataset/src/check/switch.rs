//! The switch profile (`solo_switch.parquet`) replays each whole-GPU (model, batch) right after
//! its own replay and right after another model's, on one stream of the same process as the
//! solo profiles. Right after its own replay it is the solo profile measured again, so the two
//! must agree; and a batch does not run faster for having another model's batch before it (its
//! own weights are then the ones evicted from L2, not the other's).

use super::one_stream::whole_gpu_profiles;
use super::{Finding, Invariant, Problems};
use crate::solo_rows::{SoloModelRow, SoloSwitchRow};

/// How far the switch profile's replays after their own may be from the solo profile, and how
/// much faster after another model a batch may look: run-to-run noise of one graph on one GPU
/// (the one-stream invariant's tolerance).
pub const SWITCH_TOLERANCE: f64 = super::ONE_STREAM_TOLERANCE;

/// `switches`: none where the dataset predates the table.
pub fn switch_as_profiled(models: &[SoloModelRow], switches: Option<&[SoloSwitchRow]>) -> Finding {
    let switches = match switches {
        None => {
            return Finding::skipped(
                Invariant::SwitchAsProfiled,
                "no solo_switch table: measured before the harness measured switch profiles",
            );
        }
        Some([]) => {
            return Finding::skipped(
                Invariant::SwitchAsProfiled,
                "an empty switch profile: fewer than two unambiguous (model, batch)s on the whole GPU",
            );
        }
        Some(rows) => rows,
    };
    let profiles = whole_gpu_profiles(models);
    let mut unprofiled = Problems::new("switch-profile row(s) of a (model, batch) without one whole-GPU solo profile");
    let mut off = Problems::new(
        "switch-profile row(s) whose replays after their own disagree with the solo profile by more than 3%",
    );
    let mut faster =
        Problems::new("switch-profile row(s) faster after another model than after their own by more than 3%");
    debug_assert_eq!(SWITCH_TOLERANCE, 0.03, "the problems above say 3%");
    for s in switches {
        let name = || format!("{} b{} after {} b{}", s.model, s.batch, s.after_model, s.after_batch);
        match profiles.get(&(s.model.as_str(), s.batch)) {
            Some(&profiled_us) => {
                let r = s.after_self_us / profiled_us;
                if (r - 1.0).abs() > SWITCH_TOLERANCE {
                    off.push(|| {
                        format!(
                            "{}: {:.1} us after its own, solo profile {profiled_us:.1} us ({r:.3}x)",
                            name(),
                            s.after_self_us
                        )
                    });
                }
            }
            _ => unprofiled.push(name),
        }
        // NaN (a time of 0) is caught as faster too
        if s.factor().is_nan() || s.factor() < 1.0 - SWITCH_TOLERANCE {
            faster.push(|| {
                format!(
                    "{}: {:.1} us after it, {:.1} us after its own ({:.3}x)",
                    name(),
                    s.after_other_us,
                    s.after_self_us,
                    s.factor()
                )
            });
        }
    }
    let mut problems = Vec::new();
    unprofiled.into_lines(&mut problems);
    off.into_lines(&mut problems);
    faster.into_lines(&mut problems);
    Finding::new(Invariant::SwitchAsProfiled, switches.len(), problems)
}
