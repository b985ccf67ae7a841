//! Element-wise operators: bias + activation, residual add, embedding gather, ViT tokens.

use serde::{Deserialize, Serialize};

use super::cnn::launch_bias_act;
use super::{
    Bindings, ComputeUnit, Cost, HostTensor, HostTensors, Init, LaunchEnv, LaunchSpec, OpSpec, Operand, Role,
    StampSlots, fits_i32, in_pieces, positive, storage_tolerance,
};
use crate::error::{Error, Result};
use crate::gpu::KernelArgs;
use crate::id::{KernelId, KernelSymbol};
use crate::types::{Activation, DType, ElemType};

/// `y = act(x + bias[column])` over a [rows, channels] tensor (bias optional).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BiasAct {
    pub rows: usize,
    pub channels: usize,
    #[serde(default)]
    pub act: Activation,
    #[serde(default = "yes")]
    pub bias: bool,
    pub dtype: DType,
}

fn yes() -> bool {
    true
}

impl OpSpec for BiasAct {
    fn kind(&self) -> &'static str {
        "bias_act"
    }
    fn shape(&self) -> String {
        format!(
            "{} {}x{} {:?}{}",
            self.dtype,
            self.rows,
            self.channels,
            self.act,
            if self.bias { "" } else { " no-bias" }
        )
        .to_lowercase()
    }
    fn validate(&self) -> Result<()> {
        positive("bias_act", &[("rows", self.rows), ("channels", self.channels)])?;
        fits_i32("bias_act", "channels", self.channels)
    }
    fn operands(&self) -> Vec<Operand> {
        let mut v = vec![Operand::input("x", self.dtype, vec![self.rows, self.channels])];
        if self.bias {
            v.push(Operand::weight("bias", self.dtype, vec![self.channels], 1.0));
        }
        v.push(Operand::output("y", self.dtype, vec![self.rows, self.channels]));
        v
    }
    fn cost(&self) -> Cost {
        let n = (self.rows * self.channels) as f64;
        let bias = if self.bias { self.channels as f64 } else { 0.0 };
        Cost {
            macs: 0.0,
            flops: n * (self.bias as u8 as f64 + self.act.flops()),
            dram_bytes: (2.0 * n + bias) * self.dtype.bytes() as f64,
            unit: ComputeUnit::Fp32,
        }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::BiasAct, self.dtype), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let y = b.require("bias_act", "y")?;
        let x = b.require("bias_act", "x")?;
        launch_bias_act(env, self.dtype, y, x, b.get("bias"), self.rows * self.channels, self.channels, self.act, stamp)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let x = &inputs["x"].data;
        let bias = inputs.get("bias").map(|t| &t.data);
        let y =
            x.iter().enumerate().map(|(i, v)| self.act.apply(v + bias.map_or(0.0, |b| b[i % self.channels]))).collect();
        HostTensors::from([("y", HostTensor { shape: vec![self.rows, self.channels], data: y })])
    }
    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype)
    }
}

/// `y = act(a + b)`, the residual connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddAct {
    pub elements: usize,
    #[serde(default)]
    pub act: Activation,
    pub dtype: DType,
}

impl OpSpec for AddAct {
    fn kind(&self) -> &'static str {
        "add_act"
    }
    fn shape(&self) -> String {
        format!("{} n={} {:?}", self.dtype, self.elements, self.act).to_lowercase()
    }
    fn validate(&self) -> Result<()> {
        positive("add_act", &[("elements", self.elements)])
    }
    fn operands(&self) -> Vec<Operand> {
        vec![
            Operand::input("a", self.dtype, vec![self.elements]),
            Operand::input("b", self.dtype, vec![self.elements]),
            Operand::output("y", self.dtype, vec![self.elements]),
        ]
    }
    fn cost(&self) -> Cost {
        let n = self.elements as f64;
        Cost {
            macs: 0.0,
            flops: n * (1.0 + self.act.flops()),
            dram_bytes: 3.0 * n * self.dtype.bytes() as f64,
            unit: ComputeUnit::Fp32,
        }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::AddAct, self.dtype), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let (y, a, bb) = (b.require("add_act", "y")?, b.require("add_act", "a")?, b.require("add_act", "b")?);
        let vec = in_pieces(self.dtype, self.elements, &[y, a, bb]);
        let work = if vec { self.elements / (16 / self.dtype.bytes()) } else { self.elements };
        let args = KernelArgs::new()
            .ptr(y)
            .ptr(a)
            .ptr(bb)
            .i64(self.elements as i64)
            .i32(self.act.code())
            .i32(vec as i32)
            .ptr(stamp);
        env.launch_1d(KernelSymbol::typed(KernelId::AddAct, self.dtype), work as u64, args)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (a, b) = (&inputs["a"].data, &inputs["b"].data);
        let y = a.iter().zip(b).map(|(x, z)| self.act.apply(x + z)).collect();
        HostTensors::from([("y", HostTensor { shape: vec![self.elements], data: y })])
    }
    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype)
    }
}

