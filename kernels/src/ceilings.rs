//! The device's measured ceilings, which reports compare achieved rates against and which no
//! measured figure may exceed: copy bandwidth, L2 bandwidth, the f32 FMA rate, and the dense
//! matrix rates (a wgmma probe where the chip has wgmma, and the best cuBLAS GEMM over several
//! sizes; the matrix ceiling is the higher). Always measured on random data, after warm-up, as
//! medians.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::gpu::memory::copy_async;
use crate::gpu::{
    Device, DeviceBuffer, ExecContext, GemmPrecision, KernelArgs, KernelLibrary, LaunchConfig, StreamLibraries,
};
use crate::id::{KernelId, KernelSymbol};
use crate::instance::OpInstance;
use crate::ops::{ComputeUnit, Cost, Gemm, LaunchEnv, Op, OpSpec, StampSlots, Stressor, StressorKind};
use crate::stats::median_of;
use crate::timing::event_times_ms;

/// `Default` is nothing measured: every ceiling zero, which bounds nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// Device-to-device copy through the driver, bytes read plus written, GB/s (1e9).
    pub copy_gbps: f64,
    pub copy_bytes: u64,
    /// 8 independent FMA chains per thread, a full wave of resident blocks.
    pub fp32_fma_tflops: f64,
    /// wgmma m64n256 with operands in shared memory (Hopper only).
    pub tensor_bf16_probe_tflops: Option<f64>,
    pub tensor_tf32_probe_tflops: Option<f64>,
    /// Best cuBLAS bf16 GEMM over the sizes tried, and that size (m = n = k).
    pub cublas_bf16_tflops: f64,
    pub cublas_bf16_best_size: usize,
    pub cublas_tf32_tflops: f64,
    pub cublas_f32_tflops: f64,
    /// Read-modify-write traffic through the L2 (a resident buffer of half its size, loads and
    /// stores that bypass L1), bytes read plus written, GB/s.
    #[serde(default)]
    pub l2_gbps: f64,
    /// The L2's capacity: at most this much of a kernel's data can already be on chip when it
    /// starts.
    #[serde(default)]
    pub l2_cache_bytes: u64,
}

impl Ceilings {
    pub fn matrix_bf16_tflops(&self) -> f64 {
        self.tensor_bf16_probe_tflops.unwrap_or(0.0).max(self.cublas_bf16_tflops)
    }

    pub fn matrix_tf32_tflops(&self) -> f64 {
        self.tensor_tf32_probe_tflops.unwrap_or(0.0).max(self.cublas_tf32_tflops)
    }

    /// The arithmetic ceiling for work on `unit`, TFLOP/s.
    pub fn compute_tflops(&self, unit: ComputeUnit) -> f64 {
        match unit {
            ComputeUnit::Fp32 => self.fp32_fma_tflops.max(self.cublas_f32_tflops),
            ComputeUnit::TensorTf32 => self.matrix_tf32_tflops(),
            ComputeUnit::TensorBf16 => self.matrix_bf16_tflops(),
        }
    }

    /// The least time work of cost `c` can take on this device, seconds: its arithmetic at the
    /// ceiling of its unit; every byte through the L2 at the L2 ceiling; and every byte beyond
    /// what the L2 can hold from DRAM at the copy bandwidth. A measured time below this is a
    /// timing error, not a fast kernel. Ceilings not measured (zero) bound nothing.
    pub fn floor_s(&self, c: &Cost) -> f64 {
        let rate = |work: f64, per_s: f64| if per_s > 0.0 { work / per_s } else { 0.0 };
        let arithmetic = rate(c.flops, self.compute_tflops(c.unit) * 1e12);
        let through_l2 = rate(c.dram_bytes, self.l2_gbps * 1e9);
        let from_dram = rate((c.dram_bytes - self.l2_cache_bytes as f64).max(0.0), self.copy_gbps * 1e9);
        arithmetic.max(through_l2).max(from_dram)
    }
}

