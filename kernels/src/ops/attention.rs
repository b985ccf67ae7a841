//! Fused scaled-dot-product attention (prefill and decode) and the KV-cache append.

use serde::{Deserialize, Serialize};

use super::{
    Bindings, ComputeUnit, Cost, HostTensor, HostTensors, LaunchEnv, LaunchSpec, OpSpec, Operand, Role, StampSlots,
    positive, storage_tolerance,
};
use crate::error::{Error, Result};
use crate::gpu::{KernelArgs, LaunchConfig};
use crate::id::{ATTENTION_HEAD_DIMS, KernelId, KernelSymbol};
use crate::types::DType;

/// Queries per block of the prefill kernel (`ATT_WARPS` in attention.cu).
const PREFILL_QUERIES_PER_BLOCK: u32 = 8;
/// Threads per (batch, head) of the decode kernel (`DEC_THREADS` in attention.cu).
const DECODE_THREADS: u32 = 256;
/// Queries per block of the tensor-core prefill kernel (`MMA_BQ` in attention_mma.cu).
const MMA_QUERIES_PER_BLOCK: u32 = 64;
/// Threads per block of the tensor-core prefill kernel (`MMA_WARPS` warps).
const MMA_THREADS: u32 = 128;
/// The tensor-core kernel copies rows in 16-byte pieces.
const MMA_QKV_ALIGN: u64 = 16;

fn check_head_dim(op: &str, head_dim: usize) -> Result<()> {
    if ATTENTION_HEAD_DIMS.contains(&(head_dim as u32)) {
        Ok(())
    } else {
        Err(Error::invalid(op, format!("head_dim {head_dim} is not one of {ATTENTION_HEAD_DIMS:?}")))
    }
}

fn attention_symbol(id: KernelId, dtype: DType, head_dim: usize) -> KernelSymbol {
    KernelSymbol { id, dtype: Some(dtype), head_dim: Some(head_dim as u32) }
}

/// softmax(q k^T / sqrt(d)) v for one query against keys/values `0..n_keys`, in f64.
fn attend(q: &[f64], keys: impl Fn(usize) -> (usize, usize), kv: &[f64], n_keys: usize, d: usize) -> Vec<f64> {
    let scale = 1.0 / (d as f64).sqrt();
    let scores: Vec<f64> = (0..n_keys)
        .map(|j| {
            let (ko, _) = keys(j);
            (0..d).map(|i| q[i] * kv[ko + i]).sum::<f64>() * scale
        })
        .collect();
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
    let sum: f64 = w.iter().sum();
    let mut out = vec![0.0; d];
    for (j, wj) in w.iter().enumerate() {
        let (_, vo) = keys(j);
        for i in 0..d {
            out[i] += wj / sum * kv[vo + i];
        }
    }
    out
}

/// Self-attention over whole sequences. `qkv` is the packed QKV projection [batch, seq, 3,
/// heads, head_dim]; `out` is [batch, seq, heads, head_dim].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionPrefill {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
    #[serde(default)]
    pub causal: bool,
    pub dtype: DType,
}

impl AttentionPrefill {
    /// bf16 prefill runs on tensor cores (attention_mma.cu, FlashAttention-2 style); f32 on
    /// the FMA pipes (attention.cu), where there is no f32 tensor-core MMA to use.
    pub fn on_tensor_cores(&self) -> bool {
        self.dtype == DType::Bf16
    }

    fn symbol(&self) -> KernelSymbol {
        let id = if self.on_tensor_cores() { KernelId::AttentionPrefillMma } else { KernelId::AttentionPrefill };
        attention_symbol(id, self.dtype, self.head_dim)
    }
}