/// `out[r] = table[ids[r]] (+ positions[pos_offset + r % seq])`: token (and position)
/// embeddings of `rows` tokens in sequences of `seq`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub rows: usize,
    pub dim: usize,
    pub vocab: usize,
    pub seq: usize,
    /// Rows of the position table; 0 for no position embedding.
    #[serde(default)]
    pub max_positions: usize,
    #[serde(default)]
    pub pos_offset: usize,
    pub dtype: DType,
}

impl OpSpec for Embedding {
    fn kind(&self) -> &'static str {
        "embedding"
    }
    fn shape(&self) -> String {
        format!(
            "{} rows={} dim={} vocab={} seq={} pos={}",
            self.dtype, self.rows, self.dim, self.vocab, self.seq, self.max_positions
        )
    }
    fn validate(&self) -> Result<()> {
        positive("embedding", &[("rows", self.rows), ("dim", self.dim), ("vocab", self.vocab), ("seq", self.seq)])?;
        fits_i32("embedding", "vocab", self.vocab)?;
        if self.max_positions > 0 && self.pos_offset + self.seq > self.max_positions {
            return Err(Error::invalid(
                "embedding",
                format!(
                    "positions {}..{} exceed the table of {}",
                    self.pos_offset,
                    self.pos_offset + self.seq,
                    self.max_positions
                ),
            ));
        }
        Ok(())
    }
    fn operands(&self) -> Vec<Operand> {
        let mut v = vec![
            Operand::new("ids", Role::Input, ElemType::I32, vec![self.rows], Init::Ids { vocab: self.vocab as u32 }),
            Operand::weight("table", self.dtype, vec![self.vocab, self.dim], 1.0),
        ];
        if self.max_positions > 0 {
            v.push(Operand::weight("positions", self.dtype, vec![self.max_positions, self.dim], 1.0));
        }
        v.push(Operand::output("out", self.dtype, vec![self.rows, self.dim]));
        v
    }
    fn cost(&self) -> Cost {
        let n = (self.rows * self.dim) as f64;
        let reads = if self.max_positions > 0 { 2.0 } else { 1.0 };
        Cost {
            macs: 0.0,
            flops: if self.max_positions > 0 { n } else { 0.0 },
            dram_bytes: (reads + 1.0) * n * self.dtype.bytes() as f64 + 4.0 * self.rows as f64,
            unit: ComputeUnit::Fp32,
        }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::Embedding, self.dtype), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let args = KernelArgs::new()
            .ptr(b.require("embedding", "out")?)
            .ptr(b.require("embedding", "table")?)
            .ptr(b.require("embedding", "ids")?)
            .ptr(b.get("positions"))
            .i32(self.rows as i32)
            .i32(self.dim as i32)
            .i32(self.vocab as i32)
            .i32(self.seq as i32)
            .i32(self.pos_offset as i32)
            .ptr(stamp);
        env.launch_1d(KernelSymbol::typed(KernelId::Embedding, self.dtype), (self.rows * self.dim) as u64, args)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (ids, table) = (&inputs["ids"].data, &inputs["table"].data);
        let pos = inputs.get("positions").map(|t| &t.data);
        let mut out = vec![0.0; self.rows * self.dim];
        for r in 0..self.rows {
            let id = (ids[r] as i64).clamp(0, self.vocab as i64 - 1) as usize;
            for d in 0..self.dim {
                let p = pos.map_or(0.0, |p| p[(self.pos_offset + r % self.seq) * self.dim + d]);
                out[r * self.dim + d] = table[id * self.dim + d] + p;
            }
        }
        HostTensors::from([("out", HostTensor { shape: vec![self.rows, self.dim], data: out })])
    }
    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype)
    }
}

/// ViT token assembly: prepend the class token to the patch embeddings and add positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchTokens {
    pub batch: usize,
    pub patches: usize,
    pub dim: usize,
    pub dtype: DType,
}