/// How hard to look: `quick` uses fewer sizes and repetitions (for tests of the tool itself).
pub fn measure(lib: &KernelLibrary, ctx: &ExecContext, quick: bool) -> Result<Ceilings> {
    let device = ctx.device().clone();
    let stream = ctx.new_stream(0)?;
    let libs = StreamLibraries::new(&stream)?;
    let env = LaunchEnv { lib, stream: &stream, libs: Some(&libs), bracket_library_calls: false };
    let reps = if quick { 3 } else { 10 };

    let (copy_gbps, copy_bytes) = copy_rate(&device, ctx, &stream, reps)?;

    let sms = device.info().sm_count;
    let fma = Stressor::full_device(StressorKind::Fma { iters: if quick { 20_000 } else { 100_000 } }, sms);
    let fp32_fma_tflops = op_rate(&device, ctx, &env, Op::Stressor(fma), reps)?;

    let (tensor_bf16_probe_tflops, tensor_tf32_probe_tflops) = if device.info().compute_capability == (9, 0) {
        (
            Some(tensor_probe(lib, &device, ctx, &stream, KernelId::TensorPeakBf16, reps)?),
            Some(tensor_probe(lib, &device, ctx, &stream, KernelId::TensorPeakTf32, reps)?),
        )
    } else {
        (None, None)
    };

    let sizes: &[usize] = if quick { &[4096] } else { &[4096, 8192, 12288] };
    let mut best = (0.0, 0);
    for &s in sizes {
        let rate = op_rate(&device, ctx, &env, square(s, GemmPrecision::Bf16), reps)?;
        if rate > best.0 {
            best = (rate, s);
        }
    }
    let big = if quick { 4096 } else { 8192 };
    let l2_cache_bytes = device.info().l2_bytes;
    let l2_gbps = l2_rate(&device, ctx, &env, l2_cache_bytes, reps)?;
    Ok(Ceilings {
        copy_gbps,
        copy_bytes,
        fp32_fma_tflops,
        tensor_bf16_probe_tflops,
        tensor_tf32_probe_tflops,
        cublas_bf16_tflops: best.0,
        cublas_bf16_best_size: best.1,
        cublas_tf32_tflops: op_rate(&device, ctx, &env, square(big, GemmPrecision::Tf32), reps)?,
        cublas_f32_tflops: op_rate(&device, ctx, &env, square(big, GemmPrecision::F32), reps)?,
        l2_gbps,
        l2_cache_bytes,
    })
}

/// Bytes read plus written per second by the L2 stressor on a buffer of half the L2, on every SM.
fn l2_rate(device: &Arc<Device>, ctx: &ExecContext, env: &LaunchEnv, l2_bytes: u64, reps: usize) -> Result<f64> {
    let (bytes, passes) = ((l2_bytes / 2) & !0xffff, 200u32);
    let op = Op::Stressor(Stressor::full_device(StressorKind::L2 { bytes, passes }, device.info().sm_count));
    let inst = OpInstance::allocate(device, op)?;
    inst.fill(env, 0x5eed)?;
    let times = event_times_ms(ctx, env.stream, 2, reps, || inst.launch(env, StampSlots::NONE))?;
    Ok(2.0 * bytes as f64 * passes as f64 / (median_of(&times) * 1e-3) / 1e9)
}

fn square(s: usize, precision: GemmPrecision) -> Op {
    Op::Gemm(Gemm { m: s, n: s, k: s, batch: 1, precision, b_transposed: false })
}

/// One part of [`measure`] on its own, at its full size: to find which part changes the time
/// of library kernels in the process that ran it (docs/h200.md, "The reference's two speeds").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Two 2 GiB buffers, one device-to-device copy between them.
    Copies,
    /// The f32 FMA stressor on every SM.
    Fma,
    /// The wgmma probes (Hopper only; nothing elsewhere).
    TensorProbes,
    /// cuBLAS square GEMMs: bf16 at every size `measure` tries, tf32 and f32 at 8192.
    CublasGemms,
    /// The L2 stressor on half the L2.
    L2,
}

/// Runs one part of [`measure`] as it runs there and returns its rate (GB/s or TFLOP/s; `None`
/// for a part this chip does not have).
pub fn measure_part(lib: &KernelLibrary, ctx: &ExecContext, part: Part) -> Result<Option<f64>> {
    let device = ctx.device().clone();
    let stream = ctx.new_stream(0)?;
    let libs = StreamLibraries::new(&stream)?;
    let env = LaunchEnv { lib, stream: &stream, libs: Some(&libs), bracket_library_calls: false };
    let (reps, sms) = (10, device.info().sm_count);
    Ok(match part {
        Part::Copies => Some(copy_rate(&device, ctx, &stream, reps)?.0),
        Part::Fma => {
            let fma = Stressor::full_device(StressorKind::Fma { iters: 100_000 }, sms);
            Some(op_rate(&device, ctx, &env, Op::Stressor(fma), reps)?)
        }
        Part::TensorProbes if device.info().compute_capability == (9, 0) => {
            tensor_probe(lib, &device, ctx, &stream, KernelId::TensorPeakTf32, reps)?;
            Some(tensor_probe(lib, &device, ctx, &stream, KernelId::TensorPeakBf16, reps)?)
        }
        Part::TensorProbes => None,
        Part::CublasGemms => {
            let mut best: f64 = 0.0;
            for s in [4096, 8192, 12288] {
                best = best.max(op_rate(&device, ctx, &env, square(s, GemmPrecision::Bf16), reps)?);
            }
            op_rate(&device, ctx, &env, square(8192, GemmPrecision::Tf32), reps)?;
            op_rate(&device, ctx, &env, square(8192, GemmPrecision::F32), reps)?;
            Some(best)
        }
        Part::L2 => Some(l2_rate(&device, ctx, &env, device.info().l2_bytes, reps)?),
    })
}

