//! A linear layer: one cuBLAS GEMM against a [out, in] weight, then bias and activation in one
//! pass over the output (the same epilogue as a convolution).

use serde::{Deserialize, Serialize};

use super::cnn::launch_bias_act;
use super::gemm::{gemm_tolerance, gemm_unit};
use super::{
    Bindings, Cost, HostTensor, HostTensors, LaunchEnv, LaunchSpec, OpSpec, Operand, StampSlots, fits_i32, positive,
};
use crate::error::{Error, Result};
use crate::gpu::{GemmCall, GemmEpilogue, GemmPrecision, LinearShape};
use crate::id::{KernelId, KernelSymbol};
use crate::types::Activation;

/// `y[r] = act(x[r * row_stride .. + in_features] * w^T + bias)` for r in 0..rows. A row stride
/// larger than `in_features` reads every n-th row of a larger tensor in place (the first
/// token of each sequence, for a pooler or a classification head).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub rows: usize,
    pub in_features: usize,
    pub out_features: usize,
    /// Elements between consecutive input rows; 0 means `in_features` (packed rows).
    #[serde(default)]
    pub row_stride: usize,
    #[serde(default)]
    pub act: Activation,
    #[serde(default = "yes")]
    pub bias: bool,
    pub precision: GemmPrecision,
}

fn yes() -> bool {
    true
}

impl Linear {
    fn stride(&self) -> usize {
        if self.row_stride == 0 { self.in_features } else { self.row_stride }
    }
    fn has_epilogue(&self) -> bool {
        self.bias || self.act != Activation::None
    }
    /// The epilogue cuBLASLt fuses into the product, where it has this one: bf16 with a bias,
    /// and no activation, ReLU or tanh-GELU. Other linears run cuBLAS and coloc's bias_act.
    pub fn fused_epilogue(&self) -> Option<GemmEpilogue> {
        if self.precision != GemmPrecision::Bf16 || !self.bias {
            return None;
        }
        match self.act {
            Activation::None => Some(GemmEpilogue::Bias),
            Activation::Relu => Some(GemmEpilogue::ReluBias),
            Activation::GeluTanh => Some(GemmEpilogue::GeluTanhBias),
            _ => None,
        }
    }
}

