//! GEMMs through cuBLAS, in row-major terms.

use std::ffi::{CStr, c_void};

use cudarc::cublas::sys as cublas;
use serde::{Deserialize, Serialize};

use super::context::Stream;
use super::libs;
use super::memory::DeviceBuffer;
use crate::error::{Error, Result};

/// Arithmetic of a GEMM: operand storage and the tensor-core mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmPrecision {
    /// f32 storage, full f32 arithmetic (no tensor cores).
    F32,
    /// f32 storage, tensor cores in TF32 (10-bit mantissa products, f32 accumulation).
    Tf32,
    /// bf16 storage, f32 accumulation, bf16 result.
    Bf16,
}

impl GemmPrecision {
    pub fn elem_bytes(self) -> usize {
        match self {
            GemmPrecision::F32 | GemmPrecision::Tf32 => 4,
            GemmPrecision::Bf16 => 2,
        }
    }

    pub fn dtype(self) -> crate::types::DType {
        match self {
            GemmPrecision::F32 | GemmPrecision::Tf32 => crate::types::DType::F32,
            GemmPrecision::Bf16 => crate::types::DType::Bf16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GemmPrecision::F32 => "f32",
            GemmPrecision::Tf32 => "tf32",
            GemmPrecision::Bf16 => "bf16",
        }
    }
}

/// Row-major `C[b] = alpha * A[b] (m x k) * op(B[b]) + beta * C[b]` for b in 0..batch, where
/// B[b] is stored k x n, or n x k when `b_transposed` (the layout of a linear layer's weight).
#[derive(Clone, Copy, Debug)]
pub struct GemmCall {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub b_transposed: bool,
    pub precision: GemmPrecision,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    /// Elements between consecutive rows of A (at least k).
    pub lda: usize,
    /// Elements between consecutive rows of B as stored (at least n, or k when transposed).
    pub ldb: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
    pub alpha: f32,
    pub beta: f32,
}

impl GemmCall {
    /// A dense single GEMM: rows of A and B packed, alpha 1, beta 0.
    #[allow(clippy::too_many_arguments)]
    pub fn dense(
        m: usize,
        n: usize,
        k: usize,
        b_transposed: bool,
        precision: GemmPrecision,
        a: u64,
        b: u64,
        c: u64,
    ) -> Self {
        GemmCall {
            m,
            n,
            k,
            batch: 1,
            b_transposed,
            precision,
            a,
            b,
            c,
            lda: k,
            ldb: if b_transposed { k } else { n },
            stride_a: m * k,
            stride_b: k * n,
            stride_c: m * n,
            alpha: 1.0,
            beta: 0.0,
        }
    }
}

/// Workspace handed to cuBLAS so that it never allocates (which would break graph capture).
const WORKSPACE_BYTES: usize = 32 << 20;

/// A cuBLAS handle bound to one stream.
pub struct Blas {
    handle: cublas::cublasHandle_t,
    _workspace: DeviceBuffer,
}

unsafe impl Send for Blas {}
unsafe impl Sync for Blas {}

fn status(s: cublas::cublasStatus_t, call: &'static str) -> Result<()> {
    if s == cublas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Ok(());
    }
    let text = unsafe { CStr::from_ptr(cublas::cublasGetStatusString(s)) }.to_string_lossy().into_owned();
    Err(Error::Cublas { call, status: text })
}

impl Blas {
    /// A handle whose work goes to `stream` (created in the stream's context).
    pub fn new(stream: &Stream) -> Result<Blas> {
        libs::require_cublas()?;
        let ctx = stream.context();
        ctx.bind()?;
        let workspace = DeviceBuffer::alloc(ctx.device(), WORKSPACE_BYTES, "cuBLAS workspace")?;
        ctx.bind()?;
        let mut handle = std::ptr::null_mut();
        status(unsafe { cublas::cublasCreate_v2(&mut handle) }, "cublasCreate_v2")?;
        let blas = Blas { handle, _workspace: workspace };
        status(
            unsafe { cublas::cublasSetStream_v2(handle, stream.raw() as cublas::cudaStream_t) },
            "cublasSetStream_v2",
        )?;
        status(
            unsafe { cublas::cublasSetWorkspace_v2(handle, blas._workspace.ptr() as *mut c_void, WORKSPACE_BYTES) },
            "cublasSetWorkspace_v2",
        )?;
        Ok(blas)
    }

    /// cuBLAS's version number (e.g. 130001).
    pub fn version(&self) -> Result<i32> {
        let mut v = 0;
        status(unsafe { cublas::cublasGetVersion_v2(self.handle, &mut v) }, "cublasGetVersion_v2")?;
        Ok(v)
    }

    /// Queues the GEMM on the handle's stream. Row-major C = A * op(B) is computed as the
    /// column-major C^T = op(B)^T * A^T, which swaps the operands and keeps every matrix in
    /// place.
    pub fn gemm(&self, g: &GemmCall) -> Result<()> {
        use cublas::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let (data, compute) = match g.precision {
            GemmPrecision::F32 => (cublas::cudaDataType::CUDA_R_32F, cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F),
            GemmPrecision::Tf32 => {
                (cublas::cudaDataType::CUDA_R_32F, cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32)
            }
            GemmPrecision::Bf16 => (cublas::cudaDataType::CUDA_R_16BF, cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F),
        };
        let trans_b = if g.b_transposed { CUBLAS_OP_T } else { CUBLAS_OP_N };
        let s = unsafe {
            cublas::cublasGemmStridedBatchedEx(
                self.handle,
                trans_b,
                CUBLAS_OP_N,
                g.n as i32,
                g.m as i32,
                g.k as i32,
                &g.alpha as *const f32 as *const c_void,
                g.b as *const c_void,
                data,
                g.ldb as i32,
                g.stride_b as i64,
                g.a as *const c_void,
                data,
                g.lda as i32,
                g.stride_a as i64,
                &g.beta as *const f32 as *const c_void,
                g.c as *mut c_void,
                data,
                g.n as i32,
                g.stride_c as i64,
                g.batch as i32,
                compute,
                cublas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        status(s, "cublasGemmStridedBatchedEx")
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        unsafe {
            cublas::cublasDestroy_v2(self.handle);
        }
    }
}
