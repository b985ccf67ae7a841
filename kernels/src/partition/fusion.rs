//! Space-time's super-kernel (Jain et al., "Dynamic Space-Time Scheduling for GPU Inference"):
//! the same-shape GEMMs of K tenants, each on operands of its own, run three ways: one after
//! another on one stream (time-only), each on a stream of its own at once (space-only), and as
//! one batched launch over their pointers (fused). The paper's microbenchmarks (V100) put the
//! fused launch at 3.23x space-only for a ResNet-18 convolution as a GEMM and 4.93x for 256^3.
//!
//! Tenants of different models whose layers agree in N and K (bert_base's and vit_b16's
//! feed-forward: 768 -> 3072 over 128 and 197 rows at batch 1) fuse too, as one grouped launch
//! with a group per shape.
//!
//! Every tenant's fused output is checked against its own unfused launch, and the first and
//! last tenants' against the CPU reference; each method's GPU time against the host's timer
//! around it (an interval the events must fit in).

use serde::Serialize;

use crate::check::compare;
use crate::error::{Error, Result};
use crate::gpu::{Event, ExecContext, GemmGroups, GemmPointers, KernelLibrary, Stream, StreamLibraries};
use crate::instance::OpInstance;
use crate::ops::{Gemm, LaunchEnv, Op, OpSpec, Role, StampSlots};
use crate::stats::median_of;
use crate::timing::event_and_host_times_ms;

/// How the fused round is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FusedLaunch {
    /// Every tenant's GEMM of one shape: cublasGemmBatchedEx.
    Batched,
    /// Several shapes: cublasGemmGroupedBatchedEx, a group per shape.
    Grouped,
}

/// One tenant count: median times of one round (every tenant's GEMM once), ms.
#[derive(Clone, Debug, Serialize)]
pub struct FusionRow {
    pub tenants: usize,
    pub launch: FusedLaunch,
    pub time_only_ms: f64,
    pub space_only_ms: f64,
    pub fused_ms: f64,
    /// The host's wall time around the same rounds (launch to synchronised), ms: the GPU's
    /// interval lies inside it.
    pub time_only_host_ms: f64,
    pub space_only_host_ms: f64,
    pub fused_host_ms: f64,
    /// The fused launch's arithmetic rate, TFLOP/s.
    pub fused_tflops: f64,
    /// Largest relative L2 error of a tenant's fused output against its unfused launch, and of
    /// the first and last tenants' against the CPU reference.
    pub fused_vs_unfused_error: f64,
    pub fused_vs_reference_error: f64,
}

impl FusionRow {
    pub fn fused_over_time_only(&self) -> f64 {
        self.time_only_ms / self.fused_ms
    }