impl OpSpec for AttentionPrefill {
    fn kind(&self) -> &'static str {
        "attention_prefill"
    }
    fn shape(&self) -> String {
        format!(
            "{} n={} seq={} heads={} d={}{}",
            self.dtype,
            self.batch,
            self.seq,
            self.heads,
            self.head_dim,
            if self.causal { " causal" } else { "" }
        )
    }
    fn validate(&self) -> Result<()> {
        positive("attention_prefill", &[("batch", self.batch), ("seq", self.seq), ("heads", self.heads)])?;
        check_head_dim("attention_prefill", self.head_dim)?;
        if self.batch > 65535 || self.heads > 65535 {
            return Err(Error::invalid("attention_prefill", "batch and heads must each be at most 65535"));
        }
        Ok(())
    }
    fn operands(&self) -> Vec<Operand> {
        let (b, s, h, d) = (self.batch, self.seq, self.heads, self.head_dim);
        vec![
            Operand::input("qkv", self.dtype, vec![b, s, 3, h, d]),
            Operand::output("out", self.dtype, vec![b, s, h, d]),
        ]
    }
    fn cost(&self) -> Cost {
        let (b, s, h, d) = (self.batch as f64, self.seq as f64, self.heads as f64, self.head_dim as f64);
        let pairs = if self.causal { s * (s + 1.0) / 2.0 } else { s * s };
        Cost {
            macs: 2.0 * b * h * pairs * d,
            flops: 4.0 * b * h * pairs * d,
            dram_bytes: 4.0 * b * s * h * d * self.dtype.bytes() as f64,
            unit: if self.on_tensor_cores() { ComputeUnit::TensorBf16 } else { ComputeUnit::Fp32 },
        }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(self.symbol(), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let qkv = b.require("attention_prefill", "qkv")?;
        let (per_block, threads) = if self.on_tensor_cores() {
            if qkv % MMA_QKV_ALIGN != 0 {
                return Err(Error::invalid(
                    "attention_prefill",
                    format!("qkv at {qkv:#x} is not {MMA_QKV_ALIGN}-byte aligned, as the tensor-core kernel needs"),
                ));
            }
            (MMA_QUERIES_PER_BLOCK, MMA_THREADS)
        } else {
            (PREFILL_QUERIES_PER_BLOCK, PREFILL_QUERIES_PER_BLOCK * 32)
        };
        let grid = ((self.seq as u32).div_ceil(per_block), self.heads as u32, self.batch as u32);
        let args = KernelArgs::new()
            .ptr(b.require("attention_prefill", "out")?)
            .ptr(qkv)
            .i32(self.seq as i32)
            .i32(self.heads as i32)
            .f32(1.0 / (self.head_dim as f32).sqrt())
            .i32(self.causal as i32)
            .ptr(stamp);
        env.launch(self.symbol(), LaunchConfig::new(grid, (threads, 1, 1)), args)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let qkv = &inputs["qkv"].data;
        let (s, h, d) = (self.seq, self.heads, self.head_dim);
        let at = |b: usize, t: usize, part: usize, hh: usize| (((b * s + t) * 3 + part) * h + hh) * d;
        let mut out = vec![0.0; self.batch * s * h * d];
        for b in 0..self.batch {
            for hh in 0..h {
                for t in 0..s {
                    let q = &qkv[at(b, t, 0, hh)..at(b, t, 0, hh) + d];
                    let n_keys = if self.causal { t + 1 } else { s };
                    let o = attend(q, |j| (at(b, j, 1, hh), at(b, j, 2, hh)), qkv, n_keys, d);
                    let dst = ((b * s + t) * h + hh) * d;
                    out[dst..dst + d].copy_from_slice(&o);
                }
            }
        }
        HostTensors::from([("out", HostTensor { shape: vec![self.batch, s, h, d], data: out })])
    }
    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype).max(1e-4)
    }
}

/// One decode step: each sequence's new query attends over the first `len` positions of its
/// KV cache. `qkv` is [batch, 3, heads, head_dim]; caches are [batch, heads, max_len,
/// head_dim]; `out` is [batch, heads, head_dim].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionDecode {
    pub batch: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub max_len: usize,
    pub len: usize,
    pub dtype: DType,
}

