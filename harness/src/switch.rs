//! The switch profile: on one stream of the whole GPU, how much longer a model's batch takes
//! right after another model's batch than right after its own. Time-sharing and Clockwork put
//! every tenant on one stream, where the model before a batch evicts its weights from L2; the
//! solo profile, replaying one model back to back, never sees that (mobilenet_v2 b1 ran 1.11x
//! its profile after another model in every one-stream dataset, `docs/schedulers.md`).
//!
//! Every whole-GPU (model, batch) of a suite is replayed, in the process and on the context of
//! its solo profile, right after its own replays (as its solo profile replays back to back) and
//! right after each other (model, batch)'s, the two interleaved so that any drift of the GPU falls on
//! both alike. Each replay is launched as a
//! tenant launches a batch (fresh inputs, stamps reset, the graph) and awaited before the next,
//! as the solo profile's are; its time is the stamped span, first kernel in to last out.

use std::sync::Arc;

use coloc_dataset::solo_rows::SoloSwitchRow;
use coloc_kernels::gpu::{ExecContext, KernelLibrary, StreamLibraries};
use coloc_kernels::ops::LaunchEnv;
use coloc_kernels::stats::median_of;
use coloc_kernels::timing::span_of;
use coloc_workloads::graph::ModelGraph;
use coloc_workloads::scenario::SoloShare;

use crate::error::{Error, Result};
use crate::model::ModelInstance;
use crate::solo::SoloTarget;

/// Timed replays of each kind per pair, after [`WARMUP`] of every model.
pub const REPLAYS: usize = 20;
const WARMUP: usize = 3;
/// Own replays before one timed "after its own": one is not enough for the L2 to reach the
/// state of back-to-back replays (on an H100, mobilenet_v2 b1 ran 3.5% over its solo profile
/// on the replay after a single own replay that followed bert_base's).
const OWN_BEFORE: usize = 2;
/// Replays per ordered pair, timed or not: what the profile's time grows with.
pub const REPLAYS_PER_PAIR: usize = REPLAYS * (OWN_BEFORE + 1 + 2);

/// The switch profile of every whole-GPU target against every other one (the same model at
/// another batch included: each has weights of its own); none where there are fewer than two.
pub fn profile(lib: &Arc<KernelLibrary>, ctx: &ExecContext, targets: &[SoloTarget]) -> Result<Vec<SoloSwitchRow>> {
    let whole: Vec<&SoloTarget> = targets.iter().filter(|t| t.share == SoloShare::Device).collect();
    // a (model, batch) profiled at several shapes (sequence lengths) is ambiguous in a row keyed
    // by (model, batch), as it is to the simulator: left out
    fn key(t: &SoloTarget) -> (&str, usize) {
        (t.spec.name.as_str(), t.options.batch)
    }
    let targets: Vec<&SoloTarget> =
        whole.iter().copied().filter(|t| whole.iter().filter(|u| key(u) == key(t)).count() == 1).collect();
    let pairs: Vec<(usize, usize)> = (0..targets.len())
        .flat_map(|a| (0..targets.len()).map(move |b| (a, b)))
        // the same model at another batch is another instance with weights of its own
        .filter(|&(a, b)| a != b)
        .collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let device = lib.device().clone();
    let stream = ctx.new_stream(0)?;
    let libs = StreamLibraries::new(&stream)?;
    let env = LaunchEnv { lib, stream: &stream, libs: Some(&libs), bracket_library_calls: false };
    let mut instances = Vec::with_capacity(targets.len());
    for t in &targets {
        let mut inst = ModelInstance::allocate(&device, ModelGraph::build(&t.spec, &t.options)?)?;
        inst.initialize(&env, 1, 2)?;
        inst.capture(&env)?;
        instances.push(inst);
    }
    let mut seed = 0u64;
    // one replay as a tenant's batch, awaited; its stamped span, us
    let mut replay = |i: usize| -> Result<Option<f64>> {
        seed += 1;
        instances[i].refill_inputs(&env, 2 ^ (seed << 20))?;
        instances[i].launch(&stream)?;
        stream.synchronize()?;
        let stamps = instances[i].launch_stamps()?;
        Ok(span_of(&stamps).duration_ns().map(|ns| ns as f64 / 1e3))
    };
    for i in 0..targets.len() {
        for _ in 0..WARMUP {
            replay(i)?;
        }
    }
    let mut rows = Vec::with_capacity(pairs.len());
    for (a, b) in pairs {
        let (mut after_self, mut after_other) = (Vec::with_capacity(REPLAYS), Vec::with_capacity(REPLAYS));
        for r in 0..REPLAYS {
            // which comes first alternates, so that neither kind always follows the other
            for before in if r % 2 == 0 { [a, b] } else { [b, a] } {
                for _ in 0..if before == a { OWN_BEFORE } else { 1 } {
                    replay(before)?;
                }
                let timed = replay(a)?;
                if before == a { after_self.extend(timed) } else { after_other.extend(timed) }
            }
        }
        let (t, o) = (targets[a], targets[b]);
        let what = || {
            format!("switch profile of {} b{} after {} b{}", t.spec.name, t.options.batch, o.spec.name, o.options.batch)
        };
        if after_self.is_empty() || after_other.is_empty() {
            return Err(Error::invalid(what(), "a replay left no stamps"));
        }
        rows.push(SoloSwitchRow {
            model: t.spec.name.clone(),
            batch: t.options.batch as u32,
            after_model: o.spec.name.clone(),
            after_batch: o.options.batch as u32,
            replays: after_self.len().min(after_other.len()) as u32,
            after_self_us: median_of(&after_self),
            after_other_us: median_of(&after_other),
        });
    }
    Ok(rows)
}