impl OpSpec for PatchTokens {
    fn kind(&self) -> &'static str {
        "patch_tokens"
    }
    fn shape(&self) -> String {
        format!("{} n={} patches={} dim={}", self.dtype, self.batch, self.patches, self.dim)
    }
    fn validate(&self) -> Result<()> {
        positive("patch_tokens", &[("batch", self.batch), ("patches", self.patches), ("dim", self.dim)])
    }
    fn operands(&self) -> Vec<Operand> {
        let t = self.patches + 1;
        vec![
            Operand::input("patches", self.dtype, vec![self.batch, self.patches, self.dim]),
            Operand::weight("cls", self.dtype, vec![self.dim], 1.0),
            Operand::weight("positions", self.dtype, vec![t, self.dim], 1.0),
            Operand::output("out", self.dtype, vec![self.batch, t, self.dim]),
        ]
    }
    fn cost(&self) -> Cost {
        let out = (self.batch * (self.patches + 1) * self.dim) as f64;
        Cost { macs: 0.0, flops: out, dram_bytes: 3.0 * out * self.dtype.bytes() as f64, unit: ComputeUnit::Fp32 }
    }
    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::coloc(KernelSymbol::typed(KernelId::PatchTokens, self.dtype), self.cost())]
    }
    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let stamp = slots.at(0);
        let args = KernelArgs::new()
            .ptr(b.require("patch_tokens", "out")?)
            .ptr(b.require("patch_tokens", "patches")?)
            .ptr(b.require("patch_tokens", "cls")?)
            .ptr(b.require("patch_tokens", "positions")?)
            .i32(self.batch as i32)
            .i32(self.patches as i32)
            .i32(self.dim as i32)
            .ptr(stamp);
        let work = (self.batch * (self.patches + 1) * self.dim) as u64;
        env.launch_1d(KernelSymbol::typed(KernelId::PatchTokens, self.dtype), work, args)
    }
    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (p, cls, pos) = (&inputs["patches"].data, &inputs["cls"].data, &inputs["positions"].data);
        let (t, d) = (self.patches + 1, self.dim);
        let mut out = vec![0.0; self.batch * t * d];
        for b in 0..self.batch {
            for ti in 0..t {
                for di in 0..d {
                    let v = if ti == 0 { cls[di] } else { p[(b * self.patches + ti - 1) * d + di] };
                    out[(b * t + ti) * d + di] = v + pos[ti * d + di];
                }
            }
        }
        HostTensors::from([("out", HostTensor { shape: vec![self.batch, t, d], data: out })])
    }
    fn tolerance(&self) -> f64 {
        storage_tolerance(self.dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_act_reference_broadcasts_bias_over_rows() {
        let op = BiasAct { rows: 2, channels: 2, act: Activation::Relu, bias: true, dtype: DType::F32 };
        let inputs = HostTensors::from([
            ("x", HostTensor { shape: vec![2, 2], data: vec![1.0, -1.0, -3.0, 2.0] }),
            ("bias", HostTensor { shape: vec![2], data: vec![1.0, 0.5] }),
        ]);
        assert_eq!(op.reference(&inputs)["y"].data, vec![2.0, 0.0, 0.0, 2.5]);
    }

    #[test]
    fn embedding_adds_positions_by_sequence_index() {
        let op = Embedding { rows: 3, dim: 1, vocab: 2, seq: 3, max_positions: 4, pos_offset: 1, dtype: DType::F32 };
        let inputs = HostTensors::from([
            ("ids", HostTensor { shape: vec![3], data: vec![1.0, 0.0, 5.0] }),
            ("table", HostTensor { shape: vec![2, 1], data: vec![10.0, 20.0] }),
            ("positions", HostTensor { shape: vec![4, 1], data: vec![0.0, 1.0, 2.0, 3.0] }),
        ]);
        // id 5 is clamped to the last row (20); positions start at offset 1.
        assert_eq!(op.reference(&inputs)["out"].data, vec![21.0, 12.0, 23.0]);
        let bad = Embedding { pos_offset: 2, ..op };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn patch_tokens_puts_the_class_token_first() {
        let op = PatchTokens { batch: 1, patches: 2, dim: 1, dtype: DType::F32 };
        let inputs = HostTensors::from([
            ("patches", HostTensor { shape: vec![1, 2, 1], data: vec![5.0, 6.0] }),
            ("cls", HostTensor { shape: vec![1], data: vec![9.0] }),
            ("positions", HostTensor { shape: vec![3, 1], data: vec![0.1, 0.2, 0.3] }),
        ]);
        let out = &op.reference(&inputs)["out"].data;
        assert_eq!(out, &vec![9.1, 5.2, 6.3]);
    }
}