    pub fn fused_over_space_only(&self) -> f64 {
        self.space_only_ms / self.fused_ms
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FusionReport {
    /// Tenant `t` runs `shapes[t % shapes.len()]`.
    pub shapes: Vec<Gemm>,
    pub reps: usize,
    pub tolerance: f64,
    pub rows: Vec<FusionRow>,
}

/// Median GPU and host times of `reps` rounds of `body` between events on `stream`, ms, after
/// two unmeasured rounds.
fn timed(ctx: &ExecContext, stream: &Stream, reps: usize, body: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    let (gpu, host) = event_and_host_times_ms(ctx, stream, 2, reps, body)?;
    Ok((median_of(&gpu), median_of(&host)))
}

/// Tenant `t`'s operands are drawn from this seed.
fn seed_of(t: usize) -> u64 {
    0xf05e ^ ((t as u64) << 8)
}

/// The three ways for each count in `tenants` (each at least 1), `reps` rounds each; tenant
/// `t` runs `shapes[t % shapes.len()]`, single GEMMs of one precision.
pub fn run(
    lib: &KernelLibrary,
    ctx: &ExecContext,
    shapes: &[Gemm],
    tenants: &[usize],
    reps: usize,
) -> Result<FusionReport> {
    let labels: Vec<String> = shapes.iter().map(|g| Op::Gemm(g.clone()).label()).collect();
    let what = format!("fusion of {}", labels.join(" and "));
    let first = shapes.first().ok_or_else(|| Error::invalid("fusion", "no GEMM shape given"))?;
    if shapes.iter().any(|g| g.batch != 1 || g.precision != first.precision) {
        return Err(Error::invalid(&what, "give single GEMMs (batch 1) of one precision: each tenant's is one"));
    }
    if tenants.is_empty() || tenants.contains(&0) || reps == 0 {
        return Err(Error::invalid(&what, "give tenant counts of at least 1 and at least one rep"));
    }
    let device = ctx.device().clone();
    let most = *tenants.iter().max().expect("non-empty");
    let streams: Vec<Stream> = (0..most).map(|_| ctx.new_stream(0)).collect::<Result<_>>()?;
    let libs: Vec<StreamLibraries> = streams.iter().map(StreamLibraries::new).collect::<Result<_>>()?;
    let env = |i: usize| LaunchEnv { lib, stream: &streams[i], libs: Some(&libs[i]), bracket_library_calls: false };
    let ops: Vec<Op> = (0..most).map(|t| Op::Gemm(shapes[t % shapes.len()].clone())).collect();
    let insts: Vec<OpInstance> =
        ops.iter().map(|op| OpInstance::allocate(&device, op.clone())).collect::<Result<Vec<_>>>()?;
    for (t, inst) in insts.iter().enumerate() {
        inst.fill(&env(0), seed_of(t))?;
    }
    streams[0].synchronize()?;
    let inputs: Vec<_> = insts.iter().map(|i| i.download(&[Role::Input, Role::Weight])).collect::<Result<Vec<_>>>()?;
    let calls: Vec<_> = insts
        .iter()
        .zip(&ops)
        .map(|(i, op)| {
            let Op::Gemm(g) = op else { unreachable!("every tenant's op is a GEMM") };
            let b = i.bindings();
            Ok(g.call(b.require("gemm", "a")?, b.require("gemm", "b")?, b.require("gemm", "c")?))
        })
        .collect::<Result<Vec<_>>>()?;
    let joins: Vec<Event> = (0..most).map(|_| Event::new(ctx)).collect::<Result<_>>()?;
    let fork = Event::new(ctx)?;
    let tolerance = ops[0].tolerance();

    let mut rows = Vec::new();
    for &k in tenants {
        // unfused outputs first, to check the fused ones against
        for inst in &insts[..k] {
            inst.launch(&env(0), StampSlots::NONE)?;
        }
        streams[0].synchronize()?;
        let unfused: Vec<_> = insts[..k].iter().map(|i| i.download(&[Role::Output])).collect::<Result<Vec<_>>>()?;
        let (time_only_ms, time_only_host_ms) =
            timed(ctx, &streams[0], reps, || insts[..k].iter().try_for_each(|i| i.launch(&env(0), StampSlots::NONE)))?;
        let (space_only_ms, space_only_host_ms) = timed(ctx, &streams[0], reps, || {
            fork.record(&streams[0])?;
            for (t, inst) in insts[..k].iter().enumerate() {
                if t > 0 {
                    streams[t].wait_for(&fork)?;
                }
                inst.launch(&env(t), StampSlots::NONE)?;
                joins[t].record(&streams[t])?;
            }
            joins[1..k].iter().try_for_each(|j| streams[0].wait_for(j))
        })?;
        let launch = if k == 1 || shapes.len() == 1 { FusedLaunch::Batched } else { FusedLaunch::Grouped };
        let env0 = env(0);
        let blas = env0.blas("fused gemm")?;
        let (pointers, groups) = match launch {
            FusedLaunch::Batched => (Some(GemmPointers::new(&device, &calls[..k])?), None),
            FusedLaunch::Grouped => (None, Some(GemmGroups::new(&device, &calls[..k])?)),
        };
        let fused_round = || match (&pointers, &groups) {
            (Some(p), _) => blas.gemm_pointers(p),
            (_, Some(g)) => blas.gemm_groups(g),
            (None, None) => unreachable!("one of the two is built"),
        };
        // the same inputs again, the outputs poisoned: what the fused launch writes is its own
        for (t, inst) in insts[..k].iter().enumerate() {
            inst.fill(&env(0), seed_of(t))?;
        }
        let (fused_ms, fused_host_ms) = timed(ctx, &streams[0], reps, fused_round)?;
        let fused: Vec<_> = insts[..k].iter().map(|i| i.download(&[Role::Output])).collect::<Result<Vec<_>>>()?;
        let mut fused_vs_unfused_error: f64 = 0.0;
        for (t, (f, u)) in fused.iter().zip(&unfused).enumerate() {
            let (rel, _, non_finite) = compare(&f["c"].data, &u["c"].data);
            if non_finite > 0 {
                return Err(Error::invalid(
                    &what,
                    format!("tenant {t}'s fused output has {non_finite} non-finite values"),
                ));
            }
            fused_vs_unfused_error = fused_vs_unfused_error.max(rel);
        }
        let mut fused_vs_reference_error: f64 = 0.0;
        for t in [0, k - 1] {
            let want = ops[t].reference(&inputs[t]);
            fused_vs_reference_error = fused_vs_reference_error.max(compare(&fused[t]["c"].data, &want["c"].data).0);
        }
        let flops: f64 = ops[..k].iter().map(|op| op.cost().flops).sum();
        rows.push(FusionRow {
            tenants: k,
            launch,
            time_only_ms,
            space_only_ms,
            fused_ms,
            time_only_host_ms,
            space_only_host_ms,
            fused_host_ms,
            fused_tflops: flops / (fused_ms * 1e-3) / 1e12,
            fused_vs_unfused_error,
            fused_vs_reference_error,
        });
    }
    Ok(FusionReport { shapes: shapes.to_vec(), reps, tolerance, rows })
}

/// What is wrong with a report: outputs off their references, GPU times outside the host's
/// interval around them, a rate above `ceiling_tflops` (the device's measured matrix ceiling
/// for the GEMM's unit). Empty when it can be believed.
pub fn problems(report: &FusionReport, ceiling_tflops: f64) -> Vec<String> {
    let mut out = Vec::new();
    for r in &report.rows {
        let k = r.tenants;
        let within = |e: f64| e.is_finite() && e <= report.tolerance;
        if !within(r.fused_vs_unfused_error) || !within(r.fused_vs_reference_error) {
            out.push(format!(
                "{k} tenants: fused outputs off by {:.2e} from the unfused and {:.2e} from the reference (tolerance {:.1e})",
                r.fused_vs_unfused_error, r.fused_vs_reference_error, report.tolerance
            ));
        }
        for (name, gpu, host) in [
            ("time-only", r.time_only_ms, r.time_only_host_ms),
            ("space-only", r.space_only_ms, r.space_only_host_ms),
            ("fused", r.fused_ms, r.fused_host_ms),
        ] {
            // event resolution is about 0.5 us
            if !(gpu.is_finite() && host.is_finite()) || gpu > host + 1e-3 {
                out.push(format!(
                    "{k} tenants, {name}: {gpu:.4} ms on the GPU's events but {host:.4} ms on the host around them"
                ));
            }
        }
        if !r.fused_tflops.is_finite() || (ceiling_tflops > 0.0 && r.fused_tflops > ceiling_tflops) {
            out.push(format!(
                "{k} tenants: the fused launch at {:.1} TFLOP/s, above the device's {ceiling_tflops:.1}",
                r.fused_tflops
            ));
        }
    }
    out
}

/// Shared by `run`'s callers: a device context's matrix ceiling for the GEMM's unit, measured
/// after the fusion rounds so that the ceilings' large GEMMs do not run before them in this
/// process (docs/h200.md, "The reference's two speeds").
pub fn ceiling_tflops(lib: &KernelLibrary, ctx: &ExecContext, gemm: &Gemm) -> Result<f64> {
    let c = crate::ceilings::measure(lib, ctx, true)?;
    Ok(c.compute_tflops(Op::Gemm(gemm.clone()).cost().unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: usize) -> FusionRow {
        FusionRow {
            tenants: k,
            launch: FusedLaunch::Batched,
            time_only_ms: 0.4,
            space_only_ms: 0.2,
            fused_ms: 0.1,
            time_only_host_ms: 0.45,
            space_only_host_ms: 0.25,
            fused_host_ms: 0.15,
            fused_tflops: 300.0,
            fused_vs_unfused_error: 1e-4,
            fused_vs_reference_error: 2e-3,
        }
    }

    fn report(rows: Vec<FusionRow>) -> FusionReport {
        let gemm =
            Gemm { m: 256, n: 256, k: 256, batch: 1, precision: crate::gpu::GemmPrecision::Bf16, b_transposed: false };
        FusionReport { shapes: vec![gemm], reps: 10, tolerance: 1e-2, rows }
    }

    #[test]
    fn a_believable_report_has_no_problems_and_its_speedups_are_ratios_of_medians() {
        let r = report(vec![row(4)]);
        assert!(problems(&r, 900.0).is_empty());
        assert!((r.rows[0].fused_over_time_only() - 4.0).abs() < 1e-12);
        assert!((r.rows[0].fused_over_space_only() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn wrong_outputs_events_outside_the_host_interval_and_rates_above_the_ceiling_are_problems() {
        let mut bad = row(8);
        bad.fused_vs_unfused_error = 0.2;
        bad.space_only_host_ms = 0.1; // the events say 0.2 ms
        bad.fused_tflops = 1_200.0;
        let p = problems(&report(vec![row(4), bad]), 900.0).join("\n");
        assert!(p.contains("8 tenants: fused outputs off by 2.00e-1"), "{p}");
        assert!(p.contains("8 tenants, space-only: 0.2000 ms on the GPU's events but 0.1000 ms on the host"), "{p}");
        assert!(p.contains("8 tenants: the fused launch at 1200.0 TFLOP/s, above the device's 900.0"), "{p}");
        assert!(!p.contains("4 tenants"), "{p}");
    }
}