impl OpSpec for AttentionDecode {
    fn kind(&self) -> &'static str {
        "attention_decode"
    }
    fn shape(&self) -> String {
        format!(
            "{} n={} heads={} d={} len={}/{}",
            self.dtype, self.batch, self.heads, self.head_dim, self.len, self.max_len
        )
    }
    fn validate(&self) -> Result<()> {
        positive("attention_decode", &[("batch", self.batch), ("heads", self.heads), ("len", self.len)])?;
        check_head_dim("attention_decode", self.head_dim)?;
        if self.len > self.max_len {
            return Err(Error::invalid(
                "attention_decode",
                format!("len {} exceeds max_len {}", self.len, self.max_len),
            ));
        }
        Ok(())
    }
    fn operands(&self) -> Vec<Operand> {
        let (b, h, d, l) = (self.batch, self.heads, self.head_dim, self.max_len);
        vec![
            Operand::input("qkv", self.dtype, vec![b, 3, h, d]),
            Operand::input("k_cache", self.dtype, vec![b, h, l, d]),
            Operand::input("v_cache", self.dtype, vec![b, h, l, d]),
            Operand::output("out", self.dtype, vec![b, h, d]),
        ]
    }
    fn cost(&self) -> Cost {
        let (b, h, d, l) = (self.batch as f64, self.heads as f64, self.head_dim as f64, self.len as f64);
        Cost {
            macs: 2.0 * b * h * l * d,
            flops: 4.0 * b * h * l * d,
            dram_bytes: (2.0 * b * h * l * d + 2.0 * b * h * d) * self.dtype.bytes() as f64,
            unit: ComputeUnit::Fp32,
        }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(attention_symbol(KernelId::AttentionDecode, self.dtype, self.head_dim), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let args = KernelArgs::new()
            .ptr(b.require("attention_decode", "out")?)
            .ptr(b.require("attention_decode", "qkv")?)
            .ptr(b.require("attention_decode", "k_cache")?)
            .ptr(b.require("attention_decode", "v_cache")?)
            .i32(self.heads as i32)
            .i32(self.max_len as i32)
            .i32(self.len as i32)
            .f32(1.0 / (self.head_dim as f32).sqrt())
            .ptr(stamp);
        let cfg = LaunchConfig::new((self.heads as u32, self.batch as u32, 1), (DECODE_THREADS, 1, 1));
        env.launch(attention_symbol(KernelId::AttentionDecode, self.dtype, self.head_dim), cfg, args)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (qkv, kc, vc) = (&inputs["qkv"].data, &inputs["k_cache"].data, &inputs["v_cache"].data);
        let (h, d, l) = (self.heads, self.head_dim, self.max_len);
        // Keys and values come from two tensors: lay them side by side for `attend`.
        let mut out = vec![0.0; self.batch * h * d];
        for b in 0..self.batch {
            for hh in 0..h {
                let q = &qkv[((b * 3) * h + hh) * d..((b * 3) * h + hh) * d + d];
                let base = (b * h + hh) * l * d;
                let mut kv = kc[base..base + self.len * d].to_vec();
                kv.extend_from_slice(&vc[base..base + self.len * d]);
                let o = attend(q, |j| (j * d, (self.len + j) * d), &kv, self.len, d);
                out[(b * h + hh) * d..(b * h + hh) * d + d].copy_from_slice(&o);
            }
        }
        HostTensors::from([("out", HostTensor { shape: vec![self.batch, h, d], data: out })])
    }
    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype).max(1e-4)
    }
}

/// Writes the new token's K and V (from `qkv` [batch, 3, heads, head_dim]) into the caches at
/// position `pos`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KvAppend {
    pub batch: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub max_len: usize,
    pub pos: usize,
    pub dtype: DType,
}

