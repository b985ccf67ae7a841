//! Row-wise layer norm and softmax.

use serde::{Deserialize, Serialize};

use super::{
    Bindings, ComputeUnit, Cost, HostTensor, HostTensors, LaunchEnv, LaunchSpec, OpSpec, Operand, StampSlots, fits_i32,
    in_pieces, positive, storage_tolerance,
};
use crate::error::Result;
use crate::gpu::{KernelArgs, LaunchConfig};
use crate::id::{KernelId, KernelSymbol};
use crate::types::DType;

/// One block per row, up to one wave of blocks over the device.
/// 16-byte pieces of a row each lane of the warp-per-row layer norm holds (`LN_MAX_VECS`).
const LN_WARP_MAX_PIECES: usize = 8;
/// Rows (warps) per block of the warp-per-row layer norm.
const LN_ROWS_PER_BLOCK: u32 = 8;

fn row_launch(env: &LaunchEnv, rows: usize, len: usize) -> LaunchConfig {
    let threads = len.next_multiple_of(32).clamp(32, 256) as u32;
    let blocks = (rows as u32).min(env.device_sms() * 16).max(1);
    LaunchConfig::new((blocks, 1, 1), (threads, 1, 1))
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta` over the last dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNorm {
    pub rows: usize,
    pub dim: usize,
    #[serde(default = "default_eps")]
    pub eps: f32,
    pub dtype: DType,
}

fn default_eps() -> f32 {
    1e-5
}

impl OpSpec for LayerNorm {
    fn kind(&self) -> &'static str {
        "layer_norm"
    }
    fn shape(&self) -> String {
        format!("{} {}x{}", self.dtype, self.rows, self.dim)
    }
    fn validate(&self) -> Result<()> {
        positive("layer_norm", &[("rows", self.rows), ("dim", self.dim)])?;
        fits_i32("layer_norm", "rows", self.rows)?;
        fits_i32("layer_norm", "dim", self.dim)
    }
    fn operands(&self) -> Vec<Operand> {
        let d = self.dtype;
        vec![
            Operand::input("x", d, vec![self.rows, self.dim]),
            Operand::weight("gamma", d, vec![self.dim], 1.0).with_init(super::Init::Uniform { lo: 0.5, hi: 1.5 }),
            Operand::weight("beta", d, vec![self.dim], 0.5),
            Operand::output("y", d, vec![self.rows, self.dim]),
        ]
    }
    fn cost(&self) -> Cost {
        let n = (self.rows * self.dim) as f64;
        Cost {
            macs: 0.0,
            flops: 8.0 * n,
            dram_bytes: (2.0 * n + 2.0 * self.dim as f64) * self.dtype.bytes() as f64,
            unit: ComputeUnit::Fp32,
        }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::LayerNorm, self.dtype), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let pointers = [
            b.require("layer_norm", "y")?,
            b.require("layer_norm", "x")?,
            b.require("layer_norm", "gamma")?,
            b.require("layer_norm", "beta")?,
        ];
        // a warp per row when the row fits its registers in whole 16-byte pieces per lane
        let piece = 16 / self.dtype.bytes();
        let per_warp = in_pieces(self.dtype, self.dim, &pointers)
            && self.dim % (32 * piece) == 0
            && self.dim <= LN_WARP_MAX_PIECES * 32 * piece;
        let cfg = if per_warp {
            let blocks = (self.rows as u32).div_ceil(LN_ROWS_PER_BLOCK).min(env.device_sms() * 16);
            LaunchConfig::new((blocks, 1, 1), (LN_ROWS_PER_BLOCK * 32, 1, 1))
        } else {
            row_launch(env, self.rows, self.dim)
        };
        let [y, x, gamma, beta] = pointers;
        let args = KernelArgs::new()
            .ptr(y)
            .ptr(x)
            .ptr(gamma)
            .ptr(beta)
            .i32(self.rows as i32)
            .i32(self.dim as i32)
            .f32(self.eps)
            .i32(per_warp as i32)
            .ptr(stamp);
        env.launch(KernelSymbol::typed(KernelId::LayerNorm, self.dtype), cfg, args)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (x, g, bt) = (&inputs["x"].data, &inputs["gamma"].data, &inputs["beta"].data);
        let d = self.dim;
        let mut y = vec![0.0; x.len()];
        for r in 0..self.rows {
            let row = &x[r * d..(r + 1) * d];
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
            let rstd = 1.0 / (var + self.eps as f64).sqrt();
            for i in 0..d {
                y[r * d + i] = (row[i] - mean) * rstd * g[i] + bt[i];
            }
        }
        HostTensors::from([("y", HostTensor { shape: vec![self.rows, d], data: y })])
    }
    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype).max(1e-5)
    }
}

/// `y = softmax(scale * x)` over each row of length `len`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    pub rows: usize,
    pub len: usize,
    #[serde(default = "unit_scale")]
    pub scale: f32,
    pub dtype: DType,
}

fn unit_scale() -> f32 {
    1.0
}

impl OpSpec for Softmax {
    fn kind(&self) -> &'static str {
        "softmax"
    }
    fn shape(&self) -> String {
        format!("{} {}x{}", self.dtype, self.rows, self.len)
    }
    fn validate(&self) -> Result<()> {
        positive("softmax", &[("rows", self.rows), ("len", self.len)])?;
        fits_i32("softmax", "rows", self.rows)?;
        fits_i32("softmax", "len", self.len)
    }
    fn operands(&self) -> Vec<Operand> {
        vec![
            Operand::input("x", self.dtype, vec![self.rows, self.len])
                .with_init(super::Init::Uniform { lo: -4.0, hi: 4.0 }),
            Operand::output("y", self.dtype, vec![self.rows, self.len]),
        ]
    }
    fn cost(&self) -> Cost {
        let n = (self.rows * self.len) as f64;
        Cost { macs: 0.0, flops: 5.0 * n, dram_bytes: 2.0 * n * self.dtype.bytes() as f64, unit: ComputeUnit::Fp32 }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::Softmax, self.dtype), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let args = KernelArgs::new()
            .ptr(b.require("softmax", "y")?)
            .ptr(b.require("softmax", "x")?)
            .i32(self.rows as i32)
            .i32(self.len as i32)
            .f32(self.scale)
            .ptr(stamp);
        env.launch(KernelSymbol::typed(KernelId::Softmax, self.dtype), row_launch(env, self.rows, self.len), args)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let x = &inputs["x"].data;
        let l = self.len;
        let s = self.scale as f64;
        let mut y = vec![0.0; x.len()];
        for r in 0..self.rows {
            let row = &x[r * l..(r + 1) * l];
            let m = row.iter().map(|v| v * s).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|v| (v * s - m).exp()).sum();
            for i in 0..l {
                y[r * l + i] = (row[i] * s - m).exp() / sum;
            }
        }
        HostTensors::from([("y", HostTensor { shape: vec![self.rows, l], data: y })])
    }
    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype).max(1e-5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_reference_normalises_a_row() {
        let op = LayerNorm { rows: 1, dim: 4, eps: 0.0, dtype: DType::F32 };
        let inputs = HostTensors::from([
            ("x", HostTensor { shape: vec![1, 4], data: vec![1.0, 2.0, 3.0, 4.0] }),
            ("gamma", HostTensor { shape: vec![4], data: vec![1.0; 4] }),
            ("beta", HostTensor { shape: vec![4], data: vec![0.0; 4] }),
        ]);
        let y = &op.reference(&inputs)["y"].data;
        let mean: f64 = y.iter().sum::<f64>() / 4.0;
        let var: f64 = y.iter().map(|v| v * v).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let op = Softmax { rows: 1, len: 3, scale: 2.0, dtype: DType::F32 };
        let inputs = HostTensors::from([("x", HostTensor { shape: vec![1, 3], data: vec![0.0, 1.0, 2.0] })]);
        let y = &op.reference(&inputs)["y"].data;
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(y[0] < y[1] && y[1] < y[2]);
        assert!((y[2] / y[1] - 2f64.exp()).abs() < 1e-12);
    }
}