/// Median TFLOP/s of an operator on random inputs.
fn op_rate(device: &Arc<Device>, ctx: &ExecContext, env: &LaunchEnv, op: Op, reps: usize) -> Result<f64> {
    let flops = op.cost().flops;
    let inst = OpInstance::allocate(device, op)?;
    inst.fill(env, 0x5eed)?;
    let times = event_times_ms(ctx, env.stream, 2, reps, || inst.launch(env, StampSlots::NONE))?;
    Ok(flops / (median_of(&times) * 1e-3) / 1e12)
}

/// Largest copy that fits comfortably: 2 GiB per buffer, less on small cards.
fn copy_rate(device: &Arc<Device>, ctx: &ExecContext, stream: &crate::gpu::Stream, reps: usize) -> Result<(f64, u64)> {
    let (free, _) = device.memory_info()?;
    let bytes = (2usize << 30).min((free / 8) as usize) & !0xfff;
    let a = DeviceBuffer::alloc(device, bytes, "copy-ceiling source")?;
    let b = DeviceBuffer::alloc(device, bytes, "copy-ceiling destination")?;
    a.fill_bytes_async(0x5a, stream)?;
    let times = event_times_ms(ctx, stream, 2, reps, || copy_async(b.ptr(), a.ptr(), bytes, stream))?;
    Ok((2.0 * bytes as f64 / (median_of(&times) * 1e-3) / 1e9, 2 * bytes as u64))
}

fn tensor_probe(
    lib: &KernelLibrary,
    device: &Arc<Device>,
    ctx: &ExecContext,
    stream: &crate::gpu::Stream,
    id: KernelId,
    reps: usize,
) -> Result<f64> {
    let sms = device.info().sm_count;
    let iters: i32 = 2000;
    let out = DeviceBuffer::alloc(device, sms as usize * 256 * 4, "tensor probe output")?;
    let kernel = lib.kernel(KernelSymbol::plain(id))?;
    let cfg = LaunchConfig::new((sms, 1, 1), (256, 1, 1));
    let times = event_times_ms(ctx, stream, 2, reps, || {
        kernel.launch(stream, cfg, &mut KernelArgs::new().ptr(out.ptr()).i32(iters))
    })?;
    let k = if id == KernelId::TensorPeakBf16 { 16.0 } else { 8.0 };
    let flops = sms as f64 * 2.0 * iters as f64 * 8.0 * (2.0 * 64.0 * 256.0 * k);
    Ok(flops / (median_of(&times) * 1e-3) / 1e12)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h200() -> Ceilings {
        Ceilings {
            copy_gbps: 4000.0,
            copy_bytes: 0,
            fp32_fma_tflops: 50.0,
            tensor_bf16_probe_tflops: Some(900.0),
            tensor_tf32_probe_tflops: None,
            cublas_bf16_tflops: 800.0,
            cublas_bf16_best_size: 8192,
            cublas_tf32_tflops: 400.0,
            cublas_f32_tflops: 50.0,
            l2_gbps: 10_000.0,
            l2_cache_bytes: 50_000_000,
        }
    }

    #[test]
    fn the_floor_is_the_slowest_of_arithmetic_l2_and_dram() {
        let c = h200();
        // BERT-base fc2 at batch 8: 4.8 GFLOP in bf16 cannot take less than 5.4 us at 900 TFLOP/s
        let gemm = Cost { flops: 4.83e9, macs: 2.4e9, dram_bytes: 12.6e6, unit: ComputeUnit::TensorBf16 };
        assert!((c.floor_s(&gemm) - 4.83e9 / 900e12).abs() < 1e-12);
        // a small element-wise pass is bound by the L2 (all of it can be on chip)
        let small = Cost { flops: 1e6, macs: 0.0, dram_bytes: 10e6, unit: ComputeUnit::Fp32 };
        assert!((c.floor_s(&small) - 10e6 / 10_000e9).abs() < 1e-15);
        // a large stream: what the L2 cannot hold comes from DRAM
        let big = Cost { flops: 0.0, macs: 0.0, dram_bytes: 2e9, unit: ComputeUnit::Fp32 };
        assert!((c.floor_s(&big) - (2e9 - 50e6) / 4000e9).abs() < 1e-12);
        // ceilings never measured bound nothing
        let none = Ceilings { l2_gbps: 0.0, ..c };
        assert!((none.floor_s(&small) - 1e6 / 50e12).abs() < 1e-15);
    }
}
