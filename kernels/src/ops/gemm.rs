//! Matrix products through cuBLAS.

use serde::{Deserialize, Serialize};

use super::{
    Bindings, ComputeUnit, Cost, HostTensor, HostTensors, LaunchEnv, LaunchSpec, OpSpec, Operand, StampSlots, fits_i32,
    positive,
};
use crate::error::Result;
use crate::gpu::{GemmCall, GemmPrecision};

/// Row-major `c[b] = a[b] (m x k) * b[b]` for b in 0..batch, with b[b] stored k x n, or n x k
/// when `b_transposed` (a linear layer's weight layout).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    #[serde(default = "one")]
    pub batch: usize,
    pub precision: GemmPrecision,
    #[serde(default)]
    pub b_transposed: bool,
}

fn one() -> usize {
    1
}

impl Gemm {
    pub fn call(&self, a: u64, b: u64, c: u64) -> GemmCall {
        GemmCall {
            m: self.m,
            n: self.n,
            k: self.k,
            batch: self.batch,
            b_transposed: self.b_transposed,
            precision: self.precision,
            a,
            b,
            c,
            lda: self.k,
            ldb: if self.b_transposed { self.k } else { self.n },
            stride_a: self.m * self.k,
            stride_b: self.k * self.n,
            stride_c: self.m * self.n,
            alpha: 1.0,
            beta: 0.0,
        }
    }
}

/// The compute unit a GEMM of this precision runs on.
pub(crate) fn gemm_unit(p: GemmPrecision) -> ComputeUnit {
    match p {
        GemmPrecision::F32 => ComputeUnit::Fp32,
        GemmPrecision::Tf32 => ComputeUnit::TensorTf32,
        GemmPrecision::Bf16 => ComputeUnit::TensorBf16,
    }
}

/// Relative L2 tolerance of a GEMM result in this precision.
pub(crate) fn gemm_tolerance(p: GemmPrecision) -> f64 {
    match p {
        GemmPrecision::F32 => 1e-5,
        GemmPrecision::Tf32 => 5e-3,
        GemmPrecision::Bf16 => 1e-2,
    }
}

/// f64 reference of a row-major batched GEMM (b optionally stored transposed).
pub(crate) fn reference_gemm(a: &[f64], b: &[f64], m: usize, n: usize, k: usize, batch: usize, b_t: bool) -> Vec<f64> {
    let mut c = vec![0.0; batch * m * n];
    for bi in 0..batch {
        let (ao, bo, co) = (bi * m * k, bi * k * n, bi * m * n);
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    let bv = if b_t { b[bo + j * k + p] } else { b[bo + p * n + j] };
                    acc += a[ao + i * k + p] * bv;
                }
                c[co + i * n + j] = acc;
            }
        }
    }
    c
}

impl OpSpec for Gemm {
    fn kind(&self) -> &'static str {
        "gemm"
    }

    fn shape(&self) -> String {
        let batch = if self.batch > 1 { format!(" batch={}", self.batch) } else { String::new() };
        let t = if self.b_transposed { " bT" } else { "" };
        format!("{} m={} n={} k={}{batch}{t}", self.precision.name(), self.m, self.n, self.k)
    }

    fn validate(&self) -> Result<()> {
        positive("gemm", &[("m", self.m), ("n", self.n), ("k", self.k), ("batch", self.batch)])?;
        for (what, v) in [("m", self.m), ("n", self.n), ("k", self.k), ("batch", self.batch)] {
            fits_i32("gemm", what, v)?;
        }
        Ok(())
    }

    fn operands(&self) -> Vec<Operand> {
        let d = self.precision.dtype();
        let b_shape =
            if self.b_transposed { vec![self.batch, self.n, self.k] } else { vec![self.batch, self.k, self.n] };
        vec![
            Operand::input("a", d, vec![self.batch, self.m, self.k]),
            Operand::weight("b", d, b_shape, 1.0),
            Operand::output("c", d, vec![self.batch, self.m, self.n]),
        ]
    }

    fn cost(&self) -> Cost {
        let (m, n, k, b) = (self.m as f64, self.n as f64, self.k as f64, self.batch as f64);
        Cost {
            macs: m * n * k * b,
            flops: 2.0 * m * n * k * b,
            dram_bytes: (m * k + k * n + m * n) * b * self.precision.elem_bytes() as f64,
            unit: gemm_unit(self.precision),
        }
    }

    fn launches(&self) -> Vec<LaunchSpec> {
        vec![LaunchSpec::cublas(self.cost())]
    }

    fn launch(&self, env: &LaunchEnv, b: &Bindings, slots: StampSlots) -> Result<()> {
        let call = self.call(b.require("gemm", "a")?, b.require("gemm", "b")?, b.require("gemm", "c")?);
        let blas = env.blas("gemm")?;
        env.library_call(slots, 0, true, || blas.gemm(&call))
    }

    fn reference(&self, inputs: &HostTensors) -> HostTensors {
        let c =
            reference_gemm(&inputs["a"].data, &inputs["b"].data, self.m, self.n, self.k, self.batch, self.b_transposed);
        HostTensors::from([("c", HostTensor { shape: vec![self.batch, self.m, self.n], data: c })])
    }

    fn tolerance(&self) -> f64 {
        gemm_tolerance(self.precision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_gemm_multiplies_a_hand_checked_pair() {
        // [1 2; 3 4] x [5 6; 7 8] = [19 22; 43 50]
        let c = reference_gemm(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2, 2, 2, 1, false);
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
        // the same B stored transposed
        let c = reference_gemm(&[1.0, 2.0, 3.0, 4.0], &[5.0, 7.0, 6.0, 8.0], 2, 2, 2, 1, true);
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn gemm_cost_counts_two_flops_per_multiply_add() {
        let g = Gemm { m: 8192, n: 8192, k: 8192, batch: 1, precision: GemmPrecision::Bf16, b_transposed: false };
        assert_eq!(g.cost().flops, 2.0 * 8192f64.powi(3));
        assert_eq!(g.cost().dram_bytes, 3.0 * 8192.0 * 8192.0 * 2.0);
        assert_eq!(g.cost().unit, ComputeUnit::TensorBf16);
    }

    #[test]
    fn gemm_rejects_an_empty_dimension() {
        let g = Gemm { m: 0, n: 4, k: 4, batch: 1, precision: GemmPrecision::F32, b_transposed: false };
        assert!(g.validate().unwrap_err().to_string().contains("m must be at least 1"));
    }
}
