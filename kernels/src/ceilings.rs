//! The device's measured ceilings, which reports compare achieved rates against: copy
//! bandwidth, the f32 FMA rate, and the dense matrix rates (a wgmma probe where the chip has
//! wgmma, and the best cuBLAS GEMM over several sizes; the matrix ceiling is the higher).
//! Always measured on random data, after warm-up, as medians.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::gpu::memory::copy_async;
use crate::gpu::{Blas, Device, DeviceBuffer, ExecContext, GemmPrecision, KernelArgs, KernelLibrary, LaunchConfig};
use crate::id::{KernelId, KernelSymbol};
use crate::instance::OpInstance;
use crate::ops::{ComputeUnit, Gemm, LaunchEnv, Op, OpSpec, Stressor, StressorKind};
use crate::stats::median_of;
use crate::timing::event_times_ms;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// How hard to look: `quick` uses fewer sizes and repetitions (for tests of the tool itself).
pub fn measure(lib: &KernelLibrary, ctx: &ExecContext, quick: bool) -> Result<Ceilings> {
    let device = ctx.device().clone();
    let stream = ctx.new_stream(0)?;
    let blas = Blas::new(&stream)?;
    let env = LaunchEnv { lib, stream: &stream, blas: Some(&blas), bracket_library_calls: false };
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
    })
}

fn square(s: usize, precision: GemmPrecision) -> Op {
    Op::Gemm(Gemm { m: s, n: s, k: s, batch: 1, precision, b_transposed: false })
}

/// Median TFLOP/s of an operator on random inputs.
fn op_rate(device: &Arc<Device>, ctx: &ExecContext, env: &LaunchEnv, op: Op, reps: usize) -> Result<f64> {
    let flops = op.cost().flops;
    let inst = OpInstance::allocate(device, op)?;
    inst.fill(env, 0x5eed)?;
    let times = event_times_ms(ctx, env.stream, 2, reps, || inst.launch(env, 0))?;
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