impl OpSpec for KvAppend {
    fn kind(&self) -> &'static str {
        "kv_append"
    }
    fn shape(&self) -> String {
        format!(
            "{} n={} heads={} d={} pos={}/{}",
            self.dtype, self.batch, self.heads, self.head_dim, self.pos, self.max_len
        )
    }
    fn validate(&self) -> Result<()> {
        positive("kv_append", &[("batch", self.batch), ("heads", self.heads), ("head_dim", self.head_dim)])?;
        if self.pos >= self.max_len {
            return Err(Error::invalid(
                "kv_append",
                format!("pos {} is outside a cache of {}", self.pos, self.max_len),
            ));
        }
        Ok(())
    }
    fn operands(&self) -> Vec<Operand> {
        let (b, h, d, l) = (self.batch, self.heads, self.head_dim, self.max_len);
        vec![
            Operand::input("qkv", self.dtype, vec![b, 3, h, d]),
            Operand::input("k_cache", self.dtype, vec![b, h, l, d]).with_role(Role::InOut),
            Operand::input("v_cache", self.dtype, vec![b, h, l, d]).with_role(Role::InOut),
        ]
    }
    fn cost(&self) -> Cost {
        let n = (self.batch * self.heads * self.head_dim) as f64;
        Cost { macs: 0.0, flops: 0.0, dram_bytes: 4.0 * n * self.dtype.bytes() as f64, unit: ComputeUnit::Fp32 }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::KvAppend, self.dtype), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let args = KernelArgs::new()
            .ptr(b.require("kv_append", "k_cache")?)
            .ptr(b.require("kv_append", "v_cache")?)
            .ptr(b.require("kv_append", "qkv")?)
            .i32(self.batch as i32)
            .i32(self.heads as i32)
            .i32(self.head_dim as i32)
            .i32(self.max_len as i32)
            .i32(self.pos as i32)
            .ptr(stamp);
        let work = (self.batch * self.heads * self.head_dim) as u64;
        env.launch_1d(KernelSymbol::typed(KernelId::KvAppend, self.dtype), work, args)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let qkv = &inputs["qkv"].data;
        let mut kc = inputs["k_cache"].clone();
        let mut vc = inputs["v_cache"].clone();
        let (h, d, l) = (self.heads, self.head_dim, self.max_len);
        for b in 0..self.batch {
            for hh in 0..h {
                for i in 0..d {
                    let dst = ((b * h + hh) * l + self.pos) * d + i;
                    kc.data[dst] = qkv[((b * 3 + 1) * h + hh) * d + i];
                    vc.data[dst] = qkv[((b * 3 + 2) * h + hh) * d + i];
                }
            }
        }
        HostTensors::from([("k_cache", kc), ("v_cache", vc)])
    }
    fn tolerance(&self) -> f64 {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_with_one_key_returns_its_value() {
        let op = AttentionPrefill { batch: 1, seq: 1, heads: 1, head_dim: 32, causal: true, dtype: DType::F32 };
        let mut qkv = vec![0.0; 3 * 32];
        for i in 0..32 {
            qkv[i] = 0.3;
            qkv[32 + i] = -0.2;
            qkv[64 + i] = i as f64;
        }
        let out =
            &op.reference(&HostTensors::from([("qkv", HostTensor { shape: vec![1, 1, 3, 1, 32], data: qkv })]))["out"];
        assert_eq!(out.data, (0..32).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn bf16_prefill_runs_on_tensor_cores_and_f32_on_the_fma_pipes() {
        let bf16 = AttentionPrefill { batch: 8, seq: 197, heads: 12, head_dim: 64, causal: false, dtype: DType::Bf16 };
        let launch = &bf16.launches()[0];
        assert_eq!(launch.cost.unit, ComputeUnit::TensorBf16);
        assert_eq!(launch.name(), "attention_prefill_mma_bf16_d64");
        let f32 = AttentionPrefill { dtype: DType::F32, ..bf16 };
        assert_eq!(f32.launches()[0].cost.unit, ComputeUnit::Fp32);
        assert_eq!(f32.launches()[0].name(), "attention_prefill_f32_d64");
    }

    #[test]
    fn equal_scores_average_the_values() {
        // Zero queries give equal weights: decode over two positions averages their values.
        let op = AttentionDecode { batch: 1, heads: 1, head_dim: 32, max_len: 4, len: 2, dtype: DType::F32 };
        let qkv = vec![0.0; 3 * 32];
        let kc = vec![1.0; 4 * 32];
        let mut vc = vec![0.0; 4 * 32];
        vc[..32].fill(2.0);
        vc[32..64].fill(4.0);
        vc[64..].fill(100.0); // beyond len: must not count
        let inputs = HostTensors::from([
            ("qkv", HostTensor { shape: vec![1, 3, 1, 32], data: qkv }),
            ("k_cache", HostTensor { shape: vec![1, 1, 4, 32], data: kc }),
            ("v_cache", HostTensor { shape: vec![1, 1, 4, 32], data: vc }),
        ]);
        assert!(op.reference(&inputs)["out"].data.iter().all(|v| (v - 3.0).abs() < 1e-12));
    }

    #[test]
    fn unsupported_head_dim_and_overlong_len_are_rejected() {
        let p = AttentionPrefill { batch: 1, seq: 4, heads: 2, head_dim: 80, causal: false, dtype: DType::Bf16 };
        assert!(p.validate().unwrap_err().to_string().contains("head_dim 80"));
        let d = AttentionDecode { batch: 1, heads: 1, head_dim: 64, max_len: 8, len: 9, dtype: DType::Bf16 };
        assert!(d.validate().is_err());
    }
}