impl OpSpec for Linear {
    fn kind(&self) -> &'static str {
        "linear"
    }

    fn shape(&self) -> String {
        let stride =
            if self.stride() != self.in_features { format!(" row_stride={}", self.stride()) } else { String::new() };
        let bias = if self.bias { "" } else { " no-bias" };
        format!(
            "{} {}x{}->{}{stride} {:?}{bias}",
            self.precision.name(),
            self.rows,
            self.in_features,
            self.out_features,
            self.act
        )
        .to_lowercase()
    }

    fn validate(&self) -> Result<()> {
        positive(
            "linear",
            &[("rows", self.rows), ("in_features", self.in_features), ("out_features", self.out_features)],
        )?;
        if self.stride() < self.in_features {
            return Err(Error::invalid(
                "linear",
                format!("row_stride {} is below in_features {}", self.stride(), self.in_features),
            ));
        }
        for (what, v) in [
            ("rows", self.rows),
            ("in_features", self.in_features),
            ("out_features", self.out_features),
            ("row_stride", self.stride()),
        ] {
            fits_i32("linear", what, v)?;
        }
        Ok(())
    }

    fn operands(&self) -> Vec<Operand> {
        let d = self.precision.dtype();
        let mut v = vec![
            Operand::input("x", d, vec![self.rows, self.stride()]),
            Operand::weight("w", d, vec![self.out_features, self.in_features], 1.0 / (self.in_features as f32).sqrt()),
        ];
        if self.bias {
            v.push(Operand::weight("bias", d, vec![self.out_features], 0.5));
        }
        v.push(Operand::output("y", d, vec![self.rows, self.out_features]));
        v
    }

    fn cost(&self) -> Cost {
        Cost::sum(self.launches().into_iter().map(|l| l.cost))
    }

    fn launches(&self) -> Vec<LaunchSpec> {
        let (m, n, k) = (self.rows as f64, self.out_features as f64, self.in_features as f64);
        let e = self.precision.elem_bytes() as f64;
        let unit = gemm_unit(self.precision);
        let gemm = Cost { macs: m * n * k, flops: 2.0 * m * n * k, dram_bytes: (m * k + n * k + m * n) * e, unit };
        if self.fused_epilogue().is_some() {
            let fused = Cost {
                flops: gemm.flops + m * n * (1.0 + self.act.flops()),
                dram_bytes: gemm.dram_bytes + n * e,
                ..gemm
            };
            return vec![LaunchSpec::cublas(fused)];
        }
        let mut v = vec![LaunchSpec::cublas(gemm)];
        if self.has_epilogue() {
            let epilogue = Cost {
                macs: 0.0,
                flops: m * n * (self.bias as u8 as f64 + self.act.flops()),
                dram_bytes: (2.0 * m * n + if self.bias { n } else { 0.0 }) * e,
                unit: crate::ops::ComputeUnit::Fp32,
            };
            v.push(LaunchSpec::coloc(KernelSymbol::typed(KernelId::BiasAct, self.precision.dtype()), epilogue));
        }
        v
    }

    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let (x, w, y) = (b.require("linear", "x")?, b.require("linear", "w")?, b.require("linear", "y")?);
        if let Some(epilogue) = self.fused_epilogue() {
            let bias = b.require("linear", "bias")?;
            if [x, w, bias, y].iter().any(|p| p % 16 != 0) {
                return Err(Error::invalid("linear", "the fused cuBLASLt path needs x, w, bias and y 16-byte aligned"));
            }
            let shape = LinearShape {
                rows: self.rows,
                in_features: self.in_features,
                out_features: self.out_features,
                lda: self.stride(),
                epilogue,
            };
            let lt = env.blas_lt("linear")?;
            return env.library_call(slots, 0, true, || lt.linear(&shape, x, w, bias, y));
        }
        let call = GemmCall {
            lda: self.stride(),
            ..GemmCall::dense(self.rows, self.out_features, self.in_features, true, self.precision, x, w, y)
        };
        let blas = env.blas("linear")?;
        env.library_call(slots, 0, !self.has_epilogue(), || blas.gemm(&call))?;
        if self.has_epilogue() {
            let n = self.rows * self.out_features;
            let d = self.precision.dtype();
            launch_bias_act(env, d, y, y, b.get("bias"), n, self.out_features, self.act, slots.at(1))?;
        }
        Ok(())
    }

    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let (x, w) = (&inputs["x"].data, &inputs["w"].data);
        let bias = inputs.get("bias").map(|t| &t.data);
        let (k, n, s) = (self.in_features, self.out_features, self.stride());
        let mut y = vec![0.0; self.rows * n];
        for r in 0..self.rows {
            let row = &x[r * s..r * s + k];
            for o in 0..n {
                let dot: f64 = row.iter().zip(&w[o * k..(o + 1) * k]).map(|(a, b)| a * b).sum();
                y[r * n + o] = self.act.apply(dot + bias.map_or(0.0, |b| b[o]));
            }
        }
        HostTensors::from([("y", HostTensor { shape: vec![self.rows, n], data: y })])
    }

    fn tolerance(&self) -> f64 {
        gemm_tolerance(self.precision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_stride_reads_the_first_token_of_each_sequence() {
        // two sequences of two tokens, width 2: rows 0 and 2 are the first tokens
        let op = Linear {
            rows: 2,
            in_features: 2,
            out_features: 1,
            row_stride: 4,
            act: Activation::None,
            bias: true,
            precision: GemmPrecision::F32,
        };
        let inputs = HostTensors::from([
            ("x", HostTensor { shape: vec![2, 4], data: vec![1.0, 2.0, 9.0, 9.0, 3.0, 4.0, 9.0, 9.0] }),
            ("w", HostTensor { shape: vec![1, 2], data: vec![10.0, 1.0] }),
            ("bias", HostTensor { shape: vec![1], data: vec![0.5] }),
        ]);
        assert_eq!(op.reference(&inputs)["y"].data, vec![12.5, 34.5]);
        assert_eq!(op.cost().macs, 4.0);
    }

    #[test]
    fn bf16_linears_with_a_bias_fuse_relu_and_tanh_gelu_into_one_cublaslt_call() {
        let fc = Linear {
            rows: 64,
            in_features: 768,
            out_features: 3072,
            row_stride: 0,
            act: Activation::GeluTanh,
            bias: true,
            precision: GemmPrecision::Bf16,
        };
        assert_eq!(fc.fused_epilogue(), Some(GemmEpilogue::GeluTanhBias));
        let launches = fc.launches();
        assert_eq!(launches.len(), 1);
        assert!(launches[0].is_library());
        // the epilogue's work is in the one launch's cost
        let gemm_flops = 2.0 * 64.0 * 768.0 * 3072.0;
        assert!(launches[0].cost.flops > gemm_flops && launches[0].cost.macs == 64.0 * 768.0 * 3072.0);
        assert_eq!(Linear { act: Activation::None, ..fc.clone() }.fused_epilogue(), Some(GemmEpilogue::Bias));
        assert_eq!(Linear { act: Activation::Relu, ..fc.clone() }.fused_epilogue(), Some(GemmEpilogue::ReluBias));
        // exact GELU, no bias, or f32: cuBLAS and coloc's epilogue kernel
        for other in [
            Linear { act: Activation::Gelu, ..fc.clone() },
            Linear { bias: false, act: Activation::Relu, ..fc.clone() },
            Linear { precision: GemmPrecision::F32, ..fc.clone() },
        ] {
            assert_eq!(other.fused_epilogue(), None, "{}", other.shape());
            let names: Vec<String> = other.launches().iter().map(LaunchSpec::name).collect();
            assert_eq!(names[0], "cublas");
            assert_eq!(names.len(), 2, "{names:?}");
        }
    }

    #[test]
    fn a_stride_below_the_width_is_rejected() {
        let op = Linear {
            rows: 2,
            in_features: 8,
            out_features: 1,
            row_stride: 4,
            act: Activation::None,
            bias: false,
            precision: GemmPrecision::Bf16,
        };
        assert!(op.validate().unwrap_err().to_string().contains("row_stride 4"));
    }
}
